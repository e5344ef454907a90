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
//! are the strategy's state, kept by [`FedOpt`](super::FedOpt), which runs
//! this update rule.

use super::ServerOptimizer;

/// How the second moment v moves with Δ².
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SecondMoment {
    /// v ← v + Δ²
    Adagrad,
    /// v ← v − (1 − β2)·Δ²·sign(v − Δ²)
    Yogi {
        /// β2, in [0, 1).
        beta2: f64,
    },
    /// v ← β2·v + (1 − β2)·Δ²
    Adam {
        /// β2, in [0, 1).
        beta2: f64,
    },
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

/// FedAdagrad, FedYogi or FedAdam, by its [`SecondMoment`]: the update rule
/// [`FedOpt`](super::FedOpt) runs.
#[derive(Debug, Clone)]
pub struct Adaptive {
    second_moment: SecondMoment,
    /// η
    server_learning_rate: f64,
    beta1: f64,
    tau: f64,
}

impl Adaptive {
    /// The optimizer `second_moment` names, with η, β1 and τ (validated by
    /// the config).
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
        }
    }
}

impl ServerOptimizer<2> for Adaptive {
    fn name(&self) -> &'static str {
        match self.second_moment {
            SecondMoment::Adagrad => "fedadagrad",
            SecondMoment::Yogi { .. } => "fedyogi",
            SecondMoment::Adam { .. } => "fedadam",
        }
    }

    fn moment_names(&self) -> [&'static str; 2] {
        ["m", "v"]
    }

    /// m₀ = 0, v₀ = τ².
    fn initial_moments(&self) -> [f32; 2] {
        [0.0, (self.tau * self.tau) as f32]
    }

    fn step(&self, x: f32, [m, v]: &mut [f32; 2], change: f64) -> f32 {
        let first = self.beta1 * f64::from(*m) + (1.0 - self.beta1) * change;
        let second = self
            .second_moment
            .step(f64::from(*v), change * change)
            .max(0.0);
        *m = first as f32;
        *v = second as f32;
        (f64::from(x) + self.server_learning_rate * first / (second.sqrt() + self.tau)) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::test_support::{CONTEXT, assert_close, result};
    use crate::strategy::{FedOpt, Strategy, StrategyError};
    use ndarray::{Array1, array};

    type AdaptiveStrategy = FedOpt<Adaptive, 2>;

    fn adaptive(moment: SecondMoment) -> AdaptiveStrategy {
        FedOpt::new(Adaptive::new(moment, ETA, BETA1, TAU))
    }

    const ETA: f64 = 0.1;
    const BETA1: f64 = 0.9;
    const BETA2: f64 = 0.99;
    const TAU: f64 = 1e-3;

    /// One node moves the zero model to `delta`: Δ = delta.
    fn step(
        strategy: &mut AdaptiveStrategy,
        global: &Array1<f32>,
        delta: Array1<f32>,
    ) -> Array1<f32> {
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
            let mut strategy = adaptive(moment);
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
            let mut strategy = adaptive(moment);
            let x1 = step(&mut strategy, &array![0.0], array![0.1]);
            let x2 = step(&mut strategy, &x1, array![0.05]);
            assert_close(&x2, &[want], 1e-6);
        }
    }

    #[test]
    fn moments_survive_a_restore_and_refuse_the_wrong_length() {
        let mut before = adaptive(SecondMoment::Adam { beta2: BETA2 });
        let x1 = step(&mut before, &array![0.0, 0.0], array![0.1, -0.2]);
        let state = before.state().unwrap();
        assert_eq!(state.strategy, "fedadam");
        let mut after = adaptive(SecondMoment::Adam { beta2: BETA2 });
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
