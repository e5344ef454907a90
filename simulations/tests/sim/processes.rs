//! Nodes as separate `cohort-node run` processes: a tiny federation (3 nodes,
//! 2 rounds, breast cancer) completes its rounds, writes its reports and each
//! node's log, and trains exactly as the same scenario with nodes as tasks.
//! A scenario with faults is refused before anything starts.
//!
//! `cohort-node` must have been built next to this test: `cargo test --workspace`
//! builds it; with `cargo test -p cohort-sim` alone, build it first with
//! `cargo build -p cohort-client` (the test says so if it is missing).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cohort_sim::node_process::{NODE_BINARY, sibling_binary};
use cohort_sim::run::run;
use cohort_sim::scenario::{Mode, Scenario};

const TINY: &str = r#"
seed = 5
nodes = 3
data = "breast_cancer"
partition = { kind = "iid" }

[rounds]
count = 2
min_clients = 3
deadline_secs = 60

[training]
local_epochs = 1
batch_size = 16
learning_rate = 0.1

[model]
kind = "logistic_regression"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_processes_complete_the_rounds_and_train_as_tasks_do() {
    if let Err(missing) = sibling_binary(NODE_BINARY) {
        panic!("{missing}");
    }
    let tasks = Scenario::parse(TINY).unwrap();
    let processes = Scenario::parse(&format!("mode = \"processes\"\n{TINY}")).unwrap();
    assert_eq!(processes.mode, Mode::Processes);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("processes");

    let outcome = run(&processes, "tiny", &out, |_| {}).await.unwrap();

    assert_eq!(outcome.summary.rounds_completed, 2);
    assert_eq!(outcome.rounds.len(), 2);
    assert!(outcome.rounds.iter().all(|r| r.participants == 3));
    let accuracy = outcome.summary.final_accuracy.unwrap();
    assert!(accuracy > 0.5 && accuracy <= 1.0, "{accuracy}");
    for file in ["rounds.csv", "rounds.json", "summary.json", "scenario.toml"] {
        assert!(out.join(file).is_file(), "{file}");
    }
    let csv = std::fs::read_to_string(out.join("rounds.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let written = Scenario::load(&out.join("scenario.toml")).unwrap();
    assert_eq!(written.mode, Mode::Processes);
    // Each node was its own process, and says so in its log.
    for node in ["node-000", "node-001", "node-002"] {
        let log = std::fs::read_to_string(out.join(format!("node-logs/{node}.log"))).unwrap();
        assert!(
            log.contains("federation finished after 2 rounds"),
            "{node}: {log}"
        );
    }

    // The same data parts, splits and protocol: the same rounds as with tasks.
    let in_process = run(&tasks, "tiny", &dir.path().join("tasks"), |_| {})
        .await
        .unwrap();
    let numbers = |rows: &[cohort_sim::progress::RoundRow]| {
        rows.iter()
            .map(|r| (r.round, r.participants, r.accuracy, r.loss))
            .collect::<Vec<_>>()
    };
    assert_eq!(numbers(&outcome.rounds), numbers(&in_process.rounds));
    assert_eq!(
        outcome.summary.model_version,
        in_process.summary.model_version
    );
}

#[tokio::test]
async fn faults_are_refused_in_process_mode_naming_the_key() {
    let mut scenario = Scenario::parse(&format!(
        "{TINY}\n[faults]\nstragglers = {{ fraction = 0.5, latency = {{ distribution = \"fixed\", secs = 1.0 }} }}\n"
    ))
    .unwrap();
    scenario.mode = Mode::Processes;
    let dir = tempfile::tempdir().unwrap();
    let err = run(&scenario, "tiny", dir.path(), |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("`faults.stragglers`"), "{err}");
    assert!(err.contains("in-process nodes only"), "{err}");
    assert!(!dir.path().join("rounds.csv").exists());
    assert!(!dir.path().join("node-logs").exists());
}

#[tokio::test]
async fn a_split_that_leaves_no_holdout_is_refused_before_round_one() {
    // 1797 digits over 1000 nodes: one or two rows each, and a class of two
    // rows holds back round(0.4) = 0 of them.
    let scenario = Scenario::parse(
        "seed = 1\nnodes = 1000\nholdout = 0.2\ndata = \"digits\"\npartition = { kind = \"iid\" }\n\
         [rounds]\ncount = 1\nmin_clients = 1000\ndeadline_secs = 60\n[training]\nlocal_epochs = 1\nbatch_size = 8\nlearning_rate = 0.1\n\
         [model]\nkind = \"logistic_regression\"\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = match run(&scenario, "no-holdout", dir.path(), |_| {}).await {
        Ok(outcome) => panic!("ran {} rounds", outcome.summary.rounds_completed),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("holdout = 0.2 leaves no node a held-out row"),
        "{err}"
    );
    assert!(err.contains("at least 3 rows"), "{err}");
    assert!(!dir.path().join("rounds.csv").exists(), "no round ran");
}
