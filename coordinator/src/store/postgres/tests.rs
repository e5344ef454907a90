//! What only the PostgreSQL store has, against a real server (see
//! [`super::scratch`]): refused audit collisions, serialization retries,
//! migrations, TLS and the copy from sled. The tests both backends share are
//! in `store/tests.rs`.

use super::scratch::{ScratchServer, ServerTls};
use super::{PgStore, PostgresSettings};
use crate::store::tests::{audit, record, state};
use crate::store::{FederationDefinition, SledStore, StoreError};

/// A server and a store on a fresh database of it (None: skipped, see scratch).
async fn scratch_store() -> Option<(ScratchServer, PgStore)> {
    let server = ScratchServer::start().unwrap()?;
    let store = PgStore::open(&server.database("federation").unwrap())
        .await
        .unwrap();
    Some((server, store))
}

/// A round whose audit batch cannot be written (its sequence number is taken)
/// leaves nothing behind: no model, no record, no head, no ledger change.
/// (PostgreSQL only: sled's trees overwrite a key, so there the audit log's
/// own frontier is what keeps sequence numbers from colliding.)
#[tokio::test]
async fn a_round_commit_is_all_or_nothing() {
    let Some((_server, store)) = scratch_store().await else {
        return;
    };
    store
        .commit_round(
            &record(1),
            "model-1",
            &[1],
            None,
            Some(&state(1.0)),
            &audit(0..2),
        )
        .await
        .unwrap();
    let failed = store
        .commit_round(
            &record(2),
            "model-2",
            &[2],
            None,
            Some(&state(2.0)),
            &audit(1..3),
        )
        .await;
    assert!(matches!(failed, Err(StoreError::Postgres(_))), "{failed:?}");
    assert_eq!(store.head().await.unwrap().unwrap().completed_rounds, 1);
    assert_eq!(store.model("model-2").await.unwrap(), None);
    assert_eq!(store.rounds().await.unwrap().len(), 1);
    assert_eq!(store.strategy_state().await.unwrap(), Some(state(1.0)));
    assert_eq!(store.audit_len().await.unwrap(), 2);
    assert_eq!(
        store.audit_entries_in(1..2).await.unwrap(),
        vec![(1, b"entry 1".to_vec())],
        "the log kept its entry, not the failed round's"
    );
    assert_eq!(
        store.audit_frontier().await.unwrap(),
        Some(2u64.to_be_bytes().to_vec())
    );
}

/// An append that loses a serialization conflict (another transaction
/// wrote the audit frontier after the append's snapshot) is retried and
/// commits.
#[tokio::test]
async fn an_append_that_loses_a_serialization_conflict_is_retried() {
    let Some((_server, store)) = scratch_store().await else {
        return;
    };
    store.append_audit(&audit(0..1)).await.unwrap();
    let mut rival = store.client().await.unwrap();
    let rival = rival
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::Serializable)
        .start()
        .await
        .unwrap();
    rival
        .execute(
            "UPDATE meta SET value = value WHERE key = 'audit_frontier'",
            &[],
        )
        .await
        .unwrap();
    let append = tokio::spawn({
        let store = store.clone();
        async move { store.append_audit(&audit(1..2)).await }
    });
    // The append waits on the rival's row lock: committing the rival now
    // makes the append's first attempt fail with a serialization failure.
    let watcher = store.client().await.unwrap();
    loop {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    rival.commit().await.unwrap();
    append.await.unwrap().unwrap();
    assert_eq!(store.audit_len().await.unwrap(), 2);
}

