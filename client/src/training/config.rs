//! How a node trains in one round.

use super::TrainingError;

/// Hyper-parameters of one round of local training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocalTrainingConfig {
    /// Passes over the node's training rows.
    pub epochs: u32,
    /// Rows per SGD step (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// SGD step size.
    pub learning_rate: f64,
    /// Seeds the order of rows in every epoch.
    pub seed: u64,
}

impl LocalTrainingConfig {
    /// Refuses zero epochs or batch size and a learning rate that is not finite and positive.
    pub fn validate(&self) -> Result<(), TrainingError> {
        if self.epochs == 0 {
            return Err(TrainingError::Config {
                field: "epochs",
                problem: "must be at least 1".into(),
            });
        }
        if self.batch_size == 0 {
            return Err(TrainingError::Config {
                field: "batch_size",
                problem: "must be at least 1".into(),
            });
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(TrainingError::Config {
                field: "learning_rate",
                problem: format!("must be finite and positive, got {}", self.learning_rate),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> LocalTrainingConfig {
        LocalTrainingConfig {
            epochs: 1,
            batch_size: 8,
            learning_rate: 0.1,
            seed: 0,
        }
    }

    fn refused_field(config: LocalTrainingConfig) -> &'static str {
        match config.validate() {
            Err(TrainingError::Config { field, .. }) => field,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn invalid_settings_name_their_field() {
        assert!(valid().validate().is_ok());
        assert_eq!(
            refused_field(LocalTrainingConfig {
                epochs: 0,
                ..valid()
            }),
            "epochs"
        );
        assert_eq!(
            refused_field(LocalTrainingConfig {
                batch_size: 0,
                ..valid()
            }),
            "batch_size"
        );
        for learning_rate in [0.0, -0.1, f64::NAN, f64::INFINITY] {
            assert_eq!(
                refused_field(LocalTrainingConfig {
                    learning_rate,
                    ..valid()
                }),
                "learning_rate"
            );
        }
    }
}
