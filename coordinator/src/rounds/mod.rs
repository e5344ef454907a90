//! The round engine.
//!
//! A round moves `Sampling → Fit (collecting until all answer or the deadline) →
//! Aggregating → Committing → Evaluating → Done`, or ends `Failed(reason)` with
//! the global model unchanged. Before the first round the federation agrees on
//! feature scaling (stage `feature-statistics`, round 0). Stages are plain data
//! ([`stage`]); the engine ([`engine`]) moves them forward. Under secure
//! aggregation the fit stage becomes the four stages of [`secure`].

pub mod engine;
pub mod sampling;
pub mod secure;
pub mod stage;
