//! Privacy accountants: DP events in, (ε, δ) out.
//!
//! An [`Accountant`] composes a list of [`DpEvent`]s — each a mechanism run
//! `count` times — and reports the ε it spends at a given δ, or the δ at a
//! given ε. Events in a list may differ in sampling rate and noise.
//!
//! Composition is incremental: an accountant folds events into a
//! [`Composition`] (the RDP accountant keeps the summed RDP curve, one value
//! per order), so adding one round to a long history costs the same as
//! adding it to an empty one — the coordinator's ledger check at round 1000
//! costs what it costs at round 1 (see `benches/ledger.rs`).
//!
//! Implementations:
//! - [`rdp::RdpAccountant`]: Rényi DP of the Poisson-subsampled Gaussian
//!   (Mironov, Talwar, Zhang 2019), with the classic or the improved
//!   RDP→(ε, δ) conversion; also accounts for the distributed discrete
//!   Gaussian ([`crate::ddg`]). Full participation (q = 1) is zCDP and is
//!   converted exactly over all real orders.
//! - [`pld::PldAccountant`]: privacy-loss distributions (as in Google's
//!   `dp_accounting.pld`), tighter than RDP, for continuous Gaussian events.
//!   Its composition keeps the events grouped by mechanism and composes each
//!   group in one FFT when asked for ε: the cost grows with the width of the
//!   composed loss distribution (about √T bins for T steps), not with the
//!   number of rounds recorded.
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
        /// q ∈ (0, 1].
        sampling_rate: f64,
        /// σ: noise standard deviation over sensitivity.
        noise_multiplier: f64,
        /// How many times the mechanism runs.
        count: u64,
    },
    /// A round of the distributed discrete Gaussian mechanism on a Poisson
    /// sample of clients with rate q. Only the RDP accountant supports it.
    SampledDistributedDiscreteGaussian {
        /// q ∈ (0, 1].
        sampling_rate: f64,
        /// The round's mechanism (clip, granularity, shares, dimension).
        mechanism: DistributedDiscreteGaussian,
        /// How many times the mechanism runs.
        count: u64,
    },
    /// The discrete Gaussian on a grid ([`crate::GridGaussian`]): integer
    /// contributions of L2 norm at most Δ, summed, plus N_ℤ(0, σ²Δ²) per
    /// coordinate, on a Poisson sample with rate q. Its RDP without sampling
    /// is the Gaussian's, α/(2σ²) (Canonne, Kamath, Steinke 2020); with
    /// sampling it is bounded by Zhu & Wang's general theorem, not by the
    /// continuous Gaussian's tighter analysis. Only the RDP accountant
    /// supports it.
    PoissonSampledDiscreteGaussian {
        /// q ∈ (0, 1].
        sampling_rate: f64,
        /// σ: noise standard deviation over sensitivity, both in grid units.
        noise_multiplier: f64,
        /// How many times the mechanism runs.
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

    /// A validated Poisson-subsampled discrete Gaussian (grid) event.
    pub fn poisson_sampled_discrete_gaussian(
        sampling_rate: f64,
        noise_multiplier: f64,
        count: u64,
    ) -> Result<Self> {
        let event = Self::PoissonSampledDiscreteGaussian {
            sampling_rate,
            noise_multiplier,
            count,
        };
        event.validate()?;
        Ok(event)
    }

    /// The same mechanism run `self.count() + other.count()` times, if `other`
    /// is the same mechanism with the same parameters (or the count would
    /// overflow).
    pub fn merged_with(&self, other: &DpEvent) -> Option<DpEvent> {
        if self.with_count(0) != other.with_count(0) {
            return None;
        }
        Some(self.with_count(self.count().checked_add(other.count())?))
    }

    /// The same mechanism run `count` times.
    pub fn with_count(&self, count: u64) -> DpEvent {
        let mut event = *self;
        match &mut event {
            Self::PoissonSampledGaussian { count: c, .. }
            | Self::SampledDistributedDiscreteGaussian { count: c, .. }
            | Self::PoissonSampledDiscreteGaussian { count: c, .. } => *c = count,
        }
        event
    }

    /// The event as seen by an observer who knows who was sampled (the
    /// coordinator that drew the sample): the same mechanism with q = 1,
    /// since amplification by subsampling needs the sample to be secret.
    pub fn with_known_sample(&self) -> DpEvent {
        let mut event = *self;
        match &mut event {
            Self::PoissonSampledGaussian { sampling_rate, .. }
            | Self::SampledDistributedDiscreteGaussian { sampling_rate, .. }
            | Self::PoissonSampledDiscreteGaussian { sampling_rate, .. } => *sampling_rate = 1.0,
        }
        event
    }

    /// How many times the mechanism runs.
    pub fn count(&self) -> u64 {
        match self {
            Self::PoissonSampledGaussian { count, .. }
            | Self::SampledDistributedDiscreteGaussian { count, .. }
            | Self::PoissonSampledDiscreteGaussian { count, .. } => *count,
        }
    }

    /// Checks the parameters; accountants call this on every event, since
    /// events also arrive by deserialization. Errors name the bad parameter.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::PoissonSampledGaussian {
                sampling_rate,
                noise_multiplier,
                ..
            }
            | Self::PoissonSampledDiscreteGaussian {
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
            Self::PoissonSampledDiscreteGaussian { .. } => "Poisson-sampled discrete Gaussian",
        }
    }
}

