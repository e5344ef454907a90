//! Argmax-only output: the node returns an encryption of the predicted class
//! alone, computed homomorphically, so that the requester learns one class per
//! row and no score.
//!
//! **Threat model.** As in [`super::sanitize`]: the requester, who holds the
//! client key, made the inputs and generated the evaluation key, is the
//! adversary; the model is the secret. In scores mode it learns every class score
//! (logit) of every row, and a `d`-feature linear model falls to `d + 1` queries
//! (Tramèr et al., *Stealing Machine Learning Models via Prediction APIs*, USENIX
//! Security 2016). In class mode it learns, per row, the index of the largest
//! score (first on ties), exactly what `QuantizedModel::predict_clear` computes,
//! and nothing else up to the statistical distance
//! [`ArgmaxPlan::output_privacy`] reports: the class ciphertext is sanitized like
//! the scores (a fresh public-key encryption of zero whose body noise floods the
//! bootstrap noise, which depends on the hidden digits of the score differences).
//! Label-only extraction remains possible, at a higher query cost (one bit of
//! information per query at best for two classes; Tramèr et al. §5, Lowd and
//! Meek, *Adversarial Learning*, KDD 2005, for linear classifiers): the query
//! budget of the node's inference server still bounds it.
//!
//! **Computation** (single-layer models, i.e. logistic regression, 2 to 16
//! classes). For each pair of classes `i < j`, the difference of their scores is
//! one more linear combination of the inputs, with weights `w_j − w_i`:
//! `d' = s_j − s_i − 1`, so that `j` beats `i` (argmax takes the first index on
//! ties) exactly when `d' ≥ 0`. With the offset `2^(K−1)`, `A = d' + 2^(K−1)` lies
//! in `[0, 2^K)` for every input in range (worst case, as in
//! [`super::quantize`]), encoded at `2^(64−W)` with `W = K + 1` (a padding bit),
//! and `j` wins when A's top bit is set. A programmable bootstrap reads only 4
//! bits, and rounding makes it unreliable next to a box edge, so the low `K − 4`
//! bits are removed exactly, 4 at a time, by the digit extraction that
//! [`super::evaluate`] uses for ReLU (Bergerat et al., *Parameter Optimization
//! and Larger Precision for (T)FHE*, J. Cryptology 2023): 2 bootstraps per digit.
//! One last bootstrap reads the top digit and gives `[d' ≥ 0]` in the class
//! encoding (`CLASS_WIDTH` = 5 bits, value `c · 2^59`). With two classes that
//! bit is the class. With `n > 2`, class `i`'s wins `w_i` (won comparisons, at
//! most `n − 1 ≤ 15`) are sums of those bits, and one bootstrap per class `i ≥ 1`
//! gives `i · [w_i = n − 1]`; their sum is the class. Cost: `n(n−1)/2 ·
//! (2·⌈(K−4)/4⌉ + 1)` bootstraps, plus `n − 1` when `n > 2`
//! ([`ArgmaxPlan::bootstrap_count`]).
//!
//! **Refused models** ([`HeError::ArgmaxUnavailable`]). A model with hidden
//! layers: its scores arrive in the output layer's `K`-bit encoding, made by the
//! hidden bootstraps, and a comparison needs `K + 2` bits (a difference and a
//! padding bit), which a linear step cannot widen; the refusal also reports the
//! noise such a comparison would reach. More than 16 classes (the win counts
//! must fit one bootstrap window). A difference wider than the input encoding
//! or whose bootstrap noise, amplified by the digit frames, would exceed
//! `BOOTSTRAP_INPUT_NOISE_LOG2` (2^-10).

use std::fmt;
use std::str::FromStr;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tfhe::core_crypto::prelude::{
    ContiguousEntityContainer, LweCiphertextList, LweSize, decrypt_lwe_ciphertext,
};

