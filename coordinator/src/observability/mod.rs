//! Plain-HTTP endpoints for operators' tooling, on their own port
//! (`[server] observability_listen`): `/healthz` (the process answers),
//! `/readyz` (the store is open and the coordinator is not shutting down;
//! 503 otherwise) and `/metrics` (Prometheus text format, [`metrics`]).
//!
//! Threat model: these endpoints are unauthenticated, so they expose only
//! what an operator's monitoring may see — counts, durations, ε and the
//! budget; no node data, model, key or node identity. Bind them to loopback
//! or a monitoring network; the federation's own APIs stay on mutual TLS.

pub mod live;
pub mod metrics;
pub mod tensorboard;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::federation::Federation;

/// Binds `address` and serves the endpoints until the federation shuts
/// down; returns the bound address and the server task.
pub async fn serve(
    address: SocketAddr,
    federation: Arc<Federation>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    let mut shutdown = federation.shutdown_signal();
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(federation);
    let task = tokio::spawn(async move {
        let stopped = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        if let Err(error) = axum::serve(listener, router)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!(%error, "observability endpoint stopped");
        }
    });
    tracing::info!(%local, "health and metrics over plain HTTP");
    Ok((local, task))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(federation): State<Arc<Federation>>) -> (StatusCode, &'static str) {
    if *federation.shutdown_signal().borrow() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else {
        (StatusCode::OK, "ready\n")
    }
}

async fn metrics_text(State(federation): State<Arc<Federation>>) -> impl IntoResponse {
    match metrics::scrape(&federation).await {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        ),
        Err(error) => {
            tracing::error!(%error, "metrics scrape failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("{error}\n"),
            )
        }
    }
}
