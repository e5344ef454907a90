//! Model versions withdrawn because an erasure request tainted them: the
//! node's side of "erasure reaches the model". The coordinator sends its
//! taint list with every poll answer; the node deletes each tainted model it
//! kept in its models folder, records the version in `withdrawn.json` there
//! (durably, before acknowledging), and its inference server refuses the
//! version from then on, even one it loaded before.
//!
//! Adversary: a coordinator or network peer sending a crafted taint list.
//! Only content addresses (64 lowercase hex digits) are accepted, so a
//! version can never name a path outside the models folder.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SavedModel;

/// The file in the models folder that lists withdrawn versions.
pub const WITHDRAWN_FILE: &str = "withdrawn.json";

/// Why the withdrawn list could not be read or updated.
#[derive(Debug, thiserror::Error)]
pub enum WithdrawalError {
    /// A taint-list entry is not a model version (a content address).
    #[error("the taint list names {0:?}, which is not a model version (64 lowercase hex digits)")]
    NotAVersion(String),
    /// The file or a model could not be read, deleted or written.
    #[error("{}: {reason}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// The versions withdrawn from one models folder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawnModels {
    versions: BTreeSet<String>,
}

/// Refuses a taint list with an entry that is not a content address.
fn check_versions(tainted: &[String]) -> Result<(), WithdrawalError> {
    let is_version = |text: &str| {
        text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    match tainted.iter().find(|v| !is_version(v)) {
        Some(bad) => Err(WithdrawalError::NotAVersion(bad.clone())),
        None => Ok(()),
    }
}

impl WithdrawnModels {
    /// The list in `dir` (empty if the folder has none yet).
    pub fn load(dir: &Path) -> Result<Self, WithdrawalError> {
        let path = dir.join(WITHDRAWN_FILE);
        let io = |reason: String| WithdrawalError::Io {
            path: path.clone(),
            reason,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| io(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(io(e.to_string())),
        }
    }

    /// A list withdrawing every version of `versions`.
    pub fn everything(versions: impl IntoIterator<Item = String>) -> Self {
        Self {
            versions: versions.into_iter().collect(),
        }
    }

    /// Whether `version` was withdrawn.
    pub fn contains(&self, version: &str) -> bool {
        self.versions.contains(version)
    }

    /// Every withdrawn version.
    pub fn versions(&self) -> impl Iterator<Item = &String> {
        self.versions.iter()
    }

    /// Records `tainted` for a node that keeps no models folder (nothing to
    /// delete, nothing written).
    pub fn withdraw_in_memory(&mut self, tainted: &[String]) -> Result<(), WithdrawalError> {
        check_versions(tainted)?;
        self.versions.extend(tainted.iter().cloned());
        Ok(())
    }

    /// Withdraws every version of `tainted`: records the new ones durably,
    /// then deletes each one's saved model from `dir` if it is still there (a
    /// delete that failed is retried with the next list). Checks every entry
    /// before touching anything.
    pub fn withdraw(&mut self, dir: &Path, tainted: &[String]) -> Result<(), WithdrawalError> {
        check_versions(tainted)?;
        let new: Vec<&String> = tainted.iter().filter(|v| !self.contains(v)).collect();
        if !new.is_empty() {
            self.record(dir, &new)?;
        }
        for version in tainted {
            let path = SavedModel::path_in(dir, version);
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::info!(version = %version, "tainted model deleted"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                // Refused by the inference server already (it is recorded).
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "tainted model not deleted")
                }
            }
        }
        Ok(())
    }

    /// Adds `new` to the list and writes it durably.
    fn record(&mut self, dir: &Path, new: &[&String]) -> Result<(), WithdrawalError> {
        // Recorded first, so that a crash or a failed delete never leaves a
        // tainted model on disk that the inference server does not refuse.
        let mut recorded = self.clone();
        recorded.versions.extend(new.iter().map(|v| (*v).clone()));
        std::fs::create_dir_all(dir).map_err(|e| WithdrawalError::Io {
            path: dir.to_owned(),
            reason: e.to_string(),
        })?;
        let list = dir.join(WITHDRAWN_FILE);
        crate::durable::write_json_atomically(&list, &recorded)
            .map_err(|reason| WithdrawalError::Io { path: list, reason })?;
        *self = recorded;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn withdrawing_deletes_the_kept_model_and_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (kept, never_kept) = ("a".repeat(64), "b".repeat(64));
        let path = SavedModel::path_in(dir.path(), &kept);
        std::fs::write(&path, b"{}").unwrap();
        let mut withdrawn = WithdrawnModels::load(dir.path()).unwrap();
        withdrawn
            .withdraw(dir.path(), &[kept.clone(), never_kept.clone()])
            .unwrap();
        assert!(!path.exists(), "the tainted model is gone");
        let reloaded = WithdrawnModels::load(dir.path()).unwrap();
        assert!(reloaded.contains(&kept) && reloaded.contains(&never_kept));
        assert_eq!(reloaded, withdrawn);
    }

    #[test]
    fn a_taint_list_naming_a_path_is_refused_before_anything_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let kept = "c".repeat(64);
        let path = SavedModel::path_in(dir.path(), &kept);
        std::fs::write(&path, b"{}").unwrap();
        let mut withdrawn = WithdrawnModels::default();
        let error = withdrawn
            .withdraw(dir.path(), &[kept, "../../etc/passwd".into()])
            .unwrap_err();
        assert!(matches!(error, WithdrawalError::NotAVersion(v) if v == "../../etc/passwd"));
        assert!(path.exists(), "nothing was touched");
        assert_eq!(withdrawn, WithdrawnModels::default());
    }
}
