#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! Round deadlines: a node that never answers cannot hold a round. The round goes
//! on without it if enough nodes answered, and fails cleanly if not.
//!
//! The stage ends as at its deadline (`LiveRound::end_stage`), ended by the
//! test once only the silent node is left rather than by a clock a loaded
//! machine could miss; the timer itself is tested in `rounds/live.rs`.

use cohort_coordinator::CoordinatorError;
use cohort_coordinator::federation::FederationEvent;
use cohort_coordinator::rounds::engine::EngineError;
use cohort_coordinator::rounds::failure::FailureKind;
use cohort_coordinator::rounds::stage::StageKind;
use cohort_coordinator::store::records::RoundOutcome;
use cohort_coordinator::store::{SledStore, Store};
use cohort_e2e::stages::StageCloser;
use cohort_e2e::{HandDrivenNode, Testbed, next_event, plan, within};

const SILENT: &str = "silent-node";

#[tokio::test]
async fn a_silent_node_is_left_out_at_the_deadline() {
    let mut federation = plan(1, 3);
    federation.rounds.min_results = Some(2);
    let testbed = Testbed::new(federation);
    let mut coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let closer = StageCloser::start(&coordinator);
    let mut events = coordinator.events();
    let address = coordinator.local_addr();
    let honest = testbed.start_nodes(address, 2);
    let mut silent = HandDrivenNode::join(&testbed, SILENT, address).await;
    let (round, _) = silent.next_fit_task().await; // sampled, then never answers
    closer.silent(SILENT, StageKind::Fit, round);

    let (sampled, contributors) = next_event(&mut events, |event| match event {
        FederationEvent::RoundCompleted(record) => match &record.outcome {
            RoundOutcome::Completed { contributions, .. } => Some((
                record.sampled.clone(),
                contributions
                    .iter()
                    .map(|c| c.node_id.clone())
                    .collect::<Vec<_>>(),
            )),
            RoundOutcome::Failed { .. } => None,
        },
        _ => None,
    })
    .await;
    assert!(sampled.contains(&SILENT.to_string()));
    assert_eq!(contributors, vec!["hospital-0", "hospital-1"]);
    within("the federation", coordinator.wait()).await.unwrap();
    for node in honest {
        within("a node", node).await.unwrap().unwrap();
    }
    coordinator.shutdown().await;
}

#[tokio::test]
async fn too_few_results_fail_the_round_and_leave_the_model_unchanged() {
    let mut federation = plan(1, 3);
    federation.rounds.max_failed_attempts = 2;
    let testbed = Testbed::new(federation);
    let mut coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let closer = StageCloser::start(&coordinator);
    let mut events = coordinator.events();
    let address = coordinator.local_addr();
    let honest = testbed.start_nodes(address, 2);
    let mut silent = HandDrivenNode::join(&testbed, SILENT, address).await;
    let (round, _) = silent.next_fit_task().await;
    closer.silent(SILENT, StageKind::Fit, round);

    let reason = next_event(&mut events, |event| match event {
        FederationEvent::RoundFailed(record) => match &record.outcome {
            RoundOutcome::Failed { reason, kind } => {
                assert_eq!(*kind, Some(FailureKind::TooFewUpdates));
                Some(reason.clone())
            }
            RoundOutcome::Completed { .. } => None,
        },
        FederationEvent::RoundCompleted(record) => panic!("round {} completed", record.round),
        _ => None,
    })
    .await;
    assert!(reason.contains("only 2 of 3"), "{reason}");
    let (round, _) = silent.next_fit_task().await; // the second attempt samples it again
    closer.silent(SILENT, StageKind::Fit, round);
    let outcome = within("the engine to give up", coordinator.wait()).await;
    assert!(
        matches!(
            outcome,
            Err(CoordinatorError::Engine(EngineError::RoundKeepsFailing {
                round: 1,
                attempts: 2,
                ..
            }))
        ),
        "{outcome:?}"
    );
    coordinator.shutdown().await;
    for node in honest {
        node.abort();
    }

    let store = Store::from(SledStore::open(&testbed.dir.path().join("state")).unwrap());
    let head = store.head().await.unwrap().unwrap();
    assert_eq!(head.completed_rounds, 0, "the global model did not move");
    assert!(store.rounds().await.unwrap().is_empty());
    let failed = store.failed_rounds().await.unwrap();
    assert_eq!(
        failed.iter().map(|r| r.attempt).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(failed.iter().all(|r| r.model_in == head.model_version));
}
