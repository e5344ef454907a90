//! The node SDK: a burn model in a federation in a few lines.
//!
//! Implement [`FederatedModel`] for a burn `Module` (its name, version and
//! forward pass from standardized rows to logits), then:
//!
//! - the federation's owner writes its first parameters with
//!   [`initial_model`] (seeded) and hands the file to
//!   `cohort-coordinator model init --from FILE`, which prints the
//!   coordinator's `[model]` section;
//! - each node calls [`join`] with its config, the model's constructor and
//!   its data.
//!
//! The library does the rest, exactly as for the built-in models: mutual
//! TLS, registration (stating the model's fingerprint, so a federation of
//! another model refuses the node), polling, fetching, the flat parameter
//! vector in burn's visiting order, FedProx, norm bounding, DP-SGD's
//! per-row clipping, secure-aggregation masking and reporting. The training
//! loop is the standard supervised one (mini-batch SGD on cross-entropy).
//!
//! A custom loop: implement [`Trainable`] (train, evaluate, per-row losses;
//! [`crate::training`]'s functions are the building blocks) and hand it to
//! [`Node::with_model`]. The round's settings (epochs, FedProx's μ, the norm
//! bound) then reach that loop in its arguments, and honouring them is its
//! author's part; fetching, masking and reporting stay Cohort's. A node under
//! record-level privacy refuses such a model unless it declares
//! [`Trainable::runs_dp_sgd`] (that is, its loop is [`crate::training::train_dp_sgd`]).
//!
//! Every float tensor burn visits is federated, in visiting order. That
//! includes running statistics (a `BatchNorm`'s), which are data-dependent
//! and never clipped: models with running state are outside DP-SGD's and
//! distributed DP's guarantees (the zoo has none).
//!
//! Seeds: burn's random state is process-wide. [`initial_model`] and
//! [`own_model`] build under one lock ([`crate::model::with_random_state`]); a model
//! built concurrently elsewhere in the process without it can change what a
//! seed draws.
//!
//! ```no_run
//! # use cohort_client::zoo::DigitsCnn;
//! # async fn run(config: cohort_client::node::NodeConfig, data: cohort_client::node::LocalData)
//! # -> Result<(), cohort_client::node::NodeError> {
//! let summary = cohort_client::sdk::join(config, DigitsCnn::new, data).await?;
//! # Ok(()) }
//! ```

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};
use cohort_proto::export::{ExportError, ModelFile};
use cohort_proto::model::DescriptorError;

use crate::data::Dataset;
use crate::model::{
    FederatedModel, ModelError, cpu_device, flatten, read_values, with_random_state,
};
use crate::node::{LocalData, Node, NodeConfig, NodeError, NodeSummary};
use crate::training::{ModuleArchitecture, Trainable, trainable};

