//! Cohort's cryptography.
//!
//! - [`authz`]: the one authorization layer of every Cohort gRPC server: the
//!   caller's role, the live revocation list, per-identity rate limits, typed
//!   refusal reasons.
//! - `health` (feature `acceptor`): the standard gRPC health service
//!   (`grpc.health.v1`) that the coordinator and a node's inference server
//!   report NOT_SERVING / SERVING through.
//! - [`identity`]: who a peer is, read from the URI SAN of its certificate.
//! - [`pki`]: the federation's certificate authority: issuing node, auditor and
//!   coordinator certificates, with private keys written 0600.
//! - [`tls`]: the rustls configurations for mutual TLS 1.3, with the ring provider.
//! - [`secagg`]: secure aggregation (Bonawitz et al. 2017, in the SecAgg+ form of
//!   Bell et al. 2020): the coordinator learns the sum of the nodes' updates only.
//! - [`transparency`]: the audit log's cryptography after RFC 9162: Merkle tree,
//!   inclusion and consistency proofs, signed tree heads, subject pseudonyms.
//! - `he` (feature `he`): homomorphic-encryption inference with TFHE; a node
//!   evaluates its model on a requester's encrypted input.

#![warn(missing_docs)]

pub mod authz;
#[cfg(feature = "he")]
pub mod he;
#[cfg(feature = "acceptor")]
pub mod health;
pub mod identity;
pub mod pki;
pub mod secagg;
pub mod tls;
pub mod transparency;

pub use identity::{IdentityError, PeerIdentity, Role};
