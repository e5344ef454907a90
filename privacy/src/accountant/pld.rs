//! Privacy-loss-distribution (PLD) accountant for Poisson-subsampled
//! Gaussians.
//!
//! Method, as in Google's `dp_accounting.pld` (Koskela, Jälkö, Honkela 2020;
//! Meiser & Mohammadi 2018; Doroshenko, Ghazi, Kamath, Kumar, Manurangsi,
//! "Connect the Dots", PETS 2022):
//!
//! 1. Discretize. For one run of the mechanism and each adjacency direction
//!    ("remove": P = (1−q)N(0,σ²) + qN(1,σ²) against Q = N(0,σ²); "add": the
//!    reverse), the privacy loss L = ln(dP/dQ) under P is discretized on the
//!    grid h·ℤ pessimistically by connect-the-dots: the P-mass of each
//!    interval (ℓ_{i−1}, ℓ_i] is split between its two endpoints so that both
//!    its P- and Q-mass are preserved. The resulting pair dominates the true
//!    one — its hockey-stick curve δ(ε) is the linear interpolation (in e^ε)
//!    of the true curve through the grid points, which lies above the convex
//!    true curve — with no upward drift of the mean loss (rounding every loss
//!    up would add ≈ h/2 per step, i.e. ≈ 0.5 in ε after 10⁴ steps at
//!    h = 10⁻⁴). Mass beyond the grid: below it is moved up to the lowest
//!    point, above it becomes "infinite loss" mass — both pessimistic.
//! 2. Compose. `count` runs: the FFT of the PMF is raised to the power
//!    `count` (equivalent to repeated-squaring convolution) on a window whose
//!    outside carries at most 10⁻²⁰ mass per side by a Chernoff bound on the
//!    discretized loss; that bound is added to the infinite-loss mass, so the
//!    wrap-around of the cyclic convolution cannot make the result optimistic.
//!    Different events are convolved (zero-padded FFT) and tails below 10⁻²⁰
//!    are truncated pessimistically.
//! 3. Read off. δ(ε) = p_∞ + Σ_{ℓ > ε} p(ℓ)(1 − e^{ε−ℓ}) (hockey-stick
//!    divergence); ε(δ) solves it exactly between grid points. The reported
//!    value is the worse of the add and remove directions.
//!
//! The grid interval defaults to 10⁻⁴ and is doubled automatically when a
//! single step or the composition window would need more than 2²² bins (very
//! small σ), which keeps the bound valid and only coarsens it.
//! FFT round-off (≈10⁻¹³ absolute) can make tiny masses negative; those are
//! clamped to zero and their total is added to the infinite-loss mass.

use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

use super::{Accountant, Composition, DpEvent, foreign, validate_events};
use crate::error::{PrivacyError, Result, check_delta, check_epsilon, check_positive};
use crate::math::{log_add, log_normal_sf, log_sub};

/// Default grid interval of the privacy loss.
pub const DEFAULT_DISCRETIZATION: f64 = 1e-4;
/// Standard deviations covered by a single step's grid (Φ̄(12) ≈ 1.8·10⁻³³).
const GRID_STDDEVS: f64 = 12.0;
/// Mass bound for each truncated tail when composing.
const TAIL_MASS: f64 = 1e-20;
/// Largest number of bins per PMF or FFT before the grid is coarsened.
const MAX_BINS: usize = 1 << 22;

/// The PLD accountant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PldAccountant {
    discretization: f64,
}

impl Default for PldAccountant {
    fn default() -> Self {
        Self::new()
    }
}

impl PldAccountant {
    /// A PLD accountant with grid interval [`DEFAULT_DISCRETIZATION`].
    pub fn new() -> Self {
        Self {
            discretization: DEFAULT_DISCRETIZATION,
        }
    }

    /// A PLD accountant with a custom grid interval (smaller: tighter, slower).
    pub fn with_discretization(interval: f64) -> Result<Self> {
        check_positive("discretization", interval)?;
        Ok(Self {
            discretization: interval,
        })
    }

