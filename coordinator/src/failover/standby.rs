//! A standby coordinator: it answers, but runs nothing, until it holds the
//! lease. Its gRPC port (mutual TLS, as the active one's) refuses every call
//! with [`RefusalReason::NotActive`] (`UNAVAILABLE`), so that a node moves on
//! to its next coordinator address at once instead of timing out; its
//! `/readyz` answers 503, so that a load balancer or Kubernetes sends no
//! traffic its way; `/healthz` answers 200 (the process is fine).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use cohort_crypto::authz::{Refusal, RefusalReason};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::CoordinatorError;
use crate::config::FederationConfig;
use crate::store::PgStore;
use crate::store::postgres::lease::FencingToken;

/// The lease, as this coordinator took it.
pub(super) struct Taken {
    /// Its fencing token.
    pub token: FencingToken,
    /// When the request that took it was sent: it holds until then plus its
    /// length, at least.
    pub at: Instant,
    /// The standby's listeners, if this coordinator had to stand by: to be
    /// stopped before the active coordinator's bind the same ports.
    pub standby: Option<StandbyServers>,
}

/// Takes the lease, serving as a standby for as long as another coordinator
/// holds it. Polls every third of `ttl`, so a takeover comes at most that
/// long after the holder's lease expires. Before standing by it checks what
/// it would need at takeover ([`check_takeover`]), so that a standby that
/// could never take over fails when it starts, not when it is needed.
pub(super) async fn wait_for_lease(
    config: &FederationConfig,
    tls: &Arc<rustls::ServerConfig>,
    database: &PgStore,
    ttl: Duration,
) -> Result<Taken, CoordinatorError> {
    let holder = super::holder_name(config);
    let mut standby: Option<StandbyServers> = None;
    loop {
        let at = Instant::now();
        match database.take_lease(&holder, ttl).await {
            Ok(Some(token)) => return Ok(Taken { token, at, standby }),
            Ok(None) if standby.is_none() => {
                check_takeover(config, database).await?;
                standby = Some(StandbyServers::start(config, tls).await?);
                let current = database.lease().await?;
                tracing::info!(
                    listen = %config.server.listen,
                    active = %current.holder,
                    token = %current.token,
                    "standby: another coordinator holds the lease"
                );
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "standby: the lease could not be read; retrying"),
        }
        tokio::time::sleep(ttl / 3).await;
    }
}

/// What a coordinator must share with the running federation to take it
/// over: its settings ([`differing_settings`]; any, with
/// `serve --change-settings`), and the audit key that signed the log.
pub(super) async fn check_takeover(
    config: &FederationConfig,
    database: &PgStore,
) -> Result<(), CoordinatorError> {
    if let Some(running) = database.config().await? {
        let differing = differing_settings(
            &running,
            &crate::store::as_stored(crate::store::CONFIG, config)?,
        );
        if !differing.is_empty() {
            let differing = differing.join(", ");
            if !config.server.change_settings {
                return Err(CoordinatorError::SettingsChanged(differing));
            }
            tracing::warn!(settings = %differing, "changing the federation's settings (--change-settings)");
        }
    }
    let key = config.server.state_dir.join(crate::audit::SIGNING_KEY_FILE);
    let store = crate::store::Store::Postgres(database.clone());
    crate::audit::check_signing_key(&store, &key, &config.federation_id).await?;
    Ok(())
}

/// The settings, by their name in federation.toml, in which `mine` differs
/// from `running`: every section but `[server]` (addresses, files, limits:
/// per host), and the `[server]` settings that are the federation's, not the
/// host's (whether certificates are checked against a revocation list, how
/// long holders of a tainted model are waited for, whether auditors are
/// served after the last round).
pub fn differing_settings(
    running: &FederationConfig,
    mine: &FederationConfig,
) -> Vec<&'static str> {
    let (a, b) = (&running.server, &mine.server);
    let settings = [
        ("federation_id", running.federation_id == mine.federation_id),
        ("[model]", running.model.same_model(&mine.model)),
        ("[rounds]", running.rounds == mine.rounds),
        ("[training]", running.training == mine.training),
        ("[privacy]", running.privacy == mine.privacy),
        (
            "[secure_aggregation]",
            running.secure_aggregation == mine.secure_aggregation,
        ),
        ("[strategy]", running.strategy == mine.strategy),
        ("[scaling]", running.scaling == mine.scaling),
        (
            "[server] revocation_list (set or not)",
            a.revocation_list.is_some() == b.revocation_list.is_some(),
        ),
        (
            "[server] withdrawal_patience_hours",
            a.withdrawal_patience_hours == b.withdrawal_patience_hours,
        ),
        (
            "[server] serve_after_finish",
            a.serve_after_finish == b.serve_after_finish,
        ),
    ];
    settings
        .into_iter()
        .filter(|(_, same)| !same)
        .map(|(name, _)| name)
        .collect()
}

/// The standby's listeners, until it stops them to become active.
pub(super) struct StandbyServers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// How long a standby's connections get to close when it becomes active.
const DRAIN: Duration = Duration::from_secs(1);

impl StandbyServers {
    async fn start(
        config: &FederationConfig,
        tls: &Arc<rustls::ServerConfig>,
    ) -> Result<Self, CoordinatorError> {
        let (stop, stopped) = watch::channel(false);
        let server = &config.server;
        let (listener, _) = crate::bind(server.listen).await?;
        let mut tasks = vec![refuse_grpc(
            listener,
            tls.clone(),
            server.max_connections,
            stopped.clone(),
        )];
        if let Some(address) = server.observability_listen {
            tasks.push(answer_probes(crate::bind(address).await?.0, stopped));
        }
        Ok(Self { stop, tasks })
    }

