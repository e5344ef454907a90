//! The same scenario and seed give the same rounds: two runs of a tiny federation
//! (3 nodes, 2 rounds, breast cancer, no DP) over the real protocol write the same
//! rounds.csv but for the wall-time column, whether or not the coordinator's
//! `/metrics` is served and scraped during the run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use cohort_sim::run::run;
use cohort_sim::scenario::{Observe, Scenario};

const TINY: &str = r#"
seed = 11
nodes = 3
holdout = 0.2
data = "breast_cancer"
partition = { kind = "dirichlet", alpha = 1.0 }

[rounds]
count = 2
min_clients = 3
deadline_secs = 60

[training]
local_epochs = 1
batch_size = 16
learning_rate = 0.05

[model]
kind = "logistic_regression"
"#;

/// rounds.csv without its last column (`seconds`).
fn without_seconds(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("rounds.csv")).unwrap();
    text.lines()
        .map(|line| line.rsplit_once(',').unwrap().0.to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_scenario_and_seed_give_the_same_rounds() {
    let scenario = Scenario::parse(TINY).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let first = run(&scenario, "tiny", &a, |_| {}).await.unwrap();
    let observed = Scenario {
        observe: Some(Observe {
            scrape_interval_ms: 10,
        }),
        ..scenario.clone()
    };
    let second = run(&observed, "tiny", &b, |_| {}).await.unwrap();
    assert_eq!(first.scrapes, None);
    // /metrics, the console page and its rounds, at least once each.
    let scrapes = second.scrapes.unwrap();
    let paths: Vec<&str> = scrapes.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["/metrics", "/", "/fragment/rounds"]);
    for target in &scrapes {
        assert!(target.answered >= 1 && target.failed == 0, "{target:?}");
    }

    assert_eq!(first.summary.rounds_completed, 2);
    assert_eq!(first.rounds.len(), 2);
    assert!(first.rounds.iter().all(|r| r.participants == 3));
    let accuracy = first.summary.final_accuracy.unwrap();
    assert!(accuracy > 0.5 && accuracy <= 1.0, "{accuracy}");
    assert_eq!(first.summary.rows_per_node.iter().sum::<usize>(), 569);

    let (csv_a, csv_b) = (without_seconds(&a), without_seconds(&b));
    assert_eq!(csv_a[0], "round,sampled,participants,accuracy,loss");
    assert_eq!(csv_a.len(), 3);
    assert_eq!(csv_a, csv_b);
    assert_eq!(first.summary.model_version, second.summary.model_version);

    for file in ["rounds.json", "summary.json", "scenario.toml"] {
        assert!(a.join(file).exists(), "{file}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["rounds_completed"], 2);
    assert_eq!(summary["scenario"], "tiny");
    // The written scenario reads back as the one that ran.
    let written = Scenario::load(&a.join("scenario.toml")).unwrap();
    assert_eq!(written, scenario);
}

#[tokio::test]
async fn an_impossible_split_is_refused_before_anything_starts() {
    // One node with one single-class shard cannot hold both classes.
    let text = TINY
        .replace("nodes = 3", "nodes = 1")
        .replace("min_clients = 3", "min_clients = 1")
        .replace(
            "{ kind = \"dirichlet\", alpha = 1.0 }",
            "{ kind = \"shards\", classes_per_node = 1 }",
        );
    let scenario = Scenario::parse(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = run(&scenario, "split", &dir.path().join("out"), |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("`partition`"), "{err}");
    assert!(!dir.path().join("out/rounds.csv").exists());
}

/// Faults are part of the scenario: the same seed replays the same dropouts
/// and the same attacker, through the real protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_replay_from_the_seed() {
    let text = TINY
        .replace("nodes = 3", "nodes = 5")
        .replace("count = 2", "count = 4")
        .replace("min_clients = 3", "min_clients = 5\nmin_results = 2")
        // A dropped node is silent until the deadline: keep the rounds short.
        .replace("deadline_secs = 60", "deadline_secs = 2")
        + r#"
[strategy]
name = "trimmed_mean"
trim_fraction = 0.2

[faults]
dropout = { probability = 0.25, stage = "after_training" }
malicious = { fraction = 0.2, attack = { kind = "sign_flip" } }
"#;
    let scenario = Scenario::parse(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let first = run(&scenario, "faults", &a, |_| {}).await.unwrap();
    let second = run(&scenario, "faults", &b, |_| {}).await.unwrap();

    assert_eq!(first.summary.rounds_completed, 4);
    assert_eq!(first.summary.strategy, "trimmed_mean");
    assert_eq!(first.summary.malicious_nodes.len(), 1);
    let dropped: usize = first
        .rounds
        .iter()
        .map(|r| r.sampled - r.participants)
        .sum();
    assert!(
        dropped > 0,
        "p = 0.25 over 4 rounds of 5 nodes dropped nobody: {:?}",
        first.rounds
    );
    assert_eq!(without_seconds(&a), without_seconds(&b));
    assert_eq!(first.summary.model_version, second.summary.model_version);
}
