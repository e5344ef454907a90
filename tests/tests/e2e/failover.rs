#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! Two coordinator processes on one PostgreSQL database (issue #20): one
//! active, one standing by.
//!
//! * The active one is killed with SIGKILL in the middle of round 4 of 10:
//!   the standby takes the lease over, loads the federation (3 rounds
//!   committed), and the ten node processes, given both addresses, find it
//!   by themselves. The federation finishes with every round committed once,
//!   a ledger of exactly ten rounds' ε, and an audit log that verifies.
//! * The active one is paused with SIGSTOP during round 2; the standby takes
//!   over and commits rounds; resumed, the former leader commits nothing (its
//!   writes are fenced by the lease's token) and stops.

use std::net::SocketAddr;
use std::time::Instant;

use cohort_coordinator::store::Store;
use cohort_e2e::console::get;
use cohort_e2e::deployment::{
    CoordinatorProcess, Deployment, binary, check_each_round_once, finish_federation, run_ok,
    slow_dp_federation,
};
use cohort_e2e::within;
const LEASE_MS: u64 = 3000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One coordinator of the pair: its gRPC and probe addresses.
struct Site {
    config: std::path::PathBuf,
    port: u16,
    probes: SocketAddr,
}

/// Writes the config of coordinator `name` (its own ports and state folder,
/// the shared database) for a federation of `rounds` rounds.
fn site(deployment: &Deployment, name: &str, rounds: u64, min_clients: usize) -> Site {
    let (port, probes) = (free_port(), free_port());
    let probes: SocketAddr = format!("127.0.0.1:{probes}").parse().unwrap();
    let config = deployment.write_config_as(
        &format!("{name}.toml"),
        &format!("127.0.0.1:{port}"),
        &format!("state-{name}"),
        &format!(
            "coordinator_lease_ms = {LEASE_MS}\nobservability_listen = \"{probes}\"\n\n{}",
            slow_dp_federation(rounds, min_clients)
        ),
    );
    Site {
        config,
        port,
        probes,
    }
}

/// Configures coordinators `a` and `b` for `rounds` rounds of `nodes`, starts
/// `a` (active), then `b` as its standby with a copy of the audit signing key
/// (0600), and checks their `/readyz`.
async fn start_pair(
    deployment: &Deployment,
    rounds: u64,
    nodes: usize,
) -> (Site, Site, CoordinatorProcess, CoordinatorProcess) {
    let (a, b) = (
        site(deployment, "a", rounds, nodes),
        site(deployment, "b", rounds, nodes),
    );
    let mut active = deployment.spawn_coordinator(&a.config, true);
    active.listening().await;
    let key = cohort_coordinator::audit::SIGNING_KEY_FILE;
    std::fs::create_dir_all(deployment.path("state-b")).unwrap();
    let copy = deployment.path("state-b").join(key);
    std::fs::copy(deployment.path("state-a").join(key), &copy).unwrap();
    let owner_only = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    std::fs::set_permissions(&copy, owner_only).unwrap();
    let mut standby = deployment.spawn_coordinator(&b.config, true);
    standby
        .wait_for_log(&["standby: another coordinator holds the lease"])
        .await;
    assert_eq!(get(a.probes, "/readyz").await.status, 200);
    let probe = get(b.probes, "/readyz").await;
    assert_eq!((probe.status, probe.body.as_str()), (503, "standby\n"));
    assert_eq!(get(b.probes, "/healthz").await.status, 200);
    (a, b, active, standby)
}

/// Starts node `i`, dialing `first` and then `second`.
fn start_node(
    deployment: &Deployment,
    node: &str,
    first: u16,
    second: u16,
) -> tokio::process::Child {
    let standby = format!("localhost:{second}");
    deployment.start_node_reading(
        node,
        &first.to_string(),
        deployment.path(&format!("{node}.csv")),
        &["--standby-coordinator", &standby],
    )
}

async fn signal(process: &CoordinatorProcess, name: &str) {
    let pid = process.child.id().expect("running").to_string();
    run_ok(
        std::path::Path::new("/bin/kill"),
        &[&format!("-{name}"), &pid],
    )
    .await;
}

