//! The tree head an auditor saw last, kept in a small JSON file between checks
//! (what a Certificate Transparency monitor keeps, RFC 9162 §8.3): every later
//! check must prove, with a consistency proof, that the log extends it. So a
//! coordinator cannot rewrite or drop entries an auditor has seen, nor swap its
//! audit key or pass another federation's log off as this one, without the next
//! check failing, even if it re-signs every head.
//!
//! The file keeps the signed head itself, so two auditors can compare what they
//! were shown ([`compare`], `cohort-coordinator audit compare-heads`): two heads
//! of one log (same federation, same key) that no single log can have produced
//! (equal sizes with different roots, or a smaller head that is not a prefix of
//! the log the larger came from) are a *split view*, signed evidence that the
//! coordinator showed different logs to different parties.

use std::path::Path;

use cohort_crypto::transparency::{Hash, LogIdentity, MerkleTree, SignedTreeHead};
use serde::{Deserialize, Serialize};

use super::{AuditViolation, VerifiedLog, check_consistency};

/// Why the log cannot be checked against the tree head seen last, or two seen
/// heads do not agree.
#[derive(Debug, thiserror::Error)]
pub enum SeenHeadError {
    /// The seen-head file could not be read, parsed or written.
    #[error("seen-head file {path}: {reason}")]
    File {
        /// Its path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The log's heads are signed with another key than the head seen last.
    #[error("the log is signed with audit key {now}, but the head seen earlier with {seen}")]
    KeyChanged {
        /// The key of the head seen last (hex).
        seen: String,
        /// The key the log is signed with now (hex).
        now: String,
    },
    /// The log is another federation's than the head seen last.
    #[error("the log is federation {now:?}'s, but the head seen earlier is {seen:?}'s")]
    FederationChanged {
        /// The federation of the head seen last.
        seen: String,
        /// The federation of the log now.
        now: String,
    },
    /// A seen head's signature does not verify as its log's.
    #[error("the seen head of size {tree_size} does not verify: {reason}")]
    BadSignature {
        /// The head's size.
        tree_size: u64,
        /// Why.
        reason: String,
    },
    /// Two seen heads are of different logs (federation or audit key).
    #[error("the heads are of different logs: {a} and {b}")]
    DifferentLogs {
        /// The first head's log (federation and key).
        a: String,
        /// The second head's log.
        b: String,
    },
    /// Two heads of one log that no single log can have produced.
    #[error("split view: {reason}")]
    SplitView {
        /// What disagrees.
        reason: String,
    },
    /// The log does not extend the head seen last.
    #[error(transparent)]
    Inconsistent(#[from] AuditViolation),
}

/// A verified tree head: its log, size and root, and the signed head itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenHead {
    /// The federation whose log it is.
    pub federation_id: String,
    /// How many entries the head covers.
    pub tree_size: u64,
    /// The Merkle root over those entries.
    pub root_hash: Hash,
    /// The Ed25519 key that signed the head.
    pub public_key: Vec<u8>,
    /// The signed head (none for an empty log, which has none; a file
    /// written by hand may leave it out, and is then no evidence to others).
    pub signed_tree_head: Option<SignedTreeHead>,
}

/// The file's form: hex for hashes, keys and the signed head.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeenHeadFile {
    federation_id: String,
    tree_size: u64,
    root_hash: String,
    public_key: String,
    #[serde(default)]
    signed_tree_head: Option<String>,
}

/// What [`compare`] found of two heads of the same log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// The smaller head is a prefix of the larger: equal heads, or both shown
    /// consistent with the log given.
    Consistent {
        /// The smaller size.
        smaller: u64,
        /// The larger size.
        larger: u64,
    },
    /// Different sizes and no log that proves one a prefix of the other.
    Undetermined {
        /// Why it cannot be told.
        reason: String,
    },
}

impl SeenHead {
    /// The head of `log`, verified as `identity`'s (an empty log's root for an
    /// empty one).
    pub fn of(log: &VerifiedLog, identity: &LogIdentity) -> Self {
        let (tree_size, root_hash) = match &log.head {
            Some(head) => (head.tree_size, head.root_hash),
            None => (0, MerkleTree::new().root()),
        };
        Self {
            federation_id: identity.federation_id().to_owned(),
            tree_size,
            root_hash,
            public_key: identity.public_key().to_vec(),
            signed_tree_head: log.head,
        }
    }

