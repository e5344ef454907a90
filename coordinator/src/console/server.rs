//! Where the console listens and who it lets in: plain HTTP on a loopback
//! address; anywhere else, TLS 1.3 with the coordinator's certificate and a
//! required client certificate of the federation's CA (the mutual-TLS
//! acceptor of the gRPC APIs, [`cohort_crypto::tls::acceptor`]), whose role
//! each page checks ([`Admitted`]) along with the revocation list.

use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::serve::{IncomingStream, Listener};
use cohort_crypto::Role;
use cohort_crypto::authz::RevocationList;
use cohort_crypto::tls::acceptor::{PeerInfo, PeerStream, mutual_tls_incoming};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::Console;

/// Who is on the other end of a console connection.
#[derive(Debug, Clone)]
pub struct Visitor {
    /// Their address.
    pub remote_addr: SocketAddr,
    /// Their verified certificate (TLS only; `None` on loopback).
    pub peer: Option<PeerInfo>,
}

impl Connected<IncomingStream<'_, LoopbackListener>> for Visitor {
    fn connect_info(stream: IncomingStream<'_, LoopbackListener>) -> Self {
        stream.remote_addr().clone()
    }
}

impl Connected<IncomingStream<'_, CertifiedListener>> for Visitor {
    fn connect_info(stream: IncomingStream<'_, CertifiedListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// Plain TCP on loopback: every visitor is anonymous.
#[derive(Debug)]
pub struct LoopbackListener(pub TcpListener);

impl Listener for LoopbackListener {
    type Io = TcpStream;
    type Addr = Visitor;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, remote_addr) = Listener::accept(&mut self.0).await;
        let peer = None;
        (stream, Visitor { remote_addr, peer })
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        let remote_addr = self.0.local_addr()?;
        Ok(Visitor {
            remote_addr,
            peer: None,
        })
    }
}

/// Mutually authenticated TLS connections, each with the identity in its
/// client certificate (handshakes that fail never reach the router).
#[derive(Debug)]
pub struct CertifiedListener {
    incoming: ReceiverStream<io::Result<PeerStream>>,
    local_addr: SocketAddr,
}

impl CertifiedListener {
    /// Accepts on `listener` with `tls`, at most `max_connections` at once.
    pub fn new(
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        max_connections: usize,
    ) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let incoming = mutual_tls_incoming(listener, tls, max_connections, |remote, reason| {
            tracing::warn!(%remote, %reason, "console refused a TLS connection");
        });
        Ok(Self {
            incoming,
            local_addr,
        })
    }
}

impl Listener for CertifiedListener {
    type Io = PeerStream;
    type Addr = Visitor;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.incoming.next().await {
                Some(Ok(stream)) => {
                    let peer = tonic::transport::server::Connected::connect_info(&stream);
                    let remote_addr = peer.remote_addr;
                    let peer = Some(peer);
                    return (stream, Visitor { remote_addr, peer });
                }
                Some(Err(error)) => tracing::warn!(%error, "console accept failed"),
                // The acceptor is gone: accept nothing more.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(Visitor {
            remote_addr: self.local_addr,
            peer: None,
        })
    }
}

/// The coordinator's server TLS configuration for browsers: as the gRPC
/// API's (TLS 1.3, client certificate of the federation's CA required), but
/// speaking HTTP/1.1.
pub fn browser_tls(grpc: &rustls::ServerConfig) -> Arc<rustls::ServerConfig> {
    let mut tls = grpc.clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(tls)
}

/// Who may see what.
#[derive(Debug)]
pub enum Gate {
    /// On loopback: whoever can reach the address (the host's users).
    Loopback,
    /// Off loopback: certificates of the admitted roles, not revoked.
    Certificates {
        /// The federation's live revocation list.
        revocations: Arc<RevocationList>,
    },
}

/// Which pages a visitor asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The federation at a glance: operators and auditors.
    Operators,
    /// The audit log, lineage, erasures and export: auditors only.
    Auditors,
}

impl Audience {
    fn admits(self, role: Role) -> bool {
        match self {
            Self::Operators => matches!(role, Role::Operator | Role::Auditor),
            Self::Auditors => role == Role::Auditor,
        }
    }
}

