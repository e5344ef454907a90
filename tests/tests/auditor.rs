#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! The auditor API: only auditor certificates may read the log, auditors may
//! not train, every auditor read is itself logged, and what an auditor reads
//! checks out against RFC 9162 proofs and the signed tree heads.

use cohort_coordinator::audit::{AuditEntry, AuditEvent};
use cohort_crypto::pki::Validity;
use cohort_crypto::tls::TlsFiles;
use cohort_crypto::transparency::{
    Hash, SignedTreeHead, leaf_hash, verify_consistency, verify_inclusion,
};
use cohort_crypto::{PeerIdentity, Role};
use cohort_e2e::{Testbed, header, plan, raw_channel, raw_client, within};
use cohort_proto::audit_v1::audit_client::AuditClient;
use cohort_proto::audit_v1::{self as audit, lineage_request::Query};
use cohort_proto::v1;
use std::net::SocketAddr;
use tonic::Code;
use tonic::transport::Channel;

async fn audit_client(tls: &TlsFiles, coordinator: SocketAddr) -> AuditClient<Channel> {
    let config = cohort_crypto::tls::client_config(tls).unwrap();
    AuditClient::new(raw_channel(config, coordinator).await.unwrap())
}

async fn tree_head(client: &mut AuditClient<Channel>) -> (SignedTreeHead, Vec<u8>) {
    let answer = client
        .get_tree_head(audit::GetTreeHeadRequest {})
        .await
        .unwrap()
        .into_inner();
    let head = SignedTreeHead::from_bytes(&answer.signed_tree_head).unwrap();
    head.verify(&answer.public_key).unwrap();
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
    let mut coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let address = coordinator.local_addr();
    let nodes = testbed.start_nodes(address, 2);
    let head = within("the federation", coordinator.wait()).await.unwrap();
    for node in nodes {
        within("a node", node).await.unwrap().unwrap();
    }

    let identity = PeerIdentity::new(Role::Auditor, "auditor-1").unwrap();
    let files = testbed
        .provisioned
        .pki
        .issue(&identity, &[], Validity::days_from_now(30).unwrap())
        .unwrap();
    let auditor_tls = TlsFiles {
        ca_certificate: testbed.provisioned.pki.ca_certificate(),
        certificate: files.certificate,
        private_key: files.private_key,
    };
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
