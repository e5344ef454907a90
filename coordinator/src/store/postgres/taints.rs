//! The tainted model versions, kept in memory on PostgreSQL (issue #20's
//! speed target): every FetchModel asks whether its version is tainted and
//! every poll answer carries the whole list, so a thousand nodes would
//! otherwise cost thousands of queries a round.
//!
//! The `tainted_models` table stays the source of truth; the set is a copy of
//! it, read on first use (not at open, so a store opened before this process
//! writes, e.g. a standby's, reads the table as it is when first asked). It
//! changes only through [`PgStore::commit_erasure_step`] and
//! [`PgStore::copy_from_sled`], which update it before they return while
//! holding it exclusively: no reader sees the set between the durable taint
//! and its copy. A commit whose outcome is unknown (any error: the COMMIT may
//! have reached the database and its answer been lost) drops the copy, so
//! the next read goes back to the table.
//!
//! Sound because one coordinator process writes the federation's state at a
//! time (the same assumption as the audit log's in-memory frontier), which
//! the lease enforces ([`super::lease`]): a former leader's writes are fenced
//! off, and the store of a coordinator that takes over starts a new copy
//! ([`PgStore::fenced`]).

use std::collections::BTreeSet;

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::PgStore;
use crate::store::StoreError;

/// Stands in for the copy where the type needs one; never shown, since a
/// read loads the copy under the lock it then reads it under.
static NONE: BTreeSet<String> = BTreeSet::new();

/// The store's copy of the tainted versions; `None` until first read, or
/// after a write whose outcome is unknown.
#[derive(Debug, Default)]
pub(super) struct TaintCache(RwLock<Option<BTreeSet<String>>>);

/// The copy held exclusively while an erasure step commits.
pub(super) struct TaintUpdate<'a>(RwLockWriteGuard<'a, Option<BTreeSet<String>>>);

impl TaintUpdate<'_> {
    /// The step committed: its `tainted` versions join the copy (if there is
    /// one; otherwise the next read loads them from the table).
    pub(super) fn committed<'v>(mut self, tainted: impl IntoIterator<Item = &'v String>) {
        if let Some(set) = self.0.as_mut() {
            set.extend(tainted.into_iter().cloned());
        }
    }

    /// The step's outcome is unknown: the copy is dropped.
    pub(super) fn unknown(mut self) {
        *self.0 = None;
    }
}

impl TaintCache {
    /// Holds the copy exclusively until the returned update is settled.
    pub(super) async fn update(&self) -> TaintUpdate<'_> {
        TaintUpdate(self.0.write().await)
    }

    /// The tainted versions, read from the table on first use.
    pub(super) async fn read(
        &self,
        store: &PgStore,
    ) -> Result<RwLockReadGuard<'_, BTreeSet<String>>, StoreError> {
        match RwLockReadGuard::try_map(self.0.read().await, Option::as_ref) {
            Ok(set) => return Ok(set),
            // Let go before taking it exclusively.
            Err(unloaded) => drop(unloaded),
        }
        let mut copy = self.0.write().await;
        if copy.is_none() {
            *copy = Some(store.stored_tainted_models().await?.into_iter().collect());
        }
        Ok(RwLockReadGuard::map(copy.downgrade(), |set| {
            set.as_ref().unwrap_or(&NONE)
        }))
    }
}
