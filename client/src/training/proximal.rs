//! FedProx's proximal term (Li, Sahu, Zaheer, Sanjabi, Talwalkar & Smith,
//! MLSys 2020, "Federated Optimization in Heterogeneous Networks").
//!
//! A node minimizes h(w) = F(w) + μ/2·‖w − w_g‖², w_g being the global model
//! the round started from. The term's gradient μ·(w − w_g) pulls every SGD step
//! back towards w_g, which bounds how far a node with skewed data drifts in its
//! local epochs. The anchor w_g is held as constant tensors (detached, so no
//! gradient flows into it).

use burn::tensor::Tensor;

use crate::model::DenseNetwork;

#[derive(Debug)]
pub(super) struct Proximal {
    mu: f64,
    /// w_g, layer by layer: weight and bias.
    anchor: Vec<(Tensor<2>, Option<Tensor<1>>)>,
}

impl Proximal {
    /// The term anchored at `start`'s current parameters; `None` for μ = 0.
    pub fn anchored_at(start: &DenseNetwork, mu: f64) -> Option<Self> {
        (mu > 0.0).then(|| Self {
            mu,
            anchor: start
                .tensors()
                .into_iter()
                .map(|(weight, bias)| (weight.detach(), bias.map(Tensor::detach)))
                .collect(),
        })
    }

    /// μ/2·‖w − w_g‖² for the model's current parameters w, as a 1-element tensor.
    pub fn term(&self, model: &DenseNetwork) -> Tensor<1> {
        let mut squared: Option<Tensor<1>> = None;
        for ((weight, bias), (anchor_weight, anchor_bias)) in
            model.tensors().into_iter().zip(&self.anchor)
        {
            let mut layer = (weight - anchor_weight.clone()).powf_scalar(2.0).sum();
            if let (Some(bias), Some(anchor_bias)) = (bias, anchor_bias) {
                layer = layer + (bias - anchor_bias.clone()).powf_scalar(2.0).sum();
            }
            squared = Some(match squared {
                Some(sum) => sum + layer,
                None => layer,
            });
        }
        match squared {
            Some(sum) => sum.mul_scalar(self.mu / 2.0),
            // A network has at least one layer (checked when it is built).
            None => Tensor::zeros([1], &self.device()),
        }
    }

    fn device(&self) -> burn::tensor::Device {
        match self.anchor.first() {
            Some((weight, _)) => weight.device(),
            None => crate::model::cpu_device(),
        }
    }
}

#[cfg(test)]
mod tests {
    use cohort_proto::model::{DenseShape, ParameterLayout};

    use super::*;
    use crate::model::{cpu_device, read_values};

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
