#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! The one authorization layer, seen from outside: on every API (the
//! coordinator's training and auditor APIs, a node's encrypted-inference
//! server), every RPC the schemas declare — and one no schema declares yet —
//! refuses a peer of the wrong role and a revoked peer with a typed reason,
//! and a revocation written while the servers run refuses the revoked
//! peer's very next call, without a restart.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use cohort_client::inference::{
    InferenceConfig, InferenceServer, InferenceService, ModelRegistry, RequestLog,
};
use cohort_coordinator::Coordinator;
use cohort_coordinator::audit::{AuditEvent, verify};
use cohort_coordinator::store::{SledStore, Store};
use cohort_crypto::authz::{RefusalReason, RevocationList};
use cohort_crypto::pki::Validity;
use cohort_crypto::tls::connector::{ConnectError, ServerAddress, connect};
use cohort_crypto::tls::{ExpectedServer, TlsFiles};
use cohort_crypto::transparency::AuditSigningKey;
use cohort_crypto::{PeerIdentity, Role};
use cohort_e2e::{Testbed, plan};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// The schemas, as the servers are generated from them.
const SCHEMAS: [&str; 3] = [
    "federation/v1/federation.proto",
    "audit/v1/audit.proto",
    "inference/v1/inference.proto",
];

/// Every RPC declared in `schema`, as request paths
/// (`/package.Service/Method`).
fn rpc_paths(schema: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../proto/proto/cohort")
        .join(schema);
    let text = std::fs::read_to_string(&path).unwrap();
    let (mut package, mut service, mut paths) = ("", "", Vec::new());
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("package ") {
            package = rest.trim_end_matches(';').trim();
        } else if let Some(rest) = line.strip_prefix("service ") {
            service = rest.split_whitespace().next().unwrap();
        } else if let Some(rest) = line.strip_prefix("rpc ") {
            let method = rest.split('(').next().unwrap().trim();
            paths.push(format!("/{package}.{service}/{method}"));
        }
    }
    assert!(!paths.is_empty(), "{} declares no RPC", path.display());
    paths
}

/// TLS files for `role`/`name`, valid for `localhost`.
fn member(testbed: &Testbed, role: Role, name: &str) -> TlsFiles {
    let pki = &testbed.provisioned.pki;
    let identity = PeerIdentity::new(role, name).unwrap();
    let sans = ["localhost".to_owned()];
    let issued = pki
        .issue(&identity, &sans, Validity::days_from_now(1).unwrap())
        .unwrap();
    TlsFiles {
        ca_certificate: pki.ca_certificate(),
        certificate: issued.certificate,
        private_key: issued.private_key,
    }
}

async fn channel(tls: &TlsFiles, server: ExpectedServer, addr: SocketAddr) -> Channel {
    let config = cohort_crypto::tls::client_config(tls, server).unwrap();
    let address = ServerAddress {
        address: addr.to_string(),
        server_name: "localhost".into(),
    };
    connect(&address, config).await.unwrap()
}

/// Calls `path` with an empty message, whatever the RPC's types: a call the
/// layer refuses never reaches the method's decoding.
async fn call(channel: &Channel, path: &str) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path = PathAndQuery::try_from(path).unwrap();
    grpc.unary(Request::new(()), path, codec).await.map(drop)
}

/// Served, or refused by its handler for what it sent, not for who it is.
async fn expect_admitted(channel: &Channel, path: &str) {
    if let Err(status) = call(channel, path).await {
        assert_eq!(RefusalReason::of(&status), None, "{path}: {status:?}");
    }
}

async fn expect_refused(channel: &Channel, path: &str, expected: RefusalReason) {
    let refused = call(channel, path).await.expect_err(path);
    assert_eq!(
        RefusalReason::of(&refused),
        Some(expected),
        "{path}: {refused:?}"
    );
    assert_eq!(refused.code(), expected.code(), "{path}");
}

async fn coordinator(testbed: &Testbed) -> Coordinator {
    let list = testbed.provisioned.pki.signed_revocation_list();
    testbed
        .start_coordinator_with("127.0.0.1:0".parse().unwrap(), |config| {
            config.server.revocation_list = Some(list);
        })
        .await
}

/// A node's inference server with no models, consulting the federation's
/// revocation list.
async fn inference_server(testbed: &Testbed, node: &TlsFiles) -> InferenceServer {
    let registry = ModelRegistry::new(Vec::new()).unwrap();
    let log = RequestLog::open(&testbed.dir.path().join("requests.jsonl")).unwrap();
    let service = InferenceService::new(registry, InferenceConfig::default(), log);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls = cohort_crypto::tls::server_config(node).unwrap();
    let pki = &testbed.provisioned.pki;
    let list = RevocationList::watch(&pki.signed_revocation_list(), &pki.ca_certificate()).unwrap();
    InferenceServer::start(listener, tls, service, Arc::new(list))
        .await
        .unwrap()
}

