//! Shamir t-of-k secret sharing of 32-byte secrets (a self-mask seed b_u or an
//! X25519 mask secret key sk_u) over GF(2^127 − 1).
//!
//! Why this field rather than per-byte GF(2^8): GF(2^8) has only 255 non-zero
//! x-coordinates, so it cannot serve the 2017 protocol's k = n − 1 for n above 256,
//! and it needs 32 polynomial evaluations per share. GF(2^127 − 1) takes any node id as
//! an x-coordinate, has cheap Mersenne reduction, and a 32-byte secret needs only three
//! elements (chunks of 11, 11 and 10 bytes, each below p).
//!
//! Any `threshold` shares rebuild the secret; fewer is an error, never a wrong secret.
//! Shares carry their x-coordinate (the holder's [`NodeId`](super::messages::NodeId)
//! + 1) and are zeroized on drop.

use std::fmt;

use ring::rand::SecureRandom;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::error::SecAggError;
use super::field::Fe;

/// Length of a shared secret.
pub const SECRET_LEN: usize = 32;

/// How the secret's bytes are cut into field elements: each chunk < 2^88 < p.
const CHUNKS: [usize; 3] = [11, 11, 10];

/// Encoded length of a share: x (8 bytes) and three 16-byte field elements.
pub const SHARE_LEN: usize = 8 + 16 * CHUNKS.len();

/// One holder's share of a 32-byte secret: the point (x, f(x)) on each of three
/// polynomials of degree t − 1.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Share {
    x: u64,
    y: [Fe; 3],
}

impl Share {
    /// The x-coordinate: the holder's node id + 1.
    pub fn x(&self) -> u64 {
        self.x
    }

    /// The fixed-length encoding: x then each y, little-endian.
    pub fn to_bytes(&self) -> Zeroizing<[u8; SHARE_LEN]> {
        let mut out = Zeroizing::new([0u8; SHARE_LEN]);
        out[..8].copy_from_slice(&self.x.to_le_bytes());
        for (i, y) in self.y.iter().enumerate() {
            out[8 + 16 * i..24 + 16 * i].copy_from_slice(&y.value().to_le_bytes());
        }
        out
    }

    /// Parses [`Share::to_bytes`]; refuses a wrong length, x = 0 and non-canonical
    /// field elements.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecAggError> {
        let bytes: &[u8; SHARE_LEN] = bytes
            .try_into()
            .map_err(|_| SecAggError::InvalidShares("a share must be 56 bytes"))?;
        let mut x = [0u8; 8];
        x.copy_from_slice(&bytes[..8]);
        let x = u64::from_le_bytes(x);
        if x == 0 {
            return Err(SecAggError::InvalidShares("x-coordinate 0 is the secret"));
        }
        let mut y = [Fe::ZERO; 3];
        for (i, y) in y.iter_mut().enumerate() {
            let mut value = Zeroizing::new([0u8; 16]);
            value.copy_from_slice(&bytes[8 + 16 * i..24 + 16 * i]);
            *y = Fe::from_canonical(u128::from_le_bytes(*value)).ok_or(
                SecAggError::InvalidShares("a share value is not below 2^127 − 1"),
            )?;
        }
        Ok(Self { x, y })
    }
}

impl PartialEq for Share {
    fn eq(&self, other: &Self) -> bool {
        self.to_bytes().ct_eq(&other.to_bytes()[..]).into()
    }
}

impl Eq for Share {}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Share")
            .field("x", &self.x)
            .field("y", &"<redacted>")
            .finish()
    }
}

fn random_element(rng: &dyn SecureRandom) -> Result<Fe, SecAggError> {
    loop {
        let mut bytes = Zeroizing::new([0u8; 16]);
        rng.fill(&mut bytes[..])
            .map_err(|_| SecAggError::Crypto("system randomness unavailable"))?;
        // Uniform on [0, 2^127); only p itself is out of range (probability 2^-127).
        if let Some(fe) = Fe::from_canonical(u128::from_le_bytes(*bytes) & super::field::P) {
            return Ok(fe);
        }
    }
}

