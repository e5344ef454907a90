//! `[model]`: the model every node trains, either a built-in dense model
//! (`kind`, its widths and `init_seed`) or any model a node SDK builds
//! (`descriptor`, with its first parameters in the safetensors file
//! `initial_parameters`; `cohort-coordinator model init --from FILE` prints
//! both for a file). Either way the federation knows the model only by its
//! [`ModelDescriptor`].

use std::path::{Path, PathBuf};

use cohort_proto::model::{ModelDescriptor, ParameterLayout, SavedSpec};
use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

/// The `[model]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// A built-in dense model: `logistic_regression` or `mlp`. Absent when
    /// `descriptor` names the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Width of a data row, label excluded.
    pub num_features: u32,
    /// Number of labels (at least 2).
    pub num_classes: u32,
    /// Widths of an MLP's hidden layers; empty for logistic regression.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hidden_layers: Vec<u32>,
    /// Seed of a built-in model's initial weights.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub init_seed: u64,
    /// Any other model, as its author's node SDK code describes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor: Option<ModelDescriptor>,
    /// With `descriptor`: the safetensors file of the first model
    /// (`cohort_proto::export::ModelFile`), read at the federation's first
    /// start only. Where the file lies is this host's business: coordinators
    /// of one federation may keep it at different paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_parameters: Option<PathBuf>,
}

/// Where the federation's first model comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum InitialModel<'a> {
    /// A built-in dense model drawn from a seed.
    Seeded {
        /// Its layout.
        layout: ParameterLayout,
        /// The seed.
        seed: u64,
    },
    /// The parameters in a file the federation's owner supplied.
    File(&'a Path),
}

impl ModelConfig {
    /// The section of the built-in dense model `spec`, first drawn from
    /// `init_seed`.
    pub fn dense(spec: SavedSpec, init_seed: u64) -> Self {
        Self {
            kind: Some(spec.kind),
            num_features: spec.num_features,
            num_classes: spec.num_classes,
            hidden_layers: spec.hidden_layers,
            init_seed,
            descriptor: None,
            initial_parameters: None,
        }
    }

    /// The section of the model `descriptor`, for rows of `num_features`
    /// features labelled `0..num_classes`, first drawn from the file
    /// `initial_parameters` (what `cohort-coordinator model init` prints).
    pub fn described(
        descriptor: ModelDescriptor,
        initial_parameters: PathBuf,
        num_features: u32,
        num_classes: u32,
    ) -> Self {
        Self {
            kind: None,
            num_features,
            num_classes,
            hidden_layers: Vec::new(),
            init_seed: 0,
            descriptor: Some(descriptor),
            initial_parameters: Some(initial_parameters),
        }
    }

    /// The built-in dense architecture, if `kind` names one.
    pub fn dense_spec(&self) -> Option<SavedSpec> {
        Some(SavedSpec {
            kind: self.kind.clone()?,
            num_features: self.num_features,
            num_classes: self.num_classes,
            hidden_layers: self.hidden_layers.clone(),
        })
    }

    /// The model's descriptor, which the other sections' checks size
    /// against.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for `model` when neither or both of `kind`
    /// and `descriptor` are given, a built-in spec describes no model, a
    /// descriptor fails its checks, or the keys of one kind of model are
    /// given for the other.
    pub fn validate(&self) -> Result<ModelDescriptor, ConfigError> {
        match (&self.dense_spec(), &self.descriptor) {
            (Some(spec), None) => {
                if self.initial_parameters.is_some() {
                    return Err(invalid(
                        "model.initial_parameters",
                        "is for a `descriptor` model; a built-in `kind` starts from `init_seed`",
                    ));
                }
                let layout =
                    ParameterLayout::of(spec).map_err(|e| invalid("model", e.to_string()))?;
                Ok(layout.descriptor())
            }
            (None, Some(descriptor)) => {
                if self.num_features == 0 || self.num_classes < 2 {
                    return Err(invalid(
                        "model",
                        "num_features must be at least 1 and num_classes at least 2",
                    ));
                }
                if !self.hidden_layers.is_empty() || self.init_seed != 0 {
                    return Err(invalid(
                        "model",
                        "hidden_layers and init_seed are for a built-in `kind`; a `descriptor` \
                         model states its tensors and starts from `initial_parameters`",
                    ));
                }
                if self.initial_parameters.is_none() {
                    return Err(invalid(
                        "model.initial_parameters",
                        "is required with a `descriptor`: the safetensors file of the first \
                         model (`cohort-coordinator model init --from FILE` prints both)",
                    ));
                }
                descriptor
                    .check()
                    .map_err(|e| invalid("model.descriptor", e.to_string()))?;
                Ok(descriptor.clone())
            }
            (Some(_), Some(_)) => Err(invalid(
                "model",
                "give either a built-in `kind` or a `descriptor`, not both",
            )),
            (None, None) => Err(invalid(
                "model",
                "needs a built-in `kind` (logistic_regression or mlp) or a `descriptor`",
            )),
        }
    }

    /// Where the first model comes from (of a validated section).
    ///
    /// # Errors
    /// As [`ModelConfig::validate`].
    pub fn initial_model(&self) -> Result<InitialModel<'_>, ConfigError> {
        self.validate()?;
        match (self.dense_spec(), &self.initial_parameters) {
            (Some(spec), _) => Ok(InitialModel::Seeded {
                layout: ParameterLayout::of(&spec).map_err(|e| invalid("model", e.to_string()))?,
                seed: self.init_seed,
            }),
            (None, Some(path)) => Ok(InitialModel::File(path)),
            (None, None) => Err(invalid("model.initial_parameters", "is missing")),
        }
    }

    /// Whether `other` trains the same model: every key but where this host
    /// keeps the initial parameters' file.
    pub fn same_model(&self, other: &Self) -> bool {
        Self {
            initial_parameters: None,
            ..self.clone()
        } == Self {
            initial_parameters: None,
            ..other.clone()
        }
    }
}

fn is_zero(seed: &u64) -> bool {
    *seed == 0
}