use super::encrypt::{EncryptedInput, EncryptedScores, decode};
use super::error::{Blob, HeError};
use super::evaluate::{
    Worker, add_assign, add_plain, evaluate, expand_checked, linear, lut, shl, sub_assign,
};
use super::keys::{ClientKey, EvaluationKey};
use super::params::{INPUT_WIDTH, PARAMETER_SET_ID, PARAMS, WINDOW_BITS, modulus};
use super::quantize::{
    BOOTSTRAP_INPUT_NOISE_LOG2, BOOTSTRAP_NOISE_LOG2, QuantizedLayer, QuantizedModel, ranges,
    signed_width,
};
use super::sanitize::{self, OutputPrivacy, Sanitizer};
use super::serialize::{self, ClassWire, SizeLimits};

/// Width of the class encoding: class `c` is `c · 2^(64 − CLASS_WIDTH)`, 4 bits
/// and a padding bit, one bootstrap window.
pub const CLASS_WIDTH: u32 = WINDOW_BITS + 1;

/// Most classes the argmax-only output supports: the win counts (up to
/// `classes − 1`) must fit one bootstrap window.
pub const MAX_CLASSES: usize = 1 << WINDOW_BITS;

/// The class unit on the torus.
const CLASS_UNIT: u64 = 1 << (64 - CLASS_WIDTH);

/// What a node returns for each input, and so what a requester learns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputMode {
    /// Only the predicted class (argmax, first index on ties). The default.
    #[default]
    Class,
    /// Every class score (the model's integer logits).
    Scores,
}

impl OutputMode {
    /// `"class"` or `"scores"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Class => "class",
            Self::Scores => "scores",
        }
    }
}

impl fmt::Display for OutputMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An output mode name that is neither `class` nor `scores`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown output mode {0:?}: expected `class` or `scores`")]
pub struct UnknownOutputMode(pub String);

impl FromStr for OutputMode {
    type Err = UnknownOutputMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "class" => Ok(Self::Class),
            "scores" => Ok(Self::Scores),
            other => Err(UnknownOutputMode(other.to_owned())),
        }
    }
}

/// One homomorphic comparison: does class `upper` beat class `lower`?
#[derive(Debug, Clone, PartialEq)]
struct Comparison {
    lower: usize,
    upper: usize,
    /// One output: `s_upper − s_lower − 1 + 2^(K−1)`, in `[0, 2^K)`.
    difference: QuantizedLayer,
}

/// How a model's argmax is computed under encryption: checked once, when the
/// node decides to serve the model in class mode.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgmaxPlan {
    num_classes: usize,
    /// W: the differences are encoded at `2^(64−W)`, `W = K + 1`.
    width: u32,
    comparisons: Vec<Comparison>,
    privacy: OutputPrivacy,
}

fn unavailable(reason: String) -> HeError {
    HeError::ArgmaxUnavailable { reason }
}

impl ArgmaxPlan {
    /// The plan for `model`, or [`HeError::ArgmaxUnavailable`] saying which
    /// bound the comparison would break (see the module documentation).
    pub fn for_model(model: &QuantizedModel) -> Result<Self, HeError> {
        let n = model.num_classes();
        if n < 2 {
            return Err(unavailable(format!("it has {n} class, nothing to compare")));
        }
        if n > MAX_CLASSES {
            return Err(unavailable(format!(
                "it has {n} classes, at most {MAX_CLASSES} fit one bootstrap window"
            )));
        }
        if model.layers().len() > 1 {
            return Err(unavailable(hidden_layer_reason(model)));
        }
        let layer = &model.layers()[0];
        let input_max = model.bits().input_max();
        let mut comparisons = Vec::new();
        let mut bits = 2;
        for lower in 0..n {
            for upper in lower + 1..n {
                let difference = difference_layer(layer, lower, upper);
                let (lo, hi) = ranges(&difference, -input_max, input_max)[0];
                bits = bits.max(signed_width(lo, hi));
                comparisons.push(Comparison {
                    lower,
                    upper,
                    difference,
                });
            }
        }
        let width = bits + 1;
        if width > INPUT_WIDTH {
            return Err(unavailable(format!(
                "a score difference needs {bits} bits and a padding bit, the input \
                 encoding offers {INPUT_WIDTH}; use fewer input or weight bits"
            )));
        }
        for c in &mut comparisons {
            c.difference.biases[0] += 1i64 << (bits - 1);
        }
        check_frames(&comparisons, width)?;
        let noise = BOOTSTRAP_NOISE_LOG2 + 3.0 + 0.5 * ((n.max(2) - 1) as f64).log2();
        let flood_bits = sanitize::flood_bits(0, CLASS_WIDTH, noise)?;
        Ok(Self {
            num_classes: n,
            width,
            comparisons,
            privacy: OutputPrivacy {
                score_width: CLASS_WIDTH,
                score_noise_log2: noise,
                flood_bits,
            },
        })
    }

