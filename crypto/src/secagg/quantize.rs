//! From float updates to Z_M and back.
//!
//! A node's update is clipped to ±clip_range per coordinate, multiplied by its FedAvg
//! weight w ∈ [0, 1], scaled by `scale / clip_range` and stochastically rounded to an
//! integer q with |q| ≤ scale; the weight itself, scaled by `scale`, is appended as one
//! more coordinate. Negative integers wrap into Z_M (two's complement). The server
//! sums, reads each coordinate back as a signed integer and divides the weighted sum
//! by the summed weight.
//!
//! `scale` is the largest integer with n · scale ≤ 2^(b−1) − 1 for the round's n
//! participants (capped at 2^40), so no sum can wrap (see
//! [`SecAggConfig::validate`]). Stochastic rounding is unbiased, and its error is
//! below one step: `clip_range / scale` for an update coordinate and `1 / scale` for
//! the weight (plus float rounding of at most 2^-11 step); a sum of n inputs is off by
//! less than n steps.

use ring::rand::SystemRandom;

use super::config::SecAggConfig;
use super::error::SecAggError;
use super::masking::{modulus_mask, word};
use super::prg::{Prg, PrgSeed};

/// Random words drawn at a time for stochastic rounding.
const ROUNDING_BLOCK: usize = 4096;

/// One node's quantized, weighted update in Z_M: the model's coordinates, then the
/// weight. This is the private input that masking hides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantizedInput {
    values: Vec<u64>,
}

impl QuantizedInput {
    /// The values in Z_M: the model's coordinates, then the weight.
    pub fn values(&self) -> &[u64] {
        &self.values
    }

    /// How many values: the model's length plus one for the weight.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no values at all.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// An input the node has already put in integers (e.g. the distributed
    /// discrete Gaussian's rounded, noised change), with `weight` as the last
    /// value, mapped into Z_{2^bits} (negative values in two's complement).
    /// Keeping the sum from wrapping is the encoder's job.
    pub fn from_integers(values: &[i64], weight: i64, bits: u32) -> Result<Self, SecAggError> {
        if !(2..=64).contains(&bits) {
            return Err(SecAggError::InvalidConfig(format!(
                "bits must be in 2..=64, got {bits}"
            )));
        }
        let mask = modulus_mask(bits);
        Ok(Self {
            values: values
                .iter()
                .chain(std::iter::once(&weight))
                .map(|&v| (v as u64) & mask)
                .collect(),
        })
    }
}

/// Reads a sum in Z_{2^bits} back as signed integers in [−2^(b−1), 2^(b−1)).
pub fn to_signed(sum: &[u64], bits: u32) -> Vec<i128> {
    let bits = bits.clamp(1, 64);
    let half = 1i128 << (bits - 1);
    let mask = modulus_mask(bits);
    sum.iter()
        .map(|&v| {
            let v = i128::from(v & mask);
            if v >= half { v - 2 * half } else { v }
        })
        .collect()
}

/// The unmasked sum, read back as floats.
#[derive(Debug, Clone, PartialEq)]
pub struct DequantizedSum {
    /// Σ w_i · clip(x_i), per coordinate.
    pub weighted_sum: Vec<f64>,
    /// Σ w_i.
    pub total_weight: f64,
}

impl DequantizedSum {
    /// The FedAvg update: Σ w_i · clip(x_i) / Σ w_i.
    pub fn weighted_mean(&self) -> Result<Vec<f64>, SecAggError> {
        if self.total_weight.is_nan() || self.total_weight <= 0.0 {
            return Err(SecAggError::NoWeight);
        }
        Ok(self
            .weighted_sum
            .iter()
            .map(|s| s / self.total_weight)
            .collect())
    }
}

/// Maps updates into Z_M and sums back, for one round's configuration and size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantizer {
    clip_range: f64,
    bits: u32,
    scale: u64,
    vector_len: usize,
}

impl Quantizer {
    /// For a round of `n_participants` nodes and models of `vector_len` coordinates.
    pub fn new(
        config: &SecAggConfig,
        n_participants: usize,
        vector_len: usize,
    ) -> Result<Self, SecAggError> {
        config.validate(n_participants, vector_len)?;
        Ok(Self {
            clip_range: config.clip_range,
            bits: config.bits,
            scale: config.levels(n_participants),
            vector_len,
        })
    }

