//! The authorized caller a handler is given.

use std::net::SocketAddr;
use std::sync::Arc;

use tonic::{Request, Status};

use crate::identity::PeerIdentity;
use crate::tls::acceptor::PeerInfo;

/// A caller that passed the authorization layer: its certificate's identity,
/// of a role the service admits, not revoked, within its request rate.
///
/// Only [`super::Authorizer`] makes one (the fields are private and there is
/// no public constructor), and the layer puts it in the request; a handler
/// gets it with [`Caller::of`], so a handler served without the layer
/// refuses every call instead of serving an unchecked one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    identity: PeerIdentity,
    certificate_sha256: String,
    certificate: Arc<[u8]>,
    remote_addr: SocketAddr,
}

impl Caller {
    /// The caller of an authorized `peer`.
    pub(super) fn authorized(peer: &PeerInfo) -> Self {
        Self {
            identity: peer.identity.clone(),
            certificate_sha256: peer.certificate_sha256.clone(),
            certificate: peer.certificate.clone(),
            remote_addr: peer.remote_addr,
        }
    }

    /// The caller the authorization layer admitted for `request`. An
    /// `INTERNAL` error if there is none: the service is served without the
    /// layer, which is a bug, and no call is served unchecked.
    pub fn of<T>(request: &Request<T>) -> Result<Self, Status> {
        request.extensions().get::<Self>().cloned().ok_or_else(|| {
            tracing::error!("a call reached its handler without the authorization layer");
            Status::internal("this service is served without its authorization layer")
        })
    }

    /// The identity in the caller's certificate.
    pub fn identity(&self) -> &PeerIdentity {
        &self.identity
    }

    /// Hex SHA-256 of the caller's leaf certificate (DER).
    pub fn certificate_sha256(&self) -> &str {
        &self.certificate_sha256
    }

    /// The caller's leaf certificate (DER).
    pub fn certificate(&self) -> &Arc<[u8]> {
        &self.certificate
    }

    /// The caller's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }
}
