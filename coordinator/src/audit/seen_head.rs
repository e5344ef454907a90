//! The tree head an auditor saw last, kept in a small JSON file between checks
//! (what a Certificate Transparency monitor keeps, RFC 9162 §8.3): every later
//! check must prove, with a consistency proof, that the log extends it. So a
//! coordinator cannot rewrite or drop entries an auditor has seen, nor swap its
//! audit key, without the next check failing, even if it re-signs every head.

use std::path::Path;

use cohort_crypto::transparency::{Hash, MerkleTree};
use serde::{Deserialize, Serialize};

use super::{AuditViolation, VerifiedLog, check_consistency};

/// Why the log cannot be checked against the tree head seen last.
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
    /// The log does not extend the head seen last.
    #[error(transparent)]
    Inconsistent(#[from] AuditViolation),
}

/// A verified tree head: its size, root and the key that signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenHead {
    /// How many entries the head covers.
    pub tree_size: u64,
    /// The Merkle root over those entries.
    pub root_hash: Hash,
    /// The Ed25519 key that signed the head.
    pub public_key: Vec<u8>,
}

/// The file's form: hex for hashes and keys.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeenHeadFile {
    tree_size: u64,
    root_hash: String,
    public_key: String,
}

impl SeenHead {
    /// The head of a verified log (an empty log's root for an empty one).
    pub fn of(log: &VerifiedLog, public_key: &[u8]) -> Self {
        let (tree_size, root_hash) = match &log.head {
            Some(head) => (head.tree_size, head.root_hash),
            None => (0, MerkleTree::new().root()),
        };
        Self {
            tree_size,
            root_hash,
            public_key: public_key.to_vec(),
        }
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
        Ok(Some(Self {
            tree_size: file.tree_size,
            root_hash: Hash::from_hex(&file.root_hash)
                .map_err(|e| error(format!("root_hash: {e}")))?,
            public_key: hex::decode(&file.public_key)
                .map_err(|e| error(format!("public_key: {e}")))?,
        }))
    }

    /// Writes the head to `path`, replacing the old one only once the new one
    /// is complete (written beside it, then renamed).
    pub fn save(&self, path: &Path) -> Result<(), SeenHeadError> {
        let error = |reason: String| SeenHeadError::File {
            path: path.display().to_string(),
            reason,
        };
        let file = SeenHeadFile {
            tree_size: self.tree_size,
            root_hash: self.root_hash.to_string(),
            public_key: hex::encode(&self.public_key),
        };
        let json = serde_json::to_vec_pretty(&file).map_err(|e| error(e.to_string()))?;
        let partial = path.with_extension("partial");
        std::fs::write(&partial, json).map_err(|e| error(e.to_string()))?;
        std::fs::rename(&partial, path).map_err(|e| error(e.to_string()))
    }

    /// Checks that `log`, signed with `public_key`, extends this head.
    pub fn check(&self, log: &VerifiedLog, public_key: &[u8]) -> Result<(), SeenHeadError> {
        if public_key != self.public_key.as_slice() {
            return Err(SeenHeadError::KeyChanged {
                seen: hex::encode(&self.public_key),
                now: hex::encode(public_key),
            });
        }
        Ok(check_consistency(log, self.tree_size, &self.root_hash)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEvent, AuditLog, verify};
    use crate::store::Store;

    #[tokio::test]
    async fn a_seen_head_accepts_the_log_that_extends_it_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        let log = AuditLog::open(&store, &dir.path().join("audit.key")).unwrap();
        let key = log.public_key();
        let event = |round| AuditEvent::RoundFailed {
            round,
            attempt: 1,
            reason: "seen-head test".into(),
        };
        let empty = verify(&store, &key).unwrap();
        let path = dir.path().join("seen-head.json");
        assert_eq!(SeenHead::load(&path).unwrap(), None);
        SeenHead::of(&empty, &key).save(&path).unwrap();

        log.append(&store, (0..5).map(event).collect())
            .await
            .unwrap();
        let five = verify(&store, &key).unwrap();
        let seen = SeenHead::load(&path).unwrap().unwrap();
        seen.check(&five, &key).unwrap();
        SeenHead::of(&five, &key).save(&path).unwrap();
        let seen = SeenHead::load(&path).unwrap().unwrap();
        assert_eq!(seen.tree_size, 5);
        seen.check(&five, &key).unwrap();

        // A log that lost its last entry (heads and all), one whose root at
        // the seen size differs, and another key: all refused.
        log.append(&store, vec![event(5)]).await.unwrap();
        let six = verify(&store, &key).unwrap();
        let four = SeenHead {
            tree_size: 4,
            ..SeenHead::of(&five, &key)
        };
        assert!(matches!(
            four.check(&six, &key),
            Err(SeenHeadError::Inconsistent(AuditViolation::Inconsistent {
                seen_size: 4,
                ..
            }))
        ));
        let ahead = SeenHead::of(&six, &key);
        assert!(ahead.check(&five, &key).is_err());
        assert!(matches!(
            seen.check(&six, &[7; 32]),
            Err(SeenHeadError::KeyChanged { .. })
        ));

        std::fs::write(&path, b"{\"tree_size\": 1}").unwrap();
        let refused = SeenHead::load(&path).unwrap_err().to_string();
        assert!(refused.contains("seen-head.json"), "{refused}");
    }
}
