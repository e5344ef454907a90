//! The model versions nodes are fetching, kept in memory: in a round every
//! sampled node fetches the same version, so with the state in PostgreSQL a
//! thousand nodes would otherwise cost a thousand reads of the same bytes.
//!
//! Safe to cache because a version is content-addressed (its name is the
//! SHA-256 of its fingerprint and bytes) and never changes once stored.
//! Whether a version may still be served (an erasure may taint it) is not
//! cached here: the service asks the store at every fetch (PostgreSQL answers
//! from its own copy of the taint table, which each erasure step updates
//! before it returns: `store/postgres/taints.rs`).
//!
//! A version not kept is read once however many fetches ask for it at the
//! same moment: the others wait for that read.

use std::sync::{Arc, Mutex};

use crate::store::{Store, StoreError};

/// How many versions are kept: the round's starting model and the one it
/// commits (fetched for evaluation while late nodes still fetch the first).
const KEPT: usize = 2;

/// The last [`KEPT`] model versions read, newest last.
#[derive(Debug, Default)]
pub struct RecentModels {
    kept: Mutex<Vec<(String, Arc<[u8]>)>>,
    /// Held while a version is read from the store, so that the thousand
    /// fetches of a new version read it once, not each until one finished.
    reading: tokio::sync::Mutex<()>,
}

impl RecentModels {
    /// The encoded parameters of `version`, from memory or else the store;
    /// `None` if the store holds no such version.
    pub async fn get(&self, store: &Store, version: &str) -> Result<Option<Arc<[u8]>>, StoreError> {
        if let Some(bytes) = self.find(version) {
            return Ok(Some(bytes));
        }
        let _reading = self.reading.lock().await;
        // Another fetch may have read it while this one waited.
        if let Some(bytes) = self.find(version) {
            return Ok(Some(bytes));
        }
        let Some(bytes) = store.model(version).await? else {
            return Ok(None);
        };
        let bytes: Arc<[u8]> = bytes.into();
        self.remember(version, bytes.clone());
        Ok(Some(bytes))
    }

    /// `version`'s bytes, if kept.
    fn find(&self, version: &str) -> Option<Arc<[u8]>> {
        let kept = self.kept();
        kept.iter()
            .find(|(v, _)| v == version)
            .map(|(_, b)| b.clone())
    }

    /// Keeps `version`, dropping the oldest kept one if there are [`KEPT`].
    fn remember(&self, version: &str, bytes: Arc<[u8]>) {
        let mut kept = self.kept();
        if !kept.iter().any(|(v, _)| v == version) {
            if kept.len() == KEPT {
                kept.remove(0);
            }
            kept.push((version.to_owned(), bytes));
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Vec<(String, Arc<[u8]>)>> {
        // A poisoned lock only means another fetch panicked mid-update of a
        // cache of immutable values: what it holds is still right.
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn kept_versions_answer_from_memory_and_the_oldest_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let location = crate::store::StoreLocation::Folder(dir.path().join("state"));
        let store = Store::open(&location).await.unwrap();
        let recent = RecentModels::default();
        assert!(recent.get(&store, "absent").await.unwrap().is_none());
        assert!(
            recent.kept().is_empty(),
            "nothing kept for a missing version"
        );

        let kept = |recent: &RecentModels| -> Vec<String> {
            recent.kept().iter().map(|(v, _)| v.clone()).collect()
        };
        let bytes = |text: &[u8]| Arc::<[u8]>::from(text);
        recent.remember("a", bytes(b"aa"));
        // Kept: answered from memory (the store does not hold it).
        assert_eq!(recent.get(&store, "a").await.unwrap(), Some(bytes(b"aa")));
        recent.remember("b", bytes(b"bb"));
        recent.remember("b", bytes(b"bb"));
        assert_eq!(kept(&recent), ["a", "b"]);
        // A third version pushes out the oldest.
        recent.remember("c", bytes(b"cc"));
        assert_eq!(kept(&recent), ["b", "c"]);
        assert!(recent.get(&store, "a").await.unwrap().is_none());
    }
}
