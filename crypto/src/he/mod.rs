//! Homomorphic-encryption inference: a node evaluates its quantized model on a
//! requester's encrypted input and returns encrypted class scores, learning
//! neither the input nor the scores.
//!
//! Behind the cargo feature `he` (tfhe-rs is a large dependency).
//!
//! ```text
//! requester                                   node
//! keygen(None) -> (ClientKey, CompressedEvaluationKey)
//!   InputQuantizer (serde)            ◄────── model.input_quantizer()
//!   CompressedEvaluationKey::to_bytes  ──────► EvaluationKey::from_bytes (cache by key_id)
//!   quantizer.quantize(x); encrypt    ──────► EncryptedInput::from_bytes
//!                                             evaluate(&eval_key, &model, &input)
//!                                               (linear layers, bootstraps, then
//!                                                sanitize: + Enc_pk(0), flooded)
//!   EncryptedScores::from_bytes        ◄────── EncryptedScores::to_bytes
//!   decrypt -> scores; argmax
//! ```
//!
//! **Scheme.** TFHE (Chillotti, Gama, Georgieva, Izabachène, *TFHE: Fast Fully
//! Homomorphic Encryption over the Torus*, J. Cryptology 33, 2020) as implemented by
//! Zama's tfhe-rs 1.8, with programmable bootstrapping (Chillotti, Joye, Paillier,
//! *Programmable Bootstrapping Enables Efficient Homomorphic Inference of Deep
//! Neural Networks*, CSCML 2021) for ReLU and requantization.
//!
//! **Which tfhe-rs layer, and why: `core_crypto` (LWE, keyswitch, PBS).** The
//! high-level integer API (`FheInt`) and `integer` radix ciphertexts keep every
//! value in 2-bit blocks, so multiplying a ciphertext by a clear weight and adding
//! costs carry propagations, i.e. bootstraps: tens of milliseconds per
//! multiply-add, minutes for a 64-input layer. `shortint` holds at most 8 bits of
//! message and carry per ciphertext, which a 30-term dot product overflows. With
//! `core_crypto` a linear layer is plain modular arithmetic on 2049-word LWE
//! ciphertexts, with room for 23-bit accumulators: logistic regression needs no
//! bootstrap at all (measured 1.8–2.3 ms per 30-feature prediction on the node,
//! parsing included; see the README table), and we choose the encodings and the lookup tables of the
//! bootstraps that hidden layers need. The keys, dimensions and noise are
//! tfhe-rs's audited 128-bit set (see [`params`]); we use tfhe-rs's seeded
//! (compressed) keys and ciphertexts and its safe serialization.
//!
//! **What each side learns.** The node: nothing about the input or the scores
//! (IND-CPA of LWE; it holds no decryption key). The requester, per input and
//! class, the integer score (logit) and, computationally and up to the
//! statistical distance [`QuantizedModel::output_privacy`] reports per output,
//! nothing else about the model: every output is re-randomized with a fresh
//! encryption of zero under the requester's public key and its noise is flooded
//! ([`sanitize`]). Without that step one logistic-regression output gave away
//! every weight. A requester that crafts its input phases learns one linear
//! function of the weights per class and query at a point of its choice, as
//! through a clear interface with 64-bit fixed-point inputs: a `d`-feature linear
//! model falls to `d + 1` queries through any logit interface (Tramèr et al.,
//! USENIX Security 2016), which only a query budget (the node's inference
//! server has one) bounds. The details and the threat model are in [`sanitize`].
//!
//! Modules:
//! - [`params`]: the parameter set and encodings;
//! - [`quantize`]: post-training quantization and the exact clear computation;
//! - [`keys`]: client key, compressed and expanded evaluation keys, key ids;
//! - [`encrypt`](mod@encrypt): encrypt inputs, decrypt scores;
//! - [`evaluate`](mod@evaluate): linear layers and exact ReLU/requantization by bootstrapping;
//! - [`sanitize`]: circuit privacy: re-randomizing and noise-flooding every output;
//! - [`serialize`]: size-limited, versioned byte encodings;
//! - [`error`]: the error type, [`HeError`].

pub mod argmax_mode;
pub mod encrypt;
pub mod error;
pub mod evaluate;
pub mod keys;
pub mod params;
pub mod quantize;
pub mod sanitize;
pub mod serialize;

pub use argmax_mode::{
    ArgmaxPlan, EncryptedClass, EncryptedOutput, OutputMode, OutputPlan, Prediction,
    UnknownOutputMode, decrypt_class, decrypt_output, evaluate_class, evaluate_output,
};
pub use encrypt::{EncryptedInput, EncryptedScores, decrypt, encrypt};
pub use error::{Blob, HeError};
pub use evaluate::evaluate;
pub use keys::{ClientKey, CompressedEvaluationKey, EvaluationKey, KeyId, keygen};
pub use params::{HeParams, INPUT_WIDTH, PARAMS};
pub use quantize::{
    Accuracy, BitsConfig, InputQuantizer, QuantizedInput, QuantizedLayer, QuantizedModel,
    QuantizedModelData, argmax, float_scores,
};
pub use sanitize::OutputPrivacy;
pub use serialize::SizeLimits;

#[cfg(test)]
mod tests;
