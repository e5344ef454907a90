//! Signed tree heads: the coordinator's signed statement that its audit log had
//! `tree_size` entries with root `root_hash` at `timestamp_ms` (in the manner of
//! RFC 9162 §4.9–4.10), signed with Ed25519 (RFC 8032) through ring.
//!
//! # Signed bytes (version 1)
//!
//! The signature covers exactly these 61 bytes, with no other framing:
//!
//! | bytes  | field                                            |
//! |--------|--------------------------------------------------|
//! | 0..13  | the ASCII domain label `cohort-sth-v1`           |
//! | 13..21 | `tree_size`, unsigned 64-bit big-endian          |
//! | 21..29 | `timestamp_ms` (Unix epoch, ms), u64 big-endian  |
//! | 29..61 | `root_hash`, the 32-byte RFC 9162 root           |
//!
//! Every field has a fixed length, so the encoding is unambiguous; the label
//! keeps an audit signature from being valid for anything else the key could
//! sign, and carries the version. A changed layout gets a new label.
//! [`SignedTreeHead::to_bytes`] appends the 64-byte signature to these bytes
//! (125 bytes in all) for storage and transport.
//!
//! # The audit key
//!
//! [`AuditSigningKey`] is an Ed25519 key kept as PKCS#8 in a PEM file written
//! 0600 and never overwritten (as the PKI's keys are). It has no `Debug` that
//! could print it; buffers holding its PKCS#8 are zeroized. ring does not wipe
//! its own `Ed25519KeyPair` on drop, so the expanded secret lives in ring's
//! memory while the key is loaded.

use std::fmt;
use std::path::Path;

use rcgen::{KeyPair, PKCS_ED25519};
use ring::signature::{self, ED25519, Ed25519KeyPair, KeyPair as _};
use zeroize::Zeroizing;

use super::TransparencyError;
use super::hash::{HASH_LEN, Hash};
use crate::pki::{read_key_pem, write_private_key};

/// The domain label and version that start every signed tree head message.
pub const TREE_HEAD_LABEL: &[u8; 13] = b"cohort-sth-v1";
/// Length of the signed bytes of a tree head.
pub const SIGNED_BYTES_LEN: usize = TREE_HEAD_LABEL.len() + 8 + 8 + HASH_LEN;
/// Length of an Ed25519 signature (RFC 8032 §5.1.6).
pub const SIGNATURE_LEN: usize = 64;
/// Length of an Ed25519 public key (RFC 8032 §5.1.5).
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of [`SignedTreeHead::to_bytes`].
pub const ENCODED_LEN: usize = SIGNED_BYTES_LEN + SIGNATURE_LEN;

const KEY_KIND: &str = "Ed25519 audit key (PKCS#8 PEM)";

/// A tree head signed by the coordinator's audit key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedTreeHead {
    /// The number of entries the head commits to.
    pub tree_size: u64,
    /// Milliseconds since the Unix epoch, as the coordinator's clock said.
    pub timestamp_ms: u64,
    /// `MTH` of the first `tree_size` entries.
    pub root_hash: Hash,
    /// Ed25519 signature over [`SignedTreeHead::signed_bytes`].
    pub signature: [u8; SIGNATURE_LEN],
}

impl SignedTreeHead {
    /// The exact bytes the signature covers (see the module documentation).
    pub fn signed_bytes(&self) -> [u8; SIGNED_BYTES_LEN] {
        signed_bytes(self.tree_size, self.timestamp_ms, &self.root_hash)
    }

    /// Checks the signature against the audit key's 32-byte Ed25519 public key.
    pub fn verify(&self, public_key: &[u8]) -> Result<(), TransparencyError> {
        signature::UnparsedPublicKey::new(&ED25519, public_key)
            .verify(&self.signed_bytes(), &self.signature)
            .map_err(|_| TransparencyError::BadSignature {
                tree_size: self.tree_size,
            })
    }

    /// The signed bytes followed by the signature: 125 bytes.
    pub fn to_bytes(&self) -> [u8; ENCODED_LEN] {
        let mut out = [0u8; ENCODED_LEN];
        out[..SIGNED_BYTES_LEN].copy_from_slice(&self.signed_bytes());
        out[SIGNED_BYTES_LEN..].copy_from_slice(&self.signature);
        out
    }

