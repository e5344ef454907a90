#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! Secure aggregation through a real coordinator, over mutual-TLS gRPC.
//!
//! Driven nodes send model changes the test chooses, with the real node's
//! protocol code, so the test knows every input and can check that the new
//! global model is plain FedAvg of the survivors' changes, within the
//! quantization bound, whoever drops out and when.
//!
//! A node that falls silent is left out when its stage ends: ended by the
//! test ([`StageCloser`]) once only silent nodes are left, as the stage's
//! deadline would, so no outcome depends on a clock.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use cohort_client::node::secure_aggregation::RoundRequirements;
use cohort_coordinator::Coordinator;
use cohort_coordinator::config::{
    AccountantKind, NoisePlacement, PrivacyConfig, SecureAggregationConfig,
};
use cohort_coordinator::federation::FederationEvent;
use cohort_coordinator::observability::metrics::scrape;
use cohort_coordinator::rounds::failure::FailureKind;
use cohort_coordinator::rounds::secure::SecAggStep;
use cohort_coordinator::rounds::stage::StageKind;
use cohort_coordinator::store::records::{RoundOutcome, RoundRecord};
use cohort_e2e::harness::FederationPlan;
use cohort_e2e::secagg::{Behaviour, RoundLog, SecAggNode, Silence};
use cohort_e2e::stages::StageCloser;
use cohort_e2e::{Testbed, next_event, plan};
use tokio::sync::broadcast;
use tokio::task::JoinSet;
use tonic::Code;

/// Weights are examples / CAP; every driven node has fewer examples than this.
const CAP: u64 = 100;
const BITS: u32 = 32;

fn secagg_plan(rounds: u64, nodes: usize, min_results: usize) -> FederationPlan {
    let mut plan = plan(rounds, nodes);
    plan.rounds.min_results = Some(min_results);
    plan.rounds.deadline_secs = 60.0;
    plan.scaling = Some(cohort_e2e::public_scaling());
    plan.secure_aggregation = Some(SecureAggregationConfig {
        weight_cap: CAP,
        bits: BITS,
        ..SecureAggregationConfig::default()
    });
    plan
}

/// Node `i`'s model change in `round`: spread over [−0.3, 0.3], distinct per node.
fn change(i: usize, round: u64, len: usize) -> Vec<f32> {
    (0..len)
        .map(|j| {
            let k = (i * 7919 + j * 104_729 + round as usize * 15_485_863) % 1000;
            0.6 * k as f32 / 1000.0 - 0.3
        })
        .collect()
}

fn examples(i: usize) -> u64 {
    20 + 7 * i as u64
}

struct Federation {
    _testbed: Testbed,
    coordinator: Coordinator,
    closer: StageCloser,
    events: broadcast::Receiver<FederationEvent>,
    nodes: Vec<Option<SecAggNode>>,
    len: usize,
}

impl Federation {
    async fn start(plan: FederationPlan, n: usize) -> Self {
        Self::start_letting_in(plan, n, &[]).await
    }

    /// As [`Self::start`], with the certificates of `revoked` nodes revoked
    /// by the CA, and a coordinator that lets them in (it consults no
    /// revocation list, and relays none): the coordinator is not trusted to
    /// vouch for keys. The nodes hold the CA-signed list already (adopted
    /// from an earlier task, or handed out with the PKI); a coordinator can
    /// withhold a newer one, but not make them drop it.
    async fn start_letting_in(plan: FederationPlan, n: usize, revoked: &[&str]) -> Self {
        let testbed = Testbed::new(plan);
        let pki = &testbed.provisioned.pki;
        for node in revoked {
            pki.revoke(&testbed.node_tls(node).certificate).unwrap();
        }
        let signed = std::fs::read(pki.signed_revocation_list()).unwrap_or_default();
        let coordinator = testbed
            .start_coordinator("127.0.0.1:0".parse().unwrap())
            .await;
        let events = coordinator.events();
        let closer = StageCloser::start(&coordinator);
        let address: SocketAddr = coordinator.local_addr();
        let mut nodes = Vec::new();
        for i in 0..n {
            let mut node = SecAggNode::join(&testbed, &format!("node-{i}"), address).await;
            node.adopt_revocations(&signed).unwrap();
            nodes.push(Some(node));
        }
        let len = nodes[0].as_ref().unwrap().node.model.num_parameters();
        Self {
            _testbed: testbed,
            coordinator,
            closer,
            events,
            nodes,
            len,
        }
    }

