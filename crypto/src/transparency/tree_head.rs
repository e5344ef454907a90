//! Signed tree heads: the coordinator's signed statement that *its federation's*
//! audit log, under *this* audit key, had `tree_size` entries with root
//! `root_hash` at `timestamp_ms` (in the manner of RFC 9162 §4.9–4.10), signed
//! with Ed25519 (RFC 8032) through ring.
//!
//! # Threat model
//!
//! An auditor trusts a head only once it verifies, and keeps the last one it
//! saw (`seen_head` in the coordinator) to demand that later logs extend it.
//! A head that did not name its log could be replayed across logs: an operator
//! running two federations with one audit key could show an auditor of one
//! federation the other's (genuine, signed) heads and entries, and two
//! auditors comparing heads could not tell two logs from a split view of one.
//! So the signed bytes carry the log's identity ([`LogId`]): a hash of the
//! federation id and a hash of the audit public key, and
//! [`SignedTreeHead::verify`] requires both to be the log's it is checked as.
//!
//! # Signed bytes (version 2)
//!
//! The signature covers exactly these 125 bytes, with no other framing:
//!
//! | bytes   | field                                                        |
//! |---------|--------------------------------------------------------------|
//! | 0..13   | the ASCII domain label `cohort-sth-v2`                       |
//! | 13..45  | federation id hash: SHA-256 of the federation id's UTF-8     |
//! | 45..77  | key id: SHA-256 of the 32-byte Ed25519 audit public key      |
//! | 77..85  | `tree_size`, unsigned 64-bit big-endian                      |
//! | 85..93  | `timestamp_ms` (Unix epoch, ms), u64 big-endian              |
//! | 93..125 | `root_hash`, the 32-byte RFC 9162 root                       |
//!
//! Every field has a fixed length, so the encoding is unambiguous; the label
//! keeps an audit signature from being valid for anything else the key could
//! sign, and carries the version. A changed layout gets a new label: version 1
//! heads (`cohort-sth-v1`, which named no log) are refused by
//! [`SignedTreeHead::from_bytes`] with a message saying so.
//! [`SignedTreeHead::to_bytes`] appends the 64-byte signature to these bytes
//! (189 bytes in all) for storage and transport.
//!
//! # The audit key
//!
//! [`AuditSigningKey`] is an Ed25519 key kept as PKCS#8 in a PEM file written
//! 0600 and never overwritten (as the PKI's keys are), and refused when it is
//! open to group or others. It has no `Debug` that
//! could print it; buffers holding its PKCS#8 are zeroized. ring does not wipe
//! its own `Ed25519KeyPair` on drop, so the expanded secret lives in ring's
//! memory while the key is loaded.

use std::fmt;
use std::path::Path;

use rcgen::{KeyPair, PKCS_ED25519};
use ring::digest::{SHA256, digest};
use ring::signature::{self, ED25519, Ed25519KeyPair, KeyPair as _};
use zeroize::Zeroizing;

use super::TransparencyError;
use super::hash::{HASH_LEN, Hash};
use crate::pki::{read_key_pem, write_private_key};

/// The domain label and version that start every signed tree head message.
pub const TREE_HEAD_LABEL: &[u8; 13] = b"cohort-sth-v2";
/// The label of version 1 heads, which named no log; refused with a clear error.
const TREE_HEAD_LABEL_V1: &[u8; 13] = b"cohort-sth-v1";
/// Length of the log identity in the signed bytes: two SHA-256 hashes.
pub const LOG_ID_LEN: usize = 2 * HASH_LEN;
/// Length of the signed bytes of a tree head.
pub const SIGNED_BYTES_LEN: usize = TREE_HEAD_LABEL.len() + LOG_ID_LEN + 8 + 8 + HASH_LEN;
/// Length of an Ed25519 signature (RFC 8032 §5.1.6).
pub const SIGNATURE_LEN: usize = 64;
/// Length of an Ed25519 public key (RFC 8032 §5.1.5).
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of [`SignedTreeHead::to_bytes`].
pub const ENCODED_LEN: usize = SIGNED_BYTES_LEN + SIGNATURE_LEN;

const KEY_KIND: &str = "Ed25519 audit key (PKCS#8 PEM)";

fn sha256(bytes: &[u8]) -> [u8; HASH_LEN] {
    let mut out = [0u8; HASH_LEN];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// Which log a tree head belongs to, as its signature binds it: the federation
/// and the audit key, each by its SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogId {
    /// SHA-256 of the federation id (UTF-8).
    pub federation: [u8; HASH_LEN],
    /// SHA-256 of the Ed25519 audit public key: the key id.
    pub key_id: [u8; HASH_LEN],
}

impl LogId {
    /// The id of `federation_id`'s log signed with `public_key`.
    pub fn new(federation_id: &str, public_key: &[u8]) -> Self {
        Self {
            federation: sha256(federation_id.as_bytes()),
            key_id: sha256(public_key),
        }
    }
}

