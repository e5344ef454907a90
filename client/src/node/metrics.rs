//! The node's own Prometheus metrics (`cohort-node run --metrics-listen`):
//! what its training costs and what its privacy ledgers have spent, for the
//! hospital's or bank's own monitoring.
//!
//! Threat model: the endpoint is plain, unauthenticated HTTP, and it reports
//! exact numbers the coordinator may only see noised (the example count of a
//! DP-SGD round) or not at all (training time). It is off unless the node
//! is given an address; expose it only to the node operator's monitoring
//! (loopback or a monitoring network). It never
//! carries rows, parameters, keys or the identities of other nodes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The node's metrics, updated as it works (cheap atomics: every node has
/// them, served or not).
#[derive(Debug)]
pub struct NodeMetrics {
    rounds_trained: Counter,
    examples_trained: Counter,
    training_seconds: Histogram,
    rounds_over_budget: Counter,
    /// The last round counted in `rounds_over_budget` (a declined round's
    /// task comes back at every poll until its stage closes).
    last_round_over_budget: AtomicU64,
    updates_sent: Counter,
    evaluations_sent: Counter,
    record_epsilon: Gauge<f64, AtomicU64>,
    distributed_epsilon: Gauge<f64, AtomicU64>,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        Self {
            rounds_trained: Counter::default(),
            examples_trained: Counter::default(),
            // 10 ms to about 3 min.
            training_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 15)),
            rounds_over_budget: Counter::default(),
            last_round_over_budget: AtomicU64::new(0),
            updates_sent: Counter::default(),
            evaluations_sent: Counter::default(),
            record_epsilon: Gauge::default(),
            distributed_epsilon: Gauge::default(),
        }
    }
}

impl NodeMetrics {
    /// A round's local training finished: `examples` rows in `took`.
    pub(crate) fn trained(&self, examples: u64, took: Duration) {
        self.rounds_trained.inc();
        self.examples_trained.inc_by(examples);
        self.training_seconds.observe(took.as_secs_f64());
    }

    /// Round `round` declined for the node's own budget (counted once
    /// however often its task is declined).
    pub(crate) fn over_budget(&self, round: u64) {
        if self
            .last_round_over_budget
            .fetch_max(round, Ordering::Relaxed)
            < round
        {
            self.rounds_over_budget.inc();
        }
    }

    /// An update (or secure-aggregation advertisement) left.
    pub(crate) fn update_sent(&self) {
        self.updates_sent.inc();
    }

    /// An evaluation left.
    pub(crate) fn evaluation_sent(&self) {
        self.evaluations_sent.inc();
    }

    /// The record-level ledger now stands at `epsilon`.
    pub(crate) fn record_privacy_spent(&self, epsilon: f64) {
        self.record_epsilon.set(epsilon);
    }

    /// The distributed-DP ledger now stands at `epsilon`.
    pub(crate) fn distributed_privacy_spent(&self, epsilon: f64) {
        self.distributed_epsilon.set(epsilon);
    }

    /// The metrics in Prometheus' text format, as of now.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        encode(&mut text, &self.registry())?;
        Ok(text)
    }

    /// A registry over (clones of, sharing their values) these metrics.
    fn registry(&self) -> Registry {
        let mut registry = Registry::with_prefix("cohort_node");
        registry.register(
            "rounds_trained",
            "Rounds this node trained in",
            self.rounds_trained.clone(),
        );
        registry.register(
            "examples_trained",
            "Training examples over all rounds (exact, as trained; the coordinator may see them noised)",
            self.examples_trained.clone(),
        );
        registry.register(
            "training_seconds",
            "Wall time of each round's local training",
            self.training_seconds.clone(),
        );
        registry.register(
            "rounds_over_budget",
            "Rounds this node declined because its own record-level budget could not pay for them",
            self.rounds_over_budget.clone(),
        );
        registry.register(
            "updates_sent",
            "Model updates sent (secure-aggregation advertisements included)",
            self.updates_sent.clone(),
        );
        registry.register(
            "evaluations_sent",
            "Evaluations of global models sent",
            self.evaluations_sent.clone(),
        );
        registry.register(
            "record_epsilon_spent",
            "ε spent from this node's own record-level (DP-SGD) ledger",
            self.record_epsilon.clone(),
        );
        registry.register(
            "distributed_epsilon_spent",
            "ε spent against the coordinator under distributed DP, by this node's own ledger",
            self.distributed_epsilon.clone(),
        );
        registry
    }
}

/// Binds `address` and serves `/metrics` and `/healthz` until the returned
/// task is aborted (the node's process ends with its federation).
pub async fn serve(
    address: SocketAddr,
    metrics: Arc<NodeMetrics>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics_text))
        .with_state(metrics);
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "metrics endpoint stopped");
        }
    });
    tracing::info!(%local, "node metrics over plain HTTP");
    Ok((local, task))
}

async fn metrics_text(State(metrics): State<Arc<NodeMetrics>>) -> impl IntoResponse {
    match metrics.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        ),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("encoding the metrics: {error}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn the_endpoint_serves_what_the_node_counted() {
        let metrics = Arc::new(NodeMetrics::default());
        metrics.trained(120, Duration::from_millis(250));
        metrics.trained(80, Duration::from_millis(50));
        metrics.update_sent();
        metrics.record_privacy_spent(1.25);
        for round in [3, 3, 4, 4, 4] {
            metrics.over_budget(round);
        }
        let (address, task) = serve("127.0.0.1:0".parse().unwrap(), metrics.clone())
            .await
            .unwrap();
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        task.abort();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        for line in [
            "cohort_node_rounds_trained_total 2",
            "cohort_node_examples_trained_total 200",
            "cohort_node_training_seconds_count 2",
            "cohort_node_training_seconds_sum 0.3",
            "cohort_node_updates_sent_total 1",
            "cohort_node_evaluations_sent_total 0",
            "cohort_node_record_epsilon_spent 1.25",
            "cohort_node_rounds_over_budget_total 2",
            "# HELP cohort_node_rounds_trained Rounds this node trained in.",
        ] {
            assert!(response.lines().any(|l| l == line), "{line}\n{response}");
        }
    }
}
