//! The pseudo-random generator that expands a 32-byte seed into a mask.
//!
//! It is ChaCha20 (RFC 8439) keyed by the whole 256-bit seed, with a zero nonce (each
//! seed keys exactly one stream), its keystream read as little-endian words. The seed
//! is never folded into a shorter integer seed: the mask is as hard to predict as the
//! seed is to guess. The stream is seekable, so a mask can be generated block by block
//! and on several threads (see [`super::masking`]).

use std::fmt;

use chacha20::cipher::{StreamCipher, StreamCipherSeek};
use chacha20::{ChaCha20, Key, KeyIvInit, Nonce};
use ring::rand::SecureRandom;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::error::SecAggError;

/// Length of a PRG seed.
pub const SEED_LEN: usize = 32;

/// A 32-byte secret seed: a self-mask seed b_u, or a pairwise seed derived from ECDH.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PrgSeed([u8; SEED_LEN]);

impl PrgSeed {
    /// The seed whose 32 bytes are `bytes`.
    pub fn from_bytes(bytes: [u8; SEED_LEN]) -> Self {
        Self(bytes)
    }

    /// A fresh seed from the system's randomness.
    pub fn random(rng: &dyn SecureRandom) -> Result<Self, SecAggError> {
        let mut seed = Self([0; SEED_LEN]);
        rng.fill(&mut seed.0)
            .map_err(|_| SecAggError::Crypto("system randomness unavailable"))?;
        Ok(seed)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; SEED_LEN] {
        &self.0
    }

    pub(crate) fn as_mut_bytes(&mut self) -> &mut [u8; SEED_LEN] {
        &mut self.0
    }
}

impl fmt::Debug for PrgSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrgSeed(<redacted>)")
    }
}

/// A keystream positioned somewhere in the expansion of one seed.
pub struct Prg {
    cipher: ChaCha20,
}

impl fmt::Debug for Prg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Prg(<redacted>)")
    }
}

fn exhausted<E>(_: E) -> SecAggError {
    SecAggError::Crypto("ChaCha20 keystream exhausted (256 GiB per seed)")
}

impl Prg {
    /// The keystream of `seed`, at its start.
    pub fn new(seed: &PrgSeed) -> Self {
        let key: &Key = seed.as_bytes().into();
        Self {
            cipher: ChaCha20::new(key, &Nonce::default()),
        }
    }

    /// Writes the next `out.len()` keystream bytes (no XOR pass: the cipher writes
    /// them directly, in its widest SIMD blocks).
    pub fn fill_bytes(&mut self, out: &mut [u8]) -> Result<(), SecAggError> {
        self.cipher.try_write_keystream(out).map_err(exhausted)
    }

    /// The next 8 keystream bytes, as a little-endian word.
    ///
    /// Fails with [`SecAggError::Crypto`] once the seed's keystream is exhausted.
    pub fn next_u64(&mut self) -> Result<u64, SecAggError> {
        let mut word = [0u8; 8];
        self.fill_bytes(&mut word)?;
        Ok(u64::from_le_bytes(word))
    }

    /// Moves to keystream byte `position`.
    pub fn seek(&mut self, position: u64) -> Result<(), SecAggError> {
        self.cipher.try_seek(position).map_err(exhausted)
    }

    /// A uniform integer in 0..bound (Lemire's method, without bias), for bound ≥ 1.
    pub(crate) fn below(&mut self, bound: u64) -> Result<u64, SecAggError> {
        let threshold = bound.wrapping_neg() % bound.max(1);
        loop {
            let product = u128::from(self.next_u64()?) * u128::from(bound);
            if (product as u64) >= threshold {
                return Ok((product >> 64) as u64);
            }
        }
    }
}

/// Keystream bytes per mask word: b bits rounded up to 2, 4 or 8 bytes. A word is
/// uniform modulo 2^(8·width) and so modulo M = 2^b; 32-bit words halve the PRG's
/// work for the default b = 32.
pub(crate) fn word_bytes(bits: u32) -> usize {
    match bits {
        0..=16 => 2,
        17..=32 => 4,
        _ => 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_seed_gives_rfc8439_vector() {
        // RFC 8439 appendix A.1, test vector #1: zero key, zero nonce, block 0.
        let mut block = [0u8; 32];
        Prg::new(&PrgSeed::from_bytes([0; 32]))
            .fill_bytes(&mut block)
            .unwrap();
        assert_eq!(
            hex::encode(block),
            "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
        );
    }

    #[test]
    fn seeking_and_seed_sensitivity() {
        let seed = PrgSeed::from_bytes(core::array::from_fn(|i| i as u8));
        let mut whole = vec![0u8; 4096];
        Prg::new(&seed).fill_bytes(&mut whole).unwrap();
        let mut prg = Prg::new(&seed);
        prg.seek(1000).unwrap();
        let mut tail = vec![0u8; 3096];
        prg.fill_bytes(&mut tail).unwrap();
        assert_eq!(&whole[1000..], &tail[..]);

        let mut other = seed.as_bytes().to_owned();
        other[31] ^= 1;
        let mut different = vec![0u8; 4096];
        Prg::new(&PrgSeed::from_bytes(other))
            .fill_bytes(&mut different)
            .unwrap();
        assert_ne!(whole, different);
    }

    #[test]
    fn below_is_in_range_and_covers_it() {
        let mut prg = Prg::new(&PrgSeed::from_bytes([7; 32]));
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let v = prg.below(10).unwrap();
            seen[v as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(prg.below(1).unwrap(), 0);
    }

    #[test]
    fn seeds_are_redacted() {
        assert_eq!(
            format!("{:?}", PrgSeed::from_bytes([0x42; 32])),
            "PrgSeed(<redacted>)"
        );
    }
}