/// A log as an auditor names it: its federation's id and its audit public key.
/// Tree heads are verified against one ([`SignedTreeHead::verify`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogIdentity {
    federation_id: String,
    public_key: Vec<u8>,
}

impl LogIdentity {
    /// The log of `federation_id` whose heads `public_key` signs.
    pub fn new(federation_id: &str, public_key: &[u8]) -> Self {
        Self {
            federation_id: federation_id.to_owned(),
            public_key: public_key.to_vec(),
        }
    }

    /// The federation's id (as in the coordinator's config, `federation_id`).
    pub fn federation_id(&self) -> &str {
        &self.federation_id
    }

    /// The Ed25519 audit public key.
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// The id the signed bytes carry.
    pub fn log_id(&self) -> LogId {
        LogId::new(&self.federation_id, &self.public_key)
    }
}

/// A tree head signed by the coordinator's audit key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedTreeHead {
    /// The log the head belongs to.
    pub log_id: LogId,
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
        signed_bytes(
            &self.log_id,
            self.tree_size,
            self.timestamp_ms,
            &self.root_hash,
        )
    }

    /// Checks that the head names `log` (its federation and its key) and that
    /// the signature verifies under `log`'s public key.
    pub fn verify(&self, log: &LogIdentity) -> Result<(), TransparencyError> {
        let expected = log.log_id();
        if self.log_id.federation != expected.federation {
            return Err(TransparencyError::OtherFederation {
                tree_size: self.tree_size,
                expected: log.federation_id().to_owned(),
            });
        }
        if self.log_id.key_id != expected.key_id {
            return Err(TransparencyError::OtherLogKey {
                tree_size: self.tree_size,
                named: hex::encode(self.log_id.key_id),
                expected: hex::encode(expected.key_id),
            });
        }
        signature::UnparsedPublicKey::new(&ED25519, log.public_key())
            .verify(&self.signed_bytes(), &self.signature)
            .map_err(|_| TransparencyError::BadSignature {
                tree_size: self.tree_size,
            })
    }

    /// The signed bytes followed by the signature: 189 bytes.
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
        if bytes.starts_with(TREE_HEAD_LABEL_V1) {
            return Err(malformed(
                "a version 1 head (cohort-sth-v1), which names no log: this log was written \
                 by an older Cohort; start the coordinator on a fresh state folder"
                    .to_owned(),
            ));
        }
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
        let (federation, rest) = rest.split_first_chunk::<HASH_LEN>().ok_or_else(truncated)?;
        let (key_id, rest) = rest.split_first_chunk::<HASH_LEN>().ok_or_else(truncated)?;
        let (size, rest) = rest.split_first_chunk::<8>().ok_or_else(truncated)?;
        let (timestamp, rest) = rest.split_first_chunk::<8>().ok_or_else(truncated)?;
        let (root, rest) = rest.split_first_chunk::<HASH_LEN>().ok_or_else(truncated)?;
        let signature = rest.first_chunk::<SIGNATURE_LEN>().ok_or_else(truncated)?;
        Ok(Self {
            log_id: LogId {
                federation: *federation,
                key_id: *key_id,
            },
            tree_size: u64::from_be_bytes(*size),
            timestamp_ms: u64::from_be_bytes(*timestamp),
            root_hash: Hash::from_bytes(*root),
            signature: *signature,
        })
    }
}

