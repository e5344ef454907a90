//! Argmax-only output (`he::argmax_mode`): the encrypted class equals the clear
//! model's argmax, on random inputs and on inputs whose best two scores differ by
//! −2..=2 (ties included), the output holds a class and nothing else, and models
//! the comparison cannot serve are refused with a typed error.

use std::time::{Duration, Instant};

use tfhe::core_crypto::prelude::{ContiguousEntityContainer, decrypt_lwe_ciphertext};

use super::super::argmax_mode::{
    ArgmaxPlan, CLASS_WIDTH, EncryptedOutput, OutputMode, OutputPlan, decrypt_output,
    evaluate_class_unsanitized, evaluate_output,
};
use super::super::encrypt::{EncryptedScores, encrypt};
use super::super::error::{Blob, HeError};
use super::super::keygen;
use super::super::keys::{ClientKey, EvaluationKey};
use super::super::quantize::{BitsConfig, QuantizedLayer, QuantizedModel, QuantizedModelData};
use super::super::serialize::{ScoresWire, SizeLimits};
use super::circuit_privacy::recover_class;

const FEATURES: usize = 30;

/// Deterministic xorshift draws in `-range..=range`.
fn draws(seed: u64) -> impl FnMut(i64) -> i64 {
    let mut state = seed;
    move |range: i64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % (2 * range as u64 + 1)) as i64 - range
    }
}

/// A logistic regression 30 → `classes` with 7-bit weights, whose feature 0
/// weighs 0 for class 0 and 1 for the others (so that score differences can be
/// set exactly); class 2, if any, is a copy of class 1 (so that they tie).
fn model(classes: usize, seed: u64) -> QuantizedModel {
    let mut next = draws(seed);
    let mut weights: Vec<i64> = (0..FEATURES * classes).map(|_| next(63)).collect();
    let mut biases: Vec<i64> = (0..classes).map(|_| next(300)).collect();
    weights[0] = 0;
    for w in &mut weights[1..classes] {
        *w = 1;
    }
    if classes > 2 {
        for i in 0..FEATURES {
            weights[i * classes + 2] = weights[i * classes + 1];
        }
        biases[2] = biases[1];
    }
    QuantizedModel::try_from(QuantizedModelData {
        bits: BitsConfig::default(),
        input_scales: vec![0.05; FEATURES],
        layers: vec![QuantizedLayer {
            inputs: FEATURES,
            outputs: classes,
            weights,
            biases,
            shifts: Vec::new(),
        }],
        score_unit: 0.01,
    })
    .unwrap()
}

/// A random input, then (if `gap` is set) adjusted greedily so that
/// `s_1 − s_0 = gap` exactly (feature 0 last, its weight difference being 1).
fn input(model: &QuantizedModel, next: &mut impl FnMut(i64) -> i64, gap: Option<i64>) -> Vec<i64> {
    let max = model.bits().input_max();
    let mut x: Vec<i64> = (0..FEATURES).map(|_| next(max)).collect();
    let Some(gap) = gap else { return x };
    let layer = &model.layers()[0];
    let n = layer.outputs;
    let delta = |i: usize| layer.weights[i * n + 1] - layer.weights[i * n];
    let difference = |x: &[i64]| -> i64 {
        (0..FEATURES).map(|i| delta(i) * x[i]).sum::<i64>() + layer.biases[1] - layer.biases[0]
    };
    for i in (1..FEATURES).chain([0]) {
        x[i] = 0;
        let rest = difference(&x) - gap;
        let d = delta(i);
        if d != 0 {
            x[i] = (-rest / d).clamp(-max, max);
        }
    }
    assert_eq!(difference(&x), gap, "the greedy adjustment reaches the gap");
    x
}

