//! Circuit privacy: every output ciphertext is *re-randomized* and its noise
//! *flooded* before it leaves the node, so that what the requester decrypts is the
//! class scores and not the model.
//!
//! **Threat model.** The requester is the adversary. It holds the client key, it
//! made every input ciphertext (so it knows each mask `a_i` and each noise `e_i`,
//! or chose them), and it generated the evaluation key (so it knows the noise of
//! every keyswitching- and bootstrapping-key ciphertext). It may deviate from the
//! encryption algorithm in any way the wire format allows. The node's model (its
//! weights, biases and, for an MLP, its requantization shifts) is the secret. The
//! node's randomness is its own CSPRNG (tfhe-rs's, seeded from the hardware or the
//! operating system).
//!
//! **The attack without this module.** For logistic regression the output is
//! `ct = Σ_i c_i·ct_i + (b, 0…)` with `c_i = w_i·2^e`, so its mask is
//! `A = Σ_i c_i·a_i mod 2^64`: 2048 linear equations in the `d` unknowns `c_i`
//! over `Z/2^64`, which the requester solves from one output (Gaussian
//! elimination with odd pivots), then reads the bias from the phase. One query
//! gives every weight exactly (`he::tests::circuit_privacy`). The noise is a second
//! channel: the phase's low bits are `Σ_i c_i·e_i`, one more equation per output.
//!
//! **The defence** (the classic recipe: Gentry, *A Fully Homomorphic Encryption
//! Scheme*, PhD thesis, Stanford 2009; Bourse, Del Pino, Minelli, Wee, *FHE
//! Circuit Privacy Almost for Free*, CRYPTO 2016; Ducas, Stehlé, *Sanitization of
//! FHE Ciphertexts*, EUROCRYPT 2016): add to each output a fresh public-key
//! encryption of zero whose body noise is a *flooding* noise.
//! 1. *Mask.* The requester publishes, inside its evaluation key, an LWE *compact*
//!    public key under its big key (tfhe-rs `LweCompactPublicKey`, one RLWE sample
//!    `(p, p ⊛ s + e)`, N = 2048, TUniform(2^17): the dimensions and noise of
//!    tfhe-rs's `V1_4_PARAM_PKE_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128`). The node
//!    encrypts zero with it: mask `p ⊛ r + e₁` for a fresh binary `r` and
//!    TUniform(2^17) `e₁`. That mask is an RLWE sample with secret `r`, which the
//!    requester does not know even with `s`; so the output's mask
//!    `A + p ⊛ r + e₁` is computationally indistinguishable from uniform and
//!    independent of `A` (decisional RLWE). This is a computational guarantee, not a
//!    statistical one (a statistically uniform mask would need a leftover-hash
//!    public key of about 2048·64 ciphertexts, 2 GiB).
//! 2. *Noise.* The encryption's body noise is drawn from TUniform(2^f), with `f`
//!    the largest value that keeps decryption correct (`flood_bits`): the noise
//!    already in the score (bounded by [`OutputPrivacy::score_noise_log2`]), the
//!    zero encryption's own noise (at most [`ZERO_ENCRYPTION_NOISE_BOUND`]) and the
//!    flood together stay below half a score unit. For a shift `c`,
//!    `SD(TUniform(2^f), c + TUniform(2^f)) = |c| / 2^(f+1)`; so an output whose
//!    model-dependent noise is at most `C` hides it up to statistical distance
//!    `C / 2^(f+1)` ([`OutputPrivacy::statistical_distance`]). The zero encryption's
//!    phase `⟨e, r⟩ + e₂ − ⟨e₁, s⟩`, which the requester could otherwise compute and
//!    use against `r`, is covered the same way.
//!
//! **What the requester still learns, exactly.** Per input and class: the phase
//! `φ = Σ_i c_i·φ_i + (b + offset)·2^(64−K) + E` where `φ_i` are the phases of its
//! inputs (for an honest encryption `x_i·2^40 + e_i`) and `E` is fresh noise at
//! least TUniform(2^f). With honest inputs that is the integer score `Σ w_i x_i + b`
//! (what it asked for) and, up to the statistical distance above, nothing else.
//! Against inputs whose phases it chose freely, the output is still one linear
//! function of the weights per class, evaluated at a point of its choice and
//! observed to within `2^f` modulo 2^64: the same as a prediction interface that
//! accepts 64-bit fixed-point inputs and returns noisy logits. Such an interface
//! yields about `(64 − f)/(weight bits + 1)` weights per class per query, and any
//! logit interface yields the whole of a `d`-feature linear model after `d + 1`
//! queries (Tramèr et al., *Stealing Machine Learning Models via Prediction APIs*,
//! USENIX Security 2016). Only a per-requester query budget bounds that (the node's
//! inference server has one); the argmax-only output ([`super::argmax_mode`])
//! returns the class alone, sanitized by this module the same way.
//!
//! For an MLP the last layer's inputs are bootstrap outputs: their masks come from
//! the node's blind rotations and their noise is a deterministic function of the
//! evaluation key's noise (known to the requester) and of the rotation path (which
//! depends on the hidden activations). The re-randomization makes the mask
//! pseudorandom as for logistic regression; the flood then hides noise of size
//! `8σ` only up to the (larger) distance [`OutputPrivacy::statistical_distance`]
//! reports, because the score's noise budget leaves little room. The same holds for
//! any bootstrapped output: a final PBS refreshes the noise but its mask is a
//! function of the key and the input, not fresh randomness.

