//! FedOpt: a server optimizer applied to the round's pseudo-gradient (Reddi,
//! Charles, Zaheer, Garrett, Rush, Konečný, Kumar & McMahan, ICLR 2021,
//! "Adaptive Federated Optimization", Algorithm 2; Flower's `FedOpt` base
//! strategy has the same shape).
//!
//! The round's averaged change Δ = Σ_k (n_k/n)·w_k − x (or, under secure
//! aggregation, the mean change the secure sum reveals) is treated as a
//! gradient; a [`ServerOptimizer`] steps the global model x along it, keeping
//! per-parameter moments as its state. [`FedOpt`] does everything the
//! optimizers share: computing Δ, starting, checking, persisting and restoring
//! the moments; each optimizer (`fedavgm.rs`, `adaptive.rs`) is only its
//! update rule for one parameter.

use ndarray::Array1;

use super::{
    FitResult, RoundContext, SecureSum, Strategy, StrategyError, StrategyState, mean_change,
    secure_mean_change, take_buffer,
};

/// A server optimizer's update rule, one parameter at a time, with `K`
/// moments kept per parameter.
pub trait ServerOptimizer<const K: usize>: std::fmt::Debug + Send + Sync {
    /// The strategy's name (`[strategy].name`), in records and stored state.
    fn name(&self) -> &'static str;

    /// The moments' names, in the order [`ServerOptimizer::step`] sees them;
    /// each is one buffer of the stored state.
    fn moment_names(&self) -> [&'static str; K];

    /// One parameter's moments before the first round.
    fn initial_moments(&self) -> [f32; K];

    /// One parameter's step along its pseudo-gradient coordinate `change`:
    /// updates its `moments` and returns its next value.
    fn step(&self, parameter: f32, moments: &mut [f32; K], change: f64) -> f32;
}

/// The strategy that runs a [`ServerOptimizer`] on the averaged change.
#[derive(Debug, Clone)]
pub struct FedOpt<O, const K: usize> {
    optimizer: O,
    /// Every parameter's moments; empty until the first round.
    moments: Vec<[f32; K]>,
}

impl<O: ServerOptimizer<K>, const K: usize> FedOpt<O, K> {
    /// `optimizer` with its moments at their initial values.
    pub fn new(optimizer: O) -> Self {
        Self {
            optimizer,
            moments: Vec::new(),
        }
    }

    /// One server step along the round's mean change. On error the moments
    /// are unchanged.
    fn step(
        &mut self,
        global: &Array1<f32>,
        change: &Array1<f64>,
    ) -> Result<Array1<f32>, StrategyError> {
        let mut moments = if self.moments.is_empty() {
            vec![self.optimizer.initial_moments(); global.len()]
        } else {
            self.check_moments(global.len())?;
            self.moments.clone()
        };
        let next = global
            .iter()
            .zip(&mut moments)
            .zip(change)
            .map(|((&x, m), &d)| self.optimizer.step(x, m, d))
            .collect();
        self.moments = moments;
        Ok(next)
    }

    /// Refuses restored moments of another model's length.
    fn check_moments(&self, parameters: usize) -> Result<(), StrategyError> {
        if self.moments.len() == parameters {
            return Ok(());
        }
        Err(StrategyError::State {
            strategy: self.optimizer.name(),
            problem: format!(
                "the moments ({}) have {} values, the model {parameters}",
                self.optimizer.moment_names().join(", "),
                self.moments.len()
            ),
        })
    }
}

impl<O: ServerOptimizer<K>, const K: usize> Strategy for FedOpt<O, K> {
    fn name(&self) -> &'static str {
        self.optimizer.name()
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

    /// One buffer per moment, one value per parameter.
    fn state(&self) -> Option<StrategyState> {
        let buffers = (0..K).map(|j| {
            let buffer = self.moments.iter().map(|m| m[j]).collect();
            (self.optimizer.moment_names()[j].to_owned(), buffer)
        });
        Some(StrategyState {
            strategy: self.name().into(),
            buffers: buffers.collect(),
        })
    }

    fn restore(&mut self, mut state: StrategyState) -> Result<(), StrategyError> {
        let name = self.name();
        let names = self.optimizer.moment_names();
        let buffers = names
            .iter()
            .map(|moment| take_buffer(name, &mut state, moment))
            .collect::<Result<Vec<_>, _>>()?;
        let parameters = buffers.first().map_or(0, Vec::len);
        if let Some(j) = buffers.iter().position(|b| b.len() != parameters) {
            return Err(StrategyError::State {
                strategy: name,
                problem: format!(
                    "`{}` has {parameters} values but `{}` {}",
                    names[0],
                    names[j],
                    buffers[j].len()
                ),
            });
        }
        self.moments = (0..parameters)
            .map(|i| std::array::from_fn(|j| buffers[j][i]))
            .collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::FedAvgM;
    use crate::strategy::test_support::{CONTEXT, result};
    use ndarray::array;

    #[test]
    fn a_state_taken_before_the_first_round_restores_to_a_fresh_optimizer() {
        let fresh = FedOpt::new(FedAvgM::new(1.0, 0.5));
        let state = fresh.state().unwrap();
        assert_eq!(state.buffers["velocity"], Vec::<f32>::new());
        let mut restored = FedOpt::new(FedAvgM::new(1.0, 0.5));
        restored.restore(state).unwrap();
        let results = [result("a", array![1.0, -2.0], 1)];
        let global = array![0.0, 0.0];
        assert_eq!(
            restored.aggregate_fit(&global, &results, &CONTEXT).unwrap(),
            fresh
                .clone()
                .aggregate_fit(&global, &results, &CONTEXT)
                .unwrap()
        );
    }

    #[test]
    fn restore_refuses_a_missing_moment_and_moments_of_unequal_length() {
        let mut strategy = FedOpt::new(crate::strategy::Adaptive::new(
            crate::strategy::SecondMoment::Adagrad,
            0.1,
            0.9,
            1e-3,
        ));
        let state = |m: Vec<f32>, v: Option<Vec<f32>>| StrategyState {
            strategy: "fedadagrad".into(),
            buffers: [("m".to_owned(), m)]
                .into_iter()
                .chain(v.map(|v| ("v".to_owned(), v)))
                .collect(),
        };
        let missing = strategy.restore(state(vec![0.0], None)).unwrap_err();
        assert!(missing.to_string().contains("no `v` buffer"), "{missing}");
        let unequal = strategy
            .restore(state(vec![0.0, 0.0], Some(vec![1.0])))
            .unwrap_err();
        assert!(
            unequal.to_string().contains("`m` has 2 values but `v` 1"),
            "{unequal}"
        );
        strategy
            .restore(state(vec![0.0, 0.0], Some(vec![1.0, 1.0])))
            .unwrap();
        let err = strategy
            .aggregate_fit(&array![0.0], &[result("a", array![1.0], 1)], &CONTEXT)
            .unwrap_err();
        assert!(matches!(err, StrategyError::State { .. }), "{err}");
    }
}