    /// Stops the listeners, giving their connections [`DRAIN`] to close, so
    /// that the ports are free again.
    pub(super) async fn stop(self) {
        let _ = self.stop.send(true);
        let drained = tokio::time::Instant::now() + DRAIN;
        for mut task in self.tasks {
            if tokio::time::timeout_at(drained, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
        }
    }
}

/// Resolves once `stopped` turns true.
async fn until(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Every gRPC call, of every service, refused as not active.
fn refuse_grpc(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    max_connections: usize,
    stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let incoming = cohort_crypto::tls::acceptor::mutual_tls_incoming(
        listener,
        tls,
        max_connections,
        |remote_addr, reason| tracing::info!(%remote_addr, %reason, "standby: handshake refused"),
    );
    let refuse = || async {
        tonic::Status::from(Refusal::new(
            RefusalReason::NotActive,
            "this coordinator is a standby: try another coordinator address",
        ))
        .into_http::<axum::body::Body>()
    };
    let routes = tonic::service::Routes::from(Router::new().fallback(refuse));
    tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, until(stopped))
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "standby gRPC server stopped");
        }
    })
}

/// `/healthz` 200 and `/readyz` 503 on the observability port.
fn answer_probes(listener: TcpListener, stopped: watch::Receiver<bool>) -> JoinHandle<()> {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "standby\n") }),
        );
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router)
            .with_graceful_shutdown(until(stopped))
            .await
        {
            tracing::error!(%error, "standby probe endpoint stopped");
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::store::postgres::scratch::ScratchServer;

    fn config(edit: impl FnOnce(&mut FederationConfig)) -> FederationConfig {
        let mut config = FederationConfig::parse(crate::config::tests::EXAMPLE).unwrap();
        edit(&mut config);
        config
    }

    #[test]
    fn only_the_hosts_own_settings_may_differ() {
        let running = config(|_| {});
        let elsewhere = config(|c| {
            c.server.listen = "10.0.0.2:7443".parse().unwrap();
            c.server.coordinator_lease_ms = 3_000;
        });
        assert!(differing_settings(&running, &elsewhere).is_empty());
        let unchecked = config(|c| c.server.revocation_list = Some("crl.pem".into()));
        assert_eq!(
            differing_settings(&unchecked, &running),
            ["[server] revocation_list (set or not)"]
        );
        let drifted = config(|c| {
            c.rounds.count = 50;
            c.training.learning_rate = 0.2;
        });
        assert_eq!(
            differing_settings(&running, &drifted),
            ["[rounds]", "[training]"]
        );
    }

    /// A standby whose settings drifted from the running federation's (here:
    /// no `[privacy]`, so a takeover would go on without DP) or whose audit
    /// key is missing or another refuses to stand by.
    #[tokio::test]
    async fn a_standby_that_could_not_take_over_refuses_to_stand_by() {
        let Some(server) = ScratchServer::start().unwrap() else {
            return;
        };
        let database = PgStore::open(&server.database("federation").unwrap())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let running = config(|c| {
            c.server.state_dir = dir.path().join("active");
            c.privacy = Some(
                toml::from_str(
                    "noise_multiplier = 1.0\nclip_norm = 1.0\nepsilon = 3.0\ndelta = 1e-5",
                )
                .unwrap(),
            );
        });
        database.put_config(&running).await.unwrap();
        let store = crate::store::Store::Postgres(database.clone());
        std::fs::create_dir_all(&running.server.state_dir).unwrap();
        let key = running
            .server
            .state_dir
            .join(crate::audit::SIGNING_KEY_FILE);
        let log = crate::audit::AuditLog::open(&store, &key, "breast-cancer")
            .await
            .unwrap();
        let downloaded = crate::audit::AuditEvent::ModelDownloaded {
            node_id: "ward-a".into(),
            model_version: "m".into(),
        };
        log.append(&store, vec![downloaded]).await.unwrap();

        let mut standby = running.clone();
        standby.server.state_dir = dir.path().join("standby");
        std::fs::create_dir_all(&standby.server.state_dir).unwrap();
        let without_dp = FederationConfig {
            privacy: None,
            ..standby.clone()
        };
        let refused = check_takeover(&without_dp, &database).await;
        assert!(
            matches!(&refused, Err(CoordinatorError::SettingsChanged(s)) if s == "[privacy]"),
            "{refused:?}"
        );
        let refused = check_takeover(&standby, &database).await;
        assert!(
            matches!(
                refused,
                Err(CoordinatorError::Audit(
                    crate::audit::AuditError::KeyMissing { .. }
                ))
            ),
            "{refused:?}"
        );
        let other_key = standby
            .server
            .state_dir
            .join(crate::audit::SIGNING_KEY_FILE);
        cohort_crypto::transparency::AuditSigningKey::generate(&other_key).unwrap();
        let refused = check_takeover(&standby, &database).await;
        assert!(
            matches!(
                refused,
                Err(CoordinatorError::Audit(
                    crate::audit::AuditError::KeyMismatch { .. }
                ))
            ),
            "{refused:?}"
        );
        std::fs::copy(&key, &other_key).unwrap();
        check_takeover(&standby, &database).await.unwrap();
        // Changing the settings on purpose.
        let mut changing = without_dp;
        changing.server.change_settings = true;
        check_takeover(&changing, &database).await.unwrap();
    }
}
