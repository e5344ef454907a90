//! The pseudo-random generator that expands a 32-byte seed into a mask.
//!
//! It is AES-256 in counter mode keyed by the whole 256-bit seed, its keystream read
//! as little-endian words. Any secure PRG serves the protocol (Bonawitz et al. 2017,
//! §4); AES-256 in counter mode keyed by the seed is also what Google's SecAgg
//! implementation uses (federated-compute, `fcp/secagg/shared/aes_ctr_prng.cc`). It
//! was chosen over ChaCha20, Cohort's PRG until protocol version 3, for speed: masking
//! is the protocol's hot loop, and AES-NI expands about 2.5 times as fast on this
//! machine (`crypto/README.md`, "Speed").
//!
//! **Layout.** The keystream is cut into segments of [`SEGMENT`] bytes. Segment j is
//! the AES-256-GCM encryption (NIST SP 800-38D) of zeros under the 96-bit nonce
//! 0^32 ‖ j (big-endian), its tag discarded: GCM encrypts in counter mode (GCTR), so
//! that ciphertext is AES_seed(0^32 ‖ j ‖ i) for the 32-bit counters i = 2, 3, ….
//! Every AES input of the stream is distinct, so the stream is AES evaluated at
//! distinct points: pseudorandom while AES-256 is a pseudorandom permutation (the
//! stream stays far below the birthday bound, see
//! [`super::config::MAX_VECTOR_LEN`]). GCM is how the counter mode is computed, not a claim of
//! authenticity. It runs in ring's assembly, as fast in a debug build as in release,
//! and a segment per nonce lets the stream seek to any segment.
//!
//! The seed is never folded into a shorter integer seed: the mask is as hard to
//! predict as the seed is to guess. The seed and any keystream the generator keeps are
//! zeroized on drop. **Not zeroized:** ring's expanded AES key (whose first two
//! round keys are the seed itself) is freed without being wiped, so the seed can
//! outlive the generator in freed memory of the process that expanded it. Each such
//! seed is one that process holds by the protocol anyway (a node's own b_u and
//! s_uv, the seeds the server rebuilt to unmask), so reading that memory tells an
//! attacker nothing the process was not told; ChaCha20 (protocol version 2) was
//! wiped.

use std::fmt;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::SecureRandom;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

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

/// Keystream bytes under one nonce (1024 AES blocks): a whole number of masking
/// blocks for every word width (see [`super::masking`]).
pub const SEGMENT: usize = 16 * 1024;

/// A keystream positioned somewhere in the expansion of one seed.
pub struct Prg {
    key: LessSafeKey,
    /// The next keystream byte's position.
    position: u64,
    /// The index of the segment `partial` holds, if any.
    partial_index: Option<u64>,
    /// The last segment read from other than at its start. Small reads (a word
    /// at a time) then cost one segment per [`SEGMENT`] bytes.
    partial: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Prg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Prg(<redacted>)")
    }
}

/// Writes the first `out.len()` (≤ [`SEGMENT`]) keystream bytes of segment `index`.
fn segment(key: &LessSafeKey, index: u64, out: &mut [u8]) -> Result<(), SecAggError> {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&index.to_be_bytes());
    out.fill(0);
    key.seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), out)
        .map(drop)
        .map_err(|_| SecAggError::Crypto("AES-256-GCM keystream"))
}

impl Prg {
    /// The keystream of `seed`, at its start.
    pub fn new(seed: &PrgSeed) -> Self {
        let key = UnboundKey::new(&AES_256_GCM, seed.as_bytes())
            .map(LessSafeKey::new)
            // A 32-byte key is always an AES-256 key.
            .unwrap_or_else(|_| unreachable!("AES-256 takes any 32-byte key"));
        Self {
            key,
            position: 0,
            partial_index: None,
            partial: Zeroizing::new(Vec::new()),
        }
    }

    /// Writes the next `out.len()` keystream bytes.
    pub fn fill_bytes(&mut self, mut out: &mut [u8]) -> Result<(), SecAggError> {
        const LEN: u64 = SEGMENT as u64;
        while !out.is_empty() {
            let (index, offset) = (self.position / LEN, (self.position % LEN) as usize);
            let take = out.len().min(SEGMENT - offset);
            let (head, rest) = out.split_at_mut(take);
            if offset == 0 {
                segment(&self.key, index, head)?;
            } else {
                head.copy_from_slice(&self.partial_segment(index)?[offset..offset + take]);
            }
            self.position = (self.position.checked_add(take as u64))
                .ok_or(SecAggError::Crypto("PRG position past 2^64 bytes"))?;
            out = rest;
        }
        Ok(())
    }

