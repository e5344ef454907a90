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
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::federation::Federation;
use crate::federation::summary::{SummaryError, epsilon_spent};
use crate::rounds::failure::FailureKind;
use crate::store::StoreError;
use crate::store::records::{RoundOutcome, RoundRecord, unix_ms};

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// The store could not be read.
    #[error("reading the federation's state: {0}")]
    Store(#[from] StoreError),
    /// The audit log could not be read.
    #[error("reading the audit log: {0}")]
    Audit(String),
    /// The privacy ledger could not be read or accounted.
    #[error(transparent)]
    Ledger(#[from] SummaryError),
    /// The text encoding failed.
    #[error("encoding the metrics: {0}")]
    Encode(#[from] std::fmt::Error),
}

/// One metric `/metrics` may export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// Its name without the registry's `cohort_` prefix.
    pub name: &'static str,
    /// Its help text.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: MetricKind,
}

/// A metric's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up; its sample is named `…_total`.
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Metric {
    const fn counter(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            kind: MetricKind::Counter,
        }
    }

    const fn gauge(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            kind: MetricKind::Gauge,
        }
    }

    /// The name of its sample as Prometheus stores it and queries use it
    /// (`cohort_` prefix; a counter's ends in `_total`).
    pub fn exported_name(&self) -> String {
        match self.kind {
            MetricKind::Counter => format!("{PREFIX}_{}_total", self.name),
            MetricKind::Gauge => format!("{PREFIX}_{}", self.name),
        }
    }
}

/// The registry's prefix.
const PREFIX: &str = "cohort";

const ROUNDS_COMPLETED: Metric = Metric::counter("rounds_completed", "Rounds committed.");
const ROUND_ATTEMPTS_FAILED: Metric = Metric::counter(
    "round_attempts_failed",
    "Round attempts that failed, by kind (secure_aggregation_aborted: SecAgg aborts).",
);
const LAST_ROUND_SAMPLED: Metric = Metric::gauge(
    "last_round_sampled",
    "Nodes sampled in the last committed round.",
);
const LAST_ROUND_CONTRIBUTORS: Metric = Metric::gauge(
    "last_round_contributors",
    "Updates aggregated in the last committed round.",
);
const LAST_ROUND_DURATION: Metric = Metric::gauge(
    "last_round_duration_seconds",
    "Wall time of the last committed round.",
);
const EPSILON_SPENT: Metric = Metric::gauge(
    "epsilon_spent",
    "ε spent against whoever sees the released models (the stored privacy ledger, every release counted).",
);
const EPSILON_AGAINST_COORDINATOR: Metric = Metric::gauge(
    "epsilon_against_coordinator",
    "ε spent against the coordinator (distributed DP).",
);
const FEDERATION_FINISHED: Metric = Metric::gauge(
    "federation_finished",
    "1 once the federation has run its rounds.",
);
const EPSILON_BUDGET: Metric = Metric::gauge("epsilon_budget", "The federation's ε budget.");
const DELTA: Metric = Metric::gauge("delta", "The δ of the federation's (ε, δ) budget.");
const NODES_AVAILABLE: Metric = Metric::gauge(
    "nodes_available",
    "Nodes polling and available for sampling.",
);
const AUDIT_LOG_ENTRIES: Metric = Metric::gauge("audit_log_entries", "Entries in the audit log.");
const ERASURE_REQUESTS_OPEN: Metric =
    Metric::gauge("erasure_requests_open", "Erasure requests not yet closed.");
const ERASURE_REQUESTS_OVERDUE: Metric = Metric::gauge(
    "erasure_requests_overdue",
    "Erasure requests past their deadline.",
);

/// Every metric `/metrics` may export (some only under differential privacy,
/// or once a round has committed); nothing else is registered.
pub const METRICS: [Metric; 14] = [
    ROUNDS_COMPLETED,
    ROUND_ATTEMPTS_FAILED,
    LAST_ROUND_SAMPLED,
    LAST_ROUND_CONTRIBUTORS,
    LAST_ROUND_DURATION,
    EPSILON_SPENT,
    EPSILON_AGAINST_COORDINATOR,
    FEDERATION_FINISHED,
    EPSILON_BUDGET,
    DELTA,
    NODES_AVAILABLE,
    AUDIT_LOG_ENTRIES,
    ERASURE_REQUESTS_OPEN,
    ERASURE_REQUESTS_OVERDUE,
];

