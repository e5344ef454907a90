//! Why parameters do not make a model, or a model cannot be read back.

/// Everything that can go wrong in [`crate::model`].
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The layout has no layers.
    #[error("the parameter layout has no layers")]
    EmptyLayout,

    /// A layer has no inputs or no outputs.
    #[error("layer {layer} has a zero width ({inputs} inputs, {outputs} outputs)")]
    ZeroWidth {
        /// The layer (0-based).
        layer: usize,
        /// Its inputs.
        inputs: usize,
        /// Its outputs.
        outputs: usize,
    },

    #[error(
        "layer {layer} takes {inputs} inputs but the layer before it has {previous_outputs} outputs"
    )]
    /// A layer's inputs are not the previous layer's outputs.
    Disconnected {
        /// The layer (0-based).
        layer: usize,
        /// Its inputs.
        inputs: usize,
        /// The previous layer's outputs.
        previous_outputs: usize,
    },

    /// The parameter vector's length is not the layout's.
    #[error("the layout needs {expected} parameters, got {actual}")]
    ParameterCount {
        /// Parameters the layout needs.
        expected: usize,
        /// Parameters given.
        actual: usize,
    },

    /// A parameter is NaN or infinite.
    #[error("parameter {index} is NaN or infinite")]
    NotFinite {
        /// Its index in the flat vector.
        index: usize,
    },

    /// A tensor could not be copied back from the device.
    #[error("cannot read the model's {what} back from the device: {reason}")]
    Readback {
        /// What the tensor held.
        what: &'static str,
        /// The backend's error.
        reason: String,
    },
}
