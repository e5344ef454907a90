//! A federation's initial model, the same on every machine that draws it.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::ParameterLayout;

/// Parameters for `layout` drawn from `seed`: every weight and bias of a layer
/// uniform in `(−k, k)` with `k = 1/√inputs`, as burn initializes a `Linear`.
///
/// Random, not zero, so that the hidden units of an MLP start different. The same
/// layout and seed always give the same vector, in the wire layout.
pub fn initial_parameters(layout: &ParameterLayout, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut parameters = Vec::with_capacity(layout.num_parameters());
    for layer in &layout.layers {
        let bound = 1.0 / (layer.inputs.max(1) as f32).sqrt();
        parameters.extend((0..layer.num_parameters()).map(|_| rng.random_range(-bound..bound)));
    }
    parameters
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DenseShape;

    #[test]
    fn parameters_fill_the_layout_within_bounds_reproducibly() {
        let layout = ParameterLayout {
            layers: vec![
                DenseShape {
                    inputs: 64,
                    outputs: 32,
                },
                DenseShape {
                    inputs: 32,
                    outputs: 10,
                },
            ],
        };
        let parameters = initial_parameters(&layout, 3);
        assert_eq!(parameters.len(), layout.num_parameters());
        let (first, second) = parameters.split_at(64 * 32 + 32);
        assert!(first.iter().all(|w| w.abs() < 1.0 / 8.0));
        assert!(second.iter().all(|w| w.abs() < 1.0 / 32f32.sqrt()));
        assert_eq!(parameters, initial_parameters(&layout, 3));
        assert_ne!(parameters, initial_parameters(&layout, 4));
    }
}