fn signed_bytes(
    log_id: &LogId,
    tree_size: u64,
    timestamp_ms: u64,
    root_hash: &Hash,
) -> [u8; SIGNED_BYTES_LEN] {
    let mut out = [0u8; SIGNED_BYTES_LEN];
    let fields: [&[u8]; 6] = [
        TREE_HEAD_LABEL,
        &log_id.federation,
        &log_id.key_id,
        &tree_size.to_be_bytes(),
        &timestamp_ms.to_be_bytes(),
        root_hash.as_bytes(),
    ];
    let mut at = 0;
    for field in fields {
        out[at..at + field.len()].copy_from_slice(field);
        at += field.len();
    }
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

    /// The identity of `federation_id`'s log signed with this key.
    pub fn log_identity(&self, federation_id: &str) -> LogIdentity {
        LogIdentity::new(federation_id, &self.public_key())
    }

    /// Signs the tree head of `federation_id`'s log for a tree of `tree_size`
    /// entries with root `root_hash`, at `timestamp_ms` milliseconds since the
    /// Unix epoch. The head names the federation and this key.
    pub fn sign_tree_head(
        &self,
        federation_id: &str,
        tree_size: u64,
        timestamp_ms: u64,
        root_hash: Hash,
    ) -> SignedTreeHead {
        let log_id = LogId::new(federation_id, &self.public_key());
        let message = signed_bytes(&log_id, tree_size, timestamp_ms, &root_hash);
        let mut signature = [0u8; SIGNATURE_LEN];
        signature.copy_from_slice(self.key_pair.sign(&message).as_ref());
        SignedTreeHead {
            log_id,
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

    const FEDERATION: &str = "breast-cancer";

    #[test]
    fn tree_heads_verify_and_every_flipped_bit_fails() {
        let (_tmp, key) = new_key();
        let log = key.log_identity(FEDERATION);
        let tree = reference_tree();
        let sth = key.sign_tree_head(FEDERATION, tree.len(), 1_700_000_000_123, tree.root());
        sth.verify(&log).unwrap();

        // Every bit of every field: log id, size, timestamp, root and signature.
        let encoded = sth.to_bytes();
        let federation_bits = 13 * 8..45 * 8;
        let key_bits = 45 * 8..77 * 8;
        for bit in TREE_HEAD_LABEL.len() * 8..ENCODED_LEN * 8 {
            let mut bytes = encoded;
            bytes[bit / 8] ^= 1 << (bit % 8);
            let tampered = SignedTreeHead::from_bytes(&bytes).unwrap();
            let err = tampered.verify(&log).unwrap_err();
            let expected = if federation_bits.contains(&bit) {
                matches!(err, TransparencyError::OtherFederation { .. })
            } else if key_bits.contains(&bit) {
                matches!(err, TransparencyError::OtherLogKey { .. })
            } else {
                matches!(err, TransparencyError::BadSignature { .. })
            };
            assert!(expected, "bit {bit} flipped: {err}");
        }
        // Field by field, through the struct.
        let mut t = sth;
        t.tree_size ^= 1;
        assert!(t.verify(&log).is_err());
        let mut t = sth;
        t.timestamp_ms ^= 1 << 40;
        assert!(t.verify(&log).is_err());
        let mut t = sth;
        let mut root = *t.root_hash.as_bytes();
        root[31] ^= 1;
        t.root_hash = Hash::from(root);
        assert!(t.verify(&log).is_err());
        // Another key, or a malformed one.
        let (_tmp2, other) = new_key();
        assert!(matches!(
            sth.verify(&other.log_identity(FEDERATION)),
            Err(TransparencyError::OtherLogKey { .. })
        ));
        let short = LogIdentity::new(FEDERATION, &key.public_key()[..31]);
        assert!(sth.verify(&short).is_err());
    }

    #[test]
    fn a_head_signed_for_another_federation_does_not_verify() {
        let (_tmp, key) = new_key();
        let theirs = key.sign_tree_head("bank-fraud", 7, 8, Hash::from([9; 32]));
        // The same key, the same tree: valid for its own federation only.
        theirs.verify(&key.log_identity("bank-fraud")).unwrap();
        match theirs.verify(&key.log_identity(FEDERATION)) {
            Err(TransparencyError::OtherFederation {
                tree_size: 7,
                expected,
            }) => assert_eq!(expected, FEDERATION),
            other => panic!("a head of another federation was accepted: {other:?}"),
        }
        // Relabelling the head for ours breaks the signature.
        let mut relabelled = theirs;
        relabelled.log_id = key.log_identity(FEDERATION).log_id();
        assert!(matches!(
            relabelled.verify(&key.log_identity(FEDERATION)),
            Err(TransparencyError::BadSignature { tree_size: 7 })
        ));
    }

    #[test]
    fn the_signed_bytes_are_the_documented_layout() {
        let (_tmp, key) = new_key();
        let root = Hash::from([0xab; 32]);
        let sth = key.sign_tree_head(
            FEDERATION,
            0x0102_0304_0506_0708,
            0x1112_1314_1516_1718,
            root,
        );
        let bytes = sth.signed_bytes();
        assert_eq!(bytes.len(), 125);
        assert_eq!(&bytes[..13], b"cohort-sth-v2");
        assert_eq!(bytes[13..45], sha256(FEDERATION.as_bytes()));
        assert_eq!(bytes[45..77], sha256(&key.public_key()));
        assert_eq!(&bytes[77..85], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            &bytes[85..93],
            &[0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18]
        );
        assert_eq!(&bytes[93..], &[0xab; 32]);
        // The signature is plain Ed25519 over those bytes.
        signature::UnparsedPublicKey::new(&ED25519, key.public_key())
            .verify(&bytes, &sth.signature)
            .unwrap();
        // And the encoding round-trips.
        assert_eq!(sth.to_bytes().len(), 189);
        assert_eq!(SignedTreeHead::from_bytes(&sth.to_bytes()).unwrap(), sth);
        assert!(SignedTreeHead::from_bytes(&sth.to_bytes()[1..]).is_err());
        let mut relabelled = sth.to_bytes();
        relabelled[12] = b'3';
        assert!(matches!(
            SignedTreeHead::from_bytes(&relabelled),
            Err(TransparencyError::MalformedTreeHead { .. })
        ));
        // A version 1 head (a store from before log identities) says what it is.
        let mut v1 = [0u8; 125];
        v1[..13].copy_from_slice(b"cohort-sth-v1");
        let err = SignedTreeHead::from_bytes(&v1).unwrap_err().to_string();
        assert!(
            err.contains("version 1") && err.contains("fresh state"),
            "{err}"
        );
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
        let sth = loaded.sign_tree_head(FEDERATION, 3, 4, Hash::from([5; 32]));
        sth.verify(&key.log_identity(FEDERATION)).unwrap();

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
