//! What a federation trains, independent of any model code: a
//! [`ModelDescriptor`] names the model (its author's name and version) and
//! lists its parameter tensors in the order they travel.
//!
//! The coordinator needs nothing else: it averages, masks, clips and stores
//! flat vectors of `num_parameters` values and compares fingerprints. A node
//! builds its model from the descriptor (the built-in dense models through
//! [`ParameterLayout::from_descriptor`], a user's burn model through the node
//! SDK) and refuses one it cannot build.
//!
//! The fingerprint is SHA-256 over an unambiguous encoding of every field
//! (each string and list length-prefixed), so two descriptors share one only
//! if they are equal.
//!
//! [`ParameterLayout::from_descriptor`]: super::ParameterLayout::from_descriptor

use serde::{Deserialize, Serialize};

use crate::v1;

/// Domain separation for [`ModelDescriptor::fingerprint`].
const FINGERPRINT_DOMAIN: &[u8] = b"cohort-model-descriptor-v1";

/// Longest model or tensor name accepted.
const MAX_NAME_BYTES: usize = 256;

/// Largest encoded parameter vector a descriptor may describe (4 GiB): far
/// above any model a federation of this design moves each round, and low
/// enough that a descriptor from the network cannot make a node or the
/// coordinator reserve an impossible buffer.
pub const MAX_MODEL_BYTES: usize = 1 << 32;

/// The element type of a parameter tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// 32-bit IEEE float, little-endian on the wire.
    F32,
}

impl DType {
    /// Bytes per element on the wire.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
        }
    }

    fn code(self) -> u8 {
        match self {
            Self::F32 => 1,
        }
    }
}

/// One named parameter tensor of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    /// The tensor's name, unique in its model (e.g. `conv1.weight`).
    pub name: String,
    /// Its dimensions, outermost first; elements travel row-major.
    pub shape: Vec<usize>,
    /// Its element type.
    pub dtype: DType,
}

impl TensorSpec {
    /// A tensor of `f32` values.
    pub fn f32(name: impl Into<String>, shape: Vec<usize>) -> Self {
        Self {
            name: name.into(),
            shape,
            dtype: DType::F32,
        }
    }

    /// Elements in the tensor, or `None` if the count does not fit a `usize`.
    fn checked_len(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }

    /// Elements in the tensor (of a checked descriptor).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements (never, in a checked descriptor).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A model as the federation knows it: name, version and ordered tensors.
///
/// Build one with [`ModelDescriptor::new`], which checks it; one read from
/// the network or a file is checked by [`ModelDescriptor::from_proto`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelDescriptor {
    /// The model's name, chosen by its author (e.g. `cohort.dense`).
    pub name: String,
    /// The model's version, chosen by its author: a changed architecture or
    /// forward pass with the same tensors should change it.
    pub version: String,
    /// The parameter tensors in wire order: the flat parameter vector is
    /// each tensor's elements, row-major, one tensor after the other.
    pub tensors: Vec<TensorSpec>,
}

