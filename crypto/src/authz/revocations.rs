//! The federation's revocation list as a server consults it: live, and
//! signed by the federation's CA.
//!
//! The file is the CA-signed list `revoked.signed` written by
//! `cohort-coordinator pki revoke` ([`crate::pki::signed_revocations`]); the
//! plain `revoked.txt` beside it is the operator's annotated copy and is not
//! read. A server checks the CA's signature and that the list's sequence
//! number never goes back, so one who can write the file but does not hold
//! the CA key can neither unrevoke a certificate by editing it nor by putting
//! an older list (or none) in its place: every server, and every node
//! ([`crate::tls::PeerCertificateVerifier`]), consults the same list.
//!
//! It is checked on every call, so a revocation written while a server runs
//! refuses the revoked certificate's very next request, without a restart
//! and without a timer. The check is cheap: one `stat` of the file, which is
//! re-read only when its size, modification time or inode changed, or while
//! its modification time is within [`RACY_WINDOW`] of the last read (a
//! rewrite within the same timestamp tick would otherwise go unseen; git's
//! "racy clean" rule).
//!
//! A list that cannot be read, parsed or verified, or that is older than the
//! one adopted, refuses every call until a good one is in place (failing
//! closed): an operator's half-written revocation must not let the revoked
//! peer back in. A missing file is an empty list until a list was adopted.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use crate::pki::{PkiError, RevocationsRefused, VerifiedRevocations};

/// How long after a file's modification time its content, not only its
/// metadata, is compared on each check (covers coarse and FAT timestamps).
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// Hears of fingerprints that a reload found newly revoked (to audit them).
pub type RevocationObserver = Box<dyn Fn(&BTreeSet<String>) + Send + Sync>;

/// The revocation list could not be read or was not adopted (see the module
/// docs: calls are refused meanwhile).
#[derive(Debug, thiserror::Error)]
pub enum RevocationListUnreadable {
    /// The list or the CA certificate could not be read.
    #[error("revocation list unreadable: {0}")]
    Io(#[from] PkiError),
    /// The CA certificate could not be read.
    #[error("the CA certificate to check the revocation list with: {0}")]
    Authority(#[from] crate::tls::TlsError),
    /// The list is not one the CA signed, or is older than the one adopted.
    #[error(
        "revocation list {} refused: {reason} (point the revocation list at the \
         `revoked.signed` that `cohort-coordinator pki revoke` writes)",
        path.display()
    )]
    Refused {
        /// The list's file.
        path: PathBuf,
        /// Why it was refused.
        reason: RevocationsRefused,
    },
    /// The list was deleted after one had been adopted.
    #[error(
        "revocation list {} is gone, after list {held} was adopted",
        path.display()
    )]
    Missing {
        /// The list's file.
        path: PathBuf,
        /// The sequence number of the list adopted.
        held: u64,
    },
}

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
    /// The newest list adopted (its sequence guards against rollback).
    adopted: VerifiedRevocations,
    revoked: Arc<BTreeSet<String>>,
}

/// Where the list comes from: its file and the CA that signs it.
#[derive(Debug)]
struct Source {
    path: PathBuf,
    /// The CA certificate (DER) whose key must have signed the list.
    authority: Vec<u8>,
}

/// A revocation list kept current with its file (see the module docs).
pub struct RevocationList {
    source: Option<Source>,
    loaded: Mutex<Loaded>,
    observer: Option<RevocationObserver>,
}

impl std::fmt::Debug for RevocationList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationList")
            .field("path", &self.path())
            .field("loaded", &self.loaded)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// The list in the file now, if the CA signed it and it is not older
    /// than `held` (the list adopted before).
    fn read(
        &self,
        held: &VerifiedRevocations,
    ) -> Result<VerifiedRevocations, RevocationListUnreadable> {
        let path = &self.path;
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return match held.sequence() {
                    0 => Ok(VerifiedRevocations::default()),
                    held => Err(RevocationListUnreadable::Missing {
                        path: path.clone(),
                        held,
                    }),
                };
            }
            Err(source) => {
                return Err(PkiError::Io {
                    path: path.clone(),
                    source,
                }
                .into());
            }
        };
        let refused = |reason| RevocationListUnreadable::Refused {
            path: path.clone(),
            reason,
        };
        let offered = VerifiedRevocations::verify(&bytes, &self.authority).map_err(refused)?;
        let mut adopted = held.clone();
        adopted.adopt(offered).map_err(refused)?;
        Ok(adopted)
    }
}

impl RevocationList {
    /// No list: nothing is revoked (a server configured without one).
    pub fn none() -> Self {
        Self {
            source: None,
            loaded: Mutex::default(),
            observer: None,
        }
    }