fn check_threshold(threshold: usize) -> Result<(), SecAggError> {
    if threshold == 0 {
        return Err(SecAggError::InvalidShares(
            "the threshold must be at least 1",
        ));
    }
    Ok(())
}

fn check_distinct(xs: impl Iterator<Item = u64>) -> Result<(), SecAggError> {
    let mut seen = std::collections::BTreeSet::new();
    for x in xs {
        if x == 0 {
            return Err(SecAggError::InvalidShares("x-coordinate 0 is the secret"));
        }
        if !seen.insert(x) {
            return Err(SecAggError::InvalidShares(
                "two shares have the same x-coordinate",
            ));
        }
    }
    Ok(())
}

/// Splits `secret` into one share per x-coordinate in `xs`, any `threshold` of which
/// rebuild it.
pub fn split(
    secret: &[u8; SECRET_LEN],
    threshold: usize,
    xs: &[u64],
    rng: &dyn SecureRandom,
) -> Result<Vec<Share>, SecAggError> {
    check_threshold(threshold)?;
    if xs.len() < threshold {
        return Err(SecAggError::TooFewShares {
            needed: threshold,
            got: xs.len(),
        });
    }
    check_distinct(xs.iter().copied())?;

    // coefficients[c][i]: coefficient of x^i of chunk c's polynomial; [c][0] = chunk.
    let mut coefficients = Zeroizing::new(vec![[Fe::ZERO; 3]; threshold]);
    let mut offset = 0;
    for (c, &len) in CHUNKS.iter().enumerate() {
        let mut chunk = Zeroizing::new([0u8; 16]);
        chunk[..len].copy_from_slice(&secret[offset..offset + len]);
        offset += len;
        coefficients[0][c] = Fe::new(u128::from_le_bytes(*chunk));
        for row in coefficients.iter_mut().skip(1) {
            row[c] = random_element(rng)?;
        }
    }

    Ok(xs
        .iter()
        .map(|&x| {
            let point = Fe::new(u128::from(x));
            let mut y = [Fe::ZERO; 3];
            // Horner, from the highest coefficient down.
            for row in coefficients.iter().rev() {
                for (y, &coefficient) in y.iter_mut().zip(row) {
                    *y = y.mul(point).add(coefficient);
                }
            }
            Share { x, y }
        })
        .collect())
}

