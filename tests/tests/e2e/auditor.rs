#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! The auditor API: only auditor certificates may read the log, auditors may
//! not train, every auditor read is itself logged, and what an auditor reads
//! checks out against RFC 9162 proofs and the signed tree heads. The
//! `cohort-coordinator audit --remote` command verifies a running
//! coordinator's whole log through it, and names an entry changed on disk.

use cohort_coordinator::Coordinator;
use cohort_coordinator::audit::remote::{Pins, fetch_verified};
use cohort_coordinator::audit::seen_head::SeenHead;
use cohort_coordinator::audit::{AuditEntry, AuditEvent};
use cohort_coordinator::store::records::{AuditBatch, FederationHead};
use cohort_coordinator::store::{SledStore, Store};
use cohort_crypto::pki::Validity;
use cohort_crypto::tls::ExpectedServer;
use cohort_crypto::tls::TlsFiles;
use cohort_crypto::transparency::{
    Hash, LogIdentity, SignedTreeHead, leaf_hash, verify_consistency, verify_inclusion,
};
use cohort_crypto::{PeerIdentity, Role};
use cohort_e2e::deployment::{binary, run_ok};
use cohort_e2e::{Testbed, header, plan, raw_channel, raw_client, within};
use cohort_proto::audit_v1::audit_client::AuditClient;
use cohort_proto::audit_v1::{self as audit, lineage_request::Query};
use cohort_proto::v1;
use std::net::SocketAddr;
use std::path::Path;
use tonic::Code;
use tonic::transport::Channel;

/// An auditor certificate of the testbed's CA.
fn auditor_tls(testbed: &Testbed, auditor: &str) -> TlsFiles {
    let identity = PeerIdentity::new(Role::Auditor, auditor).unwrap();
    let files = testbed
        .provisioned
        .pki
        .issue(&identity, &[], Validity::days_from_now(30).unwrap())
        .unwrap();
    TlsFiles {
        ca_certificate: testbed.provisioned.pki.ca_certificate(),
        certificate: files.certificate,
        private_key: files.private_key,
    }
}

/// A coordinator whose two nodes have run every round, still serving.
async fn finished_federation(testbed: &Testbed) -> (Coordinator, FederationHead) {
    let mut coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let nodes = testbed.start_nodes(coordinator.local_addr(), 2);
    let head = within("the federation", coordinator.wait()).await.unwrap();
    for node in nodes {
        within("a node", node).await.unwrap().unwrap();
    }
    (coordinator, head)
}

async fn audit_client(tls: &TlsFiles, coordinator: SocketAddr) -> AuditClient<Channel> {
    let config = cohort_crypto::tls::client_config(tls, ExpectedServer::coordinator()).unwrap();
    AuditClient::new(raw_channel(config, coordinator).await.unwrap())
}

async fn tree_head(client: &mut AuditClient<Channel>) -> (SignedTreeHead, Vec<u8>) {
    let answer = client
        .get_tree_head(audit::GetTreeHeadRequest {})
        .await
        .unwrap()
        .into_inner();
    let head = SignedTreeHead::from_bytes(&answer.signed_tree_head).unwrap();
    // The head names this federation's log, and verifies as nothing else.
    assert_eq!(answer.federation_id, cohort_e2e::FEDERATION);
    head.verify(&LogIdentity::new(&answer.federation_id, &answer.public_key))
        .unwrap();
    assert!(
        head.verify(&LogIdentity::new("another-federation", &answer.public_key))
            .is_err()
    );
    (head, answer.public_key)
}

fn hashes(proof: audit::Proof) -> Vec<Hash> {
    proof
        .hashes
        .into_iter()
        .map(|h| Hash::from_bytes(h.try_into().unwrap()))
        .collect()
}

