//! Homomorphic-encryption inference: a node evaluates its quantized model on a
//! requester's encrypted input and returns, encrypted, either the predicted class
//! alone ([`OutputMode::Class`]) or every class score ([`OutputMode::Scores`]),
//! learning neither the input nor the answer.
//!
//! Behind the cargo feature `he` (tfhe-rs is a large dependency).
//!
//! ```text
//! requester                                   node
//! keygen(None) -> (ClientKey, CompressedEvaluationKey)
//!   InputQuantizer (serde)            ◄────── model.input_quantizer()
//!   OutputMode (advertised)           ◄────── OutputPlan::new(&model, mode)
//!   CompressedEvaluationKey::to_bytes  ──────► EvaluationKey::from_bytes (cache by key_id)
//!   quantizer.quantize(x); encrypt    ──────► EncryptedInput::from_bytes
//!                                             evaluate_output(&eval_key, &model, &plan, &input)
//!                                               (linear layers, bootstraps; in class
//!                                                mode the argmax by bootstraps; then
//!                                                sanitize: + Enc_pk(0), flooded)
//!   EncryptedOutput::from_bytes(mode)  ◄────── EncryptedOutput::to_bytes
//!   decrypt_output -> Prediction { class, scores: Some in scores mode only }
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
//! **What each side learns.** The node: nothing about the input or the answer
//! (IND-CPA of LWE; it holds no decryption key). The requester, in either mode,
//! computationally and up to a per-output statistical distance, only the answer:
//! every output is re-randomized with a fresh encryption of zero under the
//! requester's public key and its noise is flooded ([`sanitize`]). Without that
//! step one logistic-regression output gave away every weight.
//! - **Class mode** ([`argmax_mode`], the node's default): per input, **one
//!   class**, the index of the largest score (first on ties), computed under
//!   encryption; no score. Distance [`ArgmaxPlan::output_privacy`]. Supported for
//!   single-layer models (logistic regression) with 2 to 16 classes; a model
//!   with hidden layers is refused ([`HeError::ArgmaxUnavailable`], which says
//!   why and suggests scores mode). Label-only model extraction remains possible
//!   but costs far more queries than with logits (at most `log2(classes)` bits
//!   per query).
//! - **Scores mode**: per input and class, **the integer score (logit)**.
//!   Distance [`QuantizedModel::output_privacy`]. A requester that crafts its
//!   input phases learns one linear function of the weights per class and query
//!   at a point of its choice, as through a clear interface with 64-bit
//!   fixed-point inputs: a `d`-feature linear model falls to `d + 1` queries
//!   through any logit interface (Tramèr et al., USENIX Security 2016).
//!
//! In both modes only a query budget (the node's inference server has one)
//! bounds the number of queries. The details and the threat model are in
//! [`sanitize`] and [`argmax_mode`].
//!
//! Modules:
//! - [`params`]: the parameter set and encodings;
//! - [`quantize`]: post-training quantization and the exact clear computation;
//! - [`keys`]: client key, compressed and expanded evaluation keys, key ids;
//! - [`encrypt`](mod@encrypt): encrypt inputs, decrypt scores;
//! - [`evaluate`](mod@evaluate): linear layers and exact ReLU/requantization by bootstrapping;
//! - [`argmax_mode`]: the argmax-only output (class by bootstrapped comparisons),
//!   the output modes and the typed outputs of either mode;
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