/// The state after the federation finished: rounds 1..=`rounds` committed
/// once each, completed; the ledger holds each round's spend once; the audit
/// log verifies.
async fn check_finished_state(deployment: &Deployment, store: &Store, rounds: u64) {
    check_each_round_once(store, rounds).await;
    let database = deployment.database.as_ref().unwrap();
    let state = deployment.path("state-b");
    let verified = run_ok(
        &binary("cohort-coordinator"),
        &[
            "audit",
            "verify",
            "--state",
            state.to_str().unwrap(),
            "--postgres",
            &database.settings.postgres,
        ],
    )
    .await;
    assert!(verified.contains("verified"), "{verified}");
}

const TEN: [&str; 10] = [
    "ward-0", "ward-1", "ward-2", "ward-3", "ward-4", "ward-5", "ward-6", "ward-7", "ward-8",
    "ward-9",
];

#[tokio::test]
async fn the_standby_takes_over_from_a_killed_coordinator() {
    let Some(deployment) = Deployment::provision("failover", &TEN).await.on_postgres() else {
        return;
    };
    let (a, b, mut active, mut standby) = start_pair(&deployment, 10, TEN.len()).await;
    // Half the nodes dial the standby first: it sends them on.
    let nodes: Vec<_> = TEN
        .iter()
        .enumerate()
        .map(|(i, node)| match i % 2 {
            0 => start_node(&deployment, node, a.port, b.port),
            _ => start_node(&deployment, node, b.port, a.port),
        })
        .collect();
    active.wait_for_log(&["round started", "round=4"]).await;
    active.child.start_kill().unwrap(); // SIGKILL: no shutdown path runs.
    let killed = Instant::now();
    assert!(
        !within("the kill", active.child.wait())
            .await
            .unwrap()
            .success()
    );

    standby
        .wait_for_log(&["state loaded", "completed_rounds=3"])
        .await;
    standby.listening().await;
    let takeover = killed.elapsed();
    standby.drain_log("b");
    assert_eq!(get(b.probes, "/readyz").await.status, 200);
    println!(
        "takeover {:.2} s after SIGKILL (lease {LEASE_MS} ms)",
        takeover.as_secs_f64()
    );

    finish_federation(&mut standby, nodes, 10).await;
    let store = deployment.store().await;
    check_finished_state(&deployment, &store, 10).await;
    let Store::Postgres(database) = &store else {
        panic!("on PostgreSQL");
    };
    let lease = database.lease().await.unwrap();
    assert_eq!(lease.token.get(), 2, "taken twice: by a, then by b");
    assert!(lease.expired, "b gave the lease up when it stopped");
}

const THREE: [&str; 3] = ["ward-a", "ward-b", "ward-c"];

#[tokio::test]
async fn a_paused_former_leader_commits_nothing_after_the_takeover() {
    let Some(deployment) = Deployment::provision("paused", &THREE).await.on_postgres() else {
        return;
    };
    let (a, b, mut paused, mut standby) = start_pair(&deployment, 6, THREE.len()).await;
    let nodes: Vec<_> = THREE
        .iter()
        .map(|node| start_node(&deployment, node, a.port, b.port))
        .collect();
    paused.wait_for_log(&["round started", "round=2"]).await;
    signal(&paused, "STOP").await;

    standby.listening().await;
    // The new leader commits a round of its own before the old one wakes.
    standby.wait_for_log(&["round completed"]).await;
    standby.drain_log("b");
    signal(&paused, "CONT").await;
    let why = paused
        .wait_for_any_log(&["no longer the active coordinator", "fenced off"])
        .await;
    assert!(why.is_some(), "the former leader noticed it lost the lease");
    paused.drain_log("a");
    let status = within("the former leader's exit", paused.child.wait())
        .await
        .unwrap();
    assert!(!status.success(), "it stops with an error: {status:?}");

    finish_federation(&mut standby, nodes, 6).await;
    let store = deployment.store().await;
    check_finished_state(&deployment, &store, 6).await;
}
