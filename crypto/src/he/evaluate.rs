//! The node's side: [`evaluate`] a quantized model on an encrypted input, with the
//! evaluation key only.
//!
//! **Linear layers** cost no bootstrap. Each output is
//! `Σ_i (w_i · 2^e) · ct_i + (b + offset) · 2^(64−K)`: clear-integer times
//! ciphertext and ciphertext additions, exact modulo 2^64. The accumulator width K
//! of every layer is chosen from the *worst case* over all inputs in range (see
//! `quantize`), so the message space always holds it and nothing wraps. The first
//! layer's `2^e = 2^(INPUT_WIDTH − K)` moves the client's fixed input encoding to
//! the layer's.
//!
//! **ReLU + requantization** of a hidden neuron, `y = clamp(⌊A / 2^σ⌋, 0, M)`, is
//! computed *exactly* with programmable bootstraps (PBS; Chillotti, Joye, Paillier,
//! *Programmable Bootstrapping Enables Efficient Homomorphic Inference of Deep
//! Neural Networks*, CSCML 2021), each a keyswitch to the small key, a blind
//! rotation of a lookup table and a sample extraction (tfhe-rs `core_crypto`). One
//! PBS reads only 4 bits plus a padding bit, while A has up to 23 bits, so:
//! 1. an offset `2^(σ+7)` makes `A'' = A + 2^(σ+7)` non-negative and below
//!    `2^(σ+8)` (guaranteed by the worst-case bound);
//! 2. the low σ bits are removed 4 at a time, from the bottom: multiplying the
//!    ciphertext by a power of two drops every bit above the chunk (mod 2^64) and
//!    puts the chunk at the top of the torus; one PBS reads the chunk's upper
//!    neighbour bit (the sign of the negacyclic rotation) and subtracts it, a second
//!    PBS reads the 4-bit chunk, which is subtracted from the accumulator
//!    (the bit-extraction idea of Bergerat et al., *Parameter Optimization and
//!    Larger Precision for (T)FHE*, J. Cryptology 2023, with 4-bit digits);
//! 3. the next 4 bits `L` are read the same way, leaving `H' = ⌊A''/2^(σ+4)⌋` in
//!    `0..16` (padding bit clear): one PBS gives `[H ≠ 0]` in the sign bit of `L`'s
//!    ciphertext, another `M·[H > 0]`;
//! 4. a last PBS on that ciphertext gives `±min(L, M)/2` (negacyclic: minus when
//!    `H ≠ 0`), and `y = ±min(L,M)/2 + min(L,M)/2 + M·[H > 0]`, which is `min(L, M)`,
//!    `0` or `M` when H is 0, negative or positive.
//!
//! A hidden neuron costs `2·⌈σ/4⌉ + 6` PBS and `2·⌈σ/4⌉ + 4` keyswitches; neurons run
//! in parallel (rayon). Outputs are produced directly in the next layer's encoding.
//!
//! **Noise.** A bootstrap's output noise is independent of its input; ours is
//! 2^-25.2 to 2^-25.5 of the torus (standard deviation) with the 3-level
//! bootstrapping key (measured in `he::tests`). Steps 2–3 multiply earlier bootstrap
//! outputs by up to 2^(K−9) before the next bootstrap reads them, and the next layer
//! sums activations (3 bootstrap outputs each) weighted by the clear weights. The
//! model's noise budget is checked when it is built or deserialized
//! (`HeError::NoiseBudget`): amplified noise entering a bootstrap below 2^-10 (the
//! box half-width is 2^-6, keyswitch and modulus-switch noise about 2^-9.2), and 8
//! standard deviations of a score's noise below half a score unit.
//!
//! **Speed** (release, this 2-core machine): a keyswitch + bootstrap takes 42 ms;
//! logistic regression on 30 features 1.8–2.3 ms per prediction (no bootstrap); a
//! 64→32→10 MLP 6.6–7.3 s (334 bootstraps on 2 threads). See `crypto/README.md`.
//!
//! **The output.** [`evaluate`] returns the last layer's accumulators encrypted;
//! the requester decrypts all class scores and takes the argmax. The scores reveal
//! more than the class (they are the model's logits, in integer units), to the
//! requester only; a node serving in class mode computes the argmax under
//! encryption instead ([`super::argmax_mode`], which reuses this module's
//! linear step and digit extraction) and returns the class alone. Before they leave, every output ciphertext is *sanitized*
//! ([`super::sanitize`]): a fresh encryption of zero under the requester's public
//! key is added, whose mask hides the linear combination's mask (from which a
//! requester would otherwise solve every weight of a logistic regression in one
//! query) and whose body noise floods the combination's noise. What the requester
//! still learns is stated in [`super::sanitize`]: for honest inputs, the scores.

