//! `[secure_aggregation]`: SecAgg+ (Bell, Bogetoft, … & Raykova, CCS 2020) in
//! every round. Its threat model is `cohort_crypto::secagg`'s.

use cohort_crypto::secagg::{SecAggConfig, SecAggError, ThreatModel};
use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid, one};

/// Secure aggregation (SecAgg+, Bell et al. CCS 2020): the coordinator learns only
/// the weighted sum of the sampled nodes' model changes. Each node sends
/// `weight · clip(change)` and its `weight`, quantized and masked; the coordinator
/// unmasks the two sums and divides.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecureAggregationConfig {
    /// Each coordinate of a node's model change is clipped to ±clip_range.
    #[serde(default = "one")]
    pub clip_range: f64,
    /// Arithmetic modulo 2^bits; more bits, finer quantization.
    #[serde(default = "default_secagg_bits")]
    pub bits: u32,
    /// k: neighbours each node masks with; default min(40, n − 1).
    #[serde(default)]
    pub neighbours: Option<usize>,
    /// t: neighbours needed to rebuild a node's secret; default a bare majority.
    #[serde(default)]
    pub threshold: Option<usize>,
    /// Derive k and t for each round from these assumptions (dropout rate,
    /// colluding fraction, leak and abort probabilities; Bell et al. 2020)
    /// instead of `neighbours` and `threshold`, which must then be unset.
    #[serde(default)]
    pub threat_model: Option<ThreatModel>,
    /// A node's weight is min(examples, weight_cap) / weight_cap: a public cap,
    /// so that the weight fits the quantizer's [0, 1]. With the cap at least the
    /// largest node's example count, the result is FedAvg's example weighting.
    #[serde(default = "default_weight_cap")]
    pub weight_cap: u64,
    /// Deadline of each key-exchange and unmasking stage; default `rounds.deadline_secs`.
    #[serde(default)]
    pub stage_deadline_secs: Option<f64>,
}

fn default_secagg_bits() -> u32 {
    32
}
fn default_weight_cap() -> u64 {
    10_000
}

impl Default for SecureAggregationConfig {
    fn default() -> Self {
        Self {
            clip_range: one(),
            bits: default_secagg_bits(),
            neighbours: None,
            threshold: None,
            threat_model: None,
            weight_cap: default_weight_cap(),
            stage_deadline_secs: None,
        }
    }
}

impl SecureAggregationConfig {
    /// The protocol parameters for a round of `n` participants: k and t
    /// derived from `threat_model` when it is set, else as configured.
    ///
    /// # Errors
    /// When no k and t meet the threat model for `n` nodes.
    pub fn for_round(&self, n: usize) -> Result<SecAggConfig, SecAggError> {
        if let Some(model) = &self.threat_model {
            let base = SecAggConfig {
                clip_range: self.clip_range,
                bits: self.bits,
                ..SecAggConfig::default()
            };
            return Ok(model.derive(n)?.apply(base));
        }
        let base = SecAggConfig {
            // SecAgg+'s default neighbourhood, from the protocol's own defaults.
            neighbours: self
                .neighbours
                .unwrap_or(SecAggConfig::default().neighbours),
            threshold: 0,
            clip_range: self.clip_range,
            bits: self.bits,
        };
        let k = base.neighbourhood_size(n);
        Ok(SecAggConfig {
            threshold: self.threshold.unwrap_or(k / 2 + 1),
            ..base
        })
    }

    /// Refuses a zero weight cap, a stage deadline that is not a positive
    /// number of seconds, and protocol parameters that do not hold for the
    /// smallest round the federation runs (`min_clients` nodes,
    /// `num_parameters` values each); larger rounds shrink the quantization
    /// scale so that their sums cannot wrap either.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key (`secure_aggregation` for the
    /// protocol's own refusals, with its reason).
    pub fn validate(&self, min_clients: usize, num_parameters: usize) -> Result<(), ConfigError> {
        if self.weight_cap == 0 {
            return Err(invalid(
                "secure_aggregation.weight_cap",
                "must be at least 1",
            ));
        }
        if let Some(secs) = self.stage_deadline_secs
            && !(secs.is_finite() && secs > 0.0)
        {
            return Err(invalid(
                "secure_aggregation.stage_deadline_secs",
                format!("must be a positive number of seconds, got {secs}"),
            ));
        }
        if self.threat_model.is_some() && (self.neighbours.is_some() || self.threshold.is_some()) {
            return Err(invalid(
                "secure_aggregation.threat_model",
                "derives neighbours and threshold: leave those two unset",
            ));
        }
        self.for_round(min_clients)
            .and_then(|config| config.validate(min_clients, num_parameters))
            .map_err(|e| invalid("secure_aggregation", e.to_string()))
    }
}
