#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! A coordinator that serves after finish (`server.serve_after_finish`) acts on
//! an erasure request that arrives after the last round: the tainted models are
//! refused at once, the federation leaves its finished state, the nodes started
//! again (the erasing one on its reduced data) retrain it from the rollback
//! point, and it finishes again with a model whose lineage no longer holds the
//! erased data set version; the request is closed with every step. The nodes
//! hear the taint list with their polls: one that kept a tainted model deletes
//! it, and each acknowledgement is in the audit log. When the privacy budget
//! allows no retraining, the request is remediated at the rollback, and
//! closed only once every node that had downloaded a tainted model has
//! acknowledged withdrawing it.
//! By default the round engine stops after the last round.

use cohort_client::erasure::ErasureRequest;
use cohort_client::model::{SavedModel, WithdrawnModels};
use cohort_client::node::{LocalData, Node, NodeConfig};
use cohort_coordinator::Coordinator;
use cohort_coordinator::audit::erasure::statuses;
use cohort_coordinator::audit::{stored_entries, verify};
use cohort_coordinator::config::{AccountantKind, NoisePlacement, PrivacyConfig};
use cohort_coordinator::federation::FederationEvent;
use cohort_coordinator::store::Store;
use cohort_coordinator::store::records::DatasetRef;
use cohort_crypto::tls::connector::ServerAddress;
use cohort_crypto::transparency::AuditSigningKey;
use cohort_e2e::harness::{FederationPlan, local_data, spawn_node};
use cohort_e2e::unlearning::{
    assert_closed_with_every_step, assert_unlearned, assert_withdrawn_before_closing,
    report_erasure,
};
use cohort_e2e::{
    NodeHandle, Testbed, breast_cancer, header, next_event, plan, raw_client, within,
};
use cohort_privacy::{Accountant, Conversion, DpEvent, RdpAccountant};
use cohort_proto::v1;
use cohort_proto::v1::poll_task_response::Outcome;
use cohort_sim::partition::iid;
use std::net::SocketAddr;
use tonic::Code;

const NODES: usize = 3;
const ROUNDS: u64 = 3;

/// `node_id` on `data`, against the coordinator at `address`.
fn start_node(
    testbed: &Testbed,
    address: SocketAddr,
    node_id: &str,
    data: LocalData,
) -> NodeHandle {
    spawn_node(
        &testbed.provisioned,
        node_id,
        &testbed.plan.federation_id,
        address,
        data,
        None,
        None,
    )
    .unwrap()
}

/// `node_id` keeping global models in `models_dir`.
fn start_node_keeping_models(
    testbed: &Testbed,
    address: SocketAddr,
    node_id: &str,
    data: LocalData,
    models_dir: &std::path::Path,
) -> NodeHandle {
    let config = NodeConfig {
        coordinator: ServerAddress {
            address: address.to_string(),
            server_name: "localhost".into(),
        },
        tls: testbed.node_tls(node_id),
        standby_coordinators: Vec::new(),
        federation_id: testbed.plan.federation_id.clone(),
        give_up_after: std::time::Duration::from_secs(60),
        models_dir: Some(models_dir.to_owned()),
    };
    tokio::spawn(Node::new(config, data).unwrap().run())
}

/// A coordinator for `testbed` that keeps serving after its last round.
async fn serving_after_finish(testbed: &Testbed) -> Coordinator {
    testbed
        .start_coordinator_with("127.0.0.1:0".parse().unwrap(), |config| {
            config.server.serve_after_finish = true;
        })
        .await
}

/// The model round 1 started from, and the data set version hospital-0 registered.
async fn initial_model_and_first_dataset(store: &Store) -> (String, DatasetRef) {
    let initial_model = store.rounds().await.unwrap()[0].model_in.clone();
    let dataset = store
        .node("hospital-0")
        .await
        .unwrap()
        .unwrap()
        .dataset
        .expect("hospital-0 registered its data set")
        .reference();
    (initial_model, dataset)
}

/// Waits for the federation's next `Finished` event: (completed rounds, final
/// model, rounds completed since the call).
async fn next_finish(
    events: &mut tokio::sync::broadcast::Receiver<FederationEvent>,
) -> (u64, String, Vec<u64>) {
    let mut completed = Vec::new();
    let (rounds, model) = next_event(events, |event| match event {
        FederationEvent::RoundCompleted(record) => {
            completed.push(record.round);
            None
        }
        FederationEvent::Finished {
            completed_rounds,
            model_version,
            stop_reason: None,
        } => Some((*completed_rounds, model_version.clone())),
        _ => None,
    })
    .await;
    (rounds, model, completed)
}

#[tokio::test]
async fn an_erasure_after_the_last_round_is_retrained_while_the_coordinator_serves() {
    retrained_while_serving(Testbed::new(plan(ROUNDS, NODES))).await;
}

