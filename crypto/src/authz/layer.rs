//! The tower layer that puts the [`Authorizer`] in front of a whole gRPC
//! server, before routing: every call of every service it serves, present
//! or future, is decided by it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;
use tower::{Layer, Service};

use super::in_flight::{CutOnRevocation, RevocationWatch};
use super::{Authorizer, Refusal};
use crate::tls::acceptor::PeerInfo;

/// A refused call, for the server's own refusal log.
#[derive(Debug, Clone)]
pub struct RefusedCall {
    /// The caller's verified connection, if it had one.
    pub peer: Option<PeerInfo>,
    /// The request path (`/package.Service/Method`).
    pub path: String,
    /// Why it was refused.
    pub refusal: Refusal,
}

/// Hears of every call the layer refuses.
pub type RefusalObserver = Arc<dyn Fn(&RefusedCall) + Send + Sync>;

/// Wraps a gRPC server's routes in [`Authorize`] (give it to
/// `tonic::transport::Server::builder().layer(…)`).
#[derive(Clone)]
pub struct AuthorizationLayer {
    authorizer: Arc<Authorizer>,
    observer: RefusalObserver,
}

impl std::fmt::Debug for AuthorizationLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationLayer")
            .field("authorizer", &self.authorizer)
            .finish_non_exhaustive()
    }
}

impl AuthorizationLayer {
    /// Decides calls with `authorizer`; `observer` hears of each refusal
    /// (which the layer also traces).
    pub fn new(authorizer: Arc<Authorizer>, observer: RefusalObserver) -> Self {
        Self {
            authorizer,
            observer,
        }
    }
}

impl<S> Layer<S> for AuthorizationLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Authorize<S> {
        Authorize {
            inner,
            authorizer: self.authorizer.clone(),
            observer: self.observer.clone(),
        }
    }
}

/// A gRPC service behind the [`Authorizer`]: an authorized call reaches the
/// inner service with its [`super::Caller`] in the request's extensions, and
/// is ended with a refusal if its certificate is revoked while it is open
/// ([`super::in_flight`]); a refused one is answered with its [`Refusal`]'s
/// status and never reaches it.
#[derive(Clone)]
pub struct Authorize<S> {
    inner: S,
    authorizer: Arc<Authorizer>,
    observer: RefusalObserver,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Authorize<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorize")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

type ResponseFuture<E> = Pin<Box<dyn Future<Output = Result<http::Response<Body>, E>> + Send>>;

impl<S, B> Service<http::Request<B>> for Authorize<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let peer = request.extensions().get::<PeerInfo>().cloned();
        let report = Reporter {
            observer: self.observer.clone(),
            peer: peer.clone(),
            path: request.uri().path().to_owned(),
        };
        let caller = match self.authorizer.authorize(&report.path, peer.as_ref()) {
            Ok(caller) => caller,
            Err(refusal) => return Box::pin(std::future::ready(Ok(report.refuse(refusal)))),
        };
        let watch = RevocationWatch::new(self.authorizer.clone(), caller.clone());
        request.extensions_mut().insert(caller);
        // The clone that was polled ready serves; a fresh clone waits for the
        // next call (tower's usual hand-over).
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        Box::pin(serve_until_revoked(ready, request, watch, report))
    }
}

/// Serves an admitted call, ending it with the refusal if its certificate
/// is revoked while it is open (see [`super::in_flight`]).
async fn serve_until_revoked<S, B>(
    mut ready: S,
    request: http::Request<B>,
    watch: RevocationWatch,
    report: Reporter,
) -> Result<http::Response<Body>, S::Error>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
{
    let response = tokio::select! {
        response = ready.call(request) => response?,
        refusal = watch.until_revoked() => return Ok(report.refuse(refusal)),
    };
    Ok(response.map(|body| {
        let on_cut = Box::new(move |refusal| report.report(refusal));
        Body::new(CutOnRevocation::new(body, watch, on_cut))
    }))
}

/// Traces a refused call and tells the server's observer.
struct Reporter {
    observer: RefusalObserver,
    peer: Option<PeerInfo>,
    path: String,
}

impl Reporter {
    /// Reports `refusal` and answers the call with it.
    fn refuse(&self, refusal: Refusal) -> http::Response<Body> {
        self.report(refusal.clone());
        Status::from(refusal).into_http()
    }

    fn report(&self, refusal: Refusal) {
        let refused = RefusedCall {
            peer: self.peer.clone(),
            path: self.path.clone(),
            refusal,
        };
        tracing::warn!(
            peer = ?refused.peer.as_ref().map(|p| p.identity.to_string()),
            path = %refused.path,
            reason = %refused.refusal.reason,
            message = %refused.refusal.message,
            "call refused"
        );
        (self.observer)(&refused);
    }
}
