//! The coordinator's durable state on PostgreSQL (issue #20): the sled
//! store's trees as tables (`coordinator/migrations/`), the same records in the
//! same encodings, and the same promises.
//!
//! * A round's model, record, head, privacy ledger, strategy state and audit
//!   entries commit in one SERIALIZABLE transaction or not at all; an erasure
//!   step's taint, remediations, rolled-back head and audit entries likewise.
//!   A transaction that loses a serialization conflict (SQLSTATE 40001) is run
//!   again from the start, at most [`ATTEMPTS`] times.
//! * An audit batch (the audit log's group commit) is one transaction; entries
//!   and heads are inserted, never overwritten: the log is append-only here.
//! * Models are content-addressed: a version already stored is kept as is.
//! * A committed transaction is durable with PostgreSQL's defaults
//!   (`synchronous_commit = on`, `fsync = on`); the store does not change them.
//!
//! Columns are read with `try_get`: a database whose tables do not have the
//! migrations' types is reported as an error, never a panic.
//!
//! Threat model: the database and its administrators are trusted as much as
//! the sled folder's disk is. The audit log's signatures and Merkle tree make
//! tampering with it evident to `audit verify` on either backend. The link to
//! the database is protected by TLS when a CA certificate is configured
//! (rustls, the server's name checked against its certificate); without one,
//! the connection is plain, for a database on the same host or a private link.

mod copy;
pub mod lease;
pub mod scratch;
mod taints;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde::de::DeserializeOwned;
use tokio_postgres::IsolationLevel;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use lease::FencingToken;

use cohort_privacy::PrivacyLedger;
use cohort_proto::scaling::FeatureScaling;

use super::records::{AuditBatch, FederationHead, NodeRecord};
use super::{
    AUDIT_FRONTIER, CONFIG, DEFINITION, FederationDefinition, HEAD, PRIVACY_LEDGER, SCALING,
    STRATEGY_STATE, StoreError, decode, encode,
};
use crate::strategy::StrategyState;

/// How often a transaction that lost a serialization conflict is tried in all.
pub const ATTEMPTS: u32 = 16;

/// The migrations, in order: (version, SQL).
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../../../migrations/0001_initial.sql")),
    (
        2,
        include_str!("../../../migrations/0002_coordinator_lease.sql"),
    ),
];

/// The advisory lock key under which migrations are applied ("cohort" in ASCII).
const MIGRATION_LOCK: i64 = 0x636f_686f_7274;

/// How long the server lets a transaction that holds the lease's rows or the
/// migration lock sit idle before ending its session (fenced writes, lease
/// takes, migrations: their statements go back to back, so a gap this long
/// means the coordinator stalled).
pub const IDLE_IN_TRANSACTION_MS: u64 = 5_000;

/// The statement that limits the transaction it runs in to
/// [`IDLE_IN_TRANSACTION_MS`] idle.
fn limit_idle() -> String {
    format!("SET LOCAL idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}")
}

/// How long a connection to the database may take to open (unless the URL
/// sets `connect_timeout`), and unacknowledged data sit on one before the
/// kernel gives it up.
const CONNECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Connections kept open to the database.
const POOL_SIZE: usize = 8;

/// Where the PostgreSQL store is: `[server] store = { postgres = "…",
/// ca_certificate = "…" }` in federation.toml.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// A libpq-style connection URL (`postgres://user:password@host:port/db`).
    /// May carry a password: it is never logged or written into errors.
    pub postgres: String,
    /// PEM file with the CA certificate that signed the database server's
    /// certificate: when given, the connection is TLS, verified against it.
    #[serde(default)]
    pub ca_certificate: Option<PathBuf>,
}

impl std::fmt::Debug for PostgresSettings {
    /// The URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("postgres", &self.redacted())
            .field("ca_certificate", &self.ca_certificate)
            .finish()
    }
}

/// What stands in for a password in logs and errors.
const HIDDEN: &str = "***";