/// Asserts that class mode gives the clear argmax on every row; returns the
/// mean evaluation time (node side, sanitization included).
fn assert_classes_equal_clear(
    client: &ClientKey,
    eval: &EvaluationKey,
    model: &QuantizedModel,
    rows: &[Vec<i64>],
) -> Duration {
    let plan = OutputPlan::new(model, OutputMode::Class).unwrap();
    let limits = SizeLimits::default();
    let mut evaluating = Duration::ZERO;
    for x in rows {
        let q = model.input_from_quantized(x.clone()).unwrap();
        let input = encrypt(client, &q).unwrap();
        let started = Instant::now();
        let output = evaluate_output(eval, model, &plan, &input).unwrap();
        evaluating += started.elapsed();
        assert_eq!(output.mode(), OutputMode::Class);
        let bytes = output.to_bytes(&limits).unwrap();
        let read = EncryptedOutput::from_bytes(&bytes, OutputMode::Class, &limits).unwrap();
        let prediction = decrypt_output(client, &read).unwrap();
        let scores = model.scores_clear(&q).unwrap();
        assert_eq!(
            prediction.class,
            model.predict_clear(&q).unwrap(),
            "scores {scores:?}"
        );
        assert_eq!(prediction.scores, None, "class mode returns no score");
    }
    evaluating / rows.len() as u32
}

#[test]
fn two_classes_the_encrypted_class_is_the_clear_argmax_including_near_ties() {
    let (client, compressed) = keygen(Some(31)).unwrap();
    let eval = compressed.expand();
    let model = model(2, 0x9e37_79b9_7f4a_7c15);
    let plan = ArgmaxPlan::for_model(&model).unwrap();
    let mut next = draws(5);
    let mut rows: Vec<Vec<i64>> = (0..6).map(|_| input(&model, &mut next, None)).collect();
    for gap in [-2, -1, 0, 0, 1, 2] {
        rows.push(input(&model, &mut next, Some(gap)));
    }
    // The extremes of the input range.
    rows.push(vec![model.bits().input_max(); FEATURES]);
    rows.push(vec![-model.bits().input_max(); FEATURES]);
    let per_row = assert_classes_equal_clear(&client, &eval, &model, &rows);
    println!(
        "LR 30→2, class mode: comparison width {} bits, {} bootstraps, {per_row:?} per \
         prediction (node side)",
        plan.comparison_width(),
        plan.bootstrap_count()
    );
}

#[test]
fn three_classes_the_tournament_gives_the_clear_argmax_first_on_ties() {
    let (client, compressed) = keygen(Some(32)).unwrap();
    let eval = compressed.expand();
    let model = model(3, 0x2545_f491_4f6c_dd1d);
    let plan = ArgmaxPlan::for_model(&model).unwrap();
    let mut next = draws(6);
    let mut rows: Vec<Vec<i64>> = (0..2).map(|_| input(&model, &mut next, None)).collect();
    // Classes 1 and 2 always tie; around s_1 = s_0 the answer moves between 0 and 1.
    for gap in [-1, 0, 1] {
        rows.push(input(&model, &mut next, Some(gap)));
    }
    let per_row = assert_classes_equal_clear(&client, &eval, &model, &rows);
    println!(
        "LR 30→3, class mode: {} bootstraps, {per_row:?} per prediction (node side)",
        plan.bootstrap_count()
    );
}

