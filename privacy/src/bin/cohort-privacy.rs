//! `cohort-privacy`: ε for a training schedule, or σ for a budget.
//!
//! ```text
//! cohort-privacy epsilon --sampling-rate Q --noise-multiplier S --steps T --delta D \
//!     [--accountant rdp|pld] [--conversion classic|improved]
//! cohort-privacy calibrate --epsilon E --delta D --sampling-rate Q --steps T \
//!     [--accountant rdp|pld] [--tolerance TOL]
//! ```

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use cohort_privacy::{
    Accountant, Conversion, DpEvent, PldAccountant, PrivacyBudget, RdpAccountant,
    calibrate::DEFAULT_TOLERANCE, calibrate_noise_multiplier_with_tolerance,
};

#[derive(Debug, Parser)]
#[command(
    name = "cohort-privacy",
    version,
    about = "Differential-privacy accounting for Cohort"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print ε spent by `steps` Poisson-sampled Gaussian steps at δ.
    Epsilon {
        #[arg(long)]
        sampling_rate: f64,
        #[arg(long)]
        noise_multiplier: f64,
        #[arg(long)]
        steps: u64,
        #[arg(long)]
        delta: f64,
        #[arg(long, value_enum, default_value_t = AccountantKind::Rdp)]
        accountant: AccountantKind,
        /// RDP→(ε, δ) conversion; RDP accountant only.
        #[arg(long, value_enum)]
        conversion: Option<ConversionKind>,
    },
    /// Print the smallest noise multiplier σ meeting (ε, δ).
    Calibrate {
        #[arg(long)]
        epsilon: f64,
        #[arg(long)]
        delta: f64,
        #[arg(long)]
        sampling_rate: f64,
        #[arg(long)]
        steps: u64,
        #[arg(long, value_enum, default_value_t = AccountantKind::Rdp)]
        accountant: AccountantKind,
        /// Relative tolerance on σ.
        #[arg(long, default_value_t = DEFAULT_TOLERANCE)]
        tolerance: f64,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AccountantKind {
    Rdp,
    Pld,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ConversionKind {
    Classic,
    Improved,
}

fn accountant(
    kind: AccountantKind,
    conversion: Option<ConversionKind>,
) -> Result<Box<dyn Accountant>> {
    Ok(match (kind, conversion) {
        (AccountantKind::Rdp, conversion) => Box::new(RdpAccountant::new(match conversion {
            Some(ConversionKind::Classic) => Conversion::Classic,
            Some(ConversionKind::Improved) | None => Conversion::Improved,
        })),
        (AccountantKind::Pld, None) => Box::new(PldAccountant::new()),
        (AccountantKind::Pld, Some(_)) => bail!("--conversion applies only to --accountant rdp"),
    })
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Epsilon {
            sampling_rate,
            noise_multiplier,
            steps,
            delta,
            accountant: kind,
            conversion,
        } => {
            let accountant = accountant(kind, conversion)?;
            let event = DpEvent::poisson_sampled_gaussian(sampling_rate, noise_multiplier, steps)?;
            let epsilon = accountant
                .epsilon(&[event], delta)
                .context("computing epsilon")?;
            println!("{epsilon:.6}");
        }
        Command::Calibrate {
            epsilon,
            delta,
            sampling_rate,
            steps,
            accountant: kind,
            tolerance,
        } => {
            let accountant = accountant(kind, None)?;
            let target = PrivacyBudget::new(epsilon, delta)?;
            let sigma = calibrate_noise_multiplier_with_tolerance(
                target,
                sampling_rate,
                steps,
                accountant.as_ref(),
                tolerance,
            )
            .context("calibrating the noise multiplier")?;
            println!("{sigma:.6}");
        }
    }
    Ok(())
}
