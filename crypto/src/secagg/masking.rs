//! Adding and removing masks in Z_M, M = 2^b: the protocol's hot loop.
//!
//! Node u sends y_u = x_u + PRG(b_u) + Σ_{v∈N(u), u<v} PRG(s_uv) − Σ_{v∈N(u), u>v}
//! PRG(s_uv) (mod M): the pairwise masks of two neighbours carry opposite signs and
//! cancel in the sum, and the self mask PRG(b_u) is removed by the server once b_u is
//! rebuilt. All arithmetic is wrapping `u64`; since M divides 2^64, reducing once at
//! the end (a bit mask) gives the same residues as reducing after every step.
//!
//! [`apply_masks`] runs block-major: for each block of coordinates it adds the
//! matching keystream segment of every seed while the block sits in the cache,
//! instead of sweeping the whole vector once per seed, and it splits the vector across
//! threads (the keystream seeks to any block).

use super::error::SecAggError;
use super::prg::{Prg, PrgSeed, SEGMENT, word_bytes};

/// Whether a mask is added to or subtracted from the vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    /// The mask is added (mod M).
    Add,
    /// The mask is subtracted (mod M).
    Subtract,
}

impl Sign {
    /// The opposite sign: the one that removes a mask applied with this one.
    pub fn flip(self) -> Sign {
        match self {
            Sign::Add => Sign::Subtract,
            Sign::Subtract => Sign::Add,
        }
    }
}

/// One mask to apply: the expansion of `seed`, with `sign`.
#[derive(Debug, Clone)]
pub struct MaskTerm {
    /// The seed the mask is expanded from.
    pub seed: PrgSeed,
    /// Whether the mask is added or subtracted.
    pub sign: Sign,
}

/// The sign node `node` gives its pairwise mask with `peer`: + towards larger ids,
/// − towards smaller ones, so each pair's two masks cancel.
pub(crate) fn pairwise_sign<T: Ord>(node: T, peer: T) -> Sign {
    if node < peer {
        Sign::Add
    } else {
        Sign::Subtract
    }
}

/// M − 1 for M = 2^bits: the mask that reduces a `u64` into Z_M.
pub fn modulus_mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Reduces every value into Z_M.
pub fn reduce(values: &mut [u64], bits: u32) {
    let mask = modulus_mask(bits);
    for v in values {
        *v &= mask;
    }
}

/// The little-endian word of a keystream chunk of `W` bytes. Shifts, not a copy into
/// a buffer: in a debug build a copy keeps `copy_nonoverlapping`'s precondition checks
/// inside the loop, which then stayed scalar (at opt-level 1 or 3) and took 41 % of a
/// SecAgg round's CPU in `cohort-sim bench` (n = 50, d = 10^5, full graph); with
/// shifts, 4 % (simulations/README.md, "Framework benchmark").
#[inline(always)]
pub(crate) fn word<const W: usize>(chunk: &[u8]) -> u64 {
    chunk
        .iter()
        .take(W)
        .enumerate()
        .fold(0, |word, (i, &byte)| word | u64::from(byte) << (8 * i))
}

/// Adds each keystream word (little-endian, `W` bytes) to, or subtracts it from, the
/// matching value. Written per width so the compiler unrolls and vectorizes it.
fn combine<const W: usize>(target: &mut [u64], keystream: &[u8], sign: Sign) {
    let words = keystream.chunks_exact(W).map(word::<W>);
    match sign {
        Sign::Add => target
            .iter_mut()
            .zip(words)
            .for_each(|(t, w)| *t = t.wrapping_add(w)),
        Sign::Subtract => target
            .iter_mut()
            .zip(words)
            .for_each(|(t, w)| *t = t.wrapping_sub(w)),
    }
}

/// Coordinates per block for words of `width` bytes: one keystream segment
/// ([`SEGMENT`], 16 KiB) per seed and block, so every block starts a segment and
/// the accumulators (16–64 KiB) stay in the core's caches while every seed is added.
fn block_len(width: usize) -> usize {
    SEGMENT / width
}

