//! `[strategy]`: which strategy aggregates the rounds, with which parameters.
//! Tagged by `name`; unknown keys are refused; [`StrategyConfig::validate`]
//! names the key of an impossible value. The strategy itself is built by
//! `strategy::for_config`.
//!
//! ```toml
//! [strategy]
//! name = "fedadam"            # fedavg (default), fedavgm, fedprox, fedadam, fedyogi,
//!                             # fedadagrad, median, trimmed_mean, krum, multi_krum
//! server_learning_rate = 0.03
//! beta1 = 0.9
//! beta2 = 0.99
//! tau = 1e-3
//! max_update_norm = 1.0       # any averaging strategy: norm bounding
//! ```
//!
//! Parameters shared by several strategies are read, checked and used through
//! one type each: [`AveragingOptions`] (every averaging strategy's
//! `max_update_norm`) and [`AdaptiveOptions`] (FedAdam's, FedYogi's and
//! FedAdagrad's η, β1 and τ). They stay fields of each variant rather than
//! `#[serde(flatten)]`ed structs: with flatten, serde reports a missing
//! required key before an unknown one, so a misspelt `server_learning_rate`
//! would be reported as missing instead of named.

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid, one, positive};
use crate::strategy::{Krum, SecondMoment};

/// The `[strategy]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "name", deny_unknown_fields)]
pub enum StrategyConfig {
    /// Example-weighted averaging.
    #[serde(rename = "fedavg")]
    FedAvg {
        /// Norm bounding: clip each node's model change to this L2 norm
        /// (every averaging strategy takes it; see [`AveragingOptions`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_update_norm: Option<f64>,
    },
    /// FedAvg with server momentum.
    #[serde(rename = "fedavgm")]
    FedAvgM {
        /// η: the server's learning rate (default 1).
        #[serde(default = "one")]
        server_learning_rate: f64,
        /// β: the momentum, in [0, 1) (default 0.9).
        #[serde(default = "default_momentum")]
        momentum: f64,
        /// Norm bounding: clip each node's model change to this L2 norm
        /// (every averaging strategy takes it; see [`AveragingOptions`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_update_norm: Option<f64>,
    },
    /// FedAvg with a proximal term μ/2·‖w − w_global‖² in the nodes' loss.
    #[serde(rename = "fedprox")]
    FedProx {
        /// μ, finite and non-negative (0 is FedAvg).
        proximal_mu: f64,
        /// Norm bounding: clip each node's model change to this L2 norm
        /// (every averaging strategy takes it; see [`AveragingOptions`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_update_norm: Option<f64>,
    },
    /// Adam as the server optimizer (Reddi et al. 2021).
    #[serde(rename = "fedadam")]
    FedAdam {
        /// η: the server's learning rate (required).
        server_learning_rate: f64,
        /// β1: the first moment's decay, in [0, 1) (default 0.9).
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// β2: the second moment's decay, in [0, 1) (default 0.99).
        #[serde(default = "default_beta2")]
        beta2: f64,
        /// τ: the adaptivity, bounding each coordinate's step (default 10⁻³).
        #[serde(default = "default_tau")]
        tau: f64,
        /// Norm bounding: clip each node's model change to this L2 norm
        /// (every averaging strategy takes it; see [`AveragingOptions`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_update_norm: Option<f64>,
    },
    /// Yogi as the server optimizer (Reddi et al. 2021).
    #[serde(rename = "fedyogi")]
    FedYogi {
        /// η: the server's learning rate (required).
        server_learning_rate: f64,
        /// β1: the first moment's decay, in [0, 1) (default 0.9).
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// β2: the second moment's decay, in [0, 1) (default 0.99).
        #[serde(default = "default_beta2")]
        beta2: f64,
        /// τ: the adaptivity, bounding each coordinate's step (default 10⁻³).
        #[serde(default = "default_tau")]
        tau: f64,
        /// Norm bounding: clip each node's model change to this L2 norm
        /// (every averaging strategy takes it; see [`AveragingOptions`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_update_norm: Option<f64>,
    },
    /// Adagrad as the server optimizer (Reddi et al. 2021).
    #[serde(rename = "fedadagrad")]
    FedAdagrad {
        /// η: the server's learning rate (required).
        server_learning_rate: f64,
        /// β1: the first moment's decay, in [0, 1) (default 0.9).
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// τ: the adaptivity, bounding each coordinate's step (default 10⁻³).
        #[serde(default = "default_tau")]
        tau: f64,
        /// Norm bounding: clip each node's model change to this L2 norm
        /// (every averaging strategy takes it; see [`AveragingOptions`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_update_norm: Option<f64>,
    },
    /// Coordinate-wise median. A struct variant with no fields, not a unit
    /// one: serde lets a unit variant of a tagged enum ignore unknown keys.
    #[serde(rename = "median")]
    Median {},
    /// Coordinate-wise trimmed mean, `trim_fraction` off each end.
    #[serde(rename = "trimmed_mean")]
    TrimmedMean {
        /// Fraction cut from each end, in [0, 0.5).
        trim_fraction: f64,
    },
    /// Krum, tolerating `byzantine` results.
    #[serde(rename = "krum")]
    Krum {
        /// f: the Byzantine results tolerated (a round needs 2f + 3).
        byzantine: usize,
    },
    /// Multi-Krum: the mean of the `select` best Krum scores (default n − f).
    #[serde(rename = "multi_krum")]
    MultiKrum {
        /// f: the Byzantine results tolerated (a round needs 2f + 3).
        byzantine: usize,
        /// m: how many of the best-scored results are averaged (default n − f).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        select: Option<usize>,
    },
}

