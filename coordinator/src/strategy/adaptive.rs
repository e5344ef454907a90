//! Adaptive server optimizers: FedAdagrad, FedYogi and FedAdam (Reddi, Charles,
//! Zaheer, Garrett, Rush, Konečný, Kumar & McMahan, ICLR 2021, "Adaptive
//! Federated Optimization", Algorithm 2).
//!
//! The round's averaged change Δ = Σ_k (n_k/n)·w_k − x is a pseudo-gradient;
//! the server keeps a first moment m and a second moment v per parameter and
//! steps
//!
//! ```text
//! m ← β1·m + (1 − β1)·Δ
//! v ← v + Δ²                                   FedAdagrad
//! v ← v − (1 − β2)·Δ²·sign(v − Δ²)             FedYogi
//! v ← β2·v + (1 − β2)·Δ²                       FedAdam
//! x ← x + η·m / (√v + τ)
//! ```
//!
//! with m₀ = 0 and v₀ = τ² (the paper asks v₋₁ ≥ τ²), and no bias correction,
//! as in the paper. τ bounds the per-coordinate step, η is the server learning
//! rate (the paper's best values on its benchmarks are η ∈ [10⁻², 10⁻¹] with
//! τ = 10⁻³ for Adam and Yogi). The paper averages Δ uniformly over the
//! sampled clients; here, as in FedAvg, the average is weighted by examples.
//! The three differ only in how v moves, so they share this one file; m and v
//! are the strategy's state.

use ndarray::Array1;

use super::{
    FitResult, RoundContext, SecureSum, Strategy, StrategyError, StrategyState, check_buffer,
    mean_change, secure_mean_change, take_buffer,
};

const FIRST: &str = "m";
const SECOND: &str = "v";

/// How the second moment v moves with Δ².
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SecondMoment {
    /// v ← v + Δ²
    Adagrad,
    /// v ← v − (1 − β2)·Δ²·sign(v − Δ²)
    Yogi { beta2: f64 },
    /// v ← β2·v + (1 − β2)·Δ²
    Adam { beta2: f64 },
}

impl SecondMoment {
    fn step(self, v: f64, squared: f64) -> f64 {
        match self {
            Self::Adagrad => v + squared,
            Self::Yogi { beta2 } => v - (1.0 - beta2) * squared * sign(v - squared),
            Self::Adam { beta2 } => beta2 * v + (1.0 - beta2) * squared,
        }
    }
}

/// sign(x) with sign(0) = 0, as the paper's Yogi update uses it.
fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// FedAdagrad, FedYogi or FedAdam, by its [`SecondMoment`].
#[derive(Debug, Clone)]
pub struct Adaptive {
    second_moment: SecondMoment,
    /// η
    server_learning_rate: f64,
    beta1: f64,
    tau: f64,
    /// m and v, one value per parameter; empty until the first round.
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adaptive {
    pub fn new(
        second_moment: SecondMoment,
        server_learning_rate: f64,
        beta1: f64,
        tau: f64,
    ) -> Self {
        Self {
            second_moment,
            server_learning_rate,
            beta1,
            tau,
            m: Vec::new(),
            v: Vec::new(),
        }
    }
}

impl Adaptive {
    /// One server step along the round's mean change.
    fn step(
        &mut self,
        global: &Array1<f32>,
        change: &Array1<f64>,
    ) -> Result<Array1<f32>, StrategyError> {
        let (mut m, mut v) = if self.m.is_empty() {
            let tau_squared = (self.tau * self.tau) as f32;
            (vec![0.0; global.len()], vec![tau_squared; global.len()])
        } else {
            check_buffer(self.name(), FIRST, &self.m, global)?;
            check_buffer(self.name(), SECOND, &self.v, global)?;
            (self.m.clone(), self.v.clone())
        };
        let mut next = global.clone();
        for (((x, m), v), d) in next.iter_mut().zip(&mut m).zip(&mut v).zip(change) {
            let first = self.beta1 * f64::from(*m) + (1.0 - self.beta1) * d;
            let second = self.second_moment.step(f64::from(*v), d * d).max(0.0);
            *m = first as f32;
            *v = second as f32;
            *x = (f64::from(*x) + self.server_learning_rate * first / (second.sqrt() + self.tau))
                as f32;
        }
        self.m = m;
        self.v = v;
        Ok(next)
    }
}

impl Strategy for Adaptive {
    fn name(&self) -> &'static str {
        match self.second_moment {
            SecondMoment::Adagrad => "fedadagrad",
            SecondMoment::Yogi { .. } => "fedyogi",
            SecondMoment::Adam { .. } => "fedadam",
        }
    }

    fn aggregate_fit(
        &mut self,
        global: &Array1<f32>,
        results: &[FitResult],
        _context: &RoundContext,
    ) -> Result<Array1<f32>, StrategyError> {
        let change = mean_change(global, results)?;
        self.step(global, &change)
    }

