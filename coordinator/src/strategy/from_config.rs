//! The strategy a federation's configuration asks for.

use super::{
    Adaptive, DpFedAvg, FedAvg, FedAvgM, FedOpt, FedProx, Krum, Median, NormBounded, Strategy,
    StrategyError, TrimmedMean,
};
use crate::config::{FederationConfig, StrategyConfig};

/// The strategy a federation's config asks for. Under `[privacy]` it is
/// DP-FedAvg (validation refuses any other `[strategy]` there).
///
/// # Errors
/// [`StrategyError::Privacy`] when the privacy parameters describe no
/// mechanism (validation refuses such a config first).
pub fn for_config(config: &FederationConfig) -> Result<Box<dyn Strategy>, StrategyError> {
    Ok(match &config.privacy {
        Some(privacy) => {
            let strategy = DpFedAvg::new(
                privacy.noise_multiplier,
                privacy.clip_norm,
                config.rounds.fraction,
                privacy.placement,
            )?;
            Box::new(match privacy.adaptive_clipping {
                Some(adaptive) => strategy.with_adaptive_clipping(adaptive)?,
                None => strategy,
            })
        }
        None => build(&config.strategy),
    })
}

/// The strategy `[strategy]` describes, norm-bounded when it asks for it.
fn build(config: &StrategyConfig) -> Box<dyn Strategy> {
    let strategy: Box<dyn Strategy> = match *config {
        StrategyConfig::FedAvg { .. } => Box::new(FedAvg),
        StrategyConfig::FedAvgM {
            server_learning_rate,
            momentum,
            ..
        } => Box::new(FedOpt::new(FedAvgM::new(server_learning_rate, momentum))),
        StrategyConfig::FedProx { proximal_mu, .. } => Box::new(FedProx::new(proximal_mu)),
        StrategyConfig::FedAdam { .. }
        | StrategyConfig::FedYogi { .. }
        | StrategyConfig::FedAdagrad { .. } => match config.adaptive() {
            Some(options) => Box::new(FedOpt::new(Adaptive::new(
                options.second_moment,
                options.server_learning_rate,
                options.beta1,
                options.tau,
            ))),
            // `adaptive()` is `Some` for exactly these three variants.
            None => Box::new(FedAvg),
        },
        StrategyConfig::Median {} => Box::new(Median),
        StrategyConfig::TrimmedMean { trim_fraction } => Box::new(TrimmedMean::new(trim_fraction)),
        StrategyConfig::Krum { byzantine } => Box::new(Krum::single(byzantine)),
        StrategyConfig::MultiKrum { byzantine, select } => Box::new(Krum::multi(byzantine, select)),
    };
    match config.averaging().and_then(|a| a.max_update_norm) {
        Some(bound) => Box::new(NormBounded::new(strategy, bound)),
        None => strategy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let config: StrategyConfig =
                toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            config.validate(5).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(config.name(), name);
            let strategy = build(&config);
            assert_eq!(strategy.name(), name, "{text}");
            assert_eq!(strategy.needs_individual_updates(), individual, "{text}");
            assert_eq!(config.needs_individual_updates(), individual, "{text}");
        }
    }
}