/// What every averaging strategy (FedAvg, FedAvgM, FedProx and the adaptive
/// optimizers) accepts besides its own parameters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AveragingOptions {
    /// Norm bounding: clip each node's model change to this L2 norm.
    pub max_update_norm: Option<f64>,
}

/// The parameters FedAdam, FedYogi and FedAdagrad share (Reddi et al. 2021,
/// Algorithm 2), and how their second moment moves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveOptions {
    /// η: the server's learning rate.
    pub server_learning_rate: f64,
    /// β1: the first moment's decay.
    pub beta1: f64,
    /// τ: the adaptivity.
    pub tau: f64,
    /// Which optimizer, with its β2 where it has one.
    pub second_moment: SecondMoment,
}

impl Default for StrategyConfig {
    fn default() -> Self {
        Self::FedAvg {
            max_update_norm: None,
        }
    }
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

/// A decay rate: in [0, 1).
fn rate(key: &'static str, value: f64) -> Result<(), ConfigError> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(key, format!("must be in [0, 1), got {value}")))
    }
}

impl AveragingOptions {
    /// Refuses a norm bound that is not positive.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for `strategy.max_update_norm`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.max_update_norm {
            Some(norm) => positive("strategy.max_update_norm", norm),
            None => Ok(()),
        }
    }
}

impl AdaptiveOptions {
    /// Refuses η or τ not positive and β1 (and β2, for the optimizers that
    /// have one) outside [0, 1).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("strategy.server_learning_rate", self.server_learning_rate)?;
        rate("strategy.beta1", self.beta1)?;
        if let SecondMoment::Adam { beta2 } | SecondMoment::Yogi { beta2 } = self.second_moment {
            rate("strategy.beta2", beta2)?;
        }
        positive("strategy.tau", self.tau)
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
            Self::Median {} => "median",
            Self::TrimmedMean { .. } => "trimmed_mean",
            Self::Krum { .. } => "krum",
            Self::MultiKrum { .. } => "multi_krum",
        }
    }

    /// The averaging options of an averaging strategy; `None` for the robust
    /// aggregators.
    pub fn averaging(&self) -> Option<AveragingOptions> {
        match *self {
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
            } => Some(AveragingOptions { max_update_norm }),
            Self::Median {}
            | Self::TrimmedMean { .. }
            | Self::Krum { .. }
            | Self::MultiKrum { .. } => None,
        }
    }

    /// The parameters of FedAdam, FedYogi or FedAdagrad; `None` for the others.
    pub fn adaptive(&self) -> Option<AdaptiveOptions> {
        let (server_learning_rate, beta1, tau, second_moment) = match *self {
            Self::FedAdam {
                server_learning_rate,
                beta1,
                beta2,
                tau,
                ..
            } => (
                server_learning_rate,
                beta1,
                tau,
                SecondMoment::Adam { beta2 },
            ),
            Self::FedYogi {
                server_learning_rate,
                beta1,
                beta2,
                tau,
                ..
            } => (
                server_learning_rate,
                beta1,
                tau,
                SecondMoment::Yogi { beta2 },
            ),
            Self::FedAdagrad {
                server_learning_rate,
                beta1,
                tau,
                ..
            } => (server_learning_rate, beta1, tau, SecondMoment::Adagrad),
            _ => return None,
        };
        Some(AdaptiveOptions {
            server_learning_rate,
            beta1,
            tau,
            second_moment,
        })
    }

    /// Whether the strategy must see each node's update (the robust
    /// aggregators); see `Strategy::needs_individual_updates`.
    pub fn needs_individual_updates(&self) -> bool {
        matches!(
            self,
            Self::Median {} | Self::TrimmedMean { .. } | Self::Krum { .. } | Self::MultiKrum { .. }
        )
    }

    /// The refusal for secure aggregation: it reveals only the sum of the
    /// updates, which a robust aggregator cannot work with. To be called by the
    /// configuration's validation when secure aggregation is on.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for `strategy.name`, with the reason.
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
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key.
    pub fn validate(&self, min_results: usize) -> Result<(), ConfigError> {
        if let Some(averaging) = self.averaging() {
            averaging.validate()?;
        }
        match *self {
            Self::FedAvg { .. } | Self::Median {} => Ok(()),
            Self::FedAvgM {
                server_learning_rate,
                momentum,
                ..
            } => {
                positive("strategy.server_learning_rate", server_learning_rate)?;
                rate("strategy.momentum", momentum)
            }
            Self::FedProx { proximal_mu, .. } => {
                if proximal_mu.is_finite() && proximal_mu >= 0.0 {
                    Ok(())
                } else {
                    Err(invalid(
                        "strategy.proximal_mu",
                        format!("must be finite and non-negative, got {proximal_mu}"),
                    ))
                }
            }
            Self::FedAdam { .. } | Self::FedYogi { .. } | Self::FedAdagrad { .. } => self
                .adaptive()
                .map_or(Ok(()), |adaptive| adaptive.validate()),
            Self::TrimmedMean { trim_fraction } => {
                if (0.0..0.5).contains(&trim_fraction) {
                    Ok(())
                } else {
                    Err(invalid(
                        "strategy.trim_fraction",
                        format!(
                            "must be in [0, 0.5): that much is cut from each end, got {trim_fraction}"
                        ),
                    ))
                }
            }
            Self::Krum { byzantine } => validate_krum(byzantine, None, min_results),
            Self::MultiKrum { byzantine, select } => validate_krum(byzantine, select, min_results),
        }
    }
}

