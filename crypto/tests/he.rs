//! Homomorphic-encryption inference, end to end on real data (feature `he`).
//!
//! Keys are generated once per test binary (deterministic seeds) and shared.
#![cfg(feature = "he")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.

mod he_support;

use std::sync::OnceLock;

use cohort_crypto::he::{
    BitsConfig, Blob, ClientKey, CompressedEvaluationKey, EncryptedInput, EncryptedOutput,
    EncryptedScores, EvaluationKey, HeError, InputQuantizer, OutputMode, OutputPlan,
    QuantizedModel, SizeLimits, decrypt, decrypt_output, encrypt, evaluate, evaluate_output,
    keygen,
};
use cohort_proto::model::ParameterLayout;
use he_support::{Split, breast_cancer, digits, layout, split_standardize, train};

struct Keys {
    client: ClientKey,
    compressed: CompressedEvaluationKey,
    key_bytes: Vec<u8>,
    eval: EvaluationKey,
}

/// The requester's keys, and the node's evaluation key rebuilt from bytes.
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let (client, compressed) = keygen(Some(7)).unwrap();
        let key_bytes = compressed.to_bytes(&SizeLimits::default()).unwrap();
        let eval = EvaluationKey::from_bytes(&key_bytes, &SizeLimits::default()).unwrap();
        Keys {
            client,
            compressed,
            key_bytes,
            eval,
        }
    })
}

/// Everything the node does: bytes in, bytes out, with the evaluation key only.
fn node(eval: &EvaluationKey, model: &QuantizedModel, input_bytes: &[u8]) -> Vec<u8> {
    let limits = SizeLimits::default();
    let input = EncryptedInput::from_bytes(input_bytes, &limits).unwrap();
    evaluate(eval, model, &input)
        .unwrap()
        .to_bytes(&limits)
        .unwrap()
}

/// Encrypts `x`, runs the node, decrypts; asserts the scores equal the clear ones.
fn assert_encrypted_equals_clear(model: &QuantizedModel, x: &[f32]) -> Vec<i64> {
    let keys = keys();
    let limits = SizeLimits::default();
    // The requester quantizes with the quantizer the node publishes (no weights).
    let published = serde_json::to_string(&model.input_quantizer()).unwrap();
    let quantizer: InputQuantizer = serde_json::from_str(&published).unwrap();
    let q = quantizer.quantize(x).unwrap();
    assert_eq!(q, model.quantize_input(x).unwrap());
    let input = encrypt(&keys.client, &q).unwrap();
    let scores_bytes = node(&keys.eval, model, &input.to_bytes(&limits).unwrap());
    let scores = EncryptedScores::from_bytes(&scores_bytes, &limits).unwrap();
    let decrypted = decrypt(&keys.client, &scores);
    let clear = model.scores_clear(&q).unwrap();
    assert_eq!(
        decrypted, clear,
        "encrypted scores differ from the clear ones"
    );
    assert_eq!(
        cohort_crypto::he::argmax(&decrypted),
        model.predict_clear(&q).unwrap()
    );
    decrypted
}

struct Trained {
    layout: ParameterLayout,
    params: Vec<f32>,
    split: Split,
    model: QuantizedModel,
}

fn breast_cancer_lr() -> &'static Trained {
    static MODEL: OnceLock<Trained> = OnceLock::new();
    MODEL.get_or_init(|| {
        let (xs, ys) = breast_cancer();
        let split = split_standardize(&xs, &ys, 0.7, 1);
        let layout = layout(&[30, 2]);
        let params = train(&layout, &split.train_x, &split.train_y, 30, 0.01, 2);
        let model =
            QuantizedModel::from_float(&layout, &params, &split.train_x, BitsConfig::default())
                .unwrap();
        Trained {
            layout,
            params,
            split,
            model,
        }
    })
}

fn digits_mlp() -> &'static Trained {
    static MODEL: OnceLock<Trained> = OnceLock::new();
    MODEL.get_or_init(|| {
        let (xs, ys) = digits();
        let split = split_standardize(&xs, &ys, 0.7, 3);
        let layout = layout(&[64, 16, 10]);
        let params = train(&layout, &split.train_x, &split.train_y, 15, 0.02, 4);
        let model =
            QuantizedModel::from_float(&layout, &params, &split.train_x, BitsConfig::default())
                .unwrap();
        Trained {
            layout,
            params,
            split,
            model,
        }
    })
}

