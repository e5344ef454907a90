//! The models a node serves, by version, quantized for encrypted evaluation.
//!
//! A node serves only models it has: the global models it kept during a
//! federation ([`SavedModel`], content-addressed by version). Each is quantized
//! once, when the service starts, with [`QuantizedModel::from_float`]; the
//! calibration rows are the node's own *training* split, standardized with the
//! model's feature scaling (the node has no other data, and quantizing with its
//! training rows keeps the holdout honest for measuring the quantized accuracy).
//!
//! What a requester may learn about a served model is its
//! [`ModelDescription`]: architecture, feature scaling, input quantizer (bits and
//! per-feature scales) and the SHA-256 of the quantized model's JSON, never a
//! weight. The JSON itself ([`ServedModel::quantized_json`]) is what the operator
//! may export to trusted parties for checking predictions in the clear.

use std::collections::BTreeMap;
use std::sync::Arc;

use cohort_crypto::he::{self, Accuracy, BitsConfig, QuantizedModel};
use cohort_proto::inference::ModelDescription;

use crate::data::{Dataset, standardized};
use crate::model::SavedModel;

/// Why a model could not be prepared for serving.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The model cannot be served: its layout, calibration, quantization or
    /// quantized form does not work out.
    #[error("model {version}: {reason}")]
    Model {
        /// The model version.
        version: String,
        /// What went wrong.
        reason: String,
    },
    /// Two models to serve have the same version.
    #[error("model {version} is listed twice")]
    Duplicate {
        /// The version.
        version: String,
    },
}

/// One model ready for encrypted evaluation.
#[derive(Debug)]
pub struct ServedModel {
    saved: SavedModel,
    quantized: QuantizedModel,
    quantized_json: Vec<u8>,
    quantized_sha256: String,
}

impl ServedModel {
    /// Quantizes `saved` with `calibration` (raw rows of the node's training
    /// split, standardized here with the model's scaling).
    pub fn quantize(
        saved: SavedModel,
        calibration: &Dataset,
        bits: BitsConfig,
    ) -> Result<Self, RegistryError> {
        let fail = |reason: String| RegistryError::Model {
            version: saved.model_version.clone(),
            reason,
        };
        let layout = saved.layout().map_err(fail)?;
        let scaled = standardized(&saved.scaling, calibration)
            .map_err(|e| fail(format!("calibration data: {e}")))?;
        let rows: Vec<&[f32]> = scaled.rows().map(|(row, _)| row).collect();
        let quantized = QuantizedModel::from_float(&layout, &saved.parameters, &rows, bits)
            .map_err(|e| fail(format!("quantization: {e}")))?;
        Self::from_parts(saved, quantized)
    }

    /// A saved model with an already quantized version of it (e.g. one read back
    /// from an exported file); checks that they describe the same network.
    pub fn from_parts(saved: SavedModel, quantized: QuantizedModel) -> Result<Self, RegistryError> {
        let fail = |reason: String| RegistryError::Model {
            version: saved.model_version.clone(),
            reason,
        };
        if quantized.num_inputs() != saved.spec.num_features as usize
            || quantized.num_classes() != saved.spec.num_classes as usize
        {
            return Err(fail(format!(
                "the quantized model takes {} inputs to {} classes, the model {} to {}",
                quantized.num_inputs(),
                quantized.num_classes(),
                saved.spec.num_features,
                saved.spec.num_classes
            )));
        }
        let quantized_json = serde_json::to_vec(quantized.data())
            .map_err(|e| fail(format!("quantized model JSON: {e}")))?;
        let quantized_sha256 = sha256_hex(&quantized_json);
        Ok(Self {
            saved,
            quantized,
            quantized_json,
            quantized_sha256,
        })
    }

    /// The model version, by which requesters name it.
    pub fn version(&self) -> &str {
        &self.saved.model_version
    }

    /// The float model it was quantized from.
    pub fn saved(&self) -> &SavedModel {
        &self.saved
    }

    /// The quantized network the encrypted evaluation runs.
    pub fn quantized(&self) -> &QuantizedModel {
        &self.quantized
    }

    /// The quantized model as JSON ([`cohort_crypto::he::QuantizedModelData`]):
    /// the consortium's asset, for trusted parties only.
    pub fn quantized_json(&self) -> &[u8] {
        &self.quantized_json
    }

    /// Float versus quantized accuracy on labelled raw rows (e.g. the holdout).
    pub fn accuracy(&self, rows: &Dataset) -> Result<Accuracy, RegistryError> {
        let fail = |reason: String| RegistryError::Model {
            version: self.version().to_owned(),
            reason,
        };
        let layout = self.saved.layout().map_err(fail)?;
        let scaled = standardized(&self.saved.scaling, rows).map_err(|e| fail(e.to_string()))?;
        let features: Vec<&[f32]> = scaled.rows().map(|(row, _)| row).collect();
        let labels: Vec<usize> = scaled.labels().iter().map(|&l| l as usize).collect();
        self.quantized
            .accuracy_vs_float(&layout, &self.saved.parameters, &features, &labels)
            .map_err(|e| fail(e.to_string()))
    }

    /// What a requester may know about this model.
    pub fn description(&self, max_batch: u32) -> ModelDescription {
        let spec = &self.saved.spec;
        let quantizer = self.quantized.input_quantizer();
        ModelDescription {
            model_version: self.saved.model_version.clone(),
            kind: spec.kind.clone(),
            num_features: spec.num_features,
            num_classes: spec.num_classes,
            hidden_layers: spec.hidden_layers.clone(),
            scaling_mean: self.saved.scaling.mean.clone(),
            scaling_std: self.saved.scaling.std.clone(),
            input_bits: quantizer.input_bits,
            input_scales: quantizer.scales,
            quantized_model_sha256: self.quantized_sha256.clone(),
            bootstraps_per_prediction: self.quantized.bootstrap_count() as u64,
            max_batch,
            parameter_set: he::params::PARAMETER_SET_ID,
        }
    }
}

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// The served models by version.
#[derive(Debug, Default)]
pub struct ModelRegistry {
    models: BTreeMap<String, Arc<ServedModel>>,
}

impl ModelRegistry {
    /// A registry of `models`. Fails if two have the same version.
    pub fn new(models: Vec<ServedModel>) -> Result<Self, RegistryError> {
        let mut map = BTreeMap::new();
        for model in models {
            let version = model.version().to_owned();
            if map.insert(version.clone(), Arc::new(model)).is_some() {
                return Err(RegistryError::Duplicate { version });
            }
        }
        Ok(Self { models: map })
    }

    /// The served model `version`, if there is one.
    pub fn get(&self, version: &str) -> Option<Arc<ServedModel>> {
        self.models.get(version).cloned()
    }

    /// Every served model, in version order.
    pub fn models(&self) -> impl Iterator<Item = &Arc<ServedModel>> {
        self.models.values()
    }

    /// Number of served models.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether no model is served.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}