    /// Integer levels per clip_range: one node's largest quantized magnitude.
    pub fn scale(&self) -> u64 {
        self.scale
    }

    /// The rounding step of an update coordinate, clip_range / scale: each quantized
    /// coordinate is within one step of the clipped, weighted value.
    pub fn step(&self) -> f64 {
        self.clip_range / self.scale as f64
    }

    /// The rounding step of the weight coordinate, 1 / scale.
    pub fn weight_step(&self) -> f64 {
        1.0 / self.scale as f64
    }

    /// The length of a quantized (and masked) vector: the model plus the weight.
    pub fn masked_len(&self) -> usize {
        self.vector_len + 1
    }

    /// Quantizes `weight · clip(update)` and `weight`, rounding with fresh system
    /// randomness. `weight` must be in [0, 1]: normalize sample counts by a public
    /// cap (e.g. min(samples, cap) / cap).
    pub fn quantize_weighted(
        &self,
        update: &[f32],
        weight: f64,
    ) -> Result<QuantizedInput, SecAggError> {
        let seed = PrgSeed::random(&SystemRandom::new())?;
        self.quantize_weighted_with(update, weight, &mut Prg::new(&seed))
    }

    /// As [`Quantizer::quantize_weighted`], drawing the rounding from `rounding`.
    pub fn quantize_weighted_with(
        &self,
        update: &[f32],
        weight: f64,
        rounding: &mut Prg,
    ) -> Result<QuantizedInput, SecAggError> {
        if update.len() != self.vector_len {
            return Err(SecAggError::InvalidUpdate(format!(
                "the update has {} coordinates; the round aggregates {}",
                update.len(),
                self.vector_len
            )));
        }
        if !(0.0..=1.0).contains(&weight) {
            return Err(SecAggError::InvalidUpdate(format!(
                "weight {weight} is outside [0, 1]"
            )));
        }
        if let Some(index) = update.iter().position(|v| !v.is_finite()) {
            return Err(SecAggError::InvalidUpdate(format!(
                "coordinate {index} is {}",
                update[index]
            )));
        }
        let scale = self.scale as f64;
        let factor = weight * scale / self.clip_range;
        let mut values = Vec::with_capacity(self.masked_len());
        let mut random = vec![0u8; ROUNDING_BLOCK * 8];
        for chunk in update.chunks(ROUNDING_BLOCK) {
            let random = &mut random[..chunk.len() * 8];
            rounding.fill_bytes(random)?;
            for (&x, r) in chunk.iter().zip(random.chunks_exact(8)) {
                let clipped = f64::from(x).clamp(-self.clip_range, self.clip_range);
                values.push(self.round_into_ring(clipped * factor, r));
            }
        }
        let mut r = [0u8; 8];
        rounding.fill_bytes(&mut r)?;
        values.push(self.round_into_ring(weight * scale, &r));
        Ok(QuantizedInput { values })
    }