use rayon::prelude::*;
use tfhe::core_crypto::prelude::{
    ComputationBuffers, Fft, GlweCiphertextOwned, LweCiphertext, LweCiphertextList,
    LweCiphertextOwned, LweSize, generate_programmable_bootstrap_glwe_lut,
    keyswitch_lwe_ciphertext, programmable_bootstrap_lwe_ciphertext_mem_optimized,
    programmable_bootstrap_lwe_ciphertext_mem_optimized_requirement,
};

use super::encrypt::{EncryptedInput, EncryptedScores};
use super::error::HeError;
use super::keys::EvaluationKey;
use super::params::{INPUT_WIDTH, PARAMETER_SET_ID, PARAMS, WINDOW, modulus};
use super::quantize::{QuantizedLayer, QuantizedModel};
use super::sanitize::Sanitizer;
use super::serialize::ScoresWire;

/// Evaluates `model` on `input` with the evaluation key alone (the client key is
/// not an argument: the node never has it), then sanitizes every output (a fresh
/// public-key encryption of zero with a flooding noise, [`super::sanitize`]) so
/// that the scores reveal the scores and not the model.
///
/// Errors: the input was encrypted for another key, or its ciphertext count is not
/// the model's input width.
pub fn evaluate(
    key: &EvaluationKey,
    model: &QuantizedModel,
    input: &EncryptedInput,
) -> Result<EncryptedScores, HeError> {
    let mut scores = evaluate_unsanitized(key, model, input)?;
    sanitize_scores(&mut Sanitizer::new(&key.public_key), model, &mut scores);
    Ok(scores)
}

/// Adds a fresh encryption of zero, flooded as `model`'s plan says, to each score.
pub(crate) fn sanitize_scores(
    sanitizer: &mut Sanitizer<'_>,
    model: &QuantizedModel,
    scores: &mut EncryptedScores,
) {
    let flood_bits = model.output_privacy().flood_bits;
    let lwe_size = PARAMS.big_lwe_dimension() + 1;
    for ct in scores.wire.ciphertexts.as_mut().chunks_exact_mut(lwe_size) {
        sanitizer.sanitize(ct, flood_bits);
    }
}

/// **INSECURE: the outputs reveal the model.** The evaluation without the
/// sanitization step: a logistic regression's output mask is `Σ w_i·a_i`, from
/// which the requester solves every weight (see [`super::sanitize`]). Only
/// [`evaluate`] (which sanitizes its result) and the attack tests call it.
pub(crate) fn evaluate_unsanitized(
    key: &EvaluationKey,
    model: &QuantizedModel,
    input: &EncryptedInput,
) -> Result<EncryptedScores, HeError> {
    let lwe_size = PARAMS.big_lwe_dimension() + 1;
    let mut current = expand_checked(key, model, input)?;
    let mut in_width = INPUT_WIDTH;
    let layers = model.layers();
    let plan = model.plan();
    let act_max = model.bits().activation_max() as u64;
    for (l, layer) in layers.iter().enumerate() {
        let width = plan[l].width;
        let mult_shift = in_width - width;
        if l + 1 == layers.len() {
            let scores: Vec<Vec<u64>> = (0..layer.outputs)
                .into_par_iter()
                .map(|o| linear(&current, layer, o, mult_shift, width, 0))
                .collect();
            let flat: Vec<u64> = scores.into_iter().flatten().collect();
            return Ok(EncryptedScores {
                wire: ScoresWire {
                    parameter_set: PARAMETER_SET_ID,
                    score_width: width,
                    ciphertexts: LweCiphertextList::from_container(
                        flat,
                        LweSize(lwe_size),
                        modulus(),
                    ),
                },
            });
        }
        let next_width = plan[l + 1].width;
        let requant = Requant {
            width,
            next_width,
            act_max,
        };
        current = (0..layer.outputs)
            .into_par_iter()
            .map_init(
                || Worker::new(key),
                |worker, o| {
                    let shift = layer.shifts[o];
                    let acc = linear(&current, layer, o, mult_shift, width, 1i64 << (shift + 7));
                    worker.requantize(&requant, acc, shift)
                },
            )
            .collect();
        in_width = next_width;
    }
    // `QuantizedModel` always has at least one layer; an empty one cannot be built.
    Err(HeError::InvalidModel("the model has no layer".into()))
}

