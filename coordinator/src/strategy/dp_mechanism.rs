//! What `[privacy]` means for each round: the mechanism DP-FedAvg runs and the
//! event the privacy ledger charges for it, built in one place so that what
//! is added and what is accounted cannot drift apart.
//!
//! - Central placement: the Gaussian mechanism on a Poisson sample of nodes
//!   (McMahan et al., ICLR 2018), noise σ·C added by the coordinator as the
//!   exact discrete Gaussian on a grid (`dp_fedavg.rs`), accounted as such
//!   (Zhu–Wang subsampling, RDP only).
//! - Distributed placement: the distributed discrete Gaussian (Kairouz, Liu,
//!   Steinke, ICML 2021): each node adds its share before masking, and the
//!   coordinator, which sees only the securely aggregated sum, never sees it
//!   noise-free. Its parameters travel to the nodes in every fit task.
//!
//! Which releases are charged, and against whom the guarantee holds, is
//! stated in `privacy/README.md`; this module only turns the section into the
//! mechanism's parameters.

use cohort_privacy::{
    Accountant, Conversion, DistributedDiscreteGaussian, DpEvent, PldAccountant, PrivacyError,
    RdpAccountant,
};

use crate::config::{AccountantKind, NoisePlacement, PrivacyConfig};

/// Each node's discrete Gaussian noise, in integer units, under distributed
/// placement. Large enough that rounding to integers (variance 1/4) is noise
/// next to it; small enough that the 32-bit sum of a thousand nodes' shares
/// stays far from wrapping.
const LOCAL_STDDEV_UNITS: f64 = 256.0;

/// β of conditional randomized rounding, the paper's choice: e^(−1/2).
fn rounding_beta() -> f64 {
    (-0.5f64).exp()
}

/// The accountant `[privacy].accountant` names.
pub fn accountant(kind: AccountantKind) -> Box<dyn Accountant + Send + Sync> {
    match kind {
        AccountantKind::Rdp => Box::new(RdpAccountant::new(Conversion::Improved)),
        AccountantKind::Pld => Box::new(PldAccountant::new()),
    }
}

/// One round's DP event on a Poisson sample of nodes at `sampling_rate`: the
/// grid's discrete Gaussian mechanism (central), or the distributed discrete Gaussian for `min_clients`
/// nodes (the fewest whose noise a released sum carries) and `dimension`
/// parameters.
///
/// # Errors
/// `PrivacyError` when the parameters describe no mechanism (a sampling rate
/// outside (0, 1], a non-positive noise multiplier).
pub fn round_event(
    privacy: &PrivacyConfig,
    sampling_rate: f64,
    min_clients: usize,
    dimension: usize,
) -> Result<DpEvent, PrivacyError> {
    match privacy.placement {
        NoisePlacement::Central => {
            DpEvent::poisson_sampled_discrete_gaussian(sampling_rate, privacy.noise_multiplier, 1)
        }
        NoisePlacement::Distributed => DpEvent::distributed_discrete_gaussian(
            sampling_rate,
            distributed(privacy, min_clients, dimension),
            1,
        ),
    }
}

/// The distributed discrete Gaussian that carries σ·C of noise in the sum
/// of `min_clients` nodes' shares: each adds N_ℤ(0, s²) with s fixed in
/// integer units, so the granularity is γ = σ·C / (s·√min_clients).
pub fn distributed(
    privacy: &PrivacyConfig,
    min_clients: usize,
    dimension: usize,
) -> DistributedDiscreteGaussian {
    let clients = min_clients.max(1) as f64;
    DistributedDiscreteGaussian {
        clip_norm: privacy.clip_norm,
        granularity: privacy.noise_multiplier * privacy.clip_norm
            / (LOCAL_STDDEV_UNITS * clients.sqrt()),
        local_stddev: LOCAL_STDDEV_UNITS,
        clients: min_clients.max(1) as u64,
        dimension: dimension as u64,
        rounding_beta: rounding_beta(),
    }
}