#[tokio::test]
async fn every_rpc_refuses_the_wrong_role_and_a_revoked_peer_with_a_typed_reason() {
    let testbed = Testbed::new(plan(1, 2));
    let node = member(&testbed, Role::Node, "hospital-a");
    let auditor = member(&testbed, Role::Auditor, "revoked-auditor");
    let requester = member(&testbed, Role::Requester, "revoked-clinic");
    let revoked_node = member(&testbed, Role::Node, "revoked-node");
    for revoked in [&auditor, &requester, &revoked_node] {
        testbed
            .provisioned
            .pki
            .revoke(&revoked.certificate)
            .unwrap();
    }
    let coordinator = coordinator(&testbed).await;
    let inference = inference_server(&testbed, &node).await;
    let to_coordinator =
        |tls| channel(tls, ExpectedServer::coordinator(), coordinator.local_addr());
    let to_node = |tls| {
        channel(
            tls,
            ExpectedServer::Role(Role::Node),
            inference.local_addr(),
        )
    };
    // (server, the role it admits, a revoked peer of that role, a peer of
    // another role, the schema).
    let apis = [
        (
            to_coordinator(&revoked_node).await,
            to_coordinator(&requester).await,
            SCHEMAS[0],
        ),
        (
            to_coordinator(&auditor).await,
            to_coordinator(&node).await,
            SCHEMAS[1],
        ),
        (to_node(&requester).await, to_node(&node).await, SCHEMAS[2]),
    ];
    for (revoked, wrong_role, schema) in &apis {
        let mut paths = rpc_paths(schema);
        // An RPC added to the service but to no handler yet is refused too:
        // the layer decides before routing.
        let service = paths[0].rsplit_once('/').unwrap().0.to_owned();
        paths.push(format!("{service}/NotWrittenYet"));
        for path in &paths {
            expect_refused(revoked, path, RefusalReason::CertificateRevoked).await;
            expect_refused(wrong_role, path, RefusalReason::WrongRole).await;
        }
    }
    // A service no policy names is offered to nobody.
    let (_, node_channel, _) = &apis[1];
    expect_refused(
        node_channel,
        "/cohort.other.v1.Other/Call",
        RefusalReason::ServiceNotOffered,
    )
    .await;
    inference.shutdown().await;
    coordinator.shutdown().await;
}

#[tokio::test]
async fn a_revocation_refuses_the_next_call_on_every_api_without_a_restart() {
    let testbed = Testbed::new(plan(1, 2));
    let node = member(&testbed, Role::Node, "hospital-a");
    let mallory = member(&testbed, Role::Node, "mallory");
    let auditor = member(&testbed, Role::Auditor, "leaving-auditor");
    let colleague = member(&testbed, Role::Auditor, "staying-auditor");
    let requester = member(&testbed, Role::Requester, "clinic");
    let coordinator = coordinator(&testbed).await;
    let inference = inference_server(&testbed, &node).await;
    let at_coordinator =
        |tls| channel(tls, ExpectedServer::coordinator(), coordinator.local_addr());
    let node_channel = at_coordinator(&mallory).await;
    let auditor_channel = at_coordinator(&auditor).await;
    let colleague_channel = at_coordinator(&colleague).await;
    let requester_channel = channel(
        &requester,
        ExpectedServer::Role(Role::Node),
        inference.local_addr(),
    )
    .await;
    let poll = "/cohort.federation.v1.Federation/PollTask";
    let tree_head = "/cohort.audit.v1.Audit/GetTreeHead";
    let list_models = "/cohort.inference.v1.EncryptedInference/ListModels";
    expect_admitted(&node_channel, poll).await;
    expect_admitted(&auditor_channel, tree_head).await;
    expect_admitted(&requester_channel, list_models).await;

    let mut revoked = Vec::new();
    for tls in [&mallory, &auditor, &requester] {
        revoked.push(testbed.provisioned.pki.revoke(&tls.certificate).unwrap().1);
    }
    // The very next call, on the same connections.
    expect_refused(&node_channel, poll, RefusalReason::CertificateRevoked).await;
    expect_refused(
        &auditor_channel,
        tree_head,
        RefusalReason::CertificateRevoked,
    )
    .await;
    expect_refused(
        &requester_channel,
        list_models,
        RefusalReason::CertificateRevoked,
    )
    .await;
    expect_admitted(&colleague_channel, tree_head).await;

    inference.shutdown().await;
    coordinator.shutdown().await;
    // The coordinator logged each revocation it picked up while serving.
    let state = testbed.dir.path().join("state");
    let store = Store::from(SledStore::open(&state).unwrap());
    let key = AuditSigningKey::load(&state.join("audit-signing.key")).unwrap();
    let log = verify(&store, &key.log_identity(cohort_e2e::FEDERATION))
        .await
        .unwrap();
    let mut logged: Vec<String> = log
        .entries
        .iter()
        .filter_map(|e| match &e.event {
            AuditEvent::CertificateRevoked { certificate_sha256 } => {
                Some(certificate_sha256.clone())
            }
            _ => None,
        })
        .collect();
    logged.sort();
    revoked.sort();
    assert_eq!(logged, revoked);
}

/// A requester that consults the federation's signed revocation list refuses
/// a node whose certificate was revoked, during the handshake: its encrypted
/// inputs never reach it. Without the list it would have connected.
#[tokio::test]
async fn a_requester_refuses_a_revoked_nodes_inference_server() {
    let testbed = Testbed::new(plan(1, 2));
    let node = member(&testbed, Role::Node, "hospital-r");
    let requester = member(&testbed, Role::Requester, "clinic");
    let inference = inference_server(&testbed, &node).await;
    let pki = &testbed.provisioned.pki;
    let list = RevocationList::watch(&pki.signed_revocation_list(), &pki.ca_certificate());
    let consulting = cohort_crypto::tls::client_config_refusing_revoked(
        &requester,
        ExpectedServer::node("hospital-r").unwrap(),
        Arc::new(list.unwrap()),
    )
    .unwrap();
    let ignoring =
        cohort_crypto::tls::client_config(&requester, ExpectedServer::node("hospital-r").unwrap())
            .unwrap();
    let address = ServerAddress {
        address: inference.local_addr().to_string(),
        server_name: "localhost".into(),
    };
    connect(&address, consulting.clone()).await.unwrap();

    pki.revoke(&node.certificate).unwrap();
    let refused = connect(&address, consulting).await.unwrap_err();
    assert!(
        matches!(refused, ConnectError::ServerRevoked { .. }),
        "{refused}"
    );
    connect(&address, ignoring).await.unwrap();
}