    /// Programmable bootstraps per prediction in class mode.
    pub fn bootstrap_count(&self) -> usize {
        let digits = (self.width - 1).saturating_sub(WINDOW_BITS).div_ceil(4) as usize;
        let tally = if self.num_classes > 2 {
            self.num_classes - 1
        } else {
            0
        };
        self.comparisons.len() * (2 * digits + 1) + tally
    }

    /// W, the width (bits, padding included) of the compared score differences.
    pub fn comparison_width(&self) -> u32 {
        self.width
    }

    /// How the class ciphertext is sanitized: `score_width` is [`CLASS_WIDTH`],
    /// the flood nearly half a class unit, and the statistical distance it leaves
    /// on the bootstrap noise.
    pub fn output_privacy(&self) -> OutputPrivacy {
        self.privacy
    }
}

/// `s_upper − s_lower − 1` as a one-output layer.
fn difference_layer(layer: &QuantizedLayer, lower: usize, upper: usize) -> QuantizedLayer {
    let weights = (0..layer.inputs)
        .map(|i| {
            let row = i * layer.outputs;
            layer.weights[row + upper] - layer.weights[row + lower]
        })
        .collect();
    QuantizedLayer {
        inputs: layer.inputs,
        outputs: 1,
        weights,
        biases: vec![layer.biases[upper] - layer.biases[lower] - 1],
        shifts: Vec::new(),
    }
}

/// Refuses comparisons whose digit frames would feed a bootstrap too much noise:
/// the first frame amplifies the fresh linear combination's noise (a hard bound,
/// each input's TUniform(2^17) noise at most 2^17) by `2^(W−5)`; later frames
/// amplify digit bootstraps' noise by up to `2^(W−9)` (as `quantize` checks for
/// ReLU).
fn check_frames(comparisons: &[Comparison], width: u32) -> Result<(), HeError> {
    let max_l1 = comparisons
        .iter()
        .map(|c| {
            c.difference
                .weights
                .iter()
                .map(|w| w.unsigned_abs())
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0)
        .max(1);
    let fresh = (max_l1 as f64).log2() + f64::from(PARAMS.glwe_noise_log2) + f64::from(INPUT_WIDTH)
        - f64::from(width)
        - 64.0;
    let first = fresh + f64::from(width) - 5.0;
    let rounds = f64::from((width - 1).saturating_sub(WINDOW_BITS).div_ceil(4) + 1);
    let later = BOOTSTRAP_NOISE_LOG2 + f64::from(width) - 9.0 + 0.5 * rounds.log2();
    let worst = first.max(later);
    if worst > BOOTSTRAP_INPUT_NOISE_LOG2 {
        return Err(unavailable(format!(
            "its {width}-bit comparisons would feed a bootstrap noise 2^{worst:.1}, over \
             2^{BOOTSTRAP_INPUT_NOISE_LOG2:.1}; use fewer input or weight bits"
        )));
    }
    Ok(())
}

/// Why a model with hidden layers is refused (see the module documentation),
/// with the noise its comparisons would reach.
fn hidden_layer_reason(model: &QuantizedModel) -> String {
    let k = model.output_privacy().score_width;
    let last = &model.layers()[model.layers().len() - 1];
    let mut worst_sq = 1i64;
    for lower in 0..last.outputs {
        for upper in lower + 1..last.outputs {
            let d = difference_layer(last, lower, upper);
            worst_sq = worst_sq.max(d.weights.iter().map(|w| w * w).sum());
        }
    }
    // Each activation is a sum of 3 bootstrap outputs; the first digit frame of a
    // (K+2)-bit comparison multiplies the difference's noise by 2^(K+2−5).
    let noise =
        BOOTSTRAP_NOISE_LOG2 + 0.5 * 3f64.log2() + 0.5 * (worst_sq as f64).log2() + f64::from(k)
            - 3.0;
    let over = if noise > BOOTSTRAP_INPUT_NOISE_LOG2 {
        format!(
            "and their noise, amplified by the digit extraction, would reach 2^{noise:.1}, \
             over the 2^{BOOTSTRAP_INPUT_NOISE_LOG2:.1} a bootstrap tolerates"
        )
    } else {
        format!(
            "(their amplified noise, 2^{noise:.1}, would fit, but widening the hidden \
             layers' output encoding is not implemented)"
        )
    };
    format!(
        "it has hidden layers, whose bootstraps deliver the class scores in a {k}-bit \
         encoding, while comparing two scores needs {} bits (their difference and a \
         padding bit), {over}",
        k + 2
    )
}

/// An encrypted predicted class: what a node serving in class mode sends back.
#[derive(Clone)]
pub struct EncryptedClass {
    pub(crate) wire: ClassWire,
}

impl fmt::Debug for EncryptedClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedClass")
            .field("num_classes", &self.wire.num_classes)
            .finish()
    }
}

