#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! Mutual TLS: only certificates of the federation's CA, valid now, carrying a
//! node identity that matches the request, get through.

use std::sync::Arc;

use cohort_coordinator::federation::FederationEvent;
use cohort_crypto::authz::RefusalReason;
use cohort_crypto::pki::{PkiDir, Validity};
use cohort_crypto::tls::TlsFiles;
use cohort_crypto::{PeerIdentity, Role};
use cohort_e2e::{
    FEDERATION, Testbed, header, next_event, plan, raw_client, raw_client_with, within,
};
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
        model_fingerprint: Vec::new(),
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
    assert_eq!(
        response.model.unwrap().tensors[0].shape[0],
        30,
        "the first layer takes the 30 features"
    );

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
    assert_eq!(
        RefusalReason::of(&error),
        Some(RefusalReason::IdentityMismatch)
    );
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
    assert_eq!(RefusalReason::of(&error), Some(RefusalReason::WrongRole));

    // Another protocol version or federation is a clear precondition failure.
    let mut request = register("hospital-a");
    request.header.as_mut().unwrap().protocol_version = 99;
    let error = good.register(request).await.unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert_eq!(
        RefusalReason::of(&error),
        Some(RefusalReason::ProtocolVersionUnsupported)
    );
    assert!(
        error.message().contains("protocol version 99"),
        "{}",
        error.message()
    );
    let mut request = register("hospital-a");
    request.header.as_mut().unwrap().federation_id = format!("not-{FEDERATION}");
    let error = good.register(request).await.unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert_eq!(
        RefusalReason::of(&error),
        Some(RefusalReason::WrongFederation)
    );

    // The good client is still served after all that.
    good.register(register("hospital-a")).await.unwrap();
    coordinator.shutdown().await;
}

/// A TLS server with the certificate of a node `impostor` of the testbed's
/// CA (naming this host), reporting whether each handshake completed.
struct Impostor {
    address: std::net::SocketAddr,
    completed: tokio::sync::mpsc::UnboundedReceiver<bool>,
    server: tokio::task::JoinHandle<()>,
}

async fn impostor(testbed: &Testbed) -> Impostor {
    let impostor = PeerIdentity::new(Role::Node, "impostor").unwrap();
    let issued = testbed
        .provisioned
        .pki
        .issue(
            &impostor,
            &["localhost".into(), "127.0.0.1".into()],
            Validity::days_from_now(1).unwrap(),
        )
        .unwrap();
    let server_tls = cohort_crypto::tls::server_config(&TlsFiles {
        ca_certificate: testbed.provisioned.pki.ca_certificate(),
        certificate: issued.certificate,
        private_key: issued.private_key,
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (handshakes, completed) = tokio::sync::mpsc::unbounded_channel();
    let server = tokio::spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(server_tls);
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = handshakes.send(acceptor.accept(tcp).await.is_ok());
        }
    });
    Impostor {
        address,
        completed,
        server,
    }
}

/// A node given an impostor's address first and the coordinator's after it
/// skips the impostor (which never completes a handshake) and takes part:
/// one wrong address among several ends only its own use.
#[tokio::test]
async fn a_node_skips_an_address_that_is_not_a_coordinator_and_uses_the_next() {
    use cohort_client::node::{Node, NodeConfig};
    use cohort_crypto::tls::connector::ServerAddress;

    let testbed = Testbed::new(plan(1, 1));
    let Impostor {
        address: wrong,
        mut completed,
        server,
    } = impostor(&testbed).await;
    let coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let at = |address: std::net::SocketAddr| ServerAddress {
        address: address.to_string(),
        server_name: "localhost".into(),
    };
    let config = NodeConfig {
        coordinator: at(wrong),
        standby_coordinators: vec![at(coordinator.local_addr())],
        tls: testbed.node_tls("hospital-0"),
        federation_id: testbed.plan.federation_id.clone(),
        give_up_after: std::time::Duration::from_secs(60),
        models_dir: None,
    };
    let data = cohort_e2e::shares(1).pop().unwrap();
    let node = tokio::spawn(Node::new(config, data).unwrap().run());
    let summary = within("the node", node).await.unwrap().unwrap();
    assert_eq!(summary.completed_rounds, 1, "{summary:?}");
    assert_eq!(summary.updates_sent, 1, "{summary:?}");
    // The impostor saw exactly one attempt, refused in the handshake.
    assert_eq!(completed.recv().await, Some(false));
    assert!(
        completed.try_recv().is_err(),
        "the impostor was dialled again"
    );
    coordinator.shutdown().await;
    server.abort();
}

/// Another member of the federation (a node whose certificate, from the same
/// CA, names this host) serves on the coordinator's address. Nodes and the
/// connector check the server's `cohort://` identity in the handshake: they
/// refuse it with a typed error, and it never completes a handshake (never
/// learns a client's certificate, never gets a request).
#[tokio::test]
async fn clients_refuse_a_server_that_is_not_the_one_they_expect() {
    use cohort_client::node::NodeError;
    use cohort_crypto::tls::ExpectedServer;
    use cohort_crypto::tls::connector::{ConnectError, ServerAddress, connect};

    let testbed = Testbed::new(plan(1, 1));
    let Impostor {
        address,
        mut completed,
        server,
    } = impostor(&testbed).await;

    // Each refused client made one connection, which the server saw fail.
    let mut refused_handshake = async || {
        let completed = within("the server's handshake", completed.recv()).await;
        assert_eq!(
            completed,
            Some(false),
            "a refused client completed its handshake"
        );
    };

    // A node: a fatal, typed error naming what it found, not a retry.
    let node = testbed.start_nodes(address, 1).pop().unwrap();
    match within("the node", node).await.unwrap() {
        Err(NodeError::NotCoordinator(unexpected)) => {
            assert_eq!(unexpected.expected, ExpectedServer::coordinator());
            assert_eq!(unexpected.found, "cohort://node/impostor");
        }
        other => panic!("the node talked to a node as its coordinator: {other:?}"),
    }
    refused_handshake().await;
    // The connector, for a node and for a requester that named another node.
    let to = |expected| {
        cohort_crypto::tls::client_config(&testbed.node_tls("hospital-0"), expected).unwrap()
    };
    let server_address = ServerAddress {
        address: address.to_string(),
        server_name: "localhost".into(),
    };
    for expected in [
        ExpectedServer::coordinator(),
        ExpectedServer::node("hospital-1").unwrap(),
    ] {
        match connect(&server_address, to(expected.clone())).await {
            Err(ConnectError::UnexpectedServer { source, .. }) => {
                assert_eq!(source.expected, expected);
                assert_eq!(source.found, "cohort://node/impostor");
            }
            other => panic!("connected to the wrong server: {other:?}"),
        }
        refused_handshake().await;
    }
    // A client that expects this very node completes the handshake.
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(to(ExpectedServer::node("impostor").unwrap()))
        .connect(name, tcp)
        .await
        .unwrap();
    let completed = within("the server's handshake", completed.recv()).await;
    assert_eq!(completed, Some(true));
    server.abort();
}
