//! `cohort-sim provision`: a scenario laid out for a federation over several
//! machines. One folder holds everything:
//!
//! - `pki/`: the CA, the coordinator's certificate (valid for the address the
//!   nodes are given, and for loopback) and every node's certificate;
//! - `federation.toml`: the coordinator's config, for `cohort-coordinator serve`;
//! - `nodes/node-NNN/`: one self-contained folder per node — its part of the data
//!   (`data.csv`, label last), the CA, its certificate and key, and `run.sh` with
//!   its exact `cohort-node run` command line;
//! - `nodes.sh`: every node's command, to start them all on one machine;
//! - `auditor/`: an auditor's certificate and key, and `audit.sh`, which runs
//!   `cohort-coordinator audit … --remote` against the coordinator;
//! - `README.md`: what to copy where.
//!
//! The data is split exactly as `cohort-sim run` splits it (same partitioner,
//! seed and holdout seeds), so a spread-out federation trains on the same parts.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cohort_coordinator::config::ConfigError;
use cohort_crypto::pki::PkiError;
use cohort_crypto::tls::TlsFiles;

use crate::harness::{FederationPlan, Provisioned};
use crate::launch::node_id;
use crate::node_process::{NodeCommand, NodeProcessError, write_node_csv};
use crate::scenario::{Scenario, ScenarioError};
use crate::shares::{Shares, SharesError};

/// Why a federation could not be laid out.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The coordinator's address is not a host and a port number.
    #[error("`--coordinator-address` must be host:port, got {0:?}")]
    Address(String),
    /// The output folder already holds something.
    #[error("{0} is not empty: provision into a new folder")]
    NotEmpty(PathBuf),
    /// The scenario's data could not be loaded or split, or a node's rows taken from it.
    #[error(transparent)]
    Shares(#[from] SharesError),
    /// The scenario cannot run as separate node processes (it has faults).
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A certificate could not be made or issued.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The coordinator's config would not pass its own validation.
    #[error("the federation config: {0}")]
    Config(#[from] ConfigError),
    /// A node's CSV file could not be written.
    #[error(transparent)]
    NodeFile(#[from] NodeProcessError),
    /// A folder, script, config or credential file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The coordinator's config could not be written as TOML.
    #[error("cannot encode the federation config: {0}")]
    Encode(String),
}

/// Where the coordinator will be, as seen from the nodes and from itself.
#[derive(Debug, Clone)]
pub struct Placement {
    /// host:port the nodes dial; the host goes on the coordinator's certificate.
    pub coordinator_address: String,
    /// The coordinator's listening socket, e.g. 0.0.0.0:7443.
    pub listen: SocketAddr,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Provision {
    /// The federation's name: `sim-` and the scenario's name.
    pub federation_id: String,
    /// The coordinator's `federation.toml`.
    pub config: PathBuf,
    /// Each node's folder, in node order.
    pub node_dirs: Vec<PathBuf>,
    /// The auditor's folder: its credentials and `audit.sh`.
    pub auditor_dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ProvisionError + '_ {
    move |source| ProvisionError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Lays out `scenario` (named `name`) in `out`, which must be new or empty.
pub fn provision(
    scenario: &Scenario,
    name: &str,
    out: &Path,
    placement: &Placement,
) -> Result<Provision, ProvisionError> {
    scenario.check_processes()?;
    let host = coordinator_host(&placement.coordinator_address)?;
    if std::fs::read_dir(out).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ProvisionError::NotEmpty(out.to_owned()));
    }
    std::fs::create_dir_all(out).map_err(io(out))?;

    let shares = Shares::of(scenario)?;
    shares.check_holdouts(scenario)?;
    let federation_id = format!("sim-{name}");
    let provisioned = Provisioned::with_names(&out.join("pki"), &federation_id, &[host.into()])?;
    let plan = shares.plan(scenario, &federation_id)?;
    let config = write_coordinator_config(out, &provisioned, &plan, placement)?;

    let mut all = String::from(
        "#!/bin/sh\n# Every node of this federation on this machine; set COHORT_NODE to the\n\
         # cohort-node binary if it is not on PATH.\nset -e\ncd \"$(dirname \"$0\")\"\npids=\"\"\n",
    );
    let mut node_dirs = Vec::with_capacity(shares.parts.len());
    for i in 0..shares.parts.len() {
        let (dir, line) = write_node(
            out,
            &provisioned,
            &shares,
            scenario,
            placement,
            &federation_id,
            i,
        )?;
        let node = node_id(i);
        let _ = writeln!(all, "(cd nodes/{node} && exec {line}) &\npids=\"$pids $!\"");
        node_dirs.push(dir);
    }
    all.push_str("status=0\nfor pid in $pids; do wait \"$pid\" || status=1; done\nexit $status\n");
    let script = out.join("nodes.sh");
    std::fs::write(&script, all).map_err(io(&script))?;
    make_executable(&script)?;

    let auditor_dir = write_auditor(out, &provisioned, &placement.coordinator_address)?;

    let readme = out.join("README.md");
    std::fs::write(
        &readme,
        readme_text(name, &federation_id, placement, shares.parts.len()),
    )
    .map_err(io(&readme))?;
    Ok(Provision {
        federation_id,
        config,
        node_dirs,
        auditor_dir,
    })
}

/// The host of a `host:port` coordinator address (brackets of an IPv6
/// address removed): the name its certificate must carry.
fn coordinator_host(address: &str) -> Result<&str, ProvisionError> {
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(host.trim_start_matches('[').trim_end_matches(']'))
        }
        _ => Err(ProvisionError::Address(address.to_owned())),
    }
}

