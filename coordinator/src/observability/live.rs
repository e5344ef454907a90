//! The metrics that are not durable state, counted as they happen since the
//! process started (as Prometheus counters usually are): where committed
//! rounds' time and bytes went, refusals by reason, and how long audit
//! appends take. [`super::metrics`] reads everything else from the store.
//!
//! Labels are bounded: a stage part's name comes from the engine's code (e.g.
//! `fit work`, `commit store write`), a refusal's source and reason from
//! enums; no node identity, address or free text.

use std::sync::Arc;
use std::time::Duration;

use crate::audit::erasure::{ErasureStatus, statuses};
use crate::audit::stored_entries_from;
use crate::audit::{AuditEntry, AuditError};
use crate::rounds::timing::RoundTiming;
use crate::store::Store;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Every sample name these metrics write (with the `cohort_` prefix).
pub const SAMPLES: [&str; 11] = [
    "cohort_requests_refused_total",
    "cohort_audit_append_seconds_bucket",
    "cohort_audit_append_seconds_sum",
    "cohort_audit_append_seconds_count",
    "cohort_round_seconds_bucket",
    "cohort_round_seconds_sum",
    "cohort_round_seconds_count",
    "cohort_round_part_seconds_bucket",
    "cohort_round_part_seconds_sum",
    "cohort_round_part_seconds_count",
    "cohort_round_bytes_total",
];

/// A metric's labels: (name, value) pairs.
type Labels = Vec<(&'static str, String)>;

/// 1 ms to about 9 min.
fn seconds_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

/// Which way a stage part's bytes went, seen from the coordinator.
fn direction(part: &str) -> Option<&'static str> {
    if part.ends_with("delivery") || part.ends_with("fetch") {
        Some("out")
    } else if part.ends_with("upload") {
        Some("in")
    } else {
        None
    }
}

/// Where a refusal was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalSource {
    /// The TLS handshake (no or a bad client certificate).
    Connection,
    /// The authorization layer (role, revocation, request rate, …).
    Authorization,
    /// A handler (bad input, wrong stage, …).
    Service,
}

impl RefusalSource {
    fn as_str(self) -> &'static str {
        match self {
            Self::Connection => "connection",
            Self::Authorization => "authorization",
            Self::Service => "service",
        }
    }
}

/// Refusals counted by source and reason (the authorization layer's
/// `RefusalReason`, a handler's gRPC status code, or `handshake`).
#[derive(Debug, Clone, Default)]
pub struct RefusalCounts {
    counts: Family<Labels, Counter>,
}

impl RefusalCounts {
    /// One more refusal.
    pub fn refused(&self, source: RefusalSource, reason: &str) {
        self.counts
            .get_or_create(&vec![
                ("source", source.as_str().to_owned()),
                ("reason", reason.to_owned()),
            ])
            .inc();
    }
}

/// How long each audit append waited for its group commit.
#[derive(Debug, Clone)]
pub struct AppendLatency(Histogram);

impl Default for AppendLatency {
    fn default() -> Self {
        Self(seconds_buckets())
    }
}

impl AppendLatency {
    /// One append took `took`.
    pub fn observe(&self, took: Duration) {
        self.0.observe(took.as_secs_f64());
    }
}

/// The audit log as parsed by earlier scrapes, for the erasure gauges: a
/// scrape parses only the entries appended since the last one (the log only
/// grows), not the whole log. The price is a parsed copy of the log in
/// memory, from the first scrape on.
#[derive(Debug, Clone, Default)]
pub struct AuditTail(Arc<tokio::sync::Mutex<Vec<AuditEntry>>>);

impl AuditTail {
    /// Every erasure request's status as of `now_ms`, from the stored log.
    pub async fn erasure_statuses(
        &self,
        store: &Store,
        now_ms: u64,
    ) -> Result<Vec<ErasureStatus>, AuditError> {
        let mut entries = self.0.lock().await;
        let appended = stored_entries_from(store, entries.len() as u64).await?;
        entries.extend(appended);
        Ok(statuses(&entries, now_ms))
    }
}

/// Every live metric; clones share their values.
#[derive(Debug, Clone)]
pub struct LiveMetrics {
    /// The log as parsed so far (see [`AuditTail`]).
    pub audit_tail: AuditTail,
    refusals: RefusalCounts,
    audit_append: AppendLatency,
    round_seconds: Histogram,
    part_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    bytes: Family<Labels, Counter>,
}

