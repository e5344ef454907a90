//! The round engine.
//!
//! A round moves `Sampling → Fit (collecting until all answer or the deadline) →
//! Aggregating → Committing → Evaluating → Done`, or ends `Failed(reason)` with
//! the global model unchanged. Before the first round the federation agrees on
//! feature scaling (stage `feature-statistics`, round 0). Stages are plain data
//! ([`stage`]); the engine ([`engine`]) moves them forward.

pub mod engine;
pub mod sampling;
pub mod stage;
