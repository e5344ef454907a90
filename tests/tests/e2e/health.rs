#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! The standard gRPC health service (`grpc.health.v1`) on the coordinator and
//! on a node's inference server: NOT_SERVING while the server answers but is
//! not ready, SERVING once it is, NOT_SERVING again when it stops gracefully
//! — seen through one `Watch` stream, which ends with the stop. A certificate
//! of any role of the federation's CA may ask; nothing else opens to it.

use std::net::SocketAddr;
use std::sync::Arc;

use cohort_client::inference::{
    InferenceConfig, InferenceServer, InferenceService, ModelRegistry, RequestLog,
};
use cohort_coordinator::Coordinator;
use cohort_crypto::authz::{RefusalReason, RevocationList};
use cohort_crypto::pki::Validity;
use cohort_crypto::tls::connector::{ServerAddress, connect};
use cohort_crypto::tls::{ExpectedServer, TlsFiles};
use cohort_crypto::{PeerIdentity, Role};
use cohort_e2e::{Testbed, plan, within};
use tonic::Streaming;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

fn member(testbed: &Testbed, role: Role, name: &str) -> TlsFiles {
    let pki = &testbed.provisioned.pki;
    let identity = PeerIdentity::new(role, name).unwrap();
    let issued = pki
        .issue(
            &identity,
            &["localhost".to_owned()],
            Validity::days_from_now(1).unwrap(),
        )
        .unwrap();
    TlsFiles {
        ca_certificate: pki.ca_certificate(),
        certificate: issued.certificate,
        private_key: issued.private_key,
    }
}

async fn health_client(
    tls: &TlsFiles,
    server: ExpectedServer,
    addr: SocketAddr,
) -> HealthClient<Channel> {
    let config = cohort_crypto::tls::client_config(tls, server).unwrap();
    let address = ServerAddress {
        address: addr.to_string(),
        server_name: "localhost".into(),
    };
    HealthClient::new(connect(&address, config).await.unwrap())
}

fn request(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_owned(),
    }
}

async fn check(client: &mut HealthClient<Channel>, service: &str) -> ServingStatus {
    let response = client.check(request(service)).await.unwrap().into_inner();
    ServingStatus::try_from(response.status).unwrap()
}

/// The next status the watch reports; `None` once the stream has ended.
async fn next(watch: &mut Streaming<HealthCheckResponse>) -> Option<ServingStatus> {
    let response = within("a health change", watch.message()).await.unwrap()?;
    Some(ServingStatus::try_from(response.status).unwrap())
}

/// Every status the watch reports until it ends.
async fn rest(mut watch: Streaming<HealthCheckResponse>) -> Vec<ServingStatus> {
    let mut seen = Vec::new();
    while let Some(status) = next(&mut watch).await {
        seen.push(status);
    }
    seen
}

#[tokio::test]
async fn the_coordinator_is_not_serving_until_its_engine_runs_and_again_from_its_stop() {
    let testbed = Testbed::new(plan(2, 2));
    let config = testbed.plan.coordinator_config(
        &testbed.provisioned,
        "127.0.0.1:0".parse().unwrap(),
        testbed.dir.path().join("state"),
    );
    let prepared = Coordinator::prepare(config).await.unwrap();
    // Any member may ask: a requester, which may call nothing else here.
    let requester = member(&testbed, Role::Requester, "probe");
    let address = prepared.local_addr();
    let mut client = health_client(&requester, ExpectedServer::coordinator(), address).await;
    let mut watch = client.watch(request("")).await.unwrap().into_inner();
    assert_eq!(next(&mut watch).await, Some(ServingStatus::NotServing));
    let training = "cohort.federation.v1.Federation";
    assert_eq!(
        check(&mut client, training).await,
        ServingStatus::NotServing
    );

    let coordinator = prepared.run().await;
    assert_eq!(next(&mut watch).await, Some(ServingStatus::Serving));
    assert_eq!(check(&mut client, training).await, ServingStatus::Serving);
    assert_eq!(
        check(&mut client, "cohort.audit.v1.Audit").await,
        ServingStatus::Serving
    );
    let unknown = client.check(request("cohort.other.v1.Other")).await;
    assert_eq!(unknown.unwrap_err().code(), tonic::Code::NotFound);
    let refused = cohort_e2e::raw_client(&requester, address)
        .await
        .unwrap()
        .poll_task(cohort_proto::v1::PollTaskRequest::default())
        .await
        .unwrap_err();
    assert_eq!(RefusalReason::of(&refused), Some(RefusalReason::WrongRole));

    let (seen, ()) = tokio::join!(rest(watch), coordinator.shutdown());
    assert_eq!(seen, [ServingStatus::NotServing]);
}

#[tokio::test]
async fn a_nodes_inference_server_is_not_serving_until_ready_and_again_from_its_stop() {
    let testbed = Testbed::new(plan(1, 2));
    let node = member(&testbed, Role::Node, "hospital-a");
    let registry = ModelRegistry::new(Vec::new()).unwrap();
    let log = RequestLog::open(&testbed.dir.path().join("requests.jsonl")).unwrap();
    let service = InferenceService::new(registry, InferenceConfig::default(), log);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls = cohort_crypto::tls::server_config(&node).unwrap();
    let server = InferenceServer::start(listener, tls, service, Arc::new(RevocationList::none()))
        .await
        .unwrap();
    // Any member may ask: here an auditor.
    let auditor = member(&testbed, Role::Auditor, "probe");
    let expected = ExpectedServer::Role(Role::Node);
    let mut client = health_client(&auditor, expected, server.local_addr()).await;
    let inference = "cohort.inference.v1.EncryptedInference";
    let mut watch = client.watch(request(inference)).await.unwrap().into_inner();
    assert_eq!(next(&mut watch).await, Some(ServingStatus::NotServing));

    server.serving().await;
    assert_eq!(next(&mut watch).await, Some(ServingStatus::Serving));
    assert_eq!(check(&mut client, "").await, ServingStatus::Serving);

    let (seen, ()) = tokio::join!(rest(watch), server.shutdown());
    assert_eq!(seen, [ServingStatus::NotServing]);
}