    /// Runs round `round` with one behaviour per node and waits for its record.
    /// A node that falls silent is told to the stage closer as it does.
    async fn round(
        &mut self,
        round: u64,
        mut behaviours: Vec<Behaviour>,
    ) -> (Vec<RoundLog>, RoundRecord) {
        let mut running = JoinSet::new();
        for (i, slot) in self.nodes.iter_mut().enumerate() {
            let mut node = slot.take().unwrap();
            let behaviour = std::mem::take(&mut behaviours[i]);
            let change = change(i, round, self.len);
            running.spawn(async move {
                let log = node.take_part(&change, examples(i), behaviour).await;
                (i, node, log)
            });
        }
        let mut logs: Vec<Option<RoundLog>> = (0..self.nodes.len()).map(|_| None).collect();
        while let Some(done) = running.join_next().await {
            let (i, node, log) = done.unwrap();
            if let Some(step) = log.silent_at {
                let kind = StageKind::SecureAggregation(step);
                self.closer.silent(&node.node.node_id, kind, log.round);
            }
            self.nodes[i] = Some(node);
            logs[i] = Some(log);
        }
        let logs: Vec<RoundLog> = logs.into_iter().map(Option::unwrap).collect();
        let record = next_event(&mut self.events, |event| match event {
            FederationEvent::RoundCompleted(r) | FederationEvent::RoundFailed(r)
                if r.round == round =>
            {
                Some(r.clone())
            }
            _ => None,
        })
        .await;
        (logs, record)
    }

    fn node(&mut self, i: usize) -> &mut SecAggNode {
        self.nodes[i].as_mut().unwrap()
    }

    /// Checks that `model_out` is FedAvg of `contributors`' changes applied to
    /// `model_in`, within the quantization bound.
    async fn assert_fedavg(
        &mut self,
        round: u64,
        record: &RoundRecord,
        contributors: &[usize],
        participants: usize,
    ) {
        let RoundOutcome::Completed {
            model_out,
            contributions,
            ..
        } = &record.outcome
        else {
            panic!("round {round} failed: {:?}", record.outcome);
        };
        let named: BTreeSet<String> = contributions.iter().map(|c| c.node_id.clone()).collect();
        let expected_names: BTreeSet<String> =
            contributors.iter().map(|i| format!("node-{i}")).collect();
        assert_eq!(named, expected_names, "round {round} contributors");
        assert!(
            contributions
                .iter()
                .all(|c| c.num_examples.is_none() && c.train_loss.is_none()),
            "the coordinator cannot know a node's examples or loss under secure aggregation"
        );
        let model_in = record.model_in.clone();
        let model_out = model_out.clone();
        let node = self.node(0);
        let before = node.node.fetch_model(&model_in).await;
        let after = node.node.fetch_model(&model_out).await;

        let len = before.len();
        let weights: Vec<f64> = contributors
            .iter()
            .map(|&i| examples(i) as f64 / CAP as f64)
            .collect();
        let total: f64 = weights.iter().sum();
        // One node's quantized values are within one step of weight·Δ (clip
        // range 1) and of its weight; the sums carry |C| such errors.
        let scale = (((1u64 << (BITS - 1)) - 1) / participants as u64) as f64;
        let n_c = contributors.len() as f64;
        let mut worst = 0.0f64;
        for j in 0..len {
            let mean: f64 = contributors
                .iter()
                .zip(&weights)
                .map(|(&i, w)| w * f64::from(change(i, round, len)[j]))
                .sum::<f64>()
                / total;
            let expected = f64::from(before[j]) + mean;
            let bound = (n_c / scale + mean.abs() * n_c / scale) / (total - n_c / scale)
                + 2.0 * f64::from(f32::EPSILON) * (expected.abs() + 1.0);
            let error = (f64::from(after[j]) - expected).abs();
            assert!(
                error <= bound,
                "round {round}, coordinate {j}: {} vs FedAvg {expected} (error {error} > bound {bound})",
                after[j]
            );
            worst = worst.max(error);
        }
        assert_ne!(
            before, after,
            "round {round} moved the model (worst error {worst})"
        );
    }
}

