//! The round engine.
//!
//! A round moves `Sampling → Fit (collecting until all answer or the deadline) →
//! Aggregating → Committing → Evaluating → Done`, or ends failed
//! ([`failure`]) with the global model unchanged: one function per phase (`phases`), called in
//! order by the [`engine`]. Before the first round the federation agrees on
//! feature scaling (stage `feature-statistics`, round 0). Stages are plain
//! data ([`stage`]); the round in flight, which the service submits to, is
//! [`live`]. Under secure aggregation the fit is the six stages of
//! [`secure`]. Erasure requests are carried out by rollback and retraining
//! ([`unlearning`], the engine's one hook between rounds); the privacy budget
//! is spent by `spending`; who is sampled is [`sampling`]; where a committed
//! round's time went is [`timing`].

pub mod engine;
pub mod failure;
pub mod live;
mod phases;
pub mod sampling;
pub mod secure;
mod spending;
pub mod stage;
pub mod timing;
pub mod unlearning;