/// The tainted versions are read from the table once, then kept in memory
/// (`taints.rs`): an erasure step's versions are in the set when the step
/// returns, a step that failed (its audit sequence number taken) adds none,
/// and a handle that had not read the set yet reads what another committed.
#[tokio::test]
async fn the_tainted_versions_in_memory_follow_the_erasure_steps() {
    let Some(server) = ScratchServer::start().unwrap() else {
        return;
    };
    let settings = server.database("federation").unwrap();
    let store = PgStore::open(&settings).await.unwrap();
    let unread = PgStore::open(&settings).await.unwrap();
    let taint = |model: &str| [(model.to_owned(), "request-1".to_owned())];
    // Read: from here on the set is in memory.
    assert!(!store.is_tainted("model-1").await.unwrap());
    store
        .commit_erasure_step(&taint("model-1"), &[], None, &audit(0..1))
        .await
        .unwrap();
    assert!(store.is_tainted("model-1").await.unwrap());
    assert_eq!(store.tainted_models().await.unwrap(), ["model-1"]);
    let failed = store
        .commit_erasure_step(&taint("model-2"), &[], None, &audit(0..1))
        .await;
    assert!(matches!(failed, Err(StoreError::Postgres(_))), "{failed:?}");
    assert!(!store.is_tainted("model-2").await.unwrap());
    assert_eq!(unread.tainted_models().await.unwrap(), ["model-1"]);
    store
        .commit_erasure_step(&taint("model-0"), &[], None, &audit(1..2))
        .await
        .unwrap();
    assert_eq!(
        store.tainted_models().await.unwrap(),
        ["model-0", "model-1"],
        "in version order, as the table gives them"
    );
}

#[tokio::test]
async fn migrations_apply_once_for_stores_opening_together() {
    let Some(server) = ScratchServer::start().unwrap() else {
        return;
    };
    let settings = server.database("federation").unwrap();
    let (a, b) = tokio::join!(PgStore::open(&settings), PgStore::open(&settings));
    a.unwrap();
    let store = b.unwrap();
    let client = store.client().await.unwrap();
    let row = client
        .query_one("SELECT count(*) FROM cohort_migrations", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), super::MIGRATIONS.len() as i64);
}

/// A certificate authority and a database server certificate it signed, for
/// 127.0.0.1 (and the CA file).
fn database_pki(dir: &std::path::Path) -> (std::path::PathBuf, ServerTls) {
    use cohort_crypto::pki::{PkiDir, Validity};
    use cohort_crypto::{PeerIdentity, Role};
    let pki = PkiDir::new(dir);
    pki.init("db", Validity::days_from_now(1).unwrap()).unwrap();
    let identity = PeerIdentity::new(Role::Coordinator, "database").unwrap();
    let files = pki
        .issue(
            &identity,
            &["127.0.0.1".into()],
            Validity::days_from_now(1).unwrap(),
        )
        .unwrap();
    let tls = ServerTls {
        certificate_pem: std::fs::read_to_string(files.certificate).unwrap(),
        key_pem: std::fs::read_to_string(files.private_key).unwrap(),
    };
    (pki.ca_certificate(), tls)
}

/// With a CA certificate the link is TLS, verified against it: the right CA
/// connects (the URL need not say `sslmode`), another CA is refused.
#[tokio::test]
async fn tls_to_the_database_is_verified_against_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, tls) = database_pki(&dir.path().join("right"));
    let (other_ca, _) = database_pki(&dir.path().join("other"));
    let Some(server) = ScratchServer::start_with(Some(&tls)).unwrap() else {
        return;
    };
    let plain = server.database("federation").unwrap();
    let settings = |ca: &std::path::Path| PostgresSettings {
        postgres: plain.postgres.clone(),
        ca_certificate: Some(ca.to_owned()),
    };
    let store = PgStore::open(&settings(&ca)).await.unwrap();
    let client = store.client().await.unwrap();
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the connection is TLS");
    assert!(PgStore::open(&settings(&other_ca)).await.is_err());
}

/// Adversary: a server, or a man in the middle, that declines TLS so that the
/// coordinator sends its password in the clear. With a CA configured the
/// coordinator does not fall back to plain text (libpq's default `prefer`
/// would, and this open would succeed).
#[tokio::test]
async fn with_a_ca_a_server_without_tls_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, _) = database_pki(&dir.path().join("pki"));
    let Some(server) = ScratchServer::start_with(None).unwrap() else {
        return;
    };
    let plain = server.database("federation").unwrap();
    let settings = PostgresSettings {
        postgres: plain.postgres.clone(),
        ca_certificate: Some(ca),
    };
    assert!(PgStore::open(&settings).await.is_err());
    // The same server without a CA: plain text, as configured.
    assert!(PgStore::open(&plain).await.is_ok());
}

