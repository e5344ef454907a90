//! The safetensors form of a dense model: `dense.{i}.weight` (`f32`,
//! `[inputs, outputs]`, applied as `x·W`) and `dense.{i}.bias` (`f32`,
//! `[outputs]`), with `cohort.model_version`, `cohort.architecture` and
//! `cohort.scaling` (JSON) in the header's metadata. [`from_safetensors`]
//! reads one back and refuses a file whose tensors do not hash to the version
//! its metadata states.

use std::collections::HashMap;

use safetensors::tensor::{Dtype, SafeTensors, TensorView, serialize};

use super::{DenseModel, ExportError, metadata};
use crate::model::{ParameterLayout, SavedSpec, encode_f32};
use crate::scaling::FeatureScaling;

/// The model as a safetensors file.
pub(super) fn to_safetensors(model: &DenseModel) -> Result<Vec<u8>, ExportError> {
    let failed = |e: safetensors::SafeTensorError| ExportError::Safetensors(e.to_string());
    let mut bytes = Vec::new();
    let mut shapes = Vec::new();
    for (i, (shape, weight, bias)) in model.layers().enumerate() {
        bytes.push(encode_f32(weight));
        shapes.push((
            format!("dense.{i}.weight"),
            vec![shape.inputs, shape.outputs],
        ));
        bytes.push(encode_f32(bias));
        shapes.push((format!("dense.{i}.bias"), vec![shape.outputs]));
    }
    let mut views = Vec::with_capacity(shapes.len());
    for ((name, shape), data) in shapes.into_iter().zip(&bytes) {
        views.push((
            name,
            TensorView::new(Dtype::F32, shape, data).map_err(failed)?,
        ));
    }
    serialize(views, Some(metadata(model).into_iter().collect())).map_err(failed)
}

/// The model in a safetensors file written by [`DenseModel::export`].
pub fn from_safetensors(bytes: &[u8]) -> Result<DenseModel, ExportError> {
    let failed = |e: safetensors::SafeTensorError| ExportError::Safetensors(e.to_string());
    let not_cohort = |what: String| ExportError::NotCohort(what);
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(failed)?;
    let empty = HashMap::new();
    let metadata = header.metadata().as_ref().unwrap_or(&empty);
    let field = |key: &str| {
        metadata
            .get(key)
            .ok_or_else(|| not_cohort(format!("no {key} in its metadata")))
    };
    let architecture: SavedSpec = serde_json::from_str(field("cohort.architecture")?)
        .map_err(|e| not_cohort(format!("cohort.architecture: {e}")))?;
    let scaling: FeatureScaling = serde_json::from_str(field("cohort.scaling")?)
        .map_err(|e| not_cohort(format!("cohort.scaling: {e}")))?;
    let spec = architecture.to_proto();
    let layout = ParameterLayout::of(&spec).map_err(ExportError::Spec)?;
    let tensors = SafeTensors::deserialize(bytes).map_err(failed)?;
    let mut parameters = Vec::with_capacity(layout.num_parameters());
    for (i, shape) in layout.layers.iter().enumerate() {
        let expected = [
            (
                format!("dense.{i}.weight"),
                vec![shape.inputs, shape.outputs],
            ),
            (format!("dense.{i}.bias"), vec![shape.outputs]),
        ];
        for (name, dims) in expected {
            let view = tensors.tensor(&name).map_err(failed)?;
            if view.dtype() != Dtype::F32 || view.shape() != dims.as_slice() {
                return Err(not_cohort(format!(
                    "{name} is {:?} {:?}, expected F32 {dims:?}",
                    view.dtype(),
                    view.shape()
                )));
            }
            let values = view.data().chunks_exact(4);
            parameters.extend(values.map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
        }
    }
    let model = DenseModel::new(spec, scaling, parameters)?;
    let stated = field("cohort.model_version")?;
    if model.model_version() != stated {
        return Err(not_cohort(format!(
            "its tensors hash to model version {}, not the {stated} its metadata states",
            model.model_version()
        )));
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::ExportFormat;
    use crate::v1::ModelSpec;

    fn mlp() -> DenseModel {
        let spec = ModelSpec {
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
            refused.to_string().contains("cohort.architecture"),
            "{refused}"
        );
    }
}
