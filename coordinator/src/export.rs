//! A model version out of a stopped coordinator's store, ready to export as
//! ONNX or safetensors (`cohort-coordinator model export`,
//! [`cohort_proto::export`]): its architecture from the stored config, its
//! parameters, and the feature scaling its rounds standardized with.
//!
//! Refused: a version the store does not hold, a version an erasure tainted
//! (it learned from erased data and must not leave), and a version trained
//! under a feature scaling agreed before the current one (the store keeps
//! only the current scaling; a node that kept the model holds the right one:
//! export it there, `cohort-node model export`).

use cohort_proto::export::{DenseModel, ExportError};
use cohort_proto::model::{ParameterLayout, decode_f32};

use crate::audit::lineage::{Lineage, LineageError};
use crate::audit::{AuditError, AuditEvent, stored_entries};
use crate::store::{Store, StoreError};

/// Why a stored model cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum ModelExportError {
    /// The store holds no federation (no config or no head).
    #[error("the state holds no federation yet")]
    NoFederation,
    /// The store holds no model of this version.
    #[error("the store holds no model {0}")]
    UnknownModel(String),
    /// An erasure tainted the version.
    #[error(
        "model {0} learned from erased data (an erasure request tainted it): it is not exported"
    )]
    Tainted(String),
    /// The version was trained under an earlier feature scaling.
    #[error(
        "model {0} was trained under a feature scaling agreed before the current one, which \
         the store no longer holds; export it from a node that kept it (cohort-node model export)"
    )]
    EarlierScaling(String),
    /// The federation trains a model of its owner's (`[model] descriptor`),
    /// which the coordinator holds only as a flat parameter vector: both
    /// export formats here are the dense models' (ONNX needs the forward
    /// pass, and the safetensors metadata a dense architecture).
    #[error(
        "the federation trains {0}, not a built-in dense model: the coordinator has no graph \
         for it, only its parameters (the store's model versions, in the descriptor's order)"
    )]
    NotDense(String),
    /// No feature scaling was agreed yet.
    #[error("no feature scaling has been agreed yet: the model would not know its inputs")]
    NoScaling,
    /// The stored parameters or the lineage do not read.
    #[error("model {version}: {reason}")]
    Unreadable {
        /// The version.
        version: String,
        /// What failed.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit log could not be read.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The model does not export.
    #[error(transparent)]
    Export(#[from] ExportError),
}

/// The stored model `version` (the head's when `None`), with the scaling its
/// inputs need.
pub async fn stored_model(
    store: &Store,
    version: Option<&str>,
) -> Result<DenseModel, ModelExportError> {
    let config = store
        .config()
        .await?
        .ok_or(ModelExportError::NoFederation)?;
    let version = match version {
        Some(version) => version.to_owned(),
        None => {
            store
                .head()
                .await?
                .ok_or(ModelExportError::NoFederation)?
                .model_version
        }
    };
    let unreadable = |reason: String| ModelExportError::Unreadable {
        version: version.clone(),
        reason,
    };
    let bytes = (store.model(&version).await?)
        .ok_or_else(|| ModelExportError::UnknownModel(version.clone()))?;
    if store.is_tainted(&version).await? {
        return Err(ModelExportError::Tainted(version));
    }
    check_current_scaling(store, &version).await?;
    let scaling = store
        .feature_scaling()
        .await?
        .ok_or(ModelExportError::NoScaling)?;
    let Some(spec) = config.dense_spec() else {
        let label = (config.model.descriptor.as_ref()).map_or_else(String::new, |d| d.label());
        return Err(ModelExportError::NotDense(label));
    };
    let layout = ParameterLayout::of(&spec).map_err(|e| unreadable(e.to_string()))?;
    let parameters =
        decode_f32(&bytes, layout.num_parameters()).map_err(|e| unreadable(e.to_string()))?;
    Ok(DenseModel::new(spec, scaling, parameters)?)
}

/// Refuses a version whose rounds standardized with a scaling agreed before
/// the last one the log records.
async fn check_current_scaling(store: &Store, version: &str) -> Result<(), ModelExportError> {
    let entries = stored_entries(store).await?;
    let last_agreed = entries
        .iter()
        .rev()
        .find(|e| matches!(e.event, AuditEvent::ScalingAgreed { .. }))
        .map(|e| e.seq);
    let lineage = match Lineage::from_entries(&entries).model(version) {
        Ok(lineage) => lineage,
        // The initial model of a federation with no round yet.
        Err(LineageError::UnknownModel(_)) => return Ok(()),
        Err(other) => {
            return Err(ModelExportError::Unreadable {
                version: version.to_owned(),
                reason: other.to_string(),
            });
        }
    };
    match (lineage.scaling, last_agreed) {
        (Some(step), Some(last)) if step.seq != last => {
            Err(ModelExportError::EarlierScaling(version.to_owned()))
        }
        _ => Ok(()),
    }
}