    /// Parses [`SignedTreeHead::to_bytes`]. This checks the layout only; call
    /// [`SignedTreeHead::verify`] before trusting the result.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TransparencyError> {
        let malformed = |reason: String| TransparencyError::MalformedTreeHead { reason };
        if bytes.len() != ENCODED_LEN {
            return Err(malformed(format!(
                "expected {ENCODED_LEN} bytes, got {}",
                bytes.len()
            )));
        }
        let (label, rest) = bytes.split_at(TREE_HEAD_LABEL.len());
        if label != TREE_HEAD_LABEL {
            return Err(malformed(format!(
                "unknown label {:?}",
                String::from_utf8_lossy(label)
            )));
        }
        let truncated = || malformed("truncated".to_owned());
        let (size, rest) = rest.split_first_chunk::<8>().ok_or_else(truncated)?;
        let (timestamp, rest) = rest.split_first_chunk::<8>().ok_or_else(truncated)?;
        let (root, rest) = rest.split_first_chunk::<HASH_LEN>().ok_or_else(truncated)?;
        let signature = rest.first_chunk::<SIGNATURE_LEN>().ok_or_else(truncated)?;
        Ok(Self {
            tree_size: u64::from_be_bytes(*size),
            timestamp_ms: u64::from_be_bytes(*timestamp),
            root_hash: Hash::from_bytes(*root),
            signature: *signature,
        })
    }
}

fn signed_bytes(tree_size: u64, timestamp_ms: u64, root_hash: &Hash) -> [u8; SIGNED_BYTES_LEN] {
    let mut out = [0u8; SIGNED_BYTES_LEN];
    let label_end = TREE_HEAD_LABEL.len();
    out[..label_end].copy_from_slice(TREE_HEAD_LABEL);
    out[label_end..label_end + 8].copy_from_slice(&tree_size.to_be_bytes());
    out[label_end + 8..label_end + 16].copy_from_slice(&timestamp_ms.to_be_bytes());
    out[label_end + 16..].copy_from_slice(root_hash.as_bytes());
    out
}

/// The coordinator's Ed25519 audit key, which signs tree heads.
pub struct AuditSigningKey {
    key_pair: Ed25519KeyPair,
}

impl AuditSigningKey {
    /// Generates a key and writes it to `path` (PKCS#8 PEM, mode 0600). Fails
    /// if `path` exists: an audit key is never silently replaced.
    pub fn generate(path: &Path) -> Result<Self, TransparencyError> {
        let generated = Zeroizing::new(KeyPair::generate_for(&PKCS_ED25519).map_err(|e| {
            TransparencyError::KeyGeneration {
                kind: KEY_KIND,
                reason: e.to_string(),
            }
        })?);
        let key_pair = Ed25519KeyPair::from_pkcs8(generated.serialized_der()).map_err(|e| {
            TransparencyError::KeyGeneration {
                kind: KEY_KIND,
                reason: e.to_string(),
            }
        })?;
        write_private_key(path, &Zeroizing::new(generated.serialize_pem()))?;
        Ok(Self { key_pair })
    }

    /// Loads the key that [`AuditSigningKey::generate`] wrote.
    pub fn load(path: &Path) -> Result<Self, TransparencyError> {
        let invalid = |reason: String| TransparencyError::InvalidKeyFile {
            path: path.to_owned(),
            kind: KEY_KIND,
            reason,
        };
        let pem = read_key_pem(path)?;
        let parsed = Zeroizing::new(
            KeyPair::from_pkcs8_pem_and_sign_algo(&pem, &PKCS_ED25519)
                .map_err(|e| invalid(e.to_string()))?,
        );
        // ring's strict parser: PKCS#8 v2 with a public key that matches.
        let key_pair = Ed25519KeyPair::from_pkcs8(parsed.serialized_der())
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Self { key_pair })
    }

    /// The 32-byte Ed25519 public key that auditors verify tree heads with.
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        let mut out = [0u8; PUBLIC_KEY_LEN];
        out.copy_from_slice(self.key_pair.public_key().as_ref());
        out
    }

    /// Signs the tree head for a tree of `tree_size` entries with root
    /// `root_hash`, at `timestamp_ms` milliseconds since the Unix epoch.
    pub fn sign_tree_head(
        &self,
        tree_size: u64,
        timestamp_ms: u64,
        root_hash: Hash,
    ) -> SignedTreeHead {
        let message = signed_bytes(tree_size, timestamp_ms, &root_hash);
        let mut signature = [0u8; SIGNATURE_LEN];
        signature.copy_from_slice(self.key_pair.sign(&message).as_ref());
        SignedTreeHead {
            tree_size,
            timestamp_ms,
            root_hash,
            signature,
        }
    }
}

