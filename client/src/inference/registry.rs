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
//! per-feature scales), the SHA-256 of the quantized model's JSON and the output
//! mode, never a weight. The output mode ([`OutputMode`], chosen by the operator
//! with `inference serve --output`) fixes what each answer tells the requester:
//! in class mode one class per row (the argmax, computed under encryption), in
//! scores mode every class score (the model's integer logits), which make model
//! extraction far cheaper (see [`cohort_crypto::he::argmax_mode`]). The JSON itself ([`ServedModel::quantized_json`]) is what the operator
//! may export to trusted parties for checking predictions in the clear.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cohort_crypto::he::{self, Accuracy, BitsConfig, OutputMode, OutputPlan, QuantizedModel};
use cohort_proto::inference::ModelDescription;

use crate::data::{Dataset, standardized};
use crate::model::{SavedModel, WithdrawalError, WithdrawnModels};

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
    output: OutputPlan,
}

impl ServedModel {
    /// Quantizes `saved` with `calibration` (raw rows of the node's training
    /// split, standardized here with the model's scaling), to be answered in
    /// `output` mode (class mode fails for a model whose argmax cannot be
    /// computed under encryption, saying why).
    pub fn quantize(
        saved: SavedModel,
        calibration: &Dataset,
        bits: BitsConfig,
        output: OutputMode,
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
        Self::from_parts(saved, quantized, output)
    }

    /// A saved model with an already quantized version of it (e.g. one read back
    /// from an exported file), answered in `output` mode; checks that they
    /// describe the same network.
    pub fn from_parts(
        saved: SavedModel,
        quantized: QuantizedModel,
        output: OutputMode,
    ) -> Result<Self, RegistryError> {
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
        let output = OutputPlan::new(&quantized, output)
            .map_err(|e| fail(format!("output mode {output}: {e}")))?;
        Ok(Self {
            saved,
            quantized,
            quantized_json,
            quantized_sha256,
            output,
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

    /// What each answer holds (class or scores), with the argmax plan in class
    /// mode.
    pub fn output(&self) -> &OutputPlan {
        &self.output
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
            bootstraps_per_prediction: self.output.bootstrap_count(&self.quantized) as u64,
            max_batch,
            parameter_set: he::params::PARAMETER_SET_ID,
            output: self.output.mode().as_str().to_owned(),
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
    /// The models folder whose `withdrawn.json` is read on every lookup, if
    /// watched.
    withdrawals: Option<PathBuf>,
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
        Ok(Self {
            models: map,
            withdrawals: None,
        })
    }

    /// Stops serving any version listed in `models_dir`'s `withdrawn.json`
    /// (written by the node when an erasure taints a model), from the next
    /// request on, without a restart.
    pub fn watching_withdrawals(mut self, models_dir: &Path) -> Self {
        self.withdrawals = Some(models_dir.to_owned());
        self
    }

    /// The versions withdrawn now. An unreadable list withdraws every model
    /// (fail closed): serving a model an erasure withdrew is the worse error.
    fn withdrawn(&self) -> Option<WithdrawnModels> {
        let dir = self.withdrawals.as_ref()?;
        match WithdrawnModels::load(dir) {
            Ok(withdrawn) => Some(withdrawn),
            Err(e) => {
                tracing::error!(error = %e, "withdrawn-models list unreadable: serving nothing");
                Some(WithdrawnModels::everything(self.models.keys().cloned()))
            }
        }
    }

    /// Ok if the withdrawn-models list (when watched) can be read now; else
    /// why not (and then no model is served).
    pub fn withdrawals_readable(&self) -> Result<(), WithdrawalError> {
        match &self.withdrawals {
            None => Ok(()),
            Some(dir) => WithdrawnModels::load(dir).map(drop),
        }
    }

    /// Whether `version` was withdrawn by an erasure request.
    pub fn is_withdrawn(&self, version: &str) -> bool {
        self.withdrawn().is_some_and(|w| w.contains(version))
    }

    /// The served model `version`, if there is one and it is not withdrawn.
    pub fn get(&self, version: &str) -> Option<Arc<ServedModel>> {
        let withdrawn = self.withdrawn();
        self.models
            .get(version)
            .filter(|_| !withdrawn.is_some_and(|w| w.contains(version)))
            .cloned()
    }

    /// Every served model not withdrawn, in version order.
    pub fn models(&self) -> impl Iterator<Item = &Arc<ServedModel>> {
        let withdrawn = self.withdrawn().unwrap_or_default();
        self.models
            .values()
            .filter(move |m| !withdrawn.contains(m.version()))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::data::FeatureScaling;
    use crate::model::SavedSpec;
    use cohort_proto::model::{ParameterLayout, initial_parameters};

    fn served() -> ServedModel {
        let spec = SavedSpec::logistic_regression(2, 2);
        let layout = ParameterLayout::of(&spec).unwrap();
        let scaling = FeatureScaling {
            mean: vec![0.0, 0.0],
            std: vec![1.0, 1.0],
        };
        let saved = SavedModel::new(spec, scaling, initial_parameters(&layout, 3)).unwrap();
        let rows = Dataset::new(2, vec![0.5, -1.0, 1.5, 2.0, -0.5, 0.0], vec![0, 1, 0]).unwrap();
        ServedModel::quantize(saved, &rows, BitsConfig::default(), OutputMode::Class).unwrap()
    }

    #[test]
    fn a_version_withdrawn_on_disk_is_no_longer_served_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let model = served();
        let version = model.version().to_owned();
        let registry = ModelRegistry::new(vec![model])
            .unwrap()
            .watching_withdrawals(dir.path());
        assert!(registry.get(&version).is_some());
        assert_eq!(registry.models().count(), 1);

        // The node process withdraws it (an erasure tainted it).
        let mut withdrawn = WithdrawnModels::load(dir.path()).unwrap();
        withdrawn
            .withdraw(dir.path(), std::slice::from_ref(&version))
            .unwrap();
        assert!(registry.get(&version).is_none());
        assert!(registry.is_withdrawn(&version));
        assert_eq!(registry.models().count(), 0);

        // An unreadable list serves nothing rather than a withdrawn model,
        // and says so.
        assert!(registry.withdrawals_readable().is_ok());
        std::fs::write(dir.path().join(crate::model::WITHDRAWN_FILE), b"not json").unwrap();
        assert!(registry.get(&version).is_none());
        assert!(registry.withdrawals_readable().is_err());
    }
}
