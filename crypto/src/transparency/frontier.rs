//! The right edge of an append-only Merkle tree (RFC 9162 §2.1.1): what a log
//! writer needs to append and to sign heads, in O(log n) space and time.
//!
//! A tree of `n` leaves is, by RFC 9162's recursive split, a sequence of
//! complete subtrees, one per set bit of `n`, largest (leftmost) first. Their
//! hashes, the *frontier*, are enough to compute `MTH(D[0:n])` (folding them
//! right to left) and to append a leaf (merging equal-sized subtrees like a
//! binary carry). A writer that keeps only the frontier appends in amortized
//! O(1) node hashes and never touches the old entries; a full [`MerkleTree`] is
//! needed only to produce proofs, and can be rebuilt from the stored log.
//!
//! The frontier has a fixed binary encoding ([`MerkleFrontier::to_bytes`]) so a
//! log can persist it with each append and resume without rereading its entries.
//!
//! [`MerkleTree`]: super::MerkleTree

use super::TransparencyError;
use super::hash::{HASH_LEN, Hash, empty_root, leaf_hash, node_hash};

/// The complete-subtree hashes along the right edge of a Merkle tree.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MerkleFrontier {
    size: u64,
    /// One hash per set bit of `size`, the largest subtree first.
    peaks: Vec<Hash>,
}

impl MerkleFrontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of leaves of the tree it is the edge of.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Appends an entry (hashing it as a leaf); returns its index.
    pub fn append(&mut self, entry: &[u8]) -> u64 {
        self.append_leaf_hash(leaf_hash(entry))
    }

    /// Appends an already computed leaf hash; returns its index.
    pub fn append_leaf_hash(&mut self, leaf: Hash) -> u64 {
        let index = self.size;
        let mut carry = leaf;
        // Each trailing set bit of the old size is a subtree of the new leaf's
        // size at that level: merge them, as a binary increment carries.
        let mut bits = index;
        while bits & 1 == 1 {
            match self.peaks.pop() {
                Some(left) => carry = node_hash(&left, &carry),
                None => break,
            }
            bits >>= 1;
        }
        self.peaks.push(carry);
        self.size += 1;
        index
    }

    /// `MTH(D[0:n])`: the subtrees folded right to left (RFC 9162 §2.1.1).
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        let Some(last) = peaks.next() else {
            return empty_root();
        };
        peaks.fold(*last, |right, left| node_hash(left, &right))
    }

    /// Size (8 bytes big-endian) followed by the subtree hashes, largest first.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + HASH_LEN * self.peaks.len());
        out.extend_from_slice(&self.size.to_be_bytes());
        for peak in &self.peaks {
            out.extend_from_slice(peak.as_bytes());
        }
        out
    }

    /// Parses [`MerkleFrontier::to_bytes`]; the length must match the size.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TransparencyError> {
        let malformed = |reason: String| TransparencyError::MalformedFrontier { reason };
        let (size, hashes) = bytes
            .split_first_chunk::<8>()
            .ok_or_else(|| malformed(format!("{} bytes, too short for a size", bytes.len())))?;
        let size = u64::from_be_bytes(*size);
        let expected = size.count_ones() as usize;
        if hashes.len() != expected * HASH_LEN {
            return Err(malformed(format!(
                "a tree of {size} entries has {expected} subtree hashes, found {} bytes of hashes",
                hashes.len()
            )));
        }
        let peaks = hashes
            .chunks_exact(HASH_LEN)
            .map(|chunk| {
                let mut hash = [0u8; HASH_LEN];
                hash.copy_from_slice(chunk);
                Hash::from_bytes(hash)
            })
            .collect();
        Ok(Self { size, peaks })
    }
}

impl std::fmt::Debug for MerkleFrontier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MerkleFrontier")
            .field("size", &self.size)
            .field("root", &self.root())
            .finish()
    }
}

impl FromIterator<Hash> for MerkleFrontier {
    /// The frontier of the tree over these leaf hashes, in log order.
    fn from_iter<I: IntoIterator<Item = Hash>>(leaf_hashes: I) -> Self {
        let mut frontier = Self::new();
        for leaf in leaf_hashes {
            frontier.append_leaf_hash(leaf);
        }
        frontier
    }
}

#[cfg(test)]
mod tests {
    use super::super::tree::tests::{REFERENCE_LEAVES, REFERENCE_ROOTS, leaves, reference_mth};
    use super::*;

    #[test]
    fn roots_match_the_rfc6962_reference_vectors() {
        let mut frontier = MerkleFrontier::new();
        assert_eq!(frontier.root(), empty_root());
        for (i, leaf) in REFERENCE_LEAVES.iter().enumerate() {
            assert_eq!(frontier.append(leaf), i as u64);
            assert_eq!(frontier.root().to_string(), REFERENCE_ROOTS[i]);
        }
    }

    #[test]
    fn every_size_matches_the_recursive_definition_and_keeps_log_n_hashes() {
        let hashes = leaves(600);
        let mut frontier = MerkleFrontier::new();
        for (i, h) in hashes.iter().enumerate() {
            frontier.append_leaf_hash(*h);
            let size = i as u64 + 1;
            assert_eq!(frontier.len(), size);
            assert_eq!(frontier.root(), reference_mth(&hashes[..=i]), "size {size}");
            assert_eq!(frontier.peaks.len(), size.count_ones() as usize);
        }
    }

    #[test]
    fn the_encoding_round_trips_and_refuses_a_wrong_length() {
        for n in [0usize, 1, 2, 5, 8, 255, 256, 257] {
            let frontier: MerkleFrontier = leaves(n).into_iter().collect();
            let bytes = frontier.to_bytes();
            assert_eq!(MerkleFrontier::from_bytes(&bytes).unwrap(), frontier);
            if n > 0 {
                assert!(matches!(
                    MerkleFrontier::from_bytes(&bytes[..bytes.len() - 1]),
                    Err(TransparencyError::MalformedFrontier { .. })
                ));
            }
        }
        assert!(MerkleFrontier::from_bytes(&[0; 7]).is_err());
    }

    #[test]
    fn a_resumed_frontier_keeps_growing_like_the_original() {
        let hashes = leaves(100);
        let mut original: MerkleFrontier = hashes[..37].iter().copied().collect();
        let mut resumed = MerkleFrontier::from_bytes(&original.to_bytes()).unwrap();
        for h in &hashes[37..] {
            original.append_leaf_hash(*h);
            resumed.append_leaf_hash(*h);
        }
        assert_eq!(resumed.root(), reference_mth(&hashes));
        assert_eq!(resumed, original);
    }
}