/// Shows the public key only.
impl fmt::Debug for AuditSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditSigningKey")
            .field("public_key", &hex::encode(self.public_key()))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::PkiError;
    use crate::transparency::tree::tests::reference_tree;
    use std::os::unix::fs::PermissionsExt;

    fn new_key() -> (tempfile::TempDir, AuditSigningKey) {
        let tmp = tempfile::tempdir().unwrap();
        let key = AuditSigningKey::generate(&tmp.path().join("audit.key")).unwrap();
        (tmp, key)
    }

    #[test]
    fn tree_heads_verify_and_every_flipped_bit_fails() {
        let (_tmp, key) = new_key();
        let tree = reference_tree();
        let sth = key.sign_tree_head(tree.len(), 1_700_000_000_123, tree.root());
        sth.verify(&key.public_key()).unwrap();

        // Every bit of every field: size, timestamp, root and signature.
        let encoded = sth.to_bytes();
        for bit in TREE_HEAD_LABEL.len() * 8..ENCODED_LEN * 8 {
            let mut bytes = encoded;
            bytes[bit / 8] ^= 1 << (bit % 8);
            let tampered = SignedTreeHead::from_bytes(&bytes).unwrap();
            assert!(
                matches!(
                    tampered.verify(&key.public_key()),
                    Err(TransparencyError::BadSignature { .. })
                ),
                "bit {bit} flipped and still verified"
            );
        }
        // Field by field, through the struct.
        let mut t = sth;
        t.tree_size ^= 1;
        assert!(t.verify(&key.public_key()).is_err());
        let mut t = sth;
        t.timestamp_ms ^= 1 << 40;
        assert!(t.verify(&key.public_key()).is_err());
        let mut t = sth;
        let mut root = *t.root_hash.as_bytes();
        root[31] ^= 1;
        t.root_hash = Hash::from(root);
        assert!(t.verify(&key.public_key()).is_err());
        // Another key, or a malformed one.
        let (_tmp2, other) = new_key();
        assert!(sth.verify(&other.public_key()).is_err());
        assert!(sth.verify(&key.public_key()[..31]).is_err());
    }

    #[test]
    fn the_signed_bytes_are_the_documented_layout() {
        let (_tmp, key) = new_key();
        let root = Hash::from([0xab; 32]);
        let sth = key.sign_tree_head(0x0102_0304_0506_0708, 0x1112_1314_1516_1718, root);
        let bytes = sth.signed_bytes();
        assert_eq!(&bytes[..13], b"cohort-sth-v1");
        assert_eq!(&bytes[13..21], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            &bytes[21..29],
            &[0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18]
        );
        assert_eq!(&bytes[29..], &[0xab; 32]);
        // The signature is plain Ed25519 over those bytes.
        signature::UnparsedPublicKey::new(&ED25519, key.public_key())
            .verify(&bytes, &sth.signature)
            .unwrap();
        // And the encoding round-trips.
        assert_eq!(SignedTreeHead::from_bytes(&sth.to_bytes()).unwrap(), sth);
        assert!(SignedTreeHead::from_bytes(&sth.to_bytes()[1..]).is_err());
        let mut relabelled = sth.to_bytes();
        relabelled[12] = b'2';
        assert!(matches!(
            SignedTreeHead::from_bytes(&relabelled),
            Err(TransparencyError::MalformedTreeHead { .. })
        ));
    }

    #[test]
    fn key_file_is_private_reloads_and_is_never_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("audit.key");
        let key = AuditSigningKey::generate(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let pem = std::fs::read_to_string(&path).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");

        let loaded = AuditSigningKey::load(&path).unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
        let sth = loaded.sign_tree_head(3, 4, Hash::from([5; 32]));
        sth.verify(&key.public_key()).unwrap();

        assert!(matches!(
            AuditSigningKey::generate(&path),
            Err(TransparencyError::KeyFile(PkiError::Io { .. }))
        ));
        assert_eq!(
            AuditSigningKey::load(&path).unwrap().public_key(),
            key.public_key()
        );

        // Debug shows the public key, and nothing of the private key.
        assert_eq!(
            format!("{key:?}"),
            format!(
                "AuditSigningKey {{ public_key: {:?}, .. }}",
                hex::encode(key.public_key())
            )
        );
    }

    #[test]
    fn load_names_the_file_that_failed() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("missing.key");
        let err = AuditSigningKey::load(&missing).unwrap_err();
        assert!(err.to_string().contains("missing.key"), "{err}");

        // An ECDSA key from the PKI is not an audit key.
        let ecdsa = tmp.path().join("ecdsa.key");
        let pem = KeyPair::generate().unwrap().serialize_pem();
        crate::pki::write_secret_file(&ecdsa, pem.as_bytes()).unwrap();
        let err = AuditSigningKey::load(&ecdsa).unwrap_err();
        assert!(
            matches!(&err, TransparencyError::InvalidKeyFile { path, .. } if path == &ecdsa),
            "{err}"
        );
        assert!(err.to_string().contains("ecdsa.key"), "{err}");
    }
}
