#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! The coordinator's plain-HTTP health and metrics endpoint
//! (`[server] observability_listen`): probes answer, and `/metrics` reports
//! what the store holds — the rounds committed, the federation finished, the
//! ε spent against the budget.

use cohort_coordinator::config::{AccountantKind, NoisePlacement, PrivacyConfig};
use cohort_coordinator::observability::live;
use cohort_coordinator::observability::metrics::METRICS;
use cohort_coordinator::store::records::{RoundOutcome, RoundRecord};
use cohort_e2e::console::get;
use cohort_e2e::{Testbed, plan, within};

/// The value of the sample named `name` (no labels) in Prometheus text.
pub(crate) fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
}

#[tokio::test]
async fn probes_answer_and_metrics_report_the_committed_rounds_and_epsilon() {
    let mut federation = plan(3, 2);
    federation.privacy = Some(PrivacyConfig {
        noise_multiplier: 1.0,
        clip_norm: 1.0,
        epsilon: 1e6,
        delta: 1e-5,
        accountant: AccountantKind::Rdp,
        placement: NoisePlacement::Central,
        adaptive_clipping: None,
    });
    federation.scaling = Some(cohort_e2e::public_scaling());
    let testbed = Testbed::new(federation);
    let tensorboard = tempfile::tempdir().unwrap();
    let mut coordinator = testbed
        .start_coordinator_with("127.0.0.1:0".parse().unwrap(), |config| {
            config.server.observability_listen = Some("127.0.0.1:0".parse().unwrap());
            config.server.tensorboard_dir = Some(tensorboard.path().to_owned());
        })
        .await;
    let endpoint = coordinator.observability_addr().expect("configured");
    assert_eq!(get(endpoint, "/healthz").await.status, 200);
    assert_eq!(get(endpoint, "/readyz").await.status, 200);
    let scraped = get(endpoint, "/metrics").await;
    let (status, before) = (scraped.status, scraped.body);
    assert_eq!(status, 200, "{before}");
    assert_eq!(
        sample(&before, "cohort_rounds_completed_total"),
        Some(0.0),
        "{before}"
    );

    let nodes = testbed.start_nodes(coordinator.local_addr(), 2);
    within("the federation to finish", coordinator.wait())
        .await
        .unwrap();
    for node in nodes {
        within("a node", node).await.unwrap().unwrap();
    }
    let after = get(endpoint, "/metrics").await.body;
    assert_eq!(
        sample(&after, "cohort_rounds_completed_total"),
        Some(3.0),
        "{after}"
    );
    assert_eq!(
        sample(&after, "cohort_federation_finished"),
        Some(1.0),
        "{after}"
    );
    assert_eq!(
        sample(&after, "cohort_epsilon_budget"),
        Some(1e6),
        "{after}"
    );
    let store = coordinator.federation().store.clone();
    let spent = store
        .rounds()
        .await
        .unwrap()
        .last()
        .unwrap()
        .epsilon_spent
        .unwrap();
    // The gauge accounts the stored ledger; with every release committed, it
    // is the last round's ε (up to the accountant's rounding).
    let gauge = sample(&after, "cohort_epsilon_spent").expect("ε exported");
    assert!((gauge - spent).abs() <= 1e-9 * spent, "{gauge} vs {spent}");
    assert_eq!(
        sample(&after, "cohort_last_round_contributors"),
        Some(2.0),
        "{after}"
    );
    // Counted since start: each committed round's time, its bytes each way,
    // and the audit appends (at least one a round).
    assert_eq!(
        sample(&after, "cohort_round_seconds_count"),
        Some(3.0),
        "{after}"
    );
    for direction in ["in", "out"] {
        let name = format!("cohort_round_bytes_total{{direction=\"{direction}\"}}");
        let bytes = sample(&after, &name).unwrap_or(0.0);
        assert!(bytes > 0.0, "{name}: {after}");
    }
    let appends = sample(&after, "cohort_audit_append_seconds_count").unwrap_or(0.0);
    assert!(appends >= 3.0, "{after}");
    // Nothing is exported that the table (and so the Grafana dashboard's
    // check) does not know.
    let known: Vec<String> = METRICS
        .iter()
        .map(|m| m.exported_name())
        .chain(live::SAMPLES.iter().map(|name| name.to_string()))
        .collect();
    for line in after.lines().filter(|line| !line.starts_with('#')) {
        let name = line.split([' ', '{']).next().unwrap();
        assert!(known.iter().any(|k| k == name), "{name} is not in METRICS");
    }
    assert_eq!(get(endpoint, "/nothing-here").await.status, 404);
    let records = store.rounds().await.unwrap();
    drop(store);
    coordinator.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(endpoint).await.is_err(),
        "the endpoint stops with the coordinator"
    );
    assert_tensorboard_matches(tensorboard.path(), &records);
}

/// The TensorBoard event file holds each committed round's accuracy, loss and
/// ε, as the stored records do (as the f32 TensorBoard keeps).
fn assert_tensorboard_matches(dir: &std::path::Path, records: &[RoundRecord]) {
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let scalars = cohort_proto::tensorboard::read_scalars(&files[0]).unwrap();
    let written = |tag: &str| -> Vec<(u64, f32)> {
        scalars
            .iter()
            .filter(|s| s.tag == tag)
            .map(|s| (s.step, s.value))
            .collect()
    };
    let stored = |value: fn(&RoundRecord) -> Option<f64>| -> Vec<(u64, f32)> {
        records
            .iter()
            .filter_map(|r| Some((r.round, value(r)? as f32)))
            .collect()
    };
    let accuracy = stored(|r| match &r.outcome {
        RoundOutcome::Completed { evaluation, .. } => evaluation.as_ref().map(|e| e.accuracy),
        RoundOutcome::Failed { .. } => None,
    });
    assert_eq!(accuracy.len(), 3, "every round was evaluated");
    assert_eq!(written("eval/accuracy"), accuracy);
    assert_eq!(
        written("privacy/epsilon_spent"),
        stored(|r| r.epsilon_spent)
    );
}
