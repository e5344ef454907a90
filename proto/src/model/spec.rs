//! A model's architecture as files state it (serde): the node's saved
//! models (`cohort_client::model::SavedModel`) and the exported files'
//! metadata ([`crate::export`]) write the same JSON.

use serde::{Deserialize, Serialize};

use crate::v1::ModelSpec;

/// A model's architecture (the federation's `ModelSpec`), as files state it.
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

    /// The protocol's form of this spec.
    pub fn to_proto(&self) -> ModelSpec {
        ModelSpec {
            kind: self.kind.clone(),
            num_features: self.num_features,
            num_classes: self.num_classes,
            hidden_layers: self.hidden_layers.clone(),
        }
    }

    /// The spec a protocol `ModelSpec` describes.
    pub fn from_proto(spec: &ModelSpec) -> Self {
        Self {
            kind: spec.kind.clone(),
            num_features: spec.num_features,
            num_classes: spec.num_classes,
            hidden_layers: spec.hidden_layers.clone(),
        }
    }
}
