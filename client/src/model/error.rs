//! Why parameters do not make a model, or a model cannot be read back.

/// Everything that can go wrong in [`crate::model`].
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("the parameter layout has no layers")]
    EmptyLayout,

    #[error("layer {layer} has a zero width ({inputs} inputs, {outputs} outputs)")]
    ZeroWidth {
        layer: usize,
        inputs: usize,
        outputs: usize,
    },

    #[error(
        "layer {layer} takes {inputs} inputs but the layer before it has {previous_outputs} outputs"
    )]
    Disconnected {
        layer: usize,
        inputs: usize,
        previous_outputs: usize,
    },

    #[error("the layout needs {expected} parameters, got {actual}")]
    ParameterCount { expected: usize, actual: usize },

    #[error("parameter {index} is NaN or infinite")]
    NotFinite { index: usize },

    #[error("cannot read the model's {what} back from the device: {reason}")]
    Readback { what: &'static str, reason: String },
}
