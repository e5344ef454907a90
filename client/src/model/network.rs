//! [`DenseNetwork`]: dense layers with ReLU between them, as burn module.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use cohort_proto::model::{
    DENSE_MODEL, DENSE_MODEL_VERSION, DenseShape, DescriptorError, ModelDescriptor, ParameterLayout,
};

use super::{FederatedModel, ModelError, check_parameters};

/// Dense layers with ReLU between them; one layer is multinomial logistic
/// regression. The output is logits, one per class.
///
/// burn's `Linear` stores its weight as `[inputs, outputs]` and computes
/// `x · W + b`, which is exactly the wire layout's row-major weight: parameters
/// move between the flat vector and the module without transposing.
#[derive(Module, Debug)]
pub struct DenseNetwork {
    layers: Vec<Linear>,
}

impl DenseNetwork {
    /// The network of `layout` with the flat `parameters` (wire layout), on `device`.
    ///
    /// Refuses a layout that is empty, has a zero width or whose layers do not
    /// chain, a parameter vector of the wrong length, and NaN or infinite values.
    pub fn from_parameters(
        layout: &ParameterLayout,
        parameters: &[f32],
        device: &Device,
    ) -> Result<Self, ModelError> {
        check_layout(layout)?;
        check_parameters(parameters, layout.num_parameters())?;

        let mut rest = parameters;
        let mut layers = Vec::with_capacity(layout.layers.len());
        for shape in &layout.layers {
            let (weight, tail) = rest.split_at(shape.inputs * shape.outputs);
            let (bias, tail) = tail.split_at(shape.outputs);
            rest = tail;
            layers.push(Linear {
                weight: Param::from_data(
                    TensorData::new(weight.to_vec(), [shape.inputs, shape.outputs]),
                    device,
                ),
                bias: Some(Param::from_data(
                    TensorData::new(bias.to_vec(), [shape.outputs]),
                    device,
                )),
            });
        }
        Ok(Self { layers })
    }

    /// The layout of this network's parameters.
    pub fn layout(&self) -> ParameterLayout {
        let layers = self
            .layers
            .iter()
            .map(|layer| {
                let [inputs, outputs] = layer.weight.shape().dims();
                DenseShape { inputs, outputs }
            })
            .collect();
        ParameterLayout { layers }
    }

    /// Logits `[batch, classes]` for features `[batch, inputs]`.
    pub fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len().saturating_sub(1);
        let mut x = features;
        for (index, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if index < last {
                x = relu(x);
            }
        }
        x
    }
}

/// The built-in dense model: its descriptor is the wire layout's
/// (`dense.{i}.weight`, `dense.{i}.bias`), which visits in the same order.
impl FederatedModel for DenseNetwork {
    const NAME: &'static str = DENSE_MODEL;
    const VERSION: &'static str = DENSE_MODEL_VERSION;

    fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        DenseNetwork::forward(self, features)
    }

    fn descriptor(&self) -> Result<ModelDescriptor, DescriptorError> {
        Ok(self.layout().descriptor())
    }
}