#[tokio::test]
async fn auditors_read_a_log_that_checks_out_and_nobody_else_does() {
    let testbed = Testbed::new(plan(3, 2));
    let (coordinator, head) = finished_federation(&testbed).await;
    let address = coordinator.local_addr();

    let auditor_tls = auditor_tls(&testbed, "auditor-1");
    let mut auditor = audit_client(&auditor_tls, address).await;
    let (first, public_key) = tree_head(&mut auditor).await;

    // An auditor may not train; a node may not audit.
    let mut training = raw_client(&auditor_tls, address).await.unwrap();
    let refused = training
        .register(v1::RegisterRequest {
            header: header("auditor-1"),
            num_features: 30,
            ..Default::default()
        })
        .await
        .expect_err("an auditor may not register");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let mut node = audit_client(&testbed.node_tls("hospital-0"), address).await;
    let refused = node
        .get_tree_head(audit::GetTreeHeadRequest {})
        .await
        .expect_err("a node may not audit");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // Lineage through the API: the final model's three rounds.
    let lineage = auditor
        .get_lineage(audit::LineageRequest {
            query: Some(Query::ModelVersion(head.model_version.clone())),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(lineage.json.contains(&head.model_version));
    assert!(lineage.json.contains("\"round\":3"), "{}", lineage.json);

    // The later head extends the one first seen (RFC 9162 §2.1.4).
    let (second, _) = tree_head(&mut auditor).await;
    assert!(second.tree_size > first.tree_size);
    let proof = auditor
        .get_consistency_proof(audit::ConsistencyProofRequest {
            old_size: first.tree_size,
            new_size: second.tree_size,
        })
        .await
        .unwrap()
        .into_inner();
    verify_consistency(
        first.tree_size,
        second.tree_size,
        &first.root_hash,
        &second.root_hash,
        &hashes(proof),
    )
    .unwrap();

    // The entries since: each is included in the later head, and the
    // auditor's own reads are among them.
    let entries = auditor
        .get_entries(audit::GetEntriesRequest {
            start: first.tree_size,
            end: second.tree_size,
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(entries.len() as u64, second.tree_size - first.tree_size);
    let mut reads = Vec::new();
    for entry in &entries {
        let proof = auditor
            .get_inclusion_proof(audit::InclusionProofRequest {
                seq: entry.seq,
                tree_size: second.tree_size,
            })
            .await
            .unwrap()
            .into_inner();
        verify_inclusion(
            entry.seq,
            second.tree_size,
            &leaf_hash(&entry.canonical_json),
            &hashes(proof),
            &second.root_hash,
        )
        .unwrap();
        let decoded: AuditEntry = serde_json::from_slice(&entry.canonical_json).unwrap();
        if let AuditEvent::AuditorRead { auditor, reading } = decoded.event {
            assert_eq!(auditor, "auditor-1");
            reads.push(reading);
        }
    }
    assert!(
        reads.iter().any(|r| r.starts_with("lineage of")),
        "{reads:?}"
    );
    assert!(reads.iter().any(|r| r == "tree head"), "{reads:?}");

    // The key the heads verify with is the coordinator's audit key.
    assert_eq!(
        public_key,
        coordinator.federation().audit_log.public_key().to_vec()
    );
    coordinator.shutdown().await;
}

/// `cohort-coordinator audit CMD --remote …` as `tls`, pinning `public_key`
/// and keeping the last head seen in `seen_head`.
fn remote_args(
    command: &str,
    coordinator: SocketAddr,
    tls: &TlsFiles,
    public_key: &str,
    seen_head: &Path,
) -> Vec<String> {
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    vec![
        "audit".into(),
        command.into(),
        "--remote".into(),
        coordinator.to_string(),
        "--server-name".into(),
        "localhost".into(),
        "--ca".into(),
        path(&tls.ca_certificate),
        "--cert".into(),
        path(&tls.certificate),
        "--key".into(),
        path(&tls.private_key),
        "--public-key".into(),
        public_key.into(),
        "--seen-head".into(),
        path(seen_head),
    ]
}

async fn refused_command(args: &[String]) -> String {
    let out = tokio::process::Command::new(binary("cohort-coordinator"))
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn the_audit_command_checks_a_running_coordinator_and_names_an_entry_changed_on_disk() {
    let testbed = Testbed::new(plan(2, 2));
    let state = testbed.dir.path().join("state");
    let cli = binary("cohort-coordinator");
    let run = |args: Vec<String>| {
        let cli = cli.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_ok(&cli, &args).await
        }
    };
    let (coordinator, head) = finished_federation(&testbed).await;
    let address = coordinator.local_addr();
    let auditor = auditor_tls(&testbed, "auditor-1");
    let key = hex::encode(coordinator.federation().audit_log.public_key());
    let seen = testbed.dir.path().join("seen-head.json");
    let args = |command: &str| remote_args(command, address, &auditor, &key, &seen);

    // The whole log, fetched and verified on the auditor's side; the head it
    // verified is kept, and the next check must extend it.
    let verified = run(args("verify")).await;
    assert!(verified.contains("audit log verified: "), "{verified}");
    let first = SeenHead::load(&seen).unwrap().unwrap();
    assert!(first.tree_size > 10, "{first:?}");
    let mut lineage = args("lineage");
    lineage.extend(["--model".into(), head.model_version.clone()]);
    let lineage = run(lineage).await;
    assert!(lineage.contains("\"round\": 2"), "{lineage}");
    // Every checked read moves the seen head on (the lineage call did).
    let before = SeenHead::load(&seen).unwrap().unwrap();
    assert!(before.tree_size > first.tree_size, "{before:?}");
    let again = run(args("verify")).await;
    let extends = format!(
        "consistent with the tree head seen at size {}",
        before.tree_size
    );
    assert!(again.contains(&extends), "{again}");

    // Another key pinned, a node's certificate, a seen head the log does not
    // extend: each refused, saying why.
    let impostor = remote_args("verify", address, &auditor, &"ab".repeat(32), &seen);
    let stderr = refused_command(&impostor).await;
    assert!(stderr.contains("not the pinned key"), "{stderr}");
    let fresh = testbed.dir.path().join("fresh-head.json");
    let mut elsewhere = remote_args("verify", address, &auditor, &key, &fresh);
    elsewhere.extend(["--federation-id".into(), "another-federation".into()]);
    let stderr = refused_command(&elsewhere).await;
    assert!(
        stderr.contains("not the pinned \"another-federation\""),
        "{stderr}"
    );
    let node = testbed.node_tls("hospital-0");
    let stderr = refused_command(&remote_args("verify", address, &node, &key, &seen)).await;
    assert!(stderr.contains("PermissionDenied (wrong-role)"), "{stderr}");
    let forged = testbed.dir.path().join("forged-head.json");
    SeenHead {
        root_hash: Hash::from_bytes([0; 32]),
        // Edited by hand: no signed head to match it.
        signed_tree_head: None,
        ..first.clone()
    }
    .save(&forged)
    .unwrap();
    let stderr = refused_command(&remote_args("verify", address, &auditor, &key, &forged)).await;
    assert!(
        stderr.contains("does not extend the tree head seen earlier"),
        "{stderr}"
    );
    coordinator.shutdown().await;

    // What the auditor saw over the API is what the coordinator stored.
    let state_arg = state.to_str().unwrap();
    let seen_arg = seen.to_str().unwrap();
    let local = run_ok(
        &cli,
        &[
            "audit",
            "verify",
            "--state",
            state_arg,
            "--seen-head",
            seen_arg,
        ],
    )
    .await;
    assert!(
        local.contains("consistent with the tree head seen at size"),
        "{local}"
    );

    // Someone with the disk changes one entry's time while the coordinator is
    // stopped. It resumes from its stored frontier (the heads still match
    // it), serves the changed entry, and the remote audit names it.
    {
        let store = Store::from(SledStore::open(&state).unwrap());
        let (seq, mut bytes) = store.audit_entries_in(3..4).await.unwrap().remove(0);
        let at = String::from_utf8_lossy(&bytes)
            .find("\"time_ms\":")
            .unwrap()
            + 10;
        bytes[at] = if bytes[at] == b'9' {
            b'8'
        } else {
            bytes[at] + 1
        };
        store
            .append_audit(&AuditBatch {
                entries: vec![(seq, bytes)],
                heads: Vec::new(),
                frontier: store.audit_frontier().await.unwrap().unwrap(),
            })
            .await
            .unwrap();
    }
    let coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let address = coordinator.local_addr();
    let stderr = refused_command(&remote_args("verify", address, &auditor, &key, &seen)).await;
    assert!(stderr.contains("entry 3 was changed"), "{stderr}");
    coordinator.shutdown().await;
}

#[tokio::test]
async fn an_auditor_that_floods_the_api_is_slowed_down_like_a_node() {
    let testbed = Testbed::new(plan(2, 2));
    let coordinator = testbed
        .start_coordinator_with("127.0.0.1:0".parse().unwrap(), |config| {
            config.server.requests_per_second = 1;
            config.server.request_burst = 3;
        })
        .await;
    let mut auditor = audit_client(
        &auditor_tls(&testbed, "auditor-1"),
        coordinator.local_addr(),
    )
    .await;
    let read = audit::GetEntriesRequest { start: 0, end: 1 };
    for _ in 0..3 {
        auditor.get_entries(read).await.unwrap();
    }
    let refused = auditor.get_entries(read).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("auditor-1 exceeded its request rate"),
        "{refused:?}"
    );
    coordinator.shutdown().await;
}

#[tokio::test]
async fn a_log_longer_than_a_page_is_fetched_whole_and_verified() {
    let testbed = Testbed::new(plan(2, 2));
    let coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let federation = coordinator.federation();
    // 2,500 entries (and as many signed heads): three pages of each.
    let events = (0..2500)
        .map(|round| AuditEvent::RoundFailed {
            round,
            attempt: 1,
            reason: "a page-filling entry".into(),
        })
        .collect();
    federation
        .audit_log
        .append(&federation.store, events)
        .await
        .unwrap();
    let config = cohort_crypto::tls::client_config(
        &auditor_tls(&testbed, "auditor-1"),
        ExpectedServer::coordinator(),
    )
    .unwrap();
    let channel = raw_channel(config, coordinator.local_addr()).await.unwrap();
    let key = federation.audit_log.public_key();
    let pins = Pins {
        public_key: Some(key.to_vec()),
        federation_id: Some(cohort_e2e::FEDERATION.into()),
    };
    let fetched = fetch_verified(channel, &pins).await.unwrap();
    let size = fetched.log.head.as_ref().unwrap().tree_size;
    assert!(size >= 2500, "{size}");
    assert_eq!(fetched.log.entries.len() as u64, size);
    assert_eq!(fetched.log.heads_checked, size, "a head per entry");
    assert!(fetched.key_pinned);
    coordinator.shutdown().await;
}
