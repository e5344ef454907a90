#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! An erasure request carried through to the model on the breast-cancer
//! federation: after round 5 of 10 one node removes a data subject's rows,
//! registers the new data set version and reports the request. Every model that
//! learned from the old version is tainted and no longer served, the federation
//! is retrained from the last untainted model with the current data, the final
//! model's lineage no longer holds the old version, the request is closed with
//! every step in the log, and the log names the subject by pseudonym only.

use cohort_client::data::content_sha256;
use cohort_client::erasure::ErasureRequest;
use cohort_coordinator::audit::erasure::statuses;
use cohort_coordinator::audit::lineage::Lineage;
use cohort_coordinator::audit::{AuditEvent, verify};
use cohort_crypto::transparency::AuditSigningKey;
use cohort_e2e::unlearning::{
    MidRunErasure, assert_closed_with_every_step, assert_unlearned, erase_subject_after_round,
    report_erasure, subject_id, subject_pseudonyms,
};
use cohort_e2e::{Testbed, breast_cancer, finish, header, plan, raw_client, within};
use cohort_proto::v1;
use tonic::Code;

#[tokio::test]
async fn an_erased_subject_leaves_no_trace_in_the_final_model_or_the_log() {
    leaves_no_trace(Testbed::new(plan(10, 3))).await;
}

#[tokio::test]
async fn an_erased_subject_leaves_no_trace_in_the_final_model_or_the_log_on_postgres() {
    if let Some(testbed) = Testbed::on_postgres(plan(10, 3)) {
        leaves_no_trace(testbed).await;
    }
}

async fn leaves_no_trace(testbed: Testbed) {
    let state = testbed.dir.path().join("state");
    let data = breast_cancer();

    // Rounds 1-5 with every row; then hospital-0 erases one subject's rows,
    // restarts with the new version and reports the request.
    let MidRunErasure {
        address,
        coordinator,
        nodes,
        erased_row,
        reduced,
        old_version,
        new_version,
        receipt,
    } = erase_subject_after_round(&testbed, 5, 3).await;
    let pseudonym = subject_pseudonyms(&testbed).pseudonym(&subject_id(erased_row));
    assert_eq!(
        new_version.version,
        content_sha256(&reduced.train)[..16],
        "the version is the content hash of the remaining rows"
    );
    let old_ref = old_version.reference();
    let mut client = raw_client(&testbed.node_tls("hospital-0"), address)
        .await
        .unwrap();
    // Round 1 already trained on the old version: everything since is tainted.
    assert!(receipt.tainted_models.len() >= 5, "{receipt:?}");
    assert!(!receipt.rollback_to.is_empty(), "{receipt:?}");
    // Neither the oldest tainted version nor the newest, which every node
    // had just fetched and the coordinator still holds in memory
    // (`federation/models.rs`): the taint is checked before that copy.
    for tainted in [
        receipt.tainted_models.first(),
        receipt.tainted_models.last(),
    ] {
        let refused = client
            .fetch_model(v1::FetchModelRequest {
                header: header("hospital-0"),
                model_version: tainted.unwrap().clone(),
            })
            .await
            .expect_err("a tainted model is not served");
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    }

    let (head, summaries) = finish(coordinator, nodes).await;
    assert_eq!(head.completed_rounds, 10);
    assert!(summaries.iter().all(|s| s.completed_rounds == 10));

    let store = testbed.store().await;
    let key = AuditSigningKey::load(&state.join("audit-signing.key")).unwrap();
    let log = verify(&store, &key.log_identity(cohort_e2e::FEDERATION))
        .await
        .unwrap();
    for model in &receipt.tainted_models {
        assert!(store.is_tainted(model).await.unwrap());
    }
    assert!(!store.is_tainted(&head.model_version).await.unwrap());

    // The final model's lineage: ten rounds from the rollback target's root,
    // trained on the new version and never on the old one.
    let lineage = assert_unlearned(
        &log.entries,
        &head.model_version,
        10,
        &old_ref,
        &new_version,
        &receipt.tainted_models,
    );
    // Back at the initial model, the feature scaling was agreed again on the
    // current data: the old version's statistics shaped nothing that remains.
    let scaling = lineage.scaling.as_ref().expect("the scaling is logged");
    assert!(scaling.datasets.iter().any(|d| d.dataset == new_version));
    let agreements = log
        .entries
        .iter()
        .filter(|e| matches!(e.event, AuditEvent::ScalingAgreed { .. }))
        .count();
    assert_eq!(agreements, 2);

    // The request went through every step, in order, and is closed in time.
    assert_closed_with_every_step(&log.entries, &receipt.request_id);
    let rolled_back = log.entries.iter().find_map(|e| match &e.event {
        AuditEvent::HeadRolledBack { model_version, .. } => Some(model_version.clone()),
        _ => None,
    });
    assert_eq!(rolled_back, Some(receipt.rollback_to.clone()));

    // No personal data in the log: the subject appears by pseudonym only, and
    // no subject identifier of any node's rows is anywhere in it.
    let text: Vec<String> = store
        .audit_entries()
        .await
        .unwrap()
        .into_iter()
        .map(|(_, bytes)| String::from_utf8(bytes).unwrap())
        .collect();
    assert!(text.iter().any(|entry| entry.contains(&pseudonym)));
    for row in 0..data.len() {
        let id = subject_id(row);
        assert!(
            !text.iter().any(|entry| entry.contains(&id)),
            "{id} is in the log"
        );
    }
    assert!(!text.iter().any(|entry| entry.contains("patient-")));
}