/// Why a [`ModelDescriptor`] describes no model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptorError {
    /// The model's name or version is empty or too long.
    #[error("the model's {0} must be 1 to {MAX_NAME_BYTES} bytes")]
    BadLabel(&'static str),
    /// The model lists no tensor.
    #[error("the model has no parameter tensors")]
    NoTensors,
    /// A tensor's name is empty or too long.
    #[error("tensor {index} has an empty or over-long name")]
    BadTensorName {
        /// Position of the tensor.
        index: usize,
    },
    /// Two tensors share a name.
    #[error("tensor name {0:?} appears twice")]
    DuplicateTensor(String),
    /// A tensor has no dimensions or a zero one.
    #[error("tensor {name:?} has shape {shape:?}; every dimension must be at least 1")]
    EmptyTensor {
        /// The tensor.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// A tensor's element type is unknown (from the wire).
    #[error("tensor {0:?} has an unknown element type")]
    UnknownDType(String),
    /// The parameter vector would exceed [`MAX_MODEL_BYTES`].
    #[error("the model's parameters would take more than {MAX_MODEL_BYTES} bytes")]
    TooLarge,
}

impl ModelDescriptor {
    /// A checked descriptor.
    ///
    /// # Errors
    /// [`DescriptorError`] naming the first field that is wrong.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        tensors: Vec<TensorSpec>,
    ) -> Result<Self, DescriptorError> {
        let descriptor = Self {
            name: name.into(),
            version: version.into(),
            tensors,
        };
        descriptor.check()?;
        Ok(descriptor)
    }

    /// Checks every field; a descriptor from a file or the network must pass
    /// before its sizes are used.
    ///
    /// # Errors
    /// [`DescriptorError`] naming the first field that is wrong.
    pub fn check(&self) -> Result<(), DescriptorError> {
        check_label(&self.name, "name")?;
        check_label(&self.version, "version")?;
        if self.tensors.is_empty() {
            return Err(DescriptorError::NoTensors);
        }
        let mut names = std::collections::HashSet::new();
        let mut bytes = 0usize;
        for (index, tensor) in self.tensors.iter().enumerate() {
            if tensor.name.is_empty() || tensor.name.len() > MAX_NAME_BYTES {
                return Err(DescriptorError::BadTensorName { index });
            }
            if !names.insert(tensor.name.as_str()) {
                return Err(DescriptorError::DuplicateTensor(tensor.name.clone()));
            }
            if tensor.shape.is_empty() || tensor.shape.contains(&0) {
                return Err(DescriptorError::EmptyTensor {
                    name: tensor.name.clone(),
                    shape: tensor.shape.clone(),
                });
            }
            bytes = tensor
                .checked_len()
                .and_then(|n| n.checked_mul(tensor.dtype.size()))
                .and_then(|b| b.checked_add(bytes))
                .filter(|&total| total <= MAX_MODEL_BYTES)
                .ok_or(DescriptorError::TooLarge)?;
        }
        Ok(())
    }

    /// Length of the flat parameter vector.
    pub fn num_parameters(&self) -> usize {
        self.tensors.iter().map(TensorSpec::len).sum()
    }

    /// Length of the encoded parameter vector in bytes.
    pub fn num_bytes(&self) -> usize {
        self.tensors.iter().map(|t| t.len() * t.dtype.size()).sum()
    }

    /// SHA-256 over the descriptor's canonical encoding: the domain, then the
    /// name, the version and each tensor's name, type and dimensions, every
    /// string and list prefixed by its length (u64, little-endian).
    pub fn fingerprint(&self) -> [u8; 32] {
        fn put_len(ctx: &mut ring::digest::Context, n: usize) {
            ctx.update(&(n as u64).to_le_bytes());
        }
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(FINGERPRINT_DOMAIN);
        for label in [&self.name, &self.version] {
            put_len(&mut ctx, label.len());
            ctx.update(label.as_bytes());
        }
        put_len(&mut ctx, self.tensors.len());
        for tensor in &self.tensors {
            put_len(&mut ctx, tensor.name.len());
            ctx.update(tensor.name.as_bytes());
            ctx.update(&[tensor.dtype.code()]);
            put_len(&mut ctx, tensor.shape.len());
            for &dim in &tensor.shape {
                put_len(&mut ctx, dim);
            }
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    /// `name version`, for messages.
    pub fn label(&self) -> String {
        format!("{} {}", self.name, self.version)
    }

    /// The protocol's form.
    pub fn to_proto(&self) -> v1::ModelDescriptor {
        v1::ModelDescriptor {
            name: self.name.clone(),
            version: self.version.clone(),
            tensors: self
                .tensors
                .iter()
                .map(|t| v1::TensorSpec {
                    name: t.name.clone(),
                    shape: t.shape.iter().map(|&d| d as u64).collect(),
                    dtype: match t.dtype {
                        DType::F32 => v1::DType::F32.into(),
                    },
                })
                .collect(),
        }
    }

    /// The descriptor a protocol message states, checked.
    ///
    /// # Errors
    /// [`DescriptorError`] for an unknown element type, a dimension that does
    /// not fit a `usize`, or any check [`ModelDescriptor::check`] makes.
    pub fn from_proto(wire: &v1::ModelDescriptor) -> Result<Self, DescriptorError> {
        let tensors = wire
            .tensors
            .iter()
            .map(|t| {
                let dtype = match v1::DType::try_from(t.dtype) {
                    Ok(v1::DType::F32) => DType::F32,
                    _ => return Err(DescriptorError::UnknownDType(t.name.clone())),
                };
                let shape = t
                    .shape
                    .iter()
                    .map(|&d| usize::try_from(d).map_err(|_| DescriptorError::TooLarge))
                    .collect::<Result<_, _>>()?;
                Ok(TensorSpec {
                    name: t.name.clone(),
                    shape,
                    dtype,
                })
            })
            .collect::<Result<_, _>>()?;
        Self::new(wire.name.clone(), wire.version.clone(), tensors)
    }
}

fn check_label(label: &str, what: &'static str) -> Result<(), DescriptorError> {
    if label.is_empty() || label.len() > MAX_NAME_BYTES {
        return Err(DescriptorError::BadLabel(what));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cnn() -> ModelDescriptor {
        ModelDescriptor::new(
            "hospital.cnn",
            "3",
            vec![
                TensorSpec::f32("conv.weight", vec![8, 1, 3, 3]),
                TensorSpec::f32("conv.bias", vec![8]),
                TensorSpec::f32("head.weight", vec![288, 10]),
            ],
        )
        .unwrap()
    }

    #[test]
    fn sizes_follow_the_tensors() {
        let model = cnn();
        assert_eq!(model.num_parameters(), 72 + 8 + 2880);
        assert_eq!(model.num_bytes(), model.num_parameters() * 4);
    }

    #[test]
    fn every_field_changes_the_fingerprint() {
        let base = cnn();
        let mut variants = Vec::new();
        let mut renamed = base.clone();
        renamed.name = "hospital.cnn2".into();
        variants.push(renamed);
        let mut reversioned = base.clone();
        reversioned.version = "4".into();
        variants.push(reversioned);
        let mut reshaped = base.clone();
        reshaped.tensors[0].shape = vec![8, 1, 9];
        variants.push(reshaped);
        let mut reordered = base.clone();
        reordered.tensors.swap(0, 1);
        variants.push(reordered);
        let mut tensor_renamed = base.clone();
        tensor_renamed.tensors[2].name = "head.w".into();
        variants.push(tensor_renamed);
        for variant in &variants {
            assert_ne!(variant.fingerprint(), base.fingerprint(), "{variant:?}");
        }
        assert_eq!(cnn().fingerprint(), base.fingerprint());
    }

    /// Length prefixes keep field boundaries: moving a character from the
    /// name to the version is another model.
    #[test]
    fn the_encoding_is_unambiguous() {
        let a = ModelDescriptor::new("ab", "c", cnn().tensors).unwrap();
        let b = ModelDescriptor::new("a", "bc", cnn().tensors).unwrap();
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn the_protocol_form_round_trips() {
        let model = cnn();
        assert_eq!(ModelDescriptor::from_proto(&model.to_proto()), Ok(model));
    }

    #[test]
    fn bad_descriptors_are_named() {
        let t = |name: &str, shape: Vec<usize>| TensorSpec::f32(name, shape);
        assert_eq!(
            ModelDescriptor::new("", "1", vec![t("w", vec![1])]),
            Err(DescriptorError::BadLabel("name"))
        );
        assert_eq!(
            ModelDescriptor::new("m", "1", vec![]),
            Err(DescriptorError::NoTensors)
        );
        assert_eq!(
            ModelDescriptor::new("m", "1", vec![t("w", vec![2]), t("w", vec![3])]),
            Err(DescriptorError::DuplicateTensor("w".into()))
        );
        assert!(matches!(
            ModelDescriptor::new("m", "1", vec![t("w", vec![4, 0])]),
            Err(DescriptorError::EmptyTensor { .. })
        ));
        assert_eq!(
            ModelDescriptor::new("m", "1", vec![t("w", vec![usize::MAX, 2])]),
            Err(DescriptorError::TooLarge)
        );
        // Addressable, but more than any federation moves: refused before
        // anyone reserves a buffer for it.
        assert_eq!(
            ModelDescriptor::new("m", "1", vec![t("w", vec![1 << 31, 1])]),
            Err(DescriptorError::TooLarge)
        );
        let mut wire = cnn().to_proto();
        wire.tensors[1].dtype = 99;
        assert_eq!(
            ModelDescriptor::from_proto(&wire),
            Err(DescriptorError::UnknownDType("conv.bias".into()))
        );
    }
}
