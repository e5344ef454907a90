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
    /// The requester's secret key file.
    ClientKey,
}

impl std::fmt::Display for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::EvaluationKey => "evaluation key",
            Self::EncryptedInput => "encrypted input",
            Self::EncryptedScores => "encrypted scores",
            Self::ClientKey => "client key",
        })
    }
}

/// Why an HE operation was refused.
#[derive(Debug, Error)]
pub enum HeError {
    /// The blob is larger than the configured limit; nothing was parsed.
    #[error("{blob} is {actual} bytes, over the limit of {limit} bytes")]
    BlobTooLarge { blob: Blob, limit: u64, actual: u64 },
    /// The blob is not a well-formed serialization (truncated, corrupted, another
    /// type or version), or would deserialize to more than the limit.
    #[error("{blob} could not be read ({limit} byte limit): {reason}")]
    Malformed {
        blob: Blob,
        limit: u64,
        reason: String,
    },
    /// The blob parsed, but a dimension or parameter differs from this module's
    /// parameter set (another key, a forged object, another parameter version).
    #[error("{blob}: {what} is {actual}, expected {expected}")]
    Mismatch {
        blob: Blob,
        what: &'static str,
        expected: u64,
        actual: u64,
    },
    /// Serializing failed or would exceed the limit.
    #[error("{blob} could not be serialized ({limit} byte limit): {reason}")]
    Serialize {
        blob: Blob,
        limit: u64,
        reason: String,
    },
    /// The number of input ciphertexts is not the model's input width.
    #[error("the model takes {expected} inputs, the encrypted input has {actual} ciphertexts")]
    InputCount { expected: usize, actual: usize },
    /// A quantized input value lies outside the model's input range.
    #[error("quantized input {index} is {value}, outside [{min}, {max}]")]
    InputOutOfRange {
        index: usize,
        value: i64,
        min: i64,
        max: i64,
    },
    /// A float input is NaN or infinite.
    #[error("input {index} is NaN or infinite")]
    NonFiniteInput { index: usize },
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
        layer: usize,
        needed: u32,
        allowed: u32,
    },
    /// The encrypted evaluation of this layer would risk a wrong result: its
    /// estimated noise (log2, relative to the torus) exceeds the allowed bound.
    #[error(
        "layer {layer}: estimated noise 2^{log2_noise:.1} exceeds 2^{log2_allowed:.1}; \
         use fewer weight bits"
    )]
    NoiseBudget {
        layer: usize,
        log2_noise: f64,
        log2_allowed: f64,
    },
    /// A bit-width setting is outside the supported range.
    #[error("{what} = {value} is outside {min}..={max}")]
    Bits {
        what: &'static str,
        value: u32,
        min: u32,
        max: u32,
    },
    /// The encrypted input names another evaluation key than the one given.
    #[error("the encrypted input was made for key {input_key}, the evaluation key is {eval_key}")]
    KeyMismatch { input_key: String, eval_key: String },
}