#[tokio::test]
async fn an_erasure_after_the_last_round_is_retrained_while_the_coordinator_serves_on_postgres() {
    if let Some(testbed) = Testbed::on_postgres(plan(ROUNDS, NODES)) {
        retrained_while_serving(testbed).await;
    }
}

async fn retrained_while_serving(testbed: Testbed) {
    let state = testbed.dir.path().join("state");
    let mut coordinator = serving_after_finish(&testbed).await;
    let address = coordinator.local_addr();
    let mut events = coordinator.events();
    let store = coordinator.federation().store.clone();

    // First run: every round, then Finished; `wait` returns at that point
    // although the engine goes on waiting for erasures.
    let nodes = testbed.start_nodes(address, NODES);
    let (rounds, first_model, completed) = next_finish(&mut events).await;
    assert_eq!(rounds, ROUNDS);
    assert_eq!(completed, [1, 2, 3]);
    let head = within("the federation to finish", coordinator.wait())
        .await
        .unwrap();
    assert_eq!(head.model_version, first_model);
    for node in nodes {
        let summary = within("a node to finish", node).await.unwrap().unwrap();
        assert_eq!(summary.final_model_version, first_model);
    }
    let (initial_model, old_version) = initial_model_and_first_dataset(&store).await;

    // hospital-0 erases one subject's rows and starts again on the rest: it
    // registers the new version, hears that the federation finished, and stops.
    let data = breast_cancer();
    // The same IID shares `Testbed::start_nodes` gives hospital-0..2.
    let parts = iid(data.len(), NODES, 11).unwrap();
    let share =
        |i: usize, rows: &[usize]| local_data(&data.subset(rows).unwrap(), 0.25, i as u64).unwrap();
    let reduced = share(0, &parts[0][1..]);
    let restarted = start_node(&testbed, address, "hospital-0", reduced.clone());
    let new_version = next_event(&mut events, |event| match event {
        FederationEvent::NodeRegistered {
            node_id,
            dataset: Some(dataset),
        } if node_id == "hospital-0" && *dataset != old_version => Some(dataset.clone()),
        _ => None,
    })
    .await;
    let summary = within("hospital-0 to stop", restarted)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary.final_model_version, first_model, "still finished");

    // It reports the erasure: everything since round 1 learned from the old
    // version (and the feature scaling did too), so the rollback goes back to
    // the initial model.
    let receipt = report_erasure(
        &testbed,
        address,
        "hospital-0",
        &ErasureRequest::Subject(format!("patient-{:04}", parts[0][0])),
        Some(&old_version),
    )
    .await;
    assert_eq!(receipt.tainted_models.len() as u64, ROUNDS, "{receipt:?}");
    assert!(receipt.tainted_models.contains(&first_model), "{receipt:?}");
    assert_eq!(receipt.rollback_to, initial_model);

    // The tainted models are refused at once; the rollback target is served.
    let mut client = raw_client(&testbed.node_tls("hospital-0"), address)
        .await
        .unwrap();
    for model in &receipt.tainted_models {
        let refused = client
            .fetch_model(v1::FetchModelRequest {
                header: header("hospital-0"),
                model_version: model.clone(),
            })
            .await
            .expect_err("a tainted model is not served");
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        assert!(refused.message().contains("erased data"), "{refused:?}");
    }
    let mut served = client
        .fetch_model(v1::FetchModelRequest {
            header: header("hospital-0"),
            model_version: initial_model.clone(),
        })
        .await
        .expect("the untainted model is served")
        .into_inner();
    let first_chunk = served.message().await.unwrap().expect("a chunk");
    assert_eq!(first_chunk.header.unwrap().model_version, initial_model);

    // The federation leaves its finished state: a poll no longer says Finished
    // (it is held for the poll timeout, with no task until enough nodes are back).
    let withdrawn = next_event(&mut events, |event| match event {
        FederationEvent::Reopened { model_version } => Some(model_version.clone()),
        _ => None,
    })
    .await;
    assert_eq!(withdrawn, first_model);
    let polled = client
        .poll_task(v1::PollTaskRequest {
            header: header("hospital-0"),
            withdrawn_models: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        matches!(polled.outcome, Some(Outcome::Idle(_))),
        "{polled:?}"
    );
    // Every poll answer carries the taint list.
    let mut sent = polled.tainted_models.clone();
    let mut tainted = receipt.tainted_models.clone();
    sent.sort();
    tainted.sort();
    assert_eq!(sent, tainted);

    // hospital-1 had kept the final model (a file named after it): the taint
    // list reaches it with its first poll, and the file goes.
    let models_dir = testbed.dir.path().join("hospital-1-models");
    std::fs::create_dir_all(&models_dir).unwrap();
    let kept = SavedModel::path_in(&models_dir, &first_model);
    std::fs::write(&kept, b"{}").unwrap();

    // The operator starts the nodes again, hospital-0 on its reduced data:
    // the coordinator retrains every round from the initial model.
    let mut nodes = vec![
        start_node(&testbed, address, "hospital-0", reduced),
        start_node_keeping_models(
            &testbed,
            address,
            "hospital-1",
            share(1, &parts[1]),
            &models_dir,
        ),
    ];
    for (i, rows) in parts.iter().enumerate().skip(2) {
        nodes.push(start_node(
            &testbed,
            address,
            &format!("hospital-{i}"),
            share(i, rows),
        ));
    }
    let (rounds, final_model, retrained) = next_finish(&mut events).await;
    assert_eq!(rounds, ROUNDS);
    assert_eq!(retrained, [1, 2, 3], "every round reran");
    assert_ne!(final_model, first_model);
    let head = within("the retrain to finish", coordinator.wait())
        .await
        .unwrap();
    assert_eq!(head.model_version, final_model);
    for node in nodes {
        let summary = within("a node to finish", node).await.unwrap().unwrap();
        assert_eq!(summary.completed_rounds, ROUNDS);
        assert_eq!(summary.final_model_version, final_model);
    }
    // The store's clone first: shutdown waits until the store is released.
    drop(store);
    coordinator.shutdown().await;

    // The request went through every step, in order, and is closed; the
    // final model's lineage has every round, on the new version only, and a
    // feature scaling agreed again on the current data.
    let store = testbed.store().await;
    let key = AuditSigningKey::load(&state.join("audit-signing.key")).unwrap();
    let log = verify(&store, &key.log_identity(cohort_e2e::FEDERATION))
        .await
        .unwrap();
    assert_closed_with_every_step(&log.entries, &receipt.request_id);
    let lineage = assert_unlearned(
        &log.entries,
        &final_model,
        ROUNDS as usize,
        &old_version,
        &new_version,
        &receipt.tainted_models,
    );
    let scaling = lineage.scaling.expect("the scaling is logged");
    assert!(scaling.datasets.iter().any(|d| d.dataset == new_version));
    assert!(!store.is_tainted(&final_model).await.unwrap());
    assert!(store.is_tainted(&first_model).await.unwrap());

    // The kept tainted model is gone, its withdrawal recorded on the node
    // and acknowledged by every node that polled since, in the audit log.
    assert!(!kept.exists(), "the tainted model was deleted");
    let withdrawn = WithdrawnModels::load(&models_dir).unwrap();
    assert!(tainted.iter().all(|model| withdrawn.contains(model)));
    let request = statuses(&log.entries, u64::MAX / 2)
        .into_iter()
        .find(|r| r.request_id == receipt.request_id)
        .unwrap();
    let mut acknowledged: Vec<&str> = request
        .withdrawn_by
        .iter()
        .map(|(node, _)| node.as_str())
        .collect();
    acknowledged.sort_unstable();
    assert_eq!(acknowledged, ["hospital-0", "hospital-1", "hospital-2"]);
}

