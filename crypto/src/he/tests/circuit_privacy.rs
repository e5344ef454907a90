//! Circuit privacy (`he::sanitize`): a requester that recovers a logistic
//! regression's weights from one output of the undefended evaluation, and gets
//! nothing from the sanitized one.
//!
//! The attack: the output's mask is `A = Σ_i c_i·a_i mod 2^64` (`c_i = w_i·2^e`)
//! and the requester knows every input mask `a_i` (it expands the seeds it sent).
//! 2048 equations, 30 unknowns over `Z/2^64`: Gaussian elimination with odd
//! (invertible) pivots solves them, and the phase, which the requester decrypts,
//! then gives the bias.

use std::time::{Duration, Instant};

use tfhe::core_crypto::prelude::{
    ContiguousEntityContainer, LweCiphertext, decrypt_lwe_ciphertext,
};

use super::super::encrypt::{EncryptedScores, decrypt, encrypt};
use super::super::evaluate::{evaluate, evaluate_unsanitized, sanitize_scores};
use super::super::keys::ClientKey;
use super::super::params::{INPUT_WIDTH, PARAMS, modulus};
use super::super::quantize::{BitsConfig, QuantizedLayer, QuantizedModel, QuantizedModelData};
use super::super::sanitize::Sanitizer;
use super::super::{EncryptedInput, keygen};

const FEATURES: usize = 30;
const CLASSES: usize = 2;

/// A deterministic logistic regression 30 → 2 with 7-bit weights.
fn secret_model() -> QuantizedModel {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |range: i64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % (2 * range as u64 + 1)) as i64 - range
    };
    let weights = (0..FEATURES * CLASSES).map(|_| next(63)).collect();
    let biases = (0..CLASSES).map(|_| next(5000)).collect();
    QuantizedModel::try_from(QuantizedModelData {
        bits: BitsConfig::default(),
        input_scales: vec![0.05; FEATURES],
        layers: vec![QuantizedLayer {
            inputs: FEATURES,
            outputs: CLASSES,
            weights,
            biases,
            shifts: Vec::new(),
        }],
        score_unit: 0.01,
    })
    .unwrap()
}

/// Inverse of an odd `x` modulo 2^64 (Newton: each step doubles the correct bits).
fn inverse_mod_2_64(x: u64) -> u64 {
    let mut y = x; // correct to 3 bits for odd x
    for _ in 0..6 {
        y = y.wrapping_mul(2u64.wrapping_sub(x.wrapping_mul(y)));
    }
    y
}

/// Solves `Σ_i c_i·columns[i][j] = rhs[j]` for every j, modulo 2^64. `None` if no
/// odd pivot is found for some unknown, or if the solution fails any equation.
fn solve_mod_2_64(columns: &[Vec<u64>], rhs: &[u64]) -> Option<Vec<u64>> {
    let unknowns = columns.len();
    let mut rows: Vec<Vec<u64>> = (0..rhs.len())
        .map(|j| {
            let mut row: Vec<u64> = columns.iter().map(|c| c[j]).collect();
            row.push(rhs[j]);
            row
        })
        .collect();
    let mut pivots = Vec::with_capacity(unknowns);
    for i in 0..unknowns {
        let p = (0..rows.len()).find(|&r| !pivots.contains(&r) && rows[r][i] & 1 == 1)?;
        let inv = inverse_mod_2_64(rows[p][i]);
        for x in rows[p].iter_mut() {
            *x = x.wrapping_mul(inv);
        }
        let pivot_row = rows[p].clone();
        for (r, row) in rows.iter_mut().enumerate() {
            if r != p && row[i] != 0 {
                let f = row[i];
                for (x, y) in row.iter_mut().zip(&pivot_row) {
                    *x = x.wrapping_sub(f.wrapping_mul(*y));
                }
            }
        }
        pivots.push(p);
    }
    // Every other equation must now read 0 = 0.
    let consistent = (0..rows.len())
        .filter(|r| !pivots.contains(r))
        .all(|r| rows[r][unknowns] == 0);
    consistent.then(|| pivots.iter().map(|&p| rows[p][unknowns]).collect())
}

/// The requester's attack on one output ciphertext: the weights and bias of class
/// `class`, or `None` if the output's mask is not a combination of the inputs'.
pub(super) fn recover_class(
    client: &ClientKey,
    input: &EncryptedInput,
    scores: &EncryptedScores,
    class: usize,
    width: u32,
) -> Option<(Vec<i64>, i64)> {
    let lwe_size = PARAMS.big_lwe_dimension() + 1;
    let n = PARAMS.big_lwe_dimension();
    let expanded = input
        .wire
        .ciphertexts
        .clone()
        .par_decompress_into_lwe_ciphertext_list();
    let inputs: Vec<&[u64]> = expanded.as_ref().chunks_exact(lwe_size).collect();
    let output = &scores.wire.ciphertexts.as_ref()[class * lwe_size..(class + 1) * lwe_size];
    // Enough equations: 300 of the 2048.
    let rows = 300;
    let columns: Vec<Vec<u64>> = inputs.iter().map(|ct| ct[..rows].to_vec()).collect();
    let c = solve_mod_2_64(&columns, &output[..rows])?;
    // Check the solution on the whole mask.
    for j in 0..n {
        let sum = inputs.iter().zip(&c).fold(0u64, |acc, (ct, ci)| {
            acc.wrapping_add(ct[j].wrapping_mul(*ci))
        });
        if sum != output[j] {
            return None;
        }
    }
    let e = INPUT_WIDTH - width;
    let weights = c.iter().map(|&ci| (ci as i64) >> e).collect();
    // The phase is Σ c_i·φ_i + b·2^(64−K) exactly: the bias follows.
    let phase = |ct: &[u64]| {
        decrypt_lwe_ciphertext(
            &client.big_key,
            &LweCiphertext::from_container(ct, modulus()),
        )
        .0
    };
    let combined = inputs.iter().zip(&c).fold(0u64, |acc, (ct, ci)| {
        acc.wrapping_add(phase(ct).wrapping_mul(*ci))
    });
    let bias = (phase(output).wrapping_sub(combined) as i64) >> (64 - width);
    Some((weights, bias))
}

