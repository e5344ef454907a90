//! The ledger's budget logic and its persistence format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cohort_privacy::{
    CoordinatorView, DpEvent, Observer, ObserverEpsilon, PrivacyBudget, PrivacyError,
    PrivacyLedger, RdpAccountant, RoundSpend,
};

fn round_event() -> DpEvent {
    DpEvent::poisson_sampled_gaussian(0.01, 1.0, 50).unwrap()
}

#[test]
fn records_until_the_budget_would_be_exceeded() {
    let rdp = RdpAccountant::default();
    let mut ledger = PrivacyLedger::new(PrivacyBudget::new(2.0, 1e-5).unwrap()).unwrap();
    let mut round = 0;
    loop {
        let check = ledger.check(&[round_event()], &rdp).unwrap();
        if check.exceeds() {
            assert!(check.excess() > 0.0);
            assert_eq!(check.remaining(), 0.0);
            let err = ledger.record(round, vec![round_event()], &rdp).unwrap_err();
            match err {
                PrivacyError::BudgetExceeded {
                    epsilon_after,
                    epsilon_budget,
                    excess,
                    ..
                } => {
                    assert_eq!(epsilon_budget, 2.0);
                    assert!((epsilon_after - 2.0 - excess).abs() < 1e-12);
                }
                other => panic!("unexpected {other}"),
            }
            break;
        }
        let recorded = ledger.record(round, vec![round_event()], &rdp).unwrap();
        assert!(recorded.epsilon_after >= recorded.epsilon_spent);
        round += 1;
        assert!(round < 1000, "budget never ran out");
    }
    // A refused round leaves the ledger as it was.
    assert_eq!(ledger.rounds.len() as u64, round);
    assert!(ledger.epsilon_spent(&rdp).unwrap() <= 2.0);
    assert!(round > 1);
}

#[test]
fn an_already_exceeded_budget_is_an_error() {
    let rdp = RdpAccountant::default();
    let mut ledger = PrivacyLedger::new(PrivacyBudget::new(10.0, 1e-5).unwrap()).unwrap();
    ledger
        .record(
            0,
            vec![DpEvent::poisson_sampled_gaussian(0.05, 1.0, 100).unwrap()],
            &rdp,
        )
        .unwrap();
    // The operator lowers the budget below what was already spent.
    ledger.budget.epsilon = 0.5;
    let err = ledger.check(&[round_event()], &rdp).unwrap_err();
    assert!(
        matches!(err, PrivacyError::BudgetAlreadyExceeded { epsilon_budget, .. } if epsilon_budget == 0.5)
    );
    assert!(err.to_string().contains("already exceeded"));
}

#[test]
fn ledger_round_trips_through_json() {
    let rdp = RdpAccountant::default();
    let mut ledger = PrivacyLedger::new(PrivacyBudget::new(5.0, 1e-6).unwrap()).unwrap();
    ledger
        .record(
            7,
            vec![
                round_event(),
                DpEvent::poisson_sampled_gaussian(1.0, 20.0, 1).unwrap(),
            ],
            &rdp,
        )
        .unwrap();
    let json = serde_json::to_string(&ledger).unwrap();
    assert!(
        json.contains("\"kind\":\"poisson_sampled_gaussian\""),
        "{json}"
    );
    let back: PrivacyLedger = serde_json::from_str(&json).unwrap();
    assert_eq!(back, ledger);
}

#[test]
fn repeated_rounds_compose_as_one_event_with_the_same_epsilon() {
    use cohort_privacy::{
        Accountant, Conversion, DpEvent, PrivacyBudget, PrivacyLedger, RdpAccountant,
    };
    let accountant = RdpAccountant::new(Conversion::Improved);
    let event = DpEvent::poisson_sampled_gaussian(0.1, 1.2, 1).unwrap();
    let mut ledger = PrivacyLedger::new(PrivacyBudget::new(100.0, 1e-5).unwrap()).unwrap();
    for round in 1..=50 {
        ledger.record(round, vec![event], &accountant).unwrap();
    }
    assert_eq!(ledger.rounds.len(), 50, "every round stays on record");
    assert_eq!(
        ledger.events(),
        vec![DpEvent::poisson_sampled_gaussian(0.1, 1.2, 50).unwrap()]
    );
    let separate: Vec<DpEvent> = (0..50).map(|_| event).collect();
    let expected = accountant.epsilon(&separate, 1e-5).unwrap();
    let merged = ledger.epsilon_spent(&accountant).unwrap();
    assert!((merged - expected).abs() < 1e-9, "{merged} vs {expected}");
}

fn distributed_round(round: u64) -> RoundSpend {
    let mechanism = cohort_privacy::DistributedDiscreteGaussian {
        clip_norm: 1.0,
        granularity: 1e-3,
        local_stddev: 256.0,
        clients: 20,
        dimension: 100,
        rounding_beta: (-0.5f64).exp(),
    };
    let events = vec![DpEvent::distributed_discrete_gaussian(0.1, mechanism, 1).unwrap()];
    RoundSpend {
        round,
        coordinator: CoordinatorView::knowing_the_sample(&events),
        events,
    }
}

