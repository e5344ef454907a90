//! Post-training quantization of a dense network to small integers, and the exact
//! integer computation that the encrypted path reproduces.
//!
//! **The model.** A stack of dense layers in the wire layout of
//! [`cohort_proto::model`]: per layer, the weight row-major `[inputs, outputs]`
//! then the bias `[outputs]`; ReLU between layers; no hidden layer is logistic
//! regression. The float inputs are whatever the float model consumes (after the
//! node's feature scaling).
//!
//! **Quantization** (symmetric, round to nearest):
//! - input `i`: `q_i = clamp(round(x_i / s_i), ±(2^(b_in−1) − 1))`, with a per-feature
//!   scale `s_i = max |x_i|` over the calibration rows `/ (2^(b_in−1) − 1)`;
//! - layer weights: the float weight times the unit of its input (`s_i`, or the
//!   previous layer's activation unit) is divided by one per-layer scale
//!   `s_w = max |w·unit| / (2^(b_w−1) − 1)` and rounded to `b_w` signed bits; the
//!   bias is rounded to the accumulator unit `s_w`;
//! - hidden neuron `j`: with a per-neuron shift `σ_j`, its activation is
//!   `y_j = clamp((A_j + 2^(σ_j−1)) >> σ_j, 0, 2^b_act − 1)` (ReLU and rounding
//!   requantization in one step; the rounding constant is folded into the stored
//!   bias). `σ_j` is the smallest shift that maps the 99.9th percentile of the
//!   neuron's calibration accumulators to at most `2^b_act − 1` (larger values
//!   saturate), raised if needed so that every possible
//!   accumulator (worst case over all inputs in range) fits `σ_j + 8` bits, which
//!   the encrypted requantization requires;
//! - the output layer keeps its accumulators: they are the class scores, in one
//!   unit per model, and the prediction is their argmax (first index on ties).
//!
//! **Promises.** [`QuantizedModel::scores_clear`] is, bit for bit, what
//! [`super::evaluate()`] computes under encryption; no intermediate overflows (all
//! worst cases are bounded when the model is built or deserialized). A
//! [`QuantizedModel`] is plain data (serde); deserializing re-checks every bound,
//! so an inconsistent model is an error, never a panic in evaluation.

use cohort_proto::model::{DenseShape, ParameterLayout};
use serde::{Deserialize, Serialize};

use super::error::HeError;
use super::params::{INPUT_WIDTH, PARAMS};
use super::sanitize::{self, OutputPrivacy};

/// Largest accumulator width (bits, with the padding bit) allowed after the first
/// layer. The first layer is bounded by [`INPUT_WIDTH`].
pub const MAX_HIDDEN_WIDTH: u32 = 30;

/// Bit widths of the quantized model (all signed except the activations, which are
/// ReLU outputs in `0..2^activation_bits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BitsConfig {
    /// Input bits, sign included: 2..=16.
    pub input_bits: u32,
    /// Weight bits, sign included: 2..=16.
    pub weight_bits: u32,
    /// Hidden activation bits: 1..=4 (the window of one programmable bootstrap).
    pub activation_bits: u32,
}

impl Default for BitsConfig {
    /// 8-bit inputs, 7-bit weights, 4-bit activations.
    fn default() -> Self {
        Self {
            input_bits: 8,
            weight_bits: 7,
            activation_bits: 4,
        }
    }
}

impl BitsConfig {
    fn validate(&self) -> Result<(), HeError> {
        let check = |what, value, min, max| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(HeError::Bits {
                    what,
                    value,
                    min,
                    max,
                })
            }
        };
        check("input_bits", self.input_bits, 2, 16)?;
        check("weight_bits", self.weight_bits, 2, 16)?;
        check("activation_bits", self.activation_bits, 1, 4)
    }

    /// Largest quantized input magnitude.
    pub fn input_max(&self) -> i64 {
        (1i64 << (self.input_bits - 1)) - 1
    }

    /// Largest quantized weight magnitude.
    pub fn weight_max(&self) -> i64 {
        (1i64 << (self.weight_bits - 1)) - 1
    }

    /// Largest activation.
    pub fn activation_max(&self) -> i64 {
        (1i64 << self.activation_bits) - 1
    }
}

/// A quantized input vector, in the model's input range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantizedInput {
    values: Vec<i64>,
}

impl QuantizedInput {
    /// The quantized values.
    pub fn values(&self) -> &[i64] {
        &self.values
    }
}

