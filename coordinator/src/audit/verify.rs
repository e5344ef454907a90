//! Checking a stored audit log: every entry in its place, every signed tree head
//! genuine and matching the entries it covers (RFC 9162 §2.1.1 tree hashes).
//! The first inconsistency is reported with the entry it points to.

use cohort_crypto::transparency::{Hash, LogIdentity, MerkleTree, SignedTreeHead, leaf_hash};

use super::{AuditEntry, AuditError};
use crate::store::Store;

/// Why a stored log does not verify, naming the first entry concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditViolation {
    /// No entry is stored at `seq`.
    #[error("entry {seq} is missing")]
    Missing {
        /// The missing entry.
        seq: u64,
    },
    /// The entry at `seq` does not decode.
    #[error("entry {seq} is unreadable: {reason}")]
    Malformed {
        /// The entry.
        seq: u64,
        /// Why it does not decode.
        reason: String,
    },
    /// The entry stored at `seq` names another position.
    #[error("entry {seq} is out of place: it records itself as entry {claimed}")]
    OutOfPlace {
        /// Where it is stored.
        seq: u64,
        /// The position it names.
        claimed: u64,
    },
    /// The first head that no longer matches covers entries `seq..tree_size`
    /// beyond the previous one: exactly entry `seq` for a log signed entry by
    /// entry, as the coordinator signs it.
    #[error("{}", changed(*seq, *tree_size))]
    Changed {
        /// The first entry the head covers beyond the previous head.
        seq: u64,
        /// The head's size.
        tree_size: u64,
    },
    /// A signed head covers more entries than are stored.
    #[error("the log was truncated: a signed head covers {tree_size} entries, {stored} are stored")]
    Truncated {
        /// The head's size.
        tree_size: u64,
        /// How many entries are stored.
        stored: u64,
    },
    /// A stored tree head does not parse, is filed under another size, does not
    /// follow the previous head, or its signature or root does not match.
    #[error("the tree head over {tree_size} entries is unreadable or wrongly signed: {reason}")]
    BadHead {
        /// The head's size.
        tree_size: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// Entries after the last signed head.
    #[error("entries {from}.. are not covered by any signed tree head")]
    Unsigned {
        /// The first entry no head covers.
        from: u64,
    },
    /// The log does not extend a head the auditor saw earlier.
    #[error("the log does not extend the tree head seen earlier (size {seen_size}): {reason}")]
    Inconsistent {
        /// The size of that head.
        seen_size: u64,
        /// Why the consistency check failed.
        reason: String,
    },
}

fn changed(seq: u64, tree_size: u64) -> String {
    let what = if tree_size == seq + 1 {
        format!("entry {seq} was changed")
    } else {
        format!("one of entries {seq}..{tree_size} was changed")
    };
    format!("{what}: the signed head over {tree_size} entries no longer matches")
}

/// A log that verified.
#[derive(Debug, Clone)]
pub struct VerifiedLog {
    /// Every entry, in log order.
    pub entries: Vec<AuditEntry>,
    /// The Merkle leaf hash of each entry.
    pub leaf_hashes: Vec<Hash>,
    /// The latest signed head (none for an empty log).
    pub head: Option<SignedTreeHead>,
    /// How many signed tree heads were checked.
    pub heads_checked: u64,
}

impl VerifiedLog {
    /// What `audit export --format json` writes and the console's
    /// `/audit/export` serves: the latest signed head (size, time, root and
    /// the encoded signed head, hex) and every entry.
    pub fn export_json(&self) -> serde_json::Value {
        let head = self.head.as_ref().map(|h| {
            serde_json::json!({
                "tree_size": h.tree_size,
                "timestamp_ms": h.timestamp_ms,
                "root_hash": h.root_hash.to_string(),
                "signed_tree_head": hex::encode(h.to_bytes()),
            })
        });
        serde_json::json!({ "head": head, "entries": self.entries })
    }
}

