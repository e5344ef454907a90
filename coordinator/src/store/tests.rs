//! The store's tests, run against both backends by [`on_both_backends!`]:
//! each test is a module with a `sled` and a `postgres` test (a fresh scratch
//! server per test, see [`super::postgres::scratch`]). Tests of what only one
//! backend has (sled's folder lock; PostgreSQL's migrations, retries and TLS)
//! are in `sled.rs`'s and `postgres/tests.rs`.

use std::ops::Range;

use super::postgres::scratch::ScratchServer;
use super::records::{self, AuditBatch, FederationHead, RoundOutcome, RoundRecord};
use super::{FederationDefinition, Store, StoreError, StoreLocation};
use crate::strategy::StrategyState;

/// Where a test's store lives, kept until the test ends: a temporary sled
/// folder, or a database on a scratch PostgreSQL server.
pub(crate) struct ScratchStore {
    location: StoreLocation,
    _folder: Option<tempfile::TempDir>,
    _server: Option<ScratchServer>,
}

impl ScratchStore {
    /// A temporary sled folder.
    pub(crate) fn sled() -> Self {
        let folder = tempfile::tempdir().unwrap();
        Self {
            location: StoreLocation::Folder(folder.path().join("state")),
            _folder: Some(folder),
            _server: None,
        }
    }

    /// A scratch PostgreSQL server (None: PostgreSQL is missing and
    /// `COHORT_SKIP_POSTGRES=1` asked for the skip, which was printed).
    pub(crate) fn postgres() -> Option<Self> {
        let server = ScratchServer::start().unwrap()?;
        let database = server.database("federation").unwrap();
        Some(Self {
            location: StoreLocation::Postgres(database),
            _folder: None,
            _server: Some(server),
        })
    }

    /// A store here (the same folder or database each time).
    pub(crate) async fn open(&self) -> Store {
        Store::open(&self.location).await.unwrap()
    }
}

/// Runs the test body against a sled store and against a PostgreSQL store:
/// `on_both_backends!(async fn name(store) { … })` makes the module `name`
/// with the tests `sled` and `postgres`.
macro_rules! on_both_backends {
    ($(#[$meta:meta])* async fn $name:ident($store:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            use super::*;

            async fn run($store: Store) $body

            #[tokio::test]
            async fn sled() {
                let scratch = ScratchStore::sled();
                run(scratch.open().await).await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(scratch) = ScratchStore::postgres() else {
                    return;
                };
                run(scratch.open().await).await;
            }
        }
    };
}

/// A node's registry record.
pub(crate) fn node_record(node_id: &str) -> records::NodeRecord {
    records::NodeRecord {
        schema: records::SCHEMA_VERSION,
        node_id: node_id.to_owned(),
        first_registered_ms: 1,
        last_registered_ms: 2,
        certificate_sha256: "00".repeat(32),
        num_train_examples: 10,
        dataset: None,
        left_ms: None,
    }
}

/// A completed round's record.
pub(crate) fn record(round: u64) -> RoundRecord {
    RoundRecord {
        schema: records::SCHEMA_VERSION,
        round,
        attempt: 1,
        strategy: "fedadam".into(),
        model_in: format!("model-{}", round - 1),
        sampled: vec!["a".into()],
        started_ms: 0,
        finished_ms: 0,
        outcome: RoundOutcome::Completed {
            model_out: format!("model-{round}"),
            contributions: vec![],
            evaluation: None,
        },
        epsilon_spent: None,
        epsilon_against_coordinator: None,
    }
}

/// Entries `seqs` with (unsigned: the store does not check) a head after each.
pub(crate) fn audit(seqs: Range<u64>) -> AuditBatch {
    use cohort_crypto::transparency::{Hash, LogId, SignedTreeHead};
    AuditBatch {
        entries: seqs
            .clone()
            .map(|seq| (seq, format!("entry {seq}").into_bytes()))
            .collect(),
        heads: seqs
            .clone()
            .map(|seq| SignedTreeHead {
                log_id: LogId::new("fed", b"key"),
                tree_size: seq + 1,
                timestamp_ms: seq,
                root_hash: Hash::from_bytes([seq as u8; 32]),
                signature: [0; 64],
            })
            .collect(),
        frontier: seqs.end.to_be_bytes().to_vec(),
    }
}

/// A strategy state told apart by `m`.
pub(crate) fn state(m: f32) -> StrategyState {
    StrategyState {
        strategy: "fedadam".into(),
        buffers: [("m".to_owned(), vec![m])].into(),
    }
}

/// Commits round `round` (model `model-{round}`) with no audit entries.
pub(crate) async fn commit(store: &Store, round: u64, state: Option<&StrategyState>) {
    store
        .commit_round(
            &record(round),
            &format!("model-{round}"),
            &[0, 0, 128, 63],
            None,
            state,
            &audit(0..0),
        )
        .await
        .unwrap();
}

/// The head a rollback to `round` sets.
fn rollback(round: u64) -> FederationHead {
    FederationHead::at(round, &format!("model-{round}"))
}

on_both_backends!(
    async fn strategy_state_moves_with_the_round_commit(store) {
        assert_eq!(store.strategy_state().await.unwrap(), None);
        commit(&store, 1, Some(&state(0.5))).await;
        assert_eq!(store.head().await.unwrap().unwrap().completed_rounds, 1);
        assert_eq!(store.strategy_state().await.unwrap(), Some(state(0.5)));
        // A stateless strategy's commit clears it: it belongs to no later head.
        commit(&store, 2, None).await;
        assert_eq!(store.head().await.unwrap().unwrap().completed_rounds, 2);
        assert_eq!(store.strategy_state().await.unwrap(), None);
    }
);

