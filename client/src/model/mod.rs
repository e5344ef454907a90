//! The node's model: a stack of dense layers whose parameters are exactly the
//! flat vector of the wire contract ([`cohort_proto::model`]).
//!
//! [`DenseNetwork`] is the burn module, built from and read back to that vector;
//! [`initial_parameters`] draws a first global model for a layout without burn;
//! [`SavedModel`] is a global model the node keeps on disk to serve predictions.

mod error;
mod federated;
mod network;
mod saved;
mod withdrawn;

pub use cohort_proto::model::SavedSpec;
pub use cohort_proto::model::initial_parameters;
pub use error::ModelError;
pub use federated::{FederatedModel, describe, flatten, gradients, load};
pub use network::DenseNetwork;
pub use saved::{MODEL_FILE_SUFFIX, SavedModel, SavedModelError};
pub use withdrawn::{WITHDRAWN_FILE, WithdrawalError, WithdrawnModels};

use burn::tensor::Device;

/// The CPU device all local training and evaluation runs on.
///
/// burn 0.22 deprecates NdArray in favour of its Flex backend; the workspace
/// enables NdArray, and switching is this line plus the `flex` feature.
#[allow(deprecated)]
pub fn cpu_device() -> Device {
    Device::ndarray()
}

/// Serializes Cohort's uses of burn's random state, which is process-wide.
static RANDOM_STATE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `build` run on the CPU device, with burn's random state seeded by `seed`
/// first (`None`: as it is), while no other model is built through here: so
/// that the same seed draws the same model even while other threads build
/// theirs (through here too).
pub fn with_random_state<M>(seed: Option<u64>, build: impl FnOnce(&Device) -> M) -> M {
    let _drawing = RANDOM_STATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let device = cpu_device();
    if let Some(seed) = seed {
        device.seed(seed);
    }
    build(&device)
}

/// Refuses a parameter vector of another length than `expected`, or with a
/// NaN or infinite value.
pub(crate) fn check_parameters(parameters: &[f32], expected: usize) -> Result<(), ModelError> {
    if parameters.len() != expected {
        return Err(ModelError::ParameterCount {
            expected,
            actual: parameters.len(),
        });
    }
    match parameters.iter().position(|p| !p.is_finite()) {
        Some(index) => Err(ModelError::NotFinite { index }),
        None => Ok(()),
    }
}

/// Reads a tensor's values back to the host as `f32`.
pub(crate) fn read_values<const D: usize>(
    tensor: burn::Tensor<D>,
    what: &'static str,
) -> Result<Vec<f32>, ModelError> {
    let readback = |reason: String| ModelError::Readback { what, reason };
    // burn's ndarray backend reads a tensor whose buffer is shared (as a
    // module's parameter's always is: the module keeps it) element by element
    // through dynamic-rank indexing, about 30 ns an element (33 ms for a
    // 10^6-parameter model, #17); a buffer of its own it hands over whole.
    // Multiplying by one makes that buffer, exactly (x · 1 = x in IEEE 754;
    // detached, so no gradient flows through the copy).
    tensor
        .detach()
        .mul_scalar(1.0)
        .try_into_data()
        .map_err(|e| readback(e.to_string()))?
        .try_into_vec::<f32>()
        .map_err(|e| readback(e.to_string()))
}
