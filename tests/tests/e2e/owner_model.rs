#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! A federation of a model the coordinator has no code for: `[model]` states
//! its descriptor, and its first parameters come from the owner's
//! safetensors file, logged with the file's SHA-256 before they become the
//! head. The coordinator serves, averages and commits flat vectors of the
//! descriptor's length; a first-model file of another model is refused at
//! start. Nodes built with the node SDK (`cohort_client::sdk::join`) train a
//! burn CNN in it; a node with only the built-in models refuses it.

use std::path::Path;

use std::time::Duration;

use cohort_client::data::{CsvOptions, Dataset, load_csv};
use cohort_client::node::{NodeConfig, NodeError};
use cohort_client::zoo::DigitsCnn;
use cohort_coordinator::audit::{AuditEvent, stored_entries};
use cohort_coordinator::config::ModelConfig;
use cohort_coordinator::store::records::RoundOutcome;
use cohort_coordinator::{Coordinator, CoordinatorError};
use cohort_crypto::tls::connector::ServerAddress;
use cohort_e2e::harness::spawn_node;
use cohort_e2e::{
    HandDrivenNode, Testbed, finish, header, plan, public_scaling, share_data, shares, within,
};
use cohort_proto::export::ModelFile;
use cohort_proto::model::{ModelDescriptor, TensorSpec, decode_f32, encode_f32};
use cohort_proto::v1::{self, update_chunk::Part};

/// A small 1-D convolutional classifier over the 30 breast-cancer features,
/// as a node SDK would describe it.
fn conv_model(version: &str) -> ModelDescriptor {
    ModelDescriptor::new(
        "test.conv1d",
        version,
        vec![
            TensorSpec::f32("conv.weight", vec![4, 1, 5]),
            TensorSpec::f32("conv.bias", vec![4]),
            TensorSpec::f32("head.weight", vec![104, 2]),
            TensorSpec::f32("head.bias", vec![2]),
        ],
    )
    .unwrap()
}

/// Writes the owner's first model of `descriptor` into `dir`.
fn first_model_file(dir: &Path, descriptor: ModelDescriptor) -> (ModelFile, std::path::PathBuf) {
    let count = descriptor.num_parameters();
    let parameters = (0..count).map(|i| (i % 17) as f32 / 17.0 - 0.5).collect();
    let file = ModelFile::new(descriptor, parameters).unwrap();
    let path = dir.join("first-model.safetensors");
    std::fs::write(&path, file.to_safetensors(Vec::new()).unwrap()).unwrap();
    (file, path)
}

fn owner_model_config(descriptor: ModelDescriptor, path: &Path) -> ModelConfig {
    ModelConfig::described(descriptor, path.to_owned(), 30, 2)
}