fn class_weights(model: &QuantizedModel, class: usize) -> (Vec<i64>, i64) {
    let layer = &model.layers()[0];
    let weights = (0..FEATURES)
        .map(|i| layer.weights[i * CLASSES + class])
        .collect();
    (weights, layer.biases[class])
}

#[test]
fn one_query_recovers_every_weight_without_sanitization_and_nothing_with_it() {
    let (client, compressed) = keygen(Some(21)).unwrap();
    let eval = compressed.expand();
    let model = secret_model();
    let width = model.plan()[0].width;
    let x = model
        .input_from_quantized((0..FEATURES as i64).map(|i| i % 7 - 3).collect())
        .unwrap();
    let input = encrypt(&client, &x).unwrap();

    let undefended = evaluate_unsanitized(&eval, &model, &input).unwrap();
    for class in 0..CLASSES {
        let stolen = recover_class(&client, &input, &undefended, class, width)
            .expect("the undefended output's mask is a combination of the input masks");
        assert_eq!(stolen, class_weights(&model, class), "class {class}");
    }

    let defended = evaluate(&eval, &model, &input).unwrap();
    assert_eq!(
        decrypt(&client, &defended),
        model.scores_clear(&x).unwrap(),
        "sanitized scores still decrypt exactly"
    );
    for class in 0..CLASSES {
        assert_eq!(
            recover_class(&client, &input, &defended, class, width),
            None,
            "class {class}: the sanitized mask must not be a combination of the inputs'"
        );
    }
}

/// Output noise (phase minus the exact score) of each class, in 2^-64 units.
fn output_noise(
    client: &ClientKey,
    scores: &EncryptedScores,
    clear: &[i64],
    width: u32,
) -> Vec<i64> {
    scores
        .wire
        .ciphertexts
        .iter()
        .zip(clear)
        .map(|(ct, &v)| {
            let phase = decrypt_lwe_ciphertext(&client.big_key, &ct).0;
            phase.wrapping_sub((v as u64) << (64 - width)) as i64
        })
        .collect()
}

#[test]
fn the_flood_drowns_the_noise_channel_and_keeps_decryption_exact() {
    let (client, compressed) = keygen(Some(22)).unwrap();
    let eval = compressed.expand();
    let model = secret_model();
    let privacy = model.output_privacy();
    let width = privacy.score_width;
    println!(
        "LR 30→2: K = {width}, score noise ≤ 2^{:.1}, flood TUniform(2^{}) = 2^{:.1} of the \
         torus, statistical distance ≤ 2^{:.1}",
        privacy.score_noise_log2,
        privacy.flood_bits,
        f64::from(privacy.flood_bits) - 64.0,
        privacy.statistical_distance().log2()
    );
    assert!(privacy.statistical_distance() < 1.0 / 1024.0);
    let x = model
        .input_from_quantized((0..FEATURES as i64).map(|i| 3 - i % 7).collect())
        .unwrap();
    let clear = model.scores_clear(&x).unwrap();
    let half_unit = 1i64 << (63 - width);
    let flood = 1i64 << privacy.flood_bits;
    let (mut large, mut total) = (0, 0);
    for _ in 0..8 {
        let input = encrypt(&client, &x).unwrap();
        let undefended = evaluate_unsanitized(&eval, &model, &input).unwrap();
        for noise in output_noise(&client, &undefended, &clear, width) {
            assert!(
                noise.unsigned_abs() < 1 << 36,
                "undefended noise is the inputs' only"
            );
        }
        let defended = evaluate(&eval, &model, &input).unwrap();
        assert_eq!(decrypt(&client, &defended), clear);
        for noise in output_noise(&client, &defended, &clear, width) {
            assert!(noise.abs() < half_unit);
            total += 1;
            large += usize::from(noise.abs() >= flood / 8);
        }
    }
    // TUniform(2^f) is below 2^(f−3) in absolute value with probability 1/8.
    assert!(
        large * 2 > total,
        "{large} of {total} outputs carry a flood-sized noise"
    );
}

/// Measures what sanitization adds to a prediction (printed; the README's figure)
/// and checks each sanitized output still decrypts to the clear scores.
#[test]
fn sanitization_cost_per_prediction() {
    let (client, compressed) = keygen(Some(23)).unwrap();
    let eval = compressed.expand();
    let model = secret_model();
    let x = model
        .input_from_quantized((0..FEATURES as i64).map(|i| i % 5 - 2).collect())
        .unwrap();
    let clear = model.scores_clear(&x).unwrap();
    let input = encrypt(&client, &x).unwrap();
    let runs = 20u32;
    let (mut linear, mut sanitizing) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..runs {
        let start = Instant::now();
        let mut scores = evaluate_unsanitized(&eval, &model, &input).unwrap();
        let evaluated = Instant::now();
        sanitize_scores(&mut Sanitizer::new(&eval.public_key), &model, &mut scores);
        sanitizing += evaluated.elapsed();
        linear += evaluated - start;
        assert_eq!(decrypt(&client, &scores), clear);
    }
    println!(
        "LR 30→2, per prediction: evaluation {:?}, sanitization {:?} ({CLASSES} outputs, \
         CSPRNG seeding included)",
        linear / runs,
        sanitizing / runs
    );
}