/// Why a user's model cannot take part.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The module's parameters make no valid descriptor.
    #[error("the model's descriptor: {0}")]
    Descriptor(#[from] DescriptorError),
    /// Its parameters cannot be read.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Its parameters do not make a model file.
    #[error(transparent)]
    File(#[from] ExportError),
    /// Its forward pass does not take the node's rows or does not give one
    /// logit per class for each.
    #[error("the model's forward pass on {rows} rows of {features} features: {problem}")]
    Forward {
        /// Rows tried.
        rows: usize,
        /// Their width.
        features: usize,
        /// What went wrong.
        problem: String,
    },
}

/// The model `build` makes, ready to train on rows like `train`'s: its
/// forward pass is tried on two of them first, so that a model that does
/// not take them is refused here, named, and not in the middle of a round.
///
/// # Errors
/// [`SdkError`] for a module that makes no descriptor or whose forward pass
/// does not map the rows to at least two logits each.
pub fn own_model<M: FederatedModel + Sync>(
    build: impl FnOnce(&Device) -> M,
    train: &Dataset,
) -> Result<Arc<dyn Trainable>, SdkError> {
    let prototype = with_random_state(None, build);
    let descriptor = prototype.descriptor()?;
    let num_classes = probe(&prototype, train)?;
    let architecture = ModuleArchitecture::new(prototype, train.num_features(), num_classes);
    Ok(Arc::new(trainable::module(architecture, descriptor)))
}

/// The federation's first model: `build` on a device seeded with `seed`
/// (the same seed gives the same file, see the module docs on seeds), as
/// the coordinator's `[model] initial_parameters` reads it.
///
/// # Errors
/// [`SdkError`] for a module that makes no descriptor or no finite
/// parameters.
pub fn initial_model<M: FederatedModel>(
    build: impl FnOnce(&Device) -> M,
    seed: u64,
) -> Result<ModelFile, SdkError> {
    let model = with_random_state(Some(seed), build);
    Ok(ModelFile::new(model.descriptor()?, flatten(&model)?)?)
}

/// Joins the federation of `config` with the model `build` makes, on
/// `data`, and takes part until it finishes.
///
/// # Errors
/// [`NodeError::Incompatible`] for a model that does not fit the data (see
/// [`own_model`]), and every error a [`Node`] stops with.
pub async fn join<M: FederatedModel + Sync>(
    config: NodeConfig,
    build: impl FnOnce(&Device) -> M,
    data: LocalData,
) -> Result<NodeSummary, NodeError> {
    let model =
        own_model(build, &data.train).map_err(|e| NodeError::Incompatible(e.to_string()))?;
    Node::new(config, data)?.with_model(model).run().await
}

/// Runs the forward pass on the first rows of `train` and returns the
/// number of classes it predicts.
fn probe<M: FederatedModel>(model: &M, train: &Dataset) -> Result<usize, SdkError> {
    let features = train.num_features();
    let rows = train.len().min(2);
    let failed = |problem: String| SdkError::Forward {
        rows,
        features,
        problem,
    };
    if rows == 0 {
        return Err(failed("the node has no training rows".into()));
    }
    let input = TensorData::new(
        train.features()[..rows * features].to_vec(),
        [rows, features],
    );
    let device = cpu_device();
    // A shape the model cannot take panics inside burn: caught here, once,
    // with the shapes named.
    let output = catch_unwind(AssertUnwindSafe(|| {
        model.forward(Tensor::from_data(input, &device))
    }))
    .map_err(|panic| {
        let reason = (panic.downcast_ref::<String>().cloned())
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "it panicked".into());
        failed(reason)
    })?;
    let [out_rows, classes] = output.shape().dims();
    if out_rows != rows || classes < 2 {
        return Err(failed(format!(
            "it gave [{out_rows}, {classes}], not [{rows}, classes ≥ 2]"
        )));
    }
    read_values(output, "logits")?;
    Ok(classes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoo::DigitsCnn;

    fn rows(features: usize) -> Dataset {
        Dataset::new(features, vec![0.5; 3 * features], vec![0, 1, 2]).unwrap()
    }

    #[test]
    fn a_model_that_takes_the_rows_is_ready_and_names_its_classes() {
        let model = own_model(DigitsCnn::new, &rows(64)).unwrap();
        assert_eq!(model.num_classes(), 10);
        assert_eq!(model.descriptor().name, DigitsCnn::NAME);
    }

    #[test]
    fn a_model_that_does_not_take_the_rows_is_refused_with_their_shape() {
        let refused = own_model(DigitsCnn::new, &rows(30)).unwrap_err();
        assert!(
            matches!(
                refused,
                SdkError::Forward {
                    rows: 2,
                    features: 30,
                    ..
                }
            ),
            "{refused}"
        );
    }

    #[test]
    fn the_first_model_is_the_same_for_the_same_seed() {
        let a = initial_model(DigitsCnn::new, 9).unwrap();
        assert_eq!(a, initial_model(DigitsCnn::new, 9).unwrap());
        assert_ne!(
            a.model_version(),
            initial_model(DigitsCnn::new, 10).unwrap().model_version()
        );
    }
}
