//! `cohort-coordinator`: run a federation, or manage its PKI.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cohort_coordinator::Coordinator;
use cohort_coordinator::audit::lineage::{Lineage, Source};
use cohort_coordinator::audit::seen_head::SeenHead;
use cohort_coordinator::audit::{self, VerifiedLog, erasure};
use cohort_coordinator::config::FederationConfig;
use cohort_coordinator::store::Store;
use cohort_crypto::pki::{PkiDir, Validity};
use cohort_crypto::tls::connector::{ServerAddress, connect};
use cohort_crypto::tls::{ExpectedServer, TlsFiles};
use cohort_crypto::transparency::AuditSigningKey;
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
    /// Print a stopped coordinator's privacy ledger as JSON: every round's DP
    /// spend against the released models and against the coordinator (read it
    /// with `cohort-privacy ledger FILE`).
    PrivacyLedger {
        /// The coordinator's state folder.
        #[arg(long)]
        state: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the audit log's Merkle tree and check every signed tree head;
    /// on tampering, name the first bad entry.
    Verify {
        #[command(flatten)]
        source: LogSource,
    },
    /// The verified log as JSON: the latest signed head and every entry.
    Export {
        #[command(flatten)]
        source: LogSource,
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
    },
    /// Erasure requests (GDPR Art. 17) from the verified audit log, as JSON:
    /// every step with its time, and whether the one-month deadline passed.
    Erasures {
        #[command(flatten)]
        source: LogSource,
        /// Only requests not closed by their deadline.
        #[arg(long)]
        overdue: bool,
    },
    /// Data lineage from the verified audit log, as JSON: where a model
    /// version came from, or every model version a data set or node influenced.
    Lineage {
        #[command(flatten)]
        source: LogSource,
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

/// Where an audit command reads the log, and what it trusts. Every command
/// verifies the whole log first and answers from the verified entries only.
#[derive(clap::Args)]
struct LogSource {
    /// A stopped coordinator's state folder.
    #[arg(long, required_unless_present = "remote", conflicts_with = "remote")]
    state: Option<PathBuf>,
    /// A running coordinator (host:port), read over its auditor API with an
    /// auditor certificate (--ca, --cert, --key).
    #[arg(long, requires_all = ["ca", "cert", "key"])]
    remote: Option<String>,
    /// The name on the coordinator's certificate (default: the host of --remote).
    #[arg(long, requires = "remote")]
    server_name: Option<String>,
    /// The federation's CA certificate.
    #[arg(long, requires = "remote")]
    ca: Option<PathBuf>,
    /// The auditor's certificate (issued with `pki issue --auditor`).
    #[arg(long, requires = "remote")]
    cert: Option<PathBuf>,
    /// The auditor's private key.
    #[arg(long, requires = "remote")]
    key: Option<PathBuf>,
    /// The audit public key (hex) to trust. Without it, the key recorded in
    /// --seen-head, else the key in the state folder (or the one the
    /// coordinator serves), which proves only that the log is self-consistent.
    #[arg(long)]
    public_key: Option<String>,
    /// A file keeping the last tree head this auditor verified: the log must
    /// extend it (an RFC 9162 consistency proof), and the file then moves on
    /// to the current head. Created on first use.
    #[arg(long)]
    seen_head: Option<PathBuf>,
}

/// A log that verified, and what it was checked against.
struct CheckedLog {
    log: VerifiedLog,
    /// The size of the head seen earlier that the log was shown to extend.
    extends_seen: Option<u64>,
}

impl LogSource {
    async fn checked_log(&self) -> anyhow::Result<CheckedLog> {
        let seen = match &self.seen_head {
            Some(path) => SeenHead::load(path)?,
            None => None,
        };
        // The key the head seen before was signed with is pinned, unless
        // --public-key names one (then the two must agree).
        let pinned = match (&self.public_key, &seen) {
            (Some(text), _) => Some(hex::decode(text.trim()).context("--public-key is not hex")?),
            (None, Some(seen)) => Some(seen.public_key.clone()),
            (None, None) => None,
        };
        let (log, public_key) = match (&self.state, &self.remote) {
            (Some(state), None) => {
                let public_key = match pinned {
                    Some(key) => key,
                    None => AuditSigningKey::load(&state.join("audit-signing.key"))?
                        .public_key()
                        .to_vec(),
                };
                let store = Store::open(state)
                    .context("opening the state (is the coordinator still running?)")?;
                (audit::verify(&store, &public_key)?, public_key)
            }
            (None, Some(address)) => {
                let (Some(ca), Some(cert), Some(key)) = (&self.ca, &self.cert, &self.key) else {
                    anyhow::bail!("--remote needs --ca, --cert and --key");
                };
                let files = TlsFiles {
                    ca_certificate: ca.clone(),
                    certificate: cert.clone(),
                    private_key: key.clone(),
                };
                // An auditor reads the coordinator's log, from no other member.
                let tls = cohort_crypto::tls::client_config(&files, ExpectedServer::coordinator())?;
                let mut server = ServerAddress::new(address);
                if let Some(name) = &self.server_name {
                    server.server_name = name.clone();
                }
                let channel = connect(&server, tls).await?;
                let fetched = audit::remote::fetch_verified(channel, pinned.as_deref()).await?;
                if !fetched.key_pinned {
                    eprintln!(
                        "note: trusting the audit key the coordinator serves ({}) on first use; \
                         pin it with --public-key, or keep --seen-head",
                        hex::encode(&fetched.public_key)
                    );
                }
                (fetched.log, fetched.public_key)
            }
            _ => anyhow::bail!("name exactly one of --state and --remote"),
        };
        let mut extends_seen = None;
        if let Some(seen) = seen {
            seen.check(&log, &public_key)?;
            extends_seen = Some(seen.tree_size);
        }
        if let Some(path) = &self.seen_head {
            SeenHead::of(&log, &public_key).save(path)?;
        }
        Ok(CheckedLog { log, extends_seen })
    }
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
        Command::Audit { command } => audit(command).await,
        Command::PrivacyLedger { state } => privacy_ledger(&state),
    }
}

fn privacy_ledger(state: &std::path::Path) -> anyhow::Result<()> {
    let store =
        Store::open(state).context("opening the state (is the coordinator still running?)")?;
    let Some(ledger) = store.privacy_ledger()? else {
        anyhow::bail!(
            "{} holds no privacy ledger: the federation runs without [privacy]",
            state.display()
        );
    };
    println!("{}", serde_json::to_string_pretty(&ledger)?);
    Ok(())
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

async fn audit(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Lineage {
            source,
            model,
            dataset,
            node,
        } => {
            let log = source.checked_log().await?.log;
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
        AuditCommand::Erasures { source, overdue } => {
            let log = source.checked_log().await?.log;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let mut requests = erasure::statuses(&log.entries, now);
            requests.retain(|r| r.overdue || !overdue);
            println!("{}", serde_json::to_string_pretty(&requests)?);
        }
        AuditCommand::Export {
            source,
            format: ExportFormat::Json,
        } => {
            let log = source.checked_log().await?.log;
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
        AuditCommand::Verify { source } => {
            let CheckedLog { log, extends_seen } = source.checked_log().await?;
            if let Some(size) = extends_seen {
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
