//! Differential privacy for Cohort's federated learning.
//!
//! - Clipping and noise for client-level DP-FedAvg (McMahan, Ramage, Talwar,
//!   Zhang, ICLR 2018): [`clip`], [`noise::grid_gaussian`] (exact) for the
//!   central placement, [`noise::discrete_gaussian`] and [`ddg`] for the
//!   distributed placement under secure aggregation (Kairouz, Liu, Steinke,
//!   ICML 2021).
//! - Adaptive clipping (Andrew et al., NeurIPS 2021): [`adaptive_clip`].
//! - DP-SGD primitives (Abadi et al., CCS 2016): [`dp_sgd`].
//! - Accounting: [`accountant`] with the [`Accountant`] trait, the RDP
//!   accountant (Mironov, Talwar, Zhang 2019) and a PLD accountant;
//!   [`calibrate`] finds the smallest noise multiplier for a budget;
//!   [`ledger`] is the budget bookkeeping the coordinator persists, with ε
//!   per observer (released models, coordinator) and incremental
//!   composition.
//! - Statistics a DP-SGD node may report, noised and charged:
//!   [`reported_stats`].
//! - Every failure, naming the parameter or event at fault: [`error`].
//!
//! Randomness always comes from a caller-supplied [`rand::CryptoRng`].

#![warn(missing_docs)]

pub mod accountant;
pub mod adaptive_clip;
pub mod calibrate;
pub mod clip;
pub mod ddg;
pub mod dp_sgd;
pub mod error;
pub mod ledger;
mod math;
pub mod noise;
pub mod reported_stats;

pub use accountant::pld::PldAccountant;
pub use accountant::rdp::{Conversion, RdpAccountant, RdpCurve};
pub use accountant::{Accountant, Composition, DpEvent};
pub use adaptive_clip::{AdaptiveClipConfig, AdaptiveClipper, update_noise_multiplier};
pub use calibrate::{
    calibrate_mechanism, calibrate_noise_multiplier, calibrate_noise_multiplier_with_tolerance,
};
pub use clip::{ClipOutcome, clip_l2, l2_norm};
pub use ddg::DistributedDiscreteGaussian;
pub use error::{PrivacyError, Result};
pub use ledger::{
    BudgetCheck, CoordinatorView, Observer, ObserverEpsilon, PrivacyBudget, PrivacyLedger,
    RoundSpend,
};
pub use noise::discrete_gaussian::DiscreteGaussian;
pub use noise::gaussian::GaussianNoise;
pub use noise::grid_gaussian::GridGaussian;
