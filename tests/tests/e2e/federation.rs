#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! Whole federations over loopback: rounds complete and the model learns.

use std::collections::BTreeSet;

use cohort_client::data::standardized;
use cohort_client::training::evaluate;
use cohort_coordinator::audit::{AuditEvent, verify};
use cohort_coordinator::federation::FederationEvent;
use cohort_coordinator::store::records::RoundOutcome;
use cohort_coordinator::store::{SledStore, Store};
use cohort_crypto::transparency::AuditSigningKey;
use cohort_e2e::{Testbed, breast_cancer, next_event, plan, within};
use cohort_proto::model::{ParameterLayout, decode_f32};

#[tokio::test]
async fn three_nodes_complete_three_rounds_and_the_model_improves() {
    let testbed = Testbed::new(plan(3, 3));
    let mut coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let mut events = coordinator.events();
    let nodes = testbed.start_nodes(coordinator.local_addr(), 3);

    let mut accuracies = Vec::new();
    for expected_round in 1..=3 {
        let (round, participants, accuracy) = next_event(&mut events, |event| match event {
            FederationEvent::RoundCompleted(record) => match &record.outcome {
                RoundOutcome::Completed {
                    contributions,
                    evaluation,
                    ..
                } => Some((
                    record.round,
                    contributions.len(),
                    evaluation.as_ref().map(|e| e.accuracy),
                )),
                RoundOutcome::Failed { .. } => None,
            },
            _ => None,
        })
        .await;
        assert_eq!(round, expected_round);
        assert_eq!(participants, 3, "every node contributes to round {round}");
        accuracies.push(accuracy.expect("round was evaluated"));
    }
    let head = within("the federation to finish", coordinator.wait())
        .await
        .unwrap();
    assert_eq!(head.completed_rounds, 3);
    for node in nodes {
        let summary = within("a node to finish", node).await.unwrap().unwrap();
        assert_eq!(summary.completed_rounds, 3);
        assert_eq!(summary.updates_sent, 3);
        assert_eq!(summary.final_model_version, head.model_version);
    }
    coordinator.shutdown().await;

    let state = testbed.dir.path().join("state");
    let store = Store::from(SledStore::open(&state).unwrap());
    let rounds = store.rounds().await.unwrap();
    assert_eq!(rounds.len(), 3);

    // The audit log verifies and tells who joined and what each round did.
    let audit_key = AuditSigningKey::load(&state.join("audit-signing.key")).unwrap();
    let log = verify(&store, &audit_key.log_identity(cohort_e2e::FEDERATION))
        .await
        .unwrap();
    let mut registered: Vec<&str> = log
        .entries
        .iter()
        .filter_map(|e| match &e.event {
            AuditEvent::NodeRegistered { node_id, .. } => Some(node_id.as_str()),
            _ => None,
        })
        .collect();
    registered.dedup();
    assert_eq!(registered.len(), 3, "{registered:?}");
    let datasets = log
        .entries
        .iter()
        .filter(|e| matches!(&e.event, AuditEvent::DatasetRegistered { dataset, .. } if dataset.row_count > 0 && dataset.legal_basis == "consent"))
        .count();
    assert_eq!(datasets, 3, "one data set version registered per node");
    let started: Vec<(u64, usize)> = log
        .entries
        .iter()
        .filter_map(|e| match &e.event {
            AuditEvent::RoundStarted { round, sampled, .. } => Some((*round, sampled.len())),
            _ => None,
        })
        .collect();
    assert_eq!(
        started,
        vec![(1, 3), (2, 3), (3, 3)],
        "each round's start is logged"
    );
    let audited_rounds: Vec<(u64, &str)> = log
        .entries
        .iter()
        .filter_map(|e| match &e.event {
            AuditEvent::RoundCompleted {
                round,
                model_out,
                contributors,
                datasets,
                ..
            } => {
                assert_eq!(contributors.len(), 3);
                // Lineage: each contributor's data set version is recorded.
                let with_data: Vec<&str> = datasets.iter().map(|d| d.node_id.as_str()).collect();
                assert_eq!(&with_data, contributors, "round {round}");
                Some((*round, model_out.as_str()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        audited_rounds,
        rounds
            .iter()
            .map(|r| match &r.outcome {
                RoundOutcome::Completed { model_out, .. } => (r.round, model_out.as_str()),
                RoundOutcome::Failed { reason, .. } => panic!("{reason}"),
            })
            .collect::<Vec<_>>()
    );
    // Who received which model: a sampled node's download of its round's
    // starting model is on record through `RoundStarted` alone; any other
    // download (here: the new model, to evaluate it) has its own entry.
    let downloads: BTreeSet<(&str, &str)> = (log.entries.iter())
        .filter_map(|e| match &e.event {
            AuditEvent::ModelDownloaded {
                node_id,
                model_version,
            } => Some((node_id.as_str(), model_version.as_str())),
            _ => None,
        })
        .collect();
    let first_model = rounds[0].model_in.as_str();
    assert!(
        downloads.iter().all(|(_, version)| *version != first_model),
        "the first model's downloads are covered by round 1's start: {downloads:?}"
    );
    for (_, model_out) in &audited_rounds {
        for node in &registered {
            assert!(downloads.contains(&(*node, *model_out)), "{downloads:?}");
        }
    }
    let layout = ParameterLayout::of(&testbed.plan.model.dense_spec().unwrap()).unwrap();
    let scaling = store.feature_scaling().await.unwrap().unwrap();
    let data = standardized(&scaling, &breast_cancer()).unwrap();

    // The initial and the final model, scored alike: on every row, standardized
    // with the federation's scaling.
    let score = async |version: &str| {
        let params = decode_f32(
            &store.model(version).await.unwrap().unwrap(),
            layout.num_parameters(),
        );
        evaluate(&layout, &params.unwrap(), &data).unwrap()
    };
    let before = score(&rounds[0].model_in).await;
    let after = score(&head.model_version).await;
    assert!(
        after.accuracy > before.accuracy && after.loss < 0.8 * before.loss,
        "the model should improve: initial {before:?}, after 3 rounds {after:?}"
    );
    assert!(
        after.accuracy > 0.9,
        "{after:?}; per-round held-out accuracy {accuracies:?}"
    );
}
