//! One round of local training: mini-batch SGD on the node's rows.

use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Int, Tensor};
use cohort_proto::model::ParameterLayout;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::batch::{batch, check_fits};
use super::proximal::Proximal;
use super::{LocalTrainingConfig, TrainingError};
use crate::data::Dataset;
use crate::model::{DenseNetwork, ModelError, cpu_device, read_values};

/// The result of one round of local training.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOutcome {
    /// The trained parameters, in the wire layout.
    pub parameters: Vec<f32>,
    /// Training rows (not rows × epochs): the node's weight in federated averaging.
    pub num_examples: u64,
    /// Mean cross-entropy per row over the last epoch, measured as it trained.
    pub mean_loss: f64,
}

/// Trains the model of `layout`, starting from `initial_parameters`, on `train`
/// with mini-batch SGD and cross-entropy loss (plus FedProx's proximal term when
/// `config.proximal_mu` > 0; the change clipped to `config.max_update_norm`
/// when set).
///
/// Rows are reshuffled every epoch from `config.seed`, so the same inputs always
/// give the same parameters. Fails on an invalid config, parameters that do not
/// fit `layout`, data that does not fit the model, or a loss that stops being finite.
pub fn train_local(
    layout: &ParameterLayout,
    initial_parameters: &[f32],
    train: &Dataset,
    config: &LocalTrainingConfig,
) -> Result<TrainOutcome, TrainingError> {
    config.validate()?;
    let device = cpu_device().autodiff();
    let mut model = DenseNetwork::from_parameters(layout, initial_parameters, &device)?;
    check_fits(layout, train, "train")?;

    let loss_function = CrossEntropyLossConfig::new().init(&device);
    let mut optimizer = SgdConfig::new().init();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut mean_loss = f64::NAN;
    let proximal = Proximal::anchored_at(&model, config.proximal_mu);

    for epoch in 1..=config.epochs {
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        for rows in order.chunks(config.batch_size) {
            let (features, labels) = batch(train, rows, &device);
            let loss = objective(&model, &loss_function, features, labels);
            // The reported loss is the data's; the proximal term only steers.
            loss_sum += batch_loss(&loss)? * rows.len() as f64;
            let loss = match &proximal {
                Some(proximal) => loss + proximal.term(&model),
                None => loss,
            };
            // DP-SGD will replace this mean-gradient step with per-example
            // clipped, noised gradients.
            let gradients = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(config.learning_rate, model, gradients);
        }
        mean_loss = loss_sum / train.len() as f64;
        if !mean_loss.is_finite() {
            return Err(TrainingError::Diverged {
                epoch,
                loss: mean_loss,
            });
        }
    }

    let mut parameters = model.to_parameters()?;
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

/// Norm bounding (Sun et al., 2019, "Can You Really Backdoor Federated
/// Learning?"): clips the change `parameters − start` to L2 norm `bound`, so
/// the upload's influence on the aggregate is bounded even when the
/// coordinator cannot see it (secure aggregation).
fn bound_change(parameters: &mut [f32], start: &[f32], bound: f64) -> Result<(), TrainingError> {
    let mut change: Vec<f32> = parameters.iter().zip(start).map(|(p, s)| p - s).collect();
    cohort_privacy::clip_l2(&mut change, bound).map_err(|e| TrainingError::Config {
        field: "max_update_norm",
        problem: e.to_string(),
    })?;
    for ((p, s), c) in parameters.iter_mut().zip(start).zip(change) {
        *p = s + c;
    }
    Ok(())
}

/// What SGD minimizes on one batch: the mean cross-entropy of its rows (FedProx
/// adds its proximal term to it, see [`Proximal`]).
fn objective(
    model: &DenseNetwork,
    loss_function: &CrossEntropyLoss,
    features: Tensor<2>,
    labels: Tensor<1, Int>,
) -> Tensor<1> {
    loss_function.forward(model.forward(features), labels)
}

fn batch_loss(loss: &Tensor<1>) -> Result<f64, TrainingError> {
    let values = read_values(loss.clone(), "loss")?;
    Ok(values.first().map_or(f64::NAN, |&v| f64::from(v)))
}