/// The stored entries, decoded and checked to be in place, with their leaf hashes.
fn parse_entries(
    stored: &[(u64, Vec<u8>)],
) -> Result<(Vec<AuditEntry>, Vec<Hash>), AuditViolation> {
    parse_entries_from(0, stored)
}

/// As [`parse_entries`], for stored entries that start at sequence `first`.
fn parse_entries_from(
    first: u64,
    stored: &[(u64, Vec<u8>)],
) -> Result<(Vec<AuditEntry>, Vec<Hash>), AuditViolation> {
    let mut entries = Vec::with_capacity(stored.len());
    let mut leaf_hashes = Vec::with_capacity(stored.len());
    for (expected, (seq, bytes)) in (first..).zip(stored) {
        if *seq != expected {
            return Err(AuditViolation::Missing { seq: expected });
        }
        let entry: AuditEntry =
            serde_json::from_slice(bytes).map_err(|e| AuditViolation::Malformed {
                seq: *seq,
                reason: e.to_string(),
            })?;
        if entry.seq != *seq {
            return Err(AuditViolation::OutOfPlace {
                seq: *seq,
                claimed: entry.seq,
            });
        }
        leaf_hashes.push(leaf_hash(bytes));
        entries.push(entry);
    }
    Ok((entries, leaf_hashes))
}

/// The coordinator's own reading of its log (lineage, erasures): decoded and in
/// place, without the signature checks of [`verify`], which may race appends.
pub async fn stored_entries(store: &Store) -> Result<Vec<AuditEntry>, AuditError> {
    Ok(parse_entries(&store.audit_entries().await?)?.0)
}

/// The stored entries from sequence `first` on, parsed (not verified): for a
/// reader that keeps what it parsed before (the log only grows).
pub async fn stored_entries_from(store: &Store, first: u64) -> Result<Vec<AuditEntry>, AuditError> {
    let stored = store.audit_entries_in(first..u64::MAX).await?;
    Ok(parse_entries_from(first, &stored)?.0)
}

/// Verifies the stored log as `log`'s: every head must name that federation
/// and audit key and be signed with that key.
pub async fn verify(store: &Store, log: &LogIdentity) -> Result<VerifiedLog, AuditError> {
    Ok(verify_log(
        &store.audit_entries().await?,
        &store.audit_heads().await?,
        log,
    )?)
}

/// Verifies a log given as its entries `(seq, canonical bytes)` and signed
/// heads `(tree size, encoded head)`, both in order: as stored, or as the
/// auditor API served them ([`super::remote`]).
pub fn verify_log(
    stored_entries: &[(u64, Vec<u8>)],
    stored_heads: &[(u64, Vec<u8>)],
    log: &LogIdentity,
) -> Result<VerifiedLog, AuditViolation> {
    let (entries, leaf_hashes) = parse_entries(stored_entries)?;
    let tree = MerkleTree::from_leaf_hashes(leaf_hashes.iter().copied());
    let signatures = check_signatures(stored_heads, log);
    let mut covered = 0u64;
    let mut latest = None;
    let mut heads_checked = 0;
    for (&(tree_size, _), signature) in stored_heads.iter().zip(signatures) {
        let bad = |reason: String| AuditViolation::BadHead { tree_size, reason };
        let head = signature.map_err(bad)?;
        if head.tree_size != tree_size {
            return Err(bad(format!("it is filed under size {tree_size}")));
        }
        if heads_checked > 0 && tree_size <= covered {
            return Err(bad(format!("it follows the head over {covered} entries")));
        }
        if tree_size > tree.len() {
            return Err(AuditViolation::Truncated {
                tree_size,
                stored: tree.len(),
            });
        }
        let root = tree.root_at(tree_size).map_err(|e| bad(e.to_string()))?;
        if root != head.root_hash {
            // The heads before this one matched, so the change is among the
            // entries this head added.
            return Err(AuditViolation::Changed {
                seq: covered,
                tree_size,
            });
        }
        covered = tree_size;
        latest = Some(head);
        heads_checked += 1;
    }
    if covered < tree.len() {
        return Err(AuditViolation::Unsigned { from: covered });
    }
    Ok(VerifiedLog {
        entries,
        leaf_hashes,
        head: latest,
        heads_checked,
    })
}

