//! `cohort-privacy`: ε for a training schedule, σ for a budget, or what a
//! ledger has spent against each observer.
//!
//! ```text
//! cohort-privacy epsilon --sampling-rate Q --noise-multiplier S --steps T --delta D \
//!     [--accountant rdp|pld] [--conversion classic|improved]
//! cohort-privacy calibrate --epsilon E --delta D --sampling-rate Q --steps T \
//!     [--accountant rdp|pld] [--tolerance TOL]
//! cohort-privacy ledger FILE [--accountant rdp|pld] [--conversion classic|improved]
//! ```

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use cohort_privacy::{
    Accountant, Conversion, DpEvent, Observer, PldAccountant, PrivacyBudget, PrivacyLedger,
    RdpAccountant, calibrate::DEFAULT_TOLERANCE, calibrate_mechanism,
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
        /// The noise: the continuous Gaussian, or the exact discrete
        /// Gaussian on a grid (the central placement's; RDP only).
        #[arg(long, value_enum, default_value_t = MechanismKind::Gaussian)]
        mechanism: MechanismKind,
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
        /// The noise σ is calibrated for; `grid-gaussian` is what a
        /// coordinator with central placement charges (RDP only).
        #[arg(long, value_enum, default_value_t = MechanismKind::Gaussian)]
        mechanism: MechanismKind,
    },
    /// Print a privacy ledger's budget and ε against each observer.
    Ledger {
        /// The ledger as JSON (a node's `--dp-sgd-ledger` file, or a
        /// coordinator's ledger exported as JSON).
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = AccountantKind::Rdp)]
        accountant: AccountantKind,
        /// RDP→(ε, δ) conversion; RDP accountant only.
        #[arg(long, value_enum)]
        conversion: Option<ConversionKind>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AccountantKind {
    Rdp,
    Pld,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MechanismKind {
    Gaussian,
    GridGaussian,
}

impl MechanismKind {
    /// `steps` runs of this noise at rate q and multiplier σ.
    fn event(self, sampling_rate: f64, sigma: f64, steps: u64) -> cohort_privacy::Result<DpEvent> {
        match self {
            Self::Gaussian => DpEvent::poisson_sampled_gaussian(sampling_rate, sigma, steps),
            Self::GridGaussian => {
                DpEvent::poisson_sampled_discrete_gaussian(sampling_rate, sigma, steps)
            }
        }
    }
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
            mechanism,
        } => {
            let accountant = accountant(kind, conversion)?;
            let event = mechanism.event(sampling_rate, noise_multiplier, steps)?;
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
            mechanism,
        } => {
            let accountant = accountant(kind, None)?;
            let target = PrivacyBudget::new(epsilon, delta)?;
            let sigma = calibrate_mechanism(target, accountant.as_ref(), tolerance, |sigma| {
                Ok(vec![mechanism.event(sampling_rate, sigma, steps)?])
            })
            .context("calibrating the noise multiplier")?;
            println!("{sigma:.6}");
        }
        Command::Ledger {
            file,
            accountant: kind,
            conversion,
        } => print_ledger(&file, accountant(kind, conversion)?.as_ref())?,
    }
    Ok(())
}

fn print_ledger(file: &std::path::Path, accountant: &dyn Accountant) -> Result<()> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the ledger {}", file.display()))?;
    let ledger: PrivacyLedger = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a privacy ledger", file.display()))?;
    let budget = ledger.budget;
    println!(
        "budget: ε = {} at δ = {} (enforced against the released models)",
        budget.epsilon, budget.delta
    );
    println!("rounds recorded: {}", ledger.rounds.len());
    for (observer, label) in [
        (
            Observer::ReleasedModels,
            "against the released models (sample secret from them)",
        ),
        (
            Observer::Coordinator,
            "against the coordinator (knows the sample)",
        ),
    ] {
        let epsilon = ledger
            .epsilon_against(observer, accountant)
            .context("accounting the ledger")?;
        println!("{label}: {epsilon}");
    }
    Ok(())
}
