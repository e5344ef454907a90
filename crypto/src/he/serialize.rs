//! Byte encodings of the evaluation key and the ciphertexts, with size limits.
//!
//! **Promises.** Every blob is written with tfhe-rs's safe serialization
//! (`tfhe::safe_serialization`): a header naming the type and its version, then
//! bincode, with a size limit on both sides. Reading a blob:
//! 1. refuses it unread if it is longer than the limit ([`HeError::BlobTooLarge`]);
//! 2. parses it with bincode bounded by the same limit, so a length field that
//!    claims more than the limit is an error, not an allocation
//!    ([`HeError::Malformed`]); a truncated, corrupted, mistyped or
//!    other-version blob is also `Malformed`;
//! 3. checks every dimension, decomposition parameter, modulus and container
//!    length against this module's parameter set ([`HeError::Mismatch`]) before
//!    any tfhe-rs routine sees the object, since those routines assert (panic)
//!    on inconsistent shapes.
//!
//! So no byte string makes these functions panic or allocate beyond its limit.

use serde::{Deserialize, Serialize};
use tfhe::core_crypto::prelude::{
    LweCiphertextListOwned, SeededLweBootstrapKeyOwned, SeededLweCiphertextListOwned,
    SeededLweCompactPublicKeyOwned, SeededLweKeyswitchKeyOwned,
};
use tfhe::named::Named;
use tfhe::safe_serialization::{safe_deserialize, safe_serialize};
use tfhe_versionable::{Versionize, VersionsDispatch};

use super::error::{Blob, HeError};
use super::params::{PARAMETER_SET_ID, PARAMS};

/// Size limits, in bytes, for reading (and writing) each kind of blob. Keep them
/// below the memory a node can spare: tfhe-rs may allocate up to the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeLimits {
    /// Compressed evaluation key. The key of [`PARAMS`] is about
    /// [`super::params::HeParams::compressed_key_payload_bytes`] (90 MB); default 128 MiB.
    pub evaluation_key: u64,
    /// Encrypted input: about 8 bytes per feature plus a header; default 1 MiB
    /// (over 100 000 features).
    pub encrypted_input: u64,
    /// Encrypted scores: 16 KiB per class; default 16 MiB (about 1000 classes).
    /// Also the limit of an encrypted class (argmax-only output, one 16 KiB
    /// ciphertext).
    pub encrypted_scores: u64,
}

impl Default for SizeLimits {
    fn default() -> Self {
        Self {
            evaluation_key: 128 << 20,
            encrypted_input: 1 << 20,
            encrypted_scores: 16 << 20,
        }
    }
}

// ---------------------------------------------------------------------------
// Wire types: one versioned, named struct per blob.

#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(EvaluationKeyWireVersions)]
pub(crate) struct EvaluationKeyWire {
    pub(crate) parameter_set: u32,
    pub(crate) ksk: SeededLweKeyswitchKeyOwned<u64>,
    pub(crate) bsk: SeededLweBootstrapKeyOwned<u64>,
    /// Compact public key under the big key, for re-randomizing outputs.
    pub(crate) public_key: SeededLweCompactPublicKeyOwned<u64>,
}

#[derive(VersionsDispatch)]
#[allow(dead_code)]
pub(crate) enum EvaluationKeyWireVersions {
    V0(EvaluationKeyWire),
}

impl Named for EvaluationKeyWire {
    // v2: with the compact public key; a v1 key (without it) is refused by name.
    const NAME: &'static str = "cohort_crypto::he::CompressedEvaluationKeyV2";
}

#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(InputWireVersions)]
pub(crate) struct InputWire {
    pub(crate) parameter_set: u32,
    pub(crate) key_id: [u8; 32],
    pub(crate) ciphertexts: SeededLweCiphertextListOwned<u64>,
}

#[derive(VersionsDispatch)]
#[allow(dead_code)]
pub(crate) enum InputWireVersions {
    V0(InputWire),
}

impl Named for InputWire {
    const NAME: &'static str = "cohort_crypto::he::EncryptedInput";
}

