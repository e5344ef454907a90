//! Loss and accuracy of a parameter vector on labelled rows.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::activation::log_softmax;

use super::batch::batch;
use super::{Architecture, TrainingError};
use crate::data::Dataset;
use crate::model::{FederatedModel, cpu_device, read_values};

/// Rows per forward pass: bounds memory on a large holdout.
const ROWS_PER_PASS: usize = 1024;

/// How well a model does on a data set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Rows evaluated.
    pub num_examples: u64,
    /// Mean cross-entropy per row.
    pub loss: f64,
    /// Fraction of rows whose largest logit is their label.
    pub accuracy: f64,
}

/// Evaluates the model of `architecture` with `parameters` on every row of `data`.
pub fn evaluate<A: Architecture>(
    architecture: &A,
    parameters: &[f32],
    data: &Dataset,
) -> Result<Evaluation, TrainingError> {
    let device = cpu_device();
    let model = architecture.build(parameters, &device)?;
    architecture.check_fits(data, "evaluate")?;
    let loss_function = CrossEntropyLossConfig::new().init(&device);

    let all_rows: Vec<usize> = (0..data.len()).collect();
    let mut loss_sum = 0.0;
    let mut correct = 0.0;
    for rows in all_rows.chunks(ROWS_PER_PASS) {
        let (features, labels) = batch(data, rows, &device);
        let logits = model.forward(features);
        let loss = loss_function.forward(logits.clone(), labels.clone());
        let hits = logits
            .argmax(1)
            .reshape([rows.len()])
            .equal(labels)
            .float()
            .sum();
        let [loss, hits] = [read_values(loss, "loss")?, read_values(hits, "accuracy")?]
            .map(|values| values.first().map_or(f64::NAN, |&v| f64::from(v)));
        loss_sum += loss * rows.len() as f64;
        correct += hits;
    }
    let n = data.len() as f64;
    Ok(Evaluation {
        num_examples: data.len() as u64,
        loss: loss_sum / n,
        accuracy: correct / n,
    })
}

/// Each row's cross-entropy under the model of `architecture` with
/// `parameters`, in row order: what a node's reported training loss is
/// computed from, one value per row so that a release can bound each row's
/// share.
pub fn per_row_losses<A: Architecture>(
    architecture: &A,
    parameters: &[f32],
    data: &Dataset,
) -> Result<Vec<f64>, TrainingError> {
    let device = cpu_device();
    let model = architecture.build(parameters, &device)?;
    architecture.check_fits(data, "per-row loss")?;
    let all_rows: Vec<usize> = (0..data.len()).collect();
    let mut losses = Vec::with_capacity(data.len());
    for rows in all_rows.chunks(ROWS_PER_PASS) {
        let (features, labels) = batch(data, rows, &device);
        let picked = log_softmax(model.forward(features), 1)
            .gather(1, labels.reshape([rows.len(), 1]))
            .reshape([rows.len()]);
        let values = read_values(picked, "per-row loss")?;
        losses.extend(values.into_iter().map(|v| -f64::from(v)));
    }
    Ok(losses)
}

/// Each row's logits under the model of `architecture` with `parameters`
/// (row order, one per class): what Cohort predicts, the class being the
/// largest. `data` must already be standardized.
pub fn logits<A: Architecture>(
    architecture: &A,
    parameters: &[f32],
    data: &Dataset,
) -> Result<Vec<Vec<f32>>, TrainingError> {
    let device = cpu_device();
    let model = architecture.build(parameters, &device)?;
    architecture.check_fits(data, "prediction")?;
    let all_rows: Vec<usize> = (0..data.len()).collect();
    let mut out = Vec::with_capacity(data.len());
    for rows in all_rows.chunks(ROWS_PER_PASS) {
        let (features, _) = batch(data, rows, &device);
        let output = model.forward(features);
        let [_, classes] = output.shape().dims();
        let values = read_values(output, "logits")?;
        out.extend(values.chunks(classes.max(1)).map(<[f32]>::to_vec));
    }
    Ok(out)
}
