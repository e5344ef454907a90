#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! What a node states at registration: its dataset version and the model
//! it was built from. Erasure reports the coordinator cannot act on: each
//! refusal names what was wrong, and each new version (only a new one) is
//! logged.

use cohort_coordinator::Coordinator;
use cohort_coordinator::audit::{AuditEvent, stored_entries};
use cohort_crypto::authz::RefusalReason;
use cohort_e2e::{Testbed, header, plan, raw_client};
use cohort_proto::model::{ModelDescriptor, TensorSpec};
use cohort_proto::v1::federation_client::FederationClient;
use cohort_proto::v1::{self, erasure_report::Scope};
use tonic::Code;
use tonic::transport::Channel;

fn dataset(version: &str, legal_basis: &str) -> v1::DatasetVersion {
    v1::DatasetVersion {
        dataset_id: "breast-cancer".into(),
        version: version.into(),
        content_sha256: format!("{version:0<64}"),
        row_count: 100,
        data_categories: vec!["phi".into()],
        legal_basis: legal_basis.into(),
    }
}

fn register(dataset: v1::DatasetVersion) -> v1::RegisterRequest {
    v1::RegisterRequest {
        header: header("hospital-a"),
        num_features: 30,
        num_train_examples: 100,
        num_holdout_examples: 0,
        dataset: Some(dataset),
        model_fingerprint: Vec::new(),
    }
}

fn subject_report(pseudonym: &str, removed: &str) -> v1::ErasureReport {
    v1::ErasureReport {
        header: header("hospital-a"),
        scope: Some(Scope::SubjectPseudonym(pseudonym.into())),
        dataset_id: "breast-cancer".into(),
        removed_version: removed.into(),
    }
}

/// A coordinator of a one-round federation, and hospital-a's client to it.
async fn hospital_a_and_its_coordinator() -> (Testbed, Coordinator, FederationClient<Channel>) {
    let testbed = Testbed::new(plan(1, 5));
    let coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let client = raw_client(&testbed.node_tls("hospital-a"), coordinator.local_addr())
        .await
        .unwrap();
    (testbed, coordinator, client)
}

#[tokio::test]
async fn dataset_versions_are_checked_logged_once_and_gate_erasure_reports() {
    let (_testbed, coordinator, mut client) = hospital_a_and_its_coordinator().await;

    let refused = client
        .register(register(dataset("aaaa", "because")))
        .await
        .expect_err("an unknown legal basis");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("\"because\""), "{refused:?}");

    for _ in 0..2 {
        client
            .register(register(dataset("aaaa", "consent")))
            .await
            .unwrap();
    }
    // An erasure report before the rows are gone (the same version is still
    // registered), or naming a subject by anything but a pseudonym, is refused.
    let pseudonym = "ab".repeat(32);
    let refused = client
        .report_erasure(subject_report(&pseudonym, "aaaa"))
        .await
        .expect_err("the old version is still registered");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("still has breast-cancer@aaaa"),
        "{refused:?}"
    );

    client
        .register(register(dataset("bbbb", "consent")))
        .await
        .unwrap();
    let refused = client
        .report_erasure(subject_report("patient-0042", "aaaa"))
        .await
        .expect_err("a raw identifier");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("pseudonym"), "{refused:?}");

    // No round has run: nothing learned from the data, so the request is
    // remediated and closed at once.
    let receipt = client
        .report_erasure(subject_report(&pseudonym, "aaaa"))
        .await
        .unwrap()
        .into_inner();
    assert!(receipt.tainted_models.is_empty() && receipt.rollback_to.is_empty());

    let entries = stored_entries(&coordinator.federation().store)
        .await
        .unwrap();
    let versions: Vec<&str> = entries
        .iter()
        .filter_map(|e| match &e.event {
            AuditEvent::DatasetRegistered { dataset, .. } => Some(dataset.version.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(versions, ["aaaa", "bbbb"], "each new version logged once");
    let closed = entries.iter().any(|e| {
        matches!(&e.event, AuditEvent::ErasureClosed { request_id } if *request_id == receipt.request_id)
    });
    assert!(closed);
    assert!(
        !entries
            .iter()
            .any(|e| format!("{:?}", e.event).contains("patient-0042"))
    );
    coordinator.shutdown().await;
}

/// A node whose model code was built from another descriptor than the
/// federation's (another author's model with the same input width) is
/// refused at registration with the typed `model-mismatch`, before anything
/// of it is recorded; the same node stating the federation's fingerprint, or
/// none (a node that builds whatever the federation trains), joins.
#[tokio::test]
async fn a_node_built_from_another_model_descriptor_is_refused_at_registration() {
    let (_testbed, coordinator, mut client) = hospital_a_and_its_coordinator().await;
    let other = ModelDescriptor::new(
        "hospital.cnn",
        "1",
        vec![TensorSpec::f32("conv.weight", vec![4, 1, 30])],
    )
    .unwrap();
    let stating = |fingerprint: Vec<u8>| v1::RegisterRequest {
        model_fingerprint: fingerprint,
        ..register(dataset("aaaa", "consent"))
    };

    let refused = client
        .register(stating(other.fingerprint().to_vec()))
        .await
        .expect_err("another model");
    assert_eq!(
        RefusalReason::of(&refused),
        Some(RefusalReason::ModelMismatch)
    );
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("cohort.dense 1"), "{refused:?}");
    let entries = stored_entries(&coordinator.federation().store)
        .await
        .unwrap();
    assert!(
        !entries
            .iter()
            .any(|e| matches!(e.event, AuditEvent::NodeRegistered { .. })),
        "a refused node is not recorded"
    );

    // A fingerprint that is no SHA-256 is bad input, not another model.
    let malformed = client
        .register(stating(vec![0xab; 5]))
        .await
        .expect_err("a 5-byte fingerprint");
    assert_eq!(malformed.code(), Code::InvalidArgument);
    assert!(malformed.message().contains("5 bytes"), "{malformed:?}");

    // Without the check the same request would join: stating nothing does.
    let joined = client
        .register(stating(Vec::new()))
        .await
        .unwrap()
        .into_inner();
    let federation_model = ModelDescriptor::from_proto(&joined.model.unwrap()).unwrap();
    assert_eq!(joined.model_fingerprint, federation_model.fingerprint());
    client
        .register(stating(federation_model.fingerprint().to_vec()))
        .await
        .unwrap();
    coordinator.shutdown().await;
}