/// How a requester quantizes a float input for a model: published by the node,
/// it reveals the input scales but no weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputQuantizer {
    /// Input bits, sign included (2..=16).
    pub input_bits: u32,
    /// Per-feature scale: `q_i = clamp(round(x_i / s_i), ±(2^(bits−1) − 1))`.
    pub scales: Vec<f32>,
}

impl InputQuantizer {
    /// Quantizes one float row; the same values as [`QuantizedModel::quantize_input`].
    pub fn quantize(&self, x: &[f32]) -> Result<QuantizedInput, HeError> {
        if !(2..=16).contains(&self.input_bits) {
            return Err(HeError::Bits {
                what: "input_bits",
                value: self.input_bits,
                min: 2,
                max: 16,
            });
        }
        if self.scales.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(invalid("an input scale is not positive and finite"));
        }
        if x.len() != self.scales.len() {
            return Err(HeError::InputCount {
                expected: self.scales.len(),
                actual: x.len(),
            });
        }
        if let Some(index) = x.iter().position(|v| !v.is_finite()) {
            return Err(HeError::NonFiniteInput { index });
        }
        let max = (1i64 << (self.input_bits - 1)) - 1;
        Ok(QuantizedInput {
            values: quantize_values(x, &self.scales, max),
        })
    }
}

/// One quantized dense layer (plain data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuantizedLayer {
    /// Inputs of the layer.
    pub inputs: usize,
    /// Outputs of the layer.
    pub outputs: usize,
    /// Row-major `[inputs, outputs]`, each within `±(2^(weight_bits−1) − 1)`.
    pub weights: Vec<i64>,
    /// Per output, in accumulator units; hidden layers include the rounding
    /// constant `2^(σ−1)` of the requantization.
    pub biases: Vec<i64>,
    /// Requantization shift σ per output for hidden layers; empty for the output
    /// layer.
    pub shifts: Vec<u32>,
}

/// The serialized form of a [`QuantizedModel`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantizedModelData {
    /// The bit widths the model was quantized with.
    pub bits: BitsConfig,
    /// Per-feature input scale `s_i` (float input ≈ `q_i · s_i`).
    pub input_scales: Vec<f32>,
    /// The dense layers, first to last.
    pub layers: Vec<QuantizedLayer>,
    /// Float value of one score unit (informational: scores ≈ logits / unit).
    pub score_unit: f32,
}

/// Derived, checked facts about one layer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LayerPlan {
    /// Accumulator encoding width K (value `v` ↦ `v · 2^(64−K)`).
    pub(crate) width: u32,
    /// Inclusive worst-case accumulator range per output (bias included).
    pub(crate) ranges: Vec<(i64, i64)>,
    /// Output layer: log2 of the bound on a score's noise (torus); −∞ otherwise.
    pub(crate) score_noise_log2: f64,
    /// Output layer: f of the TUniform(2^f) flood (`sanitize`); 0 otherwise.
    pub(crate) flood_bits: u32,
}

/// A quantized dense network; see the module documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "QuantizedModelData", into = "QuantizedModelData")]
pub struct QuantizedModel {
    data: QuantizedModelData,
    plan: Vec<LayerPlan>,
}

impl TryFrom<QuantizedModelData> for QuantizedModel {
    type Error = HeError;

    fn try_from(data: QuantizedModelData) -> Result<Self, HeError> {
        let plan = plan(&data)?;
        Ok(Self { data, plan })
    }
}

impl From<QuantizedModel> for QuantizedModelData {
    fn from(model: QuantizedModel) -> Self {
        model.data
    }
}

fn invalid(message: impl Into<String>) -> HeError {
    HeError::InvalidModel(message.into())
}

/// Smallest K ≥ 2 with `−2^(K−1) ≤ lo` and `hi < 2^(K−1)`.
pub(crate) fn signed_width(lo: i64, hi: i64) -> u32 {
    let mut k = 2;
    while k < 63 && (lo < -(1i64 << (k - 1)) || hi >= (1i64 << (k - 1))) {
        k += 1;
    }
    k
}

