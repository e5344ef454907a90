#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! The authorizer and its layer against real certificates of a test CA.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::http;
use tower::{Layer, Service};

use super::*;
use crate::identity::{PeerIdentity, Role};
use crate::pki::{PkiDir, Validity, fingerprint};
use crate::tls::acceptor::PeerInfo;

const AUDIT: &str = "cohort.audit.v1.Audit";
const TRAINING: &str = "cohort.federation.v1.Federation";

struct Federation {
    _dir: tempfile::TempDir,
    pki: PkiDir,
}

impl Federation {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = PkiDir::new(dir.path());
        pki.init("test", Validity::days_from_now(1).unwrap())
            .unwrap();
        Self { _dir: dir, pki }
    }

    /// A connection of a freshly issued `role`/`name` certificate.
    fn peer(&self, role: Role, name: &str) -> PeerInfo {
        let identity = PeerIdentity::new(role, name).unwrap();
        let issued = self
            .pki
            .issue(&identity, &[], Validity::days_from_now(1).unwrap())
            .unwrap();
        let der = crate::tls::load_certificates(&issued.certificate).unwrap()[0].to_vec();
        PeerInfo {
            identity,
            remote_addr: "127.0.0.1:4000".parse().unwrap(),
            certificate_sha256: fingerprint(&der),
            certificate: Arc::from(der),
        }
    }

    fn authorizer(&self, rate: RequestRate) -> Authorizer {
        let policy = AccessPolicy::new()
            .admit(TRAINING, Role::Node)
            .admit(AUDIT, Role::Auditor);
        Authorizer::new(policy, Arc::new(self.revocations()), rate)
    }

    /// The federation's signed revocation list, watched.
    fn revocations(&self) -> RevocationList {
        RevocationList::watch(
            &self.pki.signed_revocation_list(),
            &self.pki.ca_certificate(),
        )
        .unwrap()
    }

    /// The CA signs a list of exactly `peers`, as the next list.
    fn revoke(&self, peers: &[&PeerInfo]) {
        let revoked = peers.iter().map(|p| p.certificate_sha256.clone()).collect();
        self.pki.write_signed_revocations(&revoked).unwrap();
    }
}

fn generous() -> RequestRate {
    RequestRate::new(1000, 1000)
}

fn reason(result: Result<Caller, Refusal>) -> RefusalReason {
    result.expect_err("refused").reason
}

#[test]
fn only_the_role_a_service_admits_is_served() {
    let federation = Federation::new();
    let authorizer = federation.authorizer(generous());
    let node = federation.peer(Role::Node, "hospital-a");
    let auditor = federation.peer(Role::Auditor, "regulator");
    let requester = federation.peer(Role::Requester, "clinic");
    let training = "/cohort.federation.v1.Federation/PollTask";
    let audit = "/cohort.audit.v1.Audit/GetEntries";

    let caller = authorizer.authorize(training, Some(&node)).unwrap();
    assert_eq!(caller.identity(), &node.identity);
    assert_eq!(caller.certificate_sha256(), node.certificate_sha256);
    authorizer.authorize(audit, Some(&auditor)).unwrap();
    for (path, peer) in [(training, &auditor), (training, &requester), (audit, &node)] {
        let refused = reason(authorizer.authorize(path, Some(peer)));
        assert_eq!(
            refused,
            RefusalReason::WrongRole,
            "{} on {path}",
            peer.identity
        );
    }
    assert_eq!(
        reason(authorizer.authorize(training, None)),
        RefusalReason::NoClientCertificate
    );
    for unlisted in [
        "/cohort.inference.v1.EncryptedInference/Predict",
        "/grpc.reflection.v1.ServerReflection/Info",
        "/",
        "",
    ] {
        assert_eq!(
            reason(authorizer.authorize(unlisted, Some(&node))),
            RefusalReason::ServiceNotOffered,
            "{unlisted}"
        );
    }
}

