#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! Unlearning you can check: the model a federation retrains after an erasure
//! is, bit for bit, the model of a federation that never had the erased rows.
//!
//! Federation A trains 10 rounds on breast cancer with three hospitals;
//! after round 5 hospital-0 erases one subject, and the coordinator rolls
//! back and retrains. Federation B, with its own PKI and state, runs the same
//! plan (same initial-model seed, round seed and training settings) from
//! scratch with hospital-0 on the reduced rows from the start. Model
//! versions are SHA-256 content addresses of the parameters, so equal
//! versions are bit-equal models. The two are compared round by round along
//! the final model's verified lineage, so a mismatch names the first round
//! that differs.
//!
//! The check can fail: every model A trained with the subject's row (its
//! tainted versions) is different from every model B trained, so one row
//! moves the hash of every round it was in.
//!
//! Then an auditor's replay ([`cohort_e2e::replay`]): from A's verified log,
//! A's configuration and the reduced data alone, every round of A's final
//! model is recomputed to the logged hash. A tainted model cannot be
//! replayed without the erased row (and is, with it); other seeds diverge at
//! round 1; and a log that names the reduced data set for a model trained with
//! the erased row diverges at round 1 when replayed on the reduced data.
//!
//! Out of the claim: federations under differential privacy (their noise,
//! sample and training seeds come from the operating system, and must) and
//! under secure aggregation (they need a declared scaling and DP in this
//! crate's tests); see `docs/COMPLIANCE.md`, "Checking an unlearning".

use cohort_client::data::{Dataset, content_sha256};
use cohort_client::node::LocalData;
use cohort_coordinator::audit::lineage::Lineage;
use cohort_coordinator::audit::{AuditEntry, verify};
use cohort_coordinator::config::{FederationConfig, StrategyConfig};
use cohort_coordinator::store::Store;
use cohort_coordinator::store::records::FederationHead;
use cohort_crypto::transparency::AuditSigningKey;
use cohort_e2e::harness::FederationPlan;
use cohort_e2e::replay::{ReplayError, replay};
use cohort_e2e::unlearning::erase_subject_after_round;
use cohort_e2e::{
    FEDERATION, Testbed, breast_cancer, finish, plan, public_scaling, share_data, share_rows,
};
use cohort_proto::scaling::FeatureScaling;

const ROUNDS: u64 = 10;
const NODES: usize = 3;
const ERASED_AFTER: u64 = 5;

/// One round on a model's path: its number, the model it started from, the
/// model it committed, and who contributed.
type Step = (u64, String, String, Vec<String>);

/// What a finished federation left in its state folder.
struct Finished {
    /// The final model's path, from the verified audit log.
    path: Vec<Step>,
    /// The feature scaling in force at the end.
    scaling: Option<FeatureScaling>,
    /// The configuration it ran with.
    config: FederationConfig,
    /// The verified audit log.
    entries: Vec<AuditEntry>,
}

fn finished(testbed: &Testbed, head: &FederationHead) -> Finished {
    let state = testbed.dir.path().join("state");
    let store = Store::open(&state).unwrap();
    let key = AuditSigningKey::load(&state.join("audit-signing.key")).unwrap();
    let log = verify(&store, &key.log_identity(FEDERATION)).unwrap();
    let lineage = Lineage::from_entries(&log.entries)
        .model(&head.model_version)
        .unwrap();
    let path = lineage
        .rounds
        .into_iter()
        .map(|r| (r.round, r.model_in, r.model_out, r.contributors))
        .collect();
    Finished {
        path,
        scaling: store.feature_scaling().unwrap(),
        config: store.config().unwrap().unwrap(),
        entries: log.entries,
    }
}

/// Federation B's data: the shares `Testbed::start_nodes` gives, hospital-0's
/// without its first row, exactly what A's hospital-0 is left with.
fn reduced_shares() -> Vec<LocalData> {
    let data = breast_cancer();
    let mut shares: Vec<LocalData> = share_rows(NODES)
        .iter()
        .enumerate()
        .map(|(i, rows)| share_data(&data, rows, i))
        .collect();
    shares[0] = share_data(&data, &share_rows(NODES)[0][1..], 0);
    shares
}