use tfhe::core_crypto::prelude::{
    DefaultRandomGenerator, DynamicDistribution, EncryptionRandomGenerator, LweCiphertext,
    LweCompactPublicKeyOwned, Plaintext, encrypt_lwe_ciphertext_with_compact_public_key,
    new_seeder,
};

use super::error::HeError;
use super::params::{PARAMS, modulus};

/// Largest absolute phase of an encryption of zero with the compact public key,
/// before flooding: `|⟨e, r⟩| + |⟨e₁, s⟩| ≤ 2·2048·2^17 = 2^29` (binary `r`, `s`;
/// TUniform(2^17) `e`, `e₁`), plus the body noise, which is the flood itself.
pub const ZERO_ENCRYPTION_NOISE_BOUND: u64 =
    (2 * PARAMS.big_lwe_dimension() as u64) << PARAMS.glwe_noise_log2;

/// How a model's outputs are sanitized, and what the flood hides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutputPrivacy {
    /// K: the score unit is `2^(64−K)` of the torus.
    pub score_width: u32,
    /// log2 of the bound on a score's noise before sanitization, relative to the
    /// torus (a hard bound for logistic regression, 8σ for an MLP).
    pub score_noise_log2: f64,
    /// f: the flood is TUniform(2^f), in units of 2^-64 of the torus.
    pub flood_bits: u32,
}

impl OutputPrivacy {
    /// `C / 2^(f+1)`, the statistical distance between the flooded noise of two
    /// outputs whose pre-flood noises differ by at most `C` = twice the score's
    /// noise bound: how well one output hides the model-dependent noise.
    pub fn statistical_distance(&self) -> f64 {
        let c = 2.0 * (self.score_noise_log2 + 64.0).exp2();
        (c / f64::from(self.flood_bits + 1).exp2()).min(1.0)
    }
}

/// The largest `f` such that TUniform(2^f) added to a score with noise at most
/// `2^(64 + score_noise_log2)` (plus [`ZERO_ENCRYPTION_NOISE_BOUND`]) still
/// decrypts to the right score: the total stays under half a score unit,
/// `2^(63−K)`. [`HeError::NoiseBudget`] if there is no room at all.
pub(crate) fn flood_bits(layer: usize, width: u32, score_noise_log2: f64) -> Result<u32, HeError> {
    let half_unit = f64::from(63 - width).exp2();
    let used = (score_noise_log2 + 64.0).exp2() + ZERO_ENCRYPTION_NOISE_BOUND as f64;
    let room = half_unit - used;
    if room < 2.0 {
        return Err(HeError::NoiseBudget {
            layer,
            log2_noise: used.log2() - 64.0,
            log2_allowed: -f64::from(width + 1),
        });
    }
    // 2^f < room: TUniform(2^f) reaches ±2^f inclusive.
    Ok((room.log2().ceil() as u32).saturating_sub(1))
}

/// Adds a fresh public-key encryption of zero, with body noise TUniform(2^f), to
/// output ciphertexts. Holds the node's CSPRNG.
pub(crate) struct Sanitizer<'k> {
    public_key: &'k LweCompactPublicKeyOwned<u64>,
    generator: EncryptionRandomGenerator<DefaultRandomGenerator>,
}

impl<'k> Sanitizer<'k> {
    /// A sanitizer drawing from tfhe-rs's CSPRNG, seeded from the hardware or the
    /// operating system.
    pub(crate) fn new(public_key: &'k LweCompactPublicKeyOwned<u64>) -> Self {
        let mut seeder = new_seeder();
        let generator = EncryptionRandomGenerator::new(seeder.seed(), seeder.as_mut());
        Self {
            public_key,
            generator,
        }
    }

    /// `ct ← ct + Enc_pk(0)`, the encryption's body noise TUniform(2^flood_bits).
    /// `ct` is one big-key LWE ciphertext (2049 words).
    pub(crate) fn sanitize(&mut self, ct: &mut [u64], flood_bits: u32) {
        let mut zero = LweCiphertext::new(0u64, PARAMS.big_dim().to_lwe_size(), modulus());
        encrypt_lwe_ciphertext_with_compact_public_key(
            self.public_key,
            &mut zero,
            Plaintext(0u64),
            PARAMS.glwe_noise(),
            DynamicDistribution::<u64>::new_t_uniform(flood_bits),
            self.generator.noise_generator_mut(),
        );
        for (x, z) in ct.iter_mut().zip(zero.as_ref()) {
            *x = x.wrapping_add(*z);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flood_takes_the_room_left_under_half_a_score_unit_and_no_more() {
        // K = 18: half a unit is 2^45; a 2^32 score noise and the 2^29 zero
        // encryption leave just under 2^45, so the flood is 2^44.
        let f = flood_bits(0, 18, -32.0).unwrap();
        assert_eq!(f, 44);
        let total = 2f64.powi(32) + ZERO_ENCRYPTION_NOISE_BOUND as f64 + 2f64.powi(f as i32);
        assert!(total < 2f64.powi(45));
        // Noise that already fills the budget leaves no room: refused.
        let refused = flood_bits(1, 12, -13.0).unwrap_err();
        assert!(matches!(refused, HeError::NoiseBudget { layer: 1, .. }));
    }

    #[test]
    fn the_statistical_distance_is_twice_the_noise_over_twice_the_flood() {
        let privacy = OutputPrivacy {
            score_width: 18,
            score_noise_log2: -32.0,
            flood_bits: 44,
        };
        // 2·2^32 / 2^45 = 2^-12.
        assert_eq!(privacy.statistical_distance(), 2f64.powi(-12));
        let hopeless = OutputPrivacy {
            flood_bits: 20,
            ..privacy
        };
        assert_eq!(hopeless.statistical_distance(), 1.0);
    }
}
