//! [`HeError`]: every way the HE module refuses its input, naming what was wrong.

use thiserror::Error;

/// Which serialized object a size or format error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blob {
    /// The compressed evaluation key sent by a requester to a node.
    EvaluationKey,
    /// The encrypted, quantized input of one prediction.
    EncryptedInput,
    /// The encrypted class scores of one prediction.
    EncryptedScores,
    /// The encrypted predicted class of one prediction (argmax-only output).
    EncryptedClass,
    /// The requester's secret key file.
    ClientKey,
}

impl std::fmt::Display for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::EvaluationKey => "evaluation key",
            Self::EncryptedInput => "encrypted input",
            Self::EncryptedScores => "encrypted scores",
            Self::EncryptedClass => "encrypted class",
            Self::ClientKey => "client key",
        })
    }
}

/// Why an HE operation was refused.
#[derive(Debug, Error)]
pub enum HeError {
    /// The blob is larger than the configured limit; nothing was parsed.
    #[error("{blob} is {actual} bytes, over the limit of {limit} bytes")]
    BlobTooLarge {
        /// The object.
        blob: Blob,
        /// The limit, in bytes.
        limit: u64,
        /// Its size, in bytes.
        actual: u64,
    },
    /// The blob is not a well-formed serialization (truncated, corrupted, another
    /// type or version), or would deserialize to more than the limit.
    #[error("{blob} could not be read ({limit} byte limit): {reason}")]
    Malformed {
        /// The object.
        blob: Blob,
        /// The size limit it was read under, in bytes.
        limit: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The blob parsed, but a dimension or parameter differs from this module's
    /// parameter set (another key, a forged object, another parameter version).
    #[error("{blob}: {what} is {actual}, expected {expected}")]
    Mismatch {
        /// The object.
        blob: Blob,
        /// The dimension or parameter that differs.
        what: &'static str,
        /// Its value in this module's parameter set.
        expected: u64,
        /// Its value in the blob.
        actual: u64,
    },
    /// Serializing failed or would exceed the limit.
    #[error("{blob} could not be serialized ({limit} byte limit): {reason}")]
    Serialize {
        /// The object.
        blob: Blob,
        /// The size limit, in bytes.
        limit: u64,
        /// What failed.
        reason: String,
    },
    /// The number of input ciphertexts is not the model's input width.
    #[error("the model takes {expected} inputs, the encrypted input has {actual} ciphertexts")]
    InputCount {
        /// The model's input width.
        expected: usize,
        /// Inputs given.
        actual: usize,
    },
    /// A quantized input value lies outside the model's input range.
    #[error("quantized input {index} is {value}, outside [{min}, {max}]")]
    InputOutOfRange {
        /// The input's position.
        index: usize,
        /// Its quantized value.
        value: i64,
        /// The smallest value allowed.
        min: i64,
        /// The largest value allowed.
        max: i64,
    },
    /// A float input is NaN or infinite.
    #[error("input {index} is NaN or infinite")]
    NonFiniteInput {
        /// The input's position.
        index: usize,
    },
    /// Parameters, layout and calibration data do not describe a model that can be
    /// quantized, or a deserialized quantized model is inconsistent.
    #[error("invalid model: {0}")]
    InvalidModel(String),
    /// The quantized model needs a wider accumulator than the encrypted path offers.
    #[error(
        "layer {layer} needs a {needed}-bit accumulator, the encrypted path allows {allowed}; \
         use fewer input or weight bits"
    )]
    AccumulatorTooWide {
        /// The layer, counted from 0.
        layer: usize,
        /// Bits its accumulator needs.
        needed: u32,
        /// Bits the encrypted path allows.
        allowed: u32,
    },
    /// The encrypted evaluation of this layer would risk a wrong result: its
    /// estimated noise (log2, relative to the torus) exceeds the allowed bound.
    #[error(
        "layer {layer}: estimated noise 2^{log2_noise:.1} exceeds 2^{log2_allowed:.1}; \
         use fewer weight bits"
    )]
    NoiseBudget {
        /// The layer, counted from 0.
        layer: usize,
        /// log2 of the estimated noise.
        log2_noise: f64,
        /// log2 of the allowed bound.
        log2_allowed: f64,
    },
    /// A bit-width setting is outside the supported range.
    #[error("{what} = {value} is outside {min}..={max}")]
    Bits {
        /// The setting.
        what: &'static str,
        /// Its value.
        value: u32,
        /// The smallest value supported.
        min: u32,
        /// The largest value supported.
        max: u32,
    },
    /// The encrypted input names another evaluation key than the one given.
    #[error("the encrypted input was made for key {input_key}, the evaluation key is {eval_key}")]
    KeyMismatch {
        /// The key id the input names, in hex.
        input_key: String,
        /// The evaluation key's id, in hex.
        eval_key: String,
    },
    /// The argmax-only output (only the predicted class leaves the node) cannot
    /// be computed for this model within the encrypted path's bounds; the model
    /// can still be served with its scores.
    #[error(
        "argmax-only output is unavailable for this model: {reason}; \
         serve it with `--output scores` (the requester then learns the class scores)"
    )]
    ArgmaxUnavailable {
        /// Why: which bound the homomorphic comparison would break.
        reason: String,
    },
    /// A decrypted class is not one of the model's classes: the answer was not
    /// made for this key or this model.
    #[error("decrypted class {class} is not one of the model's {num_classes} classes")]
    ClassOutOfRange {
        /// The decrypted value.
        class: i64,
        /// The model's number of classes.
        num_classes: usize,
    },
}