    /// Under secure aggregation the mean change is all there is, and all the
    /// server optimizer needs.
    fn aggregate_secure_sum(
        &mut self,
        global: &Array1<f32>,
        sum: &SecureSum,
        _context: &RoundContext,
    ) -> Result<Array1<f32>, StrategyError> {
        let change = secure_mean_change(global, sum)?;
        self.step(global, &change)
    }

    fn state(&self) -> Option<StrategyState> {
        Some(StrategyState {
            strategy: self.name().into(),
            buffers: [
                (FIRST.to_owned(), self.m.clone()),
                (SECOND.to_owned(), self.v.clone()),
            ]
            .into(),
        })
    }

    fn restore(&mut self, mut state: StrategyState) -> Result<(), StrategyError> {
        let m = take_buffer(self.name(), &mut state, FIRST)?;
        let v = take_buffer(self.name(), &mut state, SECOND)?;
        if m.len() != v.len() {
            return Err(StrategyError::State {
                strategy: self.name(),
                problem: format!("`m` has {} values but `v` {}", m.len(), v.len()),
            });
        }
        (self.m, self.v) = (m, v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::{CONTEXT, assert_close, result};
    use ndarray::array;

    const ETA: f64 = 0.1;
    const BETA1: f64 = 0.9;
    const BETA2: f64 = 0.99;
    const TAU: f64 = 1e-3;

    /// One node moves the zero model to `delta`: Δ = delta.
    fn step(strategy: &mut Adaptive, global: &Array1<f32>, delta: Array1<f32>) -> Array1<f32> {
        let results = [result("a", global + &delta, 10)];
        strategy.aggregate_fit(global, &results, &CONTEXT).unwrap()
    }

    // Hand-computed for Δ = (0.1, −0.2), v₀ = τ² = 1e-6:
    // m = 0.1·Δ = (0.01, −0.02).
    // Adam:    v = 0.99·1e-6 + 0.01·Δ² = (1.0099e-4, 4.0099e-4),
    //          x = 0.1·m/(√v + τ) = (0.0905028, −0.0951261).
    // Yogi:    sign(1e-6 − Δ²) = −1, v = 1e-6 + 0.01·Δ² = (1.01e-4, 4.01e-4),
    //          x = (0.0904988, −0.0951249).
    // Adagrad: v = 1e-6 + Δ² = (0.010001, 0.040001), x = (0.0099005, −0.0099501).
    #[test]
    fn first_step_on_a_known_gradient() {
        let global = array![0.0, 0.0];
        let delta = array![0.1, -0.2];
        for (moment, want) in [
            (
                SecondMoment::Adam { beta2: BETA2 },
                [0.090_502_83, -0.095_126_05],
            ),
            (
                SecondMoment::Yogi { beta2: BETA2 },
                [0.090_498_76, -0.095_124_92],
            ),
            (SecondMoment::Adagrad, [0.009_900_5, -0.009_950_125]),
        ] {
            let mut strategy = Adaptive::new(moment, ETA, BETA1, TAU);
            let next = step(&mut strategy, &global, delta.clone());
            assert_close(&next, &want, 1e-6);
        }
    }

    // Second step, Δ₂ = 0.05 after Δ₁ = 0.1 (one coordinate):
    // m₂ = 0.9·0.01 + 0.1·0.05 = 0.014.
    // Adam: v₂ = 0.99·1.0099e-4 + 0.01·0.0025 = 1.24980e-4, x₂ = 0.2054506.
    // Yogi: sign(1.01e-4 − 0.0025) = −1, v₂ = 1.01e-4 + 0.01·0.0025 = 1.26e-4,
    //       x₂ = 0.2050184: Yogi's v grows additively where Adam's decays.
    #[test]
    fn moments_carry_into_the_second_step() {
        for (moment, want) in [
            (SecondMoment::Adam { beta2: BETA2 }, 0.205_450_55),
            (SecondMoment::Yogi { beta2: BETA2 }, 0.205_018_44),
        ] {
            let mut strategy = Adaptive::new(moment, ETA, BETA1, TAU);
            let x1 = step(&mut strategy, &array![0.0], array![0.1]);
            let x2 = step(&mut strategy, &x1, array![0.05]);
            assert_close(&x2, &[want], 1e-6);
        }
    }

    #[test]
    fn moments_survive_a_restore_and_refuse_the_wrong_length() {
        let mut before = Adaptive::new(SecondMoment::Adam { beta2: BETA2 }, ETA, BETA1, TAU);
        let x1 = step(&mut before, &array![0.0, 0.0], array![0.1, -0.2]);
        let state = before.state().unwrap();
        assert_eq!(state.strategy, "fedadam");
        let mut after = Adaptive::new(SecondMoment::Adam { beta2: BETA2 }, ETA, BETA1, TAU);
        after.restore(state).unwrap();
        assert_eq!(
            step(&mut before, &x1, array![0.05, 0.05]),
            step(&mut after, &x1, array![0.05, 0.05])
        );
        let err = after
            .aggregate_fit(&array![0.0], &[result("a", array![1.0], 1)], &CONTEXT)
            .unwrap_err();
        assert!(matches!(err, StrategyError::State { .. }), "{err}");
    }
}
