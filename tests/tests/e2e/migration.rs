#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! A finished sled federation moved into PostgreSQL with `cohort-coordinator
//! store migrate` (issue #20 item 3): the copy verifies, reads back record for
//! record, serves the offline auditor commands from the database, and a
//! coordinator started on the database continues the federation from where
//! it stopped.

use cohort_coordinator::store::records::FederationHead;
use cohort_coordinator::{Coordinator, CoordinatorError};
use cohort_e2e::backend::{ScratchDatabase, state_args};
use cohort_e2e::deployment::{binary, run_ok};
use cohort_e2e::{Testbed, finish, plan};

/// Runs the testbed's federation with three nodes until it finishes;
/// `change_settings` as `serve --change-settings`.
async fn run_to_the_end(testbed: &Testbed, change_settings: bool) -> FederationHead {
    let coordinator = testbed
        .start_coordinator_with("127.0.0.1:0".parse().unwrap(), |config| {
            config.server.change_settings = change_settings;
        })
        .await;
    let nodes = testbed.start_nodes(coordinator.local_addr(), 3);
    finish(coordinator, nodes).await.0
}

#[tokio::test]
async fn a_finished_sled_federation_migrates_verifies_and_continues_on_postgres() {
    let Some(database) = ScratchDatabase::start() else {
        return;
    };
    let mut testbed = Testbed::new(plan(2, 3));
    let head = run_to_the_end(&testbed, false).await;
    assert_eq!(head.completed_rounds, 2);
    let sled = testbed.store().await;
    let (rounds, entries) = (
        sled.rounds().await.unwrap(),
        sled.audit_entries().await.unwrap(),
    );
    drop(sled);

    let state = testbed.dir.path().join("state");
    let folder = state.to_str().unwrap();
    let url = &database.settings.postgres;
    let coordinator_binary = binary("cohort-coordinator");
    let migrate = ["store", "migrate", "--from", folder, "--to", url];
    let copied = run_ok(&coordinator_binary, &migrate).await;
    assert!(copied.contains("rounds: 2"), "{copied}");
    let verified = format!(
        "audit log verified in PostgreSQL: {} entries",
        entries.len()
    );
    assert!(copied.contains(&verified), "{copied}");

    // The auditor's commands, on the database: given a folder with only the
    // audit key, so that they cannot have read the sled copy instead.
    let keys = testbed.dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::copy(
        state.join("audit-signing.key"),
        keys.join("audit-signing.key"),
    )
    .unwrap();
    let args = state_args(Some(&database), &keys);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let verify = run_ok(
        &coordinator_binary,
        &[&["audit", "verify"], &args[..]].concat(),
    )
    .await;
    assert!(verify.contains("audit log verified"), "{verify}");
    let onnx = testbed.dir.path().join("final.onnx");
    let export = [
        &["model", "export"][..],
        &args[..],
        &["--format", "onnx", "--out", onnx.to_str().unwrap()],
    ]
    .concat();
    let exported = run_ok(&coordinator_binary, &export).await;
    assert!(exported.contains(&head.model_version), "{exported}");

    // The same records, read from the database.
    testbed.database = Some(database);
    let postgres = testbed.store().await;
    assert_eq!(postgres.rounds().await.unwrap(), rounds);
    assert_eq!(postgres.audit_entries().await.unwrap(), entries);
    drop(postgres);

    // A coordinator on the database continues the federation at round 3.
    // More rounds are other settings: on PostgreSQL (where a standby could
    // bring them), refused unless asked for.
    testbed.plan.rounds.count = 3;
    let refused = Coordinator::start(testbed.coordinator_config("127.0.0.1:0".parse().unwrap()))
        .await
        .err();
    assert!(
        matches!(&refused, Some(CoordinatorError::SettingsChanged(s)) if s == "[rounds]"),
        "{refused:?}"
    );
    assert_eq!(run_to_the_end(&testbed, true).await.completed_rounds, 3);
    let rounds = testbed.store().await.rounds().await.unwrap();
    let numbers: Vec<u64> = rounds.iter().map(|r| r.round).collect();
    assert_eq!(numbers, [1, 2, 3], "each round exactly once");
}