    /// The composed PLDs of both adjacency directions of `groups` (one
    /// event per mechanism), coarsening the grid until everything fits.
    fn pmfs(&self, groups: &[(f64, f64, u64)]) -> [LossPmf; 2] {
        let mut h = self.discretization;
        loop {
            match compose_on_grid(groups, h) {
                Some(pmfs) => return pmfs,
                None => h *= 2.0,
            }
        }
    }

    fn groups(composition: &Composition) -> Result<Vec<(f64, f64, u64)>> {
        let Composition::Grouped(events) = composition else {
            return Err(foreign("PLD"));
        };
        events.iter().map(gaussian_parameters).collect()
    }
}

impl Accountant for PldAccountant {
    fn empty(&self) -> Composition {
        Composition::Grouped(Vec::new())
    }

    fn accepts(&self, composition: &Composition) -> bool {
        matches!(composition, Composition::Grouped(_))
    }

    fn compose(&self, composition: &mut Composition, events: &[DpEvent]) -> Result<()> {
        validate_events(events)?;
        events
            .iter()
            .try_for_each(|e| gaussian_parameters(e).map(|_| ()))?;
        let Composition::Grouped(groups) = composition else {
            return Err(foreign("PLD"));
        };
        for event in events.iter().filter(|e| e.count() > 0) {
            Composition::group(groups, event);
        }
        Ok(())
    }

    fn epsilon_of(&self, composition: &Composition, delta: f64) -> Result<f64> {
        let delta = check_delta(delta)?;
        let pmfs = self.pmfs(&Self::groups(composition)?);
        Ok(pmfs
            .iter()
            .map(|p| p.epsilon_for_delta(delta))
            .fold(0.0, f64::max))
    }

    fn delta_of(&self, composition: &Composition, epsilon: f64) -> Result<f64> {
        let epsilon = check_epsilon(epsilon)?;
        let pmfs = self.pmfs(&Self::groups(composition)?);
        Ok(pmfs
            .iter()
            .map(|p| p.delta_for_epsilon(epsilon))
            .fold(0.0, f64::max)
            .min(1.0))
    }
}

/// (q, σ, count) of a continuous Gaussian event; the PLD accountant has no
/// analysis for the other kinds.
fn gaussian_parameters(event: &DpEvent) -> Result<(f64, f64, u64)> {
    match *event {
        DpEvent::PoissonSampledGaussian {
            sampling_rate,
            noise_multiplier,
            count,
        } => Ok((sampling_rate, noise_multiplier, count)),
        _ => Err(PrivacyError::UnsupportedEvent {
            accountant: "PLD",
            event: event.kind(),
        }),
    }
}

