#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! Differential privacy with an enforced budget: a federation whose (ε, δ) budget
//! allows exactly three rounds runs three, stops with a message that says what
//! was spent, and a restart neither loses nor double-counts the spend; the ε
//! reported is the stored ledger's.

use cohort_coordinator::config::{AccountantKind, NoisePlacement, PrivacyConfig};
use cohort_coordinator::federation::FederationEvent;
use cohort_coordinator::federation::summary::FinalSummary;
use cohort_coordinator::store::{SledStore, Store};
use cohort_e2e::{Testbed, next_event, plan, within};
use cohort_privacy::{
    Accountant, Conversion, CoordinatorView, DpEvent, PrivacyBudget, PrivacyLedger, RdpAccountant,
    RoundSpend,
};

const SIGMA: f64 = 1.0;
const DELTA: f64 = 1e-5;

fn epsilon_after(rounds: u64) -> f64 {
    let event = DpEvent::poisson_sampled_discrete_gaussian(1.0, SIGMA, rounds).unwrap();
    RdpAccountant::new(Conversion::Improved)
        .epsilon(&[event], DELTA)
        .unwrap()
}

#[tokio::test]
async fn the_budget_stops_training_and_survives_a_restart() {
    let (three, four) = (epsilon_after(3), epsilon_after(4));
    let mut federation = plan(10, 3);
    federation.scaling = Some(cohort_e2e::public_scaling());
    federation.privacy = Some(PrivacyConfig {
        noise_multiplier: SIGMA,
        clip_norm: 1.0,
        epsilon: (three + four) / 2.0,
        delta: DELTA,
        accountant: AccountantKind::Rdp,
        placement: NoisePlacement::Central,
        adaptive_clipping: None,
    });
    let testbed = Testbed::new(federation);
    let mut coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let mut events = coordinator.events();
    let nodes = testbed.start_nodes(coordinator.local_addr(), 3);

    let mut spent = Vec::new();
    let reason = next_event(&mut events, |event| match event {
        FederationEvent::RoundCompleted(record) => {
            spent.push(record.epsilon_spent.expect("ε in every round's record"));
            // Central noise: the coordinator sees every clipped change, no ε
            // is claimed against it.
            assert_eq!(record.epsilon_against_coordinator, None);
            None
        }
        FederationEvent::Finished { stop_reason, .. } => {
            Some(stop_reason.clone().expect("a stop reason"))
        }
        _ => None,
    })
    .await;
    assert_eq!(spent.len(), 3, "three rounds fit the budget: {spent:?}");
    assert!((spent[2] - three).abs() < 1e-9, "{spent:?} vs {three}");
    assert!(spent.windows(2).all(|w| w[0] < w[1]), "{spent:?}");
    assert!(reason.contains("privacy budget exhausted"), "{reason}");
    assert!(reason.contains("round 4 would bring it to"), "{reason}");
    assert!(
        reason.contains(&format!("{three:.4}")),
        "{reason} should say {three:.4} was spent"
    );

    let head = within("the federation", coordinator.wait()).await.unwrap();
    assert_eq!(head.completed_rounds, 3);
    for node in nodes {
        let summary = within("a node", node).await.unwrap().unwrap();
        assert_eq!(summary.completed_rounds, 3);
        assert_eq!(summary.stop_reason.as_deref(), Some(reason.as_str()));
    }
    coordinator.shutdown().await;
    let state = testbed.dir.path().join("state");
    let ledger = Store::from(SledStore::open(&state).unwrap())
        .privacy_ledger()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ledger.rounds.iter().map(|r| r.round).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );

    // A restart finds the budget spent: no round runs, and the ledger is as it was.
    let mut coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let head = within("the restarted federation", coordinator.wait())
        .await
        .unwrap();
    assert_eq!(head.completed_rounds, 3);
    coordinator.shutdown().await;
    let after = Store::from(SledStore::open(&state).unwrap())
        .privacy_ledger()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after, ledger);
}

/// The ε an operator reads (the finish line, the `epsilon_spent` metric) is
/// the stored ledger's: a release the ledger charged without a committed
/// round (a secure-aggregation attempt that failed after its sum was
/// unmasked) counts. Reading the last committed round's record would say 0.
#[tokio::test]
async fn the_epsilon_reported_is_the_ledgers_not_the_last_committed_rounds() {
    let mut federation = plan(10, 3);
    federation.scaling = Some(cohort_e2e::public_scaling());
    federation.privacy = Some(PrivacyConfig {
        noise_multiplier: SIGMA,
        clip_norm: 1.0,
        epsilon: epsilon_after(5),
        delta: DELTA,
        accountant: AccountantKind::Rdp,
        placement: NoisePlacement::Central,
        adaptive_clipping: None,
    });
    let testbed = Testbed::new(federation);
    let coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let store = coordinator.federation().store.clone();
    // Two releases charged, no round committed (no node has joined).
    let accountant = RdpAccountant::new(Conversion::Improved);
    let mut ledger =
        PrivacyLedger::new(PrivacyBudget::new(epsilon_after(5), DELTA).unwrap()).unwrap();
    for round in 1..=2 {
        let event = DpEvent::poisson_sampled_discrete_gaussian(1.0, SIGMA, 1).unwrap();
        let spend = RoundSpend {
            round,
            events: vec![event],
            coordinator: CoordinatorView::Trusted,
        };
        ledger.record_spend(spend, &accountant).unwrap();
    }
    store.charge_privacy(&ledger).await.unwrap();
    assert!(store.rounds().await.unwrap().is_empty());

    let head = store.head().await.unwrap().unwrap();
    let summary = FinalSummary::of(coordinator.federation(), &head)
        .await
        .unwrap();
    let spent = summary.privacy.expect("DP is on").epsilon_spent;
    assert!(
        (spent - epsilon_after(2)).abs() < 1e-9,
        "{spent} vs {}",
        epsilon_after(2)
    );
    drop(store);
    coordinator.shutdown().await;
}