/// A server past its serving deadline (a coordinator no longer sure of its
/// lease) refuses every call, even an admitted member's read, as not-active.
#[test]
fn past_its_serving_deadline_a_server_refuses_every_call_as_not_active() {
    let federation = Federation::new();
    let far = std::time::Instant::now() + std::time::Duration::from_secs(3600);
    let deadline = ServingDeadline::new(far);
    let authorizer = federation
        .authorizer(generous())
        .serving_until(deadline.clone());
    let node = federation.peer(Role::Node, "hospital-a");
    let poll = "/cohort.federation.v1.Federation/PollTask";
    authorizer.authorize(poll, Some(&node)).unwrap();
    deadline.close();
    assert_eq!(
        reason(authorizer.authorize(poll, Some(&node))),
        RefusalReason::NotActive
    );
    deadline.extend_to(far);
    authorizer.authorize(poll, Some(&node)).unwrap();
}

#[test]
fn a_service_open_to_any_member_still_needs_a_certificate_and_opens_nothing_else() {
    let federation = Federation::new();
    let health = "/grpc.health.v1.Health/Check";
    let policy = AccessPolicy::new()
        .admit(TRAINING, Role::Node)
        .admit_any_member("grpc.health.v1.Health");
    let authorizer = Authorizer::new(policy, Arc::new(federation.revocations()), generous());
    let peers = [
        federation.peer(Role::Node, "hospital-a"),
        federation.peer(Role::Auditor, "regulator"),
        federation.peer(Role::Requester, "clinic"),
        federation.peer(Role::Coordinator, "prober"),
    ];
    for peer in &peers {
        let caller = authorizer.authorize(health, Some(peer)).unwrap();
        assert_eq!(caller.identity(), &peer.identity);
    }
    // The other services keep their one role.
    for peer in &peers[1..] {
        let refused =
            reason(authorizer.authorize("/cohort.federation.v1.Federation/PollTask", Some(peer)));
        assert_eq!(refused, RefusalReason::WrongRole, "{}", peer.identity);
    }
    assert_eq!(
        reason(authorizer.authorize(health, None)),
        RefusalReason::NoClientCertificate
    );
    federation.revoke(&[&peers[3]]);
    assert_eq!(
        reason(authorizer.authorize(health, Some(&peers[3]))),
        RefusalReason::CertificateRevoked
    );
}

#[test]
fn a_revocation_written_while_serving_refuses_the_very_next_call() {
    let federation = Federation::new();
    let authorizer = federation.authorizer(generous());
    let mallory = federation.peer(Role::Auditor, "mallory");
    let honest = federation.peer(Role::Auditor, "honest");
    let audit = "/cohort.audit.v1.Audit/GetTreeHead";
    authorizer.authorize(audit, Some(&mallory)).unwrap();

    federation.revoke(&[&mallory]);
    assert_eq!(
        reason(authorizer.authorize(audit, Some(&mallory))),
        RefusalReason::CertificateRevoked
    );
    authorizer.authorize(audit, Some(&honest)).unwrap();

    // Half-written: fail closed, for everyone, until it reads again.
    std::fs::write(federation.pki.signed_revocation_list(), "0123abc\n").unwrap();
    for peer in [&mallory, &honest] {
        assert_eq!(
            reason(authorizer.authorize(audit, Some(peer))),
            RefusalReason::RevocationListUnreadable
        );
    }
    federation.revoke(&[&mallory]);
    authorizer.authorize(audit, Some(&honest)).unwrap();
    assert_eq!(
        reason(authorizer.authorize(audit, Some(&mallory))),
        RefusalReason::CertificateRevoked
    );
}

