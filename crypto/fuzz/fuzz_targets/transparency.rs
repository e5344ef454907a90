//! The audit log's transparency parsers and proof checks
//! (`cohort_crypto::transparency`) on fuzzed input: `SignedTreeHead::from_bytes`
//! and `verify`, `Hash::from_hex`, and `verify_inclusion` / `verify_consistency`
//! with fuzzed indices, sizes, leaves, roots and proofs against a real tree of up
//! to 40 entries.
//!
//! Checks that nothing panics; that a parsed tree head re-encodes to the same
//! bytes; that genuine proofs verify; and soundness: a proof that verifies
//! against a real root proves only the truth (the leaf really is at that index;
//! the old root really is the root of that prefix), whatever the proof says.
#![no_main]

use cohort_crypto::transparency::{
    Hash, LogIdentity, MerkleTree, SignedTreeHead, verify_consistency, verify_inclusion,
};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    match u.int_in_range(0..=2)? {
        0 => parsers(u),
        1 => {
            let tree = tree(u)?;
            inclusion(u, &tree)
        }
        _ => {
            let tree = tree(u)?;
            consistency(u, &tree)
        }
    }
}

fn parsers(u: &mut Unstructured<'_>) -> Result<()> {
    let head_bytes: &[u8] = u.arbitrary()?;
    if let Ok(head) = SignedTreeHead::from_bytes(head_bytes) {
        assert_eq!(&head.to_bytes()[..], head_bytes);
        let federation_id: &str = u.arbitrary()?;
        let public_key: &[u8] = u.arbitrary()?;
        let _ = head.verify(&LogIdentity::new(federation_id, public_key));
    }
    let hex: &str = u.arbitrary()?;
    if let Ok(hash) = Hash::from_hex(hex) {
        assert_eq!(hash.to_string(), hex.to_ascii_lowercase());
    }
    Ok(())
}

/// A tree of 0 to 40 distinct entries.
fn tree(u: &mut Unstructured<'_>) -> Result<MerkleTree> {
    let mut tree = MerkleTree::new();
    for i in 0..u.int_in_range(0u32..=40)? {
        tree.append(&i.to_be_bytes());
    }
    Ok(tree)
}

/// A size or index: mostly within (or just past) the tree, sometimes anything.
fn position(u: &mut Unstructured<'_>, tree: &MerkleTree) -> Result<u64> {
    if u.ratio(1, 8)? {
        u.arbitrary()
    } else {
        u.int_in_range(0..=tree.len() + 1)
    }
}

fn any_hash(u: &mut Unstructured<'_>) -> Result<Hash> {
    Ok(Hash::from_bytes(u.arbitrary()?))
}

/// The genuine proof, if there is one, or a fuzzed change of it, or fuzzed hashes.
fn proof(u: &mut Unstructured<'_>, genuine: Option<Vec<Hash>>) -> Result<(Vec<Hash>, bool)> {
    let mut path = match genuine {
        Some(path) if !u.ratio(1, 8)? => path,
        _ => {
            return Ok((
                (0..u.int_in_range(0..=8)?)
                    .map(|_| any_hash(u))
                    .collect::<Result<_>>()?,
                false,
            ));
        }
    };
    let unchanged = match u.int_in_range(0..=3)? {
        0 => true,
        1 if !path.is_empty() => {
            let at = u.choose_index(path.len())?;
            path[at] = any_hash(u)?;
            false
        }
        2 => {
            let at = u.int_in_range(0..=path.len())?;
            path.insert(at, any_hash(u)?);
            false
        }
        _ => {
            path.pop();
            false
        }
    };
    Ok((path, unchanged))
}

/// A real root if `size` is a prefix of the tree, else a fuzzed one.
fn root(u: &mut Unstructured<'_>, tree: &MerkleTree, size: u64) -> Result<(Hash, bool)> {
    match tree.root_at(size) {
        Ok(root) if !u.ratio(1, 8)? => Ok((root, true)),
        _ => Ok((any_hash(u)?, false)),
    }
}

fn inclusion(u: &mut Unstructured<'_>, tree: &MerkleTree) -> Result<()> {
    let index = position(u, tree)?;
    let size = position(u, tree)?;
    let real_leaf = tree.leaf_hash(index);
    let (leaf, leaf_is_real) = match real_leaf {
        Some(leaf) if !u.ratio(1, 8)? => (leaf, true),
        _ => (any_hash(u)?, false),
    };
    let (path, path_is_genuine) = proof(u, tree.inclusion_proof(index, size).ok())?;
    let (root, root_is_real) = root(u, tree, size)?;
    let verified = verify_inclusion(index, size, &leaf, &path, &root);
    if leaf_is_real && path_is_genuine && root_is_real {
        assert!(
            verified.is_ok(),
            "a genuine inclusion proof failed: {verified:?}"
        );
    }
    if verified.is_ok() && root_is_real {
        assert!(index < size);
        assert!(
            real_leaf == Some(leaf),
            "entry {index} proven to be another leaf"
        );
    }
    Ok(())
}

fn consistency(u: &mut Unstructured<'_>, tree: &MerkleTree) -> Result<()> {
    let old_size = position(u, tree)?;
    let new_size = position(u, tree)?;
    let (path, path_is_genuine) = proof(u, tree.consistency_proof(old_size, new_size).ok())?;
    let (old_root, old_is_real) = root(u, tree, old_size)?;
    let (new_root, new_is_real) = root(u, tree, new_size)?;
    let verified = verify_consistency(old_size, new_size, &old_root, &new_root, &path);
    if path_is_genuine && old_is_real && new_is_real {
        assert!(
            verified.is_ok(),
            "a genuine consistency proof failed: {verified:?}"
        );
    }
    if verified.is_ok() && new_is_real {
        assert!(old_size <= new_size);
        assert!(
            old_is_real || tree.root_at(old_size).is_ok_and(|real| real == old_root),
            "a prefix of {new_size} entries proven to have a root it does not have"
        );
    }
    Ok(())
}
