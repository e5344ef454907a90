//! The requester's side of a prediction: [`encrypt`] a quantized input, [`decrypt`]
//! the class scores; and the two ciphertext containers that travel.
//!
//! **Promises.**
//! - An [`EncryptedInput`] is one LWE ciphertext per feature under the big key,
//!   each `x · 2^(64 − INPUT_WIDTH)` plus TUniform(2^17) noise. It is *seeded*:
//!   the random masks are replaced by one 128-bit seed, so a feature costs 8 bytes
//!   on the wire instead of 16 KiB; the node expands the masks. It names the
//!   [`KeyId`] of the evaluation key it is meant for.
//! - [`EncryptedScores`] are full LWE ciphertexts (16 KiB per class), what a node
//!   serving in scores mode returns. Decrypting them reveals every class score to
//!   the holder of the client key, which is the requester, who owns the input.
//!   The argmax is left to the requester. (In class mode the node returns a
//!   [`super::EncryptedClass`] instead: `super::argmax_mode`.)
//! - Decrypting with another client key yields unrelated numbers, not an error:
//!   the scores carry no key id.

use tfhe::core_crypto::prelude::{
    ContiguousEntityContainer, LweCiphertextCount, LweSize, PlaintextList, SeededLweCiphertextList,
    decrypt_lwe_ciphertext, encrypt_seeded_lwe_ciphertext_list, new_seeder,
};

use super::error::{Blob, HeError};
use super::keys::{ClientKey, KeyId};
use super::params::{INPUT_WIDTH, PARAMETER_SET_ID, PARAMS, modulus};
use super::quantize::QuantizedInput;
use super::serialize::{self, InputWire, ScoresWire, SizeLimits};

/// An encrypted, quantized input: what a requester sends to a node.
#[derive(Clone)]
pub struct EncryptedInput {
    pub(crate) wire: InputWire,
}

impl std::fmt::Debug for EncryptedInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedInput")
            .field("key_id", &self.key_id())
            .field("len", &self.len())
            .finish()
    }
}

impl EncryptedInput {
    /// Number of ciphertexts (features).
    pub fn len(&self) -> usize {
        self.wire.ciphertexts.lwe_ciphertext_count().0
    }

    /// True if there are no ciphertexts.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The evaluation key this input was encrypted for.
    pub fn key_id(&self) -> KeyId {
        KeyId(self.wire.key_id)
    }

    /// Safe serialization, at most `limits.encrypted_input` bytes.
    pub fn to_bytes(&self, limits: &SizeLimits) -> Result<Vec<u8>, HeError> {
        serialize::to_bytes(&self.wire, Blob::EncryptedInput, limits.encrypted_input)
    }

    /// Reads [`Self::to_bytes`]; oversized, truncated or foreign blobs are errors.
    pub fn from_bytes(bytes: &[u8], limits: &SizeLimits) -> Result<Self, HeError> {
        let wire: InputWire =
            serialize::from_bytes(bytes, Blob::EncryptedInput, limits.encrypted_input)?;
        wire.validate()?;
        Ok(Self { wire })
    }
}

/// Encrypted class scores: what a node sends back.
#[derive(Clone)]
pub struct EncryptedScores {
    pub(crate) wire: ScoresWire,
}

impl std::fmt::Debug for EncryptedScores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedScores")
            .field("len", &self.len())
            .field("score_width", &self.wire.score_width)
            .finish()
    }
}

impl EncryptedScores {
    /// Number of class scores.
    pub fn len(&self) -> usize {
        self.wire.ciphertexts.lwe_ciphertext_count().0
    }

    /// True if there are no scores.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Safe serialization, at most `limits.encrypted_scores` bytes.
    pub fn to_bytes(&self, limits: &SizeLimits) -> Result<Vec<u8>, HeError> {
        serialize::to_bytes(&self.wire, Blob::EncryptedScores, limits.encrypted_scores)
    }

    /// Reads [`Self::to_bytes`]; oversized, truncated or foreign blobs are errors.
    pub fn from_bytes(bytes: &[u8], limits: &SizeLimits) -> Result<Self, HeError> {
        let wire: ScoresWire =
            serialize::from_bytes(bytes, Blob::EncryptedScores, limits.encrypted_scores)?;
        wire.validate()?;
        Ok(Self { wire })
    }
}

/// Encrypts a quantized input under the client key, for the evaluation key of the
/// same keygen.
pub fn encrypt(client_key: &ClientKey, input: &QuantizedInput) -> Result<EncryptedInput, HeError> {
    let values = input.values();
    let limit = 1i64 << (INPUT_WIDTH - 1);
    if let Some((index, &value)) = values
        .iter()
        .enumerate()
        .find(|(_, v)| !(-limit..limit).contains(*v))
    {
        return Err(HeError::InputOutOfRange {
            index,
            value,
            min: -limit,
            max: limit - 1,
        });
    }
    let shift = 64 - INPUT_WIDTH;
    let encoded: Vec<u64> = values.iter().map(|&v| (v as u64) << shift).collect();
    let mut seeder = new_seeder();
    let mut list = SeededLweCiphertextList::new(
        0u64,
        LweSize(PARAMS.big_lwe_dimension() + 1),
        LweCiphertextCount(encoded.len()),
        seeder.seed().into(),
        modulus(),
    );
    encrypt_seeded_lwe_ciphertext_list(
        &client_key.big_key,
        &mut list,
        &PlaintextList::from_container(encoded),
        PARAMS.glwe_noise(),
        seeder.as_mut(),
    );
    Ok(EncryptedInput {
        wire: InputWire {
            parameter_set: PARAMETER_SET_ID,
            key_id: client_key.key_id().0,
            ciphertexts: list,
        },
    })
}

/// Decrypts class scores (signed integers, in the model's score unit). The
/// predicted class is the index of the largest (first one on ties), as
/// [`super::QuantizedModel::predict_clear`] computes it.
pub fn decrypt(client_key: &ClientKey, scores: &EncryptedScores) -> Vec<i64> {
    let width = scores.wire.score_width;
    scores
        .wire
        .ciphertexts
        .iter()
        .map(|ct| {
            let phase = decrypt_lwe_ciphertext(&client_key.big_key, &ct).0;
            decode(phase, width)
        })
        .collect()
}

/// Rounds a phase to the nearest multiple of `2^(64−width)` and reads the
/// `width`-bit two's-complement value. `width` is in 2..=63.
pub(crate) fn decode(phase: u64, width: u32) -> i64 {
    let shift = 64 - width;
    let rounded = phase.wrapping_add(1u64 << (shift - 1)) >> shift;
    ((rounded << shift) as i64) >> shift
}
