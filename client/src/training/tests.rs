//! Training and evaluation end to end, on the bundled data sets.

use cohort_proto::model::SavedSpec;
use cohort_proto::model::{DenseShape, ParameterLayout};

use super::*;
use crate::data::{
    CsvOptions, Dataset, FeatureStats, feature_stats, load_csv, standardized, train_holdout_split,
};
use crate::model::{ModelError, initial_parameters};

fn layout_of(kind: &str, num_features: u32, hidden: &[u32], num_classes: u32) -> ParameterLayout {
    ParameterLayout::of(&SavedSpec {
        kind: kind.into(),
        num_features,
        num_classes,
        hidden_layers: hidden.to_vec(),
    })
    .unwrap()
}

/// `(train, holdout)` of a bundled file, standardized with the training rows' statistics.
fn standardized_split(file: &str, header_lines: usize) -> (Dataset, Dataset) {
    let path = format!("{}/../data/{file}", env!("CARGO_MANIFEST_DIR"));
    let options = CsvOptions {
        header_lines,
        ..CsvOptions::default()
    };
    let data = load_csv(path, &options).unwrap().dataset;
    let (train, holdout) = train_holdout_split(&data, 0.25, 2024).unwrap();
    let scaling = FeatureStats::combine(&[feature_stats(&train)]).unwrap();
    (
        standardized(&scaling, &train).unwrap(),
        standardized(&scaling, &holdout).unwrap(),
    )
}

#[test]
fn logistic_regression_learns_breast_cancer() {
    let (train, holdout) = standardized_split("breast_cancer.csv", 1);
    let layout = layout_of("logistic_regression", 30, &[], 2);
    let initial = initial_parameters(&layout, 1);
    let config = LocalTrainingConfig {
        epochs: 20,
        batch_size: 16,
        learning_rate: 0.05,
        seed: 7,
        proximal_mu: 0.0,
        max_update_norm: None,
    };

    let before = evaluate(&layout, &initial, &holdout).unwrap();
    let outcome = train_local(&layout, &initial, &train, &config).unwrap();
    let after = evaluate(&layout, &outcome.parameters, &holdout).unwrap();
    let on_train = evaluate(&layout, &outcome.parameters, &train).unwrap();
    println!(
        "breast cancer: holdout before {before:?}, after {after:?}; train {on_train:?}, \
         mean training loss {}",
        outcome.mean_loss
    );

    assert_eq!(outcome.num_examples, train.len() as u64);
    assert_eq!(after.num_examples, holdout.len() as u64);
    assert!(
        after.accuracy >= 0.95,
        "held-out accuracy {}",
        after.accuracy
    );
    assert!(
        after.loss < before.loss / 3.0,
        "loss {} -> {}",
        before.loss,
        after.loss
    );
    // The loss measured while training is close to the loss of the result.
    assert!(
        outcome.mean_loss < 2.0 * on_train.loss + 0.05,
        "{outcome:?} vs {on_train:?}"
    );
}

/// A convolutional model, federated through the generic path (visitor,
/// mapper, the same loop), learns the digits as 1×8×8 images.
#[test]
fn a_convolutional_model_learns_digits_through_the_generic_path() {
    let (train, holdout) = standardized_split("digits.csv.gz", 0);
    let prototype = crate::model::with_random_state(Some(5), crate::zoo::DigitsCnn::new);
    let initial = crate::model::flatten(&prototype).unwrap();
    let architecture = ModuleArchitecture::new(prototype, 64, 10);
    let config = LocalTrainingConfig {
        epochs: 5,
        batch_size: 32,
        learning_rate: 0.05,
        seed: 7,
        proximal_mu: 0.0,
        max_update_norm: None,
    };
    let before = evaluate(&architecture, &initial, &holdout).unwrap();
    let outcome = train_local(&architecture, &initial, &train, &config).unwrap();
    let after = evaluate(&architecture, &outcome.parameters, &holdout).unwrap();
    assert!(before.accuracy < 0.3, "{before:?}");
    assert!(after.accuracy >= 0.9, "{after:?}");
    // FedProx and norm bounding run on it too.
    let bounded = LocalTrainingConfig {
        epochs: 1,
        proximal_mu: 0.1,
        max_update_norm: Some(0.5),
        ..config
    };
    let outcome = train_local(&architecture, &initial, &train, &bounded).unwrap();
    let change: f64 = (outcome.parameters.iter().zip(&initial))
        .map(|(p, s)| f64::from(p - s).powi(2))
        .sum();
    assert!(change.sqrt() <= 0.5 + 1e-6, "{}", change.sqrt());
}

