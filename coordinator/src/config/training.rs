//! `[training]`: the nodes' local training in every round.

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid, positive};

/// The `[training]` section, sent to the nodes with every fit task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// Passes over a node's training rows per round.
    pub local_epochs: u32,
    /// Rows per SGD step.
    pub batch_size: u32,
    /// The nodes' SGD learning rate.
    pub learning_rate: f64,
}

impl TrainingConfig {
    /// Refuses zero epochs or batch size and a learning rate that is not positive.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.local_epochs == 0 {
            return Err(invalid("training.local_epochs", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(invalid("training.batch_size", "must be at least 1"));
        }
        positive("training.learning_rate", self.learning_rate)
    }
}