/// Each head parsed and its signature checked, in order, on every core: with a
/// head per entry, Ed25519 verification is most of a log's checking time.
fn check_signatures(
    heads: &[(u64, Vec<u8>)],
    log: &LogIdentity,
) -> Vec<Result<SignedTreeHead, String>> {
    let check = |(_, bytes): &(u64, Vec<u8>)| {
        let head = SignedTreeHead::from_bytes(bytes).map_err(|e| e.to_string())?;
        head.verify(log).map_err(|e| e.to_string())?;
        Ok(head)
    };
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = heads.len().div_ceil(threads).max(1024);
    std::thread::scope(|scope| {
        let workers: Vec<_> = heads
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(check).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| {
                // A worker panics only if verification itself panicked.
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Checks that a verified log extends a tree head an auditor saw earlier
/// (`seen_size` entries with root `seen_root`), with an RFC 9162 §2.1.4
/// consistency proof from that head to the log's current tree: nothing the
/// auditor saw was rewritten or dropped since.
pub fn check_consistency(
    log: &VerifiedLog,
    seen_size: u64,
    seen_root: &Hash,
) -> Result<(), AuditViolation> {
    let inconsistent = |reason: String| AuditViolation::Inconsistent { seen_size, reason };
    let tree = MerkleTree::from_leaf_hashes(log.leaf_hashes.iter().copied());
    let proof = tree
        .consistency_proof(seen_size, tree.len())
        .map_err(|e| inconsistent(e.to_string()))?;
    cohort_crypto::transparency::verify_consistency(
        seen_size,
        tree.len(),
        seen_root,
        &tree.root(),
        &proof,
    )
    .map_err(|e| inconsistent(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tests::FEDERATION;
    use crate::audit::{AuditEvent, AuditLog};
    use crate::store::SledStore;

    async fn log_with(entries: u64) -> (tempfile::TempDir, Store, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::from(SledStore::open(&dir.path().join("state")).unwrap());
        let log = AuditLog::open(&store, &dir.path().join("audit.key"), FEDERATION)
            .await
            .unwrap();
        for round in 0..entries {
            log.append(
                &store,
                vec![AuditEvent::RoundFailed {
                    round,
                    attempt: 1,
                    reason: format!("test entry {round}"),
                }],
            )
            .await
            .unwrap();
        }
        (dir, store, log)
    }

    async fn violation(store: &Store, log: &AuditLog) -> AuditViolation {
        match verify(store, &log.identity()).await {
            Err(AuditError::Tampered(violation)) => violation,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    fn named_entry(violation: &AuditViolation) -> Option<u64> {
        match violation {
            AuditViolation::Missing { seq }
            | AuditViolation::Malformed { seq, .. }
            | AuditViolation::OutOfPlace { seq, .. }
            | AuditViolation::Changed { seq, .. } => Some(*seq),
            _ => None,
        }
    }

    #[tokio::test]
    async fn an_untouched_log_verifies_and_reopens() {
        let (dir, store, log) = log_with(7).await;
        let verified = verify(&store, &log.identity()).await.unwrap();
        assert_eq!(verified.entries.len(), 7);
        assert_eq!(verified.heads_checked, 7);
        assert_eq!(verified.head.unwrap().tree_size, 7);
        // Reopening rebuilds the same tree and appends continue the sequence.
        drop(log);
        let log = AuditLog::open(&store, &dir.path().join("audit.key"), FEDERATION)
            .await
            .unwrap();
        let head = log
            .append(
                &store,
                vec![AuditEvent::FederationStopped {
                    reason: "done".into(),
                }],
            )
            .await
            .unwrap();
        assert_eq!(head.tree_size, 8);
        assert_eq!(
            verify(&store, &log.identity()).await.unwrap().entries[7].seq,
            7
        );
    }

    #[tokio::test]
    async fn a_log_is_consistent_with_its_earlier_heads_only() {
        let (_dir, store, log) = log_with(7).await;
        let verified = verify(&store, &log.identity()).await.unwrap();
        let tree = MerkleTree::from_leaf_hashes(verified.leaf_hashes.iter().copied());
        for seen in [0, 1, 4, 7] {
            check_consistency(&verified, seen, &tree.root_at(seen).unwrap()).unwrap();
        }
        let other_root = tree.root_at(3).unwrap();
        assert!(matches!(
            check_consistency(&verified, 4, &other_root),
            Err(AuditViolation::Inconsistent { seen_size: 4, .. })
        ));
        assert!(matches!(
            check_consistency(&verified, 9, &tree.root()),
            Err(AuditViolation::Inconsistent { seen_size: 9, .. })
        ));
    }

    #[tokio::test]
    async fn changing_any_byte_of_any_entry_names_that_entry() {
        let (_dir, store, log) = log_with(6).await;
        let (entries, _) = store.as_sled().unwrap().audit_trees();
        for seq in 0..6u64 {
            let key = seq.to_be_bytes();
            let original = entries.get(key).unwrap().unwrap();
            for position in [0, original.len() / 2, original.len() - 2] {
                let mut changed = original.to_vec();
                changed[position] ^= 0x01;
                entries.insert(key, changed).unwrap();
                let found = violation(&store, &log).await;
                assert_eq!(named_entry(&found), Some(seq), "byte {position}: {found}");
            }
            entries.insert(key, original).unwrap();
        }
        verify(&store, &log.identity()).await.unwrap();
    }

    #[tokio::test]
    async fn deleting_reordering_and_truncating_are_detected() {
        let (_dir, store, log) = log_with(6).await;
        let (entries, heads) = store.as_sled().unwrap().audit_trees();
        let get = |seq: u64| entries.get(seq.to_be_bytes()).unwrap().unwrap();

        // Deleting entry 3.
        let third = get(3);
        entries.remove(3u64.to_be_bytes()).unwrap();
        assert_eq!(
            violation(&store, &log).await,
            AuditViolation::Missing { seq: 3 }
        );
        entries.insert(3u64.to_be_bytes(), third).unwrap();

        // Swapping entries 1 and 4.
        let (one, four) = (get(1), get(4));
        entries.insert(1u64.to_be_bytes(), four.clone()).unwrap();
        entries.insert(4u64.to_be_bytes(), one.clone()).unwrap();
        assert_eq!(
            violation(&store, &log).await,
            AuditViolation::OutOfPlace { seq: 1, claimed: 4 }
        );
        entries.insert(1u64.to_be_bytes(), one).unwrap();
        entries.insert(4u64.to_be_bytes(), four).unwrap();

        // Truncating the entries but not the heads.
        let last = get(5);
        entries.remove(5u64.to_be_bytes()).unwrap();
        assert_eq!(
            violation(&store, &log).await,
            AuditViolation::Truncated {
                tree_size: 6,
                stored: 5
            }
        );
        entries.insert(5u64.to_be_bytes(), last).unwrap();

        // A forged head signature.
        let mut head = heads.get(4u64.to_be_bytes()).unwrap().unwrap().to_vec();
        let end = head.len() - 1;
        head[end] ^= 0x80;
        heads.insert(4u64.to_be_bytes(), head).unwrap();
        assert!(matches!(
            violation(&store, &log).await,
            AuditViolation::BadHead { tree_size: 4, .. }
        ));
    }
}
