//! `cohort-coordinator`: run a federation, or manage its PKI.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use cohort_coordinator::Coordinator;
use cohort_coordinator::audit::erasure;
use cohort_coordinator::audit::lineage::{Lineage, Source};
use cohort_coordinator::config::FederationConfig;
use cohort_coordinator::store::Store;
use cohort_crypto::pki::{PkiDir, Validity};
use cohort_crypto::transparency::{AuditSigningKey, Hash};
use cohort_crypto::{PeerIdentity, Role};
use tokio::signal::unix::{Signal, SignalKind, signal};

#[derive(Parser)]
#[command(
    version,
    about = "Cohort coordinator: federated rounds over mutual-TLS gRPC"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a federation until it has run its rounds; with
    /// `server.serve_after_finish`, until Ctrl-C or SIGTERM.
    Serve {
        /// The federation's TOML config.
        #[arg(long)]
        config: PathBuf,
    },
    /// Certificate authority for the federation.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// The tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the Merkle tree of a (stopped) coordinator's audit log and check
    /// every signed tree head; on tampering, name the first bad entry.
    Verify {
        /// The coordinator's state folder.
        #[arg(long)]
        state: PathBuf,
        /// The audit public key (hex) to trust; by default the one of the key
        /// in the state folder, which only proves the log is self-consistent.
        #[arg(long)]
        public_key: Option<String>,
        /// The last tree head you saw, as SIZE:ROOT_HEX: the log must extend
        /// it (an RFC 9162 consistency proof is checked).
        #[arg(long)]
        last_seen: Option<String>,
    },
    /// The verified log as JSON: the latest signed head and every entry.
    Export {
        /// The coordinator's state folder.
        #[arg(long)]
        state: PathBuf,
        /// The audit public key (hex) to trust; as for `verify`.
        #[arg(long)]
        public_key: Option<String>,
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
    },
    /// Erasure requests (GDPR Art. 17) from the verified audit log, as JSON:
    /// every step with its time, and whether the one-month deadline passed.
    Erasures {
        /// The coordinator's state folder.
        #[arg(long)]
        state: PathBuf,
        /// The audit public key (hex) to trust; as for `verify`.
        #[arg(long)]
        public_key: Option<String>,
        /// Only requests not closed by their deadline.
        #[arg(long)]
        overdue: bool,
    },
    /// Data lineage from the (verified) audit log, as JSON: where a model
    /// version came from, or every model version a data set or node influenced.
    Lineage {
        /// The coordinator's state folder.
        #[arg(long)]
        state: PathBuf,
        /// The audit public key (hex) to trust; as for `verify`.
        #[arg(long)]
        public_key: Option<String>,
        /// A model version: its rounds, nodes and data set versions back to
        /// the initial model.
        #[arg(long, group = "query")]
        model: Option<String>,
        /// ID or ID@VERSION: every model version trained on it, or on top of
        /// one that was.
        #[arg(long, group = "query")]
        dataset: Option<String>,
        /// A node id: every model version it influenced.
        #[arg(long, group = "query")]
        node: Option<String>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Json,
}

#[derive(Subcommand)]
enum PkiCommand {
    /// Create a new CA (ca.pem, ca.key) in DIR.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Name written into the CA certificate.
        #[arg(long, default_value = "cohort")]
        federation: String,
        #[arg(long, default_value_t = 3650)]
        days: i64,
    },
    /// Issue a certificate: exactly one of --node, --auditor, --coordinator, --requester.
    Issue {
        #[arg(long)]
        dir: PathBuf,
        /// A node (hospital or bank) id, e.g. hospital-a.
        #[arg(long, group = "who")]
        node: Option<String>,
        /// An auditor id.
        #[arg(long, group = "who")]
        auditor: Option<String>,
        /// The coordinator's name (its server certificate).
        #[arg(long, group = "who")]
        coordinator: Option<String>,
        /// A requester of encrypted predictions (outside the consortium), e.g.
        /// clinic-x: may call a node's EncryptedInference service, nothing else.
        #[arg(long, group = "who")]
        requester: Option<String>,
        /// DNS names or IP addresses the holder serves TLS on (repeatable).
        #[arg(long = "san")]
        server_names: Vec<String>,
        #[arg(long, default_value_t = 365)]
        days: i64,
    },
    /// Revoke a certificate: its fingerprint goes into DIR/revoked.txt, which a
    /// coordinator reads at start when `server.revocation_list` points to it.
    Revoke {
        #[arg(long)]
        dir: PathBuf,
        /// The certificate (PEM) to revoke.
        #[arg(long)]
        cert: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve { config } => serve(config).await,
        Command::Pki { command } => pki(command),
        Command::Audit { command } => audit(command),
    }
}