/// Worst-case accumulator range of every output of `layer` for inputs in
/// `[in_lo, in_hi]`. All magnitudes are bounded by the caller's checks.
pub(crate) fn ranges(layer: &QuantizedLayer, in_lo: i64, in_hi: i64) -> Vec<(i64, i64)> {
    (0..layer.outputs)
        .map(|o| {
            let mut lo = layer.biases[o];
            let mut hi = layer.biases[o];
            for i in 0..layer.inputs {
                let w = layer.weights[i * layer.outputs + o];
                let (a, b) = (w * in_lo, w * in_hi);
                lo += a.min(b);
                hi += a.max(b);
            }
            (lo, hi)
        })
        .collect()
}

/// Does `[lo, hi]` fit the requantization window of shift `s` (`σ + 8` bits)?
fn fits_shift(lo: i64, hi: i64, s: u32) -> bool {
    let half = 1i64 << (s + 7);
    lo >= -half && hi < half
}

const MAX_SHIFT: u32 = 40;

/// The requantization shift maps this quantile of a neuron's calibration
/// accumulators (not their maximum) to the largest activation: rarer, larger
/// values saturate, and the others get a finer step.
pub const CALIBRATION_QUANTILE: f64 = 0.999;
const MAX_BIAS: i64 = 1 << 44;
const MAX_WIDTH: usize = 1 << 20;

/// log2 of the standard deviation of one bootstrap's output noise, relative to the
/// torus: measured 2^-25.2 to 2^-25.5 (`he::tests`), rounded up for margin.
pub const BOOTSTRAP_NOISE_LOG2: f64 = -24.5;

/// Largest noise (log2 of the standard deviation, relative to the torus) allowed in
/// a ciphertext fed to a bootstrap: well below the half box (2^-6) and the
/// keyswitch and modulus-switch noise (about 2^-9.2) the parameters are validated for.
pub const BOOTSTRAP_INPUT_NOISE_LOG2: f64 = -10.0;

/// Refuses a layer whose encrypted evaluation could decrypt or bootstrap wrongly:
/// 8 standard deviations of the score noise must stay below half a score unit, and
/// bootstrap outputs amplified by the requantization frames must stay below
/// [`BOOTSTRAP_INPUT_NOISE_LOG2`]. Inputs of layer 0 are fresh encryptions
/// (noise about 2^-47.8), far below either bound.
///
/// Returns, for the output layer, log2 of a bound on a score's noise relative to
/// the torus (what [`super::sanitize::flood_bits`] leaves room for); for a hidden
/// layer, −∞.
fn check_noise(l: usize, layer: &QuantizedLayer, width: u32, last: bool) -> Result<f64, HeError> {
    let k = f64::from(width);
    // Each activation is a sum of 3 bootstrap outputs.
    let activation = BOOTSTRAP_NOISE_LOG2 + 0.5 * 3f64.log2();
    let fail = |log2_noise: f64, log2_allowed: f64| HeError::NoiseBudget {
        layer: l,
        log2_noise,
        log2_allowed,
    };
    if last && l == 0 {
        return Ok(fresh_score_noise_log2(layer, width));
    }
    let mut score_noise = f64::NEG_INFINITY;
    for o in 0..layer.outputs {
        let sum_sq: i64 = (0..layer.inputs)
            .map(|i| layer.weights[i * layer.outputs + o].pow(2))
            .sum();
        let acc = activation + 0.5 * (sum_sq.max(1) as f64).log2();
        if last {
            if acc + 3.0 > -(k + 1.0) {
                return Err(fail(acc + 3.0, -(k + 1.0)));
            }
            score_noise = score_noise.max(acc + 3.0);
            continue;
        }
        let s = layer.shifts[o];
        let first_frame = if l > 0 {
            acc + k - 1.0 - f64::from(s.min(4))
        } else {
            f64::NEG_INFINITY
        };
        let rounds = f64::from(s.div_ceil(4) + 1);
        let later_frames = BOOTSTRAP_NOISE_LOG2 + k - 9.0 + 0.5 * rounds.log2();
        let worst = first_frame.max(later_frames);
        if worst > BOOTSTRAP_INPUT_NOISE_LOG2 {
            return Err(fail(worst, BOOTSTRAP_INPUT_NOISE_LOG2));
        }
    }
    Ok(score_noise)
}