    /// The CA-signed list in `path` (`revoked.signed`), verified against the
    /// CA certificate in `ca_certificate` (PEM): read now (a missing file is
    /// empty) and re-read whenever it changes. Fails if the CA certificate
    /// cannot be read, or the list cannot be read or verified now.
    pub fn watch(path: &Path, ca_certificate: &Path) -> Result<Self, RevocationListUnreadable> {
        let authority = crate::tls::load_authority(ca_certificate)?;
        let list = Self {
            source: Some(Source {
                path: path.to_owned(),
                authority,
            }),
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
        self.source.as_ref().map(|source| source.path.as_path())
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
        let Some(source) = &self.source else {
            return Ok(Arc::default());
        };
        let mut loaded = self.lock();
        let stamp = FileStamp::of(&source.path)?;
        let unchanged = loaded.read_at.is_some_and(|read_at| {
            stamp == loaded.stamp && stamp.is_none_or(|s| !s.is_racy(read_at))
        });
        if unchanged {
            return Ok(loaded.revoked.clone());
        }
        let read_at = SystemTime::now();
        let adopted = source.read(&loaded.adopted)?;
        let revoked = Arc::new(adopted.fingerprints().clone());
        let previous = std::mem::replace(
            &mut *loaded,
            Loaded {
                stamp,
                read_at: Some(read_at),
                adopted,
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
    use crate::pki::{PkiDir, Validity};

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn federation() -> (tempfile::TempDir, PkiDir) {
        let dir = tempfile::tempdir().unwrap();
        let pki = PkiDir::new(dir.path());
        pki.init("test", Validity::days_from_now(1).unwrap())
            .unwrap();
        (dir, pki)
    }

    /// Signs `fingerprints` as the CA's next list; returns its bytes.
    fn sign(pki: &PkiDir, fingerprints: &[&str]) -> Vec<u8> {
        let set = fingerprints.iter().map(|f| (*f).to_owned()).collect();
        pki.write_signed_revocations(&set).unwrap();
        std::fs::read(pki.signed_revocation_list()).unwrap()
    }

    fn watch(pki: &PkiDir) -> RevocationList {
        RevocationList::watch(&pki.signed_revocation_list(), &pki.ca_certificate()).unwrap()
    }

    #[test]
    fn a_list_the_ca_signs_is_seen_by_the_very_next_check() {
        let (_dir, pki) = federation();
        let list = watch(&pki);
        assert!(!list.is_revoked(A).unwrap(), "a missing file is empty");
        sign(&pki, &[A]);
        assert!(list.is_revoked(A).unwrap());
        // Same size, same timestamp tick: only the content differs.
        sign(&pki, &[B]);
        assert!(!list.is_revoked(A).unwrap());
        assert!(list.is_revoked(&B.to_ascii_uppercase()).unwrap());
    }

    #[test]
    fn an_edited_older_or_deleted_list_refuses_until_a_signed_newer_one_is_back() {
        let (_dir, pki) = federation();
        let path = pki.signed_revocation_list();
        let first = sign(&pki, &[A]);
        let list = watch(&pki);
        let second = sign(&pki, &[A, B]);
        assert!(list.is_revoked(B).unwrap());

        // Without the CA key: dropping a line, replaying the older list,
        // deleting it, or writing a plain list. Each refuses every call.
        let text = String::from_utf8(second.clone()).unwrap();
        std::fs::write(&path, text.replacen(&format!("{B}\n"), "", 1)).unwrap();
        let edited = list.is_revoked(A).unwrap_err();
        assert!(
            matches!(
                &edited,
                RevocationListUnreadable::Refused {
                    reason: RevocationsRefused::BadSignature,
                    ..
                }
            ),
            "{edited}"
        );
        std::fs::write(&path, &first).unwrap();
        assert!(matches!(
            list.is_revoked(A),
            Err(RevocationListUnreadable::Refused {
                reason: RevocationsRefused::Rollback {
                    held: 2,
                    offered: 1
                },
                ..
            })
        ));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            list.is_revoked(A),
            Err(RevocationListUnreadable::Missing { held: 2, .. })
        ));
        std::fs::write(&path, format!("{A}\n")).unwrap();
        let plain = list.is_revoked(A).unwrap_err().to_string();
        assert!(plain.contains("revoked.signed"), "{plain}");

        // The CA's list is back: served again.
        std::fs::write(&path, &second).unwrap();
        assert!(list.is_revoked(B).unwrap());
        // A plain list is refused at start too, naming the file to use.
        std::fs::write(&path, format!("{A}\n")).unwrap();
        let at_start = RevocationList::watch(&path, &pki.ca_certificate()).unwrap_err();
        assert!(
            at_start.to_string().contains("revoked.signed"),
            "{at_start}"
        );
    }

    #[test]
    fn another_federations_list_is_refused() {
        let (_dir, ours) = federation();
        let (_other, theirs) = federation();
        let foreign = sign(&theirs, &[A]);
        std::fs::write(ours.signed_revocation_list(), foreign).unwrap();
        let refused = RevocationList::watch(&ours.signed_revocation_list(), &ours.ca_certificate());
        assert!(matches!(
            refused,
            Err(RevocationListUnreadable::Refused {
                reason: RevocationsRefused::BadSignature,
                ..
            })
        ));
    }

    #[test]
    fn the_observer_hears_each_new_revocation_once() {
        let (_dir, pki) = federation();
        sign(&pki, &[A]);
        let heard = Arc::new(Mutex::new(Vec::new()));
        let calls = Arc::new(AtomicUsize::new(0));
        let (h, c) = (heard.clone(), calls.clone());
        let list = watch(&pki).observe(Box::new(move |added| {
            c.fetch_add(1, Ordering::SeqCst);
            h.lock().unwrap().extend(added.iter().cloned());
        }));
        assert!(list.is_revoked(A).unwrap());
        sign(&pki, &[A, B]);
        for _ in 0..3 {
            assert!(list.is_revoked(B).unwrap());
        }
        assert_eq!(*heard.lock().unwrap(), vec![B.to_owned()]);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn no_list_revokes_nothing() {
        let list = RevocationList::none();
        assert!(!list.is_revoked(A).unwrap());
        assert!(list.path().is_none());
    }
}
