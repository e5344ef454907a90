//! One round of local training: the one SGD loop, with plain mini-batch
//! steps or DP-SGD steps (`super::dp_sgd`), then norm bounding.

use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Int, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::batch::batch;
use super::proximal::Proximal;
use super::{Architecture, LocalTrainingConfig, TrainingError};
use crate::data::Dataset;
use crate::model::{FederatedModel, ModelError, cpu_device, flatten, read_values};

/// The result of one round of local training.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOutcome {
    /// The trained parameters, in the wire layout.
    pub parameters: Vec<f32>,
    /// Training rows (not rows × epochs): the node's weight in federated averaging.
    pub num_examples: u64,
    /// Mean cross-entropy per row over the last epoch, measured as it trained
    /// (a record-private node reports a noisy release instead).
    pub mean_loss: f64,
}

/// Trains the model of `architecture` (a dense [`cohort_proto::model::ParameterLayout`]
/// or any burn module, [`super::ModuleArchitecture`]), starting from
/// `initial_parameters`, on `train` with mini-batch SGD and cross-entropy loss (plus FedProx's proximal term when
/// `config.proximal_mu` > 0; the change clipped to `config.max_update_norm`
/// when set).
///
/// Rows are reshuffled every epoch from `config.seed`, so the same inputs always
/// give the same parameters. Fails on an invalid config, parameters that do not
/// fit the model, data that does not fit it, or a loss that stops being finite.
pub fn train_local<A: Architecture>(
    architecture: &A,
    initial_parameters: &[f32],
    train: &Dataset,
    config: &LocalTrainingConfig,
) -> Result<TrainOutcome, TrainingError> {
    let mut step = MeanGradient {
        shuffle: ChaCha8Rng::seed_from_u64(config.seed),
        order: (0..train.len()).collect(),
        optimizer: SgdConfig::new().init(),
    };
    train_with(architecture, initial_parameters, train, config, &mut step)
}

/// How one SGD step turns a batch of rows into a new model: the mean
/// gradient ([`MeanGradient`]) or DP-SGD's clipped, noised one
/// (`super::dp_sgd::DpSgdStep`).
pub(super) trait Step<A: Architecture> {
    /// The batches of one epoch over `rows` rows.
    fn epoch(&mut self, rows: usize, batch_size: usize) -> Vec<Vec<usize>>;

    /// One step on the batch `rows`; adds the rows' data loss to `loss`.
    fn apply(
        &mut self,
        model: A::Model,
        rows: &[usize],
        run: &Run<'_, A>,
        loss: &mut EpochLoss,
    ) -> Result<A::Model, TrainingError>;
}

/// What every step of a run shares.
pub(super) struct Run<'a, A> {
    pub architecture: &'a A,
    pub train: &'a Dataset,
    /// w_g: the parameters the round started from.
    pub start: &'a [f32],
    pub config: &'a LocalTrainingConfig,
    pub device: Device,
    pub loss_function: CrossEntropyLoss,
    pub proximal: Option<Proximal>,
}

/// The data loss summed over the rows an epoch's steps saw.
#[derive(Debug, Default)]
pub(super) struct EpochLoss {
    sum: f64,
    rows: usize,
}

impl EpochLoss {
    /// Adds `rows` rows whose losses sum to `sum`.
    pub fn add(&mut self, sum: f64, rows: usize) {
        self.sum += sum;
        self.rows += rows;
    }
}

/// The one training loop: `config.epochs` epochs of `step`, then norm bounding.
pub(super) fn train_with<A: Architecture>(
    architecture: &A,
    initial_parameters: &[f32],
    train: &Dataset,
    config: &LocalTrainingConfig,
    step: &mut impl Step<A>,
) -> Result<TrainOutcome, TrainingError> {
    config.validate()?;
    let device = cpu_device().autodiff();
    let mut model = architecture.build(initial_parameters, &device)?;
    architecture.check_fits(train, "train")?;
    let run = Run {
        architecture,
        train,
        start: initial_parameters,
        config,
        loss_function: CrossEntropyLossConfig::new().init(&device),
        proximal: Proximal::anchored_at(&model, config.proximal_mu),
        device,
    };
    let mut mean_loss = f64::NAN;
    for epoch in 1..=config.epochs {
        let mut loss = EpochLoss::default();
        for rows in step.epoch(train.len(), config.batch_size) {
            model = step.apply(model, &rows, &run, &mut loss)?;
        }
        mean_loss = loss.sum / loss.rows as f64;
        // An epoch whose Poisson samples were all empty saw no loss.
        if loss.rows > 0 && !mean_loss.is_finite() {
            return Err(TrainingError::Diverged {
                epoch,
                loss: mean_loss,
            });
        }
    }

    let mut parameters = flatten(&model)?;
    if let Some(index) = parameters.iter().position(|p| !p.is_finite()) {
        return Err(ModelError::NotFinite { index }.into());
    }
    if let Some(bound) = config.max_update_norm {
        bound_change(&mut parameters, initial_parameters, bound)?;
    }
    Ok(TrainOutcome {
        parameters,
        num_examples: train.len() as u64,
        mean_loss,
    })
}

