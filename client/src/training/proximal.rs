//! FedProx's proximal term (Li, Sahu, Zaheer, Sanjabi, Talwalkar & Smith,
//! MLSys 2020, "Federated Optimization in Heterogeneous Networks").
//!
//! A node minimizes h(w) = F(w) + μ/2·‖w − w_g‖², w_g being the global model
//! the round started from. The term's gradient μ·(w − w_g) pulls every SGD step
//! back towards w_g, which bounds how far a node with skewed data drifts in its
//! local epochs. The anchor w_g is held as constant tensors (detached, so no
//! gradient flows into it).

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

#[derive(Debug)]
pub(super) struct Proximal {
    mu: f64,
    /// w_g: each float parameter, flattened, in visiting order.
    anchor: Vec<Tensor<1>>,
}

impl Proximal {
    /// The term anchored at `start`'s current parameters; `None` for μ = 0.
    pub fn anchored_at<M: Module>(start: &M, mu: f64) -> Option<Self> {
        (mu > 0.0).then(|| Self {
            mu,
            anchor: flat_tensors(start)
                .into_iter()
                .map(Tensor::detach)
                .collect(),
        })
    }

    /// μ/2·‖w − w_g‖² for the model's current parameters w, as a 1-element tensor.
    pub fn term<M: Module>(&self, model: &M) -> Tensor<1> {
        let squared = flat_tensors(model)
            .into_iter()
            .zip(&self.anchor)
            .map(|(w, anchor)| (w - anchor.clone()).powf_scalar(2.0).sum())
            .reduce(|sum, tensor| sum + tensor);
        match squared {
            Some(sum) => sum.mul_scalar(self.mu / 2.0),
            None => Tensor::zeros([1], &crate::model::cpu_device()),
        }
    }
}

/// Each float parameter of `model` as a 1-D tensor (still attached to the
/// graph, so the term's gradient flows into the parameters).
fn flat_tensors<M: Module>(model: &M) -> Vec<Tensor<1>> {
    struct Collect(Vec<Tensor<1>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.val().flatten::<1>(0, D - 1));
        }
    }
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    collect.0
}

#[cfg(test)]
mod tests {
    use cohort_proto::model::{DenseShape, ParameterLayout};

    use super::*;
    use crate::model::{DenseNetwork, cpu_device, read_values};

    #[test]
    fn the_term_is_half_mu_times_the_squared_distance() {
        // One layer 2 → 1: weights (w1, w2), bias b.
        let layout = ParameterLayout {
            layers: vec![DenseShape {
                inputs: 2,
                outputs: 1,
            }],
        };
        let device = cpu_device();
        let start = DenseNetwork::from_parameters(&layout, &[1.0, 2.0, 0.5], &device).unwrap();
        let moved = DenseNetwork::from_parameters(&layout, &[2.0, 0.0, 1.5], &device).unwrap();
        let proximal = Proximal::anchored_at(&start, 0.1).unwrap();
        // ‖(1, −2, 1)‖² = 6; 0.1/2 · 6 = 0.3
        let at_moved = read_values(proximal.term(&moved), "term").unwrap();
        assert!((at_moved[0] - 0.3).abs() < 1e-6, "{at_moved:?}");
        let at_start = read_values(proximal.term(&start), "term").unwrap();
        assert_eq!(at_start, vec![0.0]);
        assert!(Proximal::anchored_at(&start, 0.0).is_none());
    }
}
