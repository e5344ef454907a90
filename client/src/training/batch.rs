//! Rows of a [`Dataset`] as tensors, and the check that they fit the model.

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::TrainingError;
use crate::data::Dataset;

/// Refuses an empty data set, a feature width other than the model's input
/// (`num_features`), and labels the model has no class for (`0..num_classes`).
/// `purpose` names the use in the error.
pub(super) fn check_fits(
    data: &Dataset,
    num_features: usize,
    num_classes: usize,
    purpose: &'static str,
) -> Result<(), TrainingError> {
    if data.is_empty() {
        return Err(TrainingError::NoExamples { purpose });
    }
    if num_features != data.num_features() {
        return Err(TrainingError::FeatureCount {
            model: num_features,
            data: data.num_features(),
        });
    }
    if let Some((row, &label)) = data
        .labels()
        .iter()
        .enumerate()
        .find(|&(_, &label)| label as usize >= num_classes)
    {
        return Err(TrainingError::LabelOutOfRange {
            row,
            label,
            num_classes,
        });
    }
    Ok(())
}

/// The features `[rows, num_features]` and labels `[rows]` of `rows`, each built
/// in one piece from the data set's slices. Every index must be a row of `data`.
pub(super) fn batch(
    data: &Dataset,
    rows: &[usize],
    device: &Device,
) -> (Tensor<2>, Tensor<1, Int>) {
    let width = data.num_features();
    let all_features = data.features();
    let all_labels = data.labels();
    let mut features = Vec::with_capacity(rows.len() * width);
    let mut labels = Vec::with_capacity(rows.len());
    for &row in rows {
        features.extend_from_slice(&all_features[row * width..(row + 1) * width]);
        labels.push(i64::from(all_labels[row]));
    }
    (
        Tensor::from_data(TensorData::new(features, [rows.len(), width]), device),
        Tensor::from_data(TensorData::new(labels, [rows.len()]), device),
    )
}