/// Rebuilds the secret from at least `threshold` shares (the first `threshold` are
/// used). Fewer shares, repeated x-coordinates or shares that do not lie on one
/// polynomial of a 32-byte secret are errors.
pub fn reconstruct(
    shares: &[Share],
    threshold: usize,
) -> Result<Zeroizing<[u8; SECRET_LEN]>, SecAggError> {
    check_threshold(threshold)?;
    if shares.len() < threshold {
        return Err(SecAggError::TooFewShares {
            needed: threshold,
            got: shares.len(),
        });
    }
    check_distinct(shares.iter().map(Share::x))?;
    let used = &shares[..threshold];
    let xs: Vec<Fe> = used.iter().map(|s| Fe::new(u128::from(s.x))).collect();

    // Lagrange basis at 0: λ_i = Π_{j≠i} x_j / (x_j − x_i). The x's are public.
    let mut chunks = [Fe::ZERO; 3];
    for (i, share) in used.iter().enumerate() {
        let mut numerator = Fe::ONE;
        let mut denominator = Fe::ONE;
        for (j, &xj) in xs.iter().enumerate() {
            if i != j {
                numerator = numerator.mul(xj);
                denominator = denominator.mul(xj.sub(xs[i]));
            }
        }
        let lambda = numerator.mul(denominator.invert());
        for (chunk, y) in chunks.iter_mut().zip(&share.y) {
            *chunk = chunk.add(lambda.mul(*y));
        }
    }

    let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
    let mut offset = 0;
    let mut out_of_range = 0u8;
    for (chunk, &len) in chunks.iter().zip(CHUNKS.iter()) {
        let bytes = Zeroizing::new(chunk.value().to_le_bytes());
        // A chunk wider than its slot means the shares were not made from one
        // secret; checked without branching on the secret's bytes.
        out_of_range |= bytes[len..].iter().fold(0, |acc, b| acc | b);
        secret[offset..offset + len].copy_from_slice(&bytes[..len]);
        offset += len;
    }
    chunks.zeroize();
    if out_of_range != 0 {
        return Err(SecAggError::InvalidShares(
            "the shares do not lie on one polynomial of a 32-byte secret",
        ));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use ring::rand::SystemRandom;

    use super::*;

    fn xs(k: usize) -> Vec<u64> {
        (1..=k as u64).map(|i| i * 7 + 3).collect()
    }

    #[test]
    fn encoding_round_trips_and_redacts() {
        let shares = split(&[9u8; 32], 2, &[5, 6], &SystemRandom::new()).unwrap();
        let bytes = shares[0].to_bytes();
        assert_eq!(Share::from_bytes(&bytes[..]).unwrap(), shares[0]);
        assert!(Share::from_bytes(&bytes[1..]).is_err());
        assert!(!format!("{:?}", shares[0]).contains(&format!("{:?}", shares[0].y[0].value())));
    }

    #[test]
    fn refuses_bad_coordinates() {
        let rng = SystemRandom::new();
        assert!(split(&[1; 32], 2, &[3, 3], &rng).is_err());
        assert!(split(&[1; 32], 2, &[0, 3], &rng).is_err());
        assert!(split(&[1; 32], 0, &[1, 3], &rng).is_err());
        let shares = split(&[1; 32], 2, &[1, 3], &rng).unwrap();
        let twice = [shares[0].clone(), shares[0].clone()];
        assert!(reconstruct(&twice, 2).is_err());
    }

    #[test]
    fn mixed_shares_of_two_secrets_are_detected() {
        let rng = SystemRandom::new();
        // Shares of different secrets almost never interpolate to a value whose
        // chunks all fit their slots (probability about 2^-125).
        let a = split(&[0xAA; 32], 3, &[1, 2, 3], &rng).unwrap();
        let b = split(&[0x55; 32], 3, &[1, 2, 3], &rng).unwrap();
        let mixed = [a[0].clone(), a[1].clone(), b[2].clone()];
        assert_eq!(
            reconstruct(&mixed, 3),
            Err(SecAggError::InvalidShares(
                "the shares do not lie on one polynomial of a 32-byte secret"
            ))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any t of the k shares, in any order, rebuild the secret; t − 1 do not.
        #[test]
        fn any_threshold_subset_reconstructs(
            secret in any::<[u8; 32]>(),
            (k, t, picks) in (1usize..30)
                .prop_flat_map(|k| (Just(k), 1..=k))
                .prop_flat_map(|(k, t)| (Just(k), Just(t), Just((0..k).collect::<Vec<_>>()).prop_shuffle())),
        ) {
            let shares = split(&secret, t, &xs(k), &SystemRandom::new()).unwrap();
            let chosen: Vec<Share> = picks[..t].iter().map(|&i| shares[i].clone()).collect();
            prop_assert_eq!(&*reconstruct(&chosen, t).unwrap(), &secret);
            let all: Vec<Share> = picks.iter().map(|&i| shares[i].clone()).collect();
            prop_assert_eq!(&*reconstruct(&all, t).unwrap(), &secret);
            prop_assert_eq!(
                reconstruct(&chosen[..t - 1], t),
                Err(SecAggError::TooFewShares { needed: t, got: t - 1 })
            );
        }

        /// Fewer than t shares say nothing: interpolating t − 1 of them as if the
        /// threshold were t − 1 does not give the secret.
        #[test]
        fn below_threshold_interpolation_is_not_the_secret(
            secret in any::<[u8; 32]>(),
            k in 3usize..20,
        ) {
            let t = k / 2 + 1;
            let shares = split(&secret, t, &xs(k), &SystemRandom::new()).unwrap();
            match reconstruct(&shares[..t - 1], t - 1) {
                Ok(wrong) => prop_assert_ne!(&*wrong, &secret),
                Err(e) => prop_assert!(matches!(e, SecAggError::InvalidShares(_))),
            }
        }
    }
}