/// Sends `parameters` as `node`'s update of `round`, trained from `base`.
async fn submit(node: &mut HandDrivenNode, round: u64, base: &str, parameters: &[f32]) {
    let data = encode_f32(parameters);
    let chunks = vec![
        v1::UpdateChunk {
            part: Some(Part::Header(v1::UpdateHeader {
                header: header(&node.node_id),
                round,
                base_model_version: base.to_owned(),
                model_fingerprint: node.model.fingerprint().to_vec(),
                num_examples: 10,
                total_bytes: data.len() as u64,
                train_loss: 0.5,
            })),
        },
        v1::UpdateChunk {
            part: Some(Part::Data(data)),
        },
    ];
    node.client
        .submit_update(tokio_stream::iter(chunks))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_federation_trains_a_model_the_coordinator_has_no_code_for() {
    let scratch = tempfile::tempdir().unwrap();
    let (file, path) = first_model_file(scratch.path(), conv_model("1"));
    let mut federation = plan(1, 2);
    federation.model = owner_model_config(file.descriptor().clone(), &path);
    // A declared scaling: no statistics stage, so the nodes can be driven one
    // after the other.
    federation.scaling = Some(public_scaling());
    let testbed = Testbed::new(federation);
    let mut coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let address = coordinator.local_addr();

    // Nodes built from the descriptor state its fingerprint and are answered
    // with the same descriptor.
    let fingerprint = file.descriptor().fingerprint().to_vec();
    let mut nodes = Vec::new();
    for id in ["hospital-a", "hospital-b"] {
        let node = HandDrivenNode::join_stating(&testbed, id, address, fingerprint.clone()).await;
        assert_eq!(node.model, *file.descriptor());
        nodes.push(node);
    }
    // The first model is the owner's file, served as it is.
    let mut updates = Vec::new();
    for (i, node) in nodes.iter_mut().enumerate() {
        let (round, fit) = node.next_fit_task().await;
        assert_eq!(fit.model_version, file.model_version());
        let start = node.fetch_model(&fit.model_version).await;
        assert_eq!(start, file.parameters());
        let update: Vec<f32> = start.iter().map(|w| w + (i as f32 + 1.0) / 8.0).collect();
        submit(node, round, &fit.model_version, &update).await;
        updates.push(update);
    }
    // FedAvg of two equally weighted updates, committed as the head.
    let head = within("the federation to finish", coordinator.wait())
        .await
        .unwrap();
    let store = &coordinator.federation().store;
    let stored = store.model(&head.model_version).await.unwrap().unwrap();
    let averaged = decode_f32(&stored, file.descriptor().num_parameters()).unwrap();
    for (k, value) in averaged.iter().enumerate() {
        let mean = (updates[0][k] + updates[1][k]) / 2.0;
        assert!(
            (value - mean).abs() < 1e-6,
            "parameter {k}: {value} vs {mean}"
        );
    }
    // The log names the first model and the file it came from.
    let bytes = std::fs::read(&path).unwrap();
    let sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes));
    let entries = stored_entries(store).await.unwrap();
    let initialized: Vec<_> = entries
        .iter()
        .filter_map(|e| match &e.event {
            AuditEvent::ModelInitialized {
                model_version,
                file_sha256,
            } => Some((model_version.as_str(), file_sha256.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(initialized, [(file.model_version(), sha256.as_str())]);
    coordinator.shutdown().await;
}

#[tokio::test]
async fn a_first_model_file_of_another_model_is_refused_at_start() {
    let scratch = tempfile::tempdir().unwrap();
    // The owner's file holds version 2 of the model; the config says 1.
    let (_, path) = first_model_file(scratch.path(), conv_model("2"));
    let mut federation = plan(1, 2);
    federation.model = owner_model_config(conv_model("1"), &path);
    let testbed = Testbed::new(federation);
    let config = testbed.coordinator_config("127.0.0.1:0".parse().unwrap());
    let Err(refused) = Coordinator::start(config).await else {
        panic!("a coordinator started from another model's file");
    };
    assert!(
        matches!(&refused, CoordinatorError::InitialModel { path: named, .. } if *named == path),
        "{refused}"
    );
    assert!(refused.to_string().contains("test.conv1d 2"), "{refused}");
    // Nothing was initialized: the store holds no head.
    assert!(testbed.store().await.head().await.unwrap().is_none());
}

fn digits() -> Dataset {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/digits.csv.gz");
    load_csv(&path, &CsvOptions::default()).unwrap().dataset
}

/// Three hospitals join a federation of the zoo's digits CNN with the node
/// SDK, the first model from `sdk::initial_model`: every round commits and
/// is scored, and the CNN learns (held-out accuracy well above chance).
#[tokio::test]
async fn nodes_built_with_the_sdk_federate_a_burn_cnn() {
    let scratch = tempfile::tempdir().unwrap();
    let first = cohort_client::sdk::initial_model(DigitsCnn::new, 7).unwrap();
    let path = scratch.path().join("digits-cnn.safetensors");
    std::fs::write(&path, first.to_safetensors(Vec::new()).unwrap()).unwrap();
    let mut federation = plan(3, 3);
    federation.model = ModelConfig::described(first.descriptor().clone(), path.clone(), 64, 10);
    federation.training.local_epochs = 2;
    federation.training.learning_rate = 0.05;
    let testbed = Testbed::new(federation);
    let coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let address = coordinator.local_addr();
    let data = digits();
    let rows = cohort_sim::partition::iid(data.len(), 3, 11).unwrap();
    let nodes = (0..3)
        .map(|i| {
            let node_id = format!("hospital-{i}");
            let config = NodeConfig {
                coordinator: ServerAddress {
                    address: address.to_string(),
                    server_name: "localhost".into(),
                },
                standby_coordinators: Vec::new(),
                tls: testbed.node_tls(&node_id),
                federation_id: testbed.plan.federation_id.clone(),
                give_up_after: Duration::from_secs(120),
                models_dir: None,
            };
            let local = share_data(&data, &rows[i], i);
            tokio::spawn(cohort_client::sdk::join(config, DigitsCnn::new, local))
        })
        .collect();
    let store = coordinator.federation().store.clone();
    let (head, summaries) = finish(coordinator, nodes).await;
    assert_eq!(head.completed_rounds, 3);
    assert!(
        summaries
            .iter()
            .all(|s| s.updates_sent == 3 && s.evaluations_sent == 3),
        "{summaries:?}"
    );
    let accuracies: Vec<f64> = (store.rounds().await.unwrap().iter())
        .filter_map(|record| match &record.outcome {
            RoundOutcome::Completed {
                evaluation: Some(evaluation),
                ..
            } => Some(evaluation.accuracy),
            _ => None,
        })
        .collect();
    println!("digits CNN, 3 SDK nodes: held-out accuracy by round {accuracies:?}");
    assert_eq!(accuracies.len(), 3, "{accuracies:?}");
    assert!(accuracies[2] > 0.7, "{accuracies:?}");
}

/// A node that has only the built-in dense models cannot train a model it
/// has no code for: it stops with the models named, and takes no task.
#[tokio::test]
async fn a_node_without_the_model_code_refuses_the_federation() {
    let scratch = tempfile::tempdir().unwrap();
    let (file, path) = first_model_file(scratch.path(), conv_model("1"));
    let mut federation = plan(1, 1);
    federation.model = owner_model_config(file.descriptor().clone(), &path);
    let testbed = Testbed::new(federation);
    let coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let local = shares(1).remove(0);
    let node = spawn_node(
        &testbed.provisioned,
        "hospital-0",
        &testbed.plan.federation_id,
        coordinator.local_addr(),
        local,
        None,
        None,
    )
    .unwrap();
    let stopped = within("the node to stop", node).await.unwrap();
    let Err(NodeError::Incompatible(reason)) = stopped else {
        panic!("a node without the model's code took part: {stopped:?}");
    };
    assert!(
        reason.contains("test.conv1d 1") && reason.contains("cohort.dense 1"),
        "{reason}"
    );
    coordinator.shutdown().await;
}
