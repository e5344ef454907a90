//! Why local training or evaluation did not run.

use crate::model::ModelError;

/// Everything that can go wrong in [`crate::training`].
#[derive(Debug, thiserror::Error)]
pub enum TrainingError {
    /// A training setting (or DP-SGD parameter) is invalid.
    #[error("local training config: {field} {problem}")]
    Config {
        /// The setting's name.
        field: &'static str,
        /// What is wrong with its value.
        problem: String,
    },

    /// The model could not be built from its parameters or read back.
    #[error(transparent)]
    Model(#[from] ModelError),

    /// The data set is empty.
    #[error("no examples to {purpose} on")]
    NoExamples {
        /// What the examples were needed for (`train`, `evaluate`).
        purpose: &'static str,
    },

    /// The data's feature count is not the model's input width.
    #[error("the model takes {model} features but the data has {data}")]
    FeatureCount {
        /// The model's inputs.
        model: usize,
        /// The data's features.
        data: usize,
    },

    /// A label names a class the model does not have.
    #[error("row {row} has label {label}, but the model has only {num_classes} classes")]
    LabelOutOfRange {
        /// The row (0-based).
        row: usize,
        /// Its label.
        label: u32,
        /// The model's output classes.
        num_classes: usize,
    },

    /// An epoch's mean loss was NaN or infinite.
    #[error("training diverged in epoch {epoch}: the loss is {loss}; lower the learning rate")]
    Diverged {
        /// The epoch (1-based).
        epoch: u32,
        /// Its mean loss.
        loss: f64,
    },
}