    /// The log this head belongs to.
    pub fn identity(&self) -> LogIdentity {
        LogIdentity::new(&self.federation_id, &self.public_key)
    }

    /// The head kept at `path`, or `None` when there is no file yet.
    pub fn load(path: &Path) -> Result<Option<Self>, SeenHeadError> {
        let error = |reason: String| SeenHeadError::File {
            path: path.display().to_string(),
            reason,
        };
        let bytes = match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(error(e.to_string())),
            Ok(bytes) => bytes,
        };
        let file: SeenHeadFile =
            serde_json::from_slice(&bytes).map_err(|e| error(e.to_string()))?;
        let signed_tree_head = match &file.signed_tree_head {
            Some(text) => {
                let bytes =
                    hex::decode(text).map_err(|e| error(format!("signed_tree_head: {e}")))?;
                Some(
                    SignedTreeHead::from_bytes(&bytes)
                        .map_err(|e| error(format!("signed_tree_head: {e}")))?,
                )
            }
            None => None,
        };
        let head = Self {
            federation_id: file.federation_id,
            tree_size: file.tree_size,
            root_hash: Hash::from_hex(&file.root_hash)
                .map_err(|e| error(format!("root_hash: {e}")))?,
            public_key: hex::decode(&file.public_key)
                .map_err(|e| error(format!("public_key: {e}")))?,
            signed_tree_head,
        };
        head.check_fields().map_err(error)?;
        Ok(Some(head))
    }

    /// The size and root must be the signed head's, when the file keeps one.
    fn check_fields(&self) -> Result<(), String> {
        match &self.signed_tree_head {
            Some(head) if head.tree_size != self.tree_size || head.root_hash != self.root_hash => {
                Err("tree_size and root_hash are not the signed head's".into())
            }
            _ => Ok(()),
        }
    }

    /// Checks the signed head's signature as its log's (an empty head has none).
    pub fn verify_signature(&self) -> Result<(), SeenHeadError> {
        match &self.signed_tree_head {
            Some(head) => head
                .verify(&self.identity())
                .map_err(|e| SeenHeadError::BadSignature {
                    tree_size: self.tree_size,
                    reason: e.to_string(),
                }),
            None => Ok(()),
        }
    }

    /// Writes the head to `path`, replacing the old one only once the new one
    /// is complete (written beside it, then renamed).
    pub fn save(&self, path: &Path) -> Result<(), SeenHeadError> {
        let error = |reason: String| SeenHeadError::File {
            path: path.display().to_string(),
            reason,
        };
        let file = SeenHeadFile {
            federation_id: self.federation_id.clone(),
            tree_size: self.tree_size,
            root_hash: self.root_hash.to_string(),
            public_key: hex::encode(&self.public_key),
            signed_tree_head: self.signed_tree_head.map(|h| hex::encode(h.to_bytes())),
        };
        let json = serde_json::to_vec_pretty(&file).map_err(|e| error(e.to_string()))?;
        let partial = path.with_extension("partial");
        std::fs::write(&partial, json).map_err(|e| error(e.to_string()))?;
        std::fs::rename(&partial, path).map_err(|e| error(e.to_string()))
    }

    /// Checks that `log`, verified as `identity`'s, extends this head.
    pub fn check(&self, log: &VerifiedLog, identity: &LogIdentity) -> Result<(), SeenHeadError> {
        if identity.public_key() != self.public_key.as_slice() {
            return Err(SeenHeadError::KeyChanged {
                seen: hex::encode(&self.public_key),
                now: hex::encode(identity.public_key()),
            });
        }
        if identity.federation_id() != self.federation_id {
            return Err(SeenHeadError::FederationChanged {
                seen: self.federation_id.clone(),
                now: identity.federation_id().to_owned(),
            });
        }
        Ok(check_consistency(log, self.tree_size, &self.root_hash)?)
    }
}

fn describe(identity: &LogIdentity) -> String {
    format!(
        "federation {:?} with audit key {}",
        identity.federation_id(),
        hex::encode(identity.public_key())
    )
}

