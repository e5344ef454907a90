//! The wire contract for model parameters.
//!
//! A federation trains the model a [`ModelDescriptor`] describes
//! (`descriptor.rs`): its author's name and version and its parameter
//! tensors in order. Its parameters travel as one flat vector of
//! little-endian `f32` ([`encode_f32`], [`decode_f32`], `encoding.rs`),
//! tensor by tensor, each row-major. The descriptor's *fingerprint* is
//! SHA-256 over its canonical encoding, and a model version is named by
//! SHA-256 over the fingerprint and the encoded parameters
//! ([`model_version`], `fingerprint.rs`).
//!
//! The built-in dense models are descriptors too: [`ParameterLayout`]
//! (`layout.rs`) is a stack of dense layers, built from a [`SavedSpec`]
//! (`spec.rs`) and carried as the `cohort.dense` descriptor. Their first
//! model is drawn from a seed ([`initial_parameters`], `init.rs`).

mod descriptor;
mod encoding;
mod fingerprint;
mod init;
mod layout;
mod spec;

pub use descriptor::{DType, DescriptorError, MAX_MODEL_BYTES, ModelDescriptor, TensorSpec};
pub use encoding::{DecodeError, decode_f32, encode_f32};
pub use fingerprint::model_version;
pub use init::initial_parameters;
pub use layout::{
    DENSE_MODEL, DENSE_MODEL_VERSION, DenseShape, MODEL_KINDS, ModelSpecError, NotDense,
    ParameterLayout,
};
pub use spec::SavedSpec;