#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(ScoresWireVersions)]
pub(crate) struct ScoresWire {
    pub(crate) parameter_set: u32,
    /// K: a score `v` is encoded as `v · 2^(64−K)`, two's complement.
    pub(crate) score_width: u32,
    pub(crate) ciphertexts: LweCiphertextListOwned<u64>,
}

#[derive(VersionsDispatch)]
#[allow(dead_code)]
pub(crate) enum ScoresWireVersions {
    V0(ScoresWire),
}

impl Named for ScoresWire {
    const NAME: &'static str = "cohort_crypto::he::EncryptedScores";
}

#[derive(Clone, Serialize, Deserialize, Versionize)]
#[versionize(ClassWireVersions)]
pub(crate) struct ClassWire {
    pub(crate) parameter_set: u32,
    /// Number of classes of the model: the decrypted class lies in `0..num_classes`.
    pub(crate) num_classes: u32,
    /// One ciphertext: the class `c` encoded as `c · 2^(64−CLASS_WIDTH)`.
    pub(crate) ciphertexts: LweCiphertextListOwned<u64>,
}

#[derive(VersionsDispatch)]
#[allow(dead_code)]
pub(crate) enum ClassWireVersions {
    V0(ClassWire),
}

impl Named for ClassWire {
    const NAME: &'static str = "cohort_crypto::he::EncryptedClass";
}

// ---------------------------------------------------------------------------
// Generic write / read.

pub(crate) fn to_bytes<T: Serialize + Versionize + Named>(
    value: &T,
    blob: Blob,
    limit: u64,
) -> Result<Vec<u8>, HeError> {
    let mut out = Vec::new();
    safe_serialize(value, &mut out, limit).map_err(|e| HeError::Serialize {
        blob,
        limit,
        reason: e.to_string(),
    })?;
    Ok(out)
}

pub(crate) fn from_bytes<T>(bytes: &[u8], blob: Blob, limit: u64) -> Result<T, HeError>
where
    T: serde::de::DeserializeOwned + tfhe_versionable::Unversionize + Named,
{
    let actual = bytes.len() as u64;
    if actual > limit {
        return Err(HeError::BlobTooLarge {
            blob,
            limit,
            actual,
        });
    }
    safe_deserialize(bytes, limit).map_err(|reason| HeError::Malformed {
        blob,
        limit,
        reason,
    })
}

fn check(blob: Blob, what: &'static str, expected: usize, actual: usize) -> Result<(), HeError> {
    if expected == actual {
        Ok(())
    } else {
        Err(HeError::Mismatch {
            blob,
            what,
            expected: expected as u64,
            actual: actual as u64,
        })
    }
}

fn check_parameter_set(blob: Blob, actual: u32) -> Result<(), HeError> {
    check(
        blob,
        "parameter set",
        PARAMETER_SET_ID as usize,
        actual as usize,
    )
}

fn check_native(blob: Blob, native: bool) -> Result<(), HeError> {
    check(
        blob,
        "ciphertext modulus is 2^64 (1 = yes)",
        1,
        native as usize,
    )
}

// ---------------------------------------------------------------------------
// Shape checks.

impl EvaluationKeyWire {
    pub(crate) fn validate(&self) -> Result<(), HeError> {
        check_parameter_set(Blob::EvaluationKey, self.parameter_set)?;
        self.check_keyswitching_key()?;
        self.check_bootstrapping_key()?;
        self.check_public_key()
    }

    fn check_keyswitching_key(&self) -> Result<(), HeError> {
        let b = Blob::EvaluationKey;
        let ksk = &self.ksk;
        check(
            b,
            "keyswitching key input dimension",
            PARAMS.big_lwe_dimension(),
            ksk.input_key_lwe_dimension().0,
        )?;
        check(
            b,
            "keyswitching key output dimension",
            PARAMS.lwe_dimension,
            ksk.output_key_lwe_dimension().0,
        )?;
        check(
            b,
            "keyswitching key base log",
            PARAMS.ks_base_log,
            ksk.decomposition_base_log().0,
        )?;
        check(
            b,
            "keyswitching key level count",
            PARAMS.ks_level,
            ksk.decomposition_level_count().0,
        )?;
        check_native(b, ksk.ciphertext_modulus().is_native_modulus())?;
        check(
            b,
            "keyswitching key length",
            PARAMS.big_lwe_dimension() * PARAMS.ks_level,
            ksk.as_ref().len(),
        )
    }

