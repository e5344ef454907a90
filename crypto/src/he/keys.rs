//! Keys: the requester's [`ClientKey`], the [`CompressedEvaluationKey`] it sends to
//! a node, and the node's expanded [`EvaluationKey`].
//!
//! **Promises.**
//! - The client key is the big LWE secret key (2048 binary coefficients). It is
//!   never printed (`Debug` is redacted) and is zeroized on drop. It is all a
//!   requester needs to encrypt inputs and decrypt scores. It is serialized only
//!   by [`ClientKey::to_secret_bytes`], into a zeroizing buffer, for the
//!   requester's own key file (which its caller writes 0600).
//! - The evaluation key holds a keyswitching key (big key → small key) and a
//!   bootstrapping key (small key → GLWE key), both *encryptions* of key material:
//!   holding it lets a node compute on ciphertexts, not decrypt them (under the
//!   circular-security assumption that TFHE makes; Chillotti, Gama, Georgieva,
//!   Izabachène, *TFHE: Fast Fully Homomorphic Encryption over the Torus*,
//!   J. Cryptology 33, 2020).
//! - On the wire the evaluation key is *compressed*: tfhe-rs's seeded keys, in which
//!   every uniformly random mask is replaced by the seed it was drawn from, so only
//!   the bodies travel. A node expands it once ([`CompressedEvaluationKey::expand`]):
//!   masks are regenerated and the bootstrapping key is converted to the Fourier
//!   domain.
//! - The evaluation key also carries an LWE *compact public key* under the big
//!   key (one RLWE sample, N = 2048, TUniform(2^17), as tfhe-rs's
//!   `V1_4_PARAM_PKE_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128`; 16 KiB seeded). It
//!   lets the node encrypt zeros, which it adds to every output so that the
//!   output's mask does not reveal the model (see [`super::sanitize`]). It is one
//!   more RLWE sample under the GLWE key, which the bootstrapping key already
//!   encrypts under with the same noise: no new assumption.
//! - [`KeyId`] is SHA-256 (ring) of the serialized compressed key, so a node can
//!   cache expanded keys by id; every encrypted input names the key id it was made
//!   for.
//! - The secret keys are generated with tfhe-rs's CSPRNG, seeded from the hardware
//!   (RDSEED) or the operating system; [`keygen`] with a seed is deterministic and
//!   meant for tests only.

use tfhe::core_crypto::commons::generators::DeterministicSeeder;
use tfhe::core_crypto::commons::math::random::Seed;
use tfhe::core_crypto::prelude::{
    DefaultRandomGenerator, FourierLweBootstrapKey, FourierLweBootstrapKeyOwned, GlweSecretKey,
    LweCompactPublicKeyOwned, LweKeyswitchKeyOwned, LweSecretKey, LweSecretKeyOwned,
    SecretRandomGenerator, Seeder, allocate_and_generate_new_seeded_lwe_compact_public_key,
    allocate_and_generate_new_seeded_lwe_keyswitch_key, new_seeder,
    par_allocate_and_generate_new_seeded_lwe_bootstrap_key,
    par_convert_standard_lwe_bootstrap_key_to_fourier,
};
use zeroize::Zeroize;

use tfhe::safe_serialization::safe_serialized_size;

use super::error::{Blob, HeError};
use super::params::{PARAMETER_SET_ID, PARAMS, modulus};
use super::serialize::{self, EvaluationKeyWire, SizeLimits};

/// SHA-256 of a serialized compressed evaluation key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 32]);

impl KeyId {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyId({})", self.to_hex())
    }
}

/// The requester's secret key. Stays with the requester.
pub struct ClientKey {
    pub(crate) big_key: LweSecretKeyOwned<u64>,
    pub(crate) key_id: KeyId,
}

/// Leading bytes of [`ClientKey::to_secret_bytes`].
const CLIENT_KEY_MAGIC: &[u8; 16] = b"cohort-he-ck-v1\0";