fn silent(silence: Silence) -> Behaviour {
    Behaviour {
        silence,
        ..Behaviour::default()
    }
}

fn behaviours(n: usize, mut special: Vec<(usize, Behaviour)>) -> Vec<Behaviour> {
    (0..n)
        .map(|i| match special.iter().position(|(j, _)| *j == i) {
            Some(at) => special.swap_remove(at).1,
            None => Behaviour::default(),
        })
        .collect()
}

#[tokio::test]
async fn the_model_is_fedavg_of_the_survivors_whoever_drops() {
    const N: usize = 10;
    let mut federation = Federation::start(secagg_plan(4, N, 6), N).await;
    let everyone: Vec<usize> = (0..N).collect();

    // Round 1: nobody drops.
    let (_, record) = federation.round(1, behaviours(N, vec![])).await;
    federation.assert_fedavg(1, &record, &everyone, N).await;

    // Round 2: 10% drop before sending their masked input: their pairwise masks
    // are rebuilt from their neighbours' shares and removed.
    let (_, record) = federation
        .round(
            2,
            behaviours(N, vec![(9, silent(Silence::BeforeMaskedInput))]),
        )
        .await;
    federation
        .assert_fedavg(2, &record, &everyone[..9], N)
        .await;

    // Round 3: 10% drop after sending it: their input counts.
    let (_, record) = federation
        .round(
            3,
            behaviours(N, vec![(9, silent(Silence::BeforeUnmasking))]),
        )
        .await;
    federation.assert_fedavg(3, &record, &everyone, N).await;

    // Round 4: 30% drop, at both points.
    let (_, record) = federation
        .round(
            4,
            behaviours(
                N,
                vec![
                    (7, silent(Silence::BeforeMaskedInput)),
                    (8, silent(Silence::BeforeMaskedInput)),
                    (9, silent(Silence::BeforeUnmasking)),
                ],
            ),
        )
        .await;
    let survivors: Vec<usize> = (0..7).chain([9]).collect();
    federation.assert_fedavg(4, &record, &survivors, N).await;
}