/// The class ciphertext decrypts to a class, with noise far below half a class
/// unit, and is one ciphertext; read as scores it is refused; and the one-query
/// weight-recovery attack finds no linear mask in it even before sanitization.
#[test]
fn the_class_output_holds_a_class_and_nothing_linear_in_the_weights() {
    let (client, compressed) = keygen(Some(33)).unwrap();
    let eval = compressed.expand();
    let model = model(2, 7);
    let plan = ArgmaxPlan::for_model(&model).unwrap();
    let x = model
        .input_from_quantized((0..FEATURES as i64).map(|i| i % 7 - 3).collect())
        .unwrap();
    let input = encrypt(&client, &x).unwrap();
    let output = evaluate_output(&eval, &model, &OutputPlan::Class(plan.clone()), &input).unwrap();
    let EncryptedOutput::Class(class) = &output else {
        panic!("class mode returned scores")
    };
    assert_eq!(class.wire.ciphertexts.lwe_ciphertext_count().0, 1);
    let ct = class.wire.ciphertexts.iter().next().unwrap();
    let phase = decrypt_lwe_ciphertext(&client.big_key, &ct).0;
    let expected = (model.predict_clear(&x).unwrap() as u64) << (64 - CLASS_WIDTH);
    let noise = phase.wrapping_sub(expected) as i64;
    assert!(
        noise.unsigned_abs() < 1 << (63 - CLASS_WIDTH),
        "noise {noise}"
    );
    // Sanitized: the flood is most of half a class unit, not the bootstrap's 2^40.
    assert!(plan.output_privacy().flood_bits > 50);
    let limits = SizeLimits::default();
    let bytes = output.to_bytes(&limits).unwrap();
    match EncryptedOutput::from_bytes(&bytes, OutputMode::Scores, &limits) {
        Err(HeError::Malformed {
            blob: Blob::EncryptedScores,
            ..
        }) => {}
        other => panic!("a class read as scores must be refused, got {other:?}"),
    }

    let raw = evaluate_class_unsanitized(&eval, &model, &plan, &input).unwrap();
    let as_scores = EncryptedScores {
        wire: ScoresWire {
            parameter_set: raw.wire.parameter_set,
            score_width: CLASS_WIDTH,
            ciphertexts: raw.wire.ciphertexts.clone(),
        },
    };
    assert_eq!(
        recover_class(&client, &input, &as_scores, 0, CLASS_WIDTH),
        None,
        "a bootstrapped class's mask is not a combination of the input masks"
    );
}

#[test]
fn models_the_comparison_cannot_serve_are_refused_with_a_typed_error() {
    // An MLP 2 → 2 → 3.
    let mlp = QuantizedModel::try_from(QuantizedModelData {
        bits: BitsConfig::default(),
        input_scales: vec![0.1; 2],
        layers: vec![
            QuantizedLayer {
                inputs: 2,
                outputs: 2,
                weights: vec![3, -2, 5, 1],
                biases: vec![0, 4],
                shifts: vec![8, 8],
            },
            QuantizedLayer {
                inputs: 2,
                outputs: 3,
                weights: vec![2, -1, 3, 1, 4, -2],
                biases: vec![0, 1, 2],
                shifts: Vec::new(),
            },
        ],
        score_unit: 0.1,
    })
    .unwrap();
    let refusal = OutputPlan::new(&mlp, OutputMode::Class).unwrap_err();
    assert!(
        matches!(&refusal, HeError::ArgmaxUnavailable { reason } if reason.contains("hidden layers")),
        "{refusal}"
    );
    assert!(refusal.to_string().contains("--output scores"), "{refusal}");
    // Scores mode serves it.
    assert_eq!(
        OutputPlan::new(&mlp, OutputMode::Scores).unwrap(),
        OutputPlan::Scores
    );

    // 17 classes: the win counts would not fit a bootstrap window.
    let wide = QuantizedModel::try_from(QuantizedModelData {
        bits: BitsConfig::default(),
        input_scales: vec![0.1],
        layers: vec![QuantizedLayer {
            inputs: 1,
            outputs: 17,
            weights: (0..17).collect(),
            biases: vec![0; 17],
            shifts: Vec::new(),
        }],
        score_unit: 0.1,
    })
    .unwrap();
    assert!(matches!(
        ArgmaxPlan::for_model(&wide),
        Err(HeError::ArgmaxUnavailable { .. })
    ));
}

#[test]
fn output_modes_parse_and_print_their_names() {
    for mode in [OutputMode::Class, OutputMode::Scores] {
        assert_eq!(mode.to_string().parse::<OutputMode>().unwrap(), mode);
    }
    assert_eq!(OutputMode::default(), OutputMode::Class);
    assert!("logits".parse::<OutputMode>().is_err());
}