#[test]
fn each_identity_has_its_own_rate() {
    let federation = Federation::new();
    let authorizer = federation.authorizer(RequestRate::new(1, 2));
    let flooder = federation.peer(Role::Node, "flooder");
    let quiet = federation.peer(Role::Node, "quiet");
    let path = "/cohort.federation.v1.Federation/PollTask";
    for _ in 0..2 {
        authorizer.authorize(path, Some(&flooder)).unwrap();
    }
    assert_eq!(
        reason(authorizer.authorize(path, Some(&flooder))),
        RefusalReason::RateLimited
    );
    authorizer.authorize(path, Some(&quiet)).unwrap();
}

/// Answers every call with an empty 200 and counts them.
#[derive(Clone, Default)]
struct Handler {
    calls: Arc<AtomicUsize>,
    callers: Arc<Mutex<Vec<PeerIdentity>>>,
}

impl Service<http::Request<()>> for Handler {
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<http::Response<Body>, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<()>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(caller) = request.extensions().get::<Caller>() {
            self.callers.lock().unwrap().push(caller.identity().clone());
        }
        std::future::ready(Ok(http::Response::new(Body::empty())))
    }
}

async fn call(
    service: &mut Authorize<Handler>,
    path: &str,
    peer: Option<&PeerInfo>,
) -> http::Response<Body> {
    let mut request = http::Request::builder().uri(path).body(()).unwrap();
    if let Some(peer) = peer {
        request.extensions_mut().insert(peer.clone());
    }
    std::future::poll_fn(|cx| service.poll_ready(cx))
        .await
        .unwrap();
    service.call(request).await.unwrap()
}

fn refusal_of(response: &http::Response<Body>) -> Option<&str> {
    response
        .headers()
        .get(REFUSAL_METADATA)
        .and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn a_refused_call_never_reaches_the_handler_and_says_why() {
    let federation = Federation::new();
    let authorizer = Arc::new(federation.authorizer(generous()));
    let refused = Arc::new(Mutex::new(Vec::new()));
    let heard = refused.clone();
    let layer = AuthorizationLayer::new(
        authorizer,
        Arc::new(move |call: &RefusedCall| heard.lock().unwrap().push(call.refusal.reason)),
    );
    let handler = Handler::default();
    let mut service = layer.layer(handler.clone());
    let node = federation.peer(Role::Node, "hospital-a");
    let auditor = federation.peer(Role::Auditor, "regulator");

    let served = call(
        &mut service,
        "/cohort.audit.v1.Audit/Anything",
        Some(&auditor),
    )
    .await;
    assert_eq!(refusal_of(&served), None);
    assert_eq!(
        *handler.callers.lock().unwrap(),
        vec![auditor.identity.clone()]
    );

    federation.revoke(&[&auditor]);
    let cases = [
        (
            "/cohort.audit.v1.Audit/NotWrittenYet",
            Some(&auditor),
            "certificate-revoked",
        ),
        (
            "/cohort.audit.v1.Audit/GetEntries",
            Some(&node),
            "wrong-role",
        ),
        (
            "/cohort.federation.v1.Federation/NewRpc",
            None,
            "no-client-certificate",
        ),
        (
            "/cohort.other.v1.Other/Call",
            Some(&node),
            "service-not-offered",
        ),
    ];
    for (path, peer, expected) in cases {
        let response = call(&mut service, path, peer).await;
        assert_eq!(refusal_of(&response), Some(expected), "{path}");
        assert!(response.headers().contains_key("grpc-status"), "{path}");
    }
    assert_eq!(
        handler.calls.load(Ordering::SeqCst),
        1,
        "only the first call was served"
    );
    assert_eq!(refused.lock().unwrap().len(), cases.len());
}

/// Answers no call until told to: the shape of a long poll or an upload in
/// progress. Says when a call reached it.
#[derive(Clone)]
struct Stalled {
    reached: Arc<tokio::sync::Notify>,
    /// When set, answers at once with a body that never yields a frame (a
    /// stream that has sent its headers and waits).
    streaming: bool,
}

/// A response body with nothing to send yet.
struct Silent;

impl http_body::Body for Silent {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, tonic::Status>>> {
        Poll::Pending
    }
}

impl Service<http::Request<()>> for Stalled {
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<http::Response<Body>, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<()>) -> Self::Future {
        self.reached.notify_one();
        if self.streaming {
            return Box::pin(std::future::ready(Ok(http::Response::new(Body::new(
                Silent,
            )))));
        }
        Box::pin(std::future::pending())
    }
}

