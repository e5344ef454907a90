//! Any burn module as a federation's model.
//!
//! A model takes part through [`FederatedModel`]: its forward pass from
//! standardized rows to logits. Everything else is read off the module with
//! burn's [`ModuleVisitor`] and [`ModuleMapper`]: its float parameters, in
//! the order burn visits them (fields in declaration order, `Vec` items in
//! index order), are the flat parameter vector of the wire contract, each
//! row-major, and each is named by its path in the module (`conv.weight`,
//! `layers.0.bias`). So [`describe`], [`flatten`], [`load`] and
//! [`gradients`] always agree on the order, for any module.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Device, Gradients, Tensor, TensorData};
use cohort_proto::model::{DescriptorError, ModelDescriptor, TensorSpec};

use super::{ModelError, check_parameters, read_values};

/// A burn module a federation can train: a classifier from standardized
/// feature rows to one logit per class.
///
/// Its integer and boolean tensors, if any, are not federated (they are not
/// trained by gradient descent); every float parameter is.
pub trait FederatedModel: Module + 'static {
    /// The model's name, chosen by its author (e.g. `hospital.scan-cnn`).
    const NAME: &'static str;
    /// The version of its architecture and forward pass: change it when
    /// either changes, so that nodes of two versions cannot federate.
    const VERSION: &'static str;

    /// Logits `[batch, classes]` for standardized features
    /// `[batch, num_features]`.
    fn forward(&self, features: Tensor<2>) -> Tensor<2>;

    /// The model as the federation knows it: every float parameter named by
    /// its path in the module ([`describe`]).
    ///
    /// # Errors
    /// As [`describe`].
    fn descriptor(&self) -> Result<ModelDescriptor, DescriptorError> {
        describe(self, Self::NAME, Self::VERSION)
    }
}

/// The descriptor of `model`'s float parameters under its author's `name`
/// and `version`.
///
/// # Errors
/// [`DescriptorError`] if the module has no float parameter, two share a
/// path, or a label is empty.
pub fn describe<M: Module>(
    model: &M,
    name: &str,
    version: &str,
) -> Result<ModelDescriptor, DescriptorError> {
    let mut visitor = Describe::default();
    model.visit(&mut visitor);
    ModelDescriptor::new(name, version, visitor.tensors)
}

/// The module's float parameters as one flat vector, in visiting order.
///
/// # Errors
/// [`ModelError::Readback`] if a tensor cannot be read back.
pub fn flatten<M: Module>(model: &M) -> Result<Vec<f32>, ModelError> {
    let mut visitor = Flatten::default();
    model.visit(&mut visitor);
    match visitor.failed {
        Some(error) => Err(error),
        None => Ok(visitor.values),
    }
}

/// `model` with its float parameters replaced by `parameters` (visiting
/// order), on `device`.
///
/// # Errors
/// [`ModelError::ParameterCount`] for a vector of another length than the
/// module's parameters, [`ModelError::NotFinite`] for a NaN or infinite value.
pub fn load<M: Module>(model: M, parameters: &[f32], device: &Device) -> Result<M, ModelError> {
    check_parameters(parameters, model.num_params())?;
    let mut mapper = Load {
        rest: parameters,
        device,
    };
    Ok(model.map(&mut mapper))
}

/// Each float parameter's gradient in visiting order, from the `grads` of a
/// loss `model` computed (zeros where no gradient flowed).
///
/// # Errors
/// [`ModelError::Readback`] if a gradient cannot be read back.
pub fn gradients<M: Module>(model: &M, grads: &Gradients) -> Result<Vec<f32>, ModelError> {
    let mut visitor = Flatten {
        grads: Some(grads),
        ..Flatten::default()
    };
    model.visit(&mut visitor);
    match visitor.failed {
        Some(error) => Err(error),
        None => Ok(visitor.values),
    }
}

/// Collects each float parameter's path and shape.
#[derive(Default)]
struct Describe {
    path: Vec<String>,
    tensors: Vec<TensorSpec>,
}

impl ModuleVisitor for Describe {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_owned());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let shape = param.val().shape().dims::<D>().to_vec();
        self.tensors
            .push(TensorSpec::f32(self.path.join("."), shape));
    }
}

/// Reads each float parameter (or its gradient) into one vector.
#[derive(Default)]
struct Flatten<'g> {
    grads: Option<&'g Gradients>,
    values: Vec<f32>,
    failed: Option<ModelError>,
}

