//! `[server]`: where the coordinator listens, its files, and the limits it
//! holds every node to.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};
use crate::store::{PostgresSettings, StoreLocation};

/// The `[server]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the gRPC service listens on.
    pub listen: SocketAddr,
    /// The coordinator's folder: the audit signing key, and the sled
    /// database unless `store` puts the state in PostgreSQL.
    pub state_dir: PathBuf,
    /// Where the federation's state is kept when not in `state_dir`:
    /// `store = { postgres = "postgres://user:password@host/db",
    /// ca_certificate = "db-ca.pem" }` (TLS to the database, verified against
    /// that CA, when given). Absent: the sled database in `state_dir`. Never
    /// written into the state (the URL may carry a password).
    #[serde(default, skip_serializing)]
    pub store: Option<PostgresSettings>,
    /// The federation's CA certificate: every peer's certificate must chain to it.
    pub ca_certificate: PathBuf,
    /// The coordinator's certificate (PEM).
    pub certificate: PathBuf,
    /// The coordinator's private key (PEM, mode 0600).
    pub private_key: PathBuf,
    /// How long a node's poll is held open when there is no task for it.
    #[serde(default = "default_poll_timeout_ms")]
    pub poll_timeout_ms: u64,
    /// A registered node that has not polled for this long is not sampled.
    #[serde(default = "default_liveness_ms")]
    pub liveness_ms: u64,
    /// Connections open at once, handshakes included; more are closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Requests one node may make per second, sustained (a round costs a node
    /// about ten); past it, requests are refused with RESOURCE_EXHAUSTED.
    #[serde(default = "default_requests_per_second")]
    pub requests_per_second: u32,
    /// Requests one node may make at once above the sustained rate.
    #[serde(default = "default_request_burst")]
    pub request_burst: u32,
    /// Revoked certificates: the CA-signed list `pki/revoked.signed` written
    /// by `cohort-coordinator pki revoke` (the plain `revoked.txt` beside it
    /// is the operator's annotated copy). Refused even though they chain to
    /// the CA, on every API. Consulted on every request and re-read when the
    /// file changes, so a revocation applies without a restart; while the
    /// file cannot be read, is not signed by the federation's CA, or is older
    /// than the list adopted, every request is refused (UNAVAILABLE, retry
    /// later). The same list is relayed to nodes with every task, for their
    /// checks of secure-aggregation neighbours.
    #[serde(default)]
    pub revocation_list: Option<PathBuf>,
    /// Keep serving once the rounds have finished (until Ctrl-C or SIGTERM):
    /// auditors can still read the log, nodes download models and report
    /// erasures, and an erasure that taints the final model is retrained at
    /// once by the nodes that start again. Off, the coordinator stops after
    /// the last round (what a simulation or a one-off run wants) and such an
    /// erasure is retrained at its next start.
    #[serde(default)]
    pub serve_after_finish: bool,
    /// Where to serve `/healthz`, `/readyz` and `/metrics` over plain HTTP
    /// (e.g. `127.0.0.1:9464`); off when absent. Unauthenticated: bind it to
    /// loopback or a monitoring network (see `coordinator::observability`).
    #[serde(default)]
    pub observability_listen: Option<SocketAddr>,
    /// Where to serve the read-only web console (`coordinator::console`);
    /// off when absent. On a loopback address (e.g. `127.0.0.1:9465`) it
    /// speaks plain HTTP to whoever can reach the address; on any other it
    /// speaks TLS with the coordinator's own certificate and admits only
    /// clients with an operator or auditor certificate of the federation's
    /// CA (`pki issue --operator` / `--auditor`), not revoked.
    #[serde(default)]
    pub console_listen: Option<SocketAddr>,
    /// Write each committed round's scalars (held-out accuracy and loss,
    /// participants, ε spent) as a TensorBoard event file into this folder
    /// (`tensorboard --logdir` it); off when absent. A restart adds a new file
    /// that TensorBoard merges by round. See `coordinator::observability::tensorboard`.
    #[serde(default)]
    pub tensorboard_dir: Option<PathBuf>,
    /// How long, from an erasure request, the nodes that had received one of
    /// its tainted models have to acknowledge withdrawing it (they do with
    /// their next poll). Past it, those that did not are recorded as
    /// unreachable in the audit log and the request closes without them; at
    /// most 29 days, so a request can close within its one-month deadline.
    #[serde(default = "default_withdrawal_patience_hours")]
    pub withdrawal_patience_hours: u64,
    /// With `store` on PostgreSQL: how long the active coordinator's lease
    /// lasts unless renewed (it renews every third of it). A standby takes
    /// over at most this long, plus a third, after the active coordinator
    /// dies; a shorter lease fails over sooner but survives shorter pauses
    /// (a stalled disk, a long GC) before its holder is fenced off. See
    /// `coordinator::failover`.
    #[serde(default = "default_coordinator_lease_ms")]
    pub coordinator_lease_ms: u64,
    /// With `store` on PostgreSQL: start with settings that differ from the
    /// ones the federation ran with (`serve --change-settings`; never read
    /// from the file, so that a standby cannot keep it on). Otherwise a
    /// coordinator refuses to take such a federation over (see
    /// `coordinator::failover`).
    #[serde(skip)]
    pub change_settings: bool,
}