/// The 1-D convolutional sequence model finds the synthetic fraud bursts:
/// well above the majority-class baseline on a held-out split.
#[test]
fn a_sequence_model_finds_fraud_bursts_above_the_majority_baseline() {
    let (train, holdout) = standardized_split("fraud_sequences.csv.gz", 0);
    let prototype = crate::model::with_random_state(Some(3), crate::zoo::FraudConv1d::new);
    let initial = crate::model::flatten(&prototype).unwrap();
    let architecture = ModuleArchitecture::new(prototype, 40, 2);
    let config = LocalTrainingConfig {
        epochs: 3,
        batch_size: 32,
        learning_rate: 0.05,
        seed: 7,
        proximal_mu: 0.0,
        max_update_norm: None,
    };
    let outcome = train_local(&architecture, &initial, &train, &config).unwrap();
    let after = evaluate(&architecture, &outcome.parameters, &holdout).unwrap();
    let frauds = holdout.labels().iter().filter(|&&l| l == 1).count();
    let baseline = 1.0 - frauds as f64 / holdout.len() as f64;
    println!("fraud sequences: accuracy {after:?}, majority baseline {baseline}");
    assert!(after.accuracy >= baseline + 0.05, "{after:?} vs {baseline}");
}

/// DP-SGD's per-row clipping runs through the generic path too: each row's
/// gradient read back in the module's visiting order, clipped, noised.
#[test]
fn dp_sgd_trains_a_convolutional_model() {
    let (train, _) = standardized_split("fraud_sequences.csv.gz", 0);
    let prototype = crate::model::with_random_state(None, crate::zoo::FraudConv1d::new);
    let initial = crate::model::flatten(&prototype).unwrap();
    let architecture = ModuleArchitecture::new(prototype, 40, 2);
    let config = LocalTrainingConfig {
        epochs: 1,
        batch_size: 64,
        learning_rate: 0.05,
        seed: 7,
        proximal_mu: 0.0,
        max_update_norm: None,
    };
    let dp = DpSgdConfig {
        noise_multiplier: 1.0,
        clip_norm: 1.0,
    };
    let rows = train.subset(&(0..256).collect::<Vec<_>>()).unwrap();
    let outcome = train_dp_sgd(
        &architecture,
        &initial,
        &rows,
        &config,
        &dp,
        &mut rand::rng(),
    )
    .unwrap();
    assert_eq!(outcome.parameters.len(), initial.len());
    assert!(outcome.parameters.iter().all(|p| p.is_finite()));
    assert_ne!(outcome.parameters, initial);
}

#[test]
fn mlp_learns_digits() {
    let (train, holdout) = standardized_split("digits.csv.gz", 0);
    let layout = layout_of("mlp", 64, &[32], 10);
    let initial = initial_parameters(&layout, 1);
    let config = LocalTrainingConfig {
        epochs: 8,
        batch_size: 32,
        learning_rate: 0.1,
        seed: 7,
        proximal_mu: 0.0,
        max_update_norm: None,
    };

    let before = evaluate(&layout, &initial, &holdout).unwrap();
    let outcome = train_local(&layout, &initial, &train, &config).unwrap();
    let after = evaluate(&layout, &outcome.parameters, &holdout).unwrap();
    println!(
        "digits: before {before:?}, after {after:?}, mean training loss {}",
        outcome.mean_loss
    );

    assert!(
        after.accuracy >= 0.90,
        "held-out accuracy {}",
        after.accuracy
    );
    assert!(
        after.loss < before.loss / 3.0,
        "loss {} -> {}",
        before.loss,
        after.loss
    );
}