/// The quantized model's held-out accuracy is within one point of the float model's.
fn assert_quantized_within_one_point(t: &Trained, name: &str) {
    let acc = t
        .model
        .accuracy_vs_float(&t.layout, &t.params, &t.split.test_x, &t.split.test_y)
        .unwrap();
    println!(
        "{name} on {} held-out rows: float {:.4}, quantized {:.4}",
        acc.rows,
        acc.float_accuracy(),
        acc.quantized_accuracy()
    );
    assert!(acc.float_accuracy() > 0.9, "the float model trained badly");
    assert!((acc.float_accuracy() - acc.quantized_accuracy()).abs() <= 0.01);
}

/// Prints how the outputs are flooded (`he::sanitize`): the figures in the README.
fn print_output_privacy(name: &str, model: &QuantizedModel) {
    let p = model.output_privacy();
    println!(
        "{name}: K = {}, score noise ≤ 2^{:.1}, flood TUniform(2^{}) (2^{:.1} of the torus), \
         statistical distance per output ≤ 2^{:.1}",
        p.score_width,
        p.score_noise_log2,
        p.flood_bits,
        f64::from(p.flood_bits) - 64.0,
        p.statistical_distance().log2()
    );
}

#[test]
fn logistic_regression_encrypted_scores_equal_clear_scores() {
    let t = breast_cancer_lr();
    println!("breast cancer LR: {}", t.model.summary());
    print_output_privacy("breast cancer LR", &t.model);
    for x in t.split.test_x.iter().take(12) {
        assert_encrypted_equals_clear(&t.model, x);
    }
}

/// Class mode on the trained breast-cancer LR: every held-out row tried (a
/// sample, for time) decrypts to the clear argmax and carries no score.
#[test]
fn logistic_regression_class_mode_gives_the_clear_class_and_no_score() {
    let t = breast_cancer_lr();
    let keys = keys();
    let limits = SizeLimits::default();
    let plan = OutputPlan::new(&t.model, OutputMode::Class).unwrap();
    let OutputPlan::Class(argmax) = &plan else {
        panic!("class mode planned as scores")
    };
    println!(
        "breast-cancer LR, class mode: {}-bit comparison, {} bootstraps, flood 2^{}, \
         statistical distance ≤ 2^{:.1}",
        argmax.comparison_width(),
        argmax.bootstrap_count(),
        argmax.output_privacy().flood_bits,
        argmax.output_privacy().statistical_distance().log2()
    );
    let mut classes = [0usize; 2];
    for x in t.split.test_x.iter().step_by(12) {
        let q = t.model.quantize_input(x).unwrap();
        let input = encrypt(&keys.client, &q).unwrap();
        let bytes = evaluate_output(&keys.eval, &t.model, &plan, &input)
            .unwrap()
            .to_bytes(&limits)
            .unwrap();
        let output = EncryptedOutput::from_bytes(&bytes, OutputMode::Class, &limits).unwrap();
        let prediction = decrypt_output(&keys.client, &output).unwrap();
        assert_eq!(prediction.scores, None);
        assert_eq!(prediction.class, t.model.predict_clear(&q).unwrap());
        classes[prediction.class] += 1;
    }
    assert!(
        classes[0] > 0 && classes[1] > 0,
        "both classes seen: {classes:?}"
    );
}

/// The 10-class digits MLP cannot be served in class mode: the refusal is typed
/// and says why and what to do.
#[test]
fn mlp_class_mode_is_refused_with_the_reason() {
    let t = digits_mlp();
    match OutputPlan::new(&t.model, OutputMode::Class) {
        Err(e @ HeError::ArgmaxUnavailable { .. }) => {
            let message = e.to_string();
            println!("digits MLP, class mode: {message}");
            assert!(message.contains("hidden layers"), "{message}");
            assert!(message.contains("--output scores"), "{message}");
        }
        other => panic!("expected ArgmaxUnavailable, got {other:?}"),
    }
}

#[test]
fn logistic_regression_quantized_accuracy_within_one_point() {
    let t = breast_cancer_lr();
    assert_quantized_within_one_point(t, "breast cancer LR");
}

#[test]
fn mlp_encrypted_scores_equal_clear_scores() {
    let t = digits_mlp();
    println!("digits MLP: {}", t.model.summary());
    print_output_privacy("digits MLP", &t.model);
    for x in t.split.test_x.iter().take(2) {
        assert_encrypted_equals_clear(&t.model, x);
    }
}

#[test]
fn mlp_quantized_accuracy_close_to_float() {
    let t = digits_mlp();
    assert_quantized_within_one_point(t, "digits MLP 64-16-10");
}

