//! A round's phases, one function each, in the order the engine
//! (`super::engine`) runs them:
//!
//! ```text
//! sample → fit → aggregate → commit → evaluate
//! ```
//!
//! [`sample`] fixes who takes part and how ([`RoundPlan`]); [`fit`] collects
//! their updates (or, under secure aggregation, only their sum); [`aggregate`]
//! turns them into the next model, or the reason the round failed; [`commit`]
//! writes the new model, its record, the head and the round's audit entry in
//! one transaction (or records the failure); [`evaluate`] has the nodes score
//! the new model. Round 0, once per federation, is [`agree_on_scaling`].
//!
//! Failures that are the round's (too few answers, a secure aggregation that
//! cannot unmask) travel as `Err(String)` into `commit`, which records them;
//! `EngineError`s are the coordinator's own (its store, its log) and stop the
//! engine.

mod aggregate;
mod commit;
mod evaluate;
mod fit;
mod sample;
mod scaling;

pub(crate) use aggregate::{Aggregated, aggregate};
pub(crate) use commit::commit;
pub(crate) use evaluate::evaluate;
pub(crate) use fit::{Fitted, fit};
pub(crate) use sample::{RoundPlan, sample};
pub(crate) use scaling::agree_on_scaling;

use std::time::{Duration, SystemTime};

use crate::federation::Federation;

/// The deadline of a stage of the round opened now.
fn deadline(federation: &Federation) -> SystemTime {
    SystemTime::now() + Duration::from_secs_f64(federation.config.rounds.deadline_secs)
}
