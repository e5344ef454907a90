//! A deployment as the README describes it, with the real binaries: the PKI made
//! with `cohort-coordinator pki`, a config file, `cohort-coordinator serve`, and
//! `cohort-node run` processes each reading its own CSV file.
//!
//! The binaries are the ones `cargo test --workspace` builds next to the tests
//! (same profile, so a CI run compiles the dependencies once).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use cohort_coordinator::store::Store;
use cohort_coordinator::store::records::RoundOutcome;
use cohort_crypto::tls::TlsFiles;
use cohort_privacy::{Accountant, Conversion, DpEvent, RdpAccountant};
use cohort_sim::node_process::{NODE_BINARY, NodeCommand, sibling_binary, write_node_csv};
use cohort_sim::partition::iid;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

use crate::backend::{self, ScratchDatabase};
use crate::{breast_cancer, within};

/// The path of a workspace binary built for the tests; fails saying how to
/// build it when it is missing (it is never built on demand).
pub fn binary(name: &str) -> PathBuf {
    sibling_binary(name).unwrap_or_else(|missing| panic!("{missing}"))
}

pub async fn run_ok(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().await.unwrap();
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A folder with a PKI, one CSV per node, and room for a config and state.
#[derive(Debug)]
pub struct Deployment {
    pub dir: tempfile::TempDir,
    pub federation: String,
    pub nodes: Vec<String>,
    /// The database `federation.toml` puts the state in, if not the folder.
    pub database: Option<ScratchDatabase>,
}

/// A running coordinator process, with its address and its log lines.
#[derive(Debug)]
pub struct CoordinatorProcess {
    pub child: Child,
    pub address: String,
    pub stdout: Lines<BufReader<ChildStdout>>,
    /// The log, when asked for: read it, or the coordinator blocks once the pipe fills.
    pub stderr: Option<Lines<BufReader<ChildStderr>>>,
}

impl Deployment {
    /// Issues the CA, the coordinator's certificate and one per node, and gives
    /// each node an IID share of breast cancer as `NODE.csv` (label last).
    pub async fn provision(federation: &str, nodes: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let coordinator = binary("cohort-coordinator");
        let pki = dir.path().join("pki");
        let pki = pki.to_str().unwrap();
        run_ok(
            &coordinator,
            &["pki", "init", "--dir", pki, "--federation", federation],
        )
        .await;
        run_ok(
            &coordinator,
            &[
                "pki",
                "issue",
                "--dir",
                pki,
                "--coordinator",
                "main",
                "--san",
                "localhost",
            ],
        )
        .await;
        for node in nodes {
            run_ok(
                &coordinator,
                &["pki", "issue", "--dir", pki, "--node", node],
            )
            .await;
        }
        let data = breast_cancer();
        let parts = iid(data.len(), nodes.len(), 5).unwrap();
        for (node, rows) in nodes.iter().zip(&parts) {
            let part = data.subset(rows).unwrap();
            write_node_csv(&part, &dir.path().join(format!("{node}.csv"))).unwrap();
        }
        Self {
            dir,
            federation: federation.to_owned(),
            nodes: nodes.iter().map(|n| (*n).to_owned()).collect(),
            database: None,
        }
    }

    /// This deployment with its state in a scratch PostgreSQL database
    /// (`None`: skipped, see [`ScratchDatabase::start`]).
    pub fn on_postgres(self) -> Option<Self> {
        Some(Self {
            database: Some(ScratchDatabase::start()?),
            ..self
        })
    }

    /// The stopped coordinator's store (its folder, or its database).
    pub async fn store(&self) -> cohort_coordinator::store::Store {
        backend::open(self.database.as_ref(), &self.path("state")).await
    }

    /// The arguments that point an offline command at the state (see
    /// [`backend::state_args`]).
    pub fn state_args(&self) -> Vec<String> {
        backend::state_args(self.database.as_ref(), &self.path("state"))
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes `federation.toml`: the `[server]` section for this folder's PKI and
    /// state (and database), listening on `listen`, then `rest`.
    pub fn write_config(&self, listen: &str, rest: &str) -> PathBuf {
        self.write_config_as("federation.toml", listen, "state", rest)
    }

    /// Writes the config file `file` as [`Deployment::write_config`] does,
    /// with the state folder `state` (a second coordinator of one database
    /// has its own).
    pub fn write_config_as(&self, file: &str, listen: &str, state: &str, rest: &str) -> PathBuf {
        let path = self.path(file);
        let store = self.database.as_ref().map_or_else(String::new, |database| {
            format!(
                "store = {{ postgres = {:?} }}\n",
                database.settings.postgres
            )
        });
        let text = format!(
            r#"federation_id = "{}"

[server]
listen = "{listen}"
state_dir = "{state}"
ca_certificate = "pki/ca.pem"
certificate = "pki/coordinator-main.pem"
private_key = "pki/coordinator-main.key"
poll_timeout_ms = 1000
liveness_ms = 10000
{store}{rest}"#,
            self.federation
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Starts `cohort-coordinator serve` and waits for its address; with
    /// `watch_log`, its log (stderr) can be read with
    /// [`CoordinatorProcess::wait_for_log`].
    pub async fn start_coordinator(&self, watch_log: bool) -> CoordinatorProcess {
        let mut coordinator = self.spawn_coordinator(&self.path("federation.toml"), watch_log);
        coordinator.listening().await;
        coordinator
    }

    /// Starts `cohort-coordinator serve --config CONFIG` without waiting for
    /// it to listen (a standby listens as such only once it is active); see
    /// [`CoordinatorProcess::listening`].
    pub fn spawn_coordinator(&self, config: &Path, watch_log: bool) -> CoordinatorProcess {
        let mut child = Command::new(binary("cohort-coordinator"))
            .args(["serve", "--config"])
            .arg(config)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(if watch_log {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let stderr = child.stderr.take().map(|e| BufReader::new(e).lines());
        CoordinatorProcess {
            child,
            address: String::new(),
            stdout,
            stderr,
        }
    }

    /// Starts `cohort-node run` for `node` against the coordinator's `port`.
    pub fn start_node(&self, node: &str, port: &str) -> Child {
        self.start_node_reading(node, port, self.path(&format!("{node}.csv")), &[])
    }

    /// Starts `cohort-node run` for `node` reading `data`, with `extra` flags
    /// (how to read it).
    pub fn start_node_reading(
        &self,
        node: &str,
        port: &str,
        data: PathBuf,
        extra: &[&str],
    ) -> Child {
        let command = NodeCommand {
            coordinator: format!("localhost:{port}"),
            server_name: None,
            federation_id: self.federation.clone(),
            tls: TlsFiles {
                ca_certificate: self.path("pki/ca.pem"),
                certificate: self.path(&format!("pki/node-{node}.pem")),
                private_key: self.path(&format!("pki/node-{node}.key")),
            },
            data,
            // cohort-node's defaults.
            holdout: 0.2,
            split_seed: 0,
            log_format: cohort_proto::logging::LogFormat::Text,
        };
        Command::new(binary(NODE_BINARY))
            .args(command.args())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }
}

impl CoordinatorProcess {
    /// Waits for the line saying where the coordinator listens (printed once
    /// it runs the federation) and keeps the address.
    pub async fn listening(&mut self) {
        let first = within("the coordinator's address", self.stdout.next_line())
            .await
            .unwrap()
            .expect("the coordinator prints its address");
        first
            .strip_prefix("cohort-coordinator listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .clone_into(&mut self.address);
    }

    pub fn port(&self) -> String {
        self.address.rsplit_once(':').unwrap().1.to_owned()
    }

    /// Reads the log (stderr) until a line contains every one of `needles`.
    pub async fn wait_for_log(&mut self, needles: &[&str]) -> String {
        let found = self
            .read_log_until(|line| needles.iter().all(|n| line.contains(n)))
            .await;
        found.unwrap_or_else(|seen| {
            panic!(
                "the coordinator exited before logging {needles:?}; it logged:\n{}",
                seen.join("\n")
            )
        })
    }

    /// Reads the log (stderr) until a line contains one of `needles`; `None`
    /// if the coordinator exits first.
    pub async fn wait_for_any_log(&mut self, needles: &[&str]) -> Option<String> {
        self.read_log_until(|line| needles.iter().any(|n| line.contains(n)))
            .await
            .ok()
    }

    /// The first line of the log (stderr) that `wanted` accepts, or every
    /// line read if the coordinator exits first.
    async fn read_log_until(
        &mut self,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<String, Vec<String>> {
        within("a coordinator log line", async {
            let stderr = self.stderr.as_mut().expect("started with watch_log");
            let mut seen = Vec::new();
            while let Some(line) = stderr.next_line().await.unwrap() {
                if wanted(&line) {
                    return Ok(line);
                }
                seen.push(line);
            }
            Err(seen)
        })
        .await
    }

    /// Copies the rest of the log to the test's stderr (shown if it fails)
    /// in the background, so that a coordinator whose log is no longer
    /// watched never blocks on a full pipe.
    pub fn drain_log(&mut self, name: &'static str) {
        if let Some(mut stderr) = self.stderr.take() {
            tokio::spawn(async move {
                while let Ok(Some(line)) = stderr.next_line().await {
                    eprintln!("[{name}] {line}");
                }
            });
        }
    }

    /// The rest of stdout, until the process closes it.
    pub async fn rest_of_stdout(&mut self) -> Vec<String> {
        within("the coordinator's output", async {
            let mut rest = Vec::new();
            while let Some(line) = self.stdout.next_line().await.unwrap() {
                rest.push(line);
            }
            rest
        })
        .await
    }
}

/// Waits for the node processes to finish after `rounds` rounds, then for
/// `coordinator` to print that the federation finished and to exit cleanly.
pub async fn finish_federation(
    coordinator: &mut CoordinatorProcess,
    nodes: Vec<Child>,
    rounds: u64,
) {
    for node in nodes {
        let stdout = node_output(node).await;
        assert!(
            stdout.contains(&format!("finished after {rounds} rounds")),
            "{stdout}"
        );
    }
    let rest = coordinator.rest_of_stdout().await;
    assert!(
        rest.iter()
            .any(|l| l.starts_with(&format!("federation finished: {rounds} rounds"))),
        "{rest:?}"
    );
    assert!(
        within("the exit", coordinator.child.wait())
            .await
            .unwrap()
            .success()
    );
}

/// The central-DP noise multiplier of [`slow_dp_federation`].
pub const DP_SIGMA: f64 = 1.0;
/// The δ of [`slow_dp_federation`]'s budget.
pub const DP_DELTA: f64 = 1e-5;

/// The sections after `[server]` of a federation that trains logistic
/// regression on breast cancer for `rounds` rounds of `min_clients` nodes,
/// with central DP (σ = [`DP_SIGMA`]) and enough local work (150 epochs)
/// that a round is still in flight when a test's signal lands.
pub fn slow_dp_federation(rounds: u64, min_clients: usize) -> String {
    format!(
        r#"[model]
kind = "logistic_regression"
num_features = 30
num_classes = 2

[rounds]
count = {rounds}
min_clients = {min_clients}
deadline_secs = 60

[training]
local_epochs = 150
batch_size = 16
learning_rate = 0.05

[privacy]
noise_multiplier = {DP_SIGMA}
clip_norm = 1.0
epsilon = 100.0
delta = {DP_DELTA}

{scaling}"#,
        scaling = crate::public_scaling_toml()
    )
}

/// After a [`slow_dp_federation`] of `rounds` rounds finished, through
/// whatever crash or failover: rounds 1..=`rounds` each committed once and
/// completed, and the privacy ledger holds each round's spend once (exactly
/// `rounds` rounds' ε). Returns that ε.
pub async fn check_each_round_once(store: &Store, rounds: u64) -> f64 {
    let committed = store.rounds().await.unwrap();
    assert_eq!(
        committed.iter().map(|r| r.round).collect::<Vec<_>>(),
        (1..=rounds).collect::<Vec<_>>(),
        "each round committed exactly once"
    );
    assert!(
        committed
            .iter()
            .all(|r| matches!(r.outcome, RoundOutcome::Completed { .. }))
    );
    let ledger = store.privacy_ledger().await.unwrap().expect("a ledger");
    assert_eq!(
        ledger.rounds.iter().map(|r| r.round).collect::<Vec<_>>(),
        (1..=rounds).collect::<Vec<_>>(),
        "the ledger holds each round's spend once"
    );
    let accountant = RdpAccountant::new(Conversion::Improved);
    let all = DpEvent::poisson_sampled_discrete_gaussian(1.0, DP_SIGMA, rounds).unwrap();
    let expected = accountant.epsilon(&[all], DP_DELTA).unwrap();
    let spent = accountant.epsilon(&ledger.events(), DP_DELTA).unwrap();
    assert!(
        (spent - expected).abs() < 1e-9,
        "ledger ε {spent} vs {rounds} rounds' {expected}"
    );
    expected
}

/// Waits for a node process and returns its stdout, failing if it failed.
pub async fn node_output(child: Child) -> String {
    let out = within("a node process", child.wait_with_output())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "node failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