#[test]
fn another_client_key_decrypts_garbage() {
    let t = breast_cancer_lr();
    let keys = keys();
    let (other, _) = keygen(Some(8)).unwrap();
    assert_ne!(other.key_id(), keys.client.key_id());
    let mut garbage = 0;
    for x in t.split.test_x.iter().take(4) {
        let q = t.model.quantize_input(x).unwrap();
        let scores = evaluate(&keys.eval, &t.model, &encrypt(&keys.client, &q).unwrap()).unwrap();
        let clear = t.model.scores_clear(&q).unwrap();
        assert_eq!(decrypt(&keys.client, &scores), clear);
        let wrong = decrypt(&other, &scores);
        garbage += wrong.iter().zip(&clear).filter(|(a, b)| a != b).count();
    }
    assert_eq!(garbage, 8, "another key must not decrypt any score");
}

#[test]
fn wrong_ciphertext_count_and_wrong_key_are_errors() {
    let t = breast_cancer_lr();
    let keys = keys();
    let digits = digits_mlp();
    // A 64-feature input for the 30-input model.
    let q = digits
        .model
        .quantize_input(&digits.split.test_x[0])
        .unwrap();
    let input = encrypt(&keys.client, &q).unwrap();
    match evaluate(&keys.eval, &t.model, &input) {
        Err(HeError::InputCount {
            expected: 30,
            actual: 64,
        }) => {}
        other => panic!("expected InputCount, got {other:?}"),
    }
    // Quantizing a wrong-length row is refused too.
    assert!(matches!(
        t.model.quantize_input(&[0.0; 29]),
        Err(HeError::InputCount { .. })
    ));
    // An input made for another key.
    let (other, _) = keygen(Some(9)).unwrap();
    let q = t.model.quantize_input(&t.split.test_x[0]).unwrap();
    let input = encrypt(&other, &q).unwrap();
    assert!(matches!(
        evaluate(&keys.eval, &t.model, &input),
        Err(HeError::KeyMismatch { .. })
    ));
}

#[test]
fn key_id_is_the_hash_of_the_key_bytes_and_survives_a_round_trip() {
    let keys = keys();
    assert_eq!(keys.eval.key_id(), keys.compressed.key_id());
    assert_eq!(keys.client.key_id(), keys.compressed.key_id());
    let digest = ring::digest::digest(&ring::digest::SHA256, &keys.key_bytes);
    assert_eq!(keys.compressed.key_id().0.as_slice(), digest.as_ref());
    assert_eq!(
        keys.compressed.serialized_size().unwrap(),
        keys.key_bytes.len() as u64
    );
    let again =
        CompressedEvaluationKey::from_bytes(&keys.key_bytes, &SizeLimits::default()).unwrap();
    assert_eq!(again.key_id(), keys.compressed.key_id());
}

fn expect_blob_error(result: Result<impl std::fmt::Debug, HeError>, blob: Blob) {
    match result {
        Err(HeError::BlobTooLarge { blob: b, .. })
        | Err(HeError::Malformed { blob: b, .. })
        | Err(HeError::Mismatch { blob: b, .. }) => assert_eq!(b, blob),
        other => panic!("expected an error about the {blob}, got {other:?}"),
    }
}

