//! Cohort's protocols and the wire contract both sides of them keep.
//!
//! The generated code (`schema.rs`, re-exported here) comes from three schemas:
//! the federation's gRPC API ([`v1`], `proto/cohort/federation/v1`), a node's
//! encrypted-inference service ([`inference`], `proto/cohort/inference/v1`) and
//! the auditors' API ([`audit_v1`], `proto/cohort/audit/v1`). Beside it, the
//! arithmetic that both sides of a message must do identically:
//!
//! - [`model`]: a model's parameter layout, its fingerprint, the little-endian
//!   encoding of its parameters, a version's content address and the initial
//!   parameters drawn from a seed;
//! - [`scaling`]: global feature standardization from the nodes' summed
//!   statistics;
//! - [`dataset`]: the checks on a node's data set version and the GDPR legal
//!   bases it names;
//! - `export` (feature `export`): a trained model as ONNX or safetensors.
//! - `tensorboard` (feature `tensorboard`): per-round scalars as TensorBoard
//!   event files.
//!
//! This crate holds no federation logic: the coordinator and the node both build
//! on it so that they cannot disagree on what travels between them.
#![warn(missing_docs)]

pub mod dataset;
#[cfg(feature = "export")]
pub mod export;
#[cfg(feature = "logging")]
pub mod logging;
pub mod model;
pub mod scaling;
mod schema;
#[cfg(feature = "tensorboard")]
pub mod tensorboard;

pub use schema::{audit_v1, inference, v1};

/// Most entries or signed tree heads one auditor-API call returns (fewer
/// when they would not fit in [`MAX_CHUNK_BYTES`]).
pub const AUDIT_ITEMS_PER_CALL: u64 = 1000;

/// The protocol version this build speaks. A peer with another version is refused.
///
/// 2: the model is a `ModelDescriptor`. 3: secure aggregation expands its mask seeds
/// with AES-256 in counter mode instead of ChaCha20, so a node of version 2 in a round of version
/// 3 would leave masks that do not cancel; the version check keeps it out.
pub const PROTOCOL_VERSION: u32 = 3;

/// Largest payload in one streamed chunk of parameters.
pub const MAX_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// Largest gRPC message either side accepts: one chunk plus room for its header.
pub const MAX_MESSAGE_BYTES: usize = MAX_CHUNK_BYTES + 64 * 1024;
