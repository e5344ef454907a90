//! Parameters on the wire: one flat vector of little-endian `f32`.

/// Encodes parameters as little-endian `f32` bytes.
pub fn encode_f32(values: &[f32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(values.len() * 4);
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

/// Why a byte string is not a valid parameter vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The byte count is not the layout's.
    WrongLength {
        /// Bytes the layout needs.
        expected: usize,
        /// Bytes received.
        actual: usize,
    },
    /// A NaN or infinite value at this index.
    NotFinite {
        /// Index of the first such value.
        index: usize,
    },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::WrongLength { expected, actual } => write!(
                f,
                "parameter vector has {actual} bytes, the model needs {expected}"
            ),
            Self::NotFinite { index } => {
                write!(f, "parameter {index} is NaN or infinite")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes little-endian `f32` bytes.
///
/// # Errors
/// [`DecodeError::WrongLength`] unless there are exactly `expected_len`
/// values; [`DecodeError::NotFinite`] at the first NaN or infinity.
pub fn decode_f32(bytes: &[u8], expected_len: usize) -> Result<Vec<f32>, DecodeError> {
    if expected_len.checked_mul(4) != Some(bytes.len()) {
        return Err(DecodeError::WrongLength {
            expected: expected_len.saturating_mul(4),
            actual: bytes.len(),
        });
    }
    let mut values = Vec::with_capacity(expected_len);
    for (index, word) in bytes.chunks_exact(4).enumerate() {
        let value = f32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        if !value.is_finite() {
            return Err(DecodeError::NotFinite { index });
        }
        values.push(value);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `proto_params` fuzz target: `expected_len * 4` overflowed.
    #[test]
    fn decode_refuses_an_unaddressable_length() {
        assert_eq!(
            decode_f32(&[0; 4], usize::MAX),
            Err(DecodeError::WrongLength {
                expected: usize::MAX,
                actual: 4
            })
        );
    }

    #[test]
    fn decode_refuses_wrong_length_and_non_finite() {
        let bytes = encode_f32(&[1.0, -2.5]);
        assert_eq!(decode_f32(&bytes, 2).unwrap(), vec![1.0, -2.5]);
        assert!(matches!(
            decode_f32(&bytes, 3),
            Err(DecodeError::WrongLength { .. })
        ));
        let nan = encode_f32(&[0.0, f32::NAN]);
        assert_eq!(
            decode_f32(&nan, 2),
            Err(DecodeError::NotFinite { index: 1 })
        );
        let inf = encode_f32(&[f32::INFINITY]);
        assert_eq!(
            decode_f32(&inf, 1),
            Err(DecodeError::NotFinite { index: 0 })
        );
    }
}
