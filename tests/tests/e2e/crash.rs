#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! A coordinator process killed with SIGKILL in the middle of round 3 of 6 and
//! started again, with its state in sled and in PostgreSQL: the federation finishes with exactly six rounds, each counted
//! once, a privacy ledger holding exactly six rounds' spend, and an audit log
//! that verifies. The node processes ride it out by reconnecting.

use cohort_e2e::deployment::{
    Deployment, binary, check_each_round_once, finish_federation, run_ok, slow_dp_federation,
};
use cohort_e2e::within;

#[tokio::test]
async fn sigkill_during_round_three_loses_and_doubles_nothing() {
    let deployment = Deployment::provision("crash", &NODES).await;
    loses_and_doubles_nothing(deployment).await;
}

#[tokio::test]
async fn sigkill_during_round_three_loses_and_doubles_nothing_on_postgres() {
    let deployment = Deployment::provision("crash", &NODES).await;
    if let Some(deployment) = deployment.on_postgres() {
        loses_and_doubles_nothing(deployment).await;
    }
}

const NODES: [&str; 3] = ["ward-a", "ward-b", "ward-c"];

async fn loses_and_doubles_nothing(deployment: Deployment) {
    let nodes = NODES;
    // Nodes must find the restarted coordinator where they left it: a fixed port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    deployment.write_config(
        &format!("127.0.0.1:{port}"),
        &format!(
            "# On PostgreSQL the restarted coordinator waits for the killed one's
# lease to expire.
coordinator_lease_ms = 2000

{}",
            slow_dp_federation(6, 3)
        ),
    );

    let mut coordinator = deployment.start_coordinator(true).await;
    let port = coordinator.port();
    let children: Vec<_> = nodes
        .iter()
        .map(|node| deployment.start_node(node, &port))
        .collect();
    coordinator
        .wait_for_log(&["round started", "round=3"])
        .await;
    coordinator.child.start_kill().unwrap(); // SIGKILL: no shutdown path runs.
    let status = within("the kill", coordinator.child.wait()).await.unwrap();
    assert!(!status.success(), "killed, not exited: {status:?}");
    let head = deployment
        .store()
        .await
        .head()
        .await
        .unwrap()
        .expect("a head");
    assert_eq!(
        head.completed_rounds, 2,
        "killed while round 3 was in flight"
    );

    let mut restarted = deployment.start_coordinator(false).await;
    finish_federation(&mut restarted, children, 6).await;

    let state = deployment.state_args();
    let state: Vec<&str> = state.iter().map(String::as_str).collect();
    let verified = run_ok(
        &binary("cohort-coordinator"),
        &[&["audit", "verify"], &state[..]].concat(),
    )
    .await;
    assert!(verified.contains("verified"), "{verified}");

    // The ledger as the operator reads it, for `cohort-privacy ledger`.
    let printed = run_ok(
        &binary("cohort-coordinator"),
        &[&["privacy-ledger"], &state[..]].concat(),
    )
    .await;
    let printed: cohort_privacy::PrivacyLedger = serde_json::from_str(&printed).unwrap();
    assert_eq!(
        printed.rounds.len(),
        6,
        "the printed ledger holds six rounds"
    );

    let store = deployment.store().await;
    let expected = check_each_round_once(&store, 6).await;
    let rounds = store.rounds().await.unwrap();
    let last = rounds.last().unwrap().epsilon_spent.unwrap();
    assert!((last - expected).abs() < 1e-9, "round 6 records ε {last}");
}
