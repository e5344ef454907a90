//! Cohort's protocols: the federation's gRPC schema (`proto/cohort/federation/v1`)
//! and a node's encrypted-inference service (`proto/cohort/inference/v1`), the
//! tonic code generated from them, and the wire contract for model parameters
//! (their layout, fingerprint and little-endian encoding), and the arithmetic of
//! global feature scaling that both sides must do identically.
//!
//! This crate holds no federation logic: the coordinator and the node both build
//! on it so that they cannot disagree on what travels between them.

pub mod dataset;
pub mod params;
pub mod scaling;

/// The generated protocol types, client and server.
#[allow(missing_debug_implementations, clippy::all)]
pub mod v1 {
    tonic::include_proto!("cohort.federation.v1");
}

/// The generated encrypted-inference types, client and server
/// (`cohort.inference.v1`).
#[allow(missing_debug_implementations, clippy::all)]
pub mod inference {
    tonic::include_proto!("cohort.inference.v1");
}

/// The auditor API's generated types, client and server.
#[allow(missing_debug_implementations, clippy::all)]
pub mod audit_v1 {
    tonic::include_proto!("cohort.audit.v1");
}

/// Most entries or signed tree heads one auditor-API call returns (fewer
/// when they would not fit in [`MAX_CHUNK_BYTES`]).
pub const AUDIT_ITEMS_PER_CALL: u64 = 1000;

/// The protocol version this build speaks. A peer with another version is refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest payload in one streamed chunk of parameters.
pub const MAX_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// Largest gRPC message either side accepts: one chunk plus room for its header.
pub const MAX_MESSAGE_BYTES: usize = MAX_CHUNK_BYTES + 64 * 1024;
