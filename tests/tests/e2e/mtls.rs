#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! Mutual TLS: only certificates of the federation's CA, valid now, carrying a
//! node identity that matches the request, get through.

use std::sync::Arc;

use cohort_coordinator::federation::FederationEvent;
use cohort_crypto::pki::{PkiDir, Validity};
use cohort_crypto::tls::TlsFiles;
use cohort_crypto::{PeerIdentity, Role};
use cohort_e2e::{FEDERATION, Testbed, header, next_event, plan, raw_client, raw_client_with};
use cohort_proto::v1;
use time::{Duration, OffsetDateTime};
use tonic::Code;

fn register(node_id: &str) -> v1::RegisterRequest {
    v1::RegisterRequest {
        header: header(node_id),
        num_features: 30,
        num_train_examples: 10,
        num_holdout_examples: 0,
        dataset: None,
    }
}

/// Expects the handshake or the first call to fail, and the coordinator to
/// report a refused connection whose reason contains `why`.
async fn assert_refused(
    testbed_events: &mut tokio::sync::broadcast::Receiver<FederationEvent>,
    client: Result<
        cohort_proto::v1::federation_client::FederationClient<tonic::transport::Channel>,
        String,
    >,
    why: &str,
) {
    if let Ok(mut client) = client {
        // TLS 1.3 lets the client finish its side before the server checks the
        // client certificate: the refusal surfaces on the first call.
        client
            .register(register("hospital-a"))
            .await
            .expect_err("a call over a refused connection fails");
    }
    let reason = next_event(testbed_events, |event| match event {
        FederationEvent::ConnectionRefused { reason, .. } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(
        reason.contains(why),
        "refusal reason {reason:?} should mention {why:?}"
    );
}

#[tokio::test]
async fn only_valid_certificates_of_the_federation_get_through() {
    let testbed = Testbed::new(plan(1, 5));
    let coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let address = coordinator.local_addr();
    let mut events = coordinator.events();

    // A good certificate is accepted.
    let mut good = raw_client(&testbed.node_tls("hospital-a"), address)
        .await
        .unwrap();
    let response = good
        .register(register("hospital-a"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.model.unwrap().num_features, 30);

    // No client certificate at all.
    let roots = {
        let mut roots = rustls::RootCertStore::empty();
        for cert in cohort_crypto::tls::load_certificates(&testbed.provisioned.pki.ca_certificate())
            .unwrap()
        {
            roots.add(cert).unwrap();
        }
        roots
    };
    let mut anonymous = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    anonymous.alpn_protocols = vec![b"h2".to_vec()];
    assert_refused(
        &mut events,
        raw_client_with(Arc::new(anonymous), address).await,
        "peer sent no certificates",
    )
    .await;

    // A certificate from another CA (the client trusts our CA, so the failure is the server's refusal).
    let elsewhere = tempfile::tempdir().unwrap();
    let other_ca = PkiDir::new(elsewhere.path());
    let validity = Validity::days_from_now(1).unwrap();
    other_ca.init("impostor", validity).unwrap();
    let impostor = PeerIdentity::new(Role::Node, "hospital-a").unwrap();
    let issued = other_ca.issue(&impostor, &[], validity).unwrap();
    let foreign = TlsFiles {
        ca_certificate: testbed.provisioned.pki.ca_certificate(),
        certificate: issued.certificate,
        private_key: issued.private_key,
    };
    assert_refused(
        &mut events,
        raw_client(&foreign, address).await,
        "UnknownIssuer",
    )
    .await;

    // An expired certificate of the right CA.
    let now = OffsetDateTime::now_utc();
    let expired_id = PeerIdentity::new(Role::Node, "hospital-old").unwrap();
    let expired = testbed
        .provisioned
        .pki
        .issue(
            &expired_id,
            &[],
            Validity {
                not_before: now - Duration::days(30),
                not_after: now - Duration::days(1),
            },
        )
        .unwrap();
    let expired = TlsFiles {
        ca_certificate: testbed.provisioned.pki.ca_certificate(),
        certificate: expired.certificate,
        private_key: expired.private_key,
    };
    assert_refused(
        &mut events,
        raw_client(&expired, address).await,
        "certificate expired",
    )
    .await;

    // A good certificate whose request claims another node's id.
    let error = good.register(register("hospital-b")).await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    assert!(
        error.message().contains("hospital-b"),
        "{}",
        error.message()
    );

    // An auditor certificate may not use the training API.
    let auditor = PeerIdentity::new(Role::Auditor, "alice").unwrap();
    let issued = testbed
        .provisioned
        .pki
        .issue(&auditor, &[], validity)
        .unwrap();
    let auditor_tls = TlsFiles {
        ca_certificate: testbed.provisioned.pki.ca_certificate(),
        certificate: issued.certificate,
        private_key: issued.private_key,
    };
    let mut auditor = raw_client(&auditor_tls, address).await.unwrap();
    let error = auditor.register(register("alice")).await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied, "{error}");

    // Another protocol version or federation is a clear precondition failure.
    let mut request = register("hospital-a");
    request.header.as_mut().unwrap().protocol_version = 99;
    let error = good.register(request).await.unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert!(
        error.message().contains("protocol version 99"),
        "{}",
        error.message()
    );
    let mut request = register("hospital-a");
    request.header.as_mut().unwrap().federation_id = format!("not-{FEDERATION}");
    let error = good.register(request).await.unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);

    // The good client is still served after all that.
    good.register(register("hospital-a")).await.unwrap();
    coordinator.shutdown().await;
}
