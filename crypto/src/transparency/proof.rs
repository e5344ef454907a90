//! Inclusion and consistency proofs (RFC 9162 §2.1.3 and §2.1.4).
//!
//! Generation walks the same recursive splits as the RFC's `PATH` and `SUBPROOF`
//! definitions, taking each subtree hash from the tree's stored levels. The
//! verification functions implement the RFC's verification algorithms
//! (§2.1.3.2, §2.1.4.2) on hashes alone, so an auditor needs no tree: only the
//! tree sizes and roots from signed tree heads it has verified, the leaf hash
//! it cares about, and the proof. Sizes and roots must come from those signed
//! tree heads, never from the prover's unsigned word. Roots are compared in
//! constant time.
//!
//! A proof is a list of hashes, ordered as RFC 9162 orders it (from the leaf, or
//! the old tree's subtree, up to the root).

use super::TransparencyError;
use super::hash::{Hash, empty_root, node_hash};
use super::tree::{MerkleTree, split_point};

impl MerkleTree {
    /// The inclusion proof `PATH(leaf_index, D[0:tree_size])` (RFC 9162 §2.1.3.1)
    /// of entry `leaf_index` in the tree's first `tree_size` entries.
    pub fn inclusion_proof(
        &self,
        leaf_index: u64,
        tree_size: u64,
    ) -> Result<Vec<Hash>, TransparencyError> {
        let size = self.check_size(tree_size)?;
        let index = usize::try_from(leaf_index)
            .ok()
            .filter(|&index| index < size)
            .ok_or(TransparencyError::LeafIndexOutOfRange {
                index: leaf_index,
                tree_size,
            })?;
        // Walk down from the root; each split contributes the hash of the half
        // that does not hold the leaf. The RFC lists them bottom-up.
        let mut path = Vec::new();
        let (mut lo, mut hi) = (0, size);
        while hi - lo > 1 {
            let mid = lo + split_point(hi - lo);
            if index < mid {
                path.push(self.range_hash(mid, hi));
                hi = mid;
            } else {
                path.push(self.range_hash(lo, mid));
                lo = mid;
            }
        }
        path.reverse();
        Ok(path)
    }

    /// The consistency proof `PROOF(old_size, D[0:new_size])` (RFC 9162 §2.1.4.1)
    /// that the tree's first `old_size` entries are a prefix of its first
    /// `new_size` entries. Empty when `old_size` is 0 or equals `new_size`.
    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<Hash>, TransparencyError> {
        let new = self.check_size(new_size)?;
        if old_size > new_size {
            return Err(TransparencyError::SizesOutOfOrder { old_size, new_size });
        }
        // old_size <= new_size, which fits in usize.
        let old = self.check_size(old_size)?;
        if old == 0 || old == new {
            return Ok(Vec::new());
        }
        // SUBPROOF(m, D[lo:hi], complete): `old` stays an absolute position, and
        // `complete` is false once the old tree's root is no longer a node of
        // the new tree on the path taken.
        let mut upper = Vec::new();
        let (mut lo, mut hi) = (0, new);
        let mut complete = true;
        while old != hi {
            let mid = lo + split_point(hi - lo);
            if old <= mid {
                upper.push(self.range_hash(mid, hi));
                hi = mid;
            } else {
                upper.push(self.range_hash(lo, mid));
                lo = mid;
                complete = false;
            }
        }
        let mut proof = Vec::with_capacity(upper.len() + 1);
        if !complete {
            proof.push(self.range_hash(lo, hi));
        }
        proof.extend(upper.into_iter().rev());
        Ok(proof)
    }
}

