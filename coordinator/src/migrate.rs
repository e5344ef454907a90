//! `cohort-coordinator store migrate`: a stopped coordinator's sled state
//! copied into an empty PostgreSQL database (issue #20 item 3). The audit log
//! is verified against the federation's audit key, as `audit verify` would,
//! twice: in the folder first (a log that does not verify is not migrated,
//! and the database stays empty), then in the database (a copy that lost,
//! reordered or altered an entry or a signed head is reported, not trusted).
//!
//! The copy is one transaction ([`PgStore::copy_from_sled`]): whole or
//! absent. A database that already holds records is refused, so a migration
//! never merges two federations or overwrites one.

use std::path::{Path, PathBuf};

use cohort_crypto::transparency::{AuditSigningKey, LogIdentity, TransparencyError};

use crate::audit::{self, AuditError, VerifiedLog};
use crate::store::postgres::CopySummary;
use crate::store::{PgStore, PostgresSettings, SledStore, Store, StoreError};

/// Why a migration stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// The source or the target store failed (a target that is not empty
    /// included: [`StoreError::NotEmpty`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The state folder records no federation: nothing to migrate.
    #[error("{0} records no federation: nothing to migrate")]
    NoFederation(PathBuf),
    /// The audit signing key in the state folder could not be read.
    #[error("the audit signing key of {folder}: {source}")]
    Key {
        /// The state folder.
        folder: PathBuf,
        /// Why.
        source: TransparencyError,
    },
    /// The audit log in the state folder does not verify: nothing was copied.
    #[error("the audit log in the state folder does not verify, nothing copied: {0}")]
    Source(AuditError),
    /// The copied audit log does not verify in the database.
    #[error("the audit log copied into PostgreSQL does not verify: {0}")]
    Copy(AuditError),
}

/// What a migration copied and verified.
#[derive(Debug)]
pub struct Migration {
    /// The federation migrated.
    pub federation_id: String,
    /// Records copied, per table.
    pub copied: CopySummary,
    /// The audit log as it verified in the database.
    pub log: VerifiedLog,
}

/// Copies the sled state in the folder `from` into the empty database `to`
/// and verifies the audit log there against the audit key in `from`.
pub async fn migrate(from: &Path, to: &PostgresSettings) -> Result<Migration, MigrationError> {
    let sled = SledStore::open(from)?;
    let federation_id = sled
        .definition()?
        .ok_or_else(|| MigrationError::NoFederation(from.to_owned()))?
        .federation_id;
    let key = AuditSigningKey::load(&from.join(audit::SIGNING_KEY_FILE)).map_err(|source| {
        MigrationError::Key {
            folder: from.to_owned(),
            source,
        }
    })?;
    let identity = LogIdentity::new(&federation_id, &key.public_key());
    let source = Store::from(sled.clone());
    audit::verify(&source, &identity)
        .await
        .map_err(MigrationError::Source)?;
    let postgres = PgStore::open(to).await?;
    let copied = postgres.copy_from_sled(&sled).await?;
    let log = audit::verify(&Store::from(postgres), &identity)
        .await
        .map_err(MigrationError::Copy)?;
    Ok(Migration {
        federation_id,
        copied,
        log,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEvent, AuditLog};
    use crate::store::FederationDefinition;
    use crate::store::postgres::scratch::ScratchServer;

    /// A state folder with a federation and `entries` audit entries.
    async fn federation(folder: &Path, entries: u64) -> SledStore {
        let sled = SledStore::open(folder).unwrap();
        let store = Store::from(sled.clone());
        let definition = FederationDefinition {
            federation_id: "migrated".into(),
            model_fingerprint: "aa".into(),
            model_description: "mlp".into(),
        };
        store.check_definition(&definition).await.unwrap();
        let key = folder.join(audit::SIGNING_KEY_FILE);
        let log = AuditLog::open(&store, &key, "migrated").await.unwrap();
        for round in 0..entries {
            let event = AuditEvent::RoundFailed {
                round,
                attempt: 1,
                reason: "test".into(),
            };
            log.append(&store, vec![event]).await.unwrap();
        }
        sled
    }

    /// A log altered in the folder is not migrated: the migration names the
    /// folder's log and leaves the database empty (a migration into it then
    /// succeeds once the log is whole again).
    #[tokio::test]
    async fn a_log_that_does_not_verify_is_not_migrated() {
        let Some(server) = ScratchServer::start().unwrap() else {
            return;
        };
        let target = server.database("target").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("state");
        let original = {
            let sled = federation(&folder, 3).await;
            let (entries, _) = sled.audit_trees();
            let original = entries.get(1u64.to_be_bytes()).unwrap().unwrap();
            let mut altered = original.to_vec();
            altered[10] ^= 1;
            entries.insert(1u64.to_be_bytes(), altered).unwrap();
            original
        };
        let patience = std::time::Duration::from_secs(60);
        assert!(SledStore::released(&folder, patience).await);

        let refused = migrate(&folder, &target).await;
        assert!(
            matches!(refused, Err(MigrationError::Source(_))),
            "{refused:?}"
        );
        let sled = SledStore::open(&folder).unwrap();
        sled.audit_trees()
            .0
            .insert(1u64.to_be_bytes(), original)
            .unwrap();
        drop(sled);
        assert!(SledStore::released(&folder, patience).await);
        let migration = migrate(&folder, &target).await.unwrap();
        assert_eq!(migration.log.entries.len(), 3);
        assert!(migration.copied.rows.contains(&("audit_entries", 3)));
    }
}
