//! The initial global model: Glorot-uniform weights (Glorot & Bengio, AISTATS
//! 2010) from a seed, zero biases, in the wire layout of [`cohort_proto::params`].

use cohort_proto::params::ParameterLayout;
use ndarray::Array1;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn initial_parameters(layout: &ParameterLayout, seed: u64) -> Array1<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut params = Vec::with_capacity(layout.num_parameters());
    for layer in &layout.layers {
        let limit = (6.0 / (layer.inputs + layer.outputs) as f64).sqrt() as f32;
        params.extend((0..layer.inputs * layer.outputs).map(|_| rng.random_range(-limit..limit)));
        params.extend(std::iter::repeat_n(0.0, layer.outputs));
    }
    Array1::from(params)
}