#[test]
fn truncated_oversized_and_corrupted_blobs_are_errors() {
    let keys = keys();
    let t = breast_cancer_lr();
    let limits = SizeLimits::default();
    let q = t.model.quantize_input(&t.split.test_x[0]).unwrap();
    let input = encrypt(&keys.client, &q).unwrap();
    let input_bytes = input.to_bytes(&limits).unwrap();
    let scores_bytes = evaluate(&keys.eval, &t.model, &input)
        .unwrap()
        .to_bytes(&limits)
        .unwrap();

    // Truncated.
    for cut in [0, 1, 10, input_bytes.len() / 2, input_bytes.len() - 1] {
        expect_blob_error(
            EncryptedInput::from_bytes(&input_bytes[..cut], &limits),
            Blob::EncryptedInput,
        );
    }
    for cut in [0, 7, scores_bytes.len() / 3, scores_bytes.len() - 1] {
        expect_blob_error(
            EncryptedScores::from_bytes(&scores_bytes[..cut], &limits),
            Blob::EncryptedScores,
        );
    }
    let key = &keys.key_bytes;
    for cut in [0, 100, key.len() / 2, key.len() - 8] {
        expect_blob_error(
            CompressedEvaluationKey::from_bytes(&key[..cut], &limits),
            Blob::EvaluationKey,
        );
    }

    // Oversized: refused before parsing.
    let small = SizeLimits {
        evaluation_key: key.len() as u64 - 1,
        encrypted_input: input_bytes.len() as u64 - 1,
        encrypted_scores: scores_bytes.len() as u64 - 1,
    };
    assert!(matches!(
        EvaluationKey::from_bytes(key, &small),
        Err(HeError::BlobTooLarge {
            blob: Blob::EvaluationKey,
            ..
        })
    ));
    assert!(matches!(
        EncryptedInput::from_bytes(&input_bytes, &small),
        Err(HeError::BlobTooLarge { .. })
    ));
    assert!(matches!(
        EncryptedScores::from_bytes(&scores_bytes, &small),
        Err(HeError::BlobTooLarge { .. })
    ));
    let mut padded = input_bytes.clone();
    padded.resize(limits.encrypted_input as usize + 1, 0);
    assert!(matches!(
        EncryptedInput::from_bytes(&padded, &limits),
        Err(HeError::BlobTooLarge { .. })
    ));
    // Writing over the limit is an error too.
    assert!(matches!(
        input.to_bytes(&small),
        Err(HeError::Serialize { .. })
    ));

    // One type's bytes are not another's.
    expect_blob_error(
        EncryptedScores::from_bytes(&input_bytes, &limits),
        Blob::EncryptedScores,
    );
    expect_blob_error(
        EncryptedInput::from_bytes(&scores_bytes, &limits),
        Blob::EncryptedInput,
    );

    // Length fields claiming huge sizes, and random corruption: errors or
    // well-formed objects, never a panic or an unbounded allocation.
    for pos in (0..input_bytes.len()).step_by(3) {
        let mut bad = input_bytes.clone();
        bad[pos..(pos + 8).min(input_bytes.len())].fill(0xff);
        if let Ok(parsed) = EncryptedInput::from_bytes(&bad, &limits) {
            let _ = evaluate(&keys.eval, &t.model, &parsed);
        }
    }
    for pos in (0..scores_bytes.len().min(400)).step_by(5) {
        let mut bad = scores_bytes.clone();
        bad[pos..pos + 8].fill(0xff);
        if let Ok(parsed) = EncryptedScores::from_bytes(&bad, &limits) {
            let _ = decrypt(&keys.client, &parsed);
        }
    }
    for pos in (0..400).step_by(7) {
        let mut bad = key[..key.len().min(4096)].to_vec();
        bad[pos..pos + 8].fill(0xff);
        assert!(CompressedEvaluationKey::from_bytes(&bad, &limits).is_err());
    }
}

#[test]
fn quantized_models_round_trip_through_serde_and_bad_ones_are_refused() {
    let t = digits_mlp();
    let json = serde_json_like(&t.model);
    assert_eq!(json, t.model);
    let mut data = t.model.data().clone();
    data.layers[0].shifts[0] = 0; // the worst case no longer fits
    data.layers[0].weights[0] = 1 << 20; // beyond the weight bits
    assert!(matches!(
        QuantizedModel::try_from(data),
        Err(HeError::InvalidModel(_))
    ));
    let mut data = t.model.data().clone();
    data.layers[1].inputs += 1;
    assert!(QuantizedModel::try_from(data).is_err());
    // Every output weight at its maximum: the decryption margin is gone.
    let mut data = t.model.data().clone();
    let max = (1i64 << (data.bits.weight_bits - 1)) - 1;
    data.layers[1].weights.iter_mut().for_each(|w| *w = max);
    assert!(matches!(
        QuantizedModel::try_from(data),
        Err(HeError::NoiseBudget { layer: 1, .. })
    ));
}

/// Serde round trip (JSON); deserializing re-checks the model.
fn serde_json_like(model: &QuantizedModel) -> QuantizedModel {
    let text = serde_json::to_string(model).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn the_client_key_survives_its_key_file_encoding_and_bad_files_are_refused() {
    let keys = keys();
    let t = breast_cancer_lr();
    let bytes = keys.client.to_secret_bytes();
    let again = ClientKey::from_secret_bytes(&bytes).unwrap();
    assert_eq!(again.key_id(), keys.client.key_id());
    // The restored key decrypts what the node computed for the original.
    let q = t.model.quantize_input(&t.split.test_x[1]).unwrap();
    let input = encrypt(&again, &q).unwrap();
    let scores = evaluate(&keys.eval, &t.model, &input).unwrap();
    assert_eq!(
        decrypt(&keys.client, &scores),
        t.model.scores_clear(&q).unwrap()
    );
    // Truncated, wrong magic, a coefficient that is not a bit.
    expect_blob_error(
        ClientKey::from_secret_bytes(&bytes[..bytes.len() - 1]),
        Blob::ClientKey,
    );
    let mut bad_magic = bytes.to_vec();
    bad_magic[0] ^= 1;
    expect_blob_error(ClientKey::from_secret_bytes(&bad_magic), Blob::ClientKey);
    let mut bad_bit = bytes.to_vec();
    let last = bad_bit.len() - 1;
    bad_bit[last] = 2;
    expect_blob_error(ClientKey::from_secret_bytes(&bad_bit), Blob::ClientKey);
    assert!(
        !format!("{again:?}").contains('['),
        "Debug must not print the key"
    );
}