/// `federation.toml`, its paths relative to its own folder; returns its path.
fn write_coordinator_config(
    out: &Path,
    provisioned: &Provisioned,
    plan: &FederationPlan,
    placement: &Placement,
) -> Result<PathBuf, ProvisionError> {
    let relative = Provisioned {
        pki: provisioned.pki.clone(),
        coordinator: TlsFiles {
            ca_certificate: relative_to(out, &provisioned.coordinator.ca_certificate),
            certificate: relative_to(out, &provisioned.coordinator.certificate),
            private_key: relative_to(out, &provisioned.coordinator.private_key),
        },
    };
    let config = plan.coordinator_config(&relative, placement.listen, PathBuf::from("state"));
    config.validate()?;
    let config_path = out.join("federation.toml");
    let text = toml::to_string(&config).map_err(|e| ProvisionError::Encode(e.to_string()))?;
    std::fs::write(&config_path, text).map_err(io(&config_path))?;
    Ok(config_path)
}

/// Node `i`'s folder: its rows, credentials and `run.sh`. Returns the folder
/// and the node's command line.
fn write_node(
    out: &Path,
    provisioned: &Provisioned,
    shares: &Shares,
    scenario: &Scenario,
    placement: &Placement,
    federation_id: &str,
    i: usize,
) -> Result<(PathBuf, String), ProvisionError> {
    let node = node_id(i);
    let dir = out.join("nodes").join(&node);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let subset = shares.node_data(i)?;
    write_node_csv(&subset, &dir.join("data.csv"))?;
    copy_credentials(&provisioned.node(&node)?, &dir, "node")?;
    let command = NodeCommand {
        coordinator: placement.coordinator_address.clone(),
        server_name: None,
        federation_id: federation_id.to_owned(),
        tls: TlsFiles {
            ca_certificate: "ca.pem".into(),
            certificate: "node.pem".into(),
            private_key: "node.key".into(),
        },
        data: "data.csv".into(),
        holdout: scenario.holdout,
        split_seed: Shares::split_seed(scenario, i),
        log_format: cohort_proto::logging::chosen(),
    };
    let line = command.shell_line("\"${COHORT_NODE:-cohort-node}\"");
    let script = dir.join("run.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\n# {node} of {federation_id}\ncd \"$(dirname \"$0\")\"\nexec {line}\n"),
    )
    .map_err(io(&script))?;
    make_executable(&script)?;
    Ok((dir, line))
}

