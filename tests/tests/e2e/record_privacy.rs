#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! Record-level DP-SGD with the node's own budget: a node whose (ε, δ) allows
//! two rounds trains two, then refuses to train; the federation finishes its
//! rounds with the other nodes, and the node's ledger holds exactly two, each
//! charged for its DP-SGD steps and its noisy reported statistics.

use cohort_client::node::record_privacy::RecordPrivacy;
use cohort_client::node::{Node, NodeConfig};
use cohort_client::training::{DpSgdConfig, LocalTrainingConfig};
use cohort_coordinator::federation::FederationEvent;
use cohort_coordinator::rounds::stage::StageKind;
use cohort_coordinator::store::records::RoundOutcome;
use cohort_crypto::tls::connector::ServerAddress;
use cohort_e2e::harness::local_data;
use cohort_e2e::stages::StageCloser;
use cohort_e2e::{Testbed, breast_cancer, next_event, plan, within};
use cohort_privacy::reported_stats::TrainingStatsRelease;
use cohort_privacy::{Accountant, Conversion, PrivacyBudget, PrivacyLedger, RdpAccountant};
use cohort_sim::partition::iid;

#[tokio::test]
async fn a_node_stops_training_when_its_own_budget_is_spent() {
    let mut federation = plan(4, 3);
    federation.rounds.min_results = Some(2);
    // A record-private node sends no exact feature statistics.
    federation.scaling = Some(cohort_e2e::public_scaling());
    let testbed = Testbed::new(federation);
    let coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    // Its budget allows two rounds: the fit stages of rounds 3 and 4 end (as
    // at their deadline) once the others have answered. Whether it trained
    // is checked below on the node itself (its updates and its ledger).
    let closer = StageCloser::start(&coordinator);
    for round in [3, 4] {
        closer.silent("careful", StageKind::Fit, round);
    }
    let mut events = coordinator.events();
    let address = coordinator.local_addr();
    let others = testbed.start_nodes(address, 2);

    // The careful node: its share of the data, DP-SGD, a budget for two rounds.
    let data = breast_cancer();
    let rows = &iid(data.len(), 3, 29).unwrap()[0];
    let local = local_data(&data.subset(rows).unwrap(), 0.25, 3).unwrap();
    let local_rows = local.train.len() as f64;
    let dp = DpSgdConfig {
        noise_multiplier: 1.0,
        clip_norm: 1.0,
    };
    let training = &testbed.plan.training;
    let per_round = LocalTrainingConfig {
        epochs: training.local_epochs,
        batch_size: training.batch_size as usize,
        learning_rate: training.learning_rate,
        seed: 0,
        proximal_mu: 0.0,
        max_update_norm: None,
    };
    let stats = TrainingStatsRelease::new(10.0, 5.0).unwrap();
    let round_events = vec![
        dp.round_event(&per_round, local.train.len()).unwrap(),
        stats.event().unwrap(),
    ];
    let accountant = RdpAccountant::new(Conversion::Improved);
    let rounds = |n: u64| {
        let mut ledger = PrivacyLedger::new(PrivacyBudget::new(1e6, 1e-5).unwrap()).unwrap();
        for r in 1..=n {
            ledger.record(r, round_events.clone(), &accountant).unwrap();
        }
        accountant.epsilon(&ledger.events(), 1e-5).unwrap()
    };
    let (two, three) = (rounds(2), rounds(3));
    let ledger_path = testbed.dir.path().join("careful-ledger.json");
    let node = Node::new(careful_config(&testbed, address), local)
        .unwrap()
        .with_record_privacy(&RecordPrivacy {
            dp,
            stats,
            budget: PrivacyBudget::new((two + three) / 2.0, 1e-5).unwrap(),
            ledger_path: ledger_path.clone(),
        })
        .unwrap();
    let metrics = node.metrics();
    let careful = tokio::spawn(node.run());

    let mut contributors = Vec::new();
    for _ in 1..=4 {
        let record = next_event(&mut events, |event| match event {
            FederationEvent::RoundCompleted(record) => Some(record.clone()),
            _ => None,
        })
        .await;
        let RoundOutcome::Completed { contributions, .. } = &record.outcome else {
            unreachable!("a completed round");
        };
        contributors.push(contributions.iter().any(|c| c.node_id == "careful"));
    }
    assert_eq!(contributors, vec![true, true, false, false]);
    let summary = within("the careful node", careful).await.unwrap().unwrap();
    assert_eq!(summary.completed_rounds, 4);
    assert_eq!(summary.updates_sent, 2, "it trained only within its budget");
    for node in others {
        within("a node", node).await.unwrap().unwrap();
    }
    let ledger: PrivacyLedger =
        serde_json::from_str(&std::fs::read_to_string(&ledger_path).unwrap()).unwrap();
    assert_eq!(
        ledger.rounds.iter().map(|r| r.round).collect::<Vec<_>>(),
        vec![1, 2]
    );
    // Each round paid for its DP-SGD steps and for the count and loss it reported.
    // (Compared after the same JSON round trip as the ledger file's.)
    let charged: Vec<cohort_privacy::DpEvent> =
        serde_json::from_str(&serde_json::to_string(&round_events).unwrap()).unwrap();
    assert!(ledger.rounds.iter().all(|r| r.events == charged));

    // The node's own metrics say the same: two rounds trained on all its
    // rows, two declined, and its ledger's ε.
    let text = metrics.encode().unwrap();
    let value = |name| crate::observability::sample(&text, name).unwrap_or(f64::NAN);
    assert_eq!(value("cohort_node_rounds_trained_total"), 2.0, "{text}");
    assert_eq!(value("cohort_node_rounds_over_budget_total"), 2.0, "{text}");
    assert_eq!(value("cohort_node_updates_sent_total"), 2.0, "{text}");
    assert_eq!(
        value("cohort_node_examples_trained_total"),
        2.0 * local_rows,
        "{text}"
    );
    assert_eq!(value("cohort_node_training_seconds_count"), 2.0, "{text}");
    let spent = value("cohort_node_record_epsilon_spent");
    assert!((spent - two).abs() < 1e-9 * two, "{spent} vs {two}\n{text}");
}