/// `server.coordinator_lease_ms` when the file leaves it out.
pub fn default_coordinator_lease_ms() -> u64 {
    10_000
}

/// The shortest `server.coordinator_lease_ms`: a renewal, every third of it,
/// must fit a database round trip with room to spare.
pub const MIN_COORDINATOR_LEASE_MS: u64 = 300;

/// `server.withdrawal_patience_hours` when the file leaves it out: a week.
pub fn default_withdrawal_patience_hours() -> u64 {
    7 * 24
}

/// The longest `server.withdrawal_patience_hours`: a day short of the
/// 30-day erasure deadline.
pub const MAX_WITHDRAWAL_PATIENCE_HOURS: u64 = 29 * 24;

fn default_poll_timeout_ms() -> u64 {
    10_000
}
fn default_liveness_ms() -> u64 {
    60_000
}
/// `server.max_connections` when the file leaves it out: the mTLS acceptor's default.
pub fn default_max_connections() -> usize {
    cohort_crypto::tls::acceptor::DEFAULT_MAX_CONNECTIONS
}
/// `server.requests_per_second` when the file leaves it out.
pub fn default_requests_per_second() -> u32 {
    200
}
/// `server.request_burst` when the file leaves it out.
pub fn default_request_burst() -> u32 {
    400
}

impl ServerConfig {
    /// Where the federation's state is kept: the database of `store`, else
    /// the sled folder `state_dir`.
    pub fn store_location(&self) -> StoreLocation {
        match &self.store {
            Some(settings) => StoreLocation::Postgres(settings.clone()),
            None => StoreLocation::Folder(self.state_dir.clone()),
        }
    }

    /// Refuses zero timeouts and limits, and a liveness window no longer than
    /// the poll timeout (a polling node would look dead).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.poll_timeout_ms == 0 {
            return Err(invalid("server.poll_timeout_ms", "must be at least 1"));
        }
        if let Some(store) = &self.store {
            store
                .validate()
                .map_err(|problem| invalid("server.store.postgres", problem))?;
        }
        for (key, value) in [
            ("server.max_connections", self.max_connections as u64),
            (
                "server.requests_per_second",
                u64::from(self.requests_per_second),
            ),
            ("server.request_burst", u64::from(self.request_burst)),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.withdrawal_patience_hours > MAX_WITHDRAWAL_PATIENCE_HOURS {
            return Err(invalid(
                "server.withdrawal_patience_hours",
                format!(
                    "must be at most {MAX_WITHDRAWAL_PATIENCE_HOURS} (29 days), so that an \
                     erasure can close within its 30-day deadline"
                ),
            ));
        }
        if !(MIN_COORDINATOR_LEASE_MS..=u64::from(u32::MAX)).contains(&self.coordinator_lease_ms) {
            return Err(invalid(
                "server.coordinator_lease_ms",
                format!(
                    "must be between {MIN_COORDINATOR_LEASE_MS} and {}",
                    u32::MAX
                ),
            ));
        }
        self.validate_console()?;
        if self.liveness_ms <= self.poll_timeout_ms {
            return Err(invalid(
                "server.liveness_ms",
                "must exceed server.poll_timeout_ms, or polling nodes look dead",
            ));
        }
        Ok(())
    }

    /// Refuses a console address that another of the coordinator's listeners
    /// already takes (port 0 picks a free port each time, so it never clashes).
    fn validate_console(&self) -> Result<(), ConfigError> {
        let Some(console) = self.console_listen else {
            return Ok(());
        };
        let taken = [Some(self.listen), self.observability_listen];
        if console.port() != 0 && taken.contains(&Some(console)) {
            return Err(invalid(
                "server.console_listen",
                format!("{console} is already server.listen or server.observability_listen"),
            ));
        }
        Ok(())
    }
}