/// Verifies that `leaf_hash` is entry `leaf_index` of the tree of `tree_size`
/// entries whose root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: &Hash,
    path: &[Hash],
    root: &Hash,
) -> Result<(), TransparencyError> {
    let invalid = |reason| TransparencyError::InclusionProofInvalid {
        index: leaf_index,
        tree_size,
        reason,
    };
    if leaf_index >= tree_size {
        return Err(TransparencyError::LeafIndexOutOfRange {
            index: leaf_index,
            tree_size,
        });
    }
    // `fn_` is the node's index at the current level, `sn` the last index there.
    let (mut fn_, mut sn) = (leaf_index, tree_size - 1);
    let mut r = *leaf_hash;
    for p in path {
        if sn == 0 {
            return Err(invalid(
                "the proof has more hashes than the tree has levels",
            ));
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            // A rightmost node without a sibling moves up unchanged.
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(invalid(
            "the proof has fewer hashes than the tree has levels",
        ));
    }
    if r != *root {
        return Err(invalid("the computed root differs from the expected root"));
    }
    Ok(())
}

/// Verifies that the tree of `old_size` entries with root `old_root` is a prefix
/// of the tree of `new_size` entries with root `new_root` (RFC 9162 §2.1.4.2).
///
/// Beyond the RFC's algorithm (defined for `0 < old_size < new_size`): equal
/// sizes need an empty proof and equal roots, and the empty tree (size 0) is a
/// prefix of every tree with an empty proof, provided `old_root` is the
/// empty-tree root.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    path: &[Hash],
) -> Result<(), TransparencyError> {
    let invalid = |reason| TransparencyError::ConsistencyProofInvalid {
        old_size,
        new_size,
        reason,
    };
    if old_size > new_size {
        return Err(TransparencyError::SizesOutOfOrder { old_size, new_size });
    }
    if old_size == new_size || old_size == 0 {
        if !path.is_empty() {
            return Err(invalid("the proof must be empty for these sizes"));
        }
        if old_size == 0 && *old_root != empty_root() {
            return Err(invalid("the old root is not the empty-tree root"));
        }
        if old_size == new_size && old_root != new_root {
            return Err(invalid("trees of equal size have different roots"));
        }
        return Ok(());
    }
    // Step 1.
    if path.is_empty() {
        return Err(invalid("the proof is empty"));
    }
    // Step 2: a power-of-two old tree is a node of the new tree, and its root is
    // the proof's implicit first hash.
    let (seed, rest) = match path.split_first() {
        _ if old_size.is_power_of_two() => (old_root, path),
        Some((first, rest)) => (first, rest),
        None => return Err(invalid("the proof is empty")),
    };
    // Steps 3–4.
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    // Steps 5–6: `fr` rebuilds the old root, `sr` the new one.
    let (mut fr, mut sr) = (*seed, *seed);
    for c in rest {
        if sn == 0 {
            return Err(invalid("the proof has more hashes than the trees need"));
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 7.
    if sn != 0 {
        return Err(invalid("the proof has fewer hashes than the trees need"));
    }
    if fr != *old_root {
        return Err(invalid(
            "the computed old root differs from the expected one",
        ));
    }
    if sr != *new_root {
        return Err(invalid(
            "the computed new root differs from the expected one",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transparency::hash::leaf_hash;
    use crate::transparency::tree::tests::{
        REFERENCE_LEAVES, REFERENCE_ROOTS, leaves, reference_mth, reference_tree,
    };
    use proptest::prelude::*;

    fn h(hex: &str) -> Hash {
        Hash::from_hex(hex).unwrap()
    }

    fn reference_root(size: u64) -> Hash {
        h(REFERENCE_ROOTS[size as usize - 1])
    }

    fn flip(hash: &Hash, bit: usize) -> Hash {
        let mut bytes = *hash.as_bytes();
        bytes[bit / 8 % 32] ^= 1 << (bit % 8);
        Hash::from(bytes)
    }

    /// `PATH` of RFC 9162 §2.1.3.1, recursively, as the RFC writes it.
    fn reference_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = split_point(n);
        if m < k {
            let mut p = reference_path(m, &leaves[..k]);
            p.push(reference_mth(&leaves[k..]));
            p
        } else {
            let mut p = reference_path(m - k, &leaves[k..]);
            p.push(reference_mth(&leaves[..k]));
            p
        }
    }

    /// `SUBPROOF` of RFC 9162 §2.1.4.1, recursively, as the RFC writes it.
    fn reference_subproof(m: usize, leaves: &[Hash], complete: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if complete {
                Vec::new()
            } else {
                vec![reference_mth(leaves)]
            };
        }
        let k = split_point(n);
        if m <= k {
            let mut p = reference_subproof(m, &leaves[..k], complete);
            p.push(reference_mth(&leaves[k..]));
            p
        } else {
            let mut p = reference_subproof(m - k, &leaves[k..], false);
            p.push(reference_mth(&leaves[..k]));
            p
        }
    }

    // Inclusion vectors of transparency-dev/merkle `proof/verify_test.go`:
    // (1-based leaf, tree size, proof).
    const INCLUSION_VECTORS: [(u64, u64, &[&str]); 4] = [
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            3,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            2,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];

    // Consistency vectors of the same file: (old size, new size, proof).
    const CONSISTENCY_VECTORS: [(u64, u64, &[&str]); 4] = [
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            6,
            7,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];

    #[test]
    fn inclusion_proofs_match_the_reference_vectors() {
        let tree = reference_tree();
        for (leaf, size, expected) in INCLUSION_VECTORS {
            let index = leaf - 1;
            let expected: Vec<Hash> = expected.iter().map(|x| h(x)).collect();
            assert_eq!(
                tree.inclusion_proof(index, size).unwrap(),
                expected,
                "leaf {index} of {size}"
            );
            let leaf = leaf_hash(REFERENCE_LEAVES[index as usize]);
            let root = reference_root(size);
            verify_inclusion(index, size, &leaf, &expected, &root).unwrap();
            // The corruptions transparency-dev checks.
            let some_hash = h("abacaba000000000000000000000000000000000000000000060061e00123456");
            let mut probes: Vec<(u64, u64, Hash, Vec<Hash>, Hash)> = vec![
                (index.wrapping_sub(1), size, leaf, expected.clone(), root),
                (index + 1, size, leaf, expected.clone(), root),
                (index ^ 2, size, leaf, expected.clone(), root),
                (index, size * 2, leaf, expected.clone(), root),
                (index, size / 2, leaf, expected.clone(), root),
                (index, size, leaf_hash(b"WrongLeaf"), expected.clone(), root),
                (index, size, leaf, expected.clone(), empty_root()),
                (index, size, leaf, expected.clone(), some_hash),
                (index, size, leaf, [&expected[..], &[root]].concat(), root),
                (index, size, leaf, [&[root], &expected[..]].concat(), root),
                (
                    index,
                    size,
                    leaf,
                    expected[..expected.len() - 1].to_vec(),
                    root,
                ),
            ];
            for i in 0..expected.len() {
                let mut wrong = expected.clone();
                wrong[i] = flip(&wrong[i], 3);
                probes.push((index, size, leaf, wrong, root));
            }
            for (n, (i, s, l, p, r)) in probes.iter().enumerate() {
                assert!(
                    verify_inclusion(*i, *s, l, p, r).is_err(),
                    "probe {n} verified for leaf {index} of {size}"
                );
            }
        }
    }

    #[test]
    fn consistency_proofs_match_the_reference_vectors() {
        let tree = reference_tree();
        for (old, new, expected) in CONSISTENCY_VECTORS {
            let expected: Vec<Hash> = expected.iter().map(|x| h(x)).collect();
            assert_eq!(
                tree.consistency_proof(old, new).unwrap(),
                expected,
                "{old} -> {new}"
            );
            let (r1, r2) = (reference_root(old), reference_root(new));
            verify_consistency(old, new, &r1, &r2, &expected).unwrap();
            let mut probes: Vec<(u64, u64, Hash, Hash, Vec<Hash>)> = vec![
                (old - 1, new, r1, r2, expected.clone()),
                (old + 1, new, r1, r2, expected.clone()),
                (old ^ 2, new, r1, r2, expected.clone()),
                (old, new * 2, r1, r2, expected.clone()),
                (old, new / 2, r1, r2, expected.clone()),
                (old, new, leaf_hash(b"WrongRoot"), r2, expected.clone()),
                (old, new, r1, leaf_hash(b"WrongRoot"), expected.clone()),
                (old, new, r2, r1, expected.clone()),
                (old, new, r1, r2, Vec::new()),
                (old, new, r1, r2, [&expected[..], &[r1]].concat()),
                (old, new, r1, r2, [&expected[..], &[r2]].concat()),
                (old, new, r1, r2, [&[r1], &expected[..]].concat()),
                (old, new, r1, r2, [&[r2], &expected[..]].concat()),
                (old, new, r1, r2, [&expected[..1], &expected[..]].concat()),
                (old, new, r1, r2, expected[..expected.len() - 1].to_vec()),
            ];
            for i in 0..expected.len() {
                let mut wrong = expected.clone();
                wrong[i] = flip(&wrong[i], 4);
                probes.push((old, new, r1, r2, wrong));
            }
            for (n, (o, s, a, b, p)) in probes.iter().enumerate() {
                assert!(
                    verify_consistency(*o, *s, a, b, p).is_err(),
                    "probe {n} verified for {old} -> {new}"
                );
            }
        }
    }

    #[test]
    fn trivial_consistency_cases() {
        let tree = reference_tree();
        let r3 = tree.root_at(3).unwrap();
        assert_eq!(tree.consistency_proof(0, 5).unwrap(), Vec::<Hash>::new());
        assert_eq!(tree.consistency_proof(3, 3).unwrap(), Vec::<Hash>::new());
        verify_consistency(0, 0, &empty_root(), &empty_root(), &[]).unwrap();
        verify_consistency(0, 8, &empty_root(), &reference_root(8), &[]).unwrap();
        verify_consistency(3, 3, &r3, &r3, &[]).unwrap();
        // The empty tree's root is fixed; equal sizes need equal roots and no proof.
        assert!(verify_consistency(0, 8, &r3, &reference_root(8), &[]).is_err());
        assert!(verify_consistency(3, 3, &r3, &reference_root(3 + 1), &[]).is_err());
        assert!(verify_consistency(3, 3, &r3, &r3, &[r3]).is_err());
        assert!(verify_consistency(0, 1, &empty_root(), &r3, &[r3]).is_err());
        assert!(matches!(
            verify_consistency(2, 1, &r3, &r3, &[]),
            Err(TransparencyError::SizesOutOfOrder {
                old_size: 2,
                new_size: 1
            })
        ));
        assert!(matches!(
            tree.consistency_proof(5, 4),
            Err(TransparencyError::SizesOutOfOrder { .. })
        ));
        assert!(matches!(
            tree.consistency_proof(1, 9),
            Err(TransparencyError::TreeSizeOutOfRange {
                requested: 9,
                available: 8
            })
        ));
    }

    #[test]
    fn inclusion_edge_cases() {
        let tree = reference_tree();
        let leaf0 = leaf_hash(REFERENCE_LEAVES[0]);
        // A one-entry tree: the proof is empty and the root is the leaf hash.
        assert!(tree.inclusion_proof(0, 1).unwrap().is_empty());
        verify_inclusion(0, 1, &leaf0, &[], &leaf0).unwrap();
        assert!(verify_inclusion(0, 1, &leaf0, &[], &empty_root()).is_err());
        for (index, size) in [(0, 0), (1, 0), (2, 1), (8, 8)] {
            assert!(matches!(
                verify_inclusion(index, size, &leaf0, &[], &leaf0),
                Err(TransparencyError::LeafIndexOutOfRange { .. })
            ));
        }
        assert!(matches!(
            tree.inclusion_proof(8, 8),
            Err(TransparencyError::LeafIndexOutOfRange {
                index: 8,
                tree_size: 8
            })
        ));
        assert!(matches!(
            tree.inclusion_proof(0, 9),
            Err(TransparencyError::TreeSizeOutOfRange { .. })
        ));
        let err = verify_inclusion(
            6,
            8,
            &leaf0,
            &tree.inclusion_proof(6, 8).unwrap(),
            &tree.root(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("leaf 6 in a tree of size 8"),
            "{err}"
        );
    }

    /// Every proof of every tree up to 70 entries equals the RFC's recursive
    /// definition and verifies; every inclusion proof fails at every other index.
    #[test]
    fn all_small_trees_match_the_rfc_definitions() {
        let hashes = leaves(70);
        let tree = MerkleTree::from_leaf_hashes(hashes.iter().copied());
        for n in 1..=70usize {
            let root = tree.root_at(n as u64).unwrap();
            for m in 0..n {
                let path = tree.inclusion_proof(m as u64, n as u64).unwrap();
                assert_eq!(path, reference_path(m, &hashes[..n]), "PATH({m}, {n})");
                verify_inclusion(m as u64, n as u64, &hashes[m], &path, &root).unwrap();
                for other in (0..n).filter(|&o| o != m) {
                    assert!(
                        verify_inclusion(other as u64, n as u64, &hashes[m], &path, &root).is_err(),
                        "leaf {m} of {n} verified at index {other}"
                    );
                }
            }
            for m in 1..n {
                let proof = tree.consistency_proof(m as u64, n as u64).unwrap();
                assert_eq!(
                    proof,
                    reference_subproof(m, &hashes[..n], true),
                    "PROOF({m}, {n})"
                );
                let old_root = tree.root_at(m as u64).unwrap();
                verify_consistency(m as u64, n as u64, &old_root, &root, &proof).unwrap();
            }
        }
    }

    fn tree_and_leaves() -> (MerkleTree, Vec<Hash>) {
        let hashes = leaves(301);
        (MerkleTree::from_leaf_hashes(hashes.iter().copied()), hashes)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn inclusion_proofs_verify_and_bind_leaf_index_and_root(
            (n, m) in (1usize..300).prop_flat_map(|n| (Just(n), 0..n)),
            bit in 0usize..256,
        ) {
            let (tree, hashes) = tree_and_leaves();
            let (size, index) = (n as u64, m as u64);
            let root = tree.root_at(size).unwrap();
            let path = tree.inclusion_proof(index, size).unwrap();
            prop_assert!(verify_inclusion(index, size, &hashes[m], &path, &root).is_ok());
            // Wrong leaf: another entry's hash, or a flipped bit.
            prop_assert!(verify_inclusion(index, size, &hashes[m + 1], &path, &root).is_err());
            prop_assert!(verify_inclusion(index, size, &flip(&hashes[m], bit), &path, &root).is_err());
            // Wrong index.
            for other in [index.wrapping_sub(1), index + 1, index ^ 1, index ^ 2] {
                if other != index {
                    prop_assert!(verify_inclusion(other, size, &hashes[m], &path, &root).is_err());
                }
            }
            // Wrong root: a flipped bit, or the genuine root of another size.
            prop_assert!(verify_inclusion(index, size, &hashes[m], &path, &flip(&root, bit)).is_err());
            for other in [size - 1, size + 1] {
                if other > index {
                    let other_root = tree.root_at(other).unwrap();
                    prop_assert!(verify_inclusion(index, other, &hashes[m], &path, &other_root).is_err());
                }
            }
            // A corrupted, truncated or extended path.
            for i in 0..path.len() {
                let mut wrong = path.clone();
                wrong[i] = flip(&wrong[i], bit);
                prop_assert!(verify_inclusion(index, size, &hashes[m], &wrong, &root).is_err());
            }
            if let Some((_, shorter)) = path.split_last() {
                prop_assert!(verify_inclusion(index, size, &hashes[m], shorter, &root).is_err());
            }
            let longer = [&path[..], &[root]].concat();
            prop_assert!(verify_inclusion(index, size, &hashes[m], &longer, &root).is_err());
        }

        #[test]
        fn consistency_proofs_verify_and_bind_both_roots(
            (n, m) in (1usize..300).prop_flat_map(|n| (Just(n), 0..=n)),
            bit in 0usize..256,
        ) {
            let (tree, _) = tree_and_leaves();
            let (new, old) = (n as u64, m as u64);
            let (old_root, new_root) = (tree.root_at(old).unwrap(), tree.root_at(new).unwrap());
            let proof = tree.consistency_proof(old, new).unwrap();
            prop_assert!(verify_consistency(old, new, &old_root, &new_root, &proof).is_ok());
            // A wrong old root never verifies (the empty tree's root is fixed too).
            prop_assert!(verify_consistency(old, new, &flip(&old_root, bit), &new_root, &proof).is_err());
            // Nor does a wrong new root, unless the old tree is empty: the empty
            // tree is a prefix of every tree, whatever its root.
            if old > 0 {
                prop_assert!(verify_consistency(old, new, &old_root, &flip(&new_root, bit), &proof).is_err());
                let later_root = tree.root_at(new + 1).unwrap();
                prop_assert!(verify_consistency(old, new, &old_root, &later_root, &proof).is_err());
            }
            if old > 0 && old < new {
                let other_old = tree.root_at(old - 1).unwrap();
                prop_assert!(verify_consistency(old, new, &other_old, &new_root, &proof).is_err());
                prop_assert!(verify_consistency(old, new, &new_root, &old_root, &proof).is_err());
                // Nor does a corrupted, truncated, extended or empty proof.
                for i in 0..proof.len() {
                    let mut wrong = proof.clone();
                    wrong[i] = flip(&wrong[i], bit);
                    prop_assert!(verify_consistency(old, new, &old_root, &new_root, &wrong).is_err());
                }
                let shorter = &proof[..proof.len() - 1];
                prop_assert!(verify_consistency(old, new, &old_root, &new_root, shorter).is_err());
                let longer = [&proof[..], &[new_root]].concat();
                prop_assert!(verify_consistency(old, new, &old_root, &new_root, &longer).is_err());
                prop_assert!(verify_consistency(old, new, &old_root, &new_root, &[]).is_err());
            }
        }
    }
}