impl ModuleVisitor for Flatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.failed.is_some() {
            return;
        }
        let tensor = param.val();
        let read = match self.grads {
            None => read_values(tensor, "parameters"),
            Some(grads) => match tensor.grad(grads) {
                Some(gradient) => read_values(gradient, "gradients"),
                None => Ok(vec![0.0; tensor.shape().num_elements()]),
            },
        };
        match read {
            Ok(values) => self.values.extend(values),
            Err(error) => self.failed = Some(error),
        }
    }
}

/// Replaces each float parameter with the next values of a checked vector.
struct Load<'a> {
    rest: &'a [f32],
    device: &'a Device,
}

impl ModuleMapper for Load<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let shape = param.val().shape();
        // `load` checked the total against `num_params`, the sum of these.
        let (values, rest) = self
            .rest
            .split_at(shape.num_elements().min(self.rest.len()));
        self.rest = rest;
        Param::from_data(TensorData::new(values.to_vec(), shape), self.device)
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::{Linear, LinearConfig};
    use cohort_proto::model::{DenseShape, ParameterLayout};

    use super::*;
    use crate::model::{DenseNetwork, cpu_device, initial_parameters, with_random_state};

    #[derive(Module, Debug)]
    struct TwoHeads {
        trunk: Linear,
        heads: Vec<Linear>,
    }

    fn two_heads(device: &Device) -> TwoHeads {
        TwoHeads {
            trunk: LinearConfig::new(3, 4).init(device),
            heads: vec![
                LinearConfig::new(4, 2).init(device),
                LinearConfig::new(4, 1).with_bias(false).init(device),
            ],
        }
    }

    #[test]
    fn parameters_are_named_by_path_in_visiting_order() {
        let model = with_random_state(None, two_heads);
        let descriptor = describe(&model, "test.heads", "1").unwrap();
        let names: Vec<(&str, &[usize])> = descriptor
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_slice()))
            .collect();
        assert_eq!(
            names,
            [
                ("trunk.weight", &[3, 4][..]),
                ("trunk.bias", &[4][..]),
                ("heads.0.weight", &[4, 2][..]),
                ("heads.0.bias", &[2][..]),
                ("heads.1.weight", &[4, 1][..]),
            ]
        );
        assert_eq!(descriptor.num_parameters(), model.num_params());
    }

    #[test]
    fn load_then_flatten_gives_the_vector_back() {
        let device = cpu_device();
        let model = with_random_state(None, two_heads);
        let values: Vec<f32> = (0..model.num_params()).map(|i| i as f32 * 0.25).collect();
        let loaded = load(model, &values, &device).unwrap();
        assert_eq!(flatten(&loaded).unwrap(), values);
        assert!(matches!(
            load(with_random_state(None, two_heads), &values[1..], &device),
            Err(ModelError::ParameterCount { .. })
        ));
        let mut poisoned = values.clone();
        poisoned[7] = f32::NAN;
        assert!(matches!(
            load(with_random_state(None, two_heads), &poisoned, &device),
            Err(ModelError::NotFinite { index: 7 })
        ));
    }

    /// The generic path reads a dense network in its wire layout, and its
    /// gradients in the same order.
    #[test]
    fn a_dense_network_flattens_to_its_wire_layout() {
        let device = cpu_device().autodiff();
        let dense = |layers: Vec<(usize, usize)>| ParameterLayout {
            layers: (layers.into_iter())
                .map(|(inputs, outputs)| DenseShape { inputs, outputs })
                .collect(),
        };
        let layout = dense(vec![(5, 3), (3, 2)]);
        let parameters = initial_parameters(&layout, 4);
        let network = DenseNetwork::from_parameters(&layout, &parameters, &device).unwrap();
        assert_eq!(flatten(&network).unwrap(), parameters);
        let shapes: Vec<Vec<usize>> = (describe(&network, "any", "1").unwrap().tensors)
            .into_iter()
            .map(|t| t.shape)
            .collect();
        let wire: Vec<Vec<usize>> = (layout.descriptor().tensors)
            .into_iter()
            .map(|t| t.shape)
            .collect();
        assert_eq!(shapes, wire);

        // One layer, two rows of 0.5: d(Σ logits)/dW = Σ rows x = 1, d/db = 2.
        let layout = dense(vec![(5, 3)]);
        let network =
            DenseNetwork::from_parameters(&layout, &initial_parameters(&layout, 4), &device)
                .unwrap();
        let features = Tensor::<2>::from_data(TensorData::new(vec![0.5f32; 10], [2, 5]), &device);
        let grads = FederatedModel::forward(&network, features).sum().backward();
        let expected: Vec<f32> = [vec![1.0; 15], vec![2.0; 3]].concat();
        assert_eq!(gradients(&network, &grads).unwrap(), expected);
    }
}
