//! Revocation reaches calls already open: a node's long poll, an upload, a
//! model download or a health watch of a certificate revoked while the call
//! runs ends with the same `certificate-revoked` refusal a new call gets.
//!
//! The [`Authorizer`] decides a call once, when it arrives. A call can then
//! stay open for minutes (long polls, streams), and a stolen key's holder
//! would keep it open on purpose. So every admitted call carries a
//! [`RevocationWatch`] of its certificate, which re-checks the list every
//! [`RECHECK`] while the call is open:
//! - until the handler answers, the handler's future races the watch
//!   ([`RevocationWatch::until_revoked`]); the watch winning drops the
//!   handler (tokio cancels it) and answers with the refusal;
//! - after it, the response body ([`CutOnRevocation`]) checks at each frame
//!   and each [`RECHECK`] tick, and on a revocation ends the stream with the
//!   refusal in its trailers.
//!
//! A check is one `stat` of the list file ([`super::RevocationList`]), under
//! the list's lock: 1000 open long polls cost about 4000 `stat`s a second. A
//! list that cannot be read does not cut open calls (new ones are refused): a
//! half-written file must not end every stream of every member.
//!
//! Limits: the body checks only when the server polls it, which HTTP/2 flow
//! control stops while the client grants no window; a revoked client that
//! stops reading keeps its stream (receiving nothing more) until it reads or
//! the connection closes. Work a handler already spawned (an encrypted
//! prediction in progress) runs to its end. The TLS connection itself stays
//! open; every call on it is refused.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http::{self, HeaderMap};

use super::{Authorizer, Caller, Refusal, RefusalReason};

/// How often an open call re-checks its certificate: a revocation ends it
/// within this long of the list changing.
pub const RECHECK: Duration = Duration::from_millis(250);

/// One open call's certificate, to re-check against the revocation list.
#[derive(Clone)]
pub struct RevocationWatch {
    authorizer: Arc<Authorizer>,
    caller: Caller,
}

impl std::fmt::Debug for RevocationWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationWatch")
            .field("caller", self.caller.identity())
            .finish_non_exhaustive()
    }
}

impl RevocationWatch {
    /// Watches `caller`'s certificate with `authorizer`'s list.
    pub(crate) fn new(authorizer: Arc<Authorizer>, caller: Caller) -> Self {
        Self { authorizer, caller }
    }

    /// The refusal, if the certificate is revoked now (an unreadable list
    /// does not count: see the module docs).
    fn revoked_now(&self) -> Option<Refusal> {
        let caller = &self.caller;
        match (self.authorizer).check_revocation(caller.identity(), caller.certificate_sha256()) {
            Err(refusal) if refusal.reason == RefusalReason::CertificateRevoked => Some(refusal),
            _ => None,
        }
    }

    /// Resolves, with the refusal, once the certificate is revoked.
    pub(crate) async fn until_revoked(&self) -> Refusal {
        let mut recheck = recheck();
        loop {
            recheck.tick().await;
            if let Some(refusal) = self.revoked_now() {
                return refusal;
            }
        }
    }
}

fn recheck() -> Interval {
    let mut interval = tokio::time::interval_at(Instant::now() + RECHECK, RECHECK);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

/// A gRPC status as trailers: what ends a stream that already sent headers.
pub(crate) fn trailers(status: Status) -> HeaderMap {
    let (mut parts, ()) = status.into_http::<()>().into_parts();
    parts.headers.remove(http::header::CONTENT_TYPE);
    parts.headers
}

/// A response body that ends, with the refusal in its trailers, once its
/// call's certificate is revoked.
pub struct CutOnRevocation {
    inner: Body,
    watch: RevocationWatch,
    recheck: Interval,
    /// Called once, with the refusal, when the body is cut.
    on_cut: Option<Box<dyn FnOnce(Refusal) + Send>>,
    /// The stream is over: the refusal's trailers, or the inner body's end
    /// or trailers, were sent.
    cut: bool,
}

impl std::fmt::Debug for CutOnRevocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CutOnRevocation")
            .field("watch", &self.watch)
            .field("cut", &self.cut)
            .finish_non_exhaustive()
    }
}

impl CutOnRevocation {
    /// Wraps `inner`, calling `on_cut` when it cuts it.
    pub(crate) fn new(
        inner: Body,
        watch: RevocationWatch,
        on_cut: Box<dyn FnOnce(Refusal) + Send>,
    ) -> Self {
        Self {
            inner,
            watch,
            recheck: recheck(),
            on_cut: Some(on_cut),
            cut: false,
        }
    }

    /// Whether the watch fired (at a tick now due, or at this frame).
    fn revoked(&mut self, cx: &mut Context<'_>) -> Option<Refusal> {
        // Drain due ticks so the timer wakes this body at the next one.
        while self.recheck.poll_tick(cx).is_ready() {}
        self.watch.revoked_now()
    }
}

impl http_body::Body for CutOnRevocation {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        // Every field is Unpin (tonic's Body boxes its stream).
        let this = self.get_mut();
        if this.cut {
            return Poll::Ready(None);
        }
        if let Some(refusal) = this.revoked(cx) {
            this.cut = true;
            let status = Status::from(refusal.clone());
            if let Some(on_cut) = this.on_cut.take() {
                on_cut(refusal);
            }
            return Poll::Ready(Some(Ok(Frame::trailers(trailers(status)))));
        }
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        // After the inner stream's end or trailers nothing more may follow.
        if let Poll::Ready(None) = &frame {
            this.cut = true;
        }
        if let Poll::Ready(Some(Ok(frame))) = &frame
            && frame.is_trailers()
        {
            this.cut = true;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.cut || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
