//! `--check-plaintext`: recompute the node's quantized model in the clear and
//! compare with the decrypted answers.
//!
//! Who can do this: whoever holds the quantized model, which is the consortium's
//! asset (its weights), not something a node publishes. The node's operator
//! exports it (`cohort-node inference serve --export-quantized DIR`) and may give
//! it to a trusted party: a consortium member acting as requester, an auditor, or
//! the operator testing its own deployment. The file is checked against the
//! SHA-256 the node publishes in its model description, so a check cannot pass
//! against another model than the one served.

use std::path::Path;

use cohort_crypto::he::{QuantizedModel, QuantizedModelData};
use cohort_proto::inference::ModelDescription;

use super::Prediction;

/// Why the clear check could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The model file could not be read or parsed.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
    #[error(
        "{} is not the model the node serves: its SHA-256 is {actual}, the node publishes {published}",
        path.display()
    )]
    /// The model file's hash is not the one the node publishes.
    NotServedModel {
        /// The file.
        path: std::path::PathBuf,
        /// Its hex SHA-256.
        actual: String,
        /// The hex SHA-256 the node publishes for the model it serves.
        published: String,
    },
    /// The clear computation failed on a row.
    #[error("row {row}: {reason}")]
    Row {
        /// The row (0-based).
        row: usize,
        /// Why it failed.
        reason: String,
    },
}

/// How the encrypted answers compare with the clear computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Agreement {
    /// Rows compared.
    pub rows: usize,
    /// Rows that came with scores (all in scores mode, none in class mode).
    pub scored: usize,
    /// Rows whose decrypted scores equal the clear scores exactly.
    pub equal_scores: usize,
    /// Rows whose predicted class equals the clear one.
    pub equal_classes: usize,
}

/// Reads an exported quantized model and checks it is the one `description`
/// describes.
pub fn load_quantized(
    path: &Path,
    description: &ModelDescription,
) -> Result<QuantizedModel, CheckError> {
    let file_error = |reason: String| CheckError::File {
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| file_error(e.to_string()))?;
    let actual = crate::inference::registry::sha256_hex(&bytes);
    if actual != description.quantized_model_sha256 {
        return Err(CheckError::NotServedModel {
            path: path.to_owned(),
            actual,
            published: description.quantized_model_sha256.clone(),
        });
    }
    let data: QuantizedModelData =
        serde_json::from_slice(&bytes).map_err(|e| file_error(e.to_string()))?;
    QuantizedModel::try_from(data).map_err(|e| file_error(e.to_string()))
}

/// Compares each prediction with `model` evaluated in the clear on the same
/// quantized input.
pub fn agreement(
    model: &QuantizedModel,
    predictions: &[Prediction],
) -> Result<Agreement, CheckError> {
    let mut out = Agreement {
        rows: predictions.len(),
        ..Agreement::default()
    };
    for (row, prediction) in predictions.iter().enumerate() {
        let clear = model
            .scores_clear(&prediction.input)
            .map_err(|e| CheckError::Row {
                row,
                reason: e.to_string(),
            })?;
        if let Some(scores) = &prediction.scores {
            out.scored += 1;
            out.equal_scores += usize::from(&clear == scores);
        }
        out.equal_classes += usize::from(cohort_crypto::he::argmax(&clear) == prediction.class);
    }
    Ok(out)
}