impl EncryptedClass {
    /// The model's number of classes.
    pub fn num_classes(&self) -> usize {
        self.wire.num_classes as usize
    }

    /// Safe serialization, at most `limits.encrypted_scores` bytes.
    pub fn to_bytes(&self, limits: &SizeLimits) -> Result<Vec<u8>, HeError> {
        serialize::to_bytes(&self.wire, Blob::EncryptedClass, limits.encrypted_scores)
    }

    /// Reads [`Self::to_bytes`]; oversized, truncated or foreign blobs are errors.
    pub fn from_bytes(bytes: &[u8], limits: &SizeLimits) -> Result<Self, HeError> {
        let wire: ClassWire =
            serialize::from_bytes(bytes, Blob::EncryptedClass, limits.encrypted_scores)?;
        wire.validate()?;
        Ok(Self { wire })
    }
}

/// Evaluates `model`'s argmax on `input` with the evaluation key alone, and
/// sanitizes the class ciphertext. `plan` must be `ArgmaxPlan::for_model(model)`.
pub fn evaluate_class(
    key: &EvaluationKey,
    model: &QuantizedModel,
    plan: &ArgmaxPlan,
    input: &EncryptedInput,
) -> Result<EncryptedClass, HeError> {
    let mut class = evaluate_class_unsanitized(key, model, plan, input)?;
    let flood_bits = plan.privacy.flood_bits;
    Sanitizer::new(&key.public_key).sanitize(class.wire.ciphertexts.as_mut(), flood_bits);
    Ok(class)
}

/// The class before sanitization: its noise still carries the bootstrap paths.
pub(crate) fn evaluate_class_unsanitized(
    key: &EvaluationKey,
    model: &QuantizedModel,
    plan: &ArgmaxPlan,
    input: &EncryptedInput,
) -> Result<EncryptedClass, HeError> {
    if plan.num_classes != model.num_classes() || model.layers().len() != 1 {
        return Err(HeError::InvalidModel(
            "the argmax plan was made for another model".into(),
        ));
    }
    let inputs = expand_checked(key, model, input)?;
    let mult_shift = INPUT_WIDTH - plan.width;
    let wins: Vec<Vec<u64>> = plan
        .comparisons
        .par_iter()
        .map_init(
            || Worker::new(key),
            |worker, c| {
                let acc = linear(&inputs, &c.difference, 0, mult_shift, plan.width, 0);
                upper_wins(worker, acc, plan.width)
            },
        )
        .collect();
    let class = if plan.num_classes == 2 {
        wins.into_iter().next().unwrap_or_default()
    } else {
        tally(key, plan, &wins)
    };
    let lwe_size = PARAMS.big_lwe_dimension() + 1;
    Ok(EncryptedClass {
        wire: ClassWire {
            parameter_set: PARAMETER_SET_ID,
            num_classes: plan.num_classes as u32,
            ciphertexts: LweCiphertextList::from_container(class, LweSize(lwe_size), modulus()),
        },
    })
}

