//! Local training and evaluation on a node's data.
//!
//! [`train_local`] runs mini-batch SGD from the parameters the coordinator sent
//! (optionally with FedProx's proximal term and a bound on the change's norm) and
//! returns the new parameters in the wire layout; [`evaluate`] measures loss and
//! accuracy of a parameter vector. Both take features already standardized by the
//! caller, and refuse data whose width or labels do not fit the model.
//! [`train_dp_sgd`] runs the same loop — FedProx and norm bounding included —
//! with record-level DP-SGD steps (see [`DpSgdConfig`]): the step is the only
//! difference.

mod architecture;
mod batch;
mod config;
mod dp_sgd;
mod error;
mod evaluate;
mod local;
mod proximal;
pub mod trainable;

pub use architecture::{Architecture, ModuleArchitecture};
pub use config::LocalTrainingConfig;
pub use dp_sgd::{DpSgdConfig, train_dp_sgd};
pub use error::TrainingError;
pub use evaluate::{Evaluation, evaluate, logits, per_row_losses};
pub use local::{TrainOutcome, train_local};
pub use trainable::Trainable;

#[cfg(test)]
mod tests;
