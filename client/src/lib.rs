//! Cohort's node: its local data, the burn model, local training and evaluation,
//! and the client that talks to the coordinator.
//!
//! - [`data`]: loading a node's CSV data, train/holdout splits, feature scaling.
//! - [`model`]: the dense network and its flat parameter vector (the wire layout).
//! - [`training`]: local SGD epochs and evaluation on the node's data.
//! - [`node`]: the federation client: register, poll for tasks, answer them.
//! - [`identity`]: this node's identity, read from its own certificate.
//! - [`erasure`]: reporting a carried-out erasure request (GDPR Art. 17).
//! - [`fault`]: simulated faults (dropouts, stragglers, attacks) for `cohort-sim`.
//! - [`inference`]: the node's encrypted-inference service for outside requesters.
//! - [`requester`]: the requester's side: keys, encryption, calls, decryption.

pub mod data;
pub mod erasure;
pub mod fault;
pub mod identity;
pub mod inference;
pub mod model;
pub mod node;
pub mod requester;
pub mod training;
