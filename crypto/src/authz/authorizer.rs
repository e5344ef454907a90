//! The decision: which caller may call which service, now.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::rate::{RequestRate, RequestRateLimiter};
use super::{Caller, Refusal, RefusalReason, RevocationList, ServingDeadline};
use crate::identity::{PeerIdentity, Role};
use crate::tls::acceptor::PeerInfo;

/// Which certificate role each gRPC service of a server admits. A service
/// not listed is offered to nobody (default deny): a service added to the
/// server but not to its policy refuses every call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Full gRPC service name (`cohort.audit.v1.Audit`) → who is admitted.
    services: BTreeMap<String, Admitted>,
}

/// Who a service admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admitted {
    /// Certificates of this role only.
    Role(Role),
    /// A certificate of any role of the federation's CA (the health service).
    AnyMember,
}

impl AccessPolicy {
    /// A policy that admits nobody to anything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Admits certificates of `role`, and only those, to `service` (its full
    /// gRPC name, the generated server's `NamedService::NAME`).
    pub fn admit(mut self, service: &str, role: Role) -> Self {
        self.services
            .insert(service.to_owned(), Admitted::Role(role));
        self
    }

    /// Admits a certificate of any role to `service`: meant for
    /// `grpc.health.v1.Health` alone, which tells only whether the server
    /// serves. Mutual TLS, the revocation list and the request rate still
    /// apply; no other service is opened by it.
    pub fn admit_any_member(mut self, service: &str) -> Self {
        self.services
            .insert(service.to_owned(), Admitted::AnyMember);
        self
    }

    /// Who is admitted to the service of a request path
    /// (`/package.Service/Method`), if the service is offered.
    fn admitted_to(&self, path: &str) -> Option<Admitted> {
        let service = path.strip_prefix('/')?.split('/').next()?;
        self.services.get(service).copied()
    }
}

/// Decides each call (see [`super`]): the caller's certificate role must be
/// the one the service admits, its certificate must not be revoked now, and
/// it must be within its request rate.
#[derive(Debug)]
pub struct Authorizer {
    policy: AccessPolicy,
    revocations: Arc<RevocationList>,
    limiter: RequestRateLimiter,
    deadline: Option<ServingDeadline>,
}

impl Authorizer {
    /// Applies `policy`, consulting `revocations` on every call and limiting
    /// each identity to `rate`.
    pub fn new(policy: AccessPolicy, revocations: Arc<RevocationList>, rate: RequestRate) -> Self {
        Self {
            policy,
            revocations,
            limiter: RequestRateLimiter::new(rate),
            deadline: None,
        }
    }

    /// Refuses every call as not-active once `deadline` has passed (a
    /// coordinator no longer sure to hold its lease).
    pub fn serving_until(mut self, deadline: ServingDeadline) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The revocation list consulted.
    pub fn revocations(&self) -> &Arc<RevocationList> {
        &self.revocations
    }

    /// The caller of a call to `path` from `peer` (the verified identity of
    /// its connection, `None` without one), or why it is refused.
    pub fn authorize(&self, path: &str, peer: Option<&PeerInfo>) -> Result<Caller, Refusal> {
        if self
            .deadline
            .as_ref()
            .is_some_and(ServingDeadline::has_passed)
        {
            return Err(Refusal::new(
                RefusalReason::NotActive,
                "this server is no longer sure to hold its role: try another address",
            ));
        }
        let Some(peer) = peer else {
            return Err(Refusal::new(
                RefusalReason::NoClientCertificate,
                "no verified client certificate",
            ));
        };
        let Some(admitted) = self.policy.admitted_to(path) else {
            return Err(Refusal::new(
                RefusalReason::ServiceNotOffered,
                format!("this server offers no service for {path}"),
            ));
        };
        if let Admitted::Role(role) = admitted
            && peer.identity.role() != role
        {
            return Err(Refusal::new(
                RefusalReason::WrongRole,
                format!(
                    "{} may not call {path}: the service admits {role} certificates only",
                    peer.identity
                ),
            ));
        }
        self.check_revocation(&peer.identity, &peer.certificate_sha256)?;
        self.limiter.check(&peer.identity)?;
        Ok(Caller::authorized(peer))
    }

    /// Whether the certificate of `identity` with fingerprint
    /// `certificate_sha256` may still be served (on each call, and while one
    /// stays open: [`super::in_flight`]).
    pub(crate) fn check_revocation(
        &self,
        identity: &PeerIdentity,
        certificate_sha256: &str,
    ) -> Result<(), Refusal> {
        match self.revocations.is_revoked(certificate_sha256) {
            Ok(false) => Ok(()),
            Ok(true) => Err(Refusal::new(
                RefusalReason::CertificateRevoked,
                format!("the certificate of {identity} ({certificate_sha256}) was revoked"),
            )),
            Err(error) => {
                tracing::error!(%error, "refusing every call until the revocation list reads");
                Err(Refusal::new(
                    RefusalReason::RevocationListUnreadable,
                    "this server cannot read its revocation list; retry later",
                ))
            }
        }
    }
}