fn counter(registry: &mut Registry, metric: Metric, value: u64) {
    let counter = Counter::<u64>::default();
    counter.inc_by(value);
    registry.register(metric.name, help(metric), counter);
}

fn gauge(registry: &mut Registry, metric: Metric, value: f64) {
    let gauge = Gauge::<f64, AtomicU64>::default();
    gauge.set(value);
    registry.register(metric.name, help(metric), gauge);
}

/// Failed attempts by [`FailureKind`]: every kind, 0 if none; `unrecorded`
/// for records written before kinds were stored, if any.
fn failed_by_kind(registry: &mut Registry, failed: &[RoundRecord]) {
    let by_kind = Family::<Vec<(&'static str, &'static str)>, Counter>::default();
    for kind in FailureKind::ALL {
        let _zero = by_kind.get_or_create(&vec![("kind", kind.as_str())]);
    }
    for record in failed {
        let kind = match &record.outcome {
            RoundOutcome::Failed {
                kind: Some(kind), ..
            } => kind.as_str(),
            _ => "unrecorded",
        };
        by_kind.get_or_create(&vec![("kind", kind)]).inc();
    }
    let metric = ROUND_ATTEMPTS_FAILED;
    registry.register(metric.name, help(metric), by_kind);
}

/// A metric's help text as registered: the encoder ends it with a period.
fn help(metric: Metric) -> &'static str {
    metric.help.trim_end_matches('.')
}

/// The metrics in Prometheus' text format, as of now.
pub async fn scrape(federation: &Federation) -> Result<String, ScrapeError> {
    let mut registry = Registry::with_prefix(PREFIX);
    federation.metrics.register(&mut registry);
    rounds(&mut registry, federation).await?;
    privacy(&mut registry, federation);
    nodes_and_log(&mut registry, federation).await?;
    let mut text = String::new();
    encode(&mut text, &registry)?;
    Ok(text)
}

/// Rounds committed and failed, and the last committed round's size and time.
async fn rounds(registry: &mut Registry, federation: &Federation) -> Result<(), ScrapeError> {
    let store = &federation.store;
    let completed = store.rounds().await?;
    counter(registry, ROUNDS_COMPLETED, completed.len() as u64);
    failed_by_kind(registry, &store.failed_rounds().await?);
    if let Some(last) = completed.last() {
        let contributors = match &last.outcome {
            RoundOutcome::Completed { contributions, .. } => contributions.len(),
            _ => 0,
        };
        let seconds = last.finished_ms.saturating_sub(last.started_ms) as f64 / 1000.0;
        gauge(registry, LAST_ROUND_SAMPLED, last.sampled.len() as f64);
        gauge(registry, LAST_ROUND_CONTRIBUTORS, contributors as f64);
        gauge(registry, LAST_ROUND_DURATION, seconds);
        if let Some(epsilon) = last.epsilon_against_coordinator {
            gauge(registry, EPSILON_AGAINST_COORDINATOR, epsilon);
        }
    }
    if let Some(epsilon) = epsilon_spent(federation).await? {
        gauge(registry, EPSILON_SPENT, epsilon);
    }
    let finished = if federation.finished().is_some() {
        1.0
    } else {
        0.0
    };
    gauge(registry, FEDERATION_FINISHED, finished);
    Ok(())
}

/// The configured budget, if the federation runs under DP.
fn privacy(registry: &mut Registry, federation: &Federation) {
    if let Some(privacy) = &federation.config.privacy {
        gauge(registry, EPSILON_BUDGET, privacy.epsilon);
        gauge(registry, DELTA, privacy.delta);
    }
}