/// Applies every term to `target[..]`, whose first coordinate is coordinate `first` of
/// the whole vector (so its keystream starts at byte `first · width`).
fn apply_range(
    target: &mut [u64],
    first: usize,
    terms: &[MaskTerm],
    width: usize,
) -> Result<(), SecAggError> {
    let block_len = block_len(width);
    let mut keystream = zeroize::Zeroizing::new(vec![0u8; SEGMENT]);
    // Keyed once per range, not per block: an AES key schedule is about a
    // tenth of a segment's work.
    let mut prgs: Vec<(Prg, Sign)> = (terms.iter())
        .map(|term| (Prg::new(&term.seed), term.sign))
        .collect();
    for (b, block) in target.chunks_mut(block_len).enumerate() {
        let start = (first + b * block_len) as u64 * width as u64;
        let bytes = &mut keystream[..block.len() * width];
        for (prg, sign) in &mut prgs {
            prg.seek(start);
            prg.fill_bytes(bytes)?;
            match width {
                2 => combine::<2>(block, bytes, *sign),
                4 => combine::<4>(block, bytes, *sign),
                _ => combine::<8>(block, bytes, *sign),
            }
        }
    }
    Ok(())
}

/// Adds Σ sign · PRG(seed) over `terms` to `target` (wrapping; call [`reduce`] after),
/// drawing ⌈b/8⌉ rounded to 2, 4 or 8 keystream bytes per coordinate. Uses up to
/// `std::thread::available_parallelism()` threads for long vectors.
pub fn apply_masks(target: &mut [u64], terms: &[MaskTerm], bits: u32) -> Result<(), SecAggError> {
    let width = word_bytes(bits);
    let block_len = block_len(width);
    let blocks = target.len().div_ceil(block_len);
    let threads = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .min(blocks)
        .max(1);
    if threads == 1 || terms.is_empty() {
        return apply_range(target, 0, terms, width);
    }
    let per_thread = blocks.div_ceil(threads) * block_len;
    std::thread::scope(|scope| {
        let handles: Vec<_> = target
            .chunks_mut(per_thread)
            .enumerate()
            .map(|(i, part)| scope.spawn(move || apply_range(part, i * per_thread, terms, width)))
            .collect();
        handles.into_iter().try_for_each(|handle| {
            handle
                .join()
                .unwrap_or(Err(SecAggError::Crypto("a masking thread panicked")))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(byte: u8) -> PrgSeed {
        PrgSeed::from_bytes([byte; 32])
    }

    /// The straightforward definition: expand each seed sequentially.
    fn reference(len: usize, terms: &[MaskTerm], bits: u32) -> Vec<u64> {
        let width = word_bytes(bits);
        let mut out = vec![0u64; len];
        for term in terms {
            let mut bytes = vec![0u8; len * width];
            Prg::new(&term.seed).fill_bytes(&mut bytes).unwrap();
            for (o, chunk) in out.iter_mut().zip(bytes.chunks_exact(width)) {
                let mut word = [0u8; 8];
                word[..width].copy_from_slice(chunk);
                let w = u64::from_le_bytes(word);
                *o = match term.sign {
                    Sign::Add => o.wrapping_add(w),
                    Sign::Subtract => o.wrapping_sub(w),
                };
            }
        }
        reduce(&mut out, bits);
        out
    }

    #[test]
    fn blocked_threaded_expansion_matches_sequential() {
        let terms = [
            MaskTerm {
                seed: seed(1),
                sign: Sign::Add,
            },
            MaskTerm {
                seed: seed(2),
                sign: Sign::Subtract,
            },
            MaskTerm {
                seed: seed(3),
                sign: Sign::Add,
            },
        ];
        for bits in [7, 16, 20, 32, 33, 64] {
            let block = block_len(word_bytes(bits));
            for len in [1, 5, block - 1, block, 3 * block + 17] {
                let mut masked = vec![0u64; len];
                apply_masks(&mut masked, &terms, bits).unwrap();
                reduce(&mut masked, bits);
                assert_eq!(
                    masked,
                    reference(len, &terms, bits),
                    "bits {bits} len {len}"
                );
            }
        }
    }

    #[test]
    fn opposite_terms_cancel() {
        let terms = [
            MaskTerm {
                seed: seed(9),
                sign: Sign::Add,
            },
            MaskTerm {
                seed: seed(9),
                sign: Sign::Add.flip(),
            },
        ];
        let input: Vec<u64> = (0..10_000).collect();
        let mut masked = input.clone();
        apply_masks(&mut masked, &terms, 32).unwrap();
        assert_eq!(masked, input);
        assert_eq!(pairwise_sign(1, 2), Sign::Add);
        assert_eq!(pairwise_sign(2, 1), Sign::Subtract);
    }
}
