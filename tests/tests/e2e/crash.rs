#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! A coordinator process killed with SIGKILL in the middle of round 3 of 6 and
//! started again, with its state in sled and in PostgreSQL: the federation finishes with exactly six rounds, each counted
//! once, a privacy ledger holding exactly six rounds' spend, and an audit log
//! that verifies. The node processes ride it out by reconnecting.

use cohort_coordinator::store::records::RoundOutcome;
use cohort_e2e::deployment::{Deployment, binary, finish_federation, run_ok};
use cohort_e2e::within;
use cohort_privacy::{Accountant, Conversion, DpEvent, RdpAccountant};

const SIGMA: f64 = 1.0;
const DELTA: f64 = 1e-5;

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
            r#"# On PostgreSQL the restarted coordinator waits for the killed one's
# lease to expire.
coordinator_lease_ms = 2000

[model]
kind = "logistic_regression"
num_features = 30
num_classes = 2

[rounds]
count = 6
min_clients = 3
deadline_secs = 60

# Enough local work that round 3 is still in flight when the kill lands.
[training]
local_epochs = 150
batch_size = 16
learning_rate = 0.05

[privacy]
noise_multiplier = {SIGMA}
clip_norm = 1.0
epsilon = 100.0
delta = {DELTA}

{scaling}"#,
            scaling = cohort_e2e::public_scaling_toml()
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
    let rounds = store.rounds().await.unwrap();
    assert_eq!(
        rounds.iter().map(|r| r.round).collect::<Vec<_>>(),
        (1..=6).collect::<Vec<_>>(),
        "each round committed exactly once"
    );
    assert!(
        rounds
            .iter()
            .all(|r| matches!(r.outcome, RoundOutcome::Completed { .. }))
    );
    let ledger = store
        .privacy_ledger()
        .await
        .unwrap()
        .expect("a privacy ledger");
    assert_eq!(
        ledger.rounds.iter().map(|r| r.round).collect::<Vec<_>>(),
        (1..=6).collect::<Vec<_>>(),
        "the ledger holds each round's spend once"
    );
    let accountant = RdpAccountant::new(Conversion::Improved);
    let six = DpEvent::poisson_sampled_discrete_gaussian(1.0, SIGMA, 6).unwrap();
    let expected = accountant.epsilon(&[six], DELTA).unwrap();
    let spent = accountant.epsilon(&ledger.events(), DELTA).unwrap();
    assert!(
        (spent - expected).abs() < 1e-9,
        "ledger ε {spent} vs six rounds' {expected}"
    );
    let last = rounds.last().unwrap().epsilon_spent.unwrap();
    assert!((last - expected).abs() < 1e-9, "round 6 records ε {last}");
}
