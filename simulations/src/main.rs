//! `cohort-sim`: run whole federations on one machine.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, Subcommand};
use cohort_coordinator::config::{
    AccountantKind, NoisePlacement, PrivacyConfig, SecureAggregationConfig,
};
use cohort_coordinator::store::postgres::PostgresSettings;
use cohort_proto::logging::{self, LogFormat};
use cohort_sim::demo::{self, DemoOptions};
use cohort_sim::progress::{self, Progress};
use cohort_sim::provision::Placement;
use cohort_sim::scenario::{Mode, Observe, Scenario};

#[derive(Parser)]
#[command(
    version,
    about = "Cohort simulations: whole federations over real mutual-TLS gRPC"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written to stderr: `text` (coloured only at a
    /// terminal) or `json` (one object a line).
    #[arg(long, value_enum, global = true, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Write a synthetic data set (gzip CSV): `fraud-sequences`, accounts'
    /// last ten card transactions labelled fraudulent or not (see
    /// `cohort_sim::synthetic`). The shipped data/fraud_sequences.csv.gz is
    /// `--seed 7 --accounts 4000`.
    Generate {
        /// The data set: `fraud-sequences`.
        #[arg(value_parser = ["fraud-sequences"])]
        what: String,
        /// Seed of every draw (the shipped file's is 7).
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Accounts, one row each (the shipped file has 4000).
        #[arg(long, default_value_t = 4000)]
        accounts: usize,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Run a scenario file and write its reports (rounds.csv, rounds.json, summary.json).
    Run {
        /// The scenario (TOML), e.g. simulations/scenarios/digits-iid.toml.
        #[arg(long)]
        scenario: PathBuf,
        /// The run folder; by default runs/<scenario>-<unix time>.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Run every node as a `cohort-node` process (built next to this program)
        /// instead of a task; the same as `mode = "processes"` in the scenario.
        #[arg(long)]
        processes: bool,
        /// Serve the coordinator's `/metrics` and web console during the run
        /// and read them every this many milliseconds (what monitoring costs
        /// a round); the same as `[observe] scrape_interval_ms` in the scenario.
        #[arg(long)]
        scrape_ms: Option<u64>,
        /// Keep the coordinator's state in this empty PostgreSQL database
        /// (postgres://user@host:port/db) instead of a sled folder.
        #[arg(long)]
        postgres: Option<String>,
    },
    /// Lay a scenario out for several machines: PKI, coordinator config, and one
    /// folder per node with its data and its `cohort-node run` command.
    Provision {
        #[arg(long)]
        scenario: PathBuf,
        /// A new (or empty) folder to write into.
        #[arg(long)]
        out: PathBuf,
        /// host:port at which the nodes will reach the coordinator; the host goes
        /// on its certificate.
        #[arg(long, default_value = "localhost:7443")]
        coordinator_address: String,
        /// The socket the coordinator listens on.
        #[arg(long, default_value = "0.0.0.0:7443")]
        listen: std::net::SocketAddr,
    },
    /// Accuracy against ε: the scenario once per budget (σ calibrated to spend it) and once without DP.
    Sweep {
        /// A scenario with a [privacy] section (its clip_norm and delta are kept).
        #[arg(long)]
        scenario: PathBuf,
        /// Budgets, comma-separated; `inf` runs without DP.
        #[arg(long, value_delimiter = ',', default_value = "1,3,8,inf")]
        epsilons: Vec<String>,
        /// The output folder; by default runs/<scenario>-sweep-<unix time>.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The framework's cost per round, stage by stage: n nodes, a model of about
    /// d parameters; writes bench.csv and bench.json beside the run's reports.
    Bench(BenchArgs),
    /// Ten hospitals, breast-cancer data split non-IID, 20 FedAvg rounds.
    Demo {
        #[arg(long, default_value_t = 10)]
        nodes: usize,
        #[arg(long, default_value_t = 20)]
        rounds: u64,
        /// Dirichlet concentration of the label skew.
        #[arg(long, default_value_t = 0.5)]
        alpha: f64,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Print each hospital's rows per class.
        #[arg(long)]
        show_partition: bool,
        /// Train with client-level DP-FedAvg under this ε budget.
        #[arg(long)]
        dp_epsilon: Option<f64>,
        /// DP noise multiplier σ.
        #[arg(long, default_value_t = 1.0, requires = "dp_epsilon")]
        noise_multiplier: f64,
        /// DP clip norm C of one node's model change.
        #[arg(long, default_value_t = 1.0, requires = "dp_epsilon")]
        clip_norm: f64,
        #[arg(long, default_value_t = 1e-5, requires = "dp_epsilon")]
        delta: f64,
        /// Aggregate under secure aggregation (SecAgg+): the coordinator sees only the sum.
        #[arg(long)]
        secure_aggregation: bool,
    },
}

/// `cohort-sim bench`'s options (see `cohort_sim::bench::BenchOptions`).
#[derive(clap::Args)]
struct BenchArgs {
    /// Nodes, all sampled every round.
    #[arg(long, default_value_t = 10)]
    nodes: usize,
    /// About how many model parameters (d); an MLP on digits of 75·h + 10.
    #[arg(long, default_value_t = 100_000)]
    parameters: usize,
    #[arg(long, default_value_t = 5)]
    rounds: u64,
    /// Aggregate under secure aggregation (SecAgg+).
    #[arg(long)]
    secure_aggregation: bool,
    /// Under secure aggregation: neighbours per node (k); default min(40, n − 1).
    #[arg(long, requires = "secure_aggregation")]
    neighbours: Option<usize>,
    /// Nodes do not train: each sends the global model plus seeded noise.
    #[arg(long)]
    skip_training: bool,
    /// The skipping nodes' noise (standard deviation per coordinate).
    #[arg(long, default_value_t = 1e-3, requires = "skip_training")]
    noise_std: f64,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// The run folder; by default runs/bench-<unix time>.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Writes `cohort_sim::synthetic::fraud_sequences` as gzip CSV to `out`.
fn generate_fraud_sequences(seed: u64, accounts: usize, out: &Path) -> anyhow::Result<()> {
    let csv = cohort_sim::synthetic::fraud_sequences(seed, accounts);
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::best());
    std::io::Write::write_all(&mut gz, csv.as_bytes())?;
    gz.finish()?;
    println!(
        "{accounts} accounts (seed {seed}) written to {}",
        out.display()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init(cli.log_format, "warn");
    match cli.command {
        Command::Run {
            scenario,
            out,
            processes,
            scrape_ms,
            postgres,
        } => run(&scenario, out, processes, scrape_ms, postgres).await?,
        Command::Provision {
            scenario,
            out,
            coordinator_address,
            listen,
        } => {
            let placement = Placement {
                coordinator_address,
                listen,
            };
            provision(&scenario, &out, &placement)?;
        }
        Command::Sweep {
            scenario,
            epsilons,
            out,
        } => sweep(&scenario, &epsilons, out).await?,
        Command::Bench(args) => bench(args).await?,
        Command::Generate {
            what: _,
            seed,
            accounts,
            out,
        } => generate_fraud_sequences(seed, accounts, &out)?,
        Command::Demo {
            nodes,
            rounds,
            alpha,
            seed,
            show_partition,
            dp_epsilon,
            noise_multiplier,
            clip_norm,
            delta,
            secure_aggregation,
        } => {
            let options = DemoOptions {
                data: demo::bundled("breast_cancer.csv"),
                nodes,
                rounds,
                alpha,
                seed,
                show_partition,
                privacy: dp_epsilon.map(|epsilon| PrivacyConfig {
                    noise_multiplier,
                    clip_norm,
                    epsilon,
                    delta,
                    accountant: AccountantKind::Rdp,
                    // Under secure aggregation the nodes add the noise.
                    placement: if secure_aggregation {
                        NoisePlacement::Distributed
                    } else {
                        NoisePlacement::Central
                    },
                    adaptive_clipping: None,
                }),
                secure_aggregation: secure_aggregation.then(SecureAggregationConfig::default),
            };
            let summary = demo::run(&options).await?;
            anyhow::ensure!(
                summary.final_accuracy.is_finite(),
                "no node reported an evaluation"
            );
        }
    }
    Ok(())
}

/// Writes the scenario's deployment folders into `out` and says how to start
/// them.
fn provision(scenario: &Path, out: &Path, placement: &Placement) -> anyhow::Result<()> {
    let (name, _) = run_folder(scenario, "", None)?;
    let loaded = Scenario::load(scenario)?;
    let written = cohort_sim::provision::provision(&loaded, &name, out, placement)
        .with_context(|| format!("provisioning {}", scenario.display()))?;
    println!(
        "{}: {} nodes in {}\nstart the coordinator with `cohort-coordinator serve --config {}`,\nthen each node with its run.sh (see {})",
        written.federation_id,
        written.node_dirs.len(),
        out.display(),
        written.config.display(),
        out.join("README.md").display()
    );
    Ok(())
}

/// The scenario's name (its file stem) and the output folder: `out`, or
/// runs/<name><suffix>-<unix time>.
fn run_folder(
    path: &Path,
    suffix: &str,
    out: Option<PathBuf>,
) -> anyhow::Result<(String, PathBuf)> {
    let name = path
        .file_stem()
        .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned());
    let out = match out {
        Some(out) => out,
        None => {
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
            PathBuf::from("runs").join(format!("{name}{suffix}-{now}"))
        }
    };
    Ok((name, out))
}

async fn sweep(path: &Path, epsilons: &[String], out: Option<PathBuf>) -> anyhow::Result<()> {
    let budgets = epsilons
        .iter()
        .map(|e| match e.trim() {
            "inf" | "∞" => Ok(None),
            text => match text.parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => Ok(Some(v)),
                _ => anyhow::bail!("--epsilons: {text:?} is not a positive number or `inf`"),
            },
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let scenario = Scenario::load(path)?;
    let (name, out) = run_folder(path, "-sweep", out)?;
    let bar = indicatif::ProgressBar::new(budgets.len() as u64 * scenario.rounds.count);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rounds  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let points = cohort_sim::sweep::sweep(&scenario, &name, &budgets, &out, |epsilon, p| {
        if let Progress::Round(row) = p {
            bar.inc(1);
            bar.set_message(format!(
                "ε budget {}: round {} accuracy {:.3}",
                epsilon.map_or_else(|| "∞".to_owned(), |e| e.to_string()),
                row.round,
                row.accuracy.unwrap_or(f64::NAN)
            ));
        }
    })
    .await
    .with_context(|| format!("sweeping {}", path.display()))?;
    bar.finish_and_clear();
    println!("epsilon_target  sigma    epsilon_spent  rounds  final_accuracy");
    for p in &points {
        println!(
            "{:>14}  {:>6}  {:>13}  {:>6}  {:>14}",
            p.epsilon_target
                .map_or_else(|| "inf".to_owned(), |e| e.to_string()),
            p.noise_multiplier
                .map_or_else(|| "-".to_owned(), |s| format!("{s:.3}")),
            p.epsilon_spent
                .map_or_else(|| "-".to_owned(), |e| format!("{e:.3}")),
            p.rounds_completed,
            p.final_accuracy
                .map_or_else(|| "-".to_owned(), |a| format!("{:.2}%", a * 100.0)),
        );
    }
    println!("reports in {}", out.display());
    Ok(())
}

async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let options = cohort_sim::bench::BenchOptions {
        nodes: args.nodes,
        parameters: args.parameters,
        rounds: args.rounds,
        secure_aggregation: args.secure_aggregation,
        neighbours: args.neighbours,
        skip_training: args.skip_training,
        noise_std: args.noise_std,
        seed: args.seed,
    };
    let (_, out) = run_folder(Path::new("bench"), "", args.out)?;
    let hidden = cohort_sim::bench::hidden_width(options.parameters);
    println!(
        "bench: {} nodes, d = {} (MLP [{hidden}]), {}{}, {} rounds",
        options.nodes,
        cohort_sim::bench::mlp_parameters(hidden),
        if options.secure_aggregation {
            "secure aggregation"
        } else {
            "in the clear"
        },
        if options.skip_training {
            ", no training"
        } else {
            ", one local epoch"
        },
        options.rounds
    );
    let outcome = cohort_sim::bench::bench(&options, &out, |row| println!("{}", row.line()))
        .await
        .context("running the bench")?;
    println!("\n{}", cohort_sim::bench::summary(&outcome.rows));
    if let Some(bytes) = outcome.run.summary.peak_memory_bytes {
        println!("peak memory {:.1} MiB", bytes as f64 / (1024.0 * 1024.0));
    }
    println!(
        "bench.csv, bench.json and the run's reports in {}",
        out.display()
    );
    let off: Vec<u64> = outcome
        .rows
        .iter()
        .filter(|r| !r.adds_up)
        .map(|r| r.round)
        .collect();
    anyhow::ensure!(
        off.is_empty(),
        "the parts of rounds {off:?} miss more than 5 % of their time"
    );
    Ok(())
}

async fn run(
    path: &Path,
    out: Option<PathBuf>,
    processes: bool,
    scrape_ms: Option<u64>,
    postgres: Option<String>,
) -> anyhow::Result<()> {
    let scenario = scenario_to_run(path, processes, scrape_ms, postgres)?;
    let (name, out) = run_folder(path, "", out)?;
    println!(
        "{name}: {} nodes{}, {} split {}, {} rounds of {} (seed {})",
        scenario.nodes,
        match scenario.mode {
            Mode::Tasks => "",
            Mode::Processes => " (cohort-node processes)",
        },
        scenario.data.name(),
        scenario.partition.describe(),
        scenario.rounds.count,
        scenario.model.kind,
        scenario.seed
    );
    println!("{}", progress::header(scenario.privacy.is_some()));
    // A bar on a terminal (stderr), plain lines otherwise: the table is the output.
    let bar = indicatif::ProgressBar::new(scenario.rounds.count);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} round {pos}/{len}  {elapsed}  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let outcome = cohort_sim::run::run(&scenario, &name, &out, |p| {
        if let Some(line) = progress::describe(p) {
            if bar.is_hidden() {
                println!("{line}");
            } else {
                bar.println(line);
            }
        }
        if let Progress::Round(row) = p {
            bar.set_position(row.round);
            bar.set_message(format!("accuracy {:.3}", row.accuracy.unwrap_or(f64::NAN)));
        }
    })
    .await
    .with_context(|| format!("running {}", path.display()))?;
    bar.finish_and_clear();
    print_outcome(&outcome, &out);
    anyhow::ensure!(
        outcome.summary.final_accuracy.is_some_and(f64::is_finite),
        "no node reported an evaluation"
    );
    Ok(())
}

/// The scenario at `path` with the command line's overrides: nodes as
/// processes, the operator endpoints scraped, the state in PostgreSQL.
fn scenario_to_run(
    path: &Path,
    processes: bool,
    scrape_ms: Option<u64>,
    postgres: Option<String>,
) -> anyhow::Result<Scenario> {
    let mut scenario = Scenario::load(path)?;
    scenario.postgres = postgres.map(|postgres| PostgresSettings {
        postgres,
        ca_certificate: None,
    });
    if processes {
        scenario.mode = Mode::Processes;
        scenario.check_processes()?;
    }
    if let Some(scrape_interval_ms) = scrape_ms {
        scenario.observe = Some(Observe { scrape_interval_ms });
        scenario.validate()?;
    }
    Ok(scenario)
}

/// The run's last lines: the rounds reached, peak memory and, with
/// `--scrape-ms`, what each scraped path cost.
fn print_outcome(outcome: &cohort_sim::run::RunOutcome, out: &Path) {
    let s = &outcome.summary;
    let epsilon = s
        .epsilon_spent
        .map(|e| format!(", ε = {e:.3}"))
        .unwrap_or_default();
    println!(
        "\n{} of {} rounds in {:.1} s: accuracy {:.2}% (best {:.2}%), loss {:.4}{epsilon}; reports in {}",
        s.rounds_completed,
        s.rounds_planned,
        s.seconds,
        s.final_accuracy.unwrap_or(f64::NAN) * 100.0,
        s.best_accuracy.unwrap_or(f64::NAN) * 100.0,
        s.final_loss.unwrap_or(f64::NAN),
        out.display()
    );
    if let Some(bytes) = s.peak_memory_bytes {
        println!("peak memory {:.1} MiB", bytes as f64 / (1024.0 * 1024.0));
    }
    for target in outcome.scrapes.iter().flatten() {
        println!(
            "scraped {}: {} answered, {} failed, {:.1} KiB and {:.1} ms each on average",
            target.path,
            target.answered,
            target.failed,
            target.bytes as f64 / 1024.0 / target.answered.max(1) as f64,
            target.seconds * 1000.0 / (target.answered + target.failed).max(1) as f64
        );
    }
}
