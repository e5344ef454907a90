//! Authorization: the one gate every Cohort gRPC server's calls pass — the
//! coordinator's training and auditor APIs and a node's encrypted-inference
//! service alike.
//!
//! **Threat model.** Mutual TLS ([`crate::tls`]) already keeps out anyone
//! without a certificate of the federation's CA. This layer stops the next
//! adversary: a peer that *holds a valid certificate* of that CA but must not
//! be served — one whose certificate was revoked (a stolen key, a member
//! that left), one of the wrong role (a node reading the audit log, an
//! auditor or requester submitting model updates, a node asking another
//! node for predictions), or a member flooding the server. It does not stop
//! a peer whose certificate is valid, of the right role and not revoked:
//! what such a caller may do is the handlers' business (header checks,
//! rounds, query budgets). It trusts the CA and the operator who writes the
//! revocation list.
//!
//! **How it holds by construction.**
//! - [`AuthorizationLayer`] is a tower layer given to the server builder,
//!   so it wraps the server's routes: every call of every service, including
//!   RPCs and services added later, is decided before it is routed. A
//!   service not named in the server's [`AccessPolicy`] is refused to all.
//! - It decides with an [`Authorizer`]: the certificate's `cohort://` role
//!   must be the one the service admits; the certificate must not be on the
//!   [`RevocationList`], consulted on every call and re-read when its file
//!   changes (no restart), and re-checked while the call stays open, which
//!   a revocation ends ([`in_flight`]); the identity must be within its
//!   request rate ([`rate`]). A server that holds its role for a time only
//!   (a coordinator's lease) refuses every call as not-active once its
//!   [`ServingDeadline`] has passed.
//! - An admitted call carries a [`Caller`], which only the authorizer can
//!   make; handlers take their caller from [`Caller::of`], so a handler
//!   served without the layer refuses every call rather than serve one
//!   unchecked.
//! - Every refusal carries a [`RefusalReason`] in the status metadata
//!   [`REFUSAL_METADATA`], which clients match on instead of message text.
//!
//! The transport-free parts ([`RefusalReason`], [`RevocationList`]) are
//! always built; the rest needs the feature `acceptor`.

#[cfg(feature = "acceptor")]
mod authorizer;
#[cfg(feature = "acceptor")]
mod caller;
#[cfg(feature = "acceptor")]
mod deadline;
#[cfg(feature = "acceptor")]
pub mod in_flight;
#[cfg(feature = "acceptor")]
mod layer;
#[cfg(feature = "acceptor")]
pub mod rate;
mod refusal;
mod revocations;

#[cfg(feature = "acceptor")]
pub use authorizer::{AccessPolicy, Authorizer};
#[cfg(feature = "acceptor")]
pub use caller::Caller;
#[cfg(feature = "acceptor")]
pub use deadline::ServingDeadline;
#[cfg(feature = "acceptor")]
pub use layer::{AuthorizationLayer, Authorize, RefusalObserver, RefusedCall};
#[cfg(feature = "acceptor")]
pub use rate::{RequestRate, RequestRateLimiter};
pub use refusal::{REFUSAL_METADATA, Refusal, RefusalReason};
pub use revocations::{RACY_WINDOW, RevocationList, RevocationListUnreadable, RevocationObserver};

#[cfg(all(test, feature = "acceptor"))]
mod tests;
