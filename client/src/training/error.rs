//! Why local training or evaluation did not run.

use crate::model::ModelError;

/// Everything that can go wrong in [`crate::training`].
#[derive(Debug, thiserror::Error)]
pub enum TrainingError {
    #[error("local training config: {field} {problem}")]
    Config {
        field: &'static str,
        problem: String,
    },

    #[error(transparent)]
    Model(#[from] ModelError),

    #[error("no examples to {purpose} on")]
    NoExamples { purpose: &'static str },

    #[error("the model takes {model} features but the data has {data}")]
    FeatureCount { model: usize, data: usize },

    #[error("row {row} has label {label}, but the model has only {num_classes} classes")]
    LabelOutOfRange {
        row: usize,
        label: u32,
        num_classes: usize,
    },

    #[error("training diverged in epoch {epoch}: the loss is {loss}; lower the learning rate")]
    Diverged { epoch: u32, loss: f64 },
}
