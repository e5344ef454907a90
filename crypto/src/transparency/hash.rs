//! The Merkle tree hashes of RFC 9162 §2.1.1, with SHA-256.
//!
//! A leaf is hashed as `SHA-256(0x00 ‖ entry)` and an interior node as
//! `SHA-256(0x01 ‖ left ‖ right)`. The distinct prefixes keep a leaf from being
//! passed off as a node (second-preimage resistance, RFC 9162 §2.1.1). The root
//! of the empty tree is `SHA-256("")`.
//!
//! [`struct@Hash`] compares in constant time, because roots and proof hashes are
//! compared against attacker-supplied values.

use std::fmt;
use std::str::FromStr;

use ring::digest::{self, SHA256};
use subtle::ConstantTimeEq;

use super::TransparencyError;

/// Bytes in a SHA-256 hash.
pub const HASH_LEN: usize = 32;

const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// A SHA-256 tree hash: a leaf hash, an interior node or a root.
///
/// Equality is constant-time; `Display` and `Debug` print lowercase hex.
#[derive(Clone, Copy)]
pub struct Hash([u8; HASH_LEN]);

impl Hash {
    /// The hash whose 32 bytes are `bytes`.
    pub const fn from_bytes(bytes: [u8; HASH_LEN]) -> Self {
        Self(bytes)
    }

    /// The hash's 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(hex_digits: &str) -> Result<Self, TransparencyError> {
        let mut bytes = [0u8; HASH_LEN];
        hex::decode_to_slice(hex_digits, &mut bytes).map_err(|_| {
            TransparencyError::InvalidHash {
                input: hex_digits.to_owned(),
            }
        })?;
        Ok(Self(bytes))
    }

    fn from_digest(digest: digest::Digest) -> Self {
        let mut bytes = [0u8; HASH_LEN];
        // SHA-256 digests are always 32 bytes.
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }
}

impl PartialEq for Hash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Hash {}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

impl FromStr for Hash {
    type Err = TransparencyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

impl From<[u8; HASH_LEN]> for Hash {
    fn from(bytes: [u8; HASH_LEN]) -> Self {
        Self(bytes)
    }
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// `SHA-256(0x00 ‖ entry)`: the hash of one log entry (RFC 9162 §2.1.1).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut ctx = digest::Context::new(&SHA256);
    ctx.update(&[LEAF_PREFIX]);
    ctx.update(entry);
    Hash::from_digest(ctx.finish())
}

/// `SHA-256(0x01 ‖ left ‖ right)`: the hash of an interior node (RFC 9162 §2.1.1).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 1 + 2 * HASH_LEN];
    buf[0] = NODE_PREFIX;
    buf[1..=HASH_LEN].copy_from_slice(&left.0);
    buf[1 + HASH_LEN..].copy_from_slice(&right.0);
    Hash::from_digest(digest::digest(&SHA256, &buf))
}

/// `SHA-256("")`: the root of the empty tree (RFC 9162 §2.1.1).
pub fn empty_root() -> Hash {
    Hash::from_digest(digest::digest(&SHA256, b""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            empty_root().to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn leaf_and_node_hashes_are_domain_separated() {
        // The one-leaf root of the RFC 6962 reference vectors (leaf "").
        assert_eq!(
            leaf_hash(b"").to_string(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        // A node over two hashes differs from a leaf over the same 64 bytes.
        let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
        let mut concatenated = a.as_bytes().to_vec();
        concatenated.extend_from_slice(b.as_bytes());
        assert_ne!(node_hash(&a, &b), leaf_hash(&concatenated));
        assert_ne!(node_hash(&a, &b), node_hash(&b, &a));
    }

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let h = leaf_hash(b"entry");
        assert_eq!(h.to_string().parse::<Hash>().unwrap(), h);
        assert_eq!(Hash::from_hex(&h.to_string().to_uppercase()).unwrap(), h);
        assert!(matches!(
            Hash::from_hex("abcd"),
            Err(TransparencyError::InvalidHash { .. })
        ));
        assert!(Hash::from_hex(&"zz".repeat(32)).is_err());
        assert_eq!(format!("{h:?}"), format!("Hash({h})"));
    }

    #[test]
    fn equality_looks_at_every_byte() {
        let h = leaf_hash(b"x");
        for i in 0..HASH_LEN {
            let mut bytes = *h.as_bytes();
            bytes[i] ^= 0x80;
            assert_ne!(Hash::from(bytes), h, "byte {i}");
        }
    }
}