impl PostgresSettings {
    /// The password in the URL, if it carries one (`user:password@` or
    /// `?password=`).
    fn password(&self) -> Option<&str> {
        let url = &self.postgres;
        let authority = url.split_once("://").map_or("", |(_, rest)| {
            rest.split(['/', '?']).next().unwrap_or_default()
        });
        let in_authority = authority
            .rsplit_once('@')
            .and_then(|(user_info, _)| user_info.split_once(':'))
            .map(|(_, password)| password);
        let in_query = url.split_once('?').and_then(|(_, query)| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("password="))
        });
        in_authority.or(in_query).filter(|p| !p.is_empty())
    }

    /// `text` with the URL's password replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        match self.password() {
            Some(password) => text.replace(password, HIDDEN),
            None => text.to_owned(),
        }
    }

    /// The URL with its password replaced by `***`: what logs and errors show.
    pub fn redacted(&self) -> String {
        self.scrub(&self.postgres)
    }

    /// Checks the URL parses as a PostgreSQL connection URL (`postgres://` or
    /// `postgresql://`). The reason never shows the password. (The CA
    /// certificate is read when the store opens.)
    pub fn validate(&self) -> Result<(), String> {
        if !["postgres://", "postgresql://"]
            .iter()
            .any(|scheme| self.postgres.starts_with(scheme))
        {
            return Err(format!(
                "`{}` is not a postgres:// or postgresql:// URL",
                self.redacted()
            ));
        }
        tokio_postgres::Config::from_str(&self.postgres)
            .map_err(|e| format!("`{}`: {}", self.redacted(), self.scrub(&e.to_string())))?;
        Ok(())
    }
}

/// A value bound to a statement parameter.
#[derive(Debug, Clone)]
enum Value {
    Text(String),
    Int(i64),
    Bytes(Vec<u8>),
    Ints(Vec<i64>),
    Blobs(Vec<Vec<u8>>),
}

impl Value {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Self::Text(text) => text,
            Self::Int(number) => number,
            Self::Bytes(bytes) => bytes,
            Self::Ints(numbers) => numbers,
            Self::Blobs(blobs) => blobs,
        }
    }
}

/// One write of a transaction, prepared before it starts so that a retry
/// replays exactly the same writes.
#[derive(Debug, Clone)]
struct Write {
    sql: &'static str,
    params: Vec<Value>,
}

const PUT_META: &str = "INSERT INTO meta (key, value) VALUES ($1, $2) \
     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value";
const REMOVE_META: &str = "DELETE FROM meta WHERE key = $1";

fn put_meta(key: &str, value: Vec<u8>) -> Write {
    Write {
        sql: PUT_META,
        params: vec![Value::Text(key.to_owned()), Value::Bytes(value)],
    }
}

fn remove_meta(key: &str) -> Write {
    Write {
        sql: REMOVE_META,
        params: vec![Value::Text(key.to_owned())],
    }
}

/// A u64 as PostgreSQL's BIGINT.
fn bigint(number: u64, key: &str) -> Result<i64, StoreError> {
    i64::try_from(number).map_err(|_| StoreError::Unencodable {
        key: key.to_owned(),
        reason: format!("{number} is beyond PostgreSQL's BIGINT"),
    })
}

/// A stored BIGINT as the u64 it was written from.
fn unsigned(number: i64, key: &str) -> Result<u64, StoreError> {
    u64::try_from(number).map_err(|_| StoreError::Corrupt {
        key: key.to_owned(),
        reason: format!("negative number {number}"),
    })
}

/// A u64 range bound as a BIGINT bound (ranges reach up to `u64::MAX`).
fn bound(number: u64) -> i64 {
    i64::try_from(number).unwrap_or(i64::MAX)
}