/// `auditor/`: the CA, an auditor's certificate and key, and `audit.sh`. The
/// audit key is made at the coordinator's first start, so it cannot be pinned
/// here: the first check records the served key in `seen-head.json`, and every
/// later check refuses another key and any log that does not extend the head
/// seen before.
fn write_auditor(
    out: &Path,
    provisioned: &Provisioned,
    coordinator_address: &str,
) -> Result<PathBuf, ProvisionError> {
    let dir = out.join("auditor");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    copy_credentials(&provisioned.auditor("auditor")?, &dir, "auditor")?;
    let script = dir.join("audit.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             # The auditor: ./audit.sh verify | lineage --model V | erasures [--overdue] | export\n\
             # (COHORT_COORDINATOR: the cohort-coordinator binary, if not on PATH).\n\
             cd \"$(dirname \"$0\")\"\n\
             command=\"${{1:-verify}}\"\n\
             [ $# -gt 0 ] && shift\n\
             exec \"${{COHORT_COORDINATOR:-cohort-coordinator}}\" audit \"$command\" \
             --remote {coordinator_address} --ca ca.pem --cert auditor.pem --key auditor.key \
             --seen-head seen-head.json \"$@\"\n"
        ),
    )
    .map_err(io(&script))?;
    make_executable(&script)?;
    Ok(dir)
}

/// The CA certificate, and `issued`'s certificate and key as `NAME.pem` and
/// `NAME.key`, into `dir`.
fn copy_credentials(issued: &TlsFiles, dir: &Path, name: &str) -> Result<(), ProvisionError> {
    for (from, to) in [
        (&issued.ca_certificate, "ca.pem".to_owned()),
        (&issued.certificate, format!("{name}.pem")),
        (&issued.private_key, format!("{name}.key")),
    ] {
        let target = dir.join(to);
        // A copy keeps the key's owner-only permissions.
        std::fs::copy(from, &target).map_err(io(&target))?;
    }
    Ok(())
}

