//! The wire contract for model parameters.
//!
//! A model is a stack of dense layers. Its parameters travel as one flat vector of
//! little-endian `f32`, layer by layer, each layer's weight (row-major,
//! `[inputs, outputs]`) followed by its bias (`[outputs]`). The *fingerprint* is
//! SHA-256 over a canonical description of that layout, so a node and a
//! coordinator that disagree on the architecture find out before any training.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::v1::ModelSpec;

/// The architecture names a federation config may use.
pub const MODEL_KINDS: [&str; 2] = ["logistic_regression", "mlp"];

/// One dense layer's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenseShape {
    pub inputs: usize,
    pub outputs: usize,
}

impl DenseShape {
    /// Weights plus biases.
    pub fn num_parameters(&self) -> usize {
        self.inputs * self.outputs + self.outputs
    }
}

/// The ordered dense layers of a model: the layout of its flat parameter vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterLayout {
    pub layers: Vec<DenseShape>,
}

/// Why a [`ModelSpec`] describes no model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpecError {
    UnknownKind(String),
    ZeroWidth(&'static str),
    HiddenLayersForLogisticRegression,
    MlpWithoutHiddenLayers,
    /// The parameter vector's byte count would not fit in a `usize`.
    TooLarge,
}

impl std::fmt::Display for ModelSpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownKind(kind) => write!(
                f,
                "unknown model kind {kind:?}; expected one of {}",
                MODEL_KINDS.join(", ")
            ),
            Self::ZeroWidth(what) => write!(f, "{what} must be at least 1"),
            Self::HiddenLayersForLogisticRegression => {
                f.write_str("logistic_regression takes no hidden layers")
            }
            Self::MlpWithoutHiddenLayers => f.write_str("mlp needs at least one hidden layer"),
            Self::TooLarge => f.write_str("the model has too many parameters to address"),
        }
    }
}

impl std::error::Error for ModelSpecError {}

impl ParameterLayout {
    /// The layout a model spec describes, or why it describes none.
    pub fn of(spec: &ModelSpec) -> Result<Self, ModelSpecError> {
        match spec.kind.as_str() {
            "logistic_regression" if !spec.hidden_layers.is_empty() => {
                return Err(ModelSpecError::HiddenLayersForLogisticRegression);
            }
            "mlp" if spec.hidden_layers.is_empty() => {
                return Err(ModelSpecError::MlpWithoutHiddenLayers);
            }
            "logistic_regression" | "mlp" => {}
            other => return Err(ModelSpecError::UnknownKind(other.to_owned())),
        }
        if spec.num_features == 0 {
            return Err(ModelSpecError::ZeroWidth("num_features"));
        }
        if spec.num_classes < 2 {
            return Err(ModelSpecError::ZeroWidth("num_classes - 1"));
        }
        if spec.hidden_layers.contains(&0) {
            return Err(ModelSpecError::ZeroWidth("every hidden layer width"));
        }
        let widths: Vec<usize> = std::iter::once(spec.num_features)
            .chain(spec.hidden_layers.iter().copied())
            .chain(std::iter::once(spec.num_classes))
            .map(|w| w as usize)
            .collect();
        let layers: Vec<DenseShape> = widths
            .windows(2)
            .map(|pair| DenseShape {
                inputs: pair[0],
                outputs: pair[1],
            })
            .collect();
        // A spec may come from the network: its sizes must not overflow in
        // `num_parameters` and `num_bytes`.
        let num_bytes = layers
            .iter()
            .try_fold(0usize, |total, layer| {
                layer
                    .inputs
                    .checked_mul(layer.outputs)?
                    .checked_add(layer.outputs)?
                    .checked_add(total)
            })
            .and_then(|parameters| parameters.checked_mul(4));
        if num_bytes.is_none() {
            return Err(ModelSpecError::TooLarge);
        }
        Ok(Self { layers })
    }

    /// Length of the flat parameter vector.
    pub fn num_parameters(&self) -> usize {
        self.layers.iter().map(DenseShape::num_parameters).sum()
    }

    /// Length of the encoded parameter vector in bytes.
    pub fn num_bytes(&self) -> usize {
        self.num_parameters() * 4
    }