/// An accountant's running composition of events: what it needs to add one
/// more event and to read off (ε, δ), whatever the length of the history.
#[derive(Debug, Clone, PartialEq)]
pub enum Composition {
    /// The summed RDP curve ([`rdp::RdpAccountant`]).
    Rdp(rdp::RdpCurve),
    /// The events grouped by mechanism ([`pld::PldAccountant`]).
    Grouped(Vec<DpEvent>),
}

impl Composition {
    /// Adds `event` to the group of its mechanism, or starts a group.
    fn group(groups: &mut Vec<DpEvent>, event: &DpEvent) {
        match groups.iter_mut().find_map(|g| {
            let merged = g.merged_with(event)?;
            Some((g, merged))
        }) {
            Some((group, merged)) => *group = merged,
            None => groups.push(*event),
        }
    }
}

/// Composes DP events into an (ε, δ) guarantee.
///
/// Implementors provide the incremental form ([`Self::empty`],
/// [`Self::compose`], [`Self::epsilon_of`], [`Self::delta_of`]); the
/// one-shot [`Self::epsilon`] and [`Self::delta`] follow from it.
pub trait Accountant {
    /// The composition of no events, in this accountant's form.
    fn empty(&self) -> Composition;

    /// Whether `composition` is in this accountant's form (built by an
    /// accountant of the same kind and orders), so it can be extended.
    fn accepts(&self, composition: &Composition) -> bool;

    /// Adds `events` to `composition`. Errors on an invalid or unsupported
    /// event (leaving `composition` unchanged) or a composition this
    /// accountant does not accept.
    fn compose(&self, composition: &mut Composition, events: &[DpEvent]) -> Result<()>;

    /// The smallest ε (≥ 0, possibly +∞) this accountant can certify for
    /// `composition` at δ ∈ (0, 1). Errors on an invalid δ or a foreign
    /// composition.
    fn epsilon_of(&self, composition: &Composition, delta: f64) -> Result<f64>;

    /// The smallest δ this accountant can certify for `composition` at
    /// ε > 0. Errors on an invalid ε or a foreign composition.
    fn delta_of(&self, composition: &Composition, epsilon: f64) -> Result<f64>;

    /// The smallest ε (≥ 0, possibly +∞) this accountant can certify for the
    /// composition of `events` at the given δ ∈ (0, 1).
    fn epsilon(&self, events: &[DpEvent], delta: f64) -> Result<f64> {
        let mut composition = self.empty();
        self.compose(&mut composition, events)?;
        self.epsilon_of(&composition, delta)
    }

    /// The smallest δ this accountant can certify at the given ε > 0.
    fn delta(&self, events: &[DpEvent], epsilon: f64) -> Result<f64> {
        let mut composition = self.empty();
        self.compose(&mut composition, events)?;
        self.delta_of(&composition, epsilon)
    }
}

/// Validates all events up front so no accountant does partial work.
fn validate_events(events: &[DpEvent]) -> Result<()> {
    events.iter().try_for_each(DpEvent::validate)
}

/// The error for a composition an accountant did not build.
fn foreign(accountant: &'static str) -> crate::error::PrivacyError {
    crate::error::PrivacyError::ForeignComposition { accountant }
}
