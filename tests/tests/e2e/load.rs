#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! Load: 500 nodes, each on its own mutual-TLS connection, through a full round
//! (feature statistics, fit, aggregation, commit, evaluation) against one
//! coordinator, all in this process on loopback. It prints the round's time and
//! the process's peak memory, which is this test's only when it runs alone in
//! the process: `cargo test -p cohort-e2e --test e2e load:: -- --nocapture`
//! (nextest runs every test in a process of its own). The numbers are recorded
//! in docs/ARCHITECTURE.md. Bounded: one round, and every wait fails the test
//! after `PATIENCE`.

use cohort_coordinator::federation::FederationEvent;
use cohort_coordinator::store::records::RoundOutcome;
use cohort_e2e::{Testbed, next_event, plan, within};

const NODES: usize = 500;

/// The process's peak resident memory (VmHWM), in MiB.
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_nodes_complete_a_round() {
    // Two sockets a node (its own and the coordinator's side), in this process:
    // under a low `ulimit -n` say so, rather than fail midway.
    cohort_sim::open_files::check(NODES, 2, "tasks").unwrap();
    let mut federation = plan(1, NODES);
    federation.rounds.deadline_secs = 120.0;
    let testbed = Testbed::new(federation);
    let coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let mut events = coordinator.events();
    let started = std::time::Instant::now();
    // About one breast-cancer row per node: the load is the connections and
    // the protocol, not the training.
    let nodes = testbed.start_nodes(coordinator.local_addr(), NODES);
    let record = next_event(&mut events, |event| match event {
        FederationEvent::RoundCompleted(record) => Some(record.clone()),
        _ => None,
    })
    .await;
    let RoundOutcome::Completed { contributions, .. } = &record.outcome else {
        unreachable!("a completed round");
    };
    assert_eq!(
        contributions.len(),
        NODES,
        "every node's update is in the round"
    );
    let round_secs = (record.finished_ms - record.started_ms) as f64 / 1000.0;
    for node in nodes {
        let summary = within("a node to finish", node).await.unwrap().unwrap();
        assert_eq!(summary.completed_rounds, 1);
    }
    coordinator.shutdown().await;
    println!(
        "{NODES} nodes: round (fit to commit) {round_secs:.2} s; from start to all nodes finished {:.2} s; peak memory {:.0} MiB",
        started.elapsed().as_secs_f64(),
        peak_memory_mib().unwrap_or(f64::NAN)
    );
}
