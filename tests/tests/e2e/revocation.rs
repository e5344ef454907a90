#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! A revoked certificate is refused although it chains to the CA, and its
//! revocation is logged once in the audit log (by fingerprint).

use cohort_coordinator::audit::{AuditEvent, verify};
use cohort_coordinator::store::{SledStore, Store};
use cohort_crypto::authz::RefusalReason;
use cohort_crypto::transparency::AuditSigningKey;
use cohort_e2e::{Testbed, header, plan, raw_client};
use cohort_proto::v1;
use tonic::Code;

#[tokio::test]
async fn a_revoked_node_is_refused_and_the_revocation_is_logged_once() {
    let testbed = Testbed::new(plan(1, 2));
    let tls = testbed.node_tls("mallory");
    let (_, fingerprint) = testbed.provisioned.pki.revoke(&tls.certificate).unwrap();
    let start = || {
        testbed.start_coordinator_with("127.0.0.1:0".parse().unwrap(), |config| {
            config.server.revocation_list = Some(testbed.provisioned.pki.signed_revocation_list());
        })
    };
    for _ in 0..2 {
        let coordinator = start().await;
        let mut client = raw_client(&tls, coordinator.local_addr()).await.unwrap();
        let refused = client
            .register(v1::RegisterRequest {
                header: header("mallory"),
                num_features: 30,
                num_train_examples: 10,
                num_holdout_examples: 0,
                dataset: None,
                model_fingerprint: Vec::new(),
            })
            .await
            .expect_err("a revoked certificate is refused");
        assert_eq!(refused.code(), Code::PermissionDenied);
        assert_eq!(
            RefusalReason::of(&refused),
            Some(RefusalReason::CertificateRevoked),
            "{refused:?}"
        );
        coordinator.shutdown().await;
    }
    let state = testbed.dir.path().join("state");
    let store = Store::from(SledStore::open(&state).unwrap());
    let key = AuditSigningKey::load(&state.join("audit-signing.key")).unwrap();
    let log = verify(&store, &key.log_identity(cohort_e2e::FEDERATION))
        .await
        .unwrap();
    let revoked: Vec<&String> = log
        .entries
        .iter()
        .filter_map(|e| match &e.event {
            AuditEvent::CertificateRevoked { certificate_sha256 } => Some(certificate_sha256),
            _ => None,
        })
        .collect();
    assert_eq!(
        revoked,
        vec![&fingerprint],
        "logged once, across two starts"
    );
}