/// `path` relative to `base` when it lies under it.
fn relative_to(base: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(base).unwrap_or(path).to_owned()
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<(), ProvisionError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(io(path))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> Result<(), ProvisionError> {
    Ok(())
}

fn readme_text(name: &str, federation_id: &str, placement: &Placement, nodes: usize) -> String {
    format!(
        "# {federation_id}: scenario `{name}` over several machines\n\n\
         Written by `cohort-sim provision`. The nodes dial the coordinator at \
         `{address}`; its certificate is valid for that host (and for loopback).\n\n\
         1. On the coordinator's machine, in this folder:\n\n   \
         `cohort-coordinator serve --config federation.toml` (listens on {listen}).\n\
         2. Copy each `nodes/node-NNN/` folder ({nodes} of them) to the machine that plays \
         that node, and there run `nodes/node-NNN/run.sh` (set `COHORT_NODE` to the \
         `cohort-node` binary if it is not on PATH). Each folder holds only that node's \
         data, key and certificate, and the CA certificate.\n\
         3. Or start every node on one machine with `./nodes.sh`.\n\
         4. An auditor copies `auditor/` and runs `auditor/audit.sh verify` (or `lineage \
         --model V`, `erasures --overdue`, `export`) while the coordinator serves; set \
         `server.serve_after_finish = true` in `federation.toml` to keep it serving after \
         the last round. The first check records the coordinator's audit key and tree head \
         in `auditor/seen-head.json`; every later one must extend them.\n\n\
         Keep `pki/ca.key` on the coordinator's side: it is the federation's CA key, and \
         no node needs it.\n",
        address = placement.coordinator_address,
        listen = placement.listen,
    )
}

#[cfg(test)]
mod tests {
    use cohort_client::data::{CsvOptions, load_csv};
    use cohort_coordinator::config::FederationConfig;

    use super::*;

    const SCENARIO: &str = r#"
seed = 5
nodes = 3
data = "breast_cancer"
partition = { kind = "iid" }

[rounds]
count = 2
min_clients = 3
deadline_secs = 30

[training]
local_epochs = 1
batch_size = 16
learning_rate = 0.1

[model]
kind = "logistic_regression"
"#;

    fn placement() -> Placement {
        Placement {
            coordinator_address: "coordinator.example:7443".into(),
            listen: SocketAddr::from(([0, 0, 0, 0], 7443)),
        }
    }

    #[test]
    fn lays_out_a_coordinator_and_self_contained_node_folders() {
        let scenario = Scenario::parse(SCENARIO).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("fed");
        let written = provision(&scenario, "tiny", &out, &placement()).unwrap();

        let config = FederationConfig::load(&written.config).unwrap();
        config.validate().unwrap();
        assert_eq!(config.federation_id, "sim-tiny");
        assert_eq!(config.server.listen, placement().listen);
        assert_eq!(
            config.server.certificate,
            out.join("pki/coordinator-main.pem")
        );
        assert!(config.server.certificate.exists());
        assert_eq!(config.rounds.count, 2);

        assert_eq!(written.node_dirs.len(), 3);
        let mut rows = 0;
        for (i, dir) in written.node_dirs.iter().enumerate() {
            for file in ["data.csv", "ca.pem", "node.pem", "node.key", "run.sh"] {
                assert!(dir.join(file).is_file(), "{}/{file}", dir.display());
            }
            rows += load_csv(dir.join("data.csv"), &CsvOptions::default())
                .unwrap()
                .dataset
                .len();
            let run = std::fs::read_to_string(dir.join("run.sh")).unwrap();
            assert!(
                run.contains(&format!(
                    "run --coordinator coordinator.example:7443 --federation sim-tiny \
                     --ca ca.pem --cert node.pem --key node.key --data data.csv \
                     --holdout 0.2 --split-seed {}",
                    5 + i
                )),
                "{run}"
            );
        }
        assert_eq!(rows, 569);
        let all = std::fs::read_to_string(out.join("nodes.sh")).unwrap();
        assert_eq!(all.matches("cohort-node").count(), 1 + 3, "{all}");
        assert!(out.join("README.md").is_file());
        assert!(out.join("pki/ca.key").is_file());
        assert!(!written.node_dirs[0].join("ca.key").exists());

        for file in ["ca.pem", "auditor.pem", "auditor.key", "audit.sh"] {
            assert!(written.auditor_dir.join(file).is_file(), "auditor/{file}");
        }
        let audit = std::fs::read_to_string(written.auditor_dir.join("audit.sh")).unwrap();
        assert!(
            audit.contains(
                "audit \"$command\" --remote coordinator.example:7443 --ca ca.pem \
                 --cert auditor.pem --key auditor.key --seen-head seen-head.json \"$@\""
            ),
            "{audit}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let key = std::fs::metadata(written.auditor_dir.join("auditor.key")).unwrap();
            assert_eq!(key.permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn refuses_a_used_folder_a_bad_address_and_faults() {
        let scenario = Scenario::parse(SCENARIO).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("old"), "x").unwrap();
        let err = provision(&scenario, "tiny", tmp.path(), &placement()).unwrap_err();
        assert!(matches!(err, ProvisionError::NotEmpty(_)), "{err}");

        let fresh = tmp.path().join("fresh");
        let bad = Placement {
            coordinator_address: "no-port".into(),
            ..placement()
        };
        let err = provision(&scenario, "tiny", &fresh, &bad)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--coordinator-address") && err.contains("no-port"),
            "{err}"
        );

        let faulty = Scenario::parse(&format!(
            "{SCENARIO}\n[faults]\ndropout = {{ probability = 0.1 }}\n"
        ))
        .unwrap();
        let err = provision(&faulty, "tiny", &fresh, &placement())
            .unwrap_err()
            .to_string();
        assert!(err.contains("`faults.dropout`"), "{err}");
        assert!(!fresh.exists());
    }
}
