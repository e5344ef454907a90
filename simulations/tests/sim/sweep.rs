//! A privacy sweep over a tiny federation: one run per budget, σ calibrated so
//! that the planned rounds spend no more than it, a CSV row and a chart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cohort_sim::scenario::Scenario;
use cohort_sim::sweep::{SweepError, sweep};

const TINY_DP: &str = r#"
seed = 5
nodes = 4
holdout = 0.2
data = "breast_cancer"
partition = { kind = "iid" }

[rounds]
count = 3
fraction = 1.0
min_clients = 4
min_results = 2
deadline_secs = 60

[training]
local_epochs = 1
batch_size = 16
learning_rate = 0.05

[model]
kind = "logistic_regression"

[privacy]
noise_multiplier = 1.0
clip_norm = 1.0
epsilon = 100.0
delta = 1e-5
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_per_budget_each_within_it() {
    let scenario = Scenario::parse(TINY_DP).unwrap();
    let out = tempfile::tempdir().unwrap();
    let points = sweep(&scenario, "tiny", &[Some(4.0), None], out.path(), |_, _| {})
        .await
        .unwrap();
    assert_eq!(points.len(), 2);
    let dp = &points[0];
    assert_eq!(
        dp.rounds_completed, 3,
        "the calibrated σ affords every planned round"
    );
    let spent = dp.epsilon_spent.unwrap();
    assert!(spent <= 4.0 && spent > 3.5, "ε spent {spent} of 4");
    assert!(dp.noise_multiplier.unwrap() > 0.0);
    assert_eq!(points[1].epsilon_spent, None, "ε = ∞ runs without DP");
    let csv = std::fs::read_to_string(out.path().join("accuracy_vs_epsilon.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[1].starts_with("4,") && lines[2].starts_with("inf,"),
        "{csv}"
    );
    let png = std::fs::read(out.path().join("accuracy_vs_epsilon.png")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    assert!(out.path().join("eps-4/rounds.csv").exists());
    assert!(out.path().join("eps-inf/accuracy.png").exists());

    let mut no_template = scenario.clone();
    no_template.privacy = None;
    let err = sweep(&no_template, "tiny", &[Some(1.0)], out.path(), |_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(err, SweepError::NoPrivacyTemplate), "{err}");
}