/// Krum needs 2f + 3 results a round; Multi-Krum averages at least one.
fn validate_krum(
    byzantine: usize,
    select: Option<usize>,
    min_results: usize,
) -> Result<(), ConfigError> {
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
    if select == Some(0) {
        return Err(invalid("strategy.select", "must be at least 1"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> StrategyConfig {
        toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
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

    /// Every averaging strategy takes `max_update_norm`; the adaptive ones
    /// read their shared parameters into one type.
    #[test]
    fn shared_options_are_read_from_every_strategy_that_takes_them() {
        for name in [
            "fedavg",
            "fedavgm",
            "fedprox",
            "fedadam",
            "fedyogi",
            "fedadagrad",
        ] {
            let extra = match name {
                "fedprox" => "proximal_mu = 0.01\n",
                "fedadam" | "fedyogi" | "fedadagrad" => "server_learning_rate = 0.03\n",
                _ => "",
            };
            let config = parse(&format!("name = \"{name}\"\n{extra}max_update_norm = 1.5"));
            assert_eq!(config.name(), name);
            assert_eq!(
                config.averaging().and_then(|a| a.max_update_norm),
                Some(1.5),
                "{name}"
            );
        }
        let adagrad =
            parse("name = \"fedadagrad\"\nserver_learning_rate = 0.1\nbeta1 = 0.5\ntau = 0.01");
        assert_eq!(
            adagrad.adaptive(),
            Some(AdaptiveOptions {
                server_learning_rate: 0.1,
                beta1: 0.5,
                tau: 0.01,
                second_moment: SecondMoment::Adagrad,
            })
        );
        assert_eq!(parse("name = \"median\"").averaging(), None);
        assert_eq!(parse("name = \"fedavg\"").adaptive(), None);
    }

    #[test]
    fn unknown_keys_are_refused_with_the_key_named() {
        for (text, key) in [
            ("name = \"fedadam\"\nserver_lr = 0.03", "server_lr"),
            (
                "name = \"fedadagrad\"\nserver_learning_rate = 0.1\nbeta2 = 0.99",
                "beta2",
            ),
            (
                "name = \"fedavg\"\nserver_learning_rate = 0.1",
                "server_learning_rate",
            ),
            (
                "name = \"fedavg\"\nmax_update_nrom = 1.0",
                "max_update_nrom",
            ),
            (
                "name = \"median\"\nmax_update_norm = 1.0",
                "max_update_norm",
            ),
            ("name = \"krum\"\nbyzantine = 1\nselect = 2", "select"),
        ] {
            let err = toml::from_str::<StrategyConfig>(text)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("unknown field `{key}`")),
                "{text}: {err}"
            );
        }
        let err = toml::from_str::<StrategyConfig>("name = \"fedadam\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("missing field `server_learning_rate`"),
            "{err}"
        );
    }

    /// The store keeps the config as JSON: a stored config reads back, and one
    /// written now has the same keys.
    #[test]
    fn stored_configs_keep_their_flat_keys() {
        let stored = r#"{"name":"fedadam","server_learning_rate":0.03,"beta1":0.9,"beta2":0.99,"tau":0.001,"max_update_norm":2.0}"#;
        let config: StrategyConfig = serde_json::from_str(stored).unwrap();
        let written: serde_json::Value = serde_json::to_value(&config).unwrap();
        assert_eq!(
            written,
            serde_json::from_str::<serde_json::Value>(stored).unwrap()
        );
        let text = toml::to_string(&config).unwrap();
        assert_eq!(parse(&text), config);
        let plain = serde_json::to_string(&StrategyConfig::default()).unwrap();
        assert_eq!(plain, r#"{"name":"fedavg"}"#);
    }
}