/// 1 feature, 2 classes, logits `[x, −x]`: class 0 wins when `x > 0`.
fn sign_model() -> (ParameterLayout, Vec<f32>) {
    let layout = ParameterLayout {
        layers: vec![DenseShape {
            inputs: 1,
            outputs: 2,
        }],
    };
    (layout, vec![1.0, -1.0, 0.0, 0.0])
}

#[test]
fn evaluation_counts_hits_and_averages_cross_entropy() {
    let (layout, parameters) = sign_model();
    let data = Dataset::new(1, vec![1.0, -1.0, 2.0], vec![0, 1, 1]).unwrap();
    let evaluation = evaluate(&layout, &parameters, &data).unwrap();
    assert_eq!(evaluation.num_examples, 3);
    assert!((evaluation.accuracy - 2.0 / 3.0).abs() < 1e-12);
    // −log softmax of the true class: ln(1 + e^(−2x)) for class 0, ln(1 + e^(2x)) for class 1.
    let expected = (2.0 * (1.0 + (-2.0f64).exp()).ln() + (1.0 + 4.0f64.exp()).ln()) / 3.0;
    assert!(
        (evaluation.loss - expected).abs() < 1e-5,
        "{} vs {expected}",
        evaluation.loss
    );
}

#[test]
fn per_row_losses_are_each_rows_cross_entropy_in_row_order() {
    let (layout, parameters) = sign_model();
    let data = Dataset::new(1, vec![1.0, -1.0, 2.0], vec![0, 1, 1]).unwrap();
    let losses = per_row_losses(&layout, &parameters, &data).unwrap();
    let expected = [
        (1.0 + (-2.0f64).exp()).ln(),
        (1.0 + (-2.0f64).exp()).ln(),
        (1.0 + 4.0f64.exp()).ln(),
    ];
    assert_eq!(losses.len(), 3);
    for (got, want) in losses.iter().zip(expected) {
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
}

#[test]
fn training_is_reproducible_from_its_seed() {
    let (layout, parameters) = sign_model();
    let features: Vec<f32> = (0..40).map(|i| (i as f32 - 19.5) / 10.0).collect();
    let labels = features.iter().map(|&x| u32::from(x < 0.0)).collect();
    let data = Dataset::new(1, features, labels).unwrap();
    let config = LocalTrainingConfig {
        epochs: 2,
        batch_size: 3,
        learning_rate: 0.5,
        seed: 11,
        proximal_mu: 0.0,
        max_update_norm: None,
    };
    let start = [0.1, 0.0, 0.0, 0.0];
    let first = train_local(&layout, &start, &data, &config).unwrap();
    let again = train_local(&layout, &start, &data, &config).unwrap();
    let reseeded = train_local(
        &layout,
        &start,
        &data,
        &LocalTrainingConfig { seed: 12, ..config },
    )
    .unwrap();
    assert_eq!(first, again);
    assert_ne!(first.parameters, reseeded.parameters);
    assert_ne!(first.parameters, start);
    assert_eq!(first.parameters.len(), parameters.len());
}

fn distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Breast cancer, logistic regression from seed 1's model, 3 plain SGD epochs.
fn three_epochs_of_breast_cancer() -> (ParameterLayout, Vec<f32>, Dataset, LocalTrainingConfig) {
    let (train, _) = standardized_split("breast_cancer.csv", 1);
    let layout = layout_of("logistic_regression", 30, &[], 2);
    let start = initial_parameters(&layout, 1);
    let config = LocalTrainingConfig {
        epochs: 3,
        batch_size: 16,
        learning_rate: 0.05,
        seed: 7,
        proximal_mu: 0.0,
        max_update_norm: None,
    };
    (layout, start, train, config)
}

#[test]
fn the_proximal_term_keeps_training_near_the_start() {
    let (layout, start, train, plain) = three_epochs_of_breast_cancer();
    let free = train_local(&layout, &start, &train, &plain).unwrap();
    let mut drift = vec![distance(&free.parameters, &start)];
    for mu in [0.1, 1.0, 10.0] {
        let prox = LocalTrainingConfig {
            proximal_mu: mu,
            ..plain
        };
        let held = train_local(&layout, &start, &train, &prox).unwrap();
        drift.push(distance(&held.parameters, &start));
    }
    // Stronger μ, less drift from the global model: strictly decreasing.
    assert!(drift.windows(2).all(|w| w[1] < w[0]), "{drift:?}");
}

#[test]
fn the_change_is_clipped_to_max_update_norm() {
    let (layout, start, train, config) = three_epochs_of_breast_cancer();
    let free = train_local(&layout, &start, &train, &config).unwrap();
    let bound = distance(&free.parameters, &start) / 4.0;
    let bounded = train_local(
        &layout,
        &start,
        &train,
        &LocalTrainingConfig {
            max_update_norm: Some(bound),
            ..config
        },
    )
    .unwrap();
    let norm = distance(&bounded.parameters, &start);
    assert!((norm - bound).abs() < 1e-4 * bound, "{norm} vs {bound}");
    // The direction is kept: the bounded change is the free one scaled by ¼.
    for ((b, f), s) in bounded.parameters.iter().zip(&free.parameters).zip(&start) {
        assert!(((b - s) - (f - s) / 4.0).abs() < 1e-5, "{b} {f} {s}");
    }
}

#[test]
fn data_that_does_not_fit_the_model_is_refused() {
    let (layout, parameters) = sign_model();
    let config = LocalTrainingConfig {
        epochs: 1,
        batch_size: 4,
        learning_rate: 0.1,
        seed: 0,
        proximal_mu: 0.0,
        max_update_norm: None,
    };

    let bad_label = Dataset::new(1, vec![0.5, 0.5, 0.5], vec![0, 1, 2]).unwrap();
    let error = train_local(&layout, &parameters, &bad_label, &config).unwrap_err();
    assert!(
        matches!(
            error,
            TrainingError::LabelOutOfRange {
                row: 2,
                label: 2,
                num_classes: 2
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("label 2"), "{error}");
    assert!(matches!(
        evaluate(&layout, &parameters, &bad_label),
        Err(TrainingError::LabelOutOfRange { label: 2, .. })
    ));

    let too_wide = Dataset::new(2, vec![0.5, 0.5], vec![0]).unwrap();
    assert!(matches!(
        train_local(&layout, &parameters, &too_wide, &config),
        Err(TrainingError::FeatureCount { model: 1, data: 2 })
    ));

    let empty = Dataset::new(1, vec![], vec![]).unwrap();
    assert!(matches!(
        train_local(&layout, &parameters, &empty, &config),
        Err(TrainingError::NoExamples { .. })
    ));
    assert!(matches!(
        evaluate(&layout, &parameters, &empty),
        Err(TrainingError::NoExamples { .. })
    ));

    let fine = Dataset::new(1, vec![0.5], vec![0]).unwrap();
    assert!(matches!(
        train_local(&layout, &parameters[..3], &fine, &config),
        Err(TrainingError::Model(ModelError::ParameterCount {
            expected: 4,
            actual: 3
        }))
    ));
    assert!(matches!(
        train_local(
            &layout,
            &parameters,
            &fine,
            &LocalTrainingConfig {
                epochs: 0,
                ..config
            }
        ),
        Err(TrainingError::Config {
            field: "epochs",
            ..
        })
    ));
}

#[test]
fn dp_sgd_learns_breast_cancer_and_accounts_its_steps() {
    let (layout, start, train, config) = three_epochs_of_breast_cancer();
    let (_, holdout) = standardized_split("breast_cancer.csv", 1);
    let dp = DpSgdConfig {
        noise_multiplier: 1.0,
        clip_norm: 1.0,
    };
    let outcome = train_dp_sgd(&layout, &start, &train, &config, &dp, &mut rand::rng()).unwrap();
    let accuracy = evaluate(&layout, &outcome.parameters, &holdout)
        .unwrap()
        .accuracy;
    assert!(accuracy > 0.85, "DP-SGD accuracy {accuracy}");
    // The accountant hears of every step: epochs · ⌈rows / batch⌉ at q = batch / rows.
    let event = dp.round_event(&config, train.len()).unwrap();
    let steps = u64::from(config.epochs) * train.len().div_ceil(config.batch_size) as u64;
    assert_eq!(event.count(), steps);
}

#[test]
fn dp_sgd_noise_moves_the_model_whatever_the_data() {
    // With every gradient clipped to a tiny norm, what moves the model is the
    // noise: two runs from the same start differ, by about σ·C·lr per step.
    let (layout, start, train, config) = three_epochs_of_breast_cancer();
    let dp = DpSgdConfig {
        noise_multiplier: 1.0,
        clip_norm: 1e-6,
    };
    let a = train_dp_sgd(&layout, &start, &train, &config, &dp, &mut rand::rng()).unwrap();
    let b = train_dp_sgd(&layout, &start, &train, &config, &dp, &mut rand::rng()).unwrap();
    assert!(
        distance(&a.parameters, &b.parameters) > 0.0,
        "fresh noise each run"
    );
    // Nearly no signal passes the clip: the model barely moves from the start
    // beyond the noise's scale (σ·C·lr·√steps per coordinate, tiny here).
    assert!(
        distance(&a.parameters, &start) < 1e-3,
        "{}",
        distance(&a.parameters, &start)
    );
}

#[test]
fn a_dp_sgd_change_respects_max_update_norm() {
    // Under secure aggregation with norm bounding, the coordinator relies on
    // every node's change being within the bound, DP-SGD nodes included.
    let (layout, start, train, config) = three_epochs_of_breast_cancer();
    let dp = DpSgdConfig {
        noise_multiplier: 1.0,
        clip_norm: 1.0,
    };
    let free = train_dp_sgd(&layout, &start, &train, &config, &dp, &mut rand::rng()).unwrap();
    let bound = distance(&free.parameters, &start) / 4.0;
    let bounded_config = LocalTrainingConfig {
        max_update_norm: Some(bound),
        ..config
    };
    let bounded = train_dp_sgd(
        &layout,
        &start,
        &train,
        &bounded_config,
        &dp,
        &mut rand::rng(),
    )
    .unwrap();
    let norm = distance(&bounded.parameters, &start);
    assert!(norm <= bound, "{norm} > {bound}");
}

#[test]
fn dp_sgd_honours_the_proximal_term() {
    use rand::SeedableRng;
    // Same sampling and noise draws (same seed): only μ differs.
    let (layout, start, train, config) = three_epochs_of_breast_cancer();
    let dp = DpSgdConfig {
        noise_multiplier: 0.5,
        clip_norm: 1.0,
    };
    let drift = |mu: f64| {
        let config = LocalTrainingConfig {
            proximal_mu: mu,
            ..config
        };
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let outcome = train_dp_sgd(&layout, &start, &train, &config, &dp, &mut rng).unwrap();
        distance(&outcome.parameters, &start)
    };
    let drifts = [drift(0.0), drift(1.0), drift(10.0)];
    assert!(drifts.windows(2).all(|w| w[1] < w[0]), "{drifts:?}");
}
