//! Cohort's cryptography.
//!
//! - [`identity`]: who a peer is, read from the URI SAN of its certificate.
//! - [`pki`]: the federation's certificate authority: issuing node, auditor and
//!   coordinator certificates, with private keys written 0600.
//! - [`tls`]: the rustls configurations for mutual TLS 1.3, with the ring provider.

#[cfg(feature = "he")]
pub mod he;
pub mod identity;
pub mod pki;
pub mod secagg;
pub mod tls;
pub mod transparency;

pub use identity::{IdentityError, PeerIdentity, Role};
