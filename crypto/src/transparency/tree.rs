//! An append-only Merkle tree over leaf hashes (RFC 9162 §2.1.1).
//!
//! The tree keeps every *complete* subtree hash: level `k` holds the hashes of
//! the aligned subtrees of `2^k` leaves, so level 0 is the leaf hashes and the
//! tree holds about `2n` hashes (64 bytes per entry). The rightmost hash of each
//! level is the frontier that the next append extends. This gives:
//!
//! - append: amortized O(1), worst case O(log n) node hashes;
//! - `MTH(D[0:m])` for any `m ≤ n`, the current root included: O(log m) node
//!   hashes, because `D[0:m]` splits into at most `log m` stored complete
//!   subtrees (one per set bit of `m`), folded right to left exactly as the
//!   recursive definition of RFC 9162 §2.1.1 does;
//! - inclusion and consistency proofs ([`super::proof`]): O(log² n) at worst.
//!
//! The tree holds hashes only. The coordinator rebuilds it at start-up from the
//! leaf hashes of its persisted log with [`MerkleTree::from_leaf_hashes`].

use std::fmt;

use super::TransparencyError;
use super::hash::{Hash, empty_root, leaf_hash, node_hash};

/// An append-only Merkle tree that can produce the root of any of its prefixes.
#[derive(Clone, Default)]
pub struct MerkleTree {
    /// `levels[k][i]` is the hash of leaves `i·2^k .. (i+1)·2^k`.
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a tree from leaf hashes in log order, e.g. at start-up.
    pub fn from_leaf_hashes(leaf_hashes: impl IntoIterator<Item = Hash>) -> Self {
        let leaves: Vec<Hash> = leaf_hashes.into_iter().collect();
        let mut levels = Vec::new();
        let mut current = leaves;
        while current.len() >= 2 {
            let parents = current
                .chunks_exact(2)
                .map(|pair| node_hash(&pair[0], &pair[1]))
                .collect();
            levels.push(current);
            current = parents;
        }
        if !current.is_empty() {
            levels.push(current);
        }
        Self { levels }
    }

    /// Appends a log entry (hashing it as a leaf) and returns its index.
    pub fn append(&mut self, entry: &[u8]) -> u64 {
        self.append_leaf_hash(leaf_hash(entry))
    }

    /// Appends an already computed leaf hash and returns its index.
    pub fn append_leaf_hash(&mut self, leaf: Hash) -> u64 {
        let index = self.len();
        let mut level = 0;
        let mut carry = leaf;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let hashes = &mut self.levels[level];
            hashes.push(carry);
            // An even count means the push completed a pair: hash it one level up.
            match hashes.as_slice() {
                [.., left, right] if hashes.len().is_multiple_of(2) => {
                    carry = node_hash(left, right);
                    level += 1;
                }
                _ => return index,
            }
        }
    }

    /// The number of entries.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }

    /// Whether no entry has been appended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The leaf hash at `index`, if the tree has it.
    pub fn leaf_hash(&self, index: u64) -> Option<Hash> {
        let index = usize::try_from(index).ok()?;
        self.levels.first()?.get(index).copied()
    }

    /// The root of the whole tree, `MTH(D[0:n])`.
    pub fn root(&self) -> Hash {
        self.prefix_root(self.leaf_count())
    }

    /// The root of the first `tree_size` entries, `MTH(D[0:tree_size])`.
    pub fn root_at(&self, tree_size: u64) -> Result<Hash, TransparencyError> {
        Ok(self.prefix_root(self.check_size(tree_size)?))
    }

    pub(super) fn leaf_count(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    /// `tree_size` as an index, if the tree has that many entries.
    pub(super) fn check_size(&self, tree_size: u64) -> Result<usize, TransparencyError> {
        usize::try_from(tree_size)
            .ok()
            .filter(|&size| size <= self.leaf_count())
            .ok_or(TransparencyError::TreeSizeOutOfRange {
                requested: tree_size,
                available: self.len(),
            })
    }

    fn prefix_root(&self, size: usize) -> Hash {
        if size == 0 {
            empty_root()
        } else {
            self.range_hash(0, size)
        }
    }

    /// `MTH(D[start:end])` for a non-empty range that is a subtree in RFC 9162's
    /// recursive split: `start` is a multiple of the largest power of two not
    /// above `end - start`, and `end ≤ len()`. Every range met while computing
    /// roots and proofs has that shape.
    ///
    /// The range splits into complete subtrees, one per set bit of its length,
    /// largest first; the recursion of §2.1.1 is then a right fold over them.
    pub(super) fn range_hash(&self, start: usize, end: usize) -> Hash {
        debug_assert!(start < end && end <= self.leaf_count());
        let mut remaining = end - start;
        let mut right_edge = end;
        let mut acc: Option<Hash> = None;
        while remaining != 0 {
            let level = remaining.trailing_zeros() as usize;
            let piece_start = right_edge - (1 << level);
            debug_assert_eq!(piece_start % (1 << level), 0, "unaligned subtree");
            let piece = self.levels[level][piece_start >> level];
            acc = Some(match acc {
                None => piece,
                Some(right) => node_hash(&piece, &right),
            });
            right_edge = piece_start;
            remaining &= remaining - 1;
        }
        acc.unwrap_or_else(empty_root)
    }
}

