//! Cohort's node: its local data, the burn model, local training and evaluation,
//! and the client that talks to the coordinator; as a library, the node SDK.
//!
//! - [`sdk`]: bring any burn model: [`join`] a federation in one call.
//! - [`zoo`]: models built on the SDK (a digits CNN, a fraud sequence model).
//! - [`data`]: loading a node's data (CSV, Parquet, image folders),
//!   train/holdout splits, feature scaling.
//! - [`model`]: [`model::FederatedModel`] and the flat parameter vector of any
//!   burn module; the built-in dense network.
//! - [`training`]: local SGD epochs and evaluation on the node's data, for any
//!   model.
//! - [`node`]: the federation client: register, poll for tasks, answer them.
//! - [`identity`]: this node's identity, read from its own certificate.
//! - [`erasure`]: reporting a carried-out erasure request (GDPR Art. 17).
//! - [`fault`]: simulated faults (dropouts, stragglers, attacks) for `cohort-sim`.
//! - `inference` (feature `he`): the node's encrypted-inference service for
//!   outside requesters.
//! - `requester` (feature `he`): the requester's side: keys, encryption, calls,
//!   decryption.
//!
//! Feature `he` (off by default) brings encrypted inference on tfhe, the slowest
//! dependency to compile; training, the federation client and the simulator do
//! without it.

#![warn(missing_docs)]

pub use sdk::join;

pub mod data;
mod durable;
pub mod erasure;
pub mod fault;
pub mod identity;
#[cfg(feature = "he")]
pub mod inference;
pub mod model;
pub mod node;
#[cfg(feature = "he")]
pub mod requester;
pub mod sdk;
pub mod training;
pub mod zoo;
