//! Any model's parameters as a safetensors file: each tensor of its
//! [`ModelDescriptor`] under its own name, with `cohort.descriptor` (JSON:
//! the name, version and tensor order, which safetensors does not keep) and
//! `cohort.model_version` in the metadata.
//!
//! This is how a federation's owner hands the coordinator a model's initial
//! parameters (`[model] initial_parameters`), as the node SDK writes them,
//! and the form every safetensors export takes (a dense export adds its
//! architecture and scaling to the metadata).

use std::collections::HashMap;

use safetensors::tensor::{Dtype, SafeTensors, TensorView, serialize};

use super::ExportError;
use crate::model::{ModelDescriptor, encode_f32, model_version};

/// Metadata key of the descriptor (JSON).
const DESCRIPTOR_KEY: &str = "cohort.descriptor";
/// Metadata key of the content address.
const VERSION_KEY: &str = "cohort.model_version";

/// A model's parameters with the descriptor they fit.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFile {
    descriptor: ModelDescriptor,
    parameters: Vec<f32>,
    model_version: String,
}

impl ModelFile {
    /// `parameters` (wire order) of the model `descriptor` describes.
    ///
    /// # Errors
    /// [`ExportError::Descriptor`] for a descriptor that fails its checks,
    /// [`ExportError::ParameterCount`] for a vector of another length and
    /// [`ExportError::NotFinite`] for a NaN or infinite value.
    pub fn new(descriptor: ModelDescriptor, parameters: Vec<f32>) -> Result<Self, ExportError> {
        descriptor.check().map_err(ExportError::Descriptor)?;
        if parameters.len() != descriptor.num_parameters() {
            return Err(ExportError::ParameterCount {
                expected: descriptor.num_parameters(),
                actual: parameters.len(),
            });
        }
        if let Some(index) = parameters.iter().position(|p| !p.is_finite()) {
            return Err(ExportError::NotFinite { index });
        }
        let model_version = model_version(&descriptor.fingerprint(), &encode_f32(&parameters));
        Ok(Self {
            descriptor,
            parameters,
            model_version,
        })
    }

    /// The model the parameters fit.
    pub fn descriptor(&self) -> &ModelDescriptor {
        &self.descriptor
    }

    /// The parameters, in wire order.
    pub fn parameters(&self) -> &[f32] {
        &self.parameters
    }

    /// Their content address under the descriptor's fingerprint.
    pub fn model_version(&self) -> &str {
        &self.model_version
    }