#[tokio::test]
async fn below_the_threshold_the_round_aborts_and_the_model_stays() {
    // Four nodes: each masks with the other three, and two shares rebuild a secret.
    const N: usize = 4;
    let mut federation = Federation::start(secagg_plan(1, N, 1), N).await;
    let (_, failed) = federation
        .round(
            1,
            behaviours(
                N,
                vec![
                    (1, silent(Silence::BeforeMaskedInput)),
                    (2, silent(Silence::BeforeMaskedInput)),
                    (3, silent(Silence::BeforeMaskedInput)),
                ],
            ),
        )
        .await;
    let RoundOutcome::Failed { reason, kind } = &failed.outcome else {
        panic!(
            "one survivor cannot be unmasked alone: {:?}",
            failed.outcome
        );
    };
    assert_eq!(*kind, Some(FailureKind::SecureAggregationAborted));
    assert!(
        reason.contains("aborted") && reason.contains("threshold is 2"),
        "{reason}"
    );
    // The retry starts from the same global model: nothing was committed.
    let (_, record) = federation.round(1, behaviours(N, vec![])).await;
    assert_eq!(record.attempt, 2);
    assert_eq!(record.model_in, failed.model_in);
    federation.assert_fedavg(1, &record, &[0, 1, 2, 3], N).await;
    // `/metrics` counts the abort among the failed attempts.
    let metrics = scrape(federation.coordinator.federation()).await.unwrap();
    for line in [
        "cohort_round_attempts_failed_total{kind=\"secure_aggregation_aborted\"} 1",
        "cohort_round_attempts_failed_total{kind=\"too_few_updates\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }
}

/// A node checks its neighbours' certificates itself, against the CA-signed
/// revocation list it holds (every task carries the coordinator's; unit tests
/// in `cohort_crypto::pki` show that a relay cannot roll it back or forge
/// one): a coordinator that lets a revoked node in (it consults no list here)
/// cannot make the honest nodes share keys with it.
#[tokio::test]
async fn nodes_refuse_a_revoked_neighbour_that_the_coordinator_let_in() {
    const N: usize = 3;
    let mut federation = Federation::start_letting_in(secagg_plan(1, N, 1), N, &["node-2"]).await;
    let (logs, failed) = federation.round(1, behaviours(N, vec![])).await;
    for log in &logs[..2] {
        assert_eq!(log.silent_at, Some(SecAggStep::ShareKeys), "{log:?}");
        assert!(
            log.own_errors
                .iter()
                .any(|e| e.contains("cohort://node/node-2") && e.contains("revoked")),
            "{log:?}"
        );
    }
    assert!(
        logs[2].own_errors.is_empty(),
        "node-2 itself saw nothing amiss: {:?}",
        logs[2]
    );
    assert!(
        matches!(failed.outcome, RoundOutcome::Failed { .. }),
        "{:?}",
        failed.outcome
    );
}

#[tokio::test]
async fn bad_input_is_refused_and_the_round_goes_on() {
    const N: usize = 5;
    let mut federation = Federation::start(secagg_plan(2, N, 3), N).await;

    // Round 1: node 0 corrupts the share it seals for node 1, and node 2 first
    // sends a masked input one value short.
    let corrupt_for_node_1 = Behaviour {
        tamper_shares: Some(Box::new(|shares: &mut cohort_crypto::secagg::ShareKeys| {
            let share = shares
                .shares
                .iter_mut()
                .find(|s| s.to.0 == 1)
                .expect("a share for node 1");
            let last = share.ciphertext.len() - 1;
            share.ciphertext[last] ^= 1;
        })),
        ..Behaviour::default()
    };
    let short_masked_input = Behaviour {
        tamper_masked: Some(Box::new(|mut bytes: Vec<u8>| {
            // The value count (bytes 14..22) minus one, and one value (4 bytes at
            // 32 bits) fewer.
            let len = u64::from_be_bytes(bytes[14..22].try_into().unwrap()) - 1;
            bytes[14..22].copy_from_slice(&len.to_be_bytes());
            bytes.truncate(bytes.len() - 4);
            bytes
        })),
        ..Behaviour::default()
    };
    let (logs, record) = federation
        .round(
            1,
            behaviours(N, vec![(0, corrupt_for_node_1), (2, short_masked_input)]),
        )
        .await;
    // Node 1 cannot open its share from node 0 and refuses to go on.
    assert!(!logs[1].masked_input_sent);
    assert!(
        logs[1]
            .own_errors
            .iter()
            .any(|e| e.contains("failed authentication")),
        "{:?}",
        logs[1].own_errors
    );
    // Node 2's short input is refused with the lengths named; its genuine one is taken.
    let (stage, status) = &logs[2].refused[0];
    assert_eq!(*stage, "masked-input");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("expected"),
        "{}",
        status.message()
    );
    assert!(logs[2].masked_input_sent);
    // The round goes on without node 1.
    federation.assert_fedavg(1, &record, &[0, 2, 3, 4], N).await;

    // Round 2: node 3 replays its round-1 key advertisement, under the old round
    // number and under the current one; both are refused, and the round goes on.
    let old = federation
        .node(3)
        .last_advertisement
        .clone()
        .expect("round 1 advert");
    let replay = Behaviour {
        replay_advertisement: Some(old),
        ..Behaviour::default()
    };
    let (logs, record) = federation.round(2, behaviours(N, vec![(3, replay)])).await;
    let replays: Vec<_> = logs[3]
        .refused
        .iter()
        .filter(|(stage, _)| *stage == "replay")
        .collect();
    assert_eq!(replays.len(), 2, "{:?}", logs[3].refused);
    assert_eq!(replays[0].1.code(), Code::FailedPrecondition);
    assert!(
        replays[0].1.message().contains("round 1"),
        "{}",
        replays[0].1.message()
    );
    assert_eq!(replays[1].1.code(), Code::InvalidArgument);
    assert!(
        replays[1].1.message().contains("replayed or stale"),
        "{}",
        replays[1].1.message()
    );
    federation
        .assert_fedavg(2, &record, &[0, 1, 2, 3, 4], N)
        .await;
}