fn check_layout(layout: &ParameterLayout) -> Result<(), ModelError> {
    if layout.layers.is_empty() {
        return Err(ModelError::EmptyLayout);
    }
    let mut previous_outputs = None;
    for (layer, shape) in layout.layers.iter().enumerate() {
        if shape.inputs == 0 || shape.outputs == 0 {
            return Err(ModelError::ZeroWidth {
                layer,
                inputs: shape.inputs,
                outputs: shape.outputs,
            });
        }
        if let Some(previous_outputs) = previous_outputs
            && previous_outputs != shape.inputs
        {
            return Err(ModelError::Disconnected {
                layer,
                inputs: shape.inputs,
                previous_outputs,
            });
        }
        previous_outputs = Some(shape.outputs);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use cohort_proto::model::SavedSpec;

    use super::*;
    use crate::model::{cpu_device, initial_parameters, read_values};

    fn layout_of(
        kind: &str,
        num_features: u32,
        hidden: &[u32],
        num_classes: u32,
    ) -> ParameterLayout {
        ParameterLayout::of(&SavedSpec {
            kind: kind.into(),
            num_features,
            num_classes,
            hidden_layers: hidden.to_vec(),
        })
        .unwrap()
    }

    fn layouts() -> [ParameterLayout; 3] {
        [
            layout_of("logistic_regression", 30, &[], 2),
            layout_of("mlp", 30, &[16], 2),
            layout_of("mlp", 64, &[32], 10),
        ]
    }

    #[test]
    fn parameters_round_trip_through_the_network() {
        let device = cpu_device();
        for (seed, layout) in layouts().iter().enumerate() {
            let parameters = initial_parameters(layout, seed as u64);
            let network = DenseNetwork::from_parameters(layout, &parameters, &device).unwrap();
            assert_eq!(crate::model::flatten(&network).unwrap(), parameters);
        }
    }

    #[test]
    fn the_network_has_the_layout_of_the_spec() {
        let device = cpu_device();
        for layout in layouts() {
            let parameters = vec![0.0; layout.num_parameters()];
            let network = DenseNetwork::from_parameters(&layout, &parameters, &device).unwrap();
            assert_eq!(network.layout(), layout);
            assert_eq!(network.num_params(), layout.num_parameters());
        }
        let [logistic, mlp, digits] = layouts();
        assert_eq!(logistic.num_parameters(), 30 * 2 + 2);
        assert_eq!(mlp.num_parameters(), 30 * 16 + 16 + 16 * 2 + 2);
        assert_eq!(digits.num_parameters(), 64 * 32 + 32 + 32 * 10 + 10);
    }

    #[test]
    fn the_weight_is_row_major_inputs_by_outputs() {
        // W = [[1, 2], [3, 4], [5, 6]] (3 inputs, 2 outputs), b = [0.5, -0.5].
        let layout = ParameterLayout {
            layers: vec![DenseShape {
                inputs: 3,
                outputs: 2,
            }],
        };
        let parameters = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.5, -0.5];
        let device = cpu_device();
        let network = DenseNetwork::from_parameters(&layout, &parameters, &device).unwrap();
        let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0, -1.0], [1, 3]), &device);
        let logits = read_values(network.forward(x), "logits").unwrap();
        // x · W + b = [1 − 5, 2 − 6] + b.
        assert_eq!(logits, vec![-3.5, -4.5]);
    }

    #[test]
    fn relu_sits_between_layers_only() {
        // 1 → 2 → 1: hidden = relu([x, −x]), output = h0 + h1 − 10.
        let layout = ParameterLayout {
            layers: vec![
                DenseShape {
                    inputs: 1,
                    outputs: 2,
                },
                DenseShape {
                    inputs: 2,
                    outputs: 1,
                },
            ],
        };
        let parameters = [1.0, -1.0, 0.0, 0.0, 1.0, 1.0, -10.0];
        let device = cpu_device();
        let network = DenseNetwork::from_parameters(&layout, &parameters, &device).unwrap();
        let x = Tensor::<2>::from_data(TensorData::new(vec![3.0f32, -2.0], [2, 1]), &device);
        // |x| − 10, negative at the output: no ReLU after the last layer.
        assert_eq!(
            read_values(network.forward(x), "logits").unwrap(),
            vec![-7.0, -8.0]
        );
    }

    #[test]
    fn bad_parameters_and_layouts_are_refused() {
        let device = cpu_device();
        let [logistic, ..] = layouts();
        let too_short = vec![0.0; logistic.num_parameters() - 1];
        assert!(matches!(
            DenseNetwork::from_parameters(&logistic, &too_short, &device),
            Err(ModelError::ParameterCount {
                expected: 62,
                actual: 61
            })
        ));
        let mut with_nan = vec![0.0; logistic.num_parameters()];
        with_nan[7] = f32::NAN;
        assert!(matches!(
            DenseNetwork::from_parameters(&logistic, &with_nan, &device),
            Err(ModelError::NotFinite { index: 7 })
        ));
        let empty = ParameterLayout { layers: vec![] };
        assert!(matches!(
            DenseNetwork::from_parameters(&empty, &[], &device),
            Err(ModelError::EmptyLayout)
        ));
        let disconnected = ParameterLayout {
            layers: vec![
                DenseShape {
                    inputs: 4,
                    outputs: 3,
                },
                DenseShape {
                    inputs: 2,
                    outputs: 2,
                },
            ],
        };
        let parameters = vec![0.0; disconnected.num_parameters()];
        assert!(matches!(
            DenseNetwork::from_parameters(&disconnected, &parameters, &device),
            Err(ModelError::Disconnected { layer: 1, .. })
        ));
    }
}
