//! `[privacy]`: client-level differential privacy and its budget. What the
//! section means for a round (the mechanism run and the event accounted) is
//! built where it is used, in `strategy::dp_mechanism`.

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid, positive};

/// Client-level DP-FedAvg (McMahan et al., ICLR 2018): nodes are
/// Poisson-sampled with rate `rounds.fraction`, each node's model change is
/// clipped to `clip_norm`, and Gaussian noise of standard deviation σ·C
/// (the exact discrete Gaussian on a fine grid) is added to their sum, by the
/// coordinator or, distributed, by the nodes.
/// The (ε, δ) budget is enforced: a round that would exceed it does not run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// σ: noise standard deviation in units of the clip norm.
    pub noise_multiplier: f64,
    /// C: bound on the L2 norm of one node's model change.
    pub clip_norm: f64,
    /// The federation's ε budget.
    pub epsilon: f64,
    /// The federation's δ: the probability with which ε may be exceeded.
    pub delta: f64,
    /// How spending is accounted.
    #[serde(default)]
    pub accountant: AccountantKind,
    /// Who adds the noise: the coordinator (`central`) or the nodes, in
    /// shares that only sum to the full noise (`distributed`, needs
    /// `[secure_aggregation]`).
    #[serde(default)]
    pub placement: NoisePlacement,
    /// Adaptive clipping: `clip_norm` is only the start, and the clip norm
    /// follows a quantile of the nodes' update norms. Central placement only.
    #[serde(default)]
    pub adaptive_clipping: Option<AdaptiveClippingConfig>,
}

/// Adaptive clipping by private quantile tracking (Andrew, Thakkar, McMahan,
/// Ramaswamy, NeurIPS 2021): each round the coordinator counts the nodes whose
/// change was within the clip norm, adds N(0, σ_b²) to the count, and moves
/// the clip norm geometrically towards the `target_quantile` of the norms. The
/// count's privacy cost comes out of `noise_multiplier`: the update sum gets
/// σ_Δ = (σ⁻² − (2σ_b)⁻²)^(−1/2), so the round is accounted as before.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveClippingConfig {
    /// γ: the quantile of update norms to track.
    #[serde(default = "default_target_quantile")]
    pub target_quantile: f64,
    /// η: C ← C·exp(−η(b̃ − γ)) each round.
    #[serde(default = "default_clip_learning_rate")]
    pub learning_rate: f64,
    /// σ_b: noise on the clipped count (the paper suggests expected nodes / 20).
    pub count_noise_stddev: f64,
}

fn default_target_quantile() -> f64 {
    0.5
}
fn default_clip_learning_rate() -> f64 {
    0.2
}

/// Where the Gaussian noise of DP-FedAvg is added.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NoisePlacement {
    /// DP-FedAvg's Gaussian noise, added by the coordinator to the sum it sees.
    #[default]
    Central,
    /// The distributed discrete Gaussian (Kairouz, Liu, Steinke, ICML 2021):
    /// each node adds discrete Gaussian noise to its integer-rounded change
    /// before masking, so the coordinator never sees a noise-free sum.
    Distributed,
}

/// Which accountant converts the rounds' events into (ε, δ).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AccountantKind {
    /// Rényi DP with the improved conversion to (ε, δ).
    #[default]
    Rdp,
    /// Privacy-loss distributions: tighter for the continuous Gaussian, but
    /// the federation's mechanisms are discrete Gaussians, so a federation
    /// config naming it is refused with that reason (`cohort-privacy` still
    /// offers PLD for continuous Gaussian events).
    Pld,
}

impl PrivacyConfig {
    /// The (ε, δ) budget the ledger enforces.
    ///
    /// # Errors
    /// `PrivacyError` when ε is not positive or δ not in (0, 1).
    pub fn budget(&self) -> Result<cohort_privacy::PrivacyBudget, cohort_privacy::PrivacyError> {
        cohort_privacy::PrivacyBudget::new(self.epsilon, self.delta)
    }

    /// Refuses a noise multiplier or clip norm that is not positive, an
    /// impossible budget, adaptive clipping that is not central or leaves the
    /// updates no noise, and the PLD accountant (the discrete Gaussian's
    /// bounds are RDP bounds). Whether the section fits the
    /// others (`[secure_aggregation]`, `[strategy]`) is
    /// [`FederationConfig::validate`](super::FederationConfig::validate)'s to check.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("privacy.noise_multiplier", self.noise_multiplier)?;
        positive("privacy.clip_norm", self.clip_norm)?;
        self.budget()
            .map_err(|e| invalid("privacy.epsilon / privacy.delta", e.to_string()))?;
        if let Some(adaptive) = &self.adaptive_clipping {
            if self.placement != NoisePlacement::Central {
                return Err(invalid(
                    "privacy.adaptive_clipping",
                    "works with central placement only",
                ));
            }
            adaptive.validate(self.noise_multiplier)?;
        }
        if self.accountant == AccountantKind::Pld {
            return Err(invalid(
                "privacy.accountant",
                "both placements add discrete Gaussian noise (exact, on integers), which is accounted with RDP only (Canonne et al. 2020 and Kairouz et al. 2021 give RDP bounds; no tight PLD for it here); use \"rdp\"",
            ));
        }
        Ok(())
    }
}

impl AdaptiveClippingConfig {
    /// Refuses a quantile outside (0, 1), a learning rate that is not
    /// positive, and a count noise σ_b that would leave the updates no noise
    /// out of the round's `noise_multiplier`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key.
    pub fn validate(&self, noise_multiplier: f64) -> Result<(), ConfigError> {
        if !(self.target_quantile > 0.0 && self.target_quantile < 1.0) {
            return Err(invalid(
                "privacy.adaptive_clipping.target_quantile",
                format!("must be in (0, 1), got {}", self.target_quantile),
            ));
        }
        positive(
            "privacy.adaptive_clipping.learning_rate",
            self.learning_rate,
        )?;
        cohort_privacy::update_noise_multiplier(noise_multiplier, self.count_noise_stddev)
            .map(|_| ())
            .map_err(|e| {
                invalid(
                    "privacy.adaptive_clipping.count_noise_stddev",
                    e.to_string(),
                )
            })
    }
}
