//! [`FraudConv1d`]: two 1-D convolutions along an account's last
//! transactions and a max over time, then a linear head. Max-pooling over
//! time makes it look for a pattern wherever in the sequence it occurs
//! (a burst of quick, large, foreign payments at new merchants), which a
//! dense layer over the flattened rows would have to learn once per position.

use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig1d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::model::FederatedModel;

/// Transactions per row.
const STEPS: usize = 10;
/// Features per transaction: log amount, log(1 + hours since the last),
/// foreign, new merchant.
const FEATURES: usize = 4;
/// Channels of both convolutions.
const CHANNELS: usize = 16;

/// A sequence classifier of transaction histories: rows of 10 transactions
/// × 4 features (step-major), labelled 0 (legitimate) or 1 (fraud).
#[derive(Module, Debug)]
pub struct FraudConv1d {
    conv1: Conv1d,
    conv2: Conv1d,
    head: Linear,
}

impl FraudConv1d {
    /// Features per row (10 transactions × 4).
    pub const NUM_FEATURES: usize = STEPS * FEATURES;

    /// A freshly initialized model on `device`.
    pub fn new(device: &Device) -> Self {
        Self {
            conv1: Conv1dConfig::new(FEATURES, CHANNELS, 3)
                .with_padding(PaddingConfig1d::Same)
                .init(device),
            conv2: Conv1dConfig::new(CHANNELS, CHANNELS, 3)
                .with_padding(PaddingConfig1d::Same)
                .init(device),
            head: LinearConfig::new(CHANNELS, 2).init(device),
        }
    }
}

impl FederatedModel for FraudConv1d {
    const NAME: &'static str = "cohort.zoo.fraud-conv1d";
    const VERSION: &'static str = "1";

    fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        let [batch, _] = features.dims();
        // [batch, steps, features] → channels first, time last.
        let sequence = features.reshape([batch, STEPS, FEATURES]).swap_dims(1, 2);
        let x = relu(self.conv1.forward(sequence));
        let x = relu(self.conv2.forward(x));
        let pooled = x.max_dim(2).reshape([batch, CHANNELS]);
        self.head.forward(pooled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::with_random_state;

    #[test]
    fn the_model_is_described_by_its_layers() {
        let model = with_random_state(None, FraudConv1d::new);
        let descriptor = model.descriptor().unwrap();
        assert_eq!(descriptor.tensors[0].name, "conv1.weight");
        assert_eq!(descriptor.tensors[0].shape, [CHANNELS, FEATURES, 3]);
        assert_eq!(descriptor.num_parameters(), 208 + 784 + 34);
    }
}