#[tokio::test]
async fn a_node_that_leaves_is_unlearned_and_may_not_return() {
    // Rounds 1-2 need all three nodes, so hospital-2 is in both.
    leaves_and_may_not_return(Testbed::new(plan(4, 3))).await;
}

#[tokio::test]
async fn a_node_that_leaves_is_unlearned_and_may_not_return_on_postgres() {
    if let Some(testbed) = Testbed::on_postgres(plan(4, 3)) {
        leaves_and_may_not_return(testbed).await;
    }
}

async fn leaves_and_may_not_return(mut testbed: Testbed) {
    let state = testbed.dir.path().join("state");
    let (address, mut nodes) = testbed.run_until_round(2, 3).await;
    let leaver = nodes.remove(2);
    // The rest of the federation goes on with the two that stay: restarted
    // with that change of settings, on purpose (`serve --change-settings`).
    testbed.plan.rounds.min_clients = 2;
    let coordinator = testbed
        .start_coordinator_with(address, |config| config.server.change_settings = true)
        .await;
    let receipt = report_erasure(
        &testbed,
        address,
        "hospital-2",
        &ErasureRequest::Leave,
        None,
    )
    .await;
    // Both rounds learned from hospital-2 (and a third, if one committed
    // before the report arrived).
    assert!(receipt.tainted_models.len() >= 2, "{receipt:?}");

    // The node that left is refused when it registers again, and stops.
    let refused = within("the leaving node to stop", leaver)
        .await
        .unwrap()
        .expect_err("a node that left may not register again");
    assert!(
        refused.to_string().contains("left the federation"),
        "{refused}"
    );

    let (head, _) = finish(coordinator, nodes).await;
    assert_eq!(head.completed_rounds, 4);
    let store = testbed.store().await;
    assert!(
        store
            .node("hospital-2")
            .await
            .unwrap()
            .unwrap()
            .left_ms
            .is_some()
    );
    let key = AuditSigningKey::load(&state.join("audit-signing.key")).unwrap();
    let log = verify(&store, &key.log_identity(cohort_e2e::FEDERATION))
        .await
        .unwrap();
    let lineage = Lineage::from_entries(&log.entries)
        .model(&head.model_version)
        .unwrap();
    assert_eq!(lineage.rounds.len(), 4);
    assert_eq!(
        lineage.nodes,
        ["hospital-0", "hospital-1"].map(String::from).into()
    );
    let request = statuses(&log.entries, u64::MAX / 2)
        .into_iter()
        .find(|r| r.request_id == receipt.request_id)
        .unwrap();
    assert!(request.closed_ms.is_some(), "{request:?}");
}