/// Nodes connected, the audit log's size and the erasure requests.
async fn nodes_and_log(
    registry: &mut Registry,
    federation: &Federation,
) -> Result<(), ScrapeError> {
    let available = federation.nodes.available().len() as f64;
    gauge(registry, NODES_AVAILABLE, available);
    let entries = federation.store.audit_len().await?;
    gauge(registry, AUDIT_LOG_ENTRIES, entries as f64);
    let now_ms = unix_ms(std::time::SystemTime::now());
    let requests = federation
        .metrics
        .audit_tail
        .erasure_statuses(&federation.store, now_ms)
        .await
        .map_err(|e| ScrapeError::Audit(e.to_string()))?;
    let open = requests.iter().filter(|r| r.closed_ms.is_none()).count();
    let overdue = requests.iter().filter(|r| r.overdue).count();
    gauge(registry, ERASURE_REQUESTS_OPEN, open as f64);
    gauge(registry, ERASURE_REQUESTS_OVERDUE, overdue as f64);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.

    use std::collections::BTreeSet;

    use super::*;
    use crate::observability::live;

    /// The shipped Grafana dashboard.
    const DASHBOARD: &str = include_str!("../../../docs/grafana/cohort-dashboard.json");

    fn exported() -> BTreeSet<String> {
        METRICS
            .iter()
            .map(Metric::exported_name)
            .chain(live::SAMPLES.iter().map(|name| name.to_string()))
            .collect()
    }

    /// Every `cohort_…` name in the queries of a dashboard (`expr` of its
    /// panels' targets; `query` and `definition` of its variables).
    fn metric_names(dashboard: &serde_json::Value) -> Vec<String> {
        let mut names = Vec::new();
        let mut stack = vec![dashboard];
        while let Some(value) = stack.pop() {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, value) in map {
                        match (key.as_str(), value) {
                            ("expr" | "query" | "definition", serde_json::Value::String(q)) => {
                                names.extend(cohort_names(q));
                            }
                            _ => stack.push(value),
                        }
                    }
                }
                serde_json::Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
        names
    }

    /// The PromQL identifiers in `query` that start with `cohort_`.
    fn cohort_names(query: &str) -> Vec<String> {
        query
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .filter(|word| word.starts_with("cohort_"))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_exported_names_are_those_the_registry_writes() {
        let mut registry = Registry::with_prefix(PREFIX);
        let refusals = live::RefusalCounts::default();
        refusals.refused(live::RefusalSource::Service, "InvalidArgument");
        let live = live::LiveMetrics::new(refusals, live::AppendLatency::default());
        live.round_timed(&crate::rounds::timing::RoundTiming {
            round: 1,
            attempt: 1,
            seconds: 1.0,
            parts: vec![crate::rounds::timing::StagePart {
                name: "fit upload".into(),
                seconds: 0.5,
                bytes: 10,
            }],
        });
        live.register(&mut registry);
        for metric in METRICS {
            match metric.kind {
                MetricKind::Counter => counter(&mut registry, metric, 1),
                MetricKind::Gauge => gauge(&mut registry, metric, 1.0),
            }
        }
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        let samples: BTreeSet<String> = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split([' ', '{']).next())
            .map(str::to_owned)
            .collect();
        assert_eq!(samples, exported(), "{text}");
    }

    #[test]
    fn the_grafana_dashboard_queries_exactly_the_exported_metrics() {
        let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).unwrap();
        let used: BTreeSet<String> = metric_names(&dashboard).into_iter().collect();
        let exported = exported();
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "the dashboard queries unknown metrics: {unknown:?}"
        );
        // A histogram is shown by its buckets (quantiles).
        let unused: Vec<_> = exported
            .difference(&used)
            .filter(|name| !name.ends_with("_sum") && !name.ends_with("_count"))
            .collect();
        assert!(unused.is_empty(), "no dashboard panel shows {unused:?}");
    }

    #[test]
    fn a_renamed_metric_in_a_query_is_caught() {
        let drifted = serde_json::json!({
            "panels": [{ "targets": [{ "expr": "rate(cohort_rounds_total[5m]) / cohort_delta" }] }]
        });
        let names = metric_names(&drifted);
        assert_eq!(names, ["cohort_rounds_total", "cohort_delta"]);
        assert!(!exported().contains("cohort_rounds_total"));
    }
}