    /// SHA-256 over the canonical text `cohort-dense-v1;IxO;IxO;...`.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut canonical = String::from("cohort-dense-v1");
        for layer in &self.layers {
            canonical.push_str(&format!(";{}x{}", layer.inputs, layer.outputs));
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        out
    }
}

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
    WrongLength { expected: usize, actual: usize },
    /// A NaN or infinite value at this index.
    NotFinite { index: usize },
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

/// Decodes little-endian `f32` bytes, refusing a wrong length or a non-finite value.
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

/// The content address of a model version: hex SHA-256 over its fingerprint and
/// its encoded parameters.
pub fn model_version(fingerprint: &[u8; 32], encoded: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(fingerprint);
    ctx.update(encoded);
    hex_lower(ctx.finish().as_ref())
}

fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

/// Parameters for `layout` drawn from `seed`: every weight and bias of a layer
/// uniform in `(−k, k)` with `k = 1/√inputs`, as burn initializes a `Linear`.
///
/// Random, not zero, so that the hidden units of an MLP start different. The same
/// layout and seed always give the same vector, in the wire layout.
pub fn initial_parameters(layout: &ParameterLayout, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut parameters = Vec::with_capacity(layout.num_parameters());
    for layer in &layout.layers {
        let bound = 1.0 / (layer.inputs.max(1) as f32).sqrt();
        parameters.extend((0..layer.num_parameters()).map(|_| rng.random_range(-bound..bound)));
    }
    parameters
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: &str, hidden: Vec<u32>) -> ModelSpec {
        ModelSpec {
            kind: kind.into(),
            num_features: 30,
            num_classes: 2,
            hidden_layers: hidden,
        }
    }

    #[test]
    fn layouts_follow_the_spec() {
        let lr = ParameterLayout::of(&spec("logistic_regression", vec![])).unwrap();
        assert_eq!(lr.num_parameters(), 30 * 2 + 2);
        let mlp = ParameterLayout::of(&spec("mlp", vec![16])).unwrap();
        assert_eq!(mlp.num_parameters(), 30 * 16 + 16 + 16 * 2 + 2);
        assert_ne!(lr.fingerprint(), mlp.fingerprint());
    }

    #[test]
    fn bad_specs_are_named() {
        assert!(matches!(
            ParameterLayout::of(&spec("cnn", vec![])),
            Err(ModelSpecError::UnknownKind(_))
        ));
        assert_eq!(
            ParameterLayout::of(&spec("mlp", vec![])),
            Err(ModelSpecError::MlpWithoutHiddenLayers)
        );
    }

    /// Found by the `proto_params` fuzz target: widths near `u32::MAX` made
    /// `num_bytes` overflow (and, with several such layers, `num_parameters`).
    #[test]
    fn specs_too_large_to_address_are_refused() {
        let huge = u32::MAX;
        for hidden in [vec![huge], vec![huge, huge, huge]] {
            let spec = ModelSpec {
                kind: "mlp".into(),
                num_features: huge,
                num_classes: huge,
                hidden_layers: hidden,
            };
            assert_eq!(ParameterLayout::of(&spec), Err(ModelSpecError::TooLarge));
        }
        // Wide but addressable (on a 64-bit target) is still a model.
        let wide = ModelSpec {
            kind: "logistic_regression".into(),
            num_features: huge,
            num_classes: 2,
            hidden_layers: vec![],
        };
        let layout = ParameterLayout::of(&wide).unwrap();
        assert_eq!(layout.num_bytes(), (huge as usize * 2 + 2) * 4);
    }

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

    #[test]
    fn parameters_fill_the_layout_within_bounds_reproducibly() {
        let layout = ParameterLayout {
            layers: vec![
                DenseShape {
                    inputs: 64,
                    outputs: 32,
                },
                DenseShape {
                    inputs: 32,
                    outputs: 10,
                },
            ],
        };
        let parameters = initial_parameters(&layout, 3);
        assert_eq!(parameters.len(), layout.num_parameters());
        let (first, second) = parameters.split_at(64 * 32 + 32);
        assert!(first.iter().all(|w| w.abs() < 1.0 / 8.0));
        assert!(second.iter().all(|w| w.abs() < 1.0 / 32f32.sqrt()));
        assert_eq!(parameters, initial_parameters(&layout, 3));
        assert_ne!(parameters, initial_parameters(&layout, 4));
    }
}