/// Both directions composed on grid h, or `None` if h is too fine.
fn compose_on_grid(groups: &[(f64, f64, u64)], h: f64) -> Option<[LossPmf; 2]> {
    let mut planner = FftPlanner::<f64>::new();
    let mut out = [LossPmf::zero(h), LossPmf::zero(h)];
    for (slot, adjacency) in out.iter_mut().zip([Adjacency::Remove, Adjacency::Add]) {
        for &(q, sigma, count) in groups {
            let single = LossPmf::sampled_gaussian(q, sigma, h, adjacency)?;
            let composed = single.self_compose(count, &mut planner)?;
            *slot = slot.convolve(&composed, &mut planner)?;
        }
    }
    Some(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Adjacency {
    /// P holds the extra record: P = (1−q)N(0,σ²) + qN(1,σ²), Q = N(0,σ²).
    Remove,
    /// Q holds the extra record: P = N(0,σ²), Q = (1−q)N(0,σ²) + qN(1,σ²).
    Add,
}

/// A discretized privacy-loss distribution: `masses[j]` sits at loss
/// (first_index + j)·h, and `infinity_mass` at +∞.
#[derive(Debug, Clone, PartialEq)]
struct LossPmf {
    h: f64,
    first_index: i64,
    masses: Vec<f64>,
    infinity_mass: f64,
}

/// ln N(μ, σ²)-mass between standardized bounds a < b, computed on the side
/// of the smaller tail (ln Φ̄ for the upper, ln Φ for the lower side).
fn log_interval(a: f64, b: f64) -> f64 {
    if b <= a {
        f64::NEG_INFINITY
    } else if a >= 0.0 {
        log_sub(log_normal_sf(a), log_normal_sf(b))
    } else if b <= 0.0 {
        log_sub(log_normal_sf(-b), log_normal_sf(-a))
    } else {
        (-(log_normal_sf(-a).exp() + log_normal_sf(b).exp())).ln_1p()
    }
}

/// sign·|w|·e^{ln_mass} without overflow, for w given as (sign, ln|w|).
fn weighted(sign: f64, ln_abs_w: f64, ln_mass: f64) -> f64 {
    if ln_mass == f64::NEG_INFINITY || sign == 0.0 || ln_abs_w == f64::NEG_INFINITY {
        0.0
    } else {
        sign * (ln_abs_w + ln_mass).exp()
    }
}

impl LossPmf {
    /// The identity of composition: all mass at loss 0.
    fn zero(h: f64) -> Self {
        Self {
            h,
            first_index: 0,
            masses: vec![1.0],
            infinity_mass: 0.0,
        }
    }

    fn loss(&self, j: usize) -> f64 {
        (self.first_index + j as i64) as f64 * self.h
    }

    /// Connect-the-dots discretization of one Poisson-sampled Gaussian.
    fn sampled_gaussian(q: f64, sigma: f64, h: f64, adjacency: Adjacency) -> Option<Self> {
        let pair = SampledPair::new(q, sigma, adjacency);
        let (loss_lo, loss_hi) = pair.loss_range();
        if !(loss_lo.is_finite() && loss_hi.is_finite()) {
            return None;
        }
        let i_lo = (loss_lo / h).floor() as i64;
        let i_hi = (loss_hi / h).ceil() as i64;
        let bins = usize::try_from(i_hi - i_lo + 1).ok()?;
        if bins > MAX_BINS {
            return None;
        }
        let points: Vec<GridPoint> = (0..bins)
            .map(|k| pair.grid_point((i_lo + k as i64) as f64 * h))
            .collect();

        let spread = h.exp_m1(); // e^h − 1
        let mut masses = vec![0.0; bins];
        for k in 1..bins {
            let losses = (self_loss(i_lo, k - 1, h), self_loss(i_lo, k, h));
            if let Some((lower, upper)) = pair.split(&points[k - 1], &points[k], losses) {
                masses[k - 1] += lower.max(0.0) / spread;
                masses[k] += upper.max(0.0) * h.exp() / spread;
            }
        }
        let (below, above) = pair.outside(points[0].y, points[bins - 1].y);
        masses[0] += below;
        let mut pmf = Self {
            h,
            first_index: i_lo,
            masses,
            infinity_mass: above,
        };
        pmf.truncate();
        Some(pmf)
    }

    /// `count`-fold composition with itself by FFT exponentiation.
    fn self_compose(&self, count: u64, planner: &mut FftPlanner<f64>) -> Option<Self> {
        if count == 1 {
            return Some(self.clone());
        }
        let t = count as f64;
        let (lo_loss, hi_loss) = self.chernoff_window(t);
        let total_lo = self.first_index as f64 * t;
        let total_hi = (self.first_index + self.masses.len() as i64 - 1) as f64 * t;
        let s_lo = ((lo_loss / self.h).floor()).max(total_lo) as i64;
        let s_hi = ((hi_loss / self.h).ceil()).min(total_hi) as i64;
        let width = usize::try_from(s_hi - s_lo + 1).ok()?;
        let n = width.next_power_of_two();
        if n > MAX_BINS {
            return None;
        }
        // Fold the single-step PMF onto the cyclic buffer; cyclic
        // convolution of folded inputs is the fold of the linear one.
        let mut buffer = vec![Complex::new(0.0, 0.0); n];
        for (j, &m) in self.masses.iter().enumerate() {
            buffer[j % n].re += m;
        }
        planner.plan_fft_forward(n).process(&mut buffer);
        for z in buffer.iter_mut() {
            *z = complex_pow(*z, count);
        }
        planner.plan_fft_inverse(n).process(&mut buffer);
        let scale = 1.0 / n as f64;
        let base = self.first_index.checked_mul(i64::try_from(count).ok()?)?;
        let mut masses = Vec::with_capacity(width);
        let mut negative = 0.0;
        for s in s_lo..=s_hi {
            let k = (s - base).rem_euclid(n as i64) as usize;
            let m = buffer[k].re * scale;
            if m < 0.0 {
                negative -= m;
            }
            masses.push(m.max(0.0));
        }
        // 1 − (1 − p∞)^T, plus both windows' tail bounds and the clamped round-off.
        let infinity = -(t * (-self.infinity_mass).ln_1p()).exp_m1();
        let mut pmf = Self {
            h: self.h,
            first_index: s_lo,
            masses,
            infinity_mass: (infinity + 2.0 * TAIL_MASS + negative).min(1.0),
        };
        pmf.truncate();
        Some(pmf)
    }

    /// Loss range [lo, hi] of the t-fold sum outside which each tail holds
    /// at most [`TAIL_MASS`], by Chernoff bounds over a grid of λ.
    fn chernoff_window(&self, t: f64) -> (f64, f64) {
        let support: Vec<(f64, f64)> = self
            .masses
            .iter()
            .enumerate()
            .filter(|(_, m)| **m > 0.0)
            .map(|(j, m)| (self.loss(j), m.ln()))
            .collect();
        let log_mgf = |lambda: f64| {
            let top = support
                .iter()
                .map(|&(l, ln_m)| ln_m + lambda * l)
                .fold(f64::NEG_INFINITY, f64::max);
            top + support
                .iter()
                .map(|&(l, ln_m)| (ln_m + lambda * l - top).exp())
                .sum::<f64>()
                .ln()
        };
        let ln_tail = TAIL_MASS.ln();
        let (mut hi, mut lo) = (f64::INFINITY, f64::NEG_INFINITY);
        for k in -10..=12 {
            let lambda = 2f64.powi(k);
            hi = hi.min((t * log_mgf(lambda) - ln_tail) / lambda);
            lo = lo.max((ln_tail - t * log_mgf(-lambda)) / lambda);
        }
        (lo, hi)
    }

    /// Linear convolution (composition with a different PLD).
    fn convolve(&self, other: &Self, planner: &mut FftPlanner<f64>) -> Option<Self> {
        if self.masses.len() == 1 && self.first_index == 0 && self.infinity_mass == 0.0 {
            return Some(other.clone());
        }
        let len = self.masses.len() + other.masses.len() - 1;
        let n = len.next_power_of_two();
        if n > MAX_BINS {
            return None;
        }
        let spectrum = |masses: &[f64], planner: &mut FftPlanner<f64>| {
            let mut buf = vec![Complex::new(0.0, 0.0); n];
            for (b, &m) in buf.iter_mut().zip(masses) {
                b.re = m;
            }
            planner.plan_fft_forward(n).process(&mut buf);
            buf
        };
        let a = spectrum(&self.masses, planner);
        let mut b = spectrum(&other.masses, planner);
        for (x, y) in b.iter_mut().zip(&a) {
            *x *= *y;
        }
        planner.plan_fft_inverse(n).process(&mut b);
        let scale = 1.0 / n as f64;
        let mut negative = 0.0;
        let masses = b[..len]
            .iter()
            .map(|z| {
                let m = z.re * scale;
                if m < 0.0 {
                    negative -= m;
                }
                m.max(0.0)
            })
            .collect();
        let (p, r) = (self.infinity_mass, other.infinity_mass);
        let mut pmf = Self {
            h: self.h,
            first_index: self.first_index + other.first_index,
            masses,
            infinity_mass: (p + r - p * r + negative).min(1.0),
        };
        pmf.truncate();
        Some(pmf)
    }

    /// Drops tails of mass below [`TAIL_MASS`]: the lower tail is moved up
    /// into the first kept bin, the upper tail becomes infinite loss.
    fn truncate(&mut self) {
        let mut lower = 0.0;
        let mut start = 0;
        while start + 1 < self.masses.len() && lower + self.masses[start] < TAIL_MASS {
            lower += self.masses[start];
            start += 1;
        }
        let mut upper = 0.0;
        let mut end = self.masses.len();
        while end > start + 1 && upper + self.masses[end - 1] < TAIL_MASS {
            upper += self.masses[end - 1];
            end -= 1;
        }
        if start > 0 || end < self.masses.len() {
            let mut kept = self.masses[start..end].to_vec();
            kept[0] += lower;
            self.masses = kept;
            self.first_index += start as i64;
            self.infinity_mass = (self.infinity_mass + upper).min(1.0);
        }
    }

    /// δ(ε) = p_∞ + Σ_{ℓ > ε} p(ℓ)(1 − e^{ε−ℓ}).
    fn delta_for_epsilon(&self, epsilon: f64) -> f64 {
        let finite: f64 = self
            .masses
            .iter()
            .enumerate()
            .map(|(j, &m)| {
                let l = self.loss(j);
                if l > epsilon {
                    m * -(epsilon - l).exp_m1()
                } else {
                    0.0
                }
            })
            .sum();
        self.infinity_mass + finite
    }

    /// The smallest ε ≥ 0 with δ(ε) ≤ δ, solved exactly between grid points.
    fn epsilon_for_delta(&self, delta: f64) -> f64 {
        if self.infinity_mass > delta {
            return f64::INFINITY;
        }
        // Scan from the largest loss down. For the bins above the current
        // loss r keep M = Σ p and W = Σ p·e^{r−ℓ} (relative to r, so nothing
        // underflows when losses are in the thousands); on (r, next] the
        // curve is δ(ε) = p_∞ + M − e^{ε−r}·W.
        let (mut mass, mut weighted) = (0.0, 0.0);
        let decay = (-self.h).exp();
        for j in (0..self.masses.len()).rev() {
            let l = self.loss(j);
            if l <= 0.0 {
                // δ(0) = p_∞ + M − e^{−l}·W with W taken relative to this l.
                let w0 = weighted * (-l).exp();
                return if self.infinity_mass + mass - w0 > delta {
                    (((self.infinity_mass + mass - delta) / w0).ln()).max(0.0)
                } else {
                    0.0
                };
            }
            if self.infinity_mass + mass - weighted > delta {
                return l + ((self.infinity_mass + mass - delta) / weighted).ln();
            }
            // Move the reference down one grid step, then add this bin.
            mass += self.masses[j];
            weighted = (weighted + self.masses[j]) * decay;
        }
        // Every bin lies above 0: W is relative to the loss one step below
        // the lowest bin.
        let r = self.loss(0) - self.h;
        let w0 = weighted * (-r).exp();
        if self.infinity_mass + mass - w0 > delta {
            (r + ((self.infinity_mass + mass - delta) / weighted).ln()).max(0.0)
        } else {
            0.0
        }
    }
}

/// One direction of the Poisson-sampled Gaussian pair, with the logs the
/// discretization reuses.
struct SampledPair {
    q: f64,
    sigma: f64,
    s2: f64,
    ln_q: f64,
    /// −∞ when q = 1.
    ln_1mq: f64,
    adjacency: Adjacency,
}

/// A grid point's y-threshold and the weight w (sign and ln|w|) that
/// multiplies the N(0,σ²) mass in the split formulas:
///   remove: y(ℓ) = σ² ln(w/q) + ½ with w = e^ℓ − 1 + q = q·r(y)
///   add:    y(ℓ) = σ² ln(ρ) + ½ with ρ = (e^{−ℓ} − 1 + q)/q, and
///           w = e^ℓ q ρ = 1 − (1−q)e^ℓ
struct GridPoint {
    y: f64,
    sign: f64,
    ln_abs_w: f64,
}

impl SampledPair {
    fn new(q: f64, sigma: f64, adjacency: Adjacency) -> Self {
        Self {
            q,
            sigma,
            s2: sigma * sigma,
            ln_q: q.ln(),
            ln_1mq: (-q).ln_1p(),
            adjacency,
        }
    }

    /// The losses the single-step grid covers (GRID_STDDEVS of y).
    fn loss_range(&self) -> (f64, f64) {
        let (q, sigma, s2) = (self.q, self.sigma, self.s2);
        // L(y) for y where the mixture's likelihood ratio is e^{(2y−1)/(2σ²)}.
        let mixture_loss = |y: f64| log_add(self.ln_1mq, self.ln_q + (2.0 * y - 1.0) / (2.0 * s2));
        match self.adjacency {
            Adjacency::Remove => (
                if q < 1.0 {
                    self.ln_1mq
                } else {
                    (1.0 - 2.0 * GRID_STDDEVS * sigma) / (2.0 * s2)
                },
                mixture_loss(1.0 + GRID_STDDEVS * sigma),
            ),
            Adjacency::Add => (
                -mixture_loss(GRID_STDDEVS * sigma),
                if q < 1.0 {
                    -self.ln_1mq
                } else {
                    (1.0 + 2.0 * GRID_STDDEVS * sigma) / (2.0 * s2)
                },
            ),
        }
    }

    fn grid_point(&self, l: f64) -> GridPoint {
        let (q, s2, ln_q) = (self.q, self.s2, self.ln_q);
        let (y, w, ln_w) = match self.adjacency {
            Adjacency::Remove => {
                let ln_w = if l > 30.0 {
                    l + (-(1.0 - q) * (-l).exp()).ln_1p()
                } else {
                    (l.exp_m1() + q).abs().ln()
                };
                // Past ℓ = 30, e^ℓ − 1 + q is positive and only its log is needed.
                let w = if l > 30.0 { 1.0 } else { l.exp_m1() + q };
                let y = if w > 0.0 {
                    s2 * (ln_w - ln_q) + 0.5
                } else {
                    f64::NEG_INFINITY
                };
                (y, w, ln_w)
            }
            Adjacency::Add => {
                let w = if q < 1.0 {
                    -(l + self.ln_1mq).exp_m1()
                } else {
                    1.0
                };
                let ln_rho = if l < -30.0 {
                    -l + (-(1.0 - q) * l.exp()).ln_1p() - ln_q
                } else {
                    ((-l).exp_m1() + q).ln() - ln_q
                };
                let y = if w > 0.0 {
                    s2 * ln_rho + 0.5
                } else {
                    f64::NEG_INFINITY
                };
                (y, w, w.abs().ln())
            }
        };
        GridPoint {
            y,
            sign: w.signum(),
            ln_abs_w: ln_w,
        }
    }

    /// The P-mass of the interval between two grid points, split between
    /// them so both P- and Q-mass are kept (before dividing by e^h − 1):
    /// lower share → ℓ_{k−1}: e^{ℓ_k}·Q(I) − P(I);
    /// upper share → ℓ_k: P(I) − e^{ℓ_{k−1}}·Q(I) (times e^h).
    /// `None` when the interval holds no mass.
    fn split(
        &self,
        prev: &GridPoint,
        here: &GridPoint,
        (l_prev, l_here): (f64, f64),
    ) -> Option<(f64, f64)> {
        let sigma = self.sigma;
        let (ya, yb) = (prev.y.min(here.y), prev.y.max(here.y));
        let ln_m0 = log_interval(ya / sigma, yb / sigma);
        let ln_m1 = log_interval((ya - 1.0) / sigma, (yb - 1.0) / sigma);
        if ln_m0 == f64::NEG_INFINITY && ln_m1 == f64::NEG_INFINITY {
            return None;
        }
        let ln_q = self.ln_q;
        Some(match self.adjacency {
            Adjacency::Remove => {
                let q_m1 = (ln_q + ln_m1).exp();
                (
                    weighted(here.sign, here.ln_abs_w, ln_m0) - q_m1,
                    q_m1 - weighted(prev.sign, prev.ln_abs_w, ln_m0),
                )
            }
            Adjacency::Add => (
                (ln_q + l_here + ln_m1).exp() - weighted(here.sign, here.ln_abs_w, ln_m0),
                weighted(prev.sign, prev.ln_abs_w, ln_m0) - (ln_q + l_prev + ln_m1).exp(),
            ),
        })
    }

    /// P-mass below the first grid point (moved up to it) and above the
    /// last (infinite loss).
    fn outside(&self, y_first: f64, y_last: f64) -> (f64, f64) {
        let (q, sigma) = (self.q, self.sigma);
        match self.adjacency {
            Adjacency::Remove => (
                (1.0 - q) * (log_normal_sf(-y_first / sigma)).exp()
                    + q * (log_normal_sf(-(y_first - 1.0) / sigma)).exp(),
                (1.0 - q) * (log_normal_sf(y_last / sigma)).exp()
                    + q * (log_normal_sf((y_last - 1.0) / sigma)).exp(),
            ),
            Adjacency::Add => (
                log_normal_sf(y_first / sigma).exp(),
                log_normal_sf(-y_last / sigma).exp(),
            ),
        }
    }
}

fn self_loss(first_index: i64, k: usize, h: f64) -> f64 {
    (first_index + k as i64) as f64 * h
}

/// z^n by repeated squaring.
fn complex_pow(mut z: Complex<f64>, mut n: u64) -> Complex<f64> {
    let mut acc = Complex::new(1.0, 0.0);
    while n > 0 {
        if n & 1 == 1 {
            acc *= z;
        }
        z *= z;
        n >>= 1;
    }
    acc
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::math::{normal_cdf, normal_sf};

    /// Exact one-step δ(ε) of the remove direction.
    fn exact_remove_delta(q: f64, sigma: f64, eps: f64) -> f64 {
        if eps.exp() <= 1.0 - q {
            return 1.0 - eps.exp();
        }
        let y = sigma * sigma * ((eps.exp_m1() + q) / q).ln() + 0.5;
        q * normal_sf((y - 1.0) / sigma) - (eps.exp_m1() + q) * normal_sf(y / sigma)
    }

    /// Exact one-step δ(ε) of the add direction.
    fn exact_add_delta(q: f64, sigma: f64, eps: f64) -> f64 {
        let inner = (-eps).exp_m1() + q;
        if inner <= 0.0 {
            return 0.0;
        }
        let y = sigma * sigma * (inner / q).ln() + 0.5;
        normal_cdf(y / sigma)
            - eps.exp() * ((1.0 - q) * normal_cdf(y / sigma) + q * normal_cdf((y - 1.0) / sigma))
    }

    #[test]
    fn single_step_masses_sum_to_one() {
        for adjacency in [Adjacency::Remove, Adjacency::Add] {
            for (q, sigma) in [(0.01, 1.0), (1.0, 2.0), (0.3, 0.7)] {
                let pmf = LossPmf::sampled_gaussian(q, sigma, 1e-3, adjacency).unwrap();
                let total: f64 = pmf.masses.iter().sum::<f64>() + pmf.infinity_mass;
                assert!(
                    (total - 1.0).abs() < 1e-9,
                    "{adjacency:?} {q} {sigma}: {total}"
                );
            }
        }
    }

    #[test]
    fn single_step_delta_dominates_and_matches_at_grid_points() {
        let (q, sigma, h) = (0.05, 0.8, 1e-3);
        let remove = LossPmf::sampled_gaussian(q, sigma, h, Adjacency::Remove).unwrap();
        let add = LossPmf::sampled_gaussian(q, sigma, h, Adjacency::Add).unwrap();
        for eps in [0.01, 0.05, 0.1, 0.3, 0.6] {
            let grid_eps = (eps / h).round() * h;
            for (pmf, exact) in [
                (&remove, exact_remove_delta(q, sigma, grid_eps)),
                (&add, exact_add_delta(q, sigma, grid_eps)),
            ] {
                let got = pmf.delta_for_epsilon(grid_eps);
                assert!(got >= exact * (1.0 - 1e-9) - 1e-15, "{got} < {exact}");
                assert!(
                    (got - exact).abs() <= 1e-7 * exact.max(1e-12) + 1e-13,
                    "{got} vs {exact}"
                );
            }
            // Off-grid: still an upper bound.
            let off = grid_eps + 0.4 * h;
            assert!(remove.delta_for_epsilon(off) >= exact_remove_delta(q, sigma, off) - 1e-15);
        }
    }

    #[test]
    fn epsilon_and_delta_are_inverse() {
        let pmf = LossPmf::sampled_gaussian(0.1, 0.9, 1e-4, Adjacency::Remove).unwrap();
        let eps = pmf.epsilon_for_delta(1e-3);
        let back = pmf.delta_for_epsilon(eps);
        assert!((back / 1e-3 - 1.0).abs() < 1e-6, "{back}");
    }

    #[test]
    fn complex_pow_matches_powi() {
        let z = Complex::new(0.6, 0.7);
        let p = complex_pow(z, 13);
        let expected = z.powi(13);
        assert!((p - expected).norm() < 1e-14);
    }
}
