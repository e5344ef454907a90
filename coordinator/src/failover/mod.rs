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
//! (`[server] coordinator_lease_ms`), on a database connection of its own.
//! It stops ([`ActiveLease::lost`]) when a renewal finds the lease taken
//! over, and also when no renewal has succeeded for four fifths of the
//! lease, whether the database answers or not: a coordinator cut off from
//! the database stops serving nodes before a standby can take over. Every
//! write it makes is fenced by the lease's token, so one that was paused
//! past the expiry and resumes cannot commit anything once another took
//! over ([`crate::store::StoreError::Fenced`]), and its gRPC server refuses
//! every call as not-active past the renewal deadline
//! ([`ActiveLease::serving`]), so one that resumes answers nothing, not even
//! a read, before it learns it was taken over. A coordinator that stops
//! cleanly gives the lease up, so a standby takes over at once.
//!
//! Whenever a coordinator takes the lease (and a standby also before it
//! stands by), it checks that it runs the settings the federation ran with
//! ([`standby::differing_settings`]: a failover must not change the privacy
//! budget, the noise, the rounds or the revocation list) and holds the key
//! that signed the audit log; otherwise it gives the lease back and fails.
//! Settings change only on purpose: every coordinator stopped, one started
//! with `serve --change-settings`.
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

use cohort_crypto::authz::ServingDeadline;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::FederationConfig;
use crate::store::postgres::lease::FencingToken;
use crate::store::{PgStore, Store};

/// The lease this coordinator holds while active, renewed in the background
/// on a database connection of its own (a busy store cannot delay it).
#[derive(Debug)]
pub struct ActiveLease {
    token: FencingToken,
    lost: watch::Receiver<Option<String>>,
    /// Until when this coordinator answers calls: the renewals' deadline.
    serving: ServingDeadline,
    /// Asks the renewal task to give the lease up ([`ActiveLease::release`]).
    release: Option<oneshot::Sender<()>>,
    renewal: Option<JoinHandle<()>>,
}

impl ActiveLease {
    /// Starts renewing the lease held with `token`, taken by a request sent
    /// at `taken`, every third of `ttl`.
    fn hold(store: PgStore, token: FencingToken, ttl: Duration, taken: Instant) -> Self {
        let (lost_sender, lost) = watch::channel(None);
        let (release, released) = oneshot::channel();
        let serving = ServingDeadline::new(trusted_until(taken, ttl));
        let renewal = Renewal {
            store,
            token,
            ttl,
            lost: lost_sender,
            serving: serving.clone(),
        };
        Self {
            token,
            lost,
            serving,
            release: Some(release),
            renewal: Some(tokio::spawn(renewal.run(taken, released))),
        }
    }

    /// The token this coordinator's writes are fenced with.
    pub fn token(&self) -> FencingToken {
        self.token
    }

    /// Until when this coordinator may answer calls: as long as it is sure
    /// to hold the lease (moved forward by each renewal, closed when the
    /// lease is lost). The gRPC server's authorizer refuses every call past
    /// it ([`cohort_crypto::authz::Authorizer::serving_until`]).
    pub fn serving(&self) -> ServingDeadline {
        self.serving.clone()
    }

    /// Resolves, with the reason, once this coordinator is no longer sure to
    /// hold the lease: another took it over, or it was not renewed in time
    /// (the database unreachable or slow) and may expire. Never resolves
    /// while the lease holds.
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
    /// without waiting for it to expire. The renewal task does it, after any
    /// renewal it has in flight: a renewal the database ran after the
    /// release would hold the lease for one more length.
    pub async fn release(mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
        if let Some(renewal) = self.renewal.take() {
            let _ = renewal.await;
        }
    }
}

impl Drop for ActiveLease {
    /// A lease dropped without [`ActiveLease::release`] (an embedder that
    /// drops the coordinator) is no longer renewed: it expires and a standby
    /// takes over.
    fn drop(&mut self) {
        if let Some(renewal) = &self.renewal {
            renewal.abort();
        }
    }
}

/// Until when a lease of `ttl` taken or renewed by a request sent at `sent`
/// is trusted: the database set its expiry after the request left, so it
/// holds until `sent + ttl` at least; a fifth of `ttl` is kept in hand.
fn trusted_until(sent: Instant, ttl: Duration) -> Instant {
    sent + ttl - ttl / 5
}

/// The task that keeps the lease.
struct Renewal {
    store: PgStore,
    token: FencingToken,
    ttl: Duration,
    lost: watch::Sender<Option<String>>,
    serving: ServingDeadline,
}

