//! The federation config's `[strategy]` section: which strategy, with which
//! parameters. Tagged by `name`; unknown keys are refused; [`StrategyConfig::validate`]
//! names the key of an impossible value.
//!
//! ```toml
//! [strategy]
//! name = "fedadam"            # fedavg (default), fedavgm, fedprox, fedadam, fedyogi,
//!                             # fedadagrad, median, trimmed_mean, krum, multi_krum
//! server_learning_rate = 0.03
//! beta1 = 0.9
//! beta2 = 0.99
//! tau = 1e-3
//! ```

use serde::{Deserialize, Serialize};

use super::{
    Adaptive, FedAvg, FedAvgM, FedProx, Krum, Median, NormBounded, SecondMoment, Strategy,
    TrimmedMean,
};
use crate::config::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "name", deny_unknown_fields)]
pub enum StrategyConfig {
    /// Example-weighted averaging.
    #[serde(rename = "fedavg")]
    FedAvg {
        /// Norm bounding: clip each node's model change to this L2 norm.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_update_norm: Option<f64>,
    },
    /// FedAvg with server momentum.
    #[serde(rename = "fedavgm")]
    FedAvgM {
        #[serde(default = "one")]
        server_learning_rate: f64,
        #[serde(default = "default_momentum")]
        momentum: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_update_norm: Option<f64>,
    },
    /// FedAvg with a proximal term μ/2·‖w − w_global‖² in the nodes' loss.
    #[serde(rename = "fedprox")]
    FedProx {
        proximal_mu: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_update_norm: Option<f64>,
    },
    #[serde(rename = "fedadam")]
    FedAdam {
        server_learning_rate: f64,
        #[serde(default = "default_beta1")]
        beta1: f64,
        #[serde(default = "default_beta2")]
        beta2: f64,
        #[serde(default = "default_tau")]
        tau: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_update_norm: Option<f64>,
    },
    #[serde(rename = "fedyogi")]
    FedYogi {
        server_learning_rate: f64,
        #[serde(default = "default_beta1")]
        beta1: f64,
        #[serde(default = "default_beta2")]
        beta2: f64,
        #[serde(default = "default_tau")]
        tau: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_update_norm: Option<f64>,
    },
    #[serde(rename = "fedadagrad")]
    FedAdagrad {
        server_learning_rate: f64,
        #[serde(default = "default_beta1")]
        beta1: f64,
        #[serde(default = "default_tau")]
        tau: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_update_norm: Option<f64>,
    },
    /// Coordinate-wise median.
    #[serde(rename = "median")]
    Median,
    /// Coordinate-wise trimmed mean, `trim_fraction` off each end.
    #[serde(rename = "trimmed_mean")]
    TrimmedMean { trim_fraction: f64 },
    /// Krum, tolerating `byzantine` results.
    #[serde(rename = "krum")]
    Krum { byzantine: usize },
    /// Multi-Krum: the mean of the `select` best Krum scores (default n − f).
    #[serde(rename = "multi_krum")]
    MultiKrum {
        byzantine: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        select: Option<usize>,
    },
}

impl Default for StrategyConfig {
    fn default() -> Self {
        Self::FedAvg {
            max_update_norm: None,
        }
    }
}

fn one() -> f64 {
    1.0
}
fn default_momentum() -> f64 {
    0.9
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.99
}
fn default_tau() -> f64 {
    1e-3
}

/// What FedAdam, FedYogi and FedAdagrad are configured with.
struct AdaptiveParameters {
    moment: SecondMoment,
    eta: f64,
    beta1: f64,
    tau: f64,
}

impl AdaptiveParameters {
    fn validate(&self) -> Result<(), ConfigError> {
        positive("strategy.server_learning_rate", self.eta)?;
        rate("strategy.beta1", self.beta1)?;
        if let SecondMoment::Adam { beta2 } | SecondMoment::Yogi { beta2 } = self.moment {
            rate("strategy.beta2", beta2)?;
        }
        positive("strategy.tau", self.tau)
    }
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        problem: problem.into(),
    }
}

fn positive(key: &'static str, value: f64) -> Result<(), ConfigError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(invalid(key, format!("must be positive, got {value}")))
    }
}

/// A decay rate: in [0, 1).
fn rate(key: &'static str, value: f64) -> Result<(), ConfigError> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(key, format!("must be in [0, 1), got {value}")))
    }
}