#[tokio::test]
async fn by_default_the_round_engine_stops_after_the_last_round() {
    let testbed = Testbed::new(plan(1, 2));
    let mut coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let nodes = testbed.start_nodes(coordinator.local_addr(), 2);
    let head = within("the federation to finish", coordinator.wait())
        .await
        .unwrap();
    assert_eq!(head.completed_rounds, 1);
    let stopped = within("the round engine to stop", coordinator.engine_stopped())
        .await
        .unwrap();
    assert_eq!(stopped, head);
    for node in nodes {
        within("a node to finish", node).await.unwrap().unwrap();
    }
    coordinator.shutdown().await;
}

/// ε after `rounds` full-participation rounds at σ = 1 (the plan below).
fn epsilon_after(rounds: u64) -> f64 {
    let event = DpEvent::poisson_sampled_discrete_gaussian(1.0, 1.0, rounds).unwrap();
    RdpAccountant::new(Conversion::Improved)
        .epsilon(&[event], 1e-5)
        .unwrap()
}

/// A budget for exactly the three rounds: the retrain after an erasure
/// cannot run a single round (the discarded rounds' ε stays spent).
fn budget_for_three_rounds() -> FederationPlan {
    let mut federation = plan(ROUNDS, NODES);
    federation.scaling = Some(cohort_e2e::public_scaling());
    federation.privacy = Some(PrivacyConfig {
        noise_multiplier: 1.0,
        clip_norm: 1.0,
        epsilon: (epsilon_after(3) + epsilon_after(4)) / 2.0,
        delta: 1e-5,
        accountant: AccountantKind::Rdp,
        placement: NoisePlacement::Central,
        adaptive_clipping: None,
    });
    federation
}

#[tokio::test]
async fn an_erasure_the_privacy_budget_cannot_retrain_is_closed_at_the_rollback() {
    closed_at_the_rollback(Testbed::new(budget_for_three_rounds())).await;
}