impl Renewal {
    /// Renews the lease every third of `ttl` until it is taken over, until it
    /// was not renewed in time ([`trusted_until`], whether the database
    /// answers or not), or until asked to give it up (`released`).
    async fn run(self, taken: Instant, mut released: oneshot::Receiver<()>) {
        let (token, ttl) = (self.token, self.ttl);
        let mut give_up = trusted_until(taken, ttl);
        let reason = loop {
            let next = (Instant::now() + ttl / 3).min(give_up);
            tokio::select! {
                biased;
                _ = &mut released => return self.release().await,
                () = tokio::time::sleep_until(next.into()) => {}
            }
            let sent = Instant::now();
            match tokio::time::timeout_at(give_up.into(), self.store.renew_lease(token, ttl)).await
            {
                Ok(Ok(true)) => {
                    give_up = trusted_until(sent, ttl);
                    self.serving.extend_to(give_up);
                }
                Ok(Ok(false)) => {
                    break format!("the coordinator lease (token {token}) was taken over");
                }
                Ok(Err(error)) if Instant::now() < give_up => {
                    tracing::warn!(%error, "renewing the coordinator lease failed; retrying");
                }
                Ok(Err(error)) => {
                    break format!("the coordinator lease was not renewed in time: {error}");
                }
                Err(_) => {
                    break format!(
                        "the database did not renew the coordinator lease in time ({ttl:?} lease)"
                    );
                }
            }
        };
        self.serving.close();
        tracing::error!(%reason, "no longer the active coordinator");
        let _ = self.lost.send(Some(reason));
    }

    async fn release(self) {
        match self.store.release_lease(self.token).await {
            Ok(()) => tracing::info!(token = %self.token, "coordinator lease released"),
            Err(error) => {
                tracing::warn!(%error, "the coordinator lease could not be released; it expires on its own")
            }
        }
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
/// coordinator holds the lease ([`standby::wait_for_lease`]). It keeps the
/// lease only with the running federation's settings and audit key
/// ([`standby::check_takeover`]); otherwise it gives the lease up again and
/// fails.
pub async fn activate(
    config: &FederationConfig,
    tls: &Arc<rustls::ServerConfig>,
) -> Result<Activation, crate::CoordinatorError> {
    let store = Store::open(&config.server.store_location()).await?;
    let (Store::Postgres(database), Some(settings)) = (&store, &config.server.store) else {
        return Ok(Activation { store, lease: None });
    };
    let lease_connection = PgStore::open(settings).await?;
    let ttl = Duration::from_millis(config.server.coordinator_lease_ms);
    let taken = standby::wait_for_lease(config, tls, database, ttl).await?;
    let lease = ActiveLease::hold(lease_connection, taken.token, ttl, taken.at);
    tracing::info!(token = %taken.token, "coordinator lease taken: active");
    if let Some(servers) = taken.standby {
        servers.stop().await;
    }
    // Also when the lease was free at once: a coordinator restarted with
    // other settings, or the standby that just failed this check, must not
    // take the federation over with them.
    if let Err(error) = standby::check_takeover(config, database).await {
        lease.release().await;
        return Err(error);
    }
    Ok(Activation {
        store: Store::Postgres(database.fenced(taken.token)),
        lease: Some(lease),
    })
}

/// What this coordinator calls itself in the lease: host, address, process.
pub(crate) fn holder_name(config: &FederationConfig) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default();
    format!("{host} {} pid {}", config.server.listen, std::process::id())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::store::postgres::scratch::ScratchServer;

    const TTL: Duration = Duration::from_millis(600);

    async fn held(server: &ScratchServer) -> (PgStore, ActiveLease) {
        let store = PgStore::open(&server.database("federation").unwrap())
            .await
            .unwrap();
        let at = Instant::now();
        let token = store.take_lease("active", TTL).await.unwrap().unwrap();
        (store.clone(), ActiveLease::hold(store, token, TTL, at))
    }

    /// A released lease is free at once (no renewal in flight can undo it).
    #[tokio::test]
    async fn a_released_lease_is_free_at_once() {
        let Some(server) = ScratchServer::start().unwrap() else {
            return;
        };
        let (store, lease) = held(&server).await;
        assert_eq!(store.take_lease("standby", TTL).await.unwrap(), None);
        lease.release().await;
        assert!(store.take_lease("standby", TTL).await.unwrap().is_some());
    }

    /// A renewal that finds the lease taken over reports it lost.
    #[tokio::test]
    async fn a_lease_taken_over_is_reported_lost() {
        let Some(server) = ScratchServer::start().unwrap() else {
            return;
        };
        let (store, lease) = held(&server).await;
        // As if it had expired unrenewed: the other takes it at once.
        store.release_lease(lease.token()).await.unwrap();
        store.take_lease("standby", TTL).await.unwrap().unwrap();
        let reason = lease.lost().await;
        assert!(reason.contains("taken over"), "{reason}");
        assert!(lease.serving().has_passed(), "calls still answered");
    }

    /// A coordinator cut off from the database stops trusting its lease
    /// before the lease can expire, whether the database answers or not.
    #[tokio::test]
    async fn a_lease_that_cannot_be_renewed_is_reported_lost() {
        let Some(server) = ScratchServer::start().unwrap() else {
            return;
        };
        let (_store, lease) = held(&server).await;
        drop(server); // The database is gone.
        let reason = lease.lost().await;
        assert!(reason.contains("in time"), "{reason}");
        assert!(lease.serving().has_passed(), "calls still answered");
    }
}