/// Hard bound (log2, relative to the torus) on the noise of a score computed
/// from fresh encryptions: `max_o Σ_i |w_io| · 2^(INPUT_WIDTH − K) · 2^17`, each
/// input's TUniform(2^17) noise being at most 2^17.
fn fresh_score_noise_log2(layer: &QuantizedLayer, width: u32) -> f64 {
    let max_l1 = (0..layer.outputs)
        .map(|o| {
            (0..layer.inputs)
                .map(|i| layer.weights[i * layer.outputs + o].unsigned_abs())
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0)
        .max(1);
    (max_l1 as f64).log2() + f64::from(PARAMS.glwe_noise_log2) + f64::from(INPUT_WIDTH)
        - f64::from(width)
        - 64.0
}

fn plan(data: &QuantizedModelData) -> Result<Vec<LayerPlan>, HeError> {
    data.bits.validate()?;
    check_input_scales(data)?;
    let act_max = data.bits.activation_max();
    let mut in_range = (-data.bits.input_max(), data.bits.input_max());
    let mut plans = Vec::with_capacity(data.layers.len());
    for (l, layer) in data.layers.iter().enumerate() {
        let last = l + 1 == data.layers.len();
        let previous = l.checked_sub(1).map(|p| &data.layers[p]);
        check_layer(l, layer, previous, data.bits.weight_max())?;
        let ranges = ranges(layer, in_range.0, in_range.1);
        let width = accumulator_width(l, layer, &ranges, last)?;
        let score_noise_log2 = check_noise(l, layer, width, last)?;
        let flood_bits = if last {
            sanitize::flood_bits(l, width, score_noise_log2)?
        } else {
            0
        };
        plans.push(LayerPlan {
            width,
            ranges,
            score_noise_log2,
            flood_bits,
        });
        in_range = (0, act_max);
    }
    Ok(plans)
}

/// One positive, finite scale per input of the first layer.
fn check_input_scales(data: &QuantizedModelData) -> Result<(), HeError> {
    let first = data
        .layers
        .first()
        .ok_or_else(|| invalid("the model has no layer"))?;
    if data.input_scales.len() != first.inputs {
        return Err(invalid(format!(
            "{} input scales for {} inputs",
            data.input_scales.len(),
            first.inputs
        )));
    }
    if data
        .input_scales
        .iter()
        .any(|s| !s.is_finite() || *s <= 0.0)
    {
        return Err(invalid("an input scale is not positive and finite"));
    }
    Ok(())
}

/// Layer `l`'s widths (non-zero, at most [`MAX_WIDTH`], chained to the
/// `previous` layer), parameter counts and parameter bounds.
fn check_layer(
    l: usize,
    layer: &QuantizedLayer,
    previous: Option<&QuantizedLayer>,
    wmax: i64,
) -> Result<(), HeError> {
    if layer.inputs == 0 || layer.outputs == 0 {
        return Err(invalid(format!("layer {l} has a zero width")));
    }
    if layer.inputs > MAX_WIDTH || layer.outputs > MAX_WIDTH {
        return Err(invalid(format!("layer {l} is wider than {MAX_WIDTH}")));
    }
    if let Some(previous) = previous
        && previous.outputs != layer.inputs
    {
        return Err(invalid(format!(
            "layer {l} takes {} inputs, layer {} gives {}",
            layer.inputs,
            l - 1,
            previous.outputs
        )));
    }
    if layer.weights.len() != layer.inputs * layer.outputs || layer.biases.len() != layer.outputs {
        return Err(invalid(format!(
            "layer {l} has wrong weight or bias counts"
        )));
    }
    if layer.weights.iter().any(|w| w.abs() > wmax) {
        return Err(invalid(format!("layer {l} has a weight beyond ±{wmax}")));
    }
    if layer.biases.iter().any(|b| b.abs() > MAX_BIAS) {
        return Err(invalid(format!("layer {l} has a bias beyond ±2^44")));
    }
    Ok(())
}

/// The bits layer `l`'s accumulators need (the output layer's signed scores;
/// a hidden layer's shifted activations, whose shifts must fit `ranges`),
/// refused beyond what its inputs' encoding allows.
fn accumulator_width(
    l: usize,
    layer: &QuantizedLayer,
    ranges: &[(i64, i64)],
    last: bool,
) -> Result<u32, HeError> {
    let width = if last {
        if !layer.shifts.is_empty() {
            return Err(invalid("the output layer has requantization shifts"));
        }
        let lo = ranges.iter().map(|r| r.0).min().unwrap_or(0);
        let hi = ranges.iter().map(|r| r.1).max().unwrap_or(0);
        signed_width(lo, hi)
    } else {
        if layer.shifts.len() != layer.outputs {
            return Err(invalid(format!(
                "hidden layer {l} needs one shift per output"
            )));
        }
        for (j, (&s, &(lo, hi))) in layer.shifts.iter().zip(ranges).enumerate() {
            if s > MAX_SHIFT || !fits_shift(lo, hi, s) {
                return Err(invalid(format!(
                    "layer {l} output {j}: accumulator range [{lo}, {hi}] does not fit \
                     shift {s} (needs |A| < 2^(shift+7), shift ≤ {MAX_SHIFT})"
                )));
            }
        }
        layer.shifts.iter().map(|s| s + 8).max().unwrap_or(8) + 1
    };
    let allowed = if l == 0 {
        INPUT_WIDTH
    } else {
        MAX_HIDDEN_WIDTH
    };
    if width > allowed {
        return Err(HeError::AccumulatorTooWide {
            layer: l,
            needed: width,
            allowed,
        });
    }
    Ok(width)
}

/// At least one calibration row, each as wide as the model's input and finite.
fn check_calibration<R: AsRef<[f32]>>(calibration: &[R], num_inputs: usize) -> Result<(), HeError> {
    if calibration.is_empty() {
        return Err(invalid("no calibration rows"));
    }
    for (r, row) in calibration.iter().enumerate() {
        let row = row.as_ref();
        if row.len() != num_inputs {
            return Err(invalid(format!(
                "calibration row {r} has {} values, the model takes {num_inputs}",
                row.len()
            )));
        }
        if let Some(index) = row.iter().position(|v| !v.is_finite()) {
            return Err(HeError::NonFiniteInput { index });
        }
    }
    Ok(())
}

/// Per-feature input scales: each feature's largest calibration magnitude
/// maps to the largest input integer.
fn input_scales<R: AsRef<[f32]>>(
    calibration: &[R],
    num_inputs: usize,
    bits: BitsConfig,
) -> Vec<f32> {
    let qmax_in = bits.input_max() as f64;
    (0..num_inputs)
        .map(|i| {
            let m = calibration
                .iter()
                .map(|row| f64::from(row.as_ref()[i]).abs())
                .fold(0.0, f64::max);
            if m > 0.0 { (m / qmax_in) as f32 } else { 1.0 }
        })
        .collect()
}

/// A float layer's integer weights and biases, its inputs being integers of
/// `units` (one per input), and the float value of one weight step. No shifts
/// yet; the biases are those before rounding offsets.
fn quantize_layer(
    shape: DenseShape,
    w: &[f32],
    b: &[f32],
    units: &[f64],
    wmax: i64,
) -> (QuantizedLayer, f64) {
    let (n_in, n_out) = (shape.inputs, shape.outputs);
    let eff: Vec<f64> = (0..n_in * n_out)
        .map(|k| f64::from(w[k]) * units[k / n_out])
        .collect();
    let m = eff.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let s_w = if m > 0.0 { m / wmax as f64 } else { 1.0 };
    let weights: Vec<i64> = eff
        .iter()
        .map(|v| ((v / s_w).round() as i64).clamp(-wmax, wmax))
        .collect();
    let biases: Vec<i64> = b
        .iter()
        .map(|v| ((f64::from(*v) / s_w).round() as i64).clamp(-MAX_BIAS / 2, MAX_BIAS / 2))
        .collect();
    let layer = QuantizedLayer {
        inputs: n_in,
        outputs: n_out,
        weights,
        biases,
        shifts: Vec::new(),
    };
    (layer, s_w)
}

/// A hidden layer's requantization: per output, the smallest shift that maps
/// the calibration accumulators' [`CALIBRATION_QUANTILE`] into the activation
/// range and fits its worst-case range (`base_ranges`), and its bias with the
/// rounding offset added. Returns (shifts, biases).
fn requantization(
    layer: &QuantizedLayer,
    acts: &[Vec<i64>],
    base_ranges: &[(i64, i64)],
    act_max: i64,
) -> (Vec<u32>, Vec<i64>) {
    let accs: Vec<Vec<i64>> = acts.iter().map(|x| accumulate(layer, x)).collect();
    let mut shifts = Vec::with_capacity(layer.outputs);
    let mut biases = Vec::with_capacity(layer.outputs);
    for j in 0..layer.outputs {
        let mut column: Vec<i64> = accs.iter().map(|a| a[j]).collect();
        column.sort_unstable();
        let at = ((column.len() - 1) as f64 * CALIBRATION_QUANTILE).round() as usize;
        let amax = column.get(at).copied().unwrap_or(0).max(0);
        let mut s = 0u32;
        while s < MAX_SHIFT && (amax as f64) >= (act_max as f64 + 0.5) * (1u64 << s) as f64 {
            s += 1;
        }
        loop {
            let offset = if s > 0 { 1i64 << (s - 1) } else { 0 };
            let (lo, hi) = base_ranges[j];
            if s >= MAX_SHIFT || fits_shift(lo + offset, hi + offset, s) {
                shifts.push(s);
                biases.push(layer.biases[j] + offset);
                break;
            }
            s += 1;
        }
    }
    (shifts, biases)
}

impl QuantizedModel {
    /// Quantizes a float model (see the module documentation).
    ///
    /// `calibration` rows (float model inputs) set the input scales and the
    /// requantization shifts; a few hundred representative rows suffice.
    pub fn from_float<R: AsRef<[f32]>>(
        layout: &ParameterLayout,
        params: &[f32],
        calibration: &[R],
        bits: BitsConfig,
    ) -> Result<Self, HeError> {
        bits.validate()?;
        let layers = split_layers(layout, params)?;
        let num_inputs = layout.layers[0].inputs;
        check_calibration(calibration, num_inputs)?;
        let input_scales = input_scales(calibration, num_inputs, bits);
        let mut acts: Vec<Vec<i64>> = calibration
            .iter()
            .map(|row| quantize_values(row.as_ref(), &input_scales, bits.input_max()))
            .collect();
        let mut units: Vec<f64> = input_scales.iter().map(|&s| f64::from(s)).collect();
        let act_max = bits.activation_max();
        let mut in_range = (-bits.input_max(), bits.input_max());
        let mut out_layers = Vec::with_capacity(layers.len());
        let mut score_unit = 1.0f64;
        for (l, (shape, w, b)) in layers.iter().enumerate() {
            let (mut layer, s_w) = quantize_layer(*shape, w, b, &units, bits.weight_max());
            if l + 1 == layers.len() {
                score_unit = s_w;
                out_layers.push(layer);
                break;
            }
            let base_ranges = ranges(&layer, in_range.0, in_range.1);
            (layer.shifts, layer.biases) = requantization(&layer, &acts, &base_ranges, act_max);
            acts = acts
                .iter()
                .map(|x| {
                    accumulate(&layer, x)
                        .iter()
                        .zip(&layer.shifts)
                        .map(|(a, s)| (a >> s).clamp(0, act_max))
                        .collect()
                })
                .collect();
            units = layer
                .shifts
                .iter()
                .map(|&s| s_w * (1u64 << s) as f64)
                .collect();
            in_range = (0, act_max);
            out_layers.push(layer);
        }
        Self::try_from(QuantizedModelData {
            bits,
            input_scales,
            layers: out_layers,
            score_unit: score_unit as f32,
        })
    }

    /// The plain data (what serde writes).
    pub fn data(&self) -> &QuantizedModelData {
        &self.data
    }

    /// Number of model inputs.
    pub fn num_inputs(&self) -> usize {
        self.data.input_scales.len()
    }

    /// Number of classes (scores).
    pub fn num_classes(&self) -> usize {
        self.data.layers.last().map_or(0, |l| l.outputs)
    }

    /// The bit widths the model was quantized with.
    pub fn bits(&self) -> BitsConfig {
        self.data.bits
    }

    /// Accumulator width (bits, padding included for hidden layers) of each layer:
    /// the last one is the width of the decrypted scores.
    pub fn accumulator_widths(&self) -> Vec<u32> {
        self.plan.iter().map(|p| p.width).collect()
    }

    pub(crate) fn plan(&self) -> &[LayerPlan] {
        &self.plan
    }

    /// How the outputs are sanitized before they leave the node: the flood's
    /// size and the statistical distance it achieves (see [`super::sanitize`]).
    pub fn output_privacy(&self) -> OutputPrivacy {
        // A model has at least one layer, so `plan` is never empty.
        let (score_width, score_noise_log2, flood_bits) =
            self.plan.last().map_or((0, f64::NEG_INFINITY, 0), |p| {
                (p.width, p.score_noise_log2, p.flood_bits)
            });
        OutputPrivacy {
            score_width,
            score_noise_log2,
            flood_bits,
        }
    }

    pub(crate) fn layers(&self) -> &[QuantizedLayer] {
        &self.data.layers
    }

    /// Programmable bootstraps one encrypted prediction costs: for each hidden
    /// neuron with shift σ, `2·⌈σ/4⌉ + 6`.
    pub fn bootstrap_count(&self) -> usize {
        self.data
            .layers
            .iter()
            .flat_map(|l| l.shifts.iter())
            .map(|&s| 2 * s.div_ceil(4) as usize + 6)
            .sum()
    }

    /// One line describing the bit widths.
    pub fn summary(&self) -> String {
        let bits = self.data.bits;
        let mut out = format!(
            "inputs {} bits (signed, per-feature scale), weights {} bits (signed, per-layer scale), \
             activations {} bits; accumulators",
            bits.input_bits, bits.weight_bits, bits.activation_bits
        );
        for (l, (layer, plan)) in self.data.layers.iter().zip(&self.plan).enumerate() {
            out.push_str(&format!(" L{l}:{}b", plan.width));
            if let (Some(lo), Some(hi)) = (layer.shifts.iter().min(), layer.shifts.iter().max()) {
                out.push_str(&format!(" (shift {lo}..={hi})"));
            }
        }
        out.push_str(&format!("; {} bootstraps", self.bootstrap_count()));
        out
    }

    /// Quantizes one float input row with the model's per-feature scales.
    pub fn quantize_input(&self, x: &[f32]) -> Result<QuantizedInput, HeError> {
        if x.len() != self.num_inputs() {
            return Err(HeError::InputCount {
                expected: self.num_inputs(),
                actual: x.len(),
            });
        }
        if let Some(index) = x.iter().position(|v| !v.is_finite()) {
            return Err(HeError::NonFiniteInput { index });
        }
        Ok(QuantizedInput {
            values: quantize_values(x, &self.data.input_scales, self.data.bits.input_max()),
        })
    }

    /// The public part a requester needs to quantize its inputs (bits and
    /// per-feature scales), without the weights.
    pub fn input_quantizer(&self) -> InputQuantizer {
        InputQuantizer {
            input_bits: self.data.bits.input_bits,
            scales: self.data.input_scales.clone(),
        }
    }

    /// Wraps already-quantized values, checking count and range.
    pub fn input_from_quantized(&self, values: Vec<i64>) -> Result<QuantizedInput, HeError> {
        if values.len() != self.num_inputs() {
            return Err(HeError::InputCount {
                expected: self.num_inputs(),
                actual: values.len(),
            });
        }
        let max = self.data.bits.input_max();
        if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| v.abs() > max) {
            return Err(HeError::InputOutOfRange {
                index,
                value,
                min: -max,
                max,
            });
        }
        Ok(QuantizedInput { values })
    }

    /// The integer class scores: exactly what decrypting [`super::evaluate()`]'s
    /// output gives.
    pub fn scores_clear(&self, input: &QuantizedInput) -> Result<Vec<i64>, HeError> {
        let x = self.input_from_quantized(input.values.clone())?;
        let act_max = self.data.bits.activation_max();
        let mut x = x.values;
        let n = self.data.layers.len();
        for (l, layer) in self.data.layers.iter().enumerate() {
            let acc = accumulate(layer, &x);
            if l + 1 == n {
                return Ok(acc);
            }
            x = acc
                .iter()
                .zip(&layer.shifts)
                .map(|(a, s)| (a >> s).clamp(0, act_max))
                .collect();
        }
        Ok(x)
    }

    /// Argmax of [`Self::scores_clear`] (first index on ties).
    pub fn predict_clear(&self, input: &QuantizedInput) -> Result<usize, HeError> {
        Ok(argmax(&self.scores_clear(input)?))
    }

    /// Float versus quantized accuracy on labelled rows.
    pub fn accuracy_vs_float<R: AsRef<[f32]>>(
        &self,
        layout: &ParameterLayout,
        params: &[f32],
        rows: &[R],
        labels: &[usize],
    ) -> Result<Accuracy, HeError> {
        if rows.len() != labels.len() {
            return Err(invalid(format!(
                "{} rows but {} labels",
                rows.len(),
                labels.len()
            )));
        }
        let mut acc = Accuracy {
            rows: rows.len(),
            ..Accuracy::default()
        };
        for (row, &label) in rows.iter().zip(labels) {
            let float = argmax_f32(&float_scores(layout, params, row.as_ref())?);
            let quant = self.predict_clear(&self.quantize_input(row.as_ref())?)?;
            acc.float_correct += usize::from(float == label);
            acc.quantized_correct += usize::from(quant == label);
            acc.agreement += usize::from(float == quant);
        }
        Ok(acc)
    }
}

