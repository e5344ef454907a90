//! The built-in dense models' parameter layout: the dense layers a
//! [`SavedSpec`] describes, in the order their parameters travel, and the
//! [`ModelDescriptor`] that carries it (`cohort.dense`, tensors
//! `dense.{i}.weight` `[inputs, outputs]` and `dense.{i}.bias` `[outputs]`).

use super::{ModelDescriptor, SavedSpec, TensorSpec};

/// The descriptor name of the built-in dense models (ReLU between layers;
/// one layer is multinomial logistic regression).
pub const DENSE_MODEL: &str = "cohort.dense";

/// The version of [`DENSE_MODEL`]'s forward pass.
pub const DENSE_MODEL_VERSION: &str = "1";

/// The architecture names a federation config may use.
pub const MODEL_KINDS: [&str; 2] = ["logistic_regression", "mlp"];

/// One dense layer's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenseShape {
    /// Width of the layer's input.
    pub inputs: usize,
    /// Width of the layer's output (and length of its bias).
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
    /// The layers from input to output; each one's weight then bias travel in
    /// this order.
    pub layers: Vec<DenseShape>,
}

/// Why a [`SavedSpec`] describes no model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpecError {
    /// `kind` is none of [`MODEL_KINDS`].
    UnknownKind(String),
    /// A width (named) is zero, or `num_classes` is below 2.
    ZeroWidth(&'static str),
    /// A `logistic_regression` spec lists hidden layers.
    HiddenLayersForLogisticRegression,
    /// An `mlp` spec lists no hidden layer.
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
    ///
    /// # Errors
    /// [`ModelSpecError`] for an unknown kind, a zero width, hidden layers that
    /// do not fit the kind, or a model too large to address.
    pub fn of(spec: &SavedSpec) -> Result<Self, ModelSpecError> {
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

    /// The descriptor the federation carries for this layout.
    pub fn descriptor(&self) -> ModelDescriptor {
        let tensors = self
            .layers
            .iter()
            .enumerate()
            .flat_map(|(i, layer)| {
                [
                    TensorSpec::f32(
                        format!("dense.{i}.weight"),
                        vec![layer.inputs, layer.outputs],
                    ),
                    TensorSpec::f32(format!("dense.{i}.bias"), vec![layer.outputs]),
                ]
            })
            .collect();
        ModelDescriptor {
            name: DENSE_MODEL.into(),
            version: DENSE_MODEL_VERSION.into(),
            tensors,
        }
    }

    /// The fingerprint of [`ParameterLayout::descriptor`].
    pub fn fingerprint(&self) -> [u8; 32] {
        self.descriptor().fingerprint()
    }

    /// The dense layout `descriptor` describes, if it is a built-in dense
    /// model whose tensors chain (each layer's inputs are the previous
    /// layer's outputs).
    ///
    /// # Errors
    /// [`NotDense`] naming what does not fit.
    pub fn from_descriptor(descriptor: &ModelDescriptor) -> Result<Self, NotDense> {
        if descriptor.name != DENSE_MODEL || descriptor.version != DENSE_MODEL_VERSION {
            return Err(NotDense::OtherModel(descriptor.label()));
        }
        if descriptor.tensors.is_empty() || !descriptor.tensors.len().is_multiple_of(2) {
            return Err(NotDense::Tensors);
        }
        let layers: Vec<DenseShape> = descriptor
            .tensors
            .chunks(2)
            .map(
                |pair| match (pair[0].shape.as_slice(), pair[1].shape.as_slice()) {
                    (&[inputs, outputs], &[bias]) if bias == outputs => {
                        Some(DenseShape { inputs, outputs })
                    }
                    _ => None,
                },
            )
            .collect::<Option<_>>()
            .ok_or(NotDense::Tensors)?;
        let layout = Self { layers };
        let chained = layout
            .layers
            .windows(2)
            .all(|w| w[0].outputs == w[1].inputs);
        let classes = layout.layers.last().map_or(0, |l| l.outputs);
        // Widths must fit a spec (u32), so that the spec a node saves builds
        // this very layout; and the sizes must pass the descriptor's checks.
        let fits_a_spec = (layout.layers.iter())
            .all(|l| u32::try_from(l.inputs).is_ok() && u32::try_from(l.outputs).is_ok())
            && descriptor.check().is_ok();
        if !chained || classes < 2 || !fits_a_spec || layout.descriptor() != *descriptor {
            return Err(NotDense::Tensors);
        }
        Ok(layout)
    }

    /// The spec (kind and widths) that builds this layout.
    pub fn spec(&self) -> SavedSpec {
        let (first, last) = (self.layers[0], self.layers[self.layers.len() - 1]);
        let hidden: Vec<u32> = self.layers[1..].iter().map(|l| l.inputs as u32).collect();
        SavedSpec {
            kind: if hidden.is_empty() {
                "logistic_regression"
            } else {
                "mlp"
            }
            .into(),
            num_features: first.inputs as u32,
            num_classes: last.outputs as u32,
            hidden_layers: hidden,
        }
    }
}

/// Why a descriptor is not one of the built-in dense models.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotDense {
    /// The descriptor names another model (`name version`).
    #[error(
        "the federation trains {0}; this build trains only {DENSE_MODEL} {DENSE_MODEL_VERSION}"
    )]
    OtherModel(String),
    /// The tensors are not `dense.{i}.weight`/`bias` pairs that chain.
    #[error(
        "the {DENSE_MODEL} descriptor's tensors are not dense.{{i}}.weight [inputs, outputs] and dense.{{i}}.bias [outputs] pairs whose widths chain into at least 2 classes"
    )]
    Tensors,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: &str, hidden: Vec<u32>) -> SavedSpec {
        SavedSpec {
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

    #[test]
    fn a_dense_layout_round_trips_through_its_descriptor() {
        for hidden in [vec![], vec![16], vec![32, 8]] {
            let kind = if hidden.is_empty() {
                "logistic_regression"
            } else {
                "mlp"
            };
            let spec = spec(kind, hidden);
            let layout = ParameterLayout::of(&spec).unwrap();
            let descriptor = layout.descriptor();
            assert_eq!(descriptor.check(), Ok(()));
            assert_eq!(descriptor.num_parameters(), layout.num_parameters());
            assert_eq!(
                ParameterLayout::from_descriptor(&descriptor),
                Ok(layout.clone())
            );
            assert_eq!(layout.spec(), spec);
        }
    }

    #[test]
    fn other_descriptors_are_not_dense() {
        let layout = ParameterLayout::of(&spec("mlp", vec![16])).unwrap();
        let mut other = layout.descriptor();
        other.name = "hospital.cnn".into();
        assert!(matches!(
            ParameterLayout::from_descriptor(&other),
            Err(NotDense::OtherModel(_))
        ));
        let mut broken = layout.descriptor();
        broken.tensors[2].shape = vec![15, 2];
        assert_eq!(
            ParameterLayout::from_descriptor(&broken),
            Err(NotDense::Tensors)
        );
        let mut renamed = layout.descriptor();
        renamed.tensors[0].name = "fc.weight".into();
        assert_eq!(
            ParameterLayout::from_descriptor(&renamed),
            Err(NotDense::Tensors)
        );
    }

    /// Found by the `proto_params` fuzz target: widths near `u32::MAX` made
    /// `num_bytes` overflow (and, with several such layers, `num_parameters`).
    #[test]
    fn specs_too_large_to_address_are_refused() {
        let huge = u32::MAX;
        for hidden in [vec![huge], vec![huge, huge, huge]] {
            let spec = SavedSpec {
                kind: "mlp".into(),
                num_features: huge,
                num_classes: huge,
                hidden_layers: hidden,
            };
            assert_eq!(ParameterLayout::of(&spec), Err(ModelSpecError::TooLarge));
        }
        // Wide but addressable (on a 64-bit target) is still a model.
        let wide = SavedSpec {
            kind: "logistic_regression".into(),
            num_features: huge,
            num_classes: 2,
            hidden_layers: vec![],
        };
        let layout = ParameterLayout::of(&wide).unwrap();
        assert_eq!(layout.num_bytes(), (huge as usize * 2 + 2) * 4);
    }
}