/// The writes of an audit batch: appended, never overwriting; all entries in
/// one statement and all heads in another (a group commit is one round trip
/// per table, not one per entry).
fn audit_writes(batch: &AuditBatch) -> Result<Vec<Write>, StoreError> {
    let mut writes = Vec::with_capacity(3);
    if !batch.entries.is_empty() {
        let seqs = batch
            .entries
            .iter()
            .map(|(seq, _)| bigint(*seq, "audit_entries"))
            .collect::<Result<_, _>>()?;
        let entries = batch.entries.iter().map(|(_, e)| e.clone()).collect();
        writes.push(Write {
            sql: "INSERT INTO audit_entries (seq, entry) \
                  SELECT * FROM unnest($1::BIGINT[], $2::BYTEA[])",
            params: vec![Value::Ints(seqs), Value::Blobs(entries)],
        });
    }
    if !batch.heads.is_empty() {
        let sizes = batch
            .heads
            .iter()
            .map(|head| bigint(head.tree_size, "audit_heads"))
            .collect::<Result<_, _>>()?;
        let heads = batch.heads.iter().map(|h| h.to_bytes().to_vec()).collect();
        writes.push(Write {
            sql: "INSERT INTO audit_heads (tree_size, head) \
                  SELECT * FROM unnest($1::BIGINT[], $2::BYTEA[])",
            params: vec![Value::Ints(sizes), Value::Blobs(heads)],
        });
    }
    writes.push(put_meta(AUDIT_FRONTIER, batch.frontier.clone()));
    Ok(writes)
}

/// How one try of a write transaction ended, short of committing.
enum Attempt {
    Postgres(tokio_postgres::Error),
    /// The lease was taken over: the lease's token is now `current`.
    Fenced {
        current: i64,
    },
}

impl From<tokio_postgres::Error> for Attempt {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Postgres(error)
    }
}