#[test]
fn the_coordinator_knows_the_sample_so_its_epsilon_is_unamplified() {
    use cohort_privacy::{Accountant, Conversion};
    let rdp = RdpAccountant::new(Conversion::Improved);
    let mut ledger = PrivacyLedger::new(PrivacyBudget::new(50.0, 1e-5).unwrap()).unwrap();
    for round in 1..=10 {
        ledger.record_spend(distributed_round(round), &rdp).unwrap();
    }
    let released = ledger
        .epsilon_against(Observer::ReleasedModels, &rdp)
        .unwrap();
    let coordinator = ledger.epsilon_against(Observer::Coordinator, &rdp).unwrap();
    // Independently: the same mechanism with q = 1, ten times.
    let RoundSpend { events, .. } = distributed_round(0);
    let unsampled = rdp
        .epsilon(&[events[0].with_known_sample().with_count(10)], 1e-5)
        .unwrap();
    let sampled = rdp.epsilon(&[events[0].with_count(10)], 1e-5).unwrap();
    let close = |got: ObserverEpsilon, want: f64| matches!(got, ObserverEpsilon::Bounded(e) if (e / want - 1.0).abs() < 1e-9);
    assert!(close(released, sampled), "{released:?} vs {sampled}");
    assert!(
        close(coordinator, unsampled),
        "{coordinator:?} vs {unsampled}"
    );
    println!("released models ε = {sampled:.4}, coordinator ε = {unsampled:.4}");
    assert!(unsampled > 2.0 * sampled, "{unsampled} vs {sampled}");
    // The check reports both, and the round after.
    let check = ledger.check_spend(&distributed_round(11), &rdp).unwrap();
    assert!(matches!(check.coordinator_after, ObserverEpsilon::Bounded(e) if e > unsampled));
}

#[test]
fn a_trusted_or_unrecorded_coordinator_gets_no_epsilon() {
    let rdp = RdpAccountant::default();
    let mut ledger = PrivacyLedger::new(PrivacyBudget::new(50.0, 1e-5).unwrap()).unwrap();
    ledger.record(1, vec![round_event()], &rdp).unwrap();
    assert_eq!(
        ledger.epsilon_against(Observer::Coordinator, &rdp).unwrap(),
        ObserverEpsilon::Unrecorded
    );
    let central = RoundSpend {
        round: 2,
        events: vec![round_event()],
        coordinator: CoordinatorView::Trusted,
    };
    ledger.record_spend(central, &rdp).unwrap();
    ledger.record_spend(distributed_round(3), &rdp).unwrap();
    assert_eq!(
        ledger.epsilon_against(Observer::Coordinator, &rdp).unwrap(),
        ObserverEpsilon::Trusted
    );
    // The views survive a round trip, and an old ledger (no coordinator
    // field) reads as unrecorded.
    let json = serde_json::to_string(&ledger).unwrap();
    let back: PrivacyLedger = serde_json::from_str(&json).unwrap();
    assert_eq!(back, ledger);
    let old = r#"{"budget":{"epsilon":1.0,"delta":1e-5},"rounds":[{"round":1,"events":[]}]}"#;
    let old: PrivacyLedger = serde_json::from_str(old).unwrap();
    assert_eq!(old.rounds[0].coordinator, CoordinatorView::Unrecorded);
}

#[test]
fn kept_composition_matches_recomposing_and_follows_each_clone() {
    use cohort_privacy::{Accountant, PldAccountant};
    let rdp = RdpAccountant::default();
    let mut ledger = PrivacyLedger::new(PrivacyBudget::new(100.0, 1e-5).unwrap()).unwrap();
    for round in 1..=30 {
        ledger.record_spend(distributed_round(round), &rdp).unwrap();
    }
    let all: Vec<DpEvent> = ledger
        .rounds
        .iter()
        .flat_map(|r| r.events.clone())
        .collect();
    let from_scratch = rdp.epsilon(&all, 1e-5).unwrap();
    let kept = ledger.epsilon_spent(&rdp).unwrap();
    assert!(
        (kept / from_scratch - 1.0).abs() < 1e-12,
        "{kept} vs {from_scratch}"
    );
    // A clone that records more does not change the original's ε.
    let mut clone = ledger.clone();
    clone.record_spend(distributed_round(31), &rdp).unwrap();
    assert_eq!(ledger.epsilon_spent(&rdp).unwrap(), kept);
    assert!(clone.epsilon_spent(&rdp).unwrap() > kept);
    // Rounds appended directly are composed on the next check.
    ledger.rounds.push(distributed_round(31));
    assert_eq!(
        ledger.epsilon_spent(&rdp).unwrap(),
        clone.epsilon_spent(&rdp).unwrap()
    );
    // Another accountant composes afresh (PLD has no DDG analysis: an error, not a stale value).
    assert!(ledger.epsilon_spent(&PldAccountant::new()).is_err());
}
