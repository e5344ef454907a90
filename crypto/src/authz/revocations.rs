//! The federation's revocation list as a server consults it: live.
//!
//! The file (format: [`crate::pki::load_revocations`]) is checked on every
//! call, so a revocation written while a server runs refuses the revoked
//! certificate's very next request, without a restart and without a timer.
//! The check is cheap: one `stat` of the file, which is re-read only when its
//! size, modification time or inode changed, or while its modification time
//! is within [`RACY_WINDOW`] of the last read (a rewrite within the same
//! timestamp tick would otherwise go unseen; git's "racy clean" rule).
//!
//! A list that cannot be read or parsed refuses every call until it can be
//! (failing closed): an operator's half-written revocation must not let the
//! revoked peer back in. A missing file is an empty list, as at start.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use crate::pki::{PkiError, load_revocations};

/// How long after a file's modification time its content, not only its
/// metadata, is compared on each check (covers coarse and FAT timestamps).
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// Hears of fingerprints that a reload found newly revoked (to audit them).
pub type RevocationObserver = Box<dyn Fn(&BTreeSet<String>) + Send + Sync>;

/// The revocation list could not be read or parsed (see the module docs:
/// calls are refused meanwhile).
#[derive(Debug, thiserror::Error)]
#[error("revocation list unreadable: {0}")]
pub struct RevocationListUnreadable(#[from] PkiError);

/// What identifies one version of the file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    /// The file's stamp, or `None` if it does not exist.
    fn of(path: &Path) -> Result<Option<Self>, PkiError> {
        match std::fs::metadata(path) {
            Ok(metadata) => Ok(Some(Self {
                modified: metadata.modified().ok(),
                len: metadata.len(),
                inode: inode(&metadata),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(PkiError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Whether a write after `read_at` could have left this stamp unchanged.
    fn is_racy(&self, read_at: SystemTime) -> bool {
        self.modified.is_none_or(|modified| {
            read_at
                .duration_since(modified)
                .is_ok_and(|age| age < RACY_WINDOW)
                || read_at < modified
        })
    }
}

#[cfg(unix)]
fn inode(metadata: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(metadata)
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
}

/// The list as last read.
#[derive(Debug, Default)]
struct Loaded {
    /// `None`: the file did not exist (or there is no file).
    stamp: Option<FileStamp>,
    read_at: Option<SystemTime>,
    revoked: Arc<BTreeSet<String>>,
}

/// A revocation list kept current with its file (see the module docs).
pub struct RevocationList {
    path: Option<PathBuf>,
    loaded: Mutex<Loaded>,
    observer: Option<RevocationObserver>,
}

impl std::fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationList")
            .field("path", &self.path)
            .field("loaded", &self.loaded)
            .finish_non_exhaustive()
    }
}

impl RevocationList {
    /// No list: nothing is revoked (a server configured without one).
    pub fn none() -> Self {
        Self {
            path: None,
            loaded: Mutex::default(),
            observer: None,
        }
    }

    /// The list in `path`, read now (a missing file is empty) and re-read
    /// whenever it changes. Fails if it cannot be read or parsed now.
    pub fn watch(path: &Path) -> Result<Self, RevocationListUnreadable> {
        let list = Self {
            path: Some(path.to_owned()),
            loaded: Mutex::default(),
            observer: None,
        };
        list.current()?;
        Ok(list)
    }

    /// Calls `observer` with the fingerprints each later reload finds newly
    /// revoked (those read at start are [`Self::current`]).
    pub fn observe(mut self, observer: RevocationObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The file watched, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether the certificate with this fingerprint (hex SHA-256 of its DER,
    /// [`crate::pki::fingerprint`]) is revoked now.
    pub fn is_revoked(&self, certificate_sha256: &str) -> Result<bool, RevocationListUnreadable> {
        Ok(self
            .current()?
            .contains(&certificate_sha256.to_ascii_lowercase()))
    }

    /// The revoked fingerprints now, re-read if the file changed.
    pub fn current(&self) -> Result<Arc<BTreeSet<String>>, RevocationListUnreadable> {
        let Some(path) = &self.path else {
            return Ok(Arc::default());
        };
        let mut loaded = self.lock();
        let stamp = FileStamp::of(path)?;
        let unchanged = loaded.read_at.is_some_and(|read_at| {
            stamp == loaded.stamp && stamp.is_none_or(|s| !s.is_racy(read_at))
        });
        if unchanged {
            return Ok(loaded.revoked.clone());
        }
        let read_at = SystemTime::now();
        let revoked = Arc::new(load_revocations(path)?);
        let previous = std::mem::replace(
            &mut *loaded,
            Loaded {
                stamp,
                read_at: Some(read_at),
                revoked: revoked.clone(),
            },
        );
        drop(loaded);
        if previous.read_at.is_some() {
            self.tell_observer(&previous.revoked, &revoked);
        }
        Ok(revoked)
    }

    /// Tells the observer, if any, what `now` revokes that `before` did not.
    fn tell_observer(&self, before: &BTreeSet<String>, now: &BTreeSet<String>) {
        let Some(observer) = &self.observer else {
            return;
        };
        let added: BTreeSet<String> = now.difference(before).cloned().collect();
        if !added.is_empty() {
            observer(&added);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Loaded> {
        // Every update replaces the whole value: a poisoned lock holds a
        // consistent (if stale) list, and the stamp check re-reads it.
        self.loaded.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn a_rewrite_is_seen_by_the_very_next_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked.txt");
        let list = RevocationList::watch(&path).unwrap();
        assert!(!list.is_revoked(A).unwrap(), "a missing file is empty");
        std::fs::write(&path, format!("{A}\n")).unwrap();
        assert!(list.is_revoked(A).unwrap());
        // Same size, same timestamp tick: only the content differs.
        std::fs::write(&path, format!("{B}\n")).unwrap();
        assert!(!list.is_revoked(A).unwrap());
        assert!(list.is_revoked(&B.to_ascii_uppercase()).unwrap());
        std::fs::remove_file(&path).unwrap();
        assert!(!list.is_revoked(B).unwrap());
    }

    #[test]
    fn an_unparsable_list_refuses_until_it_is_fixed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked.txt");
        std::fs::write(&path, format!("{A}\n")).unwrap();
        let list = RevocationList::watch(&path).unwrap();
        std::fs::write(&path, format!("{A}\n{}", &B[..20])).unwrap();
        let err = list.is_revoked(B).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        std::fs::write(&path, format!("{A}\n{B}\n")).unwrap();
        assert!(list.is_revoked(B).unwrap());
        std::fs::write(dir.path().join("bad.txt"), "nope\n").unwrap();
        assert!(RevocationList::watch(&dir.path().join("bad.txt")).is_err());
    }

    #[test]
    fn the_observer_hears_each_new_revocation_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("revoked.txt");
        std::fs::write(&path, format!("{A}\n")).unwrap();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let calls = Arc::new(AtomicUsize::new(0));
        let (h, c) = (heard.clone(), calls.clone());
        let list = RevocationList::watch(&path)
            .unwrap()
            .observe(Box::new(move |added| {
                c.fetch_add(1, Ordering::SeqCst);
                h.lock().unwrap().extend(added.iter().cloned());
            }));
        assert!(list.is_revoked(A).unwrap());
        std::fs::write(&path, format!("{A}\n{B}\n")).unwrap();
        for _ in 0..3 {
            assert!(list.is_revoked(B).unwrap());
        }
        assert_eq!(*heard.lock().unwrap(), vec![B.to_owned()]);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn no_list_revokes_nothing() {
        assert!(!RevocationList::none().is_revoked(A).unwrap());
    }
}