/// A layer over [`Stalled`] whose refusals are collected.
fn stalled_service(
    federation: &Federation,
    streaming: bool,
) -> (
    Authorize<Stalled>,
    Arc<tokio::sync::Notify>,
    Arc<Mutex<Vec<RefusalReason>>>,
) {
    let refused = Arc::new(Mutex::new(Vec::new()));
    let heard = refused.clone();
    let layer = AuthorizationLayer::new(
        Arc::new(federation.authorizer(generous())),
        Arc::new(move |call: &RefusedCall| heard.lock().unwrap().push(call.refusal.reason)),
    );
    let reached = Arc::new(tokio::sync::Notify::new());
    let service = layer.layer(Stalled {
        reached: reached.clone(),
        streaming,
    });
    (service, reached, refused)
}

async fn open_call(mut service: Authorize<Stalled>, peer: PeerInfo) -> http::Response<Body> {
    let mut request = http::Request::builder()
        .uri("/cohort.federation.v1.Federation/PollTask")
        .body(())
        .unwrap();
    request.extensions_mut().insert(peer);
    std::future::poll_fn(|cx| service.poll_ready(cx))
        .await
        .unwrap();
    service.call(request).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_open_call_ends_when_its_certificate_is_revoked() {
    let federation = Federation::new();
    let (service, reached, refused) = stalled_service(&federation, false);
    let node = federation.peer(Role::Node, "hospital-a");
    let other = federation.peer(Role::Node, "hospital-b");
    let mut open = tokio::spawn(open_call(service, node.clone()));
    // Admitted: the handler has the call.
    reached.notified().await;

    // Another member's revocation leaves it open (virtual time: many
    // re-checks pass at once).
    federation.revoke(&[&other]);
    let still_open = tokio::time::timeout(in_flight::RECHECK * 20, &mut open).await;
    assert!(still_open.is_err(), "the call ended without its revocation");

    federation.revoke(&[&other, &node]);
    let response = tokio::time::timeout(in_flight::RECHECK * 2, open)
        .await
        .expect("the revocation ends the open call within a re-check")
        .unwrap();
    assert_eq!(refusal_of(&response), Some("certificate-revoked"));
    assert_eq!(
        *refused.lock().unwrap(),
        vec![RefusalReason::CertificateRevoked]
    );
}

#[tokio::test(start_paused = true)]
async fn an_open_stream_ends_with_the_refusal_in_its_trailers() {
    use http_body::Body as _;
    let federation = Federation::new();
    let (service, _, refused) = stalled_service(&federation, true);
    let node = federation.peer(Role::Node, "hospital-a");
    let response = open_call(service, node.clone()).await;
    assert_eq!(refusal_of(&response), None, "the stream was admitted");
    let mut body = response.into_body();

    federation.revoke(&[&node]);
    let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx));
    let frame = tokio::time::timeout(in_flight::RECHECK * 2, next)
        .await
        .expect("the revocation ends the open stream within a re-check")
        .expect("a frame")
        .expect("not an error");
    let trailers = frame
        .into_trailers()
        .expect("the stream ends with trailers");
    assert_eq!(trailers.get("grpc-status").unwrap(), "7");
    assert_eq!(
        trailers.get(REFUSAL_METADATA).unwrap(),
        "certificate-revoked"
    );
    let end = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await;
    assert!(end.is_none(), "nothing after the trailers");
    assert_eq!(
        *refused.lock().unwrap(),
        vec![RefusalReason::CertificateRevoked]
    );
}
