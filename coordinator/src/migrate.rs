//! `cohort-coordinator store migrate`: a stopped coordinator's sled state
//! copied into an empty PostgreSQL database (issue #20 item 3), then its
//! audit log verified there, against the federation's audit key, as
//! `audit verify` would: a copy that lost, reordered or altered an entry or a
//! signed head is reported, not trusted.
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
    /// The copied audit log does not verify in the database.
    #[error("the audit log copied into PostgreSQL does not verify: {0}")]
    Audit(#[from] AuditError),
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
    let postgres = PgStore::open(to).await?;
    let copied = postgres.copy_from_sled(&sled).await?;
    let log = audit::verify(&Store::from(postgres), &identity).await?;
    Ok(Migration {
        federation_id,
        copied,
        log,
    })
}