on_both_backends!(
    async fn a_rollback_restores_the_strategy_state_of_its_round(store) {
        for round in 1..=3 {
            commit(&store, round, Some(&state(round as f32))).await;
        }
        assert_eq!(store.strategy_state().await.unwrap(), Some(state(3.0)));
        for (round, expected) in [(1, Some(state(1.0))), (0, None)] {
            store
                .commit_erasure_step(&[], &[], Some(&rollback(round)), &audit(0..0))
                .await
                .unwrap();
            let restored = store.strategy_state().await.unwrap();
            assert_eq!(restored, expected, "back to round {round}");
            assert_eq!(store.head().await.unwrap(), Some(rollback(round)));
        }
    }
);

on_both_backends!(
    async fn the_definition_and_the_first_head_are_kept(store) {
        let definition = FederationDefinition {
            federation_id: "fed".into(),
            model_fingerprint: "aa".into(),
            model_description: "mlp".into(),
        };
        store.check_definition(&definition).await.unwrap();
        store.check_definition(&definition).await.unwrap();
        assert_eq!(store.definition().await.unwrap(), Some(definition.clone()));
        let other = FederationDefinition {
            federation_id: "other".into(),
            ..definition
        };
        let refused = store.check_definition(&other).await;
        assert!(matches!(refused, Err(StoreError::OtherFederation { .. })));
        let head = store.init_head("model-0", &[7]).await.unwrap();
        assert_eq!(store.init_head("model-x", &[8]).await.unwrap(), head);
        assert_eq!(store.model("model-0").await.unwrap(), Some(vec![7]));
        assert_eq!(store.model("model-x").await.unwrap(), None);
    }
);

on_both_backends!(
    /// Audit batches read back in order, by range, with the latest head and
    /// the frontier of the last append.
    async fn audit_appends_read_back_in_order(store) {
        store.append_audit(&audit(0..2)).await.unwrap();
        store.append_audit(&audit(2..3)).await.unwrap();
        assert_eq!(store.audit_len().await.unwrap(), 3);
        assert_eq!(
            store.audit_entries_in(1..2).await.unwrap(),
            vec![(1, b"entry 1".to_vec())]
        );
        assert_eq!(store.audit_entries().await.unwrap().len(), 3);
        let heads = store.audit_heads().await.unwrap();
        let sizes: Vec<u64> = heads.iter().map(|(size, _)| *size).collect();
        assert_eq!(sizes, [1, 2, 3]);
        let latest = store.latest_audit_head().await.unwrap();
        assert_eq!(latest, heads.last().cloned());
        assert_eq!(store.audit_heads_in(2..10, 1).await.unwrap(), heads[1..2]);
        assert_eq!(
            store.audit_frontier().await.unwrap(),
            Some(3u64.to_be_bytes().to_vec())
        );
    }
);

on_both_backends!(
    /// Failed attempts, evaluations, node records, taint and the ledger.
    async fn what_rounds_and_erasures_leave_behind_reads_back(store) {
        commit(&store, 1, None).await;
        let mut failed = record(2);
        failed.attempt = 2;
        store.record_failed_round(&failed).await.unwrap();
        assert_eq!(store.failed_rounds().await.unwrap(), vec![failed]);
        let evaluation = records::EvaluationSummary {
            nodes: vec!["a".into()],
            num_examples: 10,
            loss: 1.0,
            accuracy: 0.5,
        };
        let updated = store.set_round_evaluation(1, evaluation.clone()).await;
        assert_eq!(store.rounds().await.unwrap(), vec![updated.unwrap()]);
        let missing = store.set_round_evaluation(9, evaluation).await;
        assert!(matches!(missing, Err(StoreError::NoSuchRound(9))));
        let tainted = [("model-1".to_owned(), "request-1".to_owned())];
        store
            .commit_erasure_step(&tainted, &[], None, &audit(0..1))
            .await
            .unwrap();
        assert!(store.is_tainted("model-1").await.unwrap());
        assert!(!store.is_tainted("model-0").await.unwrap());
        assert_eq!(store.tainted_models().await.unwrap(), ["model-1"]);
        assert_eq!(store.remediations().await.unwrap(), []);
        let budget = cohort_privacy::PrivacyBudget {
            epsilon: 1.0,
            delta: 1e-5,
        };
        let ledger = cohort_privacy::PrivacyLedger::new(budget).unwrap();
        store.charge_privacy(&ledger).await.unwrap();
        let charged = store.privacy_ledger().await.unwrap().unwrap();
        assert_eq!(charged.budget, budget);
    }
);

on_both_backends!(
    /// Node records read together: those registered, by id; unknown ids are
    /// left out.
    async fn node_records_read_together(store) {
        for node_id in ["a", "b"] {
            store.put_node(&node_record(node_id)).await.unwrap();
        }
        let ids = ["b", "missing", "a"].map(str::to_owned);
        let records = store.node_records(&ids).await.unwrap();
        assert_eq!(records.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(records["a"], node_record("a"));
        assert_eq!(store.node_records(&[]).await.unwrap().len(), 0);
    }
);
