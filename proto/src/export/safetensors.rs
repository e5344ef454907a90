//! The safetensors form of a dense model: the [`ModelFile`] of its
//! `cohort.dense` descriptor (`dense.{i}.weight`, `f32`, `[inputs, outputs]`,
//! applied as `x·W`, and `dense.{i}.bias`, `[outputs]`), with
//! `cohort.architecture` and `cohort.scaling` (JSON) added to the header's
//! metadata. [`from_safetensors`] reads one back and refuses a file whose
//! tensors do not hash to the version its metadata states.

use super::{DenseModel, ExportError, ModelFile, metadata};
use crate::model::{ParameterLayout, SavedSpec};
use crate::scaling::FeatureScaling;

/// The model as a safetensors file.
pub(super) fn to_safetensors(model: &DenseModel) -> Result<Vec<u8>, ExportError> {
    model.file.to_safetensors(metadata(model))
}

/// The model in a safetensors file written by [`DenseModel::export`].
pub fn from_safetensors(bytes: &[u8]) -> Result<DenseModel, ExportError> {
    let not_cohort = |what: String| ExportError::NotCohort(what);
    let (file, metadata) = ModelFile::from_safetensors(bytes)?;
    let field = |key: &str| {
        metadata
            .get(key)
            .ok_or_else(|| not_cohort(format!("no {key} in its metadata")))
    };
    let spec: SavedSpec = serde_json::from_str(field("cohort.architecture")?)
        .map_err(|e| not_cohort(format!("cohort.architecture: {e}")))?;
    let scaling: FeatureScaling = serde_json::from_str(field("cohort.scaling")?)
        .map_err(|e| not_cohort(format!("cohort.scaling: {e}")))?;
    let layout = ParameterLayout::of(&spec).map_err(ExportError::Spec)?;
    if layout.descriptor() != *file.descriptor() {
        return Err(not_cohort(format!(
            "its tensors describe {}, not the dense architecture its metadata states",
            file.descriptor().label()
        )));
    }
    DenseModel::new(spec, scaling, file.parameters().to_vec())
}

#[cfg(test)]
mod tests {
    use ::safetensors::tensor::{TensorView, serialize};

    use super::*;
    use crate::export::ExportFormat;

    fn mlp() -> DenseModel {
        let spec = SavedSpec {
            kind: "mlp".into(),
            num_features: 3,
            num_classes: 2,
            hidden_layers: vec![4],
        };
        let count = 3 * 4 + 4 + 4 * 2 + 2;
        let parameters = (0..count).map(|i| i as f32 / 7.0 - 1.0).collect();
        let scaling = FeatureScaling {
            mean: vec![0.5, -1.0, 2.0],
            std: vec![1.0, 0.25, 3.0],
        };
        DenseModel::new(spec, scaling, parameters).unwrap()
    }

    #[test]
    fn a_model_round_trips_through_safetensors() {
        let model = mlp();
        let bytes = model.export(ExportFormat::Safetensors).unwrap();
        assert_eq!(from_safetensors(&bytes).unwrap(), model);
    }

    #[test]
    fn a_file_whose_tensors_do_not_match_its_version_is_refused() {
        let model = mlp();
        let mut bytes = model.export(ExportFormat::Safetensors).unwrap();
        // The last parameter (the output bias) is the file's last 4 bytes.
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        let refused = from_safetensors(&bytes).unwrap_err();
        assert!(matches!(refused, ExportError::NotCohort(_)), "{refused}");
        assert!(
            refused.to_string().contains(model.model_version()),
            "{refused}"
        );
        let plain = serialize(Vec::<(String, TensorView)>::new(), None).unwrap();
        let refused = from_safetensors(&plain).unwrap_err();
        assert!(
            refused.to_string().contains("cohort.descriptor"),
            "{refused}"
        );
    }
}