/// The input's ciphertexts, masks expanded from their seeds, one `Vec` of 2049
/// words each; after checking that `input` was made for `key` and has the
/// model's width.
pub(crate) fn expand_checked(
    key: &EvaluationKey,
    model: &QuantizedModel,
    input: &EncryptedInput,
) -> Result<Vec<Vec<u64>>, HeError> {
    if input.key_id() != key.key_id() {
        return Err(HeError::KeyMismatch {
            input_key: input.key_id().to_hex(),
            eval_key: key.key_id().to_hex(),
        });
    }
    if input.len() != model.num_inputs() {
        return Err(HeError::InputCount {
            expected: model.num_inputs(),
            actual: input.len(),
        });
    }
    let lwe_size = PARAMS.big_lwe_dimension() + 1;
    let expanded = input
        .wire
        .ciphertexts
        .clone()
        .par_decompress_into_lwe_ciphertext_list();
    let current: Vec<Vec<u64>> = expanded
        .as_ref()
        .chunks_exact(lwe_size)
        .map(<[u64]>::to_vec)
        .collect();
    Ok(current)
}

/// `Σ_i (w_io · 2^mult_shift) · ct_i + (b_o + offset) · 2^(64−width)`.
pub(crate) fn linear(
    inputs: &[Vec<u64>],
    layer: &QuantizedLayer,
    o: usize,
    mult_shift: u32,
    width: u32,
    offset: i64,
) -> Vec<u64> {
    let lwe_size = PARAMS.big_lwe_dimension() + 1;
    let mut acc = vec![0u64; lwe_size];
    for (i, ct) in inputs.iter().enumerate() {
        let w = layer.weights[i * layer.outputs + o];
        if w == 0 {
            continue;
        }
        let c = (w as u64).wrapping_shl(mult_shift);
        for (a, x) in acc.iter_mut().zip(ct) {
            *a = a.wrapping_add(c.wrapping_mul(*x));
        }
    }
    let bias = (layer.biases[o] + offset) as u64;
    if let Some(body) = acc.last_mut() {
        *body = body.wrapping_add(bias.wrapping_shl(64 - width));
    }
    acc
}

/// Encodings of one hidden layer's requantization.
struct Requant {
    /// K of this layer's accumulator.
    width: u32,
    /// K of the next layer (the encoding of the outputs).
    next_width: u32,
    /// M.
    act_max: u64,
}

/// Per-thread scratch space for keyswitching and bootstrapping.
pub(crate) struct Worker<'k> {
    key: &'k EvaluationKey,
    fft: Fft,
    buffers: ComputationBuffers,
    small: LweCiphertextOwned<u64>,
}

pub(crate) fn shl(ct: &[u64], by: u32) -> Vec<u64> {
    ct.iter().map(|x| x.wrapping_shl(by)).collect()
}

pub(crate) fn add_assign(a: &mut [u64], b: &[u64]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.wrapping_add(*y);
    }
}

pub(crate) fn sub_assign(a: &mut [u64], b: &[u64]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.wrapping_sub(*y);
    }
}

pub(crate) fn add_plain(a: &mut [u64], p: u64) {
    if let Some(body) = a.last_mut() {
        *body = body.wrapping_add(p);
    }
}

/// A lookup table over the 16 boxes of the window: box `k` (phase ≈ k·2^59) maps to
/// the torus value `f(k)`; the upper half of the torus maps to `−f(k)`.
pub(crate) fn lut(f: impl Fn(u64) -> u64) -> GlweCiphertextOwned<u64> {
    generate_programmable_bootstrap_glwe_lut(
        PARAMS.poly(),
        PARAMS.glwe_dim().to_glwe_size(),
        WINDOW,
        modulus(),
        1u64,
        f,
    )
}