/// A sled federation copied into PostgreSQL reads back the same, record for
/// record; a second copy into the same database is refused.
#[tokio::test]
async fn a_sled_federation_copies_into_postgres_unchanged() {
    let Some((_server, pg)) = scratch_store().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sled = SledStore::open(&dir.path().join("state")).unwrap();
    let definition = FederationDefinition {
        federation_id: "fed".into(),
        model_fingerprint: "aa".into(),
        model_description: "mlp".into(),
    };
    sled.check_definition(&definition).unwrap();
    sled.init_head("model-0", &[0]).unwrap();
    for round in 1..=3 {
        let seqs = round * 2..round * 2 + 2;
        sled.commit_round(
            &record(round),
            &format!("model-{round}"),
            &[round as u8],
            None,
            Some(&state(round as f32)),
            &audit(seqs),
        )
        .await
        .unwrap();
    }
    let mut failed = record(4);
    failed.attempt = 2;
    sled.record_failed_round(&failed).await.unwrap();
    let tainted = [("model-2".to_owned(), "request-1".to_owned())];
    sled.commit_erasure_step(&tainted, &[], None, &audit(8..9))
        .await
        .unwrap();

    let summary = pg.copy_from_sled(&sled).await.unwrap();
    assert!(summary.rows.contains(&("rounds", 3)), "{summary:?}");
    assert_eq!(pg.definition().await.unwrap(), sled.definition().unwrap());
    assert_eq!(pg.head().await.unwrap(), sled.head().unwrap());
    assert_eq!(pg.rounds().await.unwrap(), sled.rounds().unwrap());
    assert_eq!(
        pg.failed_rounds().await.unwrap(),
        sled.failed_rounds().unwrap()
    );
    assert_eq!(
        pg.strategy_state().await.unwrap(),
        sled.strategy_state().unwrap()
    );
    assert_eq!(
        pg.audit_entries().await.unwrap(),
        sled.audit_entries().unwrap()
    );
    assert_eq!(pg.audit_heads().await.unwrap(), sled.audit_heads().unwrap());
    assert_eq!(
        pg.audit_frontier().await.unwrap(),
        sled.audit_frontier().unwrap()
    );
    assert_eq!(
        pg.tainted_models().await.unwrap(),
        sled.tainted_models().unwrap()
    );
    assert_eq!(
        pg.model("model-3").await.unwrap(),
        sled.model("model-3").unwrap()
    );
    let again = pg.copy_from_sled(&sled).await;
    assert!(
        matches!(again, Err(StoreError::NotEmpty { .. })),
        "the target now holds a federation: {again:?}"
    );
}

/// The lease taken for 1 ms: about to be taken over.
async fn lease_about_to_expire(store: &PgStore) -> super::lease::FencingToken {
    store
        .take_lease("paused", std::time::Duration::from_millis(1))
        .await
        .unwrap()
        .unwrap()
}

/// Takes the lease as `holder` once the current one has expired (a lease of
/// 1 ms expires almost at once; the loop waits for the database to say so).
async fn take_when_expired(store: &PgStore, holder: &str) -> super::lease::FencingToken {
    loop {
        if let Some(token) = store
            .take_lease(holder, std::time::Duration::from_secs(60))
            .await
            .unwrap()
        {
            return token;
        }
        tokio::task::yield_now().await;
    }
}

/// The lease is held by one coordinator at a time: taken while held, it is
/// refused; given up, it is taken at once; every takeover adds one to the
/// fencing token.
#[tokio::test]
async fn the_lease_has_one_holder_at_a_time() {
    let Some((_server, store)) = scratch_store().await else {
        return;
    };
    let long = std::time::Duration::from_secs(60);
    let first = store.take_lease("a", long).await.unwrap().unwrap();
    assert_eq!(first.get(), 1);
    assert_eq!(store.take_lease("b", long).await.unwrap(), None, "held");
    assert!(store.renew_lease(first, long).await.unwrap());
    let lease = store.lease().await.unwrap();
    assert_eq!((lease.holder.as_str(), lease.expired), ("a", false));

    store.release_lease(first).await.unwrap();
    let second = store.take_lease("b", long).await.unwrap().unwrap();
    assert_eq!(second.get(), 2);
    assert!(
        !store.renew_lease(first, long).await.unwrap(),
        "a former holder cannot renew"
    );
    // Two standbys racing for an expired lease: one gets it.
    store.release_lease(second).await.unwrap();
    let (x, y) = tokio::join!(store.take_lease("x", long), store.take_lease("y", long));
    let winners = [x.unwrap(), y.unwrap()];
    assert_eq!(winners.iter().flatten().count(), 1, "{winners:?}");
}

