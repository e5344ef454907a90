//! The ledger's budget logic and its persistence format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cohort_privacy::{DpEvent, PrivacyBudget, PrivacyError, PrivacyLedger, RdpAccountant};

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
