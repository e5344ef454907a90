//! Why a Cohort server refused a call, as a machine-readable code.
//!
//! A refusal's gRPC status carries, besides its code and human message, the
//! metadata entry [`REFUSAL_METADATA`] = one [`RefusalReason`] (in the manner
//! of `google.rpc.ErrorInfo`'s `reason`: a short stable identifier in the
//! `cohort` domain). Clients decide what to do from that reason
//! ([`RefusalReason::of`], [`RefusalReason::is_permanent`]), never from the
//! message text, which may be reworded at any time.

use std::fmt;

/// The gRPC metadata key whose value is a refusal's [`RefusalReason`] code.
pub const REFUSAL_METADATA: &str = "cohort-refusal";

/// Why a call was refused, as the refusing server's code says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// The connection carries no verified client certificate.
    NoClientCertificate,
    /// The server offers no such gRPC service to anyone.
    ServiceNotOffered,
    /// The caller's certificate role may not use this service.
    WrongRole,
    /// The caller's certificate is on the federation's revocation list.
    CertificateRevoked,
    /// The revocation list could not be read: every call is refused until it
    /// can be (failing closed), so retrying later may succeed.
    RevocationListUnreadable,
    /// The caller exceeded its per-identity request rate; retry later.
    RateLimited,
    /// The request speaks a protocol version the server does not.
    ProtocolVersionUnsupported,
    /// The request names another federation than the server's.
    WrongFederation,
    /// The request claims another identity than its certificate's.
    IdentityMismatch,
    /// The requester already has as many predictions in flight as it may;
    /// retry once one ends.
    TooManyInFlight,
    /// The requester has used its whole query budget on this node.
    QueryBudgetExhausted,
    /// The model version asked for was withdrawn: an erasure request
    /// tainted it.
    ModelWithdrawn,
    /// The coordinator answering is a standby: another holds the lease and
    /// runs the federation; try the next coordinator address.
    NotActive,
    /// The node's model was built from another model descriptor than the
    /// federation's.
    ModelMismatch,
}

impl RefusalReason {
    /// Every reason, for tests and documentation.
    pub const ALL: [Self; 14] = [
        Self::NoClientCertificate,
        Self::ServiceNotOffered,
        Self::WrongRole,
        Self::CertificateRevoked,
        Self::RevocationListUnreadable,
        Self::RateLimited,
        Self::ProtocolVersionUnsupported,
        Self::WrongFederation,
        Self::IdentityMismatch,
        Self::TooManyInFlight,
        Self::QueryBudgetExhausted,
        Self::ModelWithdrawn,
        Self::NotActive,
        Self::ModelMismatch,
    ];

    /// The code sent under [`REFUSAL_METADATA`].
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoClientCertificate => "no-client-certificate",
            Self::ServiceNotOffered => "service-not-offered",
            Self::WrongRole => "wrong-role",
            Self::CertificateRevoked => "certificate-revoked",
            Self::RevocationListUnreadable => "revocation-list-unreadable",
            Self::RateLimited => "rate-limited",
            Self::ProtocolVersionUnsupported => "protocol-version-unsupported",
            Self::WrongFederation => "wrong-federation",
            Self::IdentityMismatch => "identity-mismatch",
            Self::TooManyInFlight => "too-many-in-flight",
            Self::QueryBudgetExhausted => "query-budget-exhausted",
            Self::ModelWithdrawn => "model-withdrawn",
            Self::NotActive => "not-active",
            Self::ModelMismatch => "model-mismatch",
        }
    }

    /// The reason whose code is `code`, if any.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == code)
    }

    /// Whether the same caller asking again, unchanged, will be refused again:
    /// its certificate, protocol or federation is wrong, not its timing.
    pub fn is_permanent(self) -> bool {
        !matches!(
            self,
            Self::RevocationListUnreadable
                | Self::RateLimited
                | Self::TooManyInFlight
                | Self::NotActive
        )
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: its machine-readable reason and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({reason})")]
pub struct Refusal {
    /// Why, for programs.
    pub reason: RefusalReason,
    /// Why, for people (may be reworded; never match on it).
    pub message: String,
}

impl Refusal {
    /// A refusal for `reason`, explained by `message`.
    pub fn new(reason: RefusalReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

#[cfg(any(feature = "acceptor", feature = "connector"))]
mod status {
    use tonic::metadata::MetadataValue;
    use tonic::{Code, Status};

    use super::{REFUSAL_METADATA, Refusal, RefusalReason};

    impl RefusalReason {
        /// The gRPC status code a refusal for this reason is sent with.
        pub fn code(self) -> Code {
            match self {
                Self::NoClientCertificate => Code::Unauthenticated,
                Self::ServiceNotOffered => Code::Unimplemented,
                Self::WrongRole | Self::CertificateRevoked | Self::IdentityMismatch => {
                    Code::PermissionDenied
                }
                Self::RevocationListUnreadable | Self::NotActive => Code::Unavailable,
                Self::RateLimited | Self::TooManyInFlight | Self::QueryBudgetExhausted => {
                    Code::ResourceExhausted
                }
                Self::ProtocolVersionUnsupported
                | Self::WrongFederation
                | Self::ModelWithdrawn
                | Self::ModelMismatch => Code::FailedPrecondition,
            }
        }

        /// The reason a refusal's status carries, if it carries one we know.
        pub fn of(status: &Status) -> Option<Self> {
            let code = status.metadata().get(REFUSAL_METADATA)?.to_str().ok()?;
            Self::from_code(code)
        }
    }

    impl From<Refusal> for Status {
        fn from(refusal: Refusal) -> Self {
            let mut status = Status::new(refusal.reason.code(), refusal.message);
            status.metadata_mut().insert(
                REFUSAL_METADATA,
                MetadataValue::from_static(refusal.reason.as_str()),
            );
            status
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_distinct_code_that_parses_back() {
        let codes: std::collections::BTreeSet<&str> =
            RefusalReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(codes.len(), RefusalReason::ALL.len());
        for reason in RefusalReason::ALL {
            assert_eq!(RefusalReason::from_code(reason.as_str()), Some(reason));
        }
        assert_eq!(RefusalReason::from_code("revoked, probably"), None);
    }

    #[cfg(any(feature = "acceptor", feature = "connector"))]
    #[test]
    fn a_refusal_travels_in_its_status_and_is_read_back_without_the_message() {
        let status = tonic::Status::from(Refusal::new(
            RefusalReason::CertificateRevoked,
            "reworded at will",
        ));
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            RefusalReason::of(&status),
            Some(RefusalReason::CertificateRevoked)
        );
        assert_eq!(
            RefusalReason::of(&tonic::Status::permission_denied("revoked")),
            None
        );
    }
}