impl ClientKey {
    /// Id of the evaluation key generated with this client key.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The secret key as bytes, for the requester's key file: a magic, the
    /// parameter set id (u32 LE), the key id, then one byte (0 or 1) per
    /// coefficient. The buffer is wiped when dropped.
    pub fn to_secret_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let coefficients = self.big_key.as_ref();
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(
            CLIENT_KEY_MAGIC.len() + 4 + 32 + coefficients.len(),
        ));
        out.extend_from_slice(CLIENT_KEY_MAGIC);
        out.extend_from_slice(&PARAMETER_SET_ID.to_le_bytes());
        out.extend_from_slice(&self.key_id.0);
        out.extend(coefficients.iter().map(|&c| c as u8));
        out
    }

    /// Reads [`Self::to_secret_bytes`]. Another length, magic or parameter set, or
    /// a coefficient other than 0 or 1, is [`HeError::Malformed`] or
    /// [`HeError::Mismatch`].
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<Self, HeError> {
        let blob = Blob::ClientKey;
        let dimension = PARAMS.big_lwe_dimension();
        let header = CLIENT_KEY_MAGIC.len() + 4 + 32;
        let malformed = |reason: &str| HeError::Malformed {
            blob,
            limit: (header + dimension) as u64,
            reason: reason.to_owned(),
        };
        if bytes.len() != header + dimension {
            return Err(HeError::Mismatch {
                blob,
                what: "length in bytes",
                expected: (header + dimension) as u64,
                actual: bytes.len() as u64,
            });
        }
        let (magic, rest) = bytes.split_at(CLIENT_KEY_MAGIC.len());
        if magic != CLIENT_KEY_MAGIC {
            return Err(malformed("not a Cohort HE client key (bad magic)"));
        }
        let (set, rest) = rest.split_at(4);
        let set = u32::from_le_bytes([set[0], set[1], set[2], set[3]]);
        if set != PARAMETER_SET_ID {
            return Err(HeError::Mismatch {
                blob,
                what: "parameter set",
                expected: u64::from(PARAMETER_SET_ID),
                actual: u64::from(set),
            });
        }
        let (id, coefficients) = rest.split_at(32);
        if coefficients.iter().any(|&c| c > 1) {
            return Err(malformed("a coefficient is neither 0 nor 1"));
        }
        let mut key_id = [0u8; 32];
        key_id.copy_from_slice(id);
        let big_key =
            LweSecretKey::from_container(coefficients.iter().map(|&c| u64::from(c)).collect());
        Ok(Self {
            big_key,
            key_id: KeyId(key_id),
        })
    }
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey")
            .field("key_id", &self.key_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Drop for ClientKey {
    fn drop(&mut self) {
        self.big_key.as_mut().zeroize();
    }
}

/// The evaluation key as it travels: seeded (compressed) keyswitching and
/// bootstrapping keys.
#[derive(Clone)]
pub struct CompressedEvaluationKey {
    pub(crate) wire: EvaluationKeyWire,
    pub(crate) key_id: KeyId,
}

impl std::fmt::Debug for CompressedEvaluationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompressedEvaluationKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl CompressedEvaluationKey {
    /// SHA-256 of [`Self::to_bytes`].
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// tfhe-rs safe serialization (versioned, named, size-limited by
    /// `limits.evaluation_key`).
    pub fn to_bytes(&self, limits: &SizeLimits) -> Result<Vec<u8>, HeError> {
        serialize::to_bytes(&self.wire, Blob::EvaluationKey, limits.evaluation_key)
    }

    /// Length of [`Self::to_bytes`].
    pub fn serialized_size(&self) -> Result<u64, HeError> {
        safe_serialized_size(&self.wire).map_err(|e| HeError::Serialize {
            blob: Blob::EvaluationKey,
            limit: u64::MAX,
            reason: e.to_string(),
        })
    }

    /// Reads a key written by [`Self::to_bytes`]. A blob over the limit, truncated,
    /// corrupted, or made with other parameters is an error; its id is SHA-256 of
    /// `bytes`.
    pub fn from_bytes(bytes: &[u8], limits: &SizeLimits) -> Result<Self, HeError> {
        let wire: EvaluationKeyWire =
            serialize::from_bytes(bytes, Blob::EvaluationKey, limits.evaluation_key)?;
        wire.validate()?;
        Ok(Self {
            wire,
            key_id: KeyId::of(bytes),
        })
    }

    /// Regenerates the masks and converts the bootstrapping key to the Fourier
    /// domain: what [`super::evaluate()`] needs. Uses every core (rayon).
    pub fn expand(&self) -> EvaluationKey {
        let public_key = self
            .wire
            .public_key
            .clone()
            .decompress_into_lwe_compact_public_key();
        let ksk = self
            .wire
            .ksk
            .clone()
            .par_decompress_into_lwe_keyswitch_key();
        let standard_bsk = self
            .wire
            .bsk
            .clone()
            .par_decompress_into_lwe_bootstrap_key();
        let mut bsk = FourierLweBootstrapKey::new(
            standard_bsk.input_lwe_dimension(),
            standard_bsk.glwe_size(),
            standard_bsk.polynomial_size(),
            standard_bsk.decomposition_base_log(),
            standard_bsk.decomposition_level_count(),
        );
        par_convert_standard_lwe_bootstrap_key_to_fourier(&standard_bsk, &mut bsk);
        EvaluationKey {
            ksk,
            bsk,
            public_key,
            key_id: self.key_id,
        }
    }
}

/// The node's evaluation key, expanded and ready (about
/// [`super::params::HeParams::expanded_key_payload_bytes`] of memory).
pub struct EvaluationKey {
    pub(crate) ksk: LweKeyswitchKeyOwned<u64>,
    pub(crate) bsk: FourierLweBootstrapKeyOwned,
    /// The requester's compact public key: encryptions of zero re-randomize
    /// every output.
    pub(crate) public_key: LweCompactPublicKeyOwned<u64>,
    pub(crate) key_id: KeyId,
}

impl std::fmt::Debug for EvaluationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvaluationKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl EvaluationKey {
    /// [`CompressedEvaluationKey::from_bytes`] then [`CompressedEvaluationKey::expand`].
    pub fn from_bytes(bytes: &[u8], limits: &SizeLimits) -> Result<Self, HeError> {
        Ok(CompressedEvaluationKey::from_bytes(bytes, limits)?.expand())
    }

    /// Id of the compressed key this was expanded from.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }
}

/// Generates a client key and its compressed evaluation key.
///
/// `seed: None` (production) seeds tfhe-rs's CSPRNG from the hardware or the
/// operating system. `Some(seed)` makes every secret and every noise sample a
/// function of `seed`: for reproducible tests only.
pub fn keygen(seed: Option<u128>) -> Result<(ClientKey, CompressedEvaluationKey), HeError> {
    let mut seeder: Box<dyn Seeder> = match seed {
        Some(seed) => Box::new(DeterministicSeeder::<DefaultRandomGenerator>::new(Seed(
            seed,
        ))),
        None => new_seeder(),
    };
    let mut secret_generator = SecretRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed());
    let mut small_key =
        LweSecretKey::generate_new_binary(PARAMS.small_dim(), &mut secret_generator);
    let mut glwe_key =
        GlweSecretKey::generate_new_binary(PARAMS.glwe_dim(), PARAMS.poly(), &mut secret_generator);
    let (ks_base, ks_level) = PARAMS.ks_decomposition();
    let (pbs_base, pbs_level) = PARAMS.pbs_decomposition();
    let big_key = glwe_key.clone().into_lwe_secret_key();
    let public_key = allocate_and_generate_new_seeded_lwe_compact_public_key(
        &big_key,
        PARAMS.glwe_noise(),
        modulus(),
        seeder.as_mut(),
    );
    let ksk = allocate_and_generate_new_seeded_lwe_keyswitch_key(
        &big_key,
        &small_key,
        ks_base,
        ks_level,
        PARAMS.lwe_noise(),
        modulus(),
        seeder.as_mut(),
    );
    let bsk = par_allocate_and_generate_new_seeded_lwe_bootstrap_key(
        &small_key,
        &glwe_key,
        pbs_base,
        pbs_level,
        PARAMS.glwe_noise(),
        modulus(),
        seeder.as_mut(),
    );
    small_key.as_mut().zeroize();
    glwe_key.as_mut().zeroize();
    let wire = EvaluationKeyWire {
        parameter_set: PARAMETER_SET_ID,
        ksk,
        bsk,
        public_key,
    };
    let bytes = serialize::to_bytes(&wire, Blob::EvaluationKey, u64::MAX)?;
    let key_id = KeyId::of(&bytes);
    Ok((
        ClientKey { big_key, key_id },
        CompressedEvaluationKey { wire, key_id },
    ))
}
