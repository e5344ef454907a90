//! Who may call the coordinator's APIs, and what a refusal costs.
//!
//! Callers are decided by the one authorization layer of every Cohort server
//! ([`cohort_crypto::authz`]; its module docs state the threat model): the
//! training API admits `cohort://node/…` certificates only, the auditor API
//! `cohort://auditor/…` only, the gRPC health service a certificate of any
//! role (it tells only whether the coordinator serves); revoked certificates
//! are refused on every call (the list is re-read when its file changes),
//! and each identity has a request rate. [`policy`] is the coordinator's table; [`authorizer`]
//! builds the layer's decision.
//!
//! Every refusal — the layer's and the handlers' — goes into the audit log
//! through a bounded queue (`crate::audit::refusals`), so that a flood of
//! refusals costs neither a flush each nor unbounded memory; so does each
//! revocation the live list picks up.

use std::sync::Arc;

use cohort_crypto::Role;
use cohort_crypto::authz::{
    AccessPolicy, Authorizer, RefusalObserver, RefusedCall, RequestRate, RevocationList,
    RevocationListUnreadable,
};
use cohort_crypto::health::HEALTH_SERVICE;
use cohort_proto::audit_v1::audit_server::AuditServer;
use cohort_proto::v1::federation_server::FederationServer;
use tonic::Status;
use tonic::server::NamedService;

use super::FederationService;
use super::auditor::AuditService;
use crate::audit::AuditEvent;
use crate::audit::refusals::{RefusalQueue, RefusalWriter};
use crate::config::ServerConfig;
use crate::observability::live::{RefusalCounts, RefusalSource};

/// The coordinator's own gRPC services (their full names), which the health
/// service reports on besides the whole server.
pub const SERVICES: [&str; 2] = [
    <FederationServer<FederationService> as NamedService>::NAME,
    <AuditServer<AuditService> as NamedService>::NAME,
];

/// The coordinator's services and the one role each admits; the health
/// service (`grpc.health.v1.Health`) admits a certificate of any role of the
/// federation's CA, so that any member's probe may ask whether it serves.
pub fn policy() -> AccessPolicy {
    AccessPolicy::new()
        .admit(SERVICES[0], Role::Node)
        .admit(SERVICES[1], Role::Auditor)
        .admit_any_member(HEALTH_SERVICE)
}

/// The revocation list of `config` (none configured: nothing revoked), live,
/// with each revocation it picks up while serving logged to `refusals`.
pub fn revocations(
    config: &ServerConfig,
    refusals: &Arc<RefusalLog>,
) -> Result<RevocationList, RevocationListUnreadable> {
    let Some(path) = &config.revocation_list else {
        return Ok(RevocationList::none());
    };
    let refusals = refusals.clone();
    Ok(
        RevocationList::watch(path, &config.ca_certificate)?.observe(Box::new(move |added| {
            for certificate_sha256 in added {
                tracing::warn!(%certificate_sha256, "certificate revoked while serving");
                refusals.log(AuditEvent::CertificateRevoked {
                    certificate_sha256: certificate_sha256.clone(),
                });
            }
        })),
    )
}

/// The decision of the coordinator's authorization layer: [`policy`],
/// `revocations`, and the configured per-identity request rate.
pub fn authorizer(config: &ServerConfig, revocations: Arc<RevocationList>) -> Authorizer {
    let rate = RequestRate::new(config.requests_per_second, config.request_burst);
    Authorizer::new(policy(), revocations, rate)
}

/// The coordinator's refusals on their way into the audit log (see the
/// module docs). Holds nothing of the store, so a task that outlives the
/// coordinator (the TLS acceptor's) keeps no state open.
#[derive(Debug)]
pub struct RefusalLog {
    /// Refusals for the audit writer task (they cannot wait for a flush).
    refusals: RefusalQueue,
    /// Refusals counted for `/metrics`.
    counts: RefusalCounts,
}

impl RefusalLog {
    /// An empty log, and its writer (to be run).
    pub fn new() -> (Self, RefusalWriter) {
        let (refusals, writer) = RefusalQueue::new();
        let counts = RefusalCounts::default();
        (Self { refusals, counts }, writer)
    }

    /// Logs a refused request (and queues it for the audit log) and returns
    /// its status.
    pub fn refuse(&self, peer: &str, status: Status) -> Status {
        tracing::warn!(peer, code = ?status.code(), reason = status.message(), "request refused");
        let code = format!("{:?}", status.code());
        self.counts.refused(RefusalSource::Service, &code);
        self.log(AuditEvent::RequestRefused {
            peer: peer.to_owned(),
            code: format!("{:?}", status.code()),
            reason: status.message().to_owned(),
            count: 1,
        });
        status
    }

    /// The refusals counted so far, by source and reason (for `/metrics`).
    pub fn counts(&self) -> &RefusalCounts {
        &self.counts
    }

    /// Queues an event for the audit log without waiting. What is answered
    /// only once logged goes through `AuditLog::append` instead.
    pub fn log(&self, event: AuditEvent) {
        self.refusals.push(event);
    }

    /// What the authorization layer calls with each call it refuses: the
    /// refusal is queued for the audit log under the caller's identity (its
    /// address if it had none).
    pub fn observer(self: &Arc<Self>) -> RefusalObserver {
        let log = self.clone();
        Arc::new(move |refused: &RefusedCall| {
            let peer = match &refused.peer {
                Some(peer) => peer.identity.to_string(),
                None => "unidentified".to_owned(),
            };
            let status = Status::from(refused.refusal.clone());
            let reason = refused.refusal.reason.as_str();
            log.counts.refused(RefusalSource::Authorization, reason);
            log.log(AuditEvent::RequestRefused {
                peer,
                code: format!("{:?}", status.code()),
                reason: refused.refusal.to_string(),
                count: 1,
            });
        })
    }
}