/// Compares two seen heads, `a` and `b`: both must be of one log and verify,
/// and the smaller must be a prefix of the larger. Equal sizes need equal
/// roots; different sizes need `log` (verified as theirs), which both must be
/// consistent with (RFC 9162 consistency proofs). A split view is an error.
pub fn compare(
    a: &SeenHead,
    b: &SeenHead,
    log: Option<&VerifiedLog>,
) -> Result<Comparison, SeenHeadError> {
    if a.identity() != b.identity() {
        return Err(SeenHeadError::DifferentLogs {
            a: describe(&a.identity()),
            b: describe(&b.identity()),
        });
    }
    a.verify_signature()?;
    b.verify_signature()?;
    let (smaller, larger) = if a.tree_size <= b.tree_size {
        (a, b)
    } else {
        (b, a)
    };
    let sizes = (smaller.tree_size, larger.tree_size);
    if sizes.0 == sizes.1 {
        if a.root_hash != b.root_hash {
            return Err(SeenHeadError::SplitView {
                reason: format!(
                    "two heads of size {} with different roots, {} and {}",
                    a.tree_size, a.root_hash, b.root_hash
                ),
            });
        }
        return Ok(Comparison::Consistent {
            smaller: sizes.0,
            larger: sizes.1,
        });
    }
    let Some(log) = log else {
        return Ok(Comparison::Undetermined {
            reason: format!(
                "sizes {} and {} differ; give the log (--state or --remote) to prove one a prefix of the other",
                sizes.0, sizes.1
            ),
        });
    };
    let log_size = log.leaf_hashes.len() as u64;
    if log_size < sizes.1 {
        return Ok(Comparison::Undetermined {
            reason: format!(
                "the log given has {log_size} entries, fewer than the larger head's {}",
                sizes.1
            ),
        });
    }
    for head in [smaller, larger] {
        check_consistency(log, head.tree_size, &head.root_hash).map_err(|violation| {
            SeenHeadError::SplitView {
                reason: format!(
                    "the head of size {} is not a prefix of the log: {violation}",
                    head.tree_size
                ),
            }
        })?;
    }
    Ok(Comparison::Consistent {
        smaller: sizes.0,
        larger: sizes.1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tests::FEDERATION;
    use crate::audit::{AuditEvent, AuditLog, verify};
    use crate::store::SledStore;
    use crate::store::Store;

    fn event(round: u64) -> AuditEvent {
        AuditEvent::RoundFailed {
            round,
            attempt: 1,
            reason: "seen-head test".into(),
        }
    }

    #[tokio::test]
    async fn a_seen_head_accepts_the_log_that_extends_it_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::from(SledStore::open(&dir.path().join("state")).unwrap());
        let log = AuditLog::open(&store, &dir.path().join("audit.key"), FEDERATION)
            .await
            .unwrap();
        let id = log.identity();
        let empty = verify(&store, &id).await.unwrap();
        let path = dir.path().join("seen-head.json");
        assert_eq!(SeenHead::load(&path).unwrap(), None);
        SeenHead::of(&empty, &id).save(&path).unwrap();

        log.append(&store, (0..5).map(event).collect())
            .await
            .unwrap();
        let five = verify(&store, &id).await.unwrap();
        let seen = SeenHead::load(&path).unwrap().unwrap();
        seen.check(&five, &id).unwrap();
        SeenHead::of(&five, &id).save(&path).unwrap();
        let seen = SeenHead::load(&path).unwrap().unwrap();
        assert_eq!(seen.tree_size, 5);
        assert_eq!(seen.federation_id, FEDERATION);
        seen.verify_signature().unwrap();
        seen.check(&five, &id).unwrap();

        // A log that lost its last entry (heads and all), one whose root at
        // the seen size differs, another key and another federation: all refused.
        log.append(&store, vec![event(5)]).await.unwrap();
        let six = verify(&store, &id).await.unwrap();
        let four = SeenHead {
            tree_size: 4,
            ..SeenHead::of(&five, &id)
        };
        assert!(matches!(
            four.check(&six, &id),
            Err(SeenHeadError::Inconsistent(AuditViolation::Inconsistent {
                seen_size: 4,
                ..
            }))
        ));
        let ahead = SeenHead::of(&six, &id);
        assert!(ahead.check(&five, &id).is_err());
        assert!(matches!(
            seen.check(&six, &LogIdentity::new(FEDERATION, &[7; 32])),
            Err(SeenHeadError::KeyChanged { .. })
        ));
        assert!(matches!(
            seen.check(&six, &LogIdentity::new("other", id.public_key())),
            Err(SeenHeadError::FederationChanged { .. })
        ));

        // A file from before heads named their federation is refused, naming it.
        std::fs::write(&path, b"{\"tree_size\": 1}").unwrap();
        let refused = SeenHead::load(&path).unwrap_err().to_string();
        assert!(refused.contains("seen-head.json"), "{refused}");
        assert!(refused.contains("federation_id"), "{refused}");
    }

    /// A log of 7 entries in `dir`: its key, its heads at 3 and 7, and the log.
    async fn one_log(dir: &Path) -> (std::path::PathBuf, SeenHead, SeenHead, VerifiedLog) {
        let key = dir.join("audit.key");
        let store = Store::from(SledStore::open(&dir.join("state")).unwrap());
        let log = AuditLog::open(&store, &key, FEDERATION).await.unwrap();
        let id = log.identity();
        log.append(&store, (0..3).map(event).collect())
            .await
            .unwrap();
        let three = SeenHead::of(&verify(&store, &id).await.unwrap(), &id);
        log.append(&store, (3..7).map(event).collect())
            .await
            .unwrap();
        let full = verify(&store, &id).await.unwrap();
        let seven = SeenHead::of(&full, &id);
        (key, three, seven, full)
    }

    #[tokio::test]
    async fn compare_accepts_one_log_seen_at_two_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let (_, three, seven, full) = one_log(dir.path()).await;

        // The same head; a prefix, proved by the log; a prefix without the log.
        let consistent = |smaller, larger| Comparison::Consistent { smaller, larger };
        assert_eq!(compare(&seven, &seven, None).unwrap(), consistent(7, 7));
        assert_eq!(
            compare(&three, &seven, Some(&full)).unwrap(),
            consistent(3, 7)
        );
        assert_eq!(
            compare(&seven, &three, Some(&full)).unwrap(),
            consistent(3, 7)
        );
        assert!(matches!(
            compare(&three, &seven, None),
            Ok(Comparison::Undetermined { .. })
        ));
    }

    /// A log of `count` events under `federation`, with its audit key at `key`
    /// (created if missing), and its seen head.
    async fn seen_log(dir: &Path, key: &Path, federation: &str, count: u64) -> SeenHead {
        let store = Store::from(SledStore::open(&dir.join("state")).unwrap());
        let log = AuditLog::open(&store, key, federation).await.unwrap();
        log.append(&store, (100..100 + count).map(event).collect())
            .await
            .unwrap();
        SeenHead::of(
            &verify(&store, &log.identity()).await.unwrap(),
            &log.identity(),
        )
    }

    #[tokio::test]
    async fn compare_finds_split_views_and_heads_of_other_logs() {
        let dir = tempfile::tempdir().unwrap();
        let (key, three, seven, full) = one_log(dir.path()).await;

        // A fork: a second log under the same key and federation (what a
        // coordinator showing two auditors different histories signs).
        let fork_dir = tempfile::tempdir().unwrap();
        let forked_three = seen_log(fork_dir.path(), &key, FEDERATION, 3).await;
        forked_three.verify_signature().unwrap();
        assert!(matches!(
            compare(&three, &forked_three, None),
            Err(SeenHeadError::SplitView { .. })
        ));
        assert!(matches!(
            compare(&forked_three, &seven, Some(&full)),
            Err(SeenHeadError::SplitView { .. })
        ));

        // Heads of another federation's log are not comparable, and one
        // relabelled as ours no longer verifies.
        let other_dir = tempfile::tempdir().unwrap();
        let theirs = seen_log(other_dir.path(), &key, "other-federation", 3).await;
        assert!(matches!(
            compare(&three, &theirs, None),
            Err(SeenHeadError::DifferentLogs { .. })
        ));
        let relabelled = SeenHead {
            federation_id: FEDERATION.into(),
            ..theirs
        };
        assert!(matches!(
            compare(&three, &relabelled, None),
            Err(SeenHeadError::BadSignature { .. })
        ));
    }
}
