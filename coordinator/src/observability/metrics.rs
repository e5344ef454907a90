//! The federation's Prometheus metrics, read from its durable state at each
//! scrape: what `/metrics` serves. Nothing is counted on the side, so a
//! scrape always agrees with the store (a round is counted once it is
//! committed) and a restarted coordinator reports the same totals.
//!
//! No metric carries a node's data or a secret: counts, durations, ε and the
//! budget, which auditors can read in the audit log anyway. Labels are
//! bounded (no node ids, no free-text reasons).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::audit::erasure::statuses;
use crate::audit::stored_entries;
use crate::federation::Federation;
use crate::store::StoreError;
use crate::store::records::{RoundOutcome, unix_ms};

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// The store could not be read.
    #[error("reading the federation's state: {0}")]
    Store(#[from] StoreError),
    /// The audit log could not be read.
    #[error("reading the audit log: {0}")]
    Audit(String),
    /// The text encoding failed.
    #[error("encoding the metrics: {0}")]
    Encode(#[from] std::fmt::Error),
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let metric = Counter::<u64>::default();
    metric.inc_by(value);
    registry.register(name, help, metric);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: f64) {
    let metric = Gauge::<f64, AtomicU64>::default();
    metric.set(value);
    registry.register(name, help, metric);
}

/// The metrics in Prometheus' text format, as of now.
pub fn scrape(federation: &Federation) -> Result<String, ScrapeError> {
    let mut registry = Registry::with_prefix("cohort");
    rounds(&mut registry, federation)?;
    privacy(&mut registry, federation);
    nodes_and_log(&mut registry, federation)?;
    let mut text = String::new();
    encode(&mut text, &registry)?;
    Ok(text)
}

/// Rounds committed and failed, and the last committed round's size and time.
fn rounds(registry: &mut Registry, federation: &Federation) -> Result<(), ScrapeError> {
    let store = &federation.store;
    let completed = store.rounds()?;
    counter(
        registry,
        "rounds_completed",
        "Rounds committed.",
        completed.len() as u64,
    );
    let failed = store.failed_rounds()?.len() as u64;
    counter(
        registry,
        "round_attempts_failed",
        "Round attempts that failed.",
        failed,
    );
    if let Some(last) = completed.last() {
        let contributors = match &last.outcome {
            RoundOutcome::Completed { contributions, .. } => contributions.len(),
            _ => 0,
        };
        let seconds = last.finished_ms.saturating_sub(last.started_ms) as f64 / 1000.0;
        gauge(
            registry,
            "last_round_sampled",
            "Nodes sampled in the last committed round.",
            last.sampled.len() as f64,
        );
        gauge(
            registry,
            "last_round_contributors",
            "Updates aggregated in the last committed round.",
            contributors as f64,
        );
        gauge(
            registry,
            "last_round_duration_seconds",
            "Wall time of the last committed round.",
            seconds,
        );
        if let Some(epsilon) = last.epsilon_spent {
            gauge(
                registry,
                "epsilon_spent",
                "ε spent against whoever sees the released models.",
                epsilon,
            );
        }
        if let Some(epsilon) = last.epsilon_against_coordinator {
            gauge(
                registry,
                "epsilon_against_coordinator",
                "ε spent against the coordinator (distributed DP).",
                epsilon,
            );
        }
    }
    let finished = if federation.finished().is_some() {
        1.0
    } else {
        0.0
    };
    gauge(
        registry,
        "federation_finished",
        "1 once the federation has run its rounds.",
        finished,
    );
    Ok(())
}

/// The configured budget, if the federation runs under DP.
fn privacy(registry: &mut Registry, federation: &Federation) {
    if let Some(privacy) = &federation.config.privacy {
        gauge(
            registry,
            "epsilon_budget",
            "The federation's ε budget.",
            privacy.epsilon,
        );
        gauge(
            registry,
            "delta",
            "The δ of the federation's (ε, δ) budget.",
            privacy.delta,
        );
    }
}

/// Nodes connected, the audit log's size and the erasure requests.
fn nodes_and_log(registry: &mut Registry, federation: &Federation) -> Result<(), ScrapeError> {
    let available = federation.nodes.available().len() as f64;
    gauge(
        registry,
        "nodes_available",
        "Nodes polling and available for sampling.",
        available,
    );
    let entries = federation.store.audit_len()?;
    gauge(
        registry,
        "audit_log_entries",
        "Entries in the audit log.",
        entries as f64,
    );
    let log = stored_entries(&federation.store).map_err(|e| ScrapeError::Audit(e.to_string()))?;
    let requests = statuses(&log, unix_ms(std::time::SystemTime::now()));
    let open = requests.iter().filter(|r| r.closed_ms.is_none()).count();
    let overdue = requests.iter().filter(|r| r.overdue).count();
    gauge(
        registry,
        "erasure_requests_open",
        "Erasure requests not yet closed.",
        open as f64,
    );
    gauge(
        registry,
        "erasure_requests_overdue",
        "Erasure requests past their deadline.",
        overdue as f64,
    );
    Ok(())
}