impl StrategyConfig {
    /// The `name` this config is tagged with.
    pub fn name(&self) -> &'static str {
        match self {
            Self::FedAvg { .. } => "fedavg",
            Self::FedAvgM { .. } => "fedavgm",
            Self::FedProx { .. } => "fedprox",
            Self::FedAdam { .. } => "fedadam",
            Self::FedYogi { .. } => "fedyogi",
            Self::FedAdagrad { .. } => "fedadagrad",
            Self::Median => "median",
            Self::TrimmedMean { .. } => "trimmed_mean",
            Self::Krum { .. } => "krum",
            Self::MultiKrum { .. } => "multi_krum",
        }
    }

    fn max_update_norm(&self) -> Option<f64> {
        match self {
            Self::FedAvg { max_update_norm }
            | Self::FedAvgM {
                max_update_norm, ..
            }
            | Self::FedProx {
                max_update_norm, ..
            }
            | Self::FedAdam {
                max_update_norm, ..
            }
            | Self::FedYogi {
                max_update_norm, ..
            }
            | Self::FedAdagrad {
                max_update_norm, ..
            } => *max_update_norm,
            Self::Median
            | Self::TrimmedMean { .. }
            | Self::Krum { .. }
            | Self::MultiKrum { .. } => None,
        }
    }

    /// The parameters of FedAdam, FedYogi or FedAdagrad; `None` for the others.
    fn adaptive(&self) -> Option<AdaptiveParameters> {
        let (moment, eta, beta1, tau) = match *self {
            Self::FedAdam {
                server_learning_rate,
                beta1,
                beta2,
                tau,
                ..
            } => (
                SecondMoment::Adam { beta2 },
                server_learning_rate,
                beta1,
                tau,
            ),
            Self::FedYogi {
                server_learning_rate,
                beta1,
                beta2,
                tau,
                ..
            } => (
                SecondMoment::Yogi { beta2 },
                server_learning_rate,
                beta1,
                tau,
            ),
            Self::FedAdagrad {
                server_learning_rate,
                beta1,
                tau,
                ..
            } => (SecondMoment::Adagrad, server_learning_rate, beta1, tau),
            _ => return None,
        };
        Some(AdaptiveParameters {
            moment,
            eta,
            beta1,
            tau,
        })
    }

    /// Whether the strategy must see each node's update (the robust
    /// aggregators); see [`Strategy::needs_individual_updates`].
    pub fn needs_individual_updates(&self) -> bool {
        matches!(
            self,
            Self::Median | Self::TrimmedMean { .. } | Self::Krum { .. } | Self::MultiKrum { .. }
        )
    }

    /// The refusal for secure aggregation: it reveals only the sum of the
    /// updates, which a robust aggregator cannot work with. To be called by the
    /// configuration's validation when secure aggregation is on.
    pub fn check_secure_aggregation(&self) -> Result<(), ConfigError> {
        if self.needs_individual_updates() {
            return Err(invalid(
                "strategy.name",
                format!(
                    "is `{}`, which needs every node's individual update, but secure aggregation \
                     reveals only their sum; under secure aggregation use `fedavg` (or another \
                     averaging strategy) with `max_update_norm`: norm bounding is the defence \
                     that works there",
                    self.name()
                ),
            ));
        }
        Ok(())
    }

    /// Refuses impossible values, naming the key. `min_results` is the
    /// federation's `rounds.min_results` (Krum needs 2f + 3 results).
    pub fn validate(&self, min_results: usize) -> Result<(), ConfigError> {
        if let Some(norm) = self.max_update_norm() {
            positive("strategy.max_update_norm", norm)?;
        }
        match *self {
            Self::FedAvg { .. } | Self::Median => {}
            Self::FedAvgM {
                server_learning_rate,
                momentum,
                ..
            } => {
                positive("strategy.server_learning_rate", server_learning_rate)?;
                rate("strategy.momentum", momentum)?;
            }
            Self::FedProx { proximal_mu, .. } => {
                if !(proximal_mu.is_finite() && proximal_mu >= 0.0) {
                    return Err(invalid(
                        "strategy.proximal_mu",
                        format!("must be finite and non-negative, got {proximal_mu}"),
                    ));
                }
            }
            Self::FedAdam { .. } | Self::FedYogi { .. } | Self::FedAdagrad { .. } => {
                if let Some(adaptive) = self.adaptive() {
                    adaptive.validate()?;
                }
            }
            Self::TrimmedMean { trim_fraction } => {
                if !(0.0..0.5).contains(&trim_fraction) {
                    return Err(invalid(
                        "strategy.trim_fraction",
                        format!(
                            "must be in [0, 0.5): that much is cut from each end, got {trim_fraction}"
                        ),
                    ));
                }
            }
            Self::Krum { byzantine } | Self::MultiKrum { byzantine, .. } => {
                let needed = Krum::min_results(byzantine);
                if min_results < needed {
                    return Err(invalid(
                        "strategy.byzantine",
                        format!(
                            "is {byzantine}, so Krum needs at least 2·{byzantine} + 3 = {needed} \
                             results per round, but rounds.min_results is {min_results}"
                        ),
                    ));
                }
                if let Self::MultiKrum {
                    select: Some(select),
                    ..
                } = *self
                    && select == 0
                {
                    return Err(invalid("strategy.select", "must be at least 1"));
                }
            }
        }
        Ok(())
    }

    /// The strategy this config describes.
    pub fn build(&self) -> Box<dyn Strategy> {
        let strategy: Box<dyn Strategy> = match *self {
            Self::FedAvg { .. } => Box::new(FedAvg),
            Self::FedAvgM {
                server_learning_rate,
                momentum,
                ..
            } => Box::new(FedAvgM::new(server_learning_rate, momentum)),
            Self::FedProx { proximal_mu, .. } => Box::new(FedProx::new(proximal_mu)),
            Self::FedAdam { .. } | Self::FedYogi { .. } | Self::FedAdagrad { .. } => {
                // `adaptive()` is `Some` for exactly these three variants.
                match self.adaptive() {
                    Some(p) => Box::new(Adaptive::new(p.moment, p.eta, p.beta1, p.tau)),
                    None => Box::new(FedAvg),
                }
            }
            Self::Median => Box::new(Median),
            Self::TrimmedMean { trim_fraction } => Box::new(TrimmedMean::new(trim_fraction)),
            Self::Krum { byzantine } => Box::new(Krum::single(byzantine)),
            Self::MultiKrum { byzantine, select } => Box::new(Krum::multi(byzantine, select)),
        };
        match self.max_update_norm() {
            Some(bound) => Box::new(NormBounded::new(strategy, bound)),
            None => strategy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> StrategyConfig {
        toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn every_name_builds_its_strategy() {
        for (text, name, individual) in [
            ("name = \"fedavg\"", "fedavg", false),
            ("name = \"fedavg\"\nmax_update_norm = 2.0", "fedavg", false),
            ("name = \"fedavgm\"", "fedavgm", false),
            ("name = \"fedprox\"\nproximal_mu = 0.01", "fedprox", false),
            (
                "name = \"fedadam\"\nserver_learning_rate = 0.03",
                "fedadam",
                false,
            ),
            (
                "name = \"fedyogi\"\nserver_learning_rate = 0.03",
                "fedyogi",
                false,
            ),
            (
                "name = \"fedadagrad\"\nserver_learning_rate = 0.03",
                "fedadagrad",
                false,
            ),
            ("name = \"median\"", "median", true),
            (
                "name = \"trimmed_mean\"\ntrim_fraction = 0.2",
                "trimmed_mean",
                true,
            ),
            ("name = \"krum\"\nbyzantine = 1", "krum", true),
            (
                "name = \"multi_krum\"\nbyzantine = 1\nselect = 3",
                "multi_krum",
                true,
            ),
        ] {
            let config = parse(text);
            config.validate(5).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(config.name(), name);
            let strategy = config.build();
            assert_eq!(strategy.name(), name, "{text}");
            assert_eq!(strategy.needs_individual_updates(), individual, "{text}");
            assert_eq!(config.needs_individual_updates(), individual, "{text}");
        }
    }

    #[test]
    fn impossible_values_are_named() {
        for (text, key) in [
            (
                "name = \"fedavg\"\nmax_update_norm = 0.0",
                "strategy.max_update_norm",
            ),
            ("name = \"fedavgm\"\nmomentum = 1.0", "strategy.momentum"),
            (
                "name = \"fedprox\"\nproximal_mu = -0.1",
                "strategy.proximal_mu",
            ),
            (
                "name = \"fedadam\"\nserver_learning_rate = 0.0",
                "strategy.server_learning_rate",
            ),
            (
                "name = \"fedyogi\"\nserver_learning_rate = 0.1\nbeta2 = 1.5",
                "strategy.beta2",
            ),
            (
                "name = \"fedadagrad\"\nserver_learning_rate = 0.1\ntau = 0.0",
                "strategy.tau",
            ),
            (
                "name = \"trimmed_mean\"\ntrim_fraction = 0.5",
                "strategy.trim_fraction",
            ),
            ("name = \"krum\"\nbyzantine = 2", "strategy.byzantine"),
            (
                "name = \"multi_krum\"\nbyzantine = 1\nselect = 0",
                "strategy.select",
            ),
        ] {
            let err = parse(text).validate(5).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{text}: {err}");
        }
    }

    #[test]
    fn robust_aggregators_are_refused_under_secure_aggregation_with_the_reason() {
        let err = parse("name = \"krum\"\nbyzantine = 1")
            .check_secure_aggregation()
            .unwrap_err()
            .to_string();
        assert!(err.contains("`strategy.name`"), "{err}");
        assert!(err.contains("individual update"), "{err}");
        assert!(err.contains("max_update_norm"), "{err}");
        parse("name = \"fedavg\"\nmax_update_norm = 1.0")
            .check_secure_aggregation()
            .unwrap();
    }
}
