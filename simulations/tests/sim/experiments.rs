//! The shipped strategy experiments hold what `simulations/README.md` reports:
//! each test runs the checked-in scenario files over the real protocol (about a
//! second each) and checks the claims, so a change that breaks one fails here.
//!
//! - Dirichlet α = 0.1 digits: FedProx and FedAdam reach at least FedAvg's
//!   accuracy after the same 20 rounds.
//! - 20 % sign-flipping nodes on IID digits: Krum and the trimmed mean stay
//!   within 3 points of clean FedAvg, plain or boosted attack; FedAvg loses
//!   accuracy to the plain attack and collapses under the boosted one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use cohort_sim::run::run;
use cohort_sim::scenario::Scenario;

/// Final held-out accuracy of a shipped scenario.
async fn accuracy(name: &str) -> f64 {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    let scenario = Scenario::load(&file).unwrap();
    let out = tempfile::tempdir().unwrap();
    let outcome = run(&scenario, name, out.path(), |_| {}).await.unwrap();
    assert_eq!(
        outcome.summary.rounds_completed, scenario.rounds.count,
        "{name}"
    );
    outcome.summary.final_accuracy.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fedprox_and_fedadam_reach_fedavg_on_skewed_digits() {
    let fedavg = accuracy("digits-dirichlet-0.1").await;
    let fedprox = accuracy("digits-dirichlet-0.1-fedprox").await;
    let fedadam = accuracy("digits-dirichlet-0.1-fedadam").await;
    println!("FedAvg {fedavg:.4}, FedProx {fedprox:.4}, FedAdam {fedadam:.4}");
    assert!(fedprox >= fedavg, "FedProx {fedprox} < FedAvg {fedavg}");
    assert!(fedadam >= fedavg, "FedAdam {fedadam} < FedAvg {fedavg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robust_aggregators_hold_against_sign_flippers() {
    let clean = accuracy("digits-iid").await;
    for attack in ["signflip", "boosted-signflip"] {
        for defence in ["krum", "trimmed-mean"] {
            let name = format!("digits-iid-{attack}-{defence}");
            let defended = accuracy(&name).await;
            println!("{name}: {defended:.4} (clean {clean:.4})");
            assert!(
                clean - defended <= 0.03,
                "{name}: {defended} vs clean {clean}"
            );
        }
    }
    let flipped = accuracy("digits-iid-signflip-fedavg").await;
    assert!(
        flipped < clean,
        "sign flip left FedAvg at {flipped}, clean {clean}"
    );
    let boosted = accuracy("digits-iid-boosted-signflip-fedavg").await;
    assert!(
        clean - boosted > 0.5,
        "boosted sign flip left FedAvg at {boosted}"
    );
}
