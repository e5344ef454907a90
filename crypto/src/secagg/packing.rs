//! Tight packing of values of Z_M, M = 2^b, at exactly b bits each (little-endian bit
//! order), so a masked update costs b/32 of a plain f32 update, not 2×.

use super::masking::{modulus_mask, word};

/// Bytes needed for `values` values of `bits` bits.
pub fn packed_len(values: usize, bits: u32) -> usize {
    (values as u64 * u64::from(bits)).div_ceil(8) as usize
}

/// Packs `values` (each reduced into Z_M first) at `bits` bits each.
pub fn pack(values: &[u64], bits: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(packed_len(values.len(), bits));
    match bits {
        8 | 16 | 32 | 64 => {
            let width = bits as usize / 8;
            for v in values {
                out.extend_from_slice(&v.to_le_bytes()[..width]);
            }
        }
        _ => {
            let mask = modulus_mask(bits);
            let mut pending: u128 = 0;
            let mut pending_bits = 0u32;
            for v in values {
                pending |= u128::from(v & mask) << pending_bits;
                pending_bits += bits;
                while pending_bits >= 8 {
                    out.push(pending as u8);
                    pending >>= 8;
                    pending_bits -= 8;
                }
            }
            if pending_bits > 0 {
                out.push(pending as u8);
            }
        }
    }
    out
}

/// Adds (wrapping) the values packed in `packed` to `sums`, one per element. The caller
/// has checked that `packed.len() == packed_len(sums.len(), bits)`; missing bytes read
/// as zero.
pub fn unpack_add(packed: &[u8], bits: u32, sums: &mut [u64]) {
    match bits {
        8 => add_words::<1>(packed, sums),
        16 => add_words::<2>(packed, sums),
        32 => add_words::<4>(packed, sums),
        64 => add_words::<8>(packed, sums),
        _ => {
            let mask = modulus_mask(bits);
            let mut bytes = packed.iter();
            let mut pending: u128 = 0;
            let mut pending_bits = 0u32;
            for sum in sums {
                while pending_bits < bits {
                    pending |= u128::from(bytes.next().copied().unwrap_or(0)) << pending_bits;
                    pending_bits += 8;
                }
                *sum = sum.wrapping_add(pending as u64 & mask);
                pending >>= bits;
                pending_bits -= bits;
            }
        }
    }
}

/// Adds the little-endian words of `W` bytes in `packed` to `sums`. Per width and
/// with shifts (`masking::word`), not a copy into a buffer, for the reason given
/// there: the copy kept this loop scalar in the README's build.
fn add_words<const W: usize>(packed: &[u8], sums: &mut [u64]) {
    for (sum, chunk) in sums.iter_mut().zip(packed.chunks_exact(W)) {
        *sum = sum.wrapping_add(word::<W>(chunk));
    }
}

/// Unpacks `len` values.
pub fn unpack(packed: &[u8], bits: u32, len: usize) -> Vec<u64> {
    let mut values = vec![0; len];
    unpack_add(packed, bits, &mut values);
    values
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn round_trips_at_every_width(bits in 2u32..=64, raw in proptest::collection::vec(any::<u64>(), 0..200)) {
            let values: Vec<u64> = raw.iter().map(|v| v & modulus_mask(bits)).collect();
            let packed = pack(&values, bits);
            prop_assert_eq!(packed.len(), packed_len(values.len(), bits));
            prop_assert_eq!(unpack(&packed, bits, values.len()), values);
        }
    }

    #[test]
    fn thirty_two_bits_cost_four_bytes() {
        assert_eq!(packed_len(1_000_001, 32), 4_000_004);
        assert_eq!(packed_len(3, 12), 5);
    }
}