impl LiveMetrics {
    /// Live metrics over the service's refusal counts and the audit log's
    /// append latency; the engine adds each committed round's timing.
    pub fn new(refusals: RefusalCounts, audit_append: AppendLatency) -> Self {
        Self {
            audit_tail: AuditTail::default(),
            refusals,
            audit_append,
            round_seconds: seconds_buckets(),
            part_seconds: Family::new_with_constructor(seconds_buckets),
            bytes: Family::default(),
        }
    }

    /// Adds a committed round's timing.
    pub fn round_timed(&self, timing: &RoundTiming) {
        self.round_seconds.observe(timing.seconds);
        for part in &timing.parts {
            self.part_seconds
                .get_or_create(&vec![("part", part.name.clone())])
                .observe(part.seconds);
            if let Some(direction) = direction(&part.name) {
                self.bytes
                    .get_or_create(&vec![("direction", direction.to_owned())])
                    .inc_by(part.bytes);
            }
        }
    }

    /// Adds these metrics to `registry` (clones, sharing their values).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "requests_refused",
            "Refused connections and calls since start, by source and reason (rate limiting: source authorization, reason rate-limited)",
            self.refusals.counts.clone(),
        );
        registry.register(
            "audit_append_seconds",
            "Time from an audit append's request to its group commit",
            self.audit_append.0.clone(),
        );
        registry.register(
            "round_seconds",
            "Wall time of each committed round since start",
            self.round_seconds.clone(),
        );
        registry.register(
            "round_part_seconds",
            "Wall time of each part of committed rounds (stages split along their critical path)",
            self.part_seconds.clone(),
        );
        registry.register(
            "round_bytes",
            "Bytes of tasks, models and answers moved by committed rounds, out of and into the coordinator",
            self.bytes.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use prometheus_client::encoding::text::encode;

    use super::*;
    use crate::rounds::timing::StagePart;

    #[test]
    fn round_timings_and_refusals_are_counted_with_bounded_labels() {
        let refusals = RefusalCounts::default();
        let live = LiveMetrics::new(refusals.clone(), AppendLatency::default());
        let part = |name: &str, seconds, bytes| StagePart {
            name: name.into(),
            seconds,
            bytes,
        };
        live.round_timed(&RoundTiming {
            round: 1,
            attempt: 1,
            seconds: 0.5,
            parts: vec![
                part("fit delivery", 0.01, 100),
                part("fit fetch", 0.1, 4000),
                part("fit upload", 0.2, 3000),
                part("commit store write", 0.05, 0),
            ],
        });
        refusals.refused(RefusalSource::Authorization, "rate-limited");
        refusals.refused(RefusalSource::Authorization, "rate-limited");
        live.audit_append.observe(Duration::from_millis(3));
        let mut registry = Registry::with_prefix("cohort");
        live.register(&mut registry);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for line in [
            "cohort_round_seconds_count 1",
            "cohort_round_part_seconds_sum{part=\"fit fetch\"} 0.1",
            "cohort_round_bytes_total{direction=\"out\"} 4100",
            "cohort_round_bytes_total{direction=\"in\"} 3000",
            "cohort_requests_refused_total{source=\"authorization\",reason=\"rate-limited\"} 2",
            "cohort_audit_append_seconds_count 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
    }
}

#[cfg(test)]
mod audit_tail_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::audit::{AuditEvent, AuditLog, stored_entries};
    use crate::store::StoreLocation;

    /// Scrapes between appends parse only the new entries, and hold exactly
    /// what a full parse of the log gives.
    #[tokio::test]
    async fn the_tail_holds_the_whole_log_after_appends_between_scrapes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreLocation::Folder(dir.path().join("state")))
            .await
            .unwrap();
        let log = AuditLog::open(&store, &dir.path().join("audit.key"), "fed")
            .await
            .unwrap();
        let tail = AuditTail::default();
        for batch in 1..=3u64 {
            let events = (0..batch)
                .map(|count| AuditEvent::RefusalsNotLogged { count })
                .collect();
            log.append(&store, events).await.unwrap();
            tail.erasure_statuses(&store, 0).await.unwrap();
            let parsed = tail.0.lock().await.clone();
            assert_eq!(parsed, stored_entries(&store).await.unwrap());
        }
        assert_eq!(tail.0.lock().await.len(), 1 + 2 + 3);
    }
}
