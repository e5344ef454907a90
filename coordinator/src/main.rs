//! `cohort-coordinator`: run a federation, or manage its PKI.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cohort_coordinator::Coordinator;
use cohort_coordinator::audit::lineage::{Lineage, Source};
use cohort_coordinator::audit::remote::{FetchedLog, Pins};
use cohort_coordinator::audit::seen_head::{self, Comparison, SeenHead};
use cohort_coordinator::audit::{self, VerifiedLog, erasure};
use cohort_coordinator::config::{FederationConfig, ModelConfig};
use cohort_coordinator::export::stored_model;
use cohort_coordinator::federation::summary::FinalSummary;
use cohort_coordinator::store::{PostgresSettings, Store, StoreLocation};
use cohort_crypto::pki::{PkiDir, Validity};
use cohort_crypto::tls::connector::{ServerAddress, connect};
use cohort_crypto::tls::{ExpectedServer, TlsFiles};
use cohort_crypto::transparency::{AuditSigningKey, LogIdentity};
use cohort_crypto::{PeerIdentity, Role};
use cohort_proto::export::{ExportFormat, ModelFile};
use cohort_proto::logging::{self, LogFormat};
use tokio::signal::unix::{Signal, SignalKind, signal};

#[derive(Parser)]
#[command(
    version,
    about = "Cohort coordinator: federated rounds over mutual-TLS gRPC"
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
    /// Serve a federation until it has run its rounds; with
    /// `server.serve_after_finish`, until Ctrl-C or SIGTERM.
    Serve {
        /// The federation's TOML config.
        #[arg(long)]
        config: PathBuf,
        /// On PostgreSQL: start with settings other than those the federation
        /// ran with (stop every coordinator first). Without it a coordinator
        /// refuses them, so that a standby cannot change them at a failover.
        #[arg(long)]
        change_settings: bool,
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
        #[command(flatten)]
        state: StateArgs,
    },
    /// The federation's models.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// The state store.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy a stopped coordinator's state folder into an empty PostgreSQL
    /// database (one transaction), then verify the audit log there against
    /// the folder's audit key. Then point `[server] store` at the database.
    Migrate {
        /// The coordinator's state folder (stopped).
        #[arg(long)]
        from: PathBuf,
        /// The empty target database (`postgres://user:password@host/db`).
        #[arg(long)]
        to: String,
        /// PEM CA certificate the database server's certificate must chain
        /// to: the connection is TLS, verified against it.
        #[arg(long)]
        database_ca: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Check a safetensors file of a model's first parameters (as the node
    /// SDK writes it, with its descriptor in the metadata) and print the
    /// `[model]` section that makes it the federation's model. The
    /// coordinator reads the file at the federation's first start and logs
    /// its SHA-256 before the model becomes the head.
    Init {
        /// The safetensors file.
        #[arg(long)]
        from: PathBuf,
        /// Width of a data row, label excluded.
        #[arg(long)]
        num_features: u32,
        /// Number of labels.
        #[arg(long)]
        num_classes: u32,
    },
    /// Write a model version of a stopped coordinator as ONNX (raw features
    /// in, the feature scaling folded in; logits and probabilities out) or
    /// safetensors (tensors, with architecture and scaling in its metadata).
    /// Refuses a version an erasure tainted.
    Export {
        #[command(flatten)]
        state: StateArgs,
        /// The model version; default: the head (the final model).
        #[arg(long)]
        version: Option<String>,
        /// `onnx` or `safetensors`.
        #[arg(long)]
        format: ExportFormat,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
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
        #[arg(long, value_enum, default_value_t = AuditExportFormat::Json)]
        format: AuditExportFormat,
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
    /// Compare two seen-head files (two auditors' views of one log, or one
    /// auditor's at two times). Exit 0: one log, the smaller head a prefix of
    /// the larger (equal heads, or both consistent with the log given by
    /// --state or --remote). Exit 1: a split view (signed heads no single log
    /// can have produced), heads of different logs, or an error. Exit 3:
    /// different sizes and no log to decide.
    CompareHeads {
        /// A seen-head file (`--seen-head` of the other audit commands).
        a: PathBuf,
        /// Another seen-head file.
        b: PathBuf,
        /// The log both heads claim to be of, to prove the smaller a prefix
        /// of the larger.
        #[command(flatten)]
        location: LogLocation,
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

/// Where an audit command reads the log: a stopped coordinator's state or a
/// running coordinator's auditor API. Commands that need a log require one of
/// the two; `compare-heads` takes one optionally.
#[derive(clap::Args)]
struct LogLocation {
    /// A stopped coordinator's state (`--state`, or `--postgres`).
    #[command(flatten)]
    state: StateArgs,
    /// A running coordinator (host:port), read over its auditor API with an
    /// auditor certificate (--ca, --cert, --key). Only a server whose
    /// certificate is the coordinator's (`cohort://coordinator/...`) is read.
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
}

/// Where an audit command reads the log, and what it trusts. Every command
/// verifies the whole log first and answers from the verified entries only.
#[derive(clap::Args)]
struct LogSource {
    #[command(flatten)]
    location: LogLocation,
    /// The audit public key (hex) to trust. Without it, the key recorded in
    /// --seen-head, else the key in the state folder (or the one the
    /// coordinator serves), which proves only that the log is self-consistent.
    #[arg(long)]
    public_key: Option<String>,
    /// The federation whose log this is: every signed head must name it.
    /// Without it, the one recorded in --seen-head, else the state folder's
    /// (or the one the coordinator serves).
    #[arg(long)]
    federation_id: Option<String>,
    /// A file keeping the last tree head this auditor verified: the log must
    /// extend it (an RFC 9162 consistency proof), and the file then moves on
    /// to the current head. Created on first use.
    #[arg(long)]
    seen_head: Option<PathBuf>,
}

/// Where an offline command finds a stopped coordinator's state: its state
/// folder, or the PostgreSQL database its `[server] store` names.
#[derive(clap::Args)]
struct StateArgs {
    /// The coordinator's state folder (its sled database, and the audit
    /// signing key whose public half the audit commands trust by default).
    #[arg(long)]
    state: Option<PathBuf>,
    /// The coordinator's PostgreSQL database (`postgres://user:password@host/db`),
    /// read instead of the state folder's sled database.
    #[arg(long)]
    postgres: Option<String>,
    /// PEM CA certificate the database server's certificate must chain to:
    /// the connection is TLS, verified against it.
    #[arg(long, requires = "postgres")]
    database_ca: Option<PathBuf>,
}

impl StateArgs {
    /// Whether a state was named at all.
    fn is_given(&self) -> bool {
        self.state.is_some() || self.postgres.is_some()
    }

    /// The database when `--postgres` names one, else the state folder.
    fn location(&self) -> anyhow::Result<StoreLocation> {
        match (&self.postgres, &self.state) {
            (Some(url), _) => Ok(StoreLocation::Postgres(database(
                "--postgres",
                url.clone(),
                self.database_ca.clone(),
            )?)),
            (None, Some(folder)) => Ok(StoreLocation::Folder(folder.clone())),
            (None, None) => anyhow::bail!("name the state: --state FOLDER or --postgres URL"),
        }
    }

    /// The store, opened.
    async fn open(&self) -> anyhow::Result<Store> {
        let location = self.location()?;
        let hint = match location {
            StoreLocation::Folder(_) => " (is the coordinator still running?)",
            StoreLocation::Postgres(_) => "",
        };
        Store::open(&location)
            .await
            .with_context(|| format!("opening the {location}{hint}"))
    }
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
        // The key and federation of the head seen before are pinned, unless
        // --public-key or --federation-id name them (then they must agree).
        let pins = Pins {
            public_key: match (&self.public_key, &seen) {
                (Some(text), _) => {
                    Some(hex::decode(text.trim()).context("--public-key is not hex")?)
                }
                (None, Some(seen)) => Some(seen.public_key.clone()),
                (None, None) => None,
            },
            federation_id: self
                .federation_id
                .clone()
                .or_else(|| seen.as_ref().map(|seen| seen.federation_id.clone())),
        };
        let (log, identity) = self.location.verified_log(&pins).await?;
        let mut extends_seen = None;
        if let Some(seen) = seen {
            seen.check(&log, &identity)?;
            extends_seen = Some(seen.tree_size);
        }
        if let Some(path) = &self.seen_head {
            SeenHead::of(&log, &identity).save(path)?;
        }
        Ok(CheckedLog { log, extends_seen })
    }
}

impl LogLocation {
    /// Whether a log was named at all.
    fn is_given(&self) -> bool {
        self.state.is_given() || self.remote.is_some()
    }

    /// The log, verified as `pins` name it (what they leave out is taken from
    /// the state folder or the coordinator), and the identity it verified as.
    async fn verified_log(&self, pins: &Pins) -> anyhow::Result<(VerifiedLog, LogIdentity)> {
        match (self.state.is_given(), &self.remote) {
            (true, None) => Self::state_log(&self.state, pins).await,
            (false, Some(address)) => {
                let fetched = self.remote_log(address, pins).await?;
                Ok((fetched.log, fetched.identity))
            }
            _ => anyhow::bail!("name exactly one of --state (or --postgres) and --remote"),
        }
    }

    async fn state_log(
        state: &StateArgs,
        pins: &Pins,
    ) -> anyhow::Result<(VerifiedLog, LogIdentity)> {
        let public_key = match (&pins.public_key, &state.state) {
            (Some(key), _) => key.clone(),
            (None, Some(folder)) => AuditSigningKey::load(&folder.join(audit::SIGNING_KEY_FILE))?
                .public_key()
                .to_vec(),
            (None, None) => anyhow::bail!(
                "the audit public key is in the state folder: name it with --state, or give \
                 --public-key"
            ),
        };
        let store = state.open().await?;
        let federation_id = match &pins.federation_id {
            Some(id) => id.clone(),
            None => store
                .definition()
                .await?
                .map(|definition| definition.federation_id)
                .with_context(|| {
                    format!(
                        "{} records no federation: name it with --federation-id",
                        state
                            .location()
                            .map_or_else(|e| e.to_string(), |l| l.to_string())
                    )
                })?,
        };
        let identity = LogIdentity::new(&federation_id, &public_key);
        Ok((audit::verify(&store, &identity).await?, identity))
    }

    async fn remote_log(&self, address: &str, pins: &Pins) -> anyhow::Result<FetchedLog> {
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
        let fetched = audit::remote::fetch_verified(channel, pins).await?;
        if !fetched.key_pinned || !fetched.federation_pinned {
            eprintln!(
                "note: trusting the audit key ({}) and federation ({:?}) the coordinator serves \
                 on first use; pin them with --public-key and --federation-id, or keep --seen-head",
                hex::encode(fetched.identity.public_key()),
                fetched.identity.federation_id()
            );
        }
        Ok(fetched)
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum AuditExportFormat {
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
    /// Issue a certificate: exactly one of --node, --auditor, --operator,
    /// --coordinator, --requester.
    Issue {
        #[arg(long)]
        dir: PathBuf,
        /// A node (hospital or bank) id, e.g. hospital-a.
        #[arg(long, group = "who")]
        node: Option<String>,
        /// An auditor id.
        #[arg(long, group = "who")]
        auditor: Option<String>,
        /// An operator id: may read the web console (`server.console_listen`)
        /// off loopback, and no gRPC API.
        #[arg(long, group = "who")]
        operator: Option<String>,
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
    /// Revoke a certificate: its fingerprint goes into DIR/revoked.txt (with
    /// its identity) and into the CA-signed DIR/revoked.signed. A coordinator
    /// whose `server.revocation_list` points to revoked.signed (and a node's
    /// inference server given it with `--revocation-list`) refuses the
    /// certificate from its next request on, without a restart.
    Revoke {
        #[arg(long)]
        dir: PathBuf,
        /// The certificate (PEM) to revoke.
        #[arg(long)]
        cert: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    logging::init(cli.log_format, "info");
    match cli.command {
        Command::Serve {
            config,
            change_settings,
        } => serve(config, change_settings).await?,
        Command::Pki { command } => pki(command)?,
        Command::Audit { command } => return audit(command).await,
        Command::PrivacyLedger { state } => privacy_ledger(&state).await?,
        Command::Model {
            command:
                ModelCommand::Init {
                    from,
                    num_features,
                    num_classes,
                },
        } => init_model(&from, num_features, num_classes)?,
        Command::Model {
            command:
                ModelCommand::Export {
                    state,
                    version,
                    format,
                    out,
                },
        } => export_model(&state, version.as_deref(), format, &out).await?,
        Command::Store {
            command:
                StoreCommand::Migrate {
                    from,
                    to,
                    database_ca,
                },
        } => migrate(&from, to, database_ca).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The database a command line names with `flag` (and `--database-ca`),
/// checked.
fn database(
    flag: &str,
    url: String,
    ca_certificate: Option<PathBuf>,
) -> anyhow::Result<PostgresSettings> {
    let settings = PostgresSettings {
        postgres: url,
        ca_certificate,
    };
    settings
        .validate()
        .map_err(|problem| anyhow::anyhow!("{flag}: {problem}"))?;
    Ok(settings)
}

/// `store migrate`: the copy, its verification, and what was copied.
async fn migrate(from: &Path, to: String, database_ca: Option<PathBuf>) -> anyhow::Result<()> {
    let target = database("--to", to, database_ca)?;
    let migration = cohort_coordinator::migrate::migrate(from, &target)
        .await
        .with_context(|| {
            format!(
                "migrating {} into {} (is the coordinator still running?)",
                from.display(),
                target.redacted()
            )
        })?;
    println!(
        "copied federation {:?} from {} into {}:",
        migration.federation_id,
        from.display(),
        target.redacted()
    );
    for (table, rows) in &migration.copied.rows {
        println!("  {table}: {rows}");
    }
    println!(
        "audit log verified in PostgreSQL: {}",
        verified_summary(&migration.log)
    );
    Ok(())
}

/// A verified log in one line: its entries, heads checked, latest head.
fn verified_summary(log: &VerifiedLog) -> String {
    let head = log.head.as_ref().map_or_else(
        || "empty log".to_owned(),
        |h| format!("latest head: {} entries, root {}", h.tree_size, h.root_hash),
    );
    format!(
        "{} entries, {} signed tree heads; {head}",
        log.entries.len(),
        log.heads_checked
    )
}

/// `audit compare-heads`: exit 0 for one log seen consistently, 3 when it
/// cannot be told without the log; a split view is an error (exit 1).
async fn compare_heads(a: &Path, b: &Path, location: &LogLocation) -> anyhow::Result<ExitCode> {
    let load = |path: &Path| -> anyhow::Result<SeenHead> {
        SeenHead::load(path)?.with_context(|| format!("no seen-head file at {}", path.display()))
    };
    let (a, b) = (load(a)?, load(b)?);
    // Heads alone first: different logs, bad signatures and equal sizes with
    // different roots need no log.
    let mut comparison = seen_head::compare(&a, &b, None)?;
    if matches!(comparison, Comparison::Undetermined { .. }) && location.is_given() {
        let pins = Pins {
            public_key: Some(a.public_key.clone()),
            federation_id: Some(a.federation_id.clone()),
        };
        let (log, _) = location.verified_log(&pins).await?;
        comparison = seen_head::compare(&a, &b, Some(&log))?;
    }
    match comparison {
        Comparison::Consistent { smaller, larger } => {
            println!(
                "consistent: one log (federation {:?}, audit key {}); the head of size {smaller} \
                 is a prefix of the head of size {larger}",
                a.federation_id,
                hex::encode(&a.public_key)
            );
            Ok(ExitCode::SUCCESS)
        }
        Comparison::Undetermined { reason } => {
            println!("undetermined: {reason}");
            Ok(ExitCode::from(3))
        }
    }
}

async fn privacy_ledger(state: &StateArgs) -> anyhow::Result<()> {
    let store = state.open().await?;
    let Some(ledger) = store.privacy_ledger().await? else {
        anyhow::bail!(
            "{} holds no privacy ledger: the federation runs without [privacy]",
            state.location()?
        );
    };
    println!("{}", serde_json::to_string_pretty(&ledger)?);
    Ok(())
}

/// Prints the `[model]` section of the model in `from` (see
/// `ModelCommand::Init`).
fn init_model(from: &Path, num_features: u32, num_classes: u32) -> anyhow::Result<()> {
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    let (file, _) = ModelFile::from_safetensors(&bytes)
        .with_context(|| format!("refusing {}", from.display()))?;
    let path = std::path::absolute(from)?;
    let section =
        ModelConfig::described(file.descriptor().clone(), path, num_features, num_classes);
    section.validate()?;
    #[derive(serde::Serialize)]
    struct Section {
        model: ModelConfig,
    }
    println!(
        "# {} ({} parameters), first model {}\n{}",
        file.descriptor().label(),
        file.descriptor().num_parameters(),
        file.model_version(),
        toml::to_string(&Section { model: section })?
    );
    Ok(())
}

async fn export_model(
    state: &StateArgs,
    version: Option<&str>,
    format: ExportFormat,
    out: &Path,
) -> anyhow::Result<()> {
    let store = state.open().await?;
    let model = stored_model(&store, version).await?;
    let bytes = model.export(format)?;
    std::fs::write(out, &bytes).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "model {} written as {format} to {} ({} bytes)",
        model.model_version(),
        out.display(),
        bytes.len()
    );
    Ok(())
}

async fn serve(config_path: PathBuf, change_settings: bool) -> anyhow::Result<()> {
    let mut config = FederationConfig::load(&config_path)
        .with_context(|| format!("refusing config {}", config_path.display()))?;
    config.server.change_settings = change_settings;
    let serve_after_finish = config.server.serve_after_finish;
    let mut stop = StopSignals::install()?;
    // A standby waits here, possibly for long, until it holds the lease.
    let mut coordinator = tokio::select! {
        coordinator = Coordinator::start(config) => coordinator?,
        signal = stop.received() => {
            tracing::info!(signal, "stopping before becoming active");
            return Ok(());
        }
    };
    // One line on stdout that scripts can read (the port, when configured as 0).
    println!(
        "cohort-coordinator listening on {}",
        coordinator.local_addr()
    );
    let head = tokio::select! {
        head = coordinator.wait() => match head {
            Ok(head) => head,
            Err(error) => {
                // Stopped cleanly all the same: a standby takes over at once.
                coordinator.shutdown().await;
                return Err(error.into());
            }
        },
        signal = stop.received() => {
            tracing::info!(signal, "stopping; the round in flight will be rerun on restart");
            coordinator.shutdown().await;
            return Ok(());
        }
    };
    // The last word on stdout: rounds, final model, its held-out accuracy, ε spent.
    match FinalSummary::of(coordinator.federation(), &head).await {
        Ok(summary) => println!("{summary}"),
        Err(error) => {
            tracing::warn!(%error, "the finished federation's summary could not be read");
            println!(
                "federation finished: {} rounds, final model {}",
                head.completed_rounds, head.model_version
            );
        }
    }
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

async fn audit(command: AuditCommand) -> anyhow::Result<ExitCode> {
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
            format: AuditExportFormat::Json,
        } => {
            export_json(source.checked_log().await?.log)?;
        }
        AuditCommand::CompareHeads { a, b, location } => {
            return compare_heads(&a, &b, &location).await;
        }
        AuditCommand::Verify { source } => {
            let CheckedLog { log, extends_seen } = source.checked_log().await?;
            if let Some(size) = extends_seen {
                println!("consistent with the tree head seen at size {size}");
            }
            println!("audit log verified: {}", verified_summary(&log));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `audit export --format json`: the latest signed head and every entry.
fn export_json(log: VerifiedLog) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&log.export_json())?);
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
            operator,
            coordinator,
            requester,
            server_names,
            days,
        } => {
            let named = [
                (Role::Node, node),
                (Role::Auditor, auditor),
                (Role::Operator, operator),
                (Role::Coordinator, coordinator),
                (Role::Requester, requester),
            ];
            let mut named = named.into_iter().filter_map(|(role, id)| Some((role, id?)));
            let identity = match (named.next(), named.next()) {
                (Some((role, id)), None) => PeerIdentity::new(role, &id)?,
                _ => anyhow::bail!(
                    "name exactly one of --node, --auditor, --operator, --coordinator, --requester"
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
                "revoked {identity} ({fingerprint}) in {}; servers reading this list refuse it \
                 from its next request on",
                pki.signed_revocation_list().display()
            );
        }
    }
    Ok(())
}