fn is_serialization_failure(error: &tokio_postgres::Error) -> bool {
    matches!(
        error.code(),
        Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// The TLS (or plain) connector for `settings`.
fn connector(settings: &PostgresSettings) -> Result<deadpool_postgres::Manager, StoreError> {
    let mut config = tokio_postgres::Config::from_str(&settings.postgres).map_err(|e| {
        StoreError::PostgresConfig {
            reason: settings.scrub(&e.to_string()),
        }
    })?;
    // A database that stops answering (its host gone, a partition) fails
    // the store's calls within seconds instead of the kernel's minutes, so
    // that a coordinator cut off from it notices its lease is lost.
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECTION_TIMEOUT);
    }
    config.tcp_user_timeout(CONNECTION_TIMEOUT);
    config.keepalives_idle(CONNECTION_TIMEOUT);
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let Some(ca) = &settings.ca_certificate else {
        return Ok(Manager::from_config(
            config,
            tokio_postgres::NoTls,
            manager_config,
        ));
    };
    // With a CA the link is TLS or nothing: libpq's default (`prefer`) would
    // fall back to plain text, password included, for a server (or a man in
    // the middle) that declines TLS.
    config.ssl_mode(tokio_postgres::config::SslMode::Require);
    let mut roots = rustls::RootCertStore::empty();
    for certificate in cohort_crypto::tls::load_certificates(ca)? {
        roots
            .add(certificate)
            .map_err(|e| StoreError::PostgresConfig {
                reason: format!("CA certificate {}: {e}", ca.display()),
            })?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::PostgresConfig {
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
    Ok(Manager::from_config(config, tls, manager_config))
}

/// The coordinator's durable state in a PostgreSQL database. Cheap to clone
/// (every clone shares one connection pool).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// The active coordinator's lease token, checked by every write
    /// transaction ([`PgStore::fenced`]); `None` for offline tools.
    fence: Option<FencingToken>,
    /// The tainted model versions, in memory ([`taints`]).
    taints: std::sync::Arc<taints::TaintCache>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: it may carry a password.
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database and applies the migrations it lacks (under
    /// an advisory lock, so that coordinators starting together apply each
    /// once).
    pub async fn open(settings: &PostgresSettings) -> Result<Self, StoreError> {
        let pool = Pool::builder(connector(settings)?)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| StoreError::PostgresConfig {
                reason: e.to_string(),
            })?;
        let store = Self {
            pool,
            fence: None,
            taints: std::sync::Arc::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::PostgresPool(e.to_string()))
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // A coordinator paused mid-migration must not hold the others back.
        tx.batch_execute(&limit_idle()).await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS cohort_migrations \
             (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await?;
        for (version, sql) in MIGRATIONS {
            let applied = tx
                .query_opt(
                    "SELECT version FROM cohort_migrations WHERE version = $1",
                    &[version],
                )
                .await?
                .is_some();
            if !applied {
                tx.batch_execute(sql).await?;
                tx.execute(
                    "INSERT INTO cohort_migrations (version) VALUES ($1)",
                    &[version],
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Runs `writes` in one SERIALIZABLE transaction (fenced, see
    /// [`lease`]), again from the start when it loses a serialization conflict.
    async fn transact(&self, writes: &[Write]) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let mut attempt = 1;
        loop {
            match self.try_transaction(&mut client, writes).await {
                Err(Attempt::Postgres(e)) if is_serialization_failure(&e) && attempt < ATTEMPTS => {
                    attempt += 1;
                }
                Err(Attempt::Postgres(e)) => return Err(e.into()),
                Err(Attempt::Fenced { current }) => return Err(self.fenced_error(current)),
                Ok(()) => return Ok(()),
            }
        }
    }

    async fn try_transaction(
        &self,
        client: &mut deadpool_postgres::Client,
        writes: &[Write],
    ) -> Result<(), Attempt> {
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::Serializable)
            .start()
            .await?;
        if let Some(current) = lease::check_fence(&tx, self.fence).await? {
            return Err(Attempt::Fenced { current });
        }
        for write in writes {
            let params: Vec<_> = write.params.iter().map(Value::as_sql).collect();
            tx.execute(write.sql, &params).await?;
        }
        Ok(tx.commit().await?)
    }

    /// The error of a write fenced off by the lease's `current` token.
    fn fenced_error(&self, current: i64) -> StoreError {
        StoreError::Fenced {
            token: self.fence.map_or(0, FencingToken::get),
            current: current.unsigned_abs(),
        }
    }

    async fn bytes(
        &self,
        sql: &str,
        key: &(dyn ToSql + Sync),
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let row = self.client().await?.query_opt(sql, &[key]).await?;
        Ok(row.map(|row| row.try_get(0)).transpose()?)
    }

    async fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.bytes("SELECT value FROM meta WHERE key = $1", &key)
            .await?
            .map(|bytes| decode(key, &bytes))
            .transpose()
    }

    /// The federation definition recorded on first start, if any.
    pub async fn definition(&self) -> Result<Option<FederationDefinition>, StoreError> {
        self.meta(DEFINITION).await
    }

    /// Records the definition on first start; on later starts, checks it is
    /// the same (the first of two racing starts wins, the other is checked).
    pub async fn check_definition(
        &self,
        definition: &FederationDefinition,
    ) -> Result<(), StoreError> {
        self.transact(&[Write {
            sql: "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            params: vec![
                Value::Text(DEFINITION.to_owned()),
                Value::Bytes(encode(DEFINITION, definition)?),
            ],
        }])
        .await?;
        let stored = self
            .definition()
            .await?
            .ok_or_else(|| StoreError::Corrupt {
                key: DEFINITION.to_owned(),
                reason: "missing right after it was written".into(),
            })?;
        super::same_definition(stored, definition)
    }

    /// Keeps the configuration this start runs with.
    pub async fn put_config(
        &self,
        config: &crate::config::FederationConfig,
    ) -> Result<(), StoreError> {
        self.transact(&[put_meta(CONFIG, encode(CONFIG, config)?)])
            .await
    }

    /// The configuration of the latest start, if one was kept.
    pub async fn config(&self) -> Result<Option<crate::config::FederationConfig>, StoreError> {
        self.meta(CONFIG).await
    }

    /// Where the federation stands (none before the first start).
    pub async fn head(&self) -> Result<Option<FederationHead>, StoreError> {
        self.meta(HEAD).await
    }

    /// Stores the initial model and makes it the head, unless a head exists.
    pub async fn init_head(
        &self,
        model_version: &str,
        encoded: &[u8],
    ) -> Result<FederationHead, StoreError> {
        if let Some(head) = self.head().await? {
            return Ok(head);
        }
        let head = FederationHead::at(0, model_version);
        // A coordinator starting at the same moment may set it first: its
        // head is kept (and the model it names, the same content-addressed one).
        self.transact(&[
            put_model(model_version, encoded),
            Write {
                sql: "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                params: vec![
                    Value::Text(HEAD.to_owned()),
                    Value::Bytes(encode(HEAD, &head)?),
                ],
            },
        ])
        .await?;
        self.head().await?.ok_or_else(|| StoreError::Corrupt {
            key: HEAD.to_owned(),
            reason: "missing right after it was written".into(),
        })
    }

    /// The feature scaling agreed in round 0, if it has been.
    pub async fn feature_scaling(&self) -> Result<Option<FeatureScaling>, StoreError> {
        self.meta(SCALING).await
    }

    /// Keeps the agreed feature scaling, durably.
    pub async fn set_feature_scaling(&self, scaling: &FeatureScaling) -> Result<(), StoreError> {
        self.transact(&[put_meta(SCALING, encode(SCALING, scaling)?)])
            .await
    }

    /// Encoded parameters of a model version.
    pub async fn model(&self, version: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.bytes("SELECT parameters FROM models WHERE version = $1", &version)
            .await
    }

    /// The registry's record of `node_id`, if it ever registered.
    pub async fn node(&self, node_id: &str) -> Result<Option<NodeRecord>, StoreError> {
        self.bytes("SELECT record FROM nodes WHERE node_id = $1", &node_id)
            .await?
            .map(|bytes| decode(node_id, &bytes))
            .transpose()
    }

    /// The records of those of `node_ids` that ever registered, in one query.
    pub async fn node_records(
        &self,
        node_ids: &[String],
    ) -> Result<BTreeMap<String, NodeRecord>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT node_id, record FROM nodes WHERE node_id = ANY($1)",
                &[&node_ids],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let node_id: String = row.try_get(0)?;
                let record = decode(&node_id, row.try_get(1)?)?;
                Ok((node_id, record))
            })
            .collect()
    }

    /// Writes a node's record.
    pub async fn put_node(&self, record: &NodeRecord) -> Result<(), StoreError> {
        self.transact(&[Write {
            sql: "INSERT INTO nodes (node_id, record) VALUES ($1, $2) \
                  ON CONFLICT (node_id) DO UPDATE SET record = EXCLUDED.record",
            params: vec![
                Value::Text(record.node_id.clone()),
                Value::Bytes(encode(&record.node_id, record)?),
            ],
        }])
        .await
    }

    /// The DP events spent so far, if the federation runs under a budget.
    pub async fn privacy_ledger(&self) -> Result<Option<PrivacyLedger>, StoreError> {
        self.meta(PRIVACY_LEDGER).await
    }

    /// Writes the privacy ledger alone, durably (a release's charge before
    /// its round commits).
    pub async fn charge_privacy(&self, ledger: &PrivacyLedger) -> Result<(), StoreError> {
        self.transact(&[put_meta(PRIVACY_LEDGER, encode(PRIVACY_LEDGER, ledger)?)])
            .await
    }

    /// A stateful strategy's state as of the head's round.
    pub async fn strategy_state(&self) -> Result<Option<StrategyState>, StoreError> {
        self.meta(STRATEGY_STATE).await
    }
}

/// Stores a model under its content address, keeping a version already there.
fn put_model(version: &str, encoded: &[u8]) -> Write {
    Write {
        sql: "INSERT INTO models (version, parameters) VALUES ($1, $2) \
              ON CONFLICT (version) DO NOTHING",
        params: vec![
            Value::Text(version.to_owned()),
            Value::Bytes(encoded.to_vec()),
        ],
    }
}

mod rounds;

pub use copy::CopySummary;