    /// Stochastically rounds `scaled` (|scaled| ≤ scale ≤ 2^40) to an integer and maps
    /// it into Z_M. `random` holds 8 random bytes.
    ///
    /// In integers where it can: |scaled| < 2^53, so truncating to `i64` and stepping
    /// down for negative fractions is exactly `floor`, without the library call (or
    /// an `i128` conversion) that a build for baseline x86-64 makes of it, at 23 ns a
    /// coordinate, 11 % of a SecAgg round's CPU in `cohort-sim bench` (#17).
    #[inline]
    fn round_into_ring(&self, scaled: f64, random: &[u8]) -> u64 {
        // 53 random bits: a uniform u in [0, 1).
        let u = (word::<8>(random) >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        let truncated = scaled as i64;
        let floor = truncated - i64::from((truncated as f64) > scaled);
        // Round up with probability scaled − floor: unbiased.
        let rounded = floor + i64::from(u < scaled - floor as f64);
        // f64 carries 53 bits; for very wide b the product may round past ±scale.
        let limit = self.scale as i64;
        (rounded.clamp(-limit, limit) as u64) & modulus_mask(self.bits)
    }

    /// Reads a sum of `n` quantized inputs back: each value as a signed integer in
    /// (−2^(b−1), 2^(b−1)), then scaled to floats. A value beyond ±n · scale cannot be
    /// such a sum (a node sent out-of-range values or the sum is corrupted): error.
    pub fn dequantize_sum(&self, sum: &[u64], n: usize) -> Result<DequantizedSum, SecAggError> {
        if sum.len() != self.masked_len() {
            return Err(SecAggError::InvalidUpdate(format!(
                "the sum has {} values; expected {}",
                sum.len(),
                self.masked_len()
            )));
        }
        let bound = n as i128 * self.scale as i128;
        let half = 1i128 << (self.bits - 1);
        let mask = modulus_mask(self.bits);
        let mut signed = Vec::with_capacity(sum.len());
        for (index, &v) in sum.iter().enumerate() {
            let v = i128::from(v & mask);
            let value = if v >= half { v - 2 * half } else { v };
            if value.abs() > bound {
                return Err(SecAggError::SumOutOfRange {
                    index,
                    value,
                    bound,
                    n,
                });
            }
            signed.push(value);
        }
        let step = self.step();
        let total = signed.pop().unwrap_or(0);
        Ok(DequantizedSum {
            weighted_sum: signed.into_iter().map(|s| s as f64 * step).collect(),
            total_weight: total as f64 * self.weight_step(),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The f64 `floor` and `i128` rounding the integer path replaced.
    fn reference_rounding(quantizer: &Quantizer, scaled: f64, random: &[u8]) -> u64 {
        let u = (word::<8>(random) >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        let floor = scaled.floor();
        let rounded = floor + f64::from(u8::from(u < scaled - floor));
        let limit = quantizer.scale as i128;
        ((rounded as i128).clamp(-limit, limit) as u64) & modulus_mask(quantizer.bits)
    }

    proptest! {
        #[test]
        fn integer_rounding_is_the_float_floor_s(
            fraction in -1.0f64..=1.0,
            whole in -(1i64 << 40)..=(1i64 << 40),
            random in any::<u64>(),
            bits in prop::sample::select(vec![32u32, 64]),
        ) {
            let config = SecAggConfig { bits, ..SecAggConfig::for_participants(10) };
            let quantizer = Quantizer::new(&config, 10, 4).unwrap();
            let random = random.to_le_bytes();
            let limit = quantizer.scale as f64;
            for scaled in [fraction * limit, whole as f64, whole as f64 + 0.5, -0.0, limit, -limit] {
                prop_assert_eq!(
                    quantizer.round_into_ring(scaled, &random),
                    reference_rounding(&quantizer, scaled, &random),
                    "scaled {}", scaled
                );
            }
        }
    }

    #[test]
    fn integer_inputs_sum_and_read_back_signed() {
        let a = QuantizedInput::from_integers(&[-5, 7, i64::from(i32::MIN)], 1, 32).unwrap();
        let b = QuantizedInput::from_integers(&[3, -9, 0], 1, 32).unwrap();
        let sum: Vec<u64> = a
            .values()
            .iter()
            .zip(b.values())
            .map(|(x, y)| x.wrapping_add(*y) & modulus_mask(32))
            .collect();
        assert_eq!(to_signed(&sum, 32), vec![-2, -2, i128::from(i32::MIN), 2]);
        assert!(QuantizedInput::from_integers(&[1], 1, 65).is_err());
    }

    fn config(bits: u32, clip_range: f64) -> SecAggConfig {
        SecAggConfig {
            bits,
            clip_range,
            ..SecAggConfig::for_participants(10)
        }
    }

    fn sum_mod(inputs: &[QuantizedInput], bits: u32) -> Vec<u64> {
        let mut sum = vec![0u64; inputs[0].len()];
        for input in inputs {
            for (s, v) in sum.iter_mut().zip(input.values()) {
                *s = s.wrapping_add(*v);
            }
        }
        sum.iter().map(|s| s & modulus_mask(bits)).collect()
    }

    #[test]
    fn scale_leaves_room_for_every_participant() {
        let q = Quantizer::new(&config(32, 1.0), 10, 3).unwrap();
        assert_eq!(q.scale(), ((1u64 << 31) - 1) / 10);
        // The worst case: every node at +clip with weight 1, or at −clip.
        let mut prg = Prg::new(&PrgSeed::from_bytes([1; 32]));
        for extreme in [1.0f32, -1.0] {
            let inputs: Vec<_> = (0..10)
                .map(|_| {
                    q.quantize_weighted_with(&[extreme; 3], 1.0, &mut prg)
                        .unwrap()
                })
                .collect();
            let sum = q.dequantize_sum(&sum_mod(&inputs, 32), 10).unwrap();
            assert_eq!(sum.weighted_sum, vec![10.0 * f64::from(extreme); 3]);
            assert_eq!(sum.total_weight, 10.0);
        }
    }

    #[test]
    fn refuses_bad_updates() {
        let q = Quantizer::new(&config(32, 1.0), 10, 2).unwrap();
        let mut prg = Prg::new(&PrgSeed::from_bytes([1; 32]));
        assert!(q.quantize_weighted_with(&[0.0], 1.0, &mut prg).is_err());
        assert!(
            q.quantize_weighted_with(&[0.0, 0.0], 1.5, &mut prg)
                .is_err()
        );
        assert!(
            q.quantize_weighted_with(&[0.0, 0.0], -0.1, &mut prg)
                .is_err()
        );
        assert!(
            q.quantize_weighted_with(&[f32::NAN, 0.0], 1.0, &mut prg)
                .is_err()
        );
        assert!(
            q.quantize_weighted_with(&[f32::INFINITY, 0.0], 1.0, &mut prg)
                .is_err()
        );
        // A value no sum of 10 inputs can reach.
        assert!(matches!(
            q.dequantize_sum(&[q.scale() * 10 + 1, 0, 0], 10),
            Err(SecAggError::SumOutOfRange { index: 0, .. })
        ));
        let zero = DequantizedSum {
            weighted_sum: vec![1.0],
            total_weight: 0.0,
        };
        assert_eq!(zero.weighted_mean(), Err(SecAggError::NoWeight));
    }

    #[test]
    fn rounding_is_unbiased() {
        // 0.3 steps rounds up 30% of the time.
        let q = Quantizer::new(&config(12, 1.0), 10, 20_000).unwrap();
        let x = (0.3 * q.step()) as f32;
        let input = q
            .quantize_weighted_with(
                &vec![x; 20_000],
                1.0,
                &mut Prg::new(&PrgSeed::from_bytes([3; 32])),
            )
            .unwrap();
        let ups = input.values()[..20_000].iter().filter(|&&v| v == 1).count();
        let share = ups as f64 / 20_000.0;
        assert!((share - 0.3).abs() < 0.02, "{share}");
    }

    proptest! {
        /// Each coordinate is within one step of weight · clip(x); a sum of n inputs
        /// within n steps, and its weight within n weight steps.
        #[test]
        fn error_within_stated_bound(
            bits in 8u32..=64,
            clip in 0.01f64..100.0,
            n in 2usize..12,
            seed in any::<[u8; 32]>(),
            updates in proptest::collection::vec(
                (proptest::collection::vec(-200.0f32..200.0, 6), 0.0f64..=1.0), 12),
        ) {
            let config = SecAggConfig { bits, clip_range: clip, ..SecAggConfig::for_participants(n) };
            prop_assume!(config.validate(n, 6).is_ok());
            let q = Quantizer::new(&config, n, 6).unwrap();
            let mut prg = Prg::new(&PrgSeed::from_bytes(seed));
            let mut inputs = Vec::new();
            let mut exact = [0.0f64; 6];
            let mut exact_weight = 0.0;
            for (update, weight) in updates.iter().take(n) {
                let input = q.quantize_weighted_with(update, *weight, &mut prg).unwrap();
                let one = q.dequantize_sum(input.values(), 1).unwrap();
                for (i, &x) in update.iter().enumerate() {
                    let target = weight * f64::from(x).clamp(-clip, clip);
                    prop_assert!((one.weighted_sum[i] - target).abs() <= q.step() * (1.0 + 1e-2));
                    exact[i] += target;
                }
                prop_assert!((one.total_weight - weight).abs() <= q.weight_step() * (1.0 + 1e-2));
                exact_weight += weight;
                inputs.push(input);
            }
            let sum = q.dequantize_sum(&sum_mod(&inputs, bits), n).unwrap();
            let nf = n as f64;
            for (got, want) in sum.weighted_sum.iter().zip(exact) {
                prop_assert!((got - want).abs() <= nf * q.step() * (1.0 + 1e-2));
            }
            prop_assert!((sum.total_weight - exact_weight).abs() <= nf * q.weight_step() * (1.0 + 1e-2));
        }
    }
}
