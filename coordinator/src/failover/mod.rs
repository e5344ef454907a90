//! Active/standby coordinators over one PostgreSQL database (issue #20).
//!
//! Any number of coordinator processes may be configured with the same
//! `[server] store = { postgres = … }`. Exactly one is active: the holder of
//! the database's lease ([`crate::store::postgres::lease`]). The others are
//! standbys ([`standby`]): they answer `/readyz` with 503 and every gRPC call
//! with the typed refusal [`RefusalReason::NotActive`], which tells a node to
//! try its next coordinator address, until the lease expires; then one of
//! them takes it over, loads the federation's state from the database and
//! carries on from the last committed round (the round in flight is rerun,
//! as after a restart).
//!
//! The active coordinator renews its lease every third of its length
//! (`[server] coordinator_lease_ms`). Every write it makes is fenced by the
//! lease's token, so a coordinator that was paused or cut off past the
//! expiry and comes back cannot commit anything once another took over
//! ([`crate::store::StoreError::Fenced`]); when it notices, by a failed
//! renewal or a fenced write, it stops ([`ActiveLease::lost`]). A coordinator
//! that stops cleanly gives the lease up, so a standby takes over at once.
//!
//! What the coordinators share: the database, the federation's TLS files (a
//! coordinator certificate each, or one, valid for the addresses nodes
//! dial), and the audit log's signing key: every coordinator's `state_dir`
//! must hold the same `audit-signing.key` (0600), copied from the first one
//! to start, since the audit log verifies its signed heads against one key.
//!
//! Threat model: coordinators fail by crashing, pausing or partition, not by
//! lying to each other (an insider with the database can do anything the
//! active coordinator can). The sled store is one process's folder, locked
//! by it: it has no standbys.
//!
//! [`RefusalReason::NotActive`]: cohort_crypto::authz::RefusalReason::NotActive

pub mod standby;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::FederationConfig;
use crate::store::postgres::lease::FencingToken;
use crate::store::{PgStore, Store};

/// The lease this coordinator holds while active, renewed in the background.
#[derive(Debug)]
pub struct ActiveLease {
    store: PgStore,
    token: FencingToken,
    lost: watch::Receiver<Option<String>>,
    renewal: JoinHandle<()>,
}

impl ActiveLease {
    /// Starts renewing the lease held with `token` every third of `ttl`.
    fn hold(store: PgStore, token: FencingToken, ttl: Duration) -> Self {
        let (lost_sender, lost) = watch::channel(None);
        let renewal = tokio::spawn(renew(store.clone(), token, ttl, lost_sender));
        Self {
            store,
            token,
            lost,
            renewal,
        }
    }

    /// The token this coordinator's writes are fenced with.
    pub fn token(&self) -> FencingToken {
        self.token
    }

    /// Resolves, with the reason, once this coordinator is no longer sure to
    /// hold the lease: another took it over, or it could not be renewed for
    /// a whole lease length. Never resolves while the lease holds.
    pub fn lost(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let mut lost = self.lost.clone();
        async move {
            let reason = match lost.wait_for(Option::is_some).await {
                Ok(reason) => reason.clone(),
                // The renewal task ended without saying why: it was stopped.
                Err(_) => None,
            };
            match reason {
                Some(reason) => reason,
                None => std::future::pending().await,
            }
        }
    }

    /// Stops renewing and gives the lease up, so that a standby takes over
    /// without waiting for it to expire.
    pub async fn release(self) {
        self.renewal.abort();
        let _ = self.renewal.await;
        match self.store.release_lease(self.token).await {
            Ok(()) => tracing::info!(token = %self.token, "coordinator lease released"),
            Err(error) => {
                tracing::warn!(%error, "the coordinator lease could not be released; it expires on its own")
            }
        }
    }
}

/// Renews the lease until it is taken over or cannot be renewed for `ttl`.
async fn renew(
    store: PgStore,
    token: FencingToken,
    ttl: Duration,
    lost: watch::Sender<Option<String>>,
) {
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(ttl / 3).await;
        let reason = match store.renew_lease(token, ttl).await {
            Ok(true) => {
                renewed = Instant::now();
                continue;
            }
            Ok(false) => format!("the coordinator lease (token {token}) was taken over"),
            Err(error) if renewed.elapsed() >= ttl => {
                format!("the coordinator lease could not be renewed for {ttl:?}: {error}")
            }
            Err(error) => {
                tracing::warn!(%error, "renewing the coordinator lease failed; retrying");
                continue;
            }
        };
        tracing::error!(%reason, "no longer the active coordinator");
        let _ = lost.send(Some(reason));
        return;
    }
}

/// How this coordinator holds the state: a sled folder is its alone; a
/// database's state is held through the lease.
#[derive(Debug)]
pub struct Activation {
    /// The store, fenced by the lease on PostgreSQL.
    pub store: Store,
    /// The lease, on PostgreSQL.
    pub lease: Option<ActiveLease>,
}

/// Opens the store and, on PostgreSQL, waits as a standby until this
/// coordinator holds the lease ([`standby::wait_for_lease`]).
pub async fn activate(
    config: &FederationConfig,
    tls: &Arc<rustls::ServerConfig>,
) -> Result<Activation, crate::CoordinatorError> {
    let store = Store::open(&config.server.store_location()).await?;
    let Store::Postgres(database) = store else {
        return Ok(Activation { store, lease: None });
    };
    let ttl = Duration::from_millis(config.server.coordinator_lease_ms);
    let token = standby::wait_for_lease(config, tls, &database, ttl).await?;
    tracing::info!(%token, "coordinator lease taken: active");
    Ok(Activation {
        store: Store::Postgres(database.fenced(token)),
        lease: Some(ActiveLease::hold(database, token, ttl)),
    })
}

/// What this coordinator calls itself in the lease: host, address, process.
pub(crate) fn holder_name(config: &FederationConfig) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default();
    format!("{host} {} pid {}", config.server.listen, std::process::id())
}
