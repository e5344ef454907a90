#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! A trained model leaves Cohort as ONNX and safetensors and predicts there
//! what it predicts in Cohort: the final model of a federation, exported from
//! the stopped coordinator's store, and a digits MLP trained by a node, run by
//! an ONNX runtime that is not Cohort's (tract) on every row of their data
//! sets; safetensors reads back to the very same model.

use cohort_client::data::{CsvOptions, Dataset, feature_stats, load_csv, standardized};
use cohort_client::training::{LocalTrainingConfig, logits, train_local};
use cohort_coordinator::export::{ModelExportError, stored_model};
use cohort_coordinator::store::{SledStore, Store};
use cohort_e2e::{Testbed, breast_cancer, finish, plan};
use cohort_proto::export::{DenseModel, ExportFormat, from_safetensors};
use cohort_proto::model::SavedSpec;
use cohort_proto::model::{ParameterLayout, initial_parameters};
use cohort_proto::scaling::FeatureStats;
use tract_onnx::prelude::*;

/// What the exported ONNX graph outputs for `data`'s raw rows: logits and
/// probabilities, one vector per row.
fn run_onnx(onnx: &[u8], data: &Dataset) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let (rows, width) = (data.len(), data.num_features());
    let model = tract_onnx::onnx()
        .model_for_read(&mut &onnx[..])
        .unwrap()
        .with_input_fact(0, f32::fact([rows, width]).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let input: Tensor =
        tract_ndarray::Array2::from_shape_vec((rows, width), data.features().to_vec())
            .unwrap()
            .into();
    let outputs = model.run(tvec!(input.into())).unwrap();
    let rows_of = |value: &TValue| -> Vec<Vec<f32>> {
        let view = value.to_plain_array_view::<f32>().unwrap();
        view.outer_iter()
            .map(|row| row.iter().copied().collect())
            .collect()
    };
    (rows_of(&outputs[0]), rows_of(&outputs[1]))
}

fn argmax(values: &[f32]) -> usize {
    (0..values.len())
        .max_by(|&a, &b| values[a].total_cmp(&values[b]))
        .unwrap()
}

fn softmax(logits: &[f32]) -> Vec<f64> {
    let top = logits.iter().copied().fold(f32::MIN, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&l| f64::from(l - top).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Cohort's predictions of `model` on `data`'s raw rows equal the exported
/// ONNX graph's on every row (the class exactly, logits and probabilities to
/// float rounding), and safetensors reads back to the same model.
fn assert_exports_predict_as_cohort(model: &DenseModel, data: &Dataset) {
    let layout = ParameterLayout::of(model.spec()).unwrap();
    let scaled = standardized(model.scaling(), data).unwrap();
    let cohort = logits(&layout, model.parameters(), &scaled).unwrap();

    let onnx = model.export(ExportFormat::Onnx).unwrap();
    let (exported, probabilities) = run_onnx(&onnx, data);
    assert_eq!(exported.len(), data.len());
    for (row, (ours, theirs)) in cohort.iter().zip(&exported).enumerate() {
        assert_eq!(
            argmax(ours),
            argmax(theirs),
            "row {row}: {ours:?} vs {theirs:?}"
        );
        for (a, b) in ours.iter().zip(theirs) {
            assert!(
                (a - b).abs() <= 1e-4 * a.abs().max(1.0),
                "row {row}: {ours:?} vs {theirs:?}"
            );
        }
        for (p, q) in softmax(ours).iter().zip(&probabilities[row]) {
            assert!((p - f64::from(*q)).abs() <= 1e-5, "row {row}: {p} vs {q}");
        }
    }

    // The tensors come back bit for bit (the version is their hash); the
    // scaling travels as JSON decimals in the metadata, parsed back to within
    // a rounding of each value.
    let safetensors = model.export(ExportFormat::Safetensors).unwrap();
    let back = from_safetensors(&safetensors).unwrap();
    assert_eq!(back.model_version(), model.model_version());
    assert_eq!(back.spec(), model.spec());
    assert_eq!(back.parameters(), model.parameters());
    let (a, b) = (back.scaling(), model.scaling());
    for (x, y) in a.mean.iter().chain(&a.std).zip(b.mean.iter().chain(&b.std)) {
        assert!((x - y).abs() <= 1e-12 * y.abs().max(1.0), "{x} vs {y}");
    }
}

#[tokio::test]
async fn a_federations_final_model_exported_from_the_coordinator_predicts_as_in_cohort() {
    let testbed = Testbed::new(plan(3, 3));
    let coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let nodes = testbed.start_nodes(coordinator.local_addr(), 3);
    let (head, _) = finish(coordinator, nodes).await;

    let store = Store::from(SledStore::open(&testbed.dir.path().join("state")).unwrap());
    let model = stored_model(&store, None).await.unwrap();
    assert_eq!(model.model_version(), head.model_version);
    assert_exports_predict_as_cohort(&model, &breast_cancer());
    let unknown = stored_model(&store, Some("feed")).await.unwrap_err();
    assert!(
        matches!(unknown, ModelExportError::UnknownModel(_)),
        "{unknown}"
    );
}

#[test]
fn a_digits_mlp_exported_predicts_as_in_cohort() {
    let path = cohort_sim::demo::bundled("digits.csv.gz");
    let data = load_csv(&path, &CsvOptions::default()).unwrap().dataset;
    let spec = SavedSpec {
        kind: "mlp".into(),
        num_features: 64,
        num_classes: 10,
        hidden_layers: vec![32],
    };
    let layout = ParameterLayout::of(&spec).unwrap();
    let scaling = FeatureStats::combine(&[feature_stats(&data)]).unwrap();
    let config = LocalTrainingConfig {
        epochs: 2,
        batch_size: 32,
        learning_rate: 0.1,
        seed: 7,
        proximal_mu: 0.0,
        max_update_norm: None,
    };
    let scaled = standardized(&scaling, &data).unwrap();
    let trained = train_local(&layout, &initial_parameters(&layout, 5), &scaled, &config).unwrap();
    let model = DenseModel::new(spec, scaling, trained.parameters).unwrap();
    assert_exports_predict_as_cohort(&model, &data);
}
