//! [`DigitsCnn`]: two 3×3 convolutions and a max-pool over the 8×8 digits,
//! then a linear head: 3,818 parameters, fewer than the digits MLP's 4,810
//! (64 → 64 → 10).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::model::FederatedModel;

/// Side of the square image a row of 64 features is read as.
const SIDE: usize = 8;
/// Channels after the first and the second convolution.
const CHANNELS: [usize; 2] = [8, 16];
/// Classes: the ten digits.
const CLASSES: usize = 10;

/// A convolutional classifier of 8×8 digits: rows of 64 standardized pixel
/// values, read row-major as one-channel images.
#[derive(Module, Debug)]
pub struct DigitsCnn {
    conv1: Conv2d,
    conv2: Conv2d,
    pool: MaxPool2d,
    head: Linear,
}

impl DigitsCnn {
    /// Features per row (8×8 pixels).
    pub const NUM_FEATURES: usize = SIDE * SIDE;
    /// Classes.
    pub const NUM_CLASSES: usize = CLASSES;

    /// A freshly initialized model on `device` (burn's default initializers,
    /// from the device's random state).
    pub fn new(device: &Device) -> Self {
        let pooled = CHANNELS[1] * (SIDE / 2) * (SIDE / 2);
        Self {
            conv1: Conv2dConfig::new([1, CHANNELS[0]], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device),
            conv2: Conv2dConfig::new([CHANNELS[0], CHANNELS[1]], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            head: LinearConfig::new(pooled, CLASSES).init(device),
        }
    }
}

impl FederatedModel for DigitsCnn {
    const NAME: &'static str = "cohort.zoo.digits-cnn";
    const VERSION: &'static str = "1";

    fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        let [batch, _] = features.dims();
        let images = features.reshape([batch, 1, SIDE, SIDE]);
        let x = relu(self.conv1.forward(images));
        let x = self.pool.forward(relu(self.conv2.forward(x)));
        let pooled = CHANNELS[1] * (SIDE / 2) * (SIDE / 2);
        self.head.forward(x.reshape([batch, pooled]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{describe, with_random_state};

    #[test]
    fn the_model_is_described_by_its_layers() {
        let model = with_random_state(None, DigitsCnn::new);
        let descriptor = describe(&model, DigitsCnn::NAME, DigitsCnn::VERSION).unwrap();
        let names: Vec<&str> = descriptor.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "conv1.weight",
                "conv1.bias",
                "conv2.weight",
                "conv2.bias",
                "head.weight",
                "head.bias"
            ]
        );
        assert_eq!(descriptor.num_parameters(), 3818);
    }
}