async fn serve(config_path: PathBuf) -> anyhow::Result<()> {
    let config = FederationConfig::load(&config_path)
        .with_context(|| format!("refusing config {}", config_path.display()))?;
    let serve_after_finish = config.server.serve_after_finish;
    let mut stop = StopSignals::install()?;
    let mut coordinator = Coordinator::start(config).await?;
    // One line on stdout that scripts can read (the port, when configured as 0).
    println!(
        "cohort-coordinator listening on {}",
        coordinator.local_addr()
    );
    let head = tokio::select! {
        head = coordinator.wait() => head?,
        signal = stop.received() => {
            tracing::info!(signal, "stopping; the round in flight will be rerun on restart");
            coordinator.shutdown().await;
            return Ok(());
        }
    };
    println!(
        "federation finished: {} rounds, final model {}",
        head.completed_rounds, head.model_version
    );
    if serve_after_finish {
        tracing::info!(
            "serving after finish (model downloads, auditors, erasure reports) until Ctrl-C or SIGTERM"
        );
        tokio::select! {
            signal = stop.received() => tracing::info!(signal, "stopping"),
            stopped = coordinator.engine_stopped() => {
                // Only a failure stops the engine while the coordinator serves.
                if let Err(error) = stopped {
                    coordinator.shutdown().await;
                    return Err(error).context("the round engine stopped while serving after finish");
                }
            }
        }
    } else {
        // Give polling nodes one poll interval to hear that the federation finished.
        let linger = std::time::Duration::from_millis(
            coordinator.federation().config.server.poll_timeout_ms,
        );
        tokio::select! {
            () = tokio::time::sleep(linger) => {}
            signal = stop.received() => tracing::info!(signal, "stopping"),
        }
    }
    coordinator.shutdown().await;
    Ok(())
}

