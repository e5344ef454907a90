//! How a node trains in one round.

use cohort_proto::v1;

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
    /// FedProx's μ: weight of the proximal term μ/2·‖w − w_start‖² added to
    /// the loss; 0 trains plain SGD.
    pub proximal_mu: f64,
    /// Norm bounding: the trained model's change from the start is clipped to
    /// this L2 norm; `None` leaves it as trained.
    pub max_update_norm: Option<f64>,
}

impl From<&v1::TrainingConfig> for LocalTrainingConfig {
    /// The settings a fit task asks for; a `max_update_norm` of 0 (or less)
    /// means no bound.
    fn from(config: &v1::TrainingConfig) -> Self {
        Self {
            epochs: config.local_epochs,
            batch_size: config.batch_size as usize,
            learning_rate: config.learning_rate,
            seed: config.seed,
            proximal_mu: config.proximal_mu,
            max_update_norm: Some(config.max_update_norm).filter(|&n| n > 0.0),
        }
    }
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
        if !(self.proximal_mu.is_finite() && self.proximal_mu >= 0.0) {
            return Err(TrainingError::Config {
                field: "proximal_mu",
                problem: format!("must be finite and non-negative, got {}", self.proximal_mu),
            });
        }
        if let Some(norm) = self.max_update_norm
            && !(norm.is_finite() && norm > 0.0)
        {
            return Err(TrainingError::Config {
                field: "max_update_norm",
                problem: format!("must be finite and positive, got {norm}"),
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
            proximal_mu: 0.0,
            max_update_norm: None,
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
        for proximal_mu in [-0.1, f64::NAN] {
            assert_eq!(
                refused_field(LocalTrainingConfig {
                    proximal_mu,
                    ..valid()
                }),
                "proximal_mu"
            );
        }
        for norm in [0.0, -1.0, f64::INFINITY] {
            assert_eq!(
                refused_field(LocalTrainingConfig {
                    max_update_norm: Some(norm),
                    ..valid()
                }),
                "max_update_norm"
            );
        }
    }
}