/// The attack fencing stops: a coordinator paused past its lease's expiry
/// (SIGSTOP, a long GC) resumes after another took the lease over and goes
/// on with the round it had in flight. Without the fence its commit lands
/// on top of the new holder's state; fenced, every kind of write it makes
/// is refused and changes nothing.
#[tokio::test]
async fn a_former_holder_cannot_write_after_a_takeover() {
    let Some((_server, store)) = scratch_store().await else {
        return;
    };
    let paused = lease_about_to_expire(&store).await;
    let paused = store.fenced(paused);
    let taken = take_when_expired(&store, "standby").await;
    let active = store.fenced(taken);
    active
        .commit_round(&record(1), "model-1", &[1], None, None, &audit(0..1))
        .await
        .unwrap();

    let fenced = |result: Result<(), StoreError>| {
        assert!(
            matches!(
                result,
                Err(StoreError::Fenced {
                    token: 1,
                    current: 2
                })
            ),
            "{result:?}"
        );
    };
    fenced(
        paused
            .commit_round(&record(2), "model-2", &[2], None, None, &audit(1..2))
            .await
            .map(|_| ()),
    );
    fenced(paused.append_audit(&audit(1..2)).await);
    let budget = cohort_privacy::PrivacyBudget {
        epsilon: 1.0,
        delta: 1e-5,
    };
    let ledger = cohort_privacy::PrivacyLedger::new(budget).unwrap();
    fenced(paused.charge_privacy(&ledger).await);
    fenced(
        paused
            .set_round_evaluation(
                1,
                crate::store::records::EvaluationSummary {
                    nodes: vec!["node-0".into()],
                    num_examples: 1,
                    loss: 0.5,
                    accuracy: 0.5,
                },
            )
            .await
            .map(|_| ()),
    );
    assert_eq!(active.head().await.unwrap().unwrap().completed_rounds, 1);
    assert_eq!(active.audit_len().await.unwrap(), 1);
    assert_eq!(active.model("model-2").await.unwrap(), None);
    assert_eq!(active.privacy_ledger().await.unwrap(), None);

    // The same stale commit through an unfenced store: it lands.
    store
        .commit_round(&record(2), "model-2", &[2], None, None, &audit(1..2))
        .await
        .unwrap();
    assert_eq!(store.head().await.unwrap().unwrap().completed_rounds, 2);
}

/// A holder paused in the middle of a write transaction keeps the token's
/// row locked; the server ends its session after the idle-in-transaction
/// limit, so a standby still takes the lease over (without the limit it
/// would wait for as long as the holder stays paused).
#[tokio::test]
async fn a_holder_paused_mid_transaction_does_not_block_the_takeover() {
    let Some((_server, store)) = scratch_store().await else {
        return;
    };
    let paused = lease_about_to_expire(&store).await;
    let mut client = store.client().await.unwrap();
    let stalled = client.transaction().await.unwrap();
    assert_eq!(
        super::lease::check_fence(&stalled, Some(paused))
            .await
            .unwrap(),
        None,
        "the paused holder's transaction holds the token's row"
    );
    // A guard, not a synchronization: without the limit this waits for ever.
    let taken = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        take_when_expired(&store, "standby"),
    )
    .await
    .expect("the standby takes the lease over");
    assert_eq!(taken.get(), 2);
    assert!(
        stalled.commit().await.is_err(),
        "the stalled session was ended"
    );
}

/// The race the fence must win: a holder's write transaction whose snapshot
/// was taken before a takeover committed. Reading the token without a lock
/// would see the old one and let the write through; locking it fails with a
/// serialization error, so `transact` runs the transaction again and the
/// retry reads the new token (`Fenced`, as above).
#[tokio::test]
async fn a_transaction_begun_before_a_takeover_cannot_pass_the_fence() {
    let Some((_server, store)) = scratch_store().await else {
        return;
    };
    let paused = lease_about_to_expire(&store).await;
    let mut client = store.client().await.unwrap();
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::Serializable)
        .start()
        .await
        .unwrap();
    // The transaction's snapshot, taken while `paused` still holds the lease.
    tx.query_one("SELECT count(*) FROM meta", &[])
        .await
        .unwrap();
    take_when_expired(&store, "standby").await;
    let raced = super::lease::check_fence(&tx, Some(paused)).await;
    let error = raced.expect_err("the fence check fails");
    assert!(super::is_serialization_failure(&error), "{error}");
}