impl fmt::Debug for MerkleTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MerkleTree")
            .field("size", &self.len())
            .field("root", &self.root())
            .finish()
    }
}

/// The largest power of two strictly below `n` (`n ≥ 2`): RFC 9162's split point.
pub(super) fn split_point(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The 8 leaves of the RFC 6962 reference test vectors used by Google's
    /// certificate-transparency-go and transparency-dev/merkle.
    pub(crate) const REFERENCE_LEAVES: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];

    /// Their roots for tree sizes 1 to 8 (from transparency-dev/merkle
    /// `proof/verify_test.go` and certificate-transparency-go's merkletree tests).
    pub(crate) const REFERENCE_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    pub(crate) fn reference_tree() -> MerkleTree {
        let mut tree = MerkleTree::new();
        for leaf in REFERENCE_LEAVES {
            tree.append(leaf);
        }
        tree
    }

    /// MTH written exactly as RFC 9162 §2.1.1 defines it, recursively.
    pub(crate) fn reference_mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let mut k = 1;
                while 2 * k < n {
                    k *= 2;
                }
                node_hash(&reference_mth(&leaves[..k]), &reference_mth(&leaves[k..]))
            }
        }
    }

    pub(crate) fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn roots_match_the_rfc6962_reference_vectors() {
        let mut tree = MerkleTree::new();
        assert_eq!(
            tree.root().to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        for (i, leaf) in REFERENCE_LEAVES.iter().enumerate() {
            assert_eq!(tree.append(leaf), i as u64);
            assert_eq!(
                tree.root().to_string(),
                REFERENCE_ROOTS[i],
                "size {}",
                i + 1
            );
        }
        for (i, expected) in REFERENCE_ROOTS.iter().enumerate() {
            let size = i as u64 + 1;
            assert_eq!(tree.root_at(size).unwrap().to_string(), *expected);
        }
        let hashes: Vec<Hash> = REFERENCE_LEAVES.iter().map(|l| leaf_hash(l)).collect();
        assert_eq!(
            reference_mth(&hashes).to_string(),
            REFERENCE_ROOTS[7],
            "the test's own reference MTH agrees with the vectors"
        );
    }

    #[test]
    fn every_prefix_root_matches_the_recursive_definition() {
        let hashes = leaves(300);
        let mut tree = MerkleTree::new();
        for (i, h) in hashes.iter().enumerate() {
            tree.append_leaf_hash(*h);
            assert_eq!(tree.root(), reference_mth(&hashes[..=i]), "size {}", i + 1);
        }
        for size in 0..=300 {
            assert_eq!(
                tree.root_at(size as u64).unwrap(),
                reference_mth(&hashes[..size]),
                "prefix {size}"
            );
        }
    }

    #[test]
    fn rebuilding_from_leaf_hashes_gives_the_same_tree() {
        for n in [0, 1, 2, 3, 7, 8, 9, 100, 255, 256, 257] {
            let hashes = leaves(n);
            let mut appended = MerkleTree::new();
            for h in &hashes {
                appended.append_leaf_hash(*h);
            }
            let rebuilt = MerkleTree::from_leaf_hashes(hashes.iter().copied());
            assert_eq!(rebuilt.len(), n as u64);
            assert_eq!(rebuilt.root(), appended.root(), "size {n}");
            assert_eq!(rebuilt.levels, appended.levels, "size {n}");
            // And the rebuilt tree keeps growing correctly.
            let mut grown = rebuilt;
            grown.append(b"one more");
            appended.append(b"one more");
            assert_eq!(grown.root(), appended.root());
        }
    }

    #[test]
    fn sizes_beyond_the_tree_are_refused() {
        let tree = reference_tree();
        assert!(matches!(
            tree.root_at(9),
            Err(TransparencyError::TreeSizeOutOfRange {
                requested: 9,
                available: 8
            })
        ));
        assert_eq!(tree.leaf_hash(7), Some(leaf_hash(REFERENCE_LEAVES[7])));
        assert_eq!(tree.leaf_hash(8), None);
        assert_eq!(MerkleTree::new().root(), empty_root());
        assert!(MerkleTree::new().is_empty());
    }

    #[test]
    fn split_point_is_the_largest_power_of_two_below() {
        for n in 2..2000usize {
            let k = split_point(n);
            assert!(k.is_power_of_two() && k < n && 2 * k >= n, "n = {n}");
        }
    }
}
