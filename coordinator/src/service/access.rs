//! Who may call the coordinator's APIs, and what a refusal costs: revoked
//! certificates are refused on every request, each peer identity has a
//! request rate (see [`super::rate_limit`]), and every refusal goes into the
//! audit log through a bounded queue (`crate::audit::refusals`), so that a
//! flood of refusals costs neither a flush each nor unbounded memory.

use std::collections::BTreeSet;

use tonic::Status;

use super::rate_limit::RequestRateLimiter;
use crate::audit::AuditEvent;
use crate::audit::refusals::{RefusalQueue, RefusalWriter};

/// The service layer's admission rules and refusal log (see the module docs).
/// Holds nothing of the store, so a task that outlives the coordinator (the
/// TLS acceptor's) keeps no state open.
#[derive(Debug)]
pub struct AccessControl {
    /// Fingerprints (hex SHA-256) of revoked certificates.
    revoked: BTreeSet<String>,
    rate_limiter: RequestRateLimiter,
    /// Refusals for the audit writer task (they cannot wait for a flush).
    refusals: RefusalQueue,
}

impl AccessControl {
    /// Refuses the certificates in `revoked` and limits each peer to
    /// `rate_limiter`; returns the writer of its refusals, to be run.
    pub fn new(
        revoked: BTreeSet<String>,
        rate_limiter: RequestRateLimiter,
    ) -> (Self, RefusalWriter) {
        let (refusals, writer) = RefusalQueue::new();
        let access = Self {
            revoked,
            rate_limiter,
            refusals,
        };
        (access, writer)
    }

    /// Whether the certificate with this fingerprint (hex SHA-256) was revoked.
    pub fn is_revoked(&self, certificate_sha256: &str) -> bool {
        self.revoked.contains(certificate_sha256)
    }

    /// Counts one request of `peer` (a node id, or an auditor's identity)
    /// against its rate, or says why it is refused (for the caller to
    /// [`Self::refuse`]).
    pub fn check_rate(&self, peer: &str) -> Result<(), Status> {
        self.rate_limiter.check(peer)
    }

    /// Logs a refused request (and queues it for the audit log) and returns
    /// its status.
    pub fn refuse(&self, peer: &str, status: Status) -> Status {
        tracing::warn!(peer, code = ?status.code(), reason = status.message(), "request refused");
        self.log(AuditEvent::RequestRefused {
            peer: peer.to_owned(),
            code: format!("{:?}", status.code()),
            reason: status.message().to_owned(),
            count: 1,
        });
        status
    }

    /// Queues a refusal for the audit log without waiting. What is answered
    /// only once logged goes through `AuditLog::append` instead.
    pub fn log(&self, refusal: AuditEvent) {
        self.refusals.push(refusal);
    }
}