#[tokio::test]
async fn real_nodes_train_under_secure_aggregation() {
    let mut plan = plan(5, 4);
    plan.training.learning_rate = 0.05;
    plan.secure_aggregation = Some(SecureAggregationConfig::default());
    plan.scaling = Some(cohort_e2e::public_scaling());
    let testbed = Testbed::new(plan);
    let mut coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let mut events = coordinator.events();
    let nodes = testbed.start_nodes(coordinator.local_addr(), 4);
    let mut accuracy = 0.0;
    for expected in 1..=5 {
        let record = next_event(&mut events, |event| match event {
            FederationEvent::RoundCompleted(record) => Some(record.clone()),
            _ => None,
        })
        .await;
        assert_eq!(record.round, expected);
        let RoundOutcome::Completed {
            contributions,
            evaluation,
            ..
        } = record.outcome
        else {
            unreachable!("a completed round");
        };
        assert_eq!(contributions.len(), 4, "every node's change is in the sum");
        accuracy = evaluation.expect("evaluated").accuracy;
    }
    assert!(accuracy > 0.9, "held-out accuracy {accuracy}");
    // The audit log records what each round ran under.
    let entries = cohort_coordinator::audit::stored_entries(&coordinator.federation().store)
        .await
        .unwrap();
    // The declared scaling replaced round 0: no node sent its feature sums.
    assert!(
        !entries.iter().any(|e| matches!(
            e.event,
            cohort_coordinator::audit::AuditEvent::ScalingAgreed { .. }
        )),
        "a statistics round ran under secure aggregation"
    );
    let protections: Vec<_> = entries
        .iter()
        .filter_map(|e| match &e.event {
            cohort_coordinator::audit::AuditEvent::RoundCompleted { protection, .. } => {
                Some(protection.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(protections.len(), 5);
    let mut seeds = std::collections::BTreeSet::new();
    for protection in protections {
        let secagg = protection.secure_aggregation.expect("logged");
        assert_eq!(secagg.bits, SecureAggregationConfig::default().bits);
        // k and t as the round derived them for its four participants.
        let round = SecureAggregationConfig::default().for_round(4).unwrap();
        // (Four nodes make a full graph: each has the other three as neighbours.)
        assert_eq!((secagg.neighbours, secagg.threshold), (Some(3), Some(2)));
        // The graph's seed, drawn by the nodes, for an auditor to redraw it.
        let seed = secagg.graph_seed.expect("the graph seed is logged");
        assert_eq!(seed.len(), 64);
        assert!(seed.bytes().all(|b| b.is_ascii_hexdigit()), "{seed}");
        seeds.insert(seed);
        assert_eq!(round.threshold, 2);
        assert_eq!(protection.differential_privacy, None);
    }
    assert_eq!(seeds.len(), 5, "every round draws its own graph");
    let head = cohort_e2e::within("the federation to finish", coordinator.wait())
        .await
        .unwrap();
    for node in nodes {
        let summary = cohort_e2e::within("a node", node).await.unwrap().unwrap();
        assert_eq!(summary.final_model_version, head.model_version);
    }
}

/// `nodes` nodes under distributed DP (σ = 1, C = 1), all needed for a result.
fn distributed_plan(rounds: u64, nodes: usize) -> FederationPlan {
    let mut plan = secagg_plan(rounds, nodes, nodes);
    plan.privacy = Some(PrivacyConfig {
        noise_multiplier: 1.0,
        clip_norm: 1.0,
        epsilon: 1000.0,
        delta: 1e-5,
        accountant: AccountantKind::Rdp,
        placement: NoisePlacement::Distributed,
        adaptive_clipping: None,
    });
    plan
}

impl Federation {
    /// The privacy ledger as stored (what survives a crash).
    async fn stored_ledger_rounds(&self) -> Vec<u64> {
        let store = &self.coordinator.federation().store;
        store
            .privacy_ledger()
            .await
            .unwrap()
            .map(|ledger| ledger.rounds.iter().map(|spend| spend.round).collect())
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn a_distributed_release_is_charged_before_the_sum_is_unmasked() {
    // Every node signs the survivor set, then falls silent: the unmask requests
    // went out (the coordinator could have had the noisy sum), the round fails.
    const N: usize = 5;
    let mut federation = Federation::start(distributed_plan(1, N), N).await;
    let everyone_silent = (0..N)
        .map(|i| (i, silent(Silence::BeforeUnmasking)))
        .collect();
    let (_, failed) = federation.round(1, behaviours(N, everyone_silent)).await;
    assert!(matches!(failed.outcome, RoundOutcome::Failed { .. }));
    // The charge is on disk although the round never committed.
    assert_eq!(federation.stored_ledger_rounds().await, vec![1]);
    // The retry is charged on top of it, not instead of it.
    let (_, record) = federation.round(1, behaviours(N, vec![])).await;
    assert_eq!(record.attempt, 2);
    assert!(matches!(record.outcome, RoundOutcome::Completed { .. }));
    assert_eq!(federation.stored_ledger_rounds().await, vec![1, 1]);
}

#[tokio::test]
async fn too_few_survivors_get_no_unmask_request_and_no_charge() {
    // The noise is sized for all five nodes' shares: with four, the sum would
    // carry less noise than accounted, so it is never unmasked.
    const N: usize = 5;
    let mut federation = Federation::start(distributed_plan(1, N), N).await;
    let one_silent = vec![(4, silent(Silence::BeforeMaskedInput))];
    let (logs, failed) = federation.round(1, behaviours(N, one_silent)).await;
    let RoundOutcome::Failed { reason, .. } = &failed.outcome else {
        panic!(
            "four of five survivors released a sum: {:?}",
            failed.outcome
        );
    };
    assert!(reason.contains("no unmask request was sent"), "{reason}");
    assert!(
        logs.iter()
            .all(|log| log.silent_at.is_some() || log.masked_input_sent)
    );
    assert_eq!(federation.stored_ledger_rounds().await, Vec::<u64>::new());
    let (_, record) = federation.round(1, behaviours(N, vec![])).await;
    assert!(matches!(record.outcome, RoundOutcome::Completed { .. }));
    assert_eq!(federation.stored_ledger_rounds().await, vec![1]);
}

#[tokio::test]
async fn a_node_refuses_a_round_below_its_own_noise_floor() {
    // σ = 1 is calibrated for the four nodes min_results counts on: node 0
    // wants z ≥ 1000 and stays out; node 1 wants z ≥ 0.5 and takes part.
    const N: usize = 5;
    let mut plan = distributed_plan(1, N);
    plan.rounds.min_results = Some(4);
    let mut federation = Federation::start(plan, N).await;
    let floor = |z: f64| Behaviour {
        requirements: RoundRequirements {
            min_noise_multiplier: Some(z),
            ..RoundRequirements::default()
        },
        ..Behaviour::default()
    };
    let (logs, record) = federation
        .round(1, behaviours(N, vec![(0, floor(1000.0)), (1, floor(0.5))]))
        .await;
    assert!(matches!(record.outcome, RoundOutcome::Completed { .. }));
    assert!(!logs[0].masked_input_sent);
    assert!(
        logs[0]
            .own_errors
            .iter()
            .any(|e| e.contains("below this node's floor")),
        "{:?}",
        logs[0].own_errors
    );
    assert!(logs[1].masked_input_sent && logs[1].own_errors.is_empty());
}

#[tokio::test]
async fn a_node_signs_no_survivor_set_below_its_minimum_cohort() {
    // Node 0 will not be in a sum of fewer than six changes; five survive,
    // so it sends its masked change (the set is not known yet) but signs no
    // survivor set, and says why. The others sign and the round completes.
    const N: usize = 5;
    let mut federation = Federation::start(distributed_plan(1, N), N).await;
    let cohort = Behaviour {
        requirements: RoundRequirements {
            min_cohort: Some(N + 1),
            ..RoundRequirements::default()
        },
        ..Behaviour::default()
    };
    let (logs, record) = federation.round(1, behaviours(N, vec![(0, cohort)])).await;
    assert!(
        logs[0]
            .own_errors
            .iter()
            .any(|e| e.contains("minimum cohort of 6")),
        "{:?}",
        logs[0].own_errors
    );
    assert!(logs[1].own_errors.is_empty(), "{:?}", logs[1].own_errors);
    assert!(matches!(record.outcome, RoundOutcome::Completed { .. }));
}

#[tokio::test]
async fn distributed_noise_reaches_the_sum_at_the_configured_scale() {
    // Five nodes, each adding a discrete Gaussian share: the sum carries
    // N(0, (σC)²) per coordinate, which the coordinator cannot take out.
    const N: usize = 5;
    const SIGMA: f64 = 1.0;
    const CLIP: f64 = 1.0;
    let mut federation = Federation::start(distributed_plan(1, N), N).await;
    let (_, record) = federation.round(1, behaviours(N, vec![])).await;
    assert_eq!(record.strategy, "dp-fedavg-distributed");
    assert!(
        record.epsilon_spent.is_some_and(|e| e > 0.0),
        "ε is recorded"
    );
    // Against the coordinator, which knows the sample: every node was sampled
    // (q = 1), so nothing was amplified and the two agree.
    let against = record
        .epsilon_against_coordinator
        .expect("ε against the coordinator");
    assert!((against - record.epsilon_spent.unwrap()).abs() < 1e-9);
    let RoundOutcome::Completed { model_out, .. } = &record.outcome else {
        panic!("round failed: {:?}", record.outcome);
    };
    let model_out = model_out.clone();
    let node = federation.node(0);
    let before = node.node.fetch_model(&record.model_in).await;
    let after = node.node.fetch_model(&model_out).await;
    let len = before.len();

    // Every node's change is clipped to L2 norm C; the released change is the
    // clipped sum plus noise, over the fixed denominator q·N = 5.
    let clipped: Vec<Vec<f64>> = (0..N)
        .map(|i| {
            let change = change(i, 1, len);
            let norm = change
                .iter()
                .map(|v| f64::from(*v).powi(2))
                .sum::<f64>()
                .sqrt();
            let factor = (CLIP / norm).min(1.0);
            change.iter().map(|v| f64::from(*v) * factor).collect()
        })
        .collect();
    let residuals: Vec<f64> = (0..len)
        .map(|j| {
            let released = (f64::from(after[j]) - f64::from(before[j])) * N as f64;
            released - clipped.iter().map(|c| c[j]).sum::<f64>()
        })
        .collect();
    let mean = residuals.iter().sum::<f64>() / len as f64;
    let std = (residuals.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (len - 1) as f64).sqrt();
    // σC = 1; with 62 coordinates the sample std is within ±35% with
    // overwhelming probability, and the mean within ±4 standard errors.
    assert!(
        (0.65..1.35).contains(&std),
        "noise std {std}, expected σC = {}",
        SIGMA * CLIP
    );
    assert!(mean.abs() < 4.0 / (len as f64).sqrt(), "noise mean {mean}");
}