/// Plain mini-batch SGD: rows shuffled by a seeded generator, the batch's
/// mean gradient (with FedProx's term when set), burn's SGD step.
struct MeanGradient {
    shuffle: ChaCha8Rng,
    /// The row order, reshuffled in place each epoch (so each epoch's order
    /// depends on the last: changing that would change every trained model).
    order: Vec<usize>,
    optimizer: ModuleOptimizer,
}

impl<A: Architecture> Step<A> for MeanGradient {
    fn epoch(&mut self, _rows: usize, batch_size: usize) -> Vec<Vec<usize>> {
        self.order.shuffle(&mut self.shuffle);
        self.order
            .chunks(batch_size)
            .map(<[usize]>::to_vec)
            .collect()
    }

    fn apply(
        &mut self,
        model: A::Model,
        rows: &[usize],
        run: &Run<'_, A>,
        epoch_loss: &mut EpochLoss,
    ) -> Result<A::Model, TrainingError> {
        let (features, labels) = batch(run.train, rows, &run.device);
        let loss = objective(&model, &run.loss_function, features, labels);
        // The reported loss is the data's; the proximal term only steers.
        epoch_loss.add(batch_loss(&loss)? * rows.len() as f64, rows.len());
        let loss = match &run.proximal {
            Some(proximal) => loss + proximal.term(&model),
            None => loss,
        };
        let gradients = GradientsParams::from_grads(loss.backward(), &model);
        Ok(self
            .optimizer
            .step(run.config.learning_rate, model, gradients))
    }
}

/// Norm bounding (Sun et al., 2019, "Can You Really Backdoor Federated
/// Learning?"): clips the change `parameters − start` to L2 norm `bound`, so
/// the upload's influence on the aggregate is bounded even when the
/// coordinator cannot see it (secure aggregation).
fn bound_change(parameters: &mut [f32], start: &[f32], bound: f64) -> Result<(), TrainingError> {
    // The bound must hold for the change as it is read back, (start + c) − start
    // in f32, which rounding can make longer than the clipped c: clip what is
    // read back until it holds, and send no change at all if it never does.
    for _ in 0..8 {
        let mut change: Vec<f32> = parameters.iter().zip(start).map(|(p, s)| p - s).collect();
        let clipped =
            cohort_privacy::clip_l2(&mut change, bound).map_err(|e| TrainingError::Config {
                field: "max_update_norm",
                problem: e.to_string(),
            })?;
        if clipped.scale >= 1.0 {
            return Ok(());
        }
        for ((p, s), c) in parameters.iter_mut().zip(start).zip(change) {
            *p = s + c;
        }
    }
    for (p, s) in parameters.iter_mut().zip(start) {
        *p = *s;
    }
    Ok(())
}

/// What SGD minimizes on one batch: the mean cross-entropy of its rows (FedProx
/// adds its proximal term to it, see [`Proximal`]).
fn objective<M: FederatedModel>(
    model: &M,
    loss_function: &CrossEntropyLoss,
    features: Tensor<2>,
    labels: Tensor<1, Int>,
) -> Tensor<1> {
    loss_function.forward(model.forward(features), labels)
}

/// The value of a one-element loss tensor.
pub(super) fn batch_loss(loss: &Tensor<1>) -> Result<f64, TrainingError> {
    let values = read_values(loss.clone(), "loss")?;
    Ok(values.first().map_or(f64::NAN, |&v| f64::from(v)))
}
