//! The wire contract for model parameters.
//!
//! A model is a stack of dense layers ([`ParameterLayout`], `layout.rs`). Its
//! parameters travel as one flat vector of little-endian `f32`
//! ([`encode_f32`], [`decode_f32`], `encoding.rs`), layer by layer, each
//! layer's weight (row-major, `[inputs, outputs]`) followed by its bias
//! (`[outputs]`). The layout's *fingerprint* is SHA-256 over a canonical
//! description of it, and a model version is named by SHA-256 over the
//! fingerprint and the encoded parameters ([`model_version`],
//! `fingerprint.rs`). A federation's first model is drawn from a seed
//! ([`initial_parameters`], `init.rs`).

mod encoding;
mod fingerprint;
mod init;
mod layout;
mod spec;

pub use encoding::{DecodeError, decode_f32, encode_f32};
pub use fingerprint::model_version;
pub use init::initial_parameters;
pub use layout::{DenseShape, MODEL_KINDS, ModelSpecError, ParameterLayout};
pub use spec::SavedSpec;