impl Gate {
    /// Lets `visitor` in to `audience`'s pages, or says why not (403; 503
    /// while the revocation list cannot be read).
    pub fn admit(&self, visitor: &Visitor, audience: Audience) -> Result<(), (StatusCode, String)> {
        let Self::Certificates { revocations } = self else {
            return Ok(());
        };
        let Some(peer) = &visitor.peer else {
            return Err((StatusCode::FORBIDDEN, "no client certificate".into()));
        };
        if !audience.admits(peer.identity.role()) {
            let message = format!("{} may not read these pages", peer.identity);
            return Err((StatusCode::FORBIDDEN, message));
        }
        match revocations.is_revoked(&peer.certificate_sha256) {
            Ok(false) => Ok(()),
            Ok(true) => Err((
                StatusCode::FORBIDDEN,
                format!("the certificate of {} was revoked", peer.identity),
            )),
            Err(error) => {
                tracing::error!(%error, "console refuses every page until the revocation list reads");
                Err((
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the revocation list cannot be read; retry later".into(),
                ))
            }
        }
    }
}

/// The audience of a page, as a type (see [`Admitted`]).
pub trait PageAudience: Send {
    /// Who the page is for.
    const AUDIENCE: Audience;
}

/// The operator pages' audience.
#[derive(Debug)]
pub struct ForOperators;

impl PageAudience for ForOperators {
    const AUDIENCE: Audience = Audience::Operators;
}

/// The auditor pages' audience.
#[derive(Debug)]
pub struct ForAuditors;

impl PageAudience for ForAuditors {
    const AUDIENCE: Audience = Audience::Auditors;
}

/// Proof, taken by a handler, that the visitor may see `A`'s pages: its
/// extraction refuses everyone else.
#[derive(Debug)]
pub struct Admitted<A>(PhantomData<A>);

/// Proof that the visitor may see the operator pages.
pub type OperatorPass = Admitted<ForOperators>;

/// Proof that the visitor may see the auditor pages.
pub type AuditorPass = Admitted<ForAuditors>;

impl<A: PageAudience> FromRequestParts<Arc<Console>> for Admitted<A> {
    type Rejection = (StatusCode, String);

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let ConnectInfo(visitor) = ConnectInfo::<Visitor>::from_request_parts(parts, console)
            .await
            .map_err(|_| (StatusCode::FORBIDDEN, "unknown connection".to_owned()))?;
        if matches!(console.gate, Gate::Loopback) && !names_loopback(parts) {
            return Err((
                StatusCode::FORBIDDEN,
                "on loopback the console answers only to localhost, 127.0.0.1 or [::1]".into(),
            ));
        }
        console.gate.admit(&visitor, A::AUDIENCE)?;
        Ok(Self(PhantomData))
    }
}

/// Whether the request's `Host` names the loopback interface. A web page
/// the operator opens can point a name of its own at 127.0.0.1 (DNS
/// rebinding) and read the console as same-origin; its requests then carry
/// that name, which this refuses.
fn names_loopback(parts: &Parts) -> bool {
    let Some(host) = parts
        .headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    matches!(name, "localhost" | "127.0.0.1" | "::1")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.

    use cohort_crypto::PeerIdentity;

    use super::*;

    fn visitor(role: Option<Role>) -> Visitor {
        let peer = role.map(|role| PeerInfo {
            identity: PeerIdentity::new(role, "someone").unwrap(),
            remote_addr: "192.0.2.1:443".parse().unwrap(),
            certificate_sha256: "00".repeat(32),
            certificate: Arc::from(&[][..]),
        });
        Visitor {
            remote_addr: "192.0.2.1:443".parse().unwrap(),
            peer,
        }
    }

    fn certificates() -> Gate {
        Gate::Certificates {
            revocations: Arc::new(RevocationList::none()),
        }
    }

    #[test]
    fn operators_see_operator_pages_and_auditors_see_both() {
        let gate = certificates();
        let operator = visitor(Some(Role::Operator));
        let auditor = visitor(Some(Role::Auditor));
        assert!(gate.admit(&operator, Audience::Operators).is_ok());
        assert!(gate.admit(&auditor, Audience::Operators).is_ok());
        assert!(gate.admit(&auditor, Audience::Auditors).is_ok());
        let refused = gate.admit(&operator, Audience::Auditors).unwrap_err();
        assert_eq!(refused.0, StatusCode::FORBIDDEN);
    }

    #[test]
    fn other_roles_and_anonymous_visitors_are_refused_off_loopback() {
        let gate = certificates();
        for role in [
            None,
            Some(Role::Node),
            Some(Role::Requester),
            Some(Role::Coordinator),
        ] {
            for audience in [Audience::Operators, Audience::Auditors] {
                let refused = gate.admit(&visitor(role), audience).unwrap_err();
                assert_eq!(refused.0, StatusCode::FORBIDDEN, "{role:?} {audience:?}");
            }
        }
        // On loopback the host is trusted: the same visitors get in.
        assert!(
            Gate::Loopback
                .admit(&visitor(None), Audience::Auditors)
                .is_ok()
        );
    }
}
