//! Arithmetic in GF(p), p = 2^127 − 1, the field of the Shamir shares.
//!
//! A Mersenne prime makes reduction two shifts and an add, and u128 holds any element.
//! Every operation runs in time independent of the values (no branch or index on
//! them), since share values and polynomial coefficients are secret.

use zeroize::Zeroize;

/// The field's modulus, 2^127 − 1.
pub(crate) const P: u128 = (1 << 127) - 1;

/// An element of GF(2^127 − 1), always in canonical form (< p).
#[derive(Clone, Copy, Default, Zeroize)]
pub(crate) struct Fe(u128);

/// Returns x − p if x ≥ p, else x, for x < 2^128, without branching on x.
fn subtract_p_if_needed(x: u128) -> u128 {
    let (diff, borrow) = x.overflowing_sub(P);
    let keep_x = u128::from(borrow).wrapping_neg();
    (diff & !keep_x) | (x & keep_x)
}

/// Reduces any u128 modulo p: 2^127 ≡ 1, so fold the top bit onto the rest.
fn reduce(x: u128) -> u128 {
    subtract_p_if_needed((x & P) + (x >> 127))
}

impl Fe {
    pub(crate) const ZERO: Fe = Fe(0);
    pub(crate) const ONE: Fe = Fe(1);

    /// Any u128, reduced modulo p.
    pub(crate) fn new(x: u128) -> Fe {
        Fe(reduce(x))
    }

    /// Only values already below p: `None` for a non-canonical encoding.
    pub(crate) fn from_canonical(x: u128) -> Option<Fe> {
        (x < P).then_some(Fe(x))
    }

    pub(crate) fn value(self) -> u128 {
        self.0
    }

    pub(crate) fn add(self, other: Fe) -> Fe {
        // Both < 2^127, so the sum fits in u128.
        Fe(subtract_p_if_needed(self.0 + other.0))
    }

    pub(crate) fn sub(self, other: Fe) -> Fe {
        self.add(Fe(P - other.0))
    }

    pub(crate) fn mul(self, other: Fe) -> Fe {
        // 127 × 127 bits: split into 64-bit limbs; the high limbs have at most 63
        // bits, so the middle sum a0·b1 + a1·b0 < 2^128 does not overflow.
        let (a0, a1) = (self.0 as u64 as u128, self.0 >> 64);
        let (b0, b1) = (other.0 as u64 as u128, other.0 >> 64);
        let low = a0 * b0;
        let middle = a0 * b1 + a1 * b0;
        let high = a1 * b1;
        let (low, carry) = low.overflowing_add(middle << 64);
        // The product is high·2^128 + low, with high < 2^127; 2^128 ≡ 2 (mod p).
        let high = high + (middle >> 64) + u128::from(carry);
        let high = Fe::new(high);
        Fe::new(low).add(high).add(high)
    }

    /// The multiplicative inverse (Fermat: x^(p−2)); the exponent is public, so plain
    /// square-and-multiply is constant-time in x. The inverse of 0 is 0.
    pub(crate) fn invert(self) -> Fe {
        let mut result = Fe::ONE;
        let mut base = self;
        let mut exponent = P - 2;
        while exponent > 0 {
            if exponent & 1 == 1 {
                result = result.mul(base);
            }
            base = base.mul(base);
            exponent >>= 1;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn reference_mul(a: u128, b: u128) -> u128 {
        // Russian-peasant multiplication with reduction at each step: slow, obviously
        // right.
        let mut result = 0u128;
        let mut a = a % P;
        let mut b = b % P;
        while b > 0 {
            if b & 1 == 1 {
                result = (result + a) % P;
            }
            a = (a + a) % P;
            b >>= 1;
        }
        result
    }

    #[test]
    fn edge_values() {
        assert_eq!(Fe::new(P).value(), 0);
        assert_eq!(Fe::new(u128::MAX).value(), 1);
        let minus_one = Fe::new(P - 1);
        assert_eq!(minus_one.mul(minus_one).value(), 1);
        assert_eq!(Fe::ZERO.sub(Fe::ONE).value(), P - 1);
        assert_eq!(Fe::ZERO.invert().value(), 0);
    }

    proptest! {
        #[test]
        fn mul_matches_reference(a in 0..P, b in 0..P) {
            prop_assert_eq!(Fe::new(a).mul(Fe::new(b)).value(), reference_mul(a, b));
        }

        #[test]
        fn add_sub_invert(a in 0..P, b in 1..P) {
            let (a, b) = (Fe::new(a), Fe::new(b));
            prop_assert_eq!(a.add(b).sub(b).value(), a.value());
            prop_assert_eq!(b.mul(b.invert()).value(), 1);
        }
    }
}