    fn check_bootstrapping_key(&self) -> Result<(), HeError> {
        let b = Blob::EvaluationKey;
        let bsk = &self.bsk;
        check(
            b,
            "bootstrapping key input dimension",
            PARAMS.lwe_dimension,
            bsk.input_lwe_dimension().0,
        )?;
        check(
            b,
            "bootstrapping key GLWE size",
            PARAMS.glwe_dimension + 1,
            bsk.glwe_size().0,
        )?;
        check(
            b,
            "bootstrapping key polynomial size",
            PARAMS.polynomial_size,
            bsk.polynomial_size().0,
        )?;
        check(
            b,
            "bootstrapping key base log",
            PARAMS.pbs_base_log,
            bsk.decomposition_base_log().0,
        )?;
        check(
            b,
            "bootstrapping key level count",
            PARAMS.pbs_level,
            bsk.decomposition_level_count().0,
        )?;
        check_native(b, bsk.ciphertext_modulus().is_native_modulus())?;
        check(
            b,
            "bootstrapping key length",
            PARAMS.lwe_dimension
                * (PARAMS.glwe_dimension + 1)
                * PARAMS.pbs_level
                * PARAMS.polynomial_size,
            bsk.as_ref().len(),
        )
    }

    fn check_public_key(&self) -> Result<(), HeError> {
        let b = Blob::EvaluationKey;
        let pk = &self.public_key;
        check(
            b,
            "public key dimension",
            PARAMS.big_lwe_dimension(),
            pk.lwe_dimension().0,
        )?;
        check_native(b, pk.ciphertext_modulus().is_native_modulus())?;
        check(
            b,
            "public key length",
            PARAMS.big_lwe_dimension(),
            pk.as_ref().len(),
        )
    }
}

impl InputWire {
    pub(crate) fn validate(&self) -> Result<(), HeError> {
        let b = Blob::EncryptedInput;
        check_parameter_set(b, self.parameter_set)?;
        let list = &self.ciphertexts;
        check(
            b,
            "LWE size",
            PARAMS.big_lwe_dimension() + 1,
            list.lwe_size().0,
        )?;
        check_native(b, list.ciphertext_modulus().is_native_modulus())?;
        check(
            b,
            "ciphertext bodies",
            list.lwe_ciphertext_count().0,
            list.as_ref().len(),
        )
    }
}

impl ScoresWire {
    pub(crate) fn validate(&self) -> Result<(), HeError> {
        let b = Blob::EncryptedScores;
        check_parameter_set(b, self.parameter_set)?;
        if !(2..=63).contains(&self.score_width) {
            return Err(HeError::Mismatch {
                blob: b,
                what: "score width (2..=63)",
                expected: 32,
                actual: u64::from(self.score_width),
            });
        }
        let list = &self.ciphertexts;
        let lwe_size = PARAMS.big_lwe_dimension() + 1;
        check(b, "LWE size", lwe_size, list.lwe_size().0)?;
        check_native(b, list.ciphertext_modulus().is_native_modulus())?;
        check(
            b,
            "ciphertext words",
            list.lwe_ciphertext_count().0 * lwe_size,
            list.as_ref().len(),
        )
    }
}

impl ClassWire {
    pub(crate) fn validate(&self) -> Result<(), HeError> {
        let b = Blob::EncryptedClass;
        check_parameter_set(b, self.parameter_set)?;
        let classes = self.num_classes as usize;
        if !(2..=super::argmax_mode::MAX_CLASSES).contains(&classes) {
            return Err(HeError::Mismatch {
                blob: b,
                what: "number of classes (2..=16)",
                expected: 2,
                actual: u64::from(self.num_classes),
            });
        }
        let list = &self.ciphertexts;
        let lwe_size = PARAMS.big_lwe_dimension() + 1;
        check(b, "LWE size", lwe_size, list.lwe_size().0)?;
        check_native(b, list.ciphertext_modulus().is_native_modulus())?;
        check(b, "ciphertexts", 1, list.lwe_ciphertext_count().0)?;
        check(b, "ciphertext words", lwe_size, list.as_ref().len())
    }
}
