//! A trained model out of Cohort, in the formats serving stacks load: ONNX
//! (a graph that takes raw features, the federation's feature scaling folded
//! in as its first nodes) and safetensors (the tensors, with the architecture
//! and the scaling in its metadata). Both the coordinator
//! (`cohort-coordinator model export`) and a node (`cohort-node model export`)
//! export through [`DenseModel::export`], so the two cannot disagree.
//!
//! What an exported model computes is what Cohort computes: standardize the
//! raw features in `f64` and round to `f32` (as a node does,
//! `cohort_client::data::standardized`), then each dense layer `x·W + b`
//! (`W` is `[inputs, outputs]`, the wire layout), ReLU between layers, and the
//! logits of the last; the ONNX graph also outputs their softmax. The tests
//! (`tests/tests/export.rs`) run the exported files with an independent ONNX
//! runtime and check its predictions against Cohort's on every held-out row.

mod model_file;
mod onnx;
pub mod onnx_schema;
mod safetensors;

use std::fmt;
use std::str::FromStr;

use crate::model::{DescriptorError, ModelSpecError, ParameterLayout, SavedSpec};
use crate::scaling::{FeatureScaling, ScalingError};

pub use model_file::ModelFile;
pub use safetensors::from_safetensors;

/// The formats a model exports to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// ONNX (opset 13): `features` (raw, `float[rows, F]`) in, `logits` and
    /// `probabilities` (`float[rows, C]`) out.
    Onnx,
    /// safetensors: `dense.{i}.weight` (`[inputs, outputs]`) and
    /// `dense.{i}.bias`, `f32`; architecture, scaling and version in the
    /// metadata.
    Safetensors,
}

impl FromStr for ExportFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "onnx" => Ok(Self::Onnx),
            "safetensors" => Ok(Self::Safetensors),
            other => Err(format!(
                "unknown export format {other:?}; expected onnx or safetensors"
            )),
        }
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Onnx => "onnx",
            Self::Safetensors => "safetensors",
        })
    }
}

/// Why a model could not be exported or read back.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The architecture describes no model.
    #[error("the model's architecture: {0}")]
    Spec(ModelSpecError),
    /// The model descriptor fails its checks.
    #[error("the model's descriptor: {0}")]
    Descriptor(DescriptorError),
    /// A parameter is NaN or infinite.
    #[error("parameter {index} is not a finite number")]
    NotFinite {
        /// Its position in the wire order.
        index: usize,
    },
    /// The parameter vector does not fit the architecture.
    #[error("{actual} parameters do not fit the architecture, which has {expected}")]
    ParameterCount {
        /// The architecture's parameter count.
        expected: usize,
        /// The vector's length.
        actual: usize,
    },
    /// The feature scaling does not fit the model.
    #[error("the feature scaling: {0}")]
    Scaling(#[from] ScalingError),
    /// A safetensors file could not be written or read.
    #[error("safetensors: {0}")]
    Safetensors(String),
    /// A safetensors file read back is not a Cohort export, or its content
    /// does not hash to the version it states.
    #[error("safetensors file is not a Cohort model: {0}")]
    NotCohort(String),
}

/// A dense model as it leaves Cohort: its architecture, the feature scaling
/// its inputs need, and its parameters with their descriptor and content
/// address.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseModel {
    spec: SavedSpec,
    layout: ParameterLayout,
    scaling: FeatureScaling,
    file: ModelFile,
}

impl DenseModel {
    /// The model of `spec` with `parameters`, whose inputs `scaling`
    /// standardizes; refuses parts that do not fit together.
    pub fn new(
        spec: SavedSpec,
        scaling: FeatureScaling,
        parameters: Vec<f32>,
    ) -> Result<Self, ExportError> {
        let layout = ParameterLayout::of(&spec).map_err(ExportError::Spec)?;
        scaling.validate(spec.num_features as usize)?;
        let file = ModelFile::new(layout.descriptor(), parameters)?;
        Ok(Self {
            spec,
            layout,
            scaling,
            file,
        })
    }

    /// The model in `format`, as the file's bytes.
    pub fn export(&self, format: ExportFormat) -> Result<Vec<u8>, ExportError> {
        match format {
            ExportFormat::Onnx => Ok(onnx::to_onnx(self)),
            ExportFormat::Safetensors => safetensors::to_safetensors(self),
        }
    }

    /// Its content address (the model version).
    pub fn model_version(&self) -> &str {
        self.file.model_version()
    }

    /// Its architecture.
    pub fn spec(&self) -> &SavedSpec {
        &self.spec
    }

    /// The scaling its inputs need.
    pub fn scaling(&self) -> &FeatureScaling {
        &self.scaling
    }

    /// Its parameters, in the wire layout.
    pub fn parameters(&self) -> &[f32] {
        self.file.parameters()
    }

    /// Each dense layer's weight (`[inputs, outputs]`, row-major) and bias.
    fn layers(&self) -> impl Iterator<Item = (crate::model::DenseShape, &[f32], &[f32])> {
        let mut rest = self.file.parameters();
        self.layout.layers.iter().map(move |&shape| {
            let (weight, after) = rest.split_at(shape.inputs * shape.outputs);
            let (bias, after) = after.split_at(shape.outputs);
            rest = after;
            (shape, weight, bias)
        })
    }
}

/// The metadata both formats carry: version, architecture, scaling (JSON).
fn metadata(model: &DenseModel) -> Vec<(String, String)> {
    vec![
        (
            "cohort.model_version".into(),
            model.model_version().to_owned(),
        ),
        ("cohort.architecture".into(), json(&model.spec)),
        ("cohort.scaling".into(), json(&model.scaling)),
    ]
}

/// `value` as JSON. Plain data with finite numbers (the scaling is
/// validated), so serializing cannot fail.
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
