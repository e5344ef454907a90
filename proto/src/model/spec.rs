//! A built-in dense model's architecture as configs and files state it
//! (serde): the coordinator's `[model]` section, the node's saved models
//! (`cohort_client::model::SavedModel`) and the exported files' metadata
//! (`crate::export`) write the same JSON. The protocol carries the
//! [`super::ModelDescriptor`] it builds instead.

use serde::{Deserialize, Serialize};

/// A built-in dense model's architecture, as files state it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSpec {
    /// The model's kind: `logistic_regression` or `mlp`.
    pub kind: String,
    /// Input features.
    pub num_features: u32,
    /// Output classes.
    pub num_classes: u32,
    /// Widths of the hidden layers, input side first; empty for logistic
    /// regression.
    pub hidden_layers: Vec<u32>,
}

impl SavedSpec {
    /// Multinomial logistic regression (no hidden layer).
    pub fn logistic_regression(num_features: u32, num_classes: u32) -> Self {
        Self {
            kind: "logistic_regression".into(),
            num_features,
            num_classes,
            hidden_layers: Vec::new(),
        }
    }
}
