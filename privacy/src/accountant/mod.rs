//! Privacy accountants: DP events in, (ε, δ) out.
//!
//! An [`Accountant`] composes a list of [`DpEvent`]s — each a mechanism run
//! `count` times — and reports the ε it spends at a given δ, or the δ at a
//! given ε. Events in a list may differ in sampling rate and noise.
//!
//! Implementations:
//! - [`rdp::RdpAccountant`]: Rényi DP of the Poisson-subsampled Gaussian
//!   (Mironov, Talwar, Zhang 2019), with the classic or the improved
//!   RDP→(ε, δ) conversion; also accounts for the distributed discrete
//!   Gaussian ([`crate::ddg`]). Full participation (q = 1) is zCDP and is
//!   converted exactly over all real orders.
//! - [`pld::PldAccountant`]: privacy-loss distributions (as in Google's
//!   `dp_accounting.pld`), tighter than RDP, for Gaussian events.
//!
//! Adjacency is add-or-remove-one (one example for DP-SGD, one client for
//! DP-FedAvg); the sensitivity is the clip norm, and σ is the noise
//! multiplier (noise std divided by the clip norm).

pub mod pld;
pub mod rdp;

use serde::{Deserialize, Serialize};

use crate::ddg::DistributedDiscreteGaussian;
use crate::error::{Result, check_noise_multiplier, check_sampling_rate};

/// One privacy-relevant mechanism, applied `count` times.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DpEvent {
    /// The Gaussian mechanism on a Poisson sample with rate q: each record
    /// (example or client) is included independently with probability q, its
    /// contribution clipped to norm C, and N(0, σ²C²) added to the sum.
    /// q = 1 is full participation.
    PoissonSampledGaussian {
        sampling_rate: f64,
        noise_multiplier: f64,
        count: u64,
    },
    /// A round of the distributed discrete Gaussian mechanism on a Poisson
    /// sample of clients with rate q. Only the RDP accountant supports it.
    SampledDistributedDiscreteGaussian {
        sampling_rate: f64,
        mechanism: DistributedDiscreteGaussian,
        count: u64,
    },
}

impl DpEvent {
    /// A validated Poisson-subsampled Gaussian event.
    pub fn poisson_sampled_gaussian(
        sampling_rate: f64,
        noise_multiplier: f64,
        count: u64,
    ) -> Result<Self> {
        let event = Self::PoissonSampledGaussian {
            sampling_rate,
            noise_multiplier,
            count,
        };
        event.validate()?;
        Ok(event)
    }

    /// A validated distributed discrete Gaussian event.
    pub fn distributed_discrete_gaussian(
        sampling_rate: f64,
        mechanism: DistributedDiscreteGaussian,
        count: u64,
    ) -> Result<Self> {
        let event = Self::SampledDistributedDiscreteGaussian {
            sampling_rate,
            mechanism,
            count,
        };
        event.validate()?;
        Ok(event)
    }

    /// The same mechanism run `self.count() + other.count()` times, if `other`
    /// is the same mechanism with the same parameters.
    pub fn merged_with(&self, other: &DpEvent) -> Option<DpEvent> {
        match (*self, *other) {
            (
                Self::PoissonSampledGaussian {
                    sampling_rate: q1,
                    noise_multiplier: s1,
                    count: c1,
                },
                Self::PoissonSampledGaussian {
                    sampling_rate: q2,
                    noise_multiplier: s2,
                    count: c2,
                },
            ) if q1 == q2 && s1 == s2 => Some(Self::PoissonSampledGaussian {
                sampling_rate: q1,
                noise_multiplier: s1,
                count: c1.checked_add(c2)?,
            }),
            _ => None,
        }
    }

    /// How many times the mechanism runs.
    pub fn count(&self) -> u64 {
        match self {
            Self::PoissonSampledGaussian { count, .. }
            | Self::SampledDistributedDiscreteGaussian { count, .. } => *count,
        }
    }

    /// Checks the parameters; accountants call this on every event, since
    /// events also arrive by deserialization.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::PoissonSampledGaussian {
                sampling_rate,
                noise_multiplier,
                ..
            } => {
                check_sampling_rate(*sampling_rate)?;
                check_noise_multiplier(*noise_multiplier)?;
            }
            Self::SampledDistributedDiscreteGaussian {
                sampling_rate,
                mechanism,
                ..
            } => {
                check_sampling_rate(*sampling_rate)?;
                mechanism.validate()?;
            }
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::PoissonSampledGaussian { .. } => "Poisson-sampled Gaussian",
            Self::SampledDistributedDiscreteGaussian { .. } => "distributed discrete Gaussian",
        }
    }
}

/// Composes DP events into an (ε, δ) guarantee.
pub trait Accountant {
    /// The smallest ε (≥ 0, possibly +∞) this accountant can certify for the
    /// composition of `events` at the given δ ∈ (0, 1).
    fn epsilon(&self, events: &[DpEvent], delta: f64) -> Result<f64>;

    /// The smallest δ this accountant can certify at the given ε > 0.
    fn delta(&self, events: &[DpEvent], epsilon: f64) -> Result<f64>;
}

/// Validates all events up front so no accountant does partial work.
fn validate_events(events: &[DpEvent]) -> Result<()> {
    events.iter().try_for_each(DpEvent::validate)
}