/// `[A ≥ 2^(W−2)] · CLASS_UNIT` from `acc` holding `A ∈ [0, 2^(W−1))` at
/// `2^(64−W)`: removes the low `W − 5` bits 4 at a time (the frame of each digit
/// drops the bits above it; one bootstrap clears the bit above the digit, one
/// reads the digit), then reads the top digit.
fn upper_wins(worker: &mut Worker<'_>, mut acc: Vec<u64>, width: u32) -> Vec<u64> {
    let bits = width - 1;
    let pos0 = 64 - width;
    let low = bits.saturating_sub(WINDOW_BITS);
    let mut removed = 0;
    while removed < low {
        let c = (low - removed).min(WINDOW_BITS);
        let hi = removed + c;
        let frame = shl(&acc, 63 - pos0 - hi);
        let cleared = worker.clear_top(&frame);
        worker.keyswitch(&cleared);
        let digit = worker.bootstrap(&lut(|k| (k >> (WINDOW_BITS - c)) << (pos0 + removed)));
        sub_assign(&mut acc, &digit);
        removed = hi;
    }
    // The top bit of A is now at torus bit 62 (63 is the padding bit).
    worker.keyswitch(&shl(&acc, 63 - pos0 - bits));
    worker.bootstrap(&lut(|k| if k >= 8 { CLASS_UNIT } else { 0 }))
}

/// With `n > 2` classes: the class from the comparison bits (`wins[p]` is 1 when
/// the pair's upper class won), as `Σ_{i≥1} i·[class i won all n − 1]`.
fn tally(key: &EvaluationKey, plan: &ArgmaxPlan, wins: &[Vec<u64>]) -> Vec<u64> {
    let n = plan.num_classes;
    let lwe_size = PARAMS.big_lwe_dimension() + 1;
    let mut counts = vec![vec![0u64; lwe_size]; n];
    for (c, bit) in plan.comparisons.iter().zip(wins) {
        add_assign(&mut counts[c.upper], bit);
        sub_assign(&mut counts[c.lower], bit);
        add_plain(&mut counts[c.lower], CLASS_UNIT);
    }
    let all = (n - 1) as u64;
    let parts: Vec<Vec<u64>> = (1..n)
        .into_par_iter()
        .map_init(
            || Worker::new(key),
            |worker, i| {
                worker.keyswitch(&counts[i]);
                let value = (i as u64) * CLASS_UNIT;
                worker.bootstrap(&lut(|k| if k == all { value } else { 0 }))
            },
        )
        .collect();
    let mut class = vec![0u64; lwe_size];
    for part in &parts {
        add_assign(&mut class, part);
    }
    class
}

/// Decrypts a class; [`HeError::ClassOutOfRange`] if it is not one of the
/// model's classes (an answer for another key or model).
pub fn decrypt_class(client_key: &ClientKey, class: &EncryptedClass) -> Result<usize, HeError> {
    let ct = class
        .wire
        .ciphertexts
        .iter()
        .next()
        .map(|ct| decrypt_lwe_ciphertext(&client_key.big_key, &ct).0);
    let value = ct.map_or(-1, |phase| decode(phase, CLASS_WIDTH));
    let num_classes = class.num_classes();
    usize::try_from(value)
        .ok()
        .filter(|c| *c < num_classes)
        .ok_or(HeError::ClassOutOfRange {
            class: value,
            num_classes,
        })
}