#[tokio::test]
async fn an_erasure_the_privacy_budget_cannot_retrain_is_closed_at_the_rollback_on_postgres() {
    if let Some(testbed) = Testbed::on_postgres(budget_for_three_rounds()) {
        closed_at_the_rollback(testbed).await;
    }
}

async fn closed_at_the_rollback(testbed: Testbed) {
    let state = testbed.dir.path().join("state");
    let coordinator = serving_after_finish(&testbed).await;
    let address = coordinator.local_addr();
    let mut events = coordinator.events();
    let store = coordinator.federation().store.clone();
    let nodes = testbed.start_nodes(address, NODES);
    let (rounds, first_model, _) = next_finish(&mut events).await;
    assert_eq!(rounds, ROUNDS);
    for node in nodes {
        within("a node to finish", node).await.unwrap().unwrap();
    }
    let (initial_model, old_version) = initial_model_and_first_dataset(&store).await;

    let data = breast_cancer();
    let parts = iid(data.len(), NODES, 11).unwrap();
    let reduced = local_data(&data.subset(&parts[0][1..]).unwrap(), 0.25, 0).unwrap();
    let restarted = start_node(&testbed, address, "hospital-0", reduced.clone());
    within("hospital-0 to stop", restarted)
        .await
        .unwrap()
        .unwrap();
    let receipt = report_erasure(
        &testbed,
        address,
        "hospital-0",
        &ErasureRequest::Subject(format!("patient-{:04}", parts[0][0])),
        Some(&old_version),
    )
    .await;
    assert_eq!(receipt.rollback_to, initial_model);

    // Reopened, rolled back, and stopped by the budget before any round.
    let stop_reason = next_event(&mut events, |event| match event {
        FederationEvent::Finished {
            model_version,
            stop_reason: Some(reason),
            ..
        } => Some((model_version.clone(), reason.clone())),
        _ => None,
    })
    .await;
    assert_eq!(stop_reason.0, initial_model);
    assert!(
        stop_reason.1.contains("privacy budget exhausted"),
        "{stop_reason:?}"
    );

    // Remediated, but not closed: the three nodes downloaded tainted models
    // in the first run and, stopped, have not acknowledged withdrawing them.
    let request = async |store: &Store| {
        let entries = stored_entries(store).await.unwrap();
        let mut all = statuses(&entries, u64::MAX / 2);
        all.retain(|r| r.request_id == receipt.request_id);
        all.pop().expect("the request is in the log")
    };
    let waiting = request(&store).await;
    assert!(waiting.remediated_model.is_some(), "{waiting:?}");
    assert_eq!(waiting.closed_ms, None, "closed before the withdrawals");
    assert_eq!(waiting.holders, ["hospital-0", "hospital-1", "hospital-2"]);
    assert_eq!(waiting.awaiting_withdrawal, waiting.holders);

    // Started again, each node hears that the federation finished, with the
    // taint list; it withdraws the tainted models and acknowledges with one
    // last poll. The last acknowledgement closes the request.
    let mut nodes = vec![start_node(&testbed, address, "hospital-0", reduced)];
    for (i, rows) in parts.iter().enumerate().skip(1) {
        let data = local_data(&data.subset(rows).unwrap(), 0.25, i as u64).unwrap();
        nodes.push(start_node(
            &testbed,
            address,
            &format!("hospital-{i}"),
            data,
        ));
    }
    for node in nodes {
        within("a node to finish", node).await.unwrap().unwrap();
    }
    let closed = request(&store).await;
    assert!(closed.closed_ms.is_some(), "{closed:?}");
    assert_withdrawn_before_closing(&closed);

    // The store's clone first: shutdown waits until the store is released.
    drop(store);
    coordinator.shutdown().await;

    // The request is remediated at the rolled-back (untainted) model, the log
    // saying why nothing was retrained, and closed once withdrawn.
    let store = testbed.store().await;
    let key = AuditSigningKey::load(&state.join("audit-signing.key")).unwrap();
    let log = verify(&store, &key.log_identity(cohort_e2e::FEDERATION))
        .await
        .unwrap();
    assert_closed_with_every_step(&log.entries, &receipt.request_id);
    let request = statuses(&log.entries, u64::MAX / 2)
        .into_iter()
        .find(|r| r.request_id == receipt.request_id)
        .unwrap();
    assert_eq!(
        request.remediated_model.as_deref(),
        Some(initial_model.as_str())
    );
    let why = request
        .retrain_stopped
        .expect("the log says why the retrain stopped");
    assert!(why.contains("privacy budget exhausted"), "{why}");
    assert!(store.is_tainted(&first_model).await.unwrap());
    assert!(!store.is_tainted(&initial_model).await.unwrap());
}