impl<'k> Worker<'k> {
    pub(crate) fn new(key: &'k EvaluationKey) -> Self {
        let fft = Fft::new(PARAMS.poly());
        let mut buffers = ComputationBuffers::new();
        buffers.resize(
            programmable_bootstrap_lwe_ciphertext_mem_optimized_requirement::<u64>(
                PARAMS.glwe_dim().to_glwe_size(),
                PARAMS.poly(),
                fft.as_view(),
            )
            .unaligned_bytes_required(),
        );
        Self {
            key,
            fft,
            buffers,
            small: LweCiphertext::new(0u64, PARAMS.small_dim().to_lwe_size(), modulus()),
        }
    }

    /// Keyswitches `ct` (big key) into the worker's small-key ciphertext.
    pub(crate) fn keyswitch(&mut self, ct: &[u64]) {
        let input = LweCiphertext::from_container(ct, modulus());
        keyswitch_lwe_ciphertext(&self.key.ksk, &input, &mut self.small);
    }

    /// Bootstraps the last keyswitched ciphertext through `table`.
    pub(crate) fn bootstrap(&mut self, table: &GlweCiphertextOwned<u64>) -> Vec<u64> {
        let mut out = LweCiphertext::new(0u64, PARAMS.big_dim().to_lwe_size(), modulus());
        programmable_bootstrap_lwe_ciphertext_mem_optimized(
            &self.small,
            &mut out,
            table,
            &self.key.bsk,
            self.fft.as_view(),
            self.buffers.stack(),
        );
        out.into_container()
    }

    /// `frame` with its top bit cleared: one PBS reads the bit as the sign of the
    /// negacyclic rotation of a constant table (+2^62 or −2^62).
    pub(crate) fn clear_top(&mut self, frame: &[u64]) -> Vec<u64> {
        self.keyswitch(frame);
        let sign = self.bootstrap(&lut(|_| 1u64 << 62));
        let mut out = frame.to_vec();
        add_assign(&mut out, &sign);
        add_plain(&mut out, (1u64 << 62).wrapping_neg());
        out
    }

    /// `clamp(⌊A/2^shift⌋, 0, M)` encoded for the next layer, from `acc` holding
    /// `A + 2^(shift+7)` at `2^(64−K)`. See the module documentation.
    fn requantize(&mut self, r: &Requant, mut acc: Vec<u64>, shift: u32) -> Vec<u64> {
        let pos0 = 64 - r.width; // torus position of bit 0 of A''
        let half_dy = 1u64 << (63 - r.next_width);
        let dy = 1u64 << (64 - r.next_width);
        let m = r.act_max;
        // 2. Remove the low `shift` bits, 4 at a time.
        let mut removed = 0;
        while removed < shift {
            let c = (shift - removed).min(4);
            let hi = removed + c;
            let frame = shl(&acc, 63 - pos0 - hi);
            let cleared = self.clear_top(&frame);
            self.keyswitch(&cleared);
            let chunk = self.bootstrap(&lut(|k| (k >> (4 - c)) << (pos0 + removed)));
            sub_assign(&mut acc, &chunk);
            removed = hi;
        }
        // 3. L = bits shift..shift+4, then H'.
        let frame = shl(&acc, 63 - pos0 - (shift + 4));
        let low = self.clear_top(&frame);
        self.keyswitch(&low);
        let l_at_acc = self.bootstrap(&lut(|k| k << (pos0 + shift)));
        let half_table = lut(|k| k.min(m).wrapping_mul(half_dy));
        let l_half = self.bootstrap(&half_table);
        sub_assign(&mut acc, &l_at_acc);
        let frame_h = shl(&acc, 63 - pos0 - (shift + 8));
        self.keyswitch(&frame_h);
        let nonzero = self.bootstrap(&lut(|k| if k != 8 { 1u64 << 63 } else { 0 }));
        let positive = self.bootstrap(&lut(|k| if k > 8 { m.wrapping_mul(dy) } else { 0 }));
        // 4. ±min(L, M)/2, negated when H ≠ 0.
        let mut signed = low;
        add_assign(&mut signed, &nonzero);
        self.keyswitch(&signed);
        let mut y = self.bootstrap(&half_table);
        add_assign(&mut y, &l_half);
        add_assign(&mut y, &positive);
        y
    }
}