    /// The file's bytes, with `extra` metadata beside Cohort's own keys.
    ///
    /// # Errors
    /// [`ExportError::Safetensors`] if the file cannot be laid out.
    pub fn to_safetensors(&self, extra: Vec<(String, String)>) -> Result<Vec<u8>, ExportError> {
        let failed = |e: safetensors::SafeTensorError| ExportError::Safetensors(e.to_string());
        let mut rest = self.parameters.as_slice();
        let encoded: Vec<Vec<u8>> = self
            .descriptor
            .tensors
            .iter()
            .map(|tensor| {
                let (values, after) = rest.split_at(tensor.len());
                rest = after;
                encode_f32(values)
            })
            .collect();
        let views = self
            .descriptor
            .tensors
            .iter()
            .zip(&encoded)
            .map(|(tensor, data)| {
                TensorView::new(Dtype::F32, tensor.shape.clone(), data)
                    .map(|view| (tensor.name.clone(), view))
                    .map_err(failed)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let descriptor = serde_json::to_string(&self.descriptor)
            .map_err(|e| ExportError::Safetensors(e.to_string()))?;
        let mut metadata: HashMap<String, String> = extra.into_iter().collect();
        metadata.insert(DESCRIPTOR_KEY.into(), descriptor);
        metadata.insert(VERSION_KEY.into(), self.model_version.clone());
        serialize(views, Some(metadata)).map_err(failed)
    }

    /// The model in a file [`ModelFile::to_safetensors`] wrote, and the
    /// file's metadata.
    ///
    /// # Errors
    /// [`ExportError::NotCohort`] naming what is wrong: no descriptor or no
    /// version, a tensor missing, extra, of another type or shape, a
    /// non-finite value, or content that does not hash to the version the
    /// file states.
    pub fn from_safetensors(bytes: &[u8]) -> Result<(Self, HashMap<String, String>), ExportError> {
        let failed = |e: safetensors::SafeTensorError| ExportError::Safetensors(e.to_string());
        let not_cohort = |what: String| ExportError::NotCohort(what);
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(failed)?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let stated = metadata
            .get(DESCRIPTOR_KEY)
            .ok_or_else(|| not_cohort(format!("no {DESCRIPTOR_KEY} in its metadata")))?;
        let descriptor: ModelDescriptor = serde_json::from_str(stated)
            .map_err(|e| not_cohort(format!("{DESCRIPTOR_KEY}: {e}")))?;
        descriptor.check().map_err(ExportError::Descriptor)?;
        let tensors = SafeTensors::deserialize(bytes).map_err(failed)?;
        if let Some(extra) = tensors
            .names()
            .into_iter()
            .find(|name| !descriptor.tensors.iter().any(|t| t.name == *name))
        {
            return Err(not_cohort(format!(
                "tensor {extra} is not in the model's descriptor"
            )));
        }
        // No more than the file can hold: the descriptor is the file's claim.
        let mut parameters = Vec::with_capacity(descriptor.num_parameters().min(bytes.len() / 4));
        for tensor in &descriptor.tensors {
            let view = tensors
                .tensor(&tensor.name)
                .map_err(|_| not_cohort(format!("no tensor {}", tensor.name)))?;
            if view.dtype() != Dtype::F32 || view.shape() != tensor.shape.as_slice() {
                return Err(not_cohort(format!(
                    "{} is {:?} {:?}, but the descriptor says F32 {:?}",
                    tensor.name,
                    view.dtype(),
                    view.shape(),
                    tensor.shape
                )));
            }
            let values = view.data().chunks_exact(4);
            parameters.extend(values.map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
        }
        let file = Self::new(descriptor, parameters)?;
        let stated = metadata
            .get(VERSION_KEY)
            .ok_or_else(|| not_cohort(format!("no {VERSION_KEY} in its metadata")))?;
        if *stated != file.model_version {
            return Err(not_cohort(format!(
                "its tensors hash to model version {}, not the {stated} its metadata states",
                file.model_version
            )));
        }
        Ok((file, metadata))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TensorSpec;

    fn small() -> ModelFile {
        let descriptor = ModelDescriptor::new(
            "test.conv",
            "2",
            vec![
                // Named so that safetensors' own (alphabetical) order differs
                // from the descriptor's.
                TensorSpec::f32("z.kernel", vec![2, 1, 3]),
                TensorSpec::f32("a.bias", vec![2]),
            ],
        )
        .unwrap();
        ModelFile::new(descriptor, (0..8).map(|i| i as f32 - 3.5).collect()).unwrap()
    }

    #[test]
    fn a_file_reads_back_in_descriptor_order_with_its_metadata() {
        let file = small();
        let bytes = file
            .to_safetensors(vec![("author".into(), "hospital-a".into())])
            .unwrap();
        let (back, metadata) = ModelFile::from_safetensors(&bytes).unwrap();
        assert_eq!(back, file);
        assert_eq!(metadata["author"], "hospital-a");
    }

    #[test]
    fn files_that_do_not_fit_their_descriptor_are_named() {
        let file = small();
        // The tensors of `file` under a descriptor that says another shape.
        let mut other = file.descriptor().clone();
        other.tensors[1].shape = vec![1, 2];
        let bias = encode_f32(&file.parameters()[6..]);
        let kernel = encode_f32(&file.parameters()[..6]);
        let views = vec![
            (
                "z.kernel",
                TensorView::new(Dtype::F32, vec![2, 1, 3], &kernel).unwrap(),
            ),
            (
                "a.bias",
                TensorView::new(Dtype::F32, vec![2], &bias).unwrap(),
            ),
        ];
        let metadata = HashMap::from([(
            DESCRIPTOR_KEY.to_owned(),
            serde_json::to_string(&other).unwrap(),
        )]);
        let lying = serialize(views, Some(metadata)).unwrap();
        let error = ModelFile::from_safetensors(&lying).unwrap_err();
        assert!(error.to_string().contains("a.bias"), "{error}");

        let mut stated = file.to_safetensors(vec![]).unwrap();
        // Another version stated in the metadata than the tensors hash to.
        let at = stated
            .windows(file.model_version.len())
            .position(|w| w == file.model_version.as_bytes())
            .unwrap();
        stated[at] = if stated[at] == b'0' { b'1' } else { b'0' };
        let error = ModelFile::from_safetensors(&stated).unwrap_err();
        assert!(
            error.to_string().contains("hash to model version"),
            "{error}"
        );

        assert!(matches!(
            ModelFile::new(file.descriptor().clone(), vec![f32::NAN; 8]),
            Err(ExportError::NotFinite { index: 0 })
        ));
        assert!(matches!(
            ModelFile::new(file.descriptor().clone(), vec![0.0; 7]),
            Err(ExportError::ParameterCount {
                expected: 8,
                actual: 7
            })
        ));
    }
}