/// The signals that stop `serve` gracefully: Ctrl-C (SIGINT) at a terminal,
/// SIGTERM from a service manager (systemd, Docker, Kubernetes).
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    /// Registered before the coordinator starts, so that a signal during
    /// start-up is not lost (nor kills the process with the store open).
    fn install() -> anyhow::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
        })
    }

    /// The name of the next signal received.
    async fn received(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// The state's audit log, verified against `--public-key` (or the state's own key).
fn verified_log(
    state: &Path,
    public_key: Option<String>,
) -> anyhow::Result<cohort_coordinator::audit::VerifiedLog> {
    let public_key = match public_key {
        Some(text) => hex::decode(text.trim()).context("--public-key is not hex")?,
        None => AuditSigningKey::load(&state.join("audit-signing.key"))?
            .public_key()
            .to_vec(),
    };
    let store =
        Store::open(state).context("opening the state (is the coordinator still running?)")?;
    Ok(cohort_coordinator::audit::verify(&store, &public_key)?)
}

fn audit(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Lineage {
            state,
            public_key,
            model,
            dataset,
            node,
        } => {
            let log = verified_log(&state, public_key)?;
            let lineage = Lineage::from_entries(&log.entries);
            let answer = match (model, dataset, node) {
                (Some(model), None, None) => serde_json::to_string_pretty(&lineage.model(&model)?)?,
                (None, Some(spec), None) => {
                    serde_json::to_string_pretty(&lineage.influenced_by(&Source::dataset(&spec)?))?
                }
                (None, None, Some(node)) => {
                    serde_json::to_string_pretty(&lineage.influenced_by(&Source::Node(node)))?
                }
                _ => anyhow::bail!("name exactly one of --model, --dataset, --node"),
            };
            println!("{answer}");
        }
        AuditCommand::Erasures {
            state,
            public_key,
            overdue,
        } => {
            let log = verified_log(&state, public_key)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let mut requests = erasure::statuses(&log.entries, now);
            requests.retain(|r| r.overdue || !overdue);
            println!("{}", serde_json::to_string_pretty(&requests)?);
        }
        AuditCommand::Export {
            state,
            public_key,
            format: ExportFormat::Json,
        } => {
            let log = verified_log(&state, public_key)?;
            let head = log.head.map(|h| {
                serde_json::json!({
                    "tree_size": h.tree_size,
                    "timestamp_ms": h.timestamp_ms,
                    "root_hash": h.root_hash.to_string(),
                    "signed_tree_head": hex::encode(h.to_bytes()),
                })
            });
            let export = serde_json::json!({ "head": head, "entries": log.entries });
            println!("{}", serde_json::to_string_pretty(&export)?);
        }
        AuditCommand::Verify {
            state,
            public_key,
            last_seen,
        } => {
            let log = verified_log(&state, public_key)?;
            if let Some(seen) = last_seen {
                let (size, root) = seen
                    .split_once(':')
                    .context("--last-seen is SIZE:ROOT_HEX")?;
                let size: u64 = size.parse().context("--last-seen: SIZE is not a number")?;
                let root = Hash::from_hex(root).context("--last-seen: ROOT_HEX")?;
                cohort_coordinator::audit::check_consistency(&log, size, &root)?;
                println!("consistent with the tree head seen at size {size}");
            }
            let head = log.head.map_or_else(
                || "empty log".to_owned(),
                |h| format!("latest head: {} entries, root {}", h.tree_size, h.root_hash),
            );
            println!(
                "audit log verified: {} entries, {} signed tree heads; {head}",
                log.entries.len(),
                log.heads_checked
            );
        }
    }
    Ok(())
}

fn pki(command: PkiCommand) -> anyhow::Result<()> {
    match command {
        PkiCommand::Init {
            dir,
            federation,
            days,
        } => {
            PkiDir::new(&dir).init(&federation, Validity::days_from_now(days)?)?;
            println!("CA created in {}", dir.display());
        }
        PkiCommand::Issue {
            dir,
            node,
            auditor,
            coordinator,
            requester,
            server_names,
            days,
        } => {
            let identity = match (node, auditor, coordinator, requester) {
                (Some(id), None, None, None) => PeerIdentity::new(Role::Node, &id)?,
                (None, Some(id), None, None) => PeerIdentity::new(Role::Auditor, &id)?,
                (None, None, Some(id), None) => PeerIdentity::new(Role::Coordinator, &id)?,
                (None, None, None, Some(id)) => PeerIdentity::new(Role::Requester, &id)?,
                _ => anyhow::bail!(
                    "name exactly one of --node, --auditor, --coordinator, --requester"
                ),
            };
            let files = PkiDir::new(&dir).issue(
                &identity,
                &server_names,
                Validity::days_from_now(days)?,
            )?;
            println!(
                "issued {identity}: {} (key {}, mode 0600)",
                files.certificate.display(),
                files.private_key.display()
            );
        }
        PkiCommand::Revoke { dir, cert } => {
            let pki = PkiDir::new(&dir);
            let (identity, fingerprint) = pki.revoke(&cert)?;
            println!(
                "revoked {identity} ({fingerprint}) in {}; restart the coordinator to apply it",
                pki.revocation_list().display()
            );
        }
    }
    Ok(())
}