/// A model trained by its own loop (a `Trainable` that does not run
/// Cohort's DP-SGD) cannot be accounted: a node under record-level privacy
/// refuses it and stops, naming why, without training a round; the same
/// loop's model would otherwise be the federation's very model.
#[tokio::test]
async fn a_record_private_node_refuses_a_model_with_its_own_loop() {
    use std::sync::Arc;

    use cohort_client::data::Dataset;
    use cohort_client::training::{Evaluation, TrainOutcome, Trainable, TrainingError, trainable};
    use cohort_proto::model::{ModelDescriptor, ParameterLayout};

    /// Cohort's dense training behind a loop that does not say it runs DP-SGD.
    #[derive(Debug)]
    struct OwnLoop(Box<dyn Trainable>);
    impl Trainable for OwnLoop {
        fn descriptor(&self) -> &ModelDescriptor {
            self.0.descriptor()
        }
        fn num_classes(&self) -> usize {
            self.0.num_classes()
        }
        fn train(
            &self,
            start: &[f32],
            train: &Dataset,
            config: &LocalTrainingConfig,
            dp: Option<&DpSgdConfig>,
        ) -> Result<TrainOutcome, TrainingError> {
            self.0.train(start, train, config, dp)
        }
        fn evaluate(
            &self,
            parameters: &[f32],
            data: &Dataset,
        ) -> Result<Evaluation, TrainingError> {
            self.0.evaluate(parameters, data)
        }
        fn per_row_losses(
            &self,
            parameters: &[f32],
            data: &Dataset,
        ) -> Result<Vec<f64>, TrainingError> {
            self.0.per_row_losses(parameters, data)
        }
    }

    let mut federation = plan(1, 1);
    federation.scaling = Some(cohort_e2e::public_scaling());
    let testbed = Testbed::new(federation);
    let coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let layout = ParameterLayout::of(&testbed.plan.model.dense_spec().unwrap()).unwrap();
    // Cohort's own dense training says it runs DP-SGD; the wrapper, the same
    // training under another loop's name, does not.
    assert!(trainable::dense(layout.clone()).runs_dp_sgd());
    let own_loop = OwnLoop(Box::new(trainable::dense(layout)));
    assert!(!own_loop.runs_dp_sgd());
    let local = cohort_e2e::shares(1).remove(0);
    let node = Node::new(careful_config(&testbed, coordinator.local_addr()), local)
        .unwrap()
        .with_record_privacy(&RecordPrivacy {
            dp: DpSgdConfig {
                noise_multiplier: 1.0,
                clip_norm: 1.0,
            },
            stats: TrainingStatsRelease::new(10.0, 5.0).unwrap(),
            budget: PrivacyBudget::new(8.0, 1e-5).unwrap(),
            ledger_path: testbed.dir.path().join("careful-ledger.json"),
        })
        .unwrap()
        .with_model(Arc::new(own_loop));
    let metrics = node.metrics();
    let stopped = within("the node to stop", node.run()).await;
    let Err(cohort_client::node::NodeError::Incompatible(reason)) = stopped else {
        panic!("a record-private node took a loop it cannot account: {stopped:?}");
    };
    assert!(reason.contains("DP-SGD"), "{reason}");
    let text = metrics.encode().unwrap();
    let trained = crate::observability::sample(&text, "cohort_node_rounds_trained_total");
    assert_eq!(trained, Some(0.0), "{text}");
    coordinator.shutdown().await;
}

/// The node "careful" of `testbed`'s federation, reaching it at `address`.
fn careful_config(testbed: &Testbed, address: std::net::SocketAddr) -> NodeConfig {
    NodeConfig {
        coordinator: ServerAddress {
            address: address.to_string(),
            server_name: "localhost".into(),
        },
        tls: testbed.node_tls("careful"),
        standby_coordinators: Vec::new(),
        federation_id: testbed.plan.federation_id.clone(),
        give_up_after: std::time::Duration::from_secs(60),
        models_dir: None,
    }
}
