//! The one TFHE parameter set of this module, and the encodings built on it.
//!
//! **Security.** The secret-key dimensions and noise distributions are those of
//! tfhe-rs's `V1_4_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128` (tfhe 1.8.2,
//! `shortint::parameters::v1_4::classic::tuniform::p_fail_2_minus_128`), which Zama
//! chose for 128-bit security with the lattice estimator:
//!
//! | | dimension | noise |
//! |---|---|---|
//! | small LWE key (bootstrapping input) | n = 918, binary | TUniform(2^45) |
//! | GLWE key (k = 1, N = 2048), also the "big" LWE key of dimension 2048 | 2048, binary | TUniform(2^17) |
//!
//! Security depends on these alone. Decomposition parameters (base and level
//! counts of the keyswitching and bootstrapping keys) do not change the keys or the
//! noise of each encryption; they only trade speed against the noise that
//! keyswitching and bootstrapping *add*. We keep tfhe-rs's keyswitch (base 2^4,
//! 4 levels) and use a finer bootstrapping-key decomposition than tfhe-rs's
//! (base 2^23, 1 level), because our bootstrapped values feed long linear
//! combinations whose noise is then amplified (see `evaluate`): with 1 level the
//! output noise is about 2^-14.5 of the torus, too coarse for 13-bit class scores.
//!
//! **Encodings.** Everything is an LWE ciphertext under the big key, modulo 2^64.
//! A value `v` of a K-bit accumulator is encoded as `v · 2^(64−K)` (two's complement
//! modulo 2^64, so negative values need no special care). Client inputs are
//! encoded with [`INPUT_WIDTH`] = 24; the node multiplies by `2^(24−K)` when it
//! multiplies by the clear weights, which is free. Bootstrapping reads a window of
//! [`WINDOW_BITS`] = 4 message bits plus one bit of padding (16 boxes of the
//! lookup table over half the torus), the precision tfhe-rs validates for these
//! dimensions.

use tfhe::core_crypto::prelude::{
    CiphertextModulus, DecompositionBaseLog, DecompositionLevelCount, DynamicDistribution,
    GlweDimension, LweDimension, PolynomialSize,
};

/// Width (in bits) of the encoding of client inputs: a quantized input `x` is
/// encrypted as `x · 2^(64 − INPUT_WIDTH)`. It bounds the first layer's accumulator.
pub const INPUT_WIDTH: u32 = 24;

/// Message bits a programmable bootstrap reads (plus one padding bit).
pub const WINDOW_BITS: u32 = 4;

/// Boxes of a lookup table: `2^WINDOW_BITS`.
pub(crate) const WINDOW: usize = 1 << WINDOW_BITS;

/// Identifies the parameter set on the wire, so that a blob made with another set is
/// refused by name rather than by a dimension check.
pub const PARAMETER_SET_ID: u32 = 1;

/// The TFHE parameters (see the module documentation for where they come from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeParams {
    /// Small LWE key dimension n (input of the blind rotation).
    pub lwe_dimension: usize,
    /// GLWE dimension k.
    pub glwe_dimension: usize,
    /// GLWE polynomial size N.
    pub polynomial_size: usize,
    /// log2 of the TUniform bound of the small-key encryption noise.
    pub lwe_noise_log2: u32,
    /// log2 of the TUniform bound of the GLWE (and big LWE key) encryption noise.
    pub glwe_noise_log2: u32,
    /// Bootstrapping-key decomposition.
    pub pbs_base_log: usize,
    /// Levels of the bootstrapping-key decomposition.
    pub pbs_level: usize,
    /// Keyswitching-key decomposition.
    pub ks_base_log: usize,
    /// Levels of the keyswitching-key decomposition.
    pub ks_level: usize,
}

/// The parameter set in use.
pub const PARAMS: HeParams = HeParams {
    lwe_dimension: 918,
    glwe_dimension: 1,
    polynomial_size: 2048,
    lwe_noise_log2: 45,
    glwe_noise_log2: 17,
    pbs_base_log: 11,
    pbs_level: 3,
    ks_base_log: 4,
    ks_level: 4,
};

impl HeParams {
    /// Dimension of the big LWE key (k · N) under which every ciphertext of this
    /// module lives.
    pub const fn big_lwe_dimension(&self) -> usize {
        self.glwe_dimension * self.polynomial_size
    }

    pub(crate) fn small_dim(&self) -> LweDimension {
        LweDimension(self.lwe_dimension)
    }

    pub(crate) fn big_dim(&self) -> LweDimension {
        LweDimension(self.big_lwe_dimension())
    }

    pub(crate) fn glwe_dim(&self) -> GlweDimension {
        GlweDimension(self.glwe_dimension)
    }

    pub(crate) fn poly(&self) -> PolynomialSize {
        PolynomialSize(self.polynomial_size)
    }

    pub(crate) fn lwe_noise(&self) -> DynamicDistribution<u64> {
        DynamicDistribution::new_t_uniform(self.lwe_noise_log2)
    }

    pub(crate) fn glwe_noise(&self) -> DynamicDistribution<u64> {
        DynamicDistribution::new_t_uniform(self.glwe_noise_log2)
    }

    pub(crate) fn pbs_decomposition(&self) -> (DecompositionBaseLog, DecompositionLevelCount) {
        (
            DecompositionBaseLog(self.pbs_base_log),
            DecompositionLevelCount(self.pbs_level),
        )
    }

    pub(crate) fn ks_decomposition(&self) -> (DecompositionBaseLog, DecompositionLevelCount) {
        (
            DecompositionBaseLog(self.ks_base_log),
            DecompositionLevelCount(self.ks_level),
        )
    }

    /// Bytes of the compressed (seeded) evaluation key's payload: the keyswitching
    /// key's bodies, the bootstrapping key's GLWE bodies and the compact public
    /// key's body.
    pub const fn compressed_key_payload_bytes(&self) -> u64 {
        let ksk = self.big_lwe_dimension() * self.ks_level;
        let bsk =
            self.lwe_dimension * (self.glwe_dimension + 1) * self.pbs_level * self.polynomial_size;
        ((ksk + bsk + self.big_lwe_dimension()) * 8) as u64
    }

    /// Bytes of the same keys with their masks, in the standard domain (what a
    /// node holds after expanding; the Fourier bootstrapping key takes as much).
    pub const fn expanded_key_payload_bytes(&self) -> u64 {
        let ksk = self.big_lwe_dimension() * self.ks_level * (self.lwe_dimension + 1);
        let glwe_size = self.glwe_dimension + 1;
        let bsk =
            self.lwe_dimension * glwe_size * glwe_size * self.pbs_level * self.polynomial_size;
        ((ksk + bsk + 2 * self.big_lwe_dimension()) * 8) as u64
    }
}

pub(crate) fn modulus() -> CiphertextModulus<u64> {
    CiphertextModulus::new_native()
}
