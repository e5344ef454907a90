//! Data loading and a small float trainer for the HE tests and bench (plain Rust).
//! Compiled as a module of `tests/he.rs` and `benches/he.rs`; as a test target of
//! its own it holds no test.
#![cfg(feature = "he")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;

use cohort_proto::model::{DenseShape, ParameterLayout};

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data")
}

fn parse_rows(text: &str, features: usize) -> (Vec<Vec<f32>>, Vec<usize>) {
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let values: Vec<f32> = line
            .split(',')
            .map(|v| v.trim().parse::<f32>().expect("numeric CSV field"))
            .collect();
        assert_eq!(values.len(), features + 1, "row width");
        xs.push(values[..features].to_vec());
        ys.push(values[features] as usize);
    }
    (xs, ys)
}

/// 569 rows, 30 features, label 0 (malignant) / 1 (benign).
pub fn breast_cancer() -> (Vec<Vec<f32>>, Vec<usize>) {
    let text = std::fs::read_to_string(data_dir().join("breast_cancer.csv")).expect("read CSV");
    let (_, body) = text.split_once('\n').expect("header line");
    parse_rows(body, 30)
}

/// 1797 rows, 64 features (8×8 pixels, 0..16), label 0..10.
pub fn digits() -> (Vec<Vec<f32>>, Vec<usize>) {
    let file = std::fs::File::open(data_dir().join("digits.csv.gz")).expect("open digits");
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .expect("gunzip digits");
    parse_rows(&text, 64)
}

/// A tiny deterministic generator (SplitMix64).
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [−1, 1).
    pub fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// Train / test rows, standardized with the training rows' mean and deviation.
#[derive(Debug)]
pub struct Split {
    pub train_x: Vec<Vec<f32>>,
    pub train_y: Vec<usize>,
    pub test_x: Vec<Vec<f32>>,
    pub test_y: Vec<usize>,
}

pub fn split_standardize(xs: &[Vec<f32>], ys: &[usize], train_fraction: f64, seed: u64) -> Split {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    Rng::new(seed).shuffle(&mut order);
    let n_train = (xs.len() as f64 * train_fraction) as usize;
    let d = xs[0].len();
    let mut mean = vec![0f64; d];
    let mut var = vec![0f64; d];
    for &i in &order[..n_train] {
        for (m, v) in mean.iter_mut().zip(&xs[i]) {
            *m += f64::from(*v) / n_train as f64;
        }
    }
    for &i in &order[..n_train] {
        for ((s, v), m) in var.iter_mut().zip(&xs[i]).zip(&mean) {
            *s += (f64::from(*v) - m).powi(2) / n_train as f64;
        }
    }
    let scale = |x: &[f32]| -> Vec<f32> {
        x.iter()
            .zip(&mean)
            .zip(&var)
            .map(|((v, m), s)| ((f64::from(*v) - m) / s.sqrt().max(1e-6)) as f32)
            .collect()
    };
    let pick = |idx: &[usize]| -> (Vec<Vec<f32>>, Vec<usize>) {
        (
            idx.iter().map(|&i| scale(&xs[i])).collect(),
            idx.iter().map(|&i| ys[i]).collect(),
        )
    };
    let (train_x, train_y) = pick(&order[..n_train]);
    let (test_x, test_y) = pick(&order[n_train..]);
    Split {
        train_x,
        train_y,
        test_x,
        test_y,
    }
}

pub fn layout(widths: &[usize]) -> ParameterLayout {
    ParameterLayout {
        layers: widths
            .windows(2)
            .map(|w| DenseShape {
                inputs: w[0],
                outputs: w[1],
            })
            .collect(),
    }
}

/// Softmax cross-entropy, plain SGD, ReLU between layers: enough to get a
/// sensible model in well under a second.
pub fn train(
    layout: &ParameterLayout,
    xs: &[Vec<f32>],
    ys: &[usize],
    epochs: usize,
    lr: f32,
    seed: u64,
) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut params = Vec::with_capacity(layout.num_parameters());
    for l in &layout.layers {
        let bound = (2.0 / l.inputs as f32).sqrt();
        params.extend((0..l.inputs * l.outputs).map(|_| rng.unit() * bound));
        params.extend(std::iter::repeat_n(0.0, l.outputs));
    }
    let mut order: Vec<usize> = (0..xs.len()).collect();
    for epoch in 0..epochs {
        rng.shuffle(&mut order);
        let step = lr / (1.0 + epoch as f32 * 0.2);
        for &r in &order {
            // Forward, keeping every layer's output.
            let mut acts: Vec<Vec<f32>> = vec![xs[r].clone()];
            let mut offset = 0;
            for (li, l) in layout.layers.iter().enumerate() {
                let (w, b) =
                    params[offset..offset + l.num_parameters()].split_at(l.inputs * l.outputs);
                let h = &acts[li];
                let mut out = b.to_vec();
                for (i, hi) in h.iter().enumerate() {
                    for (o, v) in out.iter_mut().enumerate() {
                        *v += w[i * l.outputs + o] * hi;
                    }
                }
                if li + 1 < layout.layers.len() {
                    out.iter_mut().for_each(|v| *v = v.max(0.0));
                }
                acts.push(out);
                offset += l.num_parameters();
            }
            // Softmax gradient.
            let logits = acts.last().expect("output");
            let max = logits.iter().cloned().fold(f32::MIN, f32::max);
            let exp: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
            let sum: f32 = exp.iter().sum();
            let mut grad: Vec<f32> = exp.iter().map(|e| e / sum).collect();
            grad[ys[r]] -= 1.0;
            // Backward.
            for li in (0..layout.layers.len()).rev() {
                let l = layout.layers[li];
                offset -= l.num_parameters();
                let h = &acts[li];
                let mut grad_in = vec![0f32; l.inputs];
                for (i, hi) in h.iter().enumerate() {
                    for (o, g) in grad.iter().enumerate() {
                        let idx = offset + i * l.outputs + o;
                        grad_in[i] += params[idx] * g;
                        params[idx] -= step * g * hi;
                    }
                }
                for (o, g) in grad.iter().enumerate() {
                    params[offset + l.inputs * l.outputs + o] -= step * g;
                }
                if li > 0 {
                    for (gi, hi) in grad_in.iter_mut().zip(h) {
                        if *hi <= 0.0 {
                            *gi = 0.0;
                        }
                    }
                }
                grad = grad_in;
            }
        }
    }
    params
}