/// Runs A (erasure after round 5, retrained) and B (from scratch on the
/// reduced data) on `plan`, side by side, and asserts their final models are
/// bit-equal, round by round.
async fn assert_retrained_equals_from_scratch(plan: FederationPlan) {
    let erased = Testbed::new(plan.clone());
    let clean = Testbed::new(plan);
    let run_a = async {
        let erasure = erase_subject_after_round(&erased, ERASED_AFTER, NODES).await;
        assert!(
            erasure.receipt.rollback_to.len() == 64,
            "{:?}",
            erasure.receipt
        );
        let b_rows = &reduced_shares()[0].train;
        assert_eq!(
            content_sha256(&erasure.reduced.train),
            content_sha256(b_rows)
        );
        let (head, _) = finish(erasure.coordinator, erasure.nodes).await;
        (head, erasure.receipt.tainted_models)
    };
    let run_b = async {
        let coordinator = clean
            .start_coordinator("127.0.0.1:0".parse().unwrap())
            .await;
        let nodes = clean.start_nodes_on(coordinator.local_addr(), reduced_shares());
        finish(coordinator, nodes).await.0
    };
    let ((head_a, tainted), head_b) = tokio::join!(run_a, run_b);
    assert_eq!(
        (head_a.completed_rounds, head_b.completed_rounds),
        (ROUNDS, ROUNDS)
    );

    let (a, b) = (finished(&erased, &head_a), finished(&clean, &head_b));
    assert_eq!(a.path.len(), ROUNDS as usize);
    for (a, b) in a.path.iter().zip(&b.path) {
        assert_eq!(a, b, "round {} differs between A and B", a.0);
    }
    assert_eq!(head_a.model_version, head_b.model_version);
    // The scaling A agreed again after the rollback is B's, to the bit.
    assert_eq!(a.scaling, b.scaling);
    // The erased row moved every model it was in: none of A's tainted
    // versions is one B trained.
    assert!(tainted.len() >= ERASED_AFTER as usize, "{tainted:?}");
    for (_, _, model_out, _) in &b.path {
        assert!(!tainted.contains(model_out), "{model_out} is tainted in A");
    }
    assert_replays(&a, &head_a.model_version, &tainted);
}

/// An auditor holding the reduced data replays A's final model from A's
/// log alone; it cannot replay a tainted one without the erased row, nor the
/// final one with other seeds, nor a log that lies about the data.
fn assert_replays(a: &Finished, head: &str, tainted: &[String]) {
    let reduced: Vec<Dataset> = reduced_shares().into_iter().map(|s| s.train).collect();
    assert_eq!(
        replay(&a.config, &a.entries, head, &reduced),
        Ok(head.to_owned())
    );

    let data = breast_cancer();
    let full = share_data(&data, &share_rows(NODES)[0], 0).train;
    let old_version = content_sha256(&full)[..16].to_owned();
    let with_erased_row: Vec<Dataset> = reduced.iter().cloned().chain([full]).collect();
    for model in tainted {
        let without = replay(&a.config, &a.entries, model, &reduced);
        assert_eq!(without, Err(ReplayError::MissingData(old_version.clone())));
        let with = replay(&a.config, &a.entries, model, &with_erased_row);
        assert_eq!(with, Ok(model.clone()));
    }

    let mut reseeded = a.config.clone();
    reseeded.rounds.seed += 1;
    let diverged = replay(&reseeded, &a.entries, head, &reduced);
    assert!(
        matches!(diverged, Err(ReplayError::Diverged { round: 1, .. })),
        "{diverged:?}"
    );

    // A coordinator that logged the reduced version for a model it trained
    // with the erased row: the replay on the reduced data does not reach it.
    let new_version = content_sha256(&reduced[0])[..16].to_owned();
    let lying: Vec<AuditEntry> = (a.entries.iter())
        .map(|entry| {
            let text = serde_json::to_string(entry).unwrap();
            serde_json::from_str(&text.replace(&old_version, &new_version)).unwrap()
        })
        .collect();
    let mut claimed = tainted
        .iter()
        .map(|m| replay(&a.config, &lying, m, &reduced));
    assert!(
        claimed.all(|r| matches!(r, Err(ReplayError::Diverged { round: 1, .. }))),
        "a tainted model replayed from the reduced data"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retrained_model_equals_a_from_scratch_run_without_the_erased_rows_bit_for_bit() {
    // FedAvg, feature scaling agreed from the nodes' own statistics: A must
    // agree on it again without the erased row.
    assert_retrained_equals_from_scratch(plan(ROUNDS, NODES)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateful_strategy_retrains_to_the_same_bits_as_a_from_scratch_run() {
    // FedAdam's moments roll back with the model; a declared scaling is
    // used by both federations as is.
    let mut plan = plan(ROUNDS, NODES);
    plan.strategy = StrategyConfig::FedAdam {
        server_learning_rate: 0.05,
        beta1: 0.9,
        beta2: 0.99,
        tau: 1e-3,
        max_update_norm: None,
    };
    plan.scaling = Some(public_scaling());
    assert_retrained_equals_from_scratch(plan).await;
}