    /// Segment `index` whole, computed once for all the reads inside it.
    fn partial_segment(&mut self, index: u64) -> Result<&[u8], SecAggError> {
        if self.partial_index != Some(index) {
            self.partial_index = None;
            self.partial.resize(SEGMENT, 0);
            segment(&self.key, index, &mut self.partial)?;
            self.partial_index = Some(index);
        }
        Ok(&self.partial)
    }

    /// The next 8 keystream bytes, as a little-endian word.
    pub fn next_u64(&mut self) -> Result<u64, SecAggError> {
        let mut word = [0u8; 8];
        self.fill_bytes(&mut word)?;
        Ok(u64::from_le_bytes(word))
    }

    /// Moves to keystream byte `position`.
    pub fn seek(&mut self, position: u64) {
        self.position = position;
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
    fn zero_seed_gives_the_gcm_specification_s_vector() {
        // McGrew and Viega, "The Galois/Counter Mode of Operation", test case
        // 14: AES-256, zero key, zero 96-bit IV, one zero block encrypts to this.
        let mut block = [0u8; 16];
        Prg::new(&PrgSeed::from_bytes([0; 32]))
            .fill_bytes(&mut block)
            .unwrap();
        assert_eq!(hex::encode(block), "cea7403d4d606b6e074ec5d3baf39d18");
    }

    #[test]
    fn every_block_is_aes_of_its_segment_and_counter() {
        // ring's raw AES (QUIC header protection returns the first 5 bytes of
        // AES_k(sample)) recomputes blocks across segments: block i of segment j
        // is AES_seed(0^32 ‖ j ‖ i + 2).
        use ring::aead::quic::{AES_256, HeaderProtectionKey};
        let seed: [u8; 32] = core::array::from_fn(|i| (i * 7 + 1) as u8);
        let aes = HeaderProtectionKey::new(&AES_256, &seed).unwrap();
        let mut stream = vec![0u8; 3 * SEGMENT];
        Prg::new(&PrgSeed::from_bytes(seed))
            .fill_bytes(&mut stream)
            .unwrap();
        for (j, i) in [(0u64, 0u32), (0, 1023), (1, 0), (2, 517)] {
            let mut input = [0u8; 16];
            input[4..12].copy_from_slice(&j.to_be_bytes());
            input[12..].copy_from_slice(&(i + 2).to_be_bytes());
            let at = j as usize * SEGMENT + i as usize * 16;
            assert_eq!(
                aes.new_mask(&input).unwrap(),
                stream[at..at + 5],
                "({j}, {i})"
            );
        }
    }

    #[test]
    fn reads_of_any_size_and_position_see_one_stream() {
        let seed = PrgSeed::from_bytes([9; 32]);
        let mut whole = vec![0u8; 3 * SEGMENT];
        Prg::new(&seed).fill_bytes(&mut whole).unwrap();
        let mut words = Prg::new(&seed);
        words.seek(SEGMENT as u64 - 12);
        let mut read = Vec::new();
        for _ in 0..(SEGMENT / 8) {
            read.extend(words.next_u64().unwrap().to_le_bytes());
        }
        assert_eq!(read[..], whole[SEGMENT - 12..2 * SEGMENT - 12]);
        let mut across = vec![0u8; SEGMENT + 100];
        let mut prg = Prg::new(&seed);
        prg.seek(SEGMENT as u64 / 2);
        prg.fill_bytes(&mut across).unwrap();
        assert_eq!(across[..], whole[SEGMENT / 2..SEGMENT / 2 + SEGMENT + 100]);
    }

    #[test]
    fn seeking_and_seed_sensitivity() {
        let seed = PrgSeed::from_bytes(core::array::from_fn(|i| i as u8));
        let mut whole = vec![0u8; 4096];
        Prg::new(&seed).fill_bytes(&mut whole).unwrap();
        let mut prg = Prg::new(&seed);
        prg.seek(1000);
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