/// Counts from [`QuantizedModel::accuracy_vs_float`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accuracy {
    /// Labelled rows compared.
    pub rows: usize,
    /// Rows where the float model predicts the label.
    pub float_correct: usize,
    /// Rows where the quantized model (computed in the clear) predicts the label.
    pub quantized_correct: usize,
    /// Rows where the float and quantized predictions agree.
    pub agreement: usize,
}

impl Accuracy {
    /// Float accuracy in [0, 1].
    pub fn float_accuracy(&self) -> f64 {
        self.float_correct as f64 / self.rows.max(1) as f64
    }

    /// Quantized accuracy in [0, 1].
    pub fn quantized_accuracy(&self) -> f64 {
        self.quantized_correct as f64 / self.rows.max(1) as f64
    }
}

fn quantize_values(x: &[f32], scales: &[f32], max: i64) -> Vec<i64> {
    x.iter()
        .zip(scales)
        .map(|(v, s)| ((f64::from(*v) / f64::from(*s)).round() as i64).clamp(-max, max))
        .collect()
}

fn accumulate(layer: &QuantizedLayer, x: &[i64]) -> Vec<i64> {
    let mut acc = layer.biases.clone();
    for (i, xi) in x.iter().enumerate() {
        let row = &layer.weights[i * layer.outputs..(i + 1) * layer.outputs];
        for (a, w) in acc.iter_mut().zip(row) {
            *a += w * xi;
        }
    }
    acc
}

