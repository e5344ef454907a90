#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! A coordinator stopped mid-federation resumes from its store (sled, and
//! PostgreSQL) at the last completed round: completed rounds stay as they
//! were, the round in flight is rerun, and no round is counted twice.

use cohort_coordinator::store::records::RoundOutcome;
use cohort_e2e::{Testbed, finish, plan};

fn model_out(outcome: &RoundOutcome) -> &str {
    match outcome {
        RoundOutcome::Completed { model_out, .. } => model_out,
        RoundOutcome::Failed { reason, .. } => panic!("unexpected failed round: {reason}"),
    }
}

#[tokio::test]
async fn restart_resumes_at_the_last_completed_round() {
    resumes_at_the_last_completed_round(Testbed::new(plan(4, 3))).await;
}

#[tokio::test]
async fn restart_resumes_at_the_last_completed_round_on_postgres() {
    if let Some(testbed) = Testbed::on_postgres(plan(4, 3)) {
        resumes_at_the_last_completed_round(testbed).await;
    }
}

async fn resumes_at_the_last_completed_round(testbed: Testbed) {
    // First life: stop as soon as round 2 is committed and evaluated.
    let (address, nodes) = testbed.run_until_round(2, 3).await;

    let before = {
        let store = testbed.store().await;
        let head = store.head().await.unwrap().unwrap();
        assert!(head.completed_rounds >= 2, "{head:?}");
        store.rounds().await.unwrap()
    };
    assert!(before.len() >= 2);

    // Second life on the same address and state: the nodes reconnect by themselves.
    let coordinator = testbed.start_coordinator(address).await;
    let (head, summaries) = finish(coordinator, nodes).await;
    assert_eq!(head.completed_rounds, 4);
    for summary in summaries {
        assert_eq!(summary.completed_rounds, 4);
    }

    let store = testbed.store().await;
    assert_eq!(
        store.config().await.unwrap().unwrap().federation_id,
        testbed.plan.federation_id,
        "the config is kept with the state"
    );
    let after = store.rounds().await.unwrap();
    assert_eq!(
        after.iter().map(|r| r.round).collect::<Vec<_>>(),
        vec![1, 2, 3, 4],
        "each round exactly once"
    );
    assert_eq!(
        &after[..2],
        &before[..2],
        "rounds 1-2 untouched by the restart"
    );
    for pair in after.windows(2) {
        assert_eq!(
            pair[1].model_in,
            model_out(&pair[0].outcome),
            "round {} starts from round {}'s model",
            pair[1].round,
            pair[0].round
        );
    }
    assert_eq!(model_out(&after[3].outcome), head.model_version);
    assert!(store.failed_rounds().await.unwrap().is_empty());
}