/// What a node returns for one input, in either mode.
#[derive(Debug, Clone)]
pub enum EncryptedOutput {
    /// Every class score ([`OutputMode::Scores`]).
    Scores(EncryptedScores),
    /// The predicted class only ([`OutputMode::Class`]).
    Class(EncryptedClass),
}

impl EncryptedOutput {
    /// The mode this output was made in.
    pub fn mode(&self) -> OutputMode {
        match self {
            Self::Scores(_) => OutputMode::Scores,
            Self::Class(_) => OutputMode::Class,
        }
    }

    /// Safe serialization (the scores' or the class's own format).
    pub fn to_bytes(&self, limits: &SizeLimits) -> Result<Vec<u8>, HeError> {
        match self {
            Self::Scores(scores) => scores.to_bytes(limits),
            Self::Class(class) => class.to_bytes(limits),
        }
    }

    /// Reads an output of the `mode` the node advertised; a blob of the other
    /// mode is [`HeError::Malformed`] (its type name differs).
    pub fn from_bytes(
        bytes: &[u8],
        mode: OutputMode,
        limits: &SizeLimits,
    ) -> Result<Self, HeError> {
        Ok(match mode {
            OutputMode::Scores => Self::Scores(EncryptedScores::from_bytes(bytes, limits)?),
            OutputMode::Class => Self::Class(EncryptedClass::from_bytes(bytes, limits)?),
        })
    }
}

/// A decrypted prediction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    /// The predicted class (argmax of the scores, first index on ties).
    pub class: usize,
    /// The class scores, only when the node served them ([`OutputMode::Scores`]).
    pub scores: Option<Vec<i64>>,
}

/// How a node answers for one served model: the mode, and for class mode the
/// checked [`ArgmaxPlan`].
#[derive(Debug, Clone, PartialEq)]
pub enum OutputPlan {
    /// Every class score.
    Scores,
    /// The predicted class only.
    Class(ArgmaxPlan),
}

impl OutputPlan {
    /// The plan for serving `model` in `mode`; class mode fails with
    /// [`HeError::ArgmaxUnavailable`] for a model it cannot compute.
    pub fn new(model: &QuantizedModel, mode: OutputMode) -> Result<Self, HeError> {
        Ok(match mode {
            OutputMode::Scores => Self::Scores,
            OutputMode::Class => Self::Class(ArgmaxPlan::for_model(model)?),
        })
    }

    /// The mode.
    pub fn mode(&self) -> OutputMode {
        match self {
            Self::Scores => OutputMode::Scores,
            Self::Class(_) => OutputMode::Class,
        }
    }

    /// Programmable bootstraps per prediction: the model's, plus the argmax's.
    pub fn bootstrap_count(&self, model: &QuantizedModel) -> usize {
        match self {
            Self::Scores => model.bootstrap_count(),
            Self::Class(plan) => model.bootstrap_count() + plan.bootstrap_count(),
        }
    }
}

/// The node's side, either mode: [`evaluate`] (scores) or [`evaluate_class`]
/// (class). `plan` must be `OutputPlan::new(model, …)`.
pub fn evaluate_output(
    key: &EvaluationKey,
    model: &QuantizedModel,
    plan: &OutputPlan,
    input: &EncryptedInput,
) -> Result<EncryptedOutput, HeError> {
    match plan {
        OutputPlan::Class(plan) => {
            evaluate_class(key, model, plan, input).map(EncryptedOutput::Class)
        }
        OutputPlan::Scores => evaluate(key, model, input).map(EncryptedOutput::Scores),
    }
}

/// The requester's side, either mode: the class, and the scores when served.
pub fn decrypt_output(
    client_key: &ClientKey,
    output: &EncryptedOutput,
) -> Result<Prediction, HeError> {
    match output {
        EncryptedOutput::Scores(scores) => {
            let scores = super::encrypt::decrypt(client_key, scores);
            Ok(Prediction {
                class: super::quantize::argmax(&scores),
                scores: Some(scores),
            })
        }
        EncryptedOutput::Class(class) => Ok(Prediction {
            class: decrypt_class(client_key, class)?,
            scores: None,
        }),
    }
}
