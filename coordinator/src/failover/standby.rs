//! A standby coordinator: it answers, but runs nothing, until it holds the
//! lease. Its gRPC port (mutual TLS, as the active one's) refuses every call
//! with [`RefusalReason::NotActive`] (`UNAVAILABLE`), so that a node moves on
//! to its next coordinator address at once instead of timing out; its
//! `/readyz` answers 503, so that a load balancer or Kubernetes sends no
//! traffic its way; `/healthz` answers 200 (the process is fine).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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

/// Takes the lease, serving as a standby for as long as another coordinator
/// holds it. Polls every third of `ttl`, so a takeover comes at most that
/// long after the holder's lease expires.
pub async fn wait_for_lease(
    config: &FederationConfig,
    tls: &Arc<rustls::ServerConfig>,
    database: &PgStore,
    ttl: Duration,
) -> Result<FencingToken, CoordinatorError> {
    let holder = super::holder_name(config);
    if let Some(token) = database.take_lease(&holder, ttl).await? {
        return Ok(token);
    }
    let servers = StandbyServers::start(config, tls).await?;
    let current = database.lease().await?;
    tracing::info!(
        listen = %config.server.listen,
        active = %current.holder,
        token = %current.token,
        "standby: another coordinator holds the lease"
    );
    let token = loop {
        tokio::time::sleep(ttl / 3).await;
        match database.take_lease(&holder, ttl).await {
            Ok(Some(token)) => break token,
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "standby: the lease could not be read; retrying"),
        }
    };
    servers.stop().await;
    Ok(token)
}

/// The standby's listeners, until it stops them to become active.
struct StandbyServers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl StandbyServers {
    async fn start(
        config: &FederationConfig,
        tls: &Arc<rustls::ServerConfig>,
    ) -> Result<Self, CoordinatorError> {
        let (stop, stopped) = watch::channel(false);
        let server = &config.server;
        let listener = bind(server.listen).await?;
        let mut tasks = vec![refuse_grpc(
            listener,
            tls.clone(),
            server.max_connections,
            stopped.clone(),
        )];
        if let Some(address) = server.observability_listen {
            tasks.push(answer_probes(bind(address).await?, stopped));
        }
        Ok(Self { stop, tasks })
    }

    /// Stops the listeners and waits until their ports are free again.
    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

async fn bind(address: SocketAddr) -> Result<TcpListener, CoordinatorError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| CoordinatorError::Listen {
            addr: address,
            source,
        })
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
