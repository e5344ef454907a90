//! A masked vector looks uniform in Z_M; an unmasked one does not.

use crate::secagg::masking::{MaskTerm, Sign, apply_masks, reduce};
use crate::secagg::prg::{Prg, PrgSeed};
use crate::secagg::{Quantizer, SecAggConfig};

const BUCKETS: usize = 64;
/// The 0.999 quantile of χ² with 63 degrees of freedom.
const CRITICAL_0_999: f64 = 103.442;

/// Pearson's χ² of the top 6 bits of each b-bit value against the uniform law.
fn chi_squared(values: &[u64], bits: u32) -> f64 {
    let mut counts = [0usize; BUCKETS];
    for v in values {
        counts[(v >> (bits - 6)) as usize] += 1;
    }
    let expected = values.len() as f64 / BUCKETS as f64;
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

/// A realistic quantized update: small Gaussian-like values, clipped at ±1.
fn quantized_update(quantizer: &Quantizer, len: usize) -> Vec<u64> {
    let mut noise = Prg::new(&PrgSeed::from_bytes([11; 32]));
    let update: Vec<f32> = (0..len)
        .map(|_| {
            // Sum of four uniforms, centred: roughly normal, σ ≈ 0.06.
            let s: f64 = (0..4)
                .map(|_| (noise.next_u64().unwrap() >> 11) as f64 / (1u64 << 53) as f64)
                .sum();
            ((s - 2.0) * 0.1) as f32
        })
        .collect();
    let mut rounding = Prg::new(&PrgSeed::from_bytes([12; 32]));
    quantizer
        .quantize_weighted_with(&update, 0.8, &mut rounding)
        .unwrap()
        .values()
        .to_vec()
}

#[test]
fn masked_values_are_uniform_and_plain_ones_are_not() {
    let config = SecAggConfig::default();
    let len = 64 * 1024;
    let quantizer = Quantizer::new(&config, 1000, len).unwrap();
    let plain = quantized_update(&quantizer, len);

    // A node's masks with fixed seeds: its self mask and 40 pairwise masks.
    let terms: Vec<MaskTerm> = (0..41u8)
        .map(|i| MaskTerm {
            seed: PrgSeed::from_bytes([i + 100; 32]),
            sign: if i % 3 == 0 {
                Sign::Subtract
            } else {
                Sign::Add
            },
        })
        .collect();
    let mut masked = plain.clone();
    apply_masks(&mut masked, &terms, config.bits).unwrap();
    reduce(&mut masked, config.bits);

    let masked_statistic = chi_squared(&masked, config.bits);
    assert!(
        masked_statistic < CRITICAL_0_999,
        "masked χ² = {masked_statistic}"
    );
    // The control: the same input unmasked sits in the two buckets next to 0 and M.
    let plain_statistic = chi_squared(&plain, config.bits);
    assert!(
        plain_statistic > CRITICAL_0_999,
        "unmasked χ² = {plain_statistic}"
    );
}

#[test]
fn one_pairwise_mask_alone_already_hides_the_input() {
    // Even with the self mask removed (as in unmasking), a survivor's input stays
    // hidden behind its pairwise masks.
    let config = SecAggConfig {
        bits: 20,
        ..SecAggConfig::default()
    };
    let len = 64 * 512;
    let quantizer = Quantizer::new(&config, 100, len).unwrap();
    let mut masked = quantized_update(&quantizer, len);
    let term = MaskTerm {
        seed: PrgSeed::from_bytes([77; 32]),
        sign: Sign::Add,
    };
    apply_masks(&mut masked, &[term], config.bits).unwrap();
    reduce(&mut masked, config.bits);
    let statistic = chi_squared(&masked, config.bits);
    assert!(statistic < CRITICAL_0_999, "χ² = {statistic}");
}