/// Index of the largest value (first on ties); 0 for an empty slice.
pub fn argmax(scores: &[i64]) -> usize {
    let mut best = 0;
    for (i, s) in scores.iter().enumerate() {
        if *s > scores[best] {
            best = i;
        }
    }
    best
}

fn argmax_f32(scores: &[f32]) -> usize {
    let mut best = 0;
    for (i, s) in scores.iter().enumerate() {
        if *s > scores[best] {
            best = i;
        }
    }
    best
}

type FloatLayer<'a> = (cohort_proto::model::DenseShape, &'a [f32], &'a [f32]);

fn split_layers<'a>(
    layout: &ParameterLayout,
    params: &'a [f32],
) -> Result<Vec<FloatLayer<'a>>, HeError> {
    if layout.layers.is_empty() {
        return Err(invalid("the layout has no layer"));
    }
    if params.len() != layout.num_parameters() {
        return Err(invalid(format!(
            "{} parameters, the layout needs {}",
            params.len(),
            layout.num_parameters()
        )));
    }
    if let Some(index) = params.iter().position(|v| !v.is_finite()) {
        return Err(invalid(format!("parameter {index} is NaN or infinite")));
    }
    let mut out = Vec::with_capacity(layout.layers.len());
    let mut offset = 0;
    for (l, shape) in layout.layers.iter().enumerate() {
        if l > 0 && layout.layers[l - 1].outputs != shape.inputs {
            return Err(invalid(format!("layout layer {l} does not chain")));
        }
        let nw = shape.inputs * shape.outputs;
        let w = &params[offset..offset + nw];
        let b = &params[offset + nw..offset + nw + shape.outputs];
        offset += shape.num_parameters();
        out.push((*shape, w, b));
    }
    Ok(out)
}

/// The float model's output (logits) for one row: dense layers with ReLU between.
pub fn float_scores(
    layout: &ParameterLayout,
    params: &[f32],
    x: &[f32],
) -> Result<Vec<f32>, HeError> {
    let layers = split_layers(layout, params)?;
    if x.len() != layout.layers[0].inputs {
        return Err(HeError::InputCount {
            expected: layout.layers[0].inputs,
            actual: x.len(),
        });
    }
    let mut h: Vec<f32> = x.to_vec();
    let n = layers.len();
    for (l, (shape, w, b)) in layers.iter().enumerate() {
        let mut out = b.to_vec();
        for (i, hi) in h.iter().enumerate() {
            for (o, out_o) in out.iter_mut().enumerate() {
                *out_o += w[i * shape.outputs + o] * hi;
            }
        }
        if l + 1 < n {
            out.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        h = out;
    }
    Ok(h)
}
