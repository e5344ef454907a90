//! Nodes as separate `cohort-node run` processes: the binary, each node's CSV
//! file and its exact command line. Used by process-mode runs
//! ([`crate::run`]), by `cohort-sim provision` ([`crate::provision`]) and by
//! the end-to-end deployment tests.

use std::ffi::OsString;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use cohort_client::data::Dataset;
use cohort_crypto::tls::TlsFiles;
use cohort_proto::logging::LogFormat;

/// The node binary's name.
pub const NODE_BINARY: &str = "cohort-node";

/// Why a node process could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum NodeProcessError {
    #[error(
        "{path} is missing: build it with `cargo build -p cohort-client` (same profile and \
         target folder as this program), or run `cargo test --workspace`, which builds it"
    )]
    /// The binary (e.g. `cohort-node`) is not built next to this program.
    MissingBinary {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The path of the running program is unknown, so its siblings cannot be found.
    #[error("cannot find this program's own path: {0}")]
    CurrentExe(std::io::Error),
    /// The operating system would not start the node binary.
    #[error("cannot start {path}: {source}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A node's CSV file or log file could not be created or written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A workspace binary built next to this program: in the same folder
/// (`target/<profile>/cohort-sim`), or one up when this is a test
/// (`target/<profile>/deps/<test>-<hash>`). Never built on demand.
pub fn sibling_binary(name: &str) -> Result<PathBuf, NodeProcessError> {
    let exe = std::env::current_exe().map_err(NodeProcessError::CurrentExe)?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let dir = if dir.file_name().is_some_and(|d| d == "deps") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if path.is_file() {
        Ok(path)
    } else {
        Err(NodeProcessError::MissingBinary { path })
    }
}

/// Writes `data` as a CSV file `cohort-node` reads with its defaults: no
/// header, the features, then the label last.
pub fn write_node_csv(data: &Dataset, path: &Path) -> Result<(), NodeProcessError> {
    let failed = |source| NodeProcessError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = BufWriter::new(std::fs::File::create(path).map_err(failed)?);
    for (features, label) in data.rows() {
        for value in features {
            // `Display` of an f32 is the shortest text that reads back as the same value.
            write!(file, "{value},").map_err(failed)?;
        }
        writeln!(file, "{label}").map_err(failed)?;
    }
    file.flush().map_err(failed)
}

/// One node's `cohort-node run` invocation.
#[derive(Debug, Clone)]
pub struct NodeCommand {
    /// The coordinator, host:port.
    pub coordinator: String,
    /// The name on the coordinator's certificate, when not the host of `coordinator`.
    pub server_name: Option<String>,
    /// The federation the node joins.
    pub federation_id: String,
    /// The node's CA certificate, certificate and private key.
    pub tls: TlsFiles,
    /// The node's CSV file (label last, no header).
    pub data: PathBuf,
    /// The fraction of rows held out for evaluation, and the split's seed.
    pub holdout: f64,
    /// Seed of the node's train/holdout split.
    pub split_seed: u64,
    /// How the node logs; `--log-format` is passed only for JSON, the node's
    /// default being text.
    pub log_format: LogFormat,
}

impl NodeCommand {
    /// The arguments after the program name, starting with `run`.
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "run".into(),
            "--coordinator".into(),
            self.coordinator.clone().into(),
        ];
        if let Some(name) = &self.server_name {
            args.extend(["--server-name".into(), name.into()]);
        }
        args.extend([
            "--federation".into(),
            self.federation_id.clone().into(),
            "--ca".into(),
            self.tls.ca_certificate.clone().into(),
            "--cert".into(),
            self.tls.certificate.clone().into(),
            "--key".into(),
            self.tls.private_key.clone().into(),
            "--data".into(),
            self.data.clone().into(),
            "--holdout".into(),
            self.holdout.to_string().into(),
            "--split-seed".into(),
            self.split_seed.to_string().into(),
        ]);
        if self.log_format != LogFormat::Text {
            args.extend(["--log-format".into(), self.log_format.as_arg().into()]);
        }
        args
    }

    /// The command as one shell line (`program` first), each argument quoted.
    pub fn shell_line(&self, program: &str) -> String {
        std::iter::once(program.to_owned())
            .chain(
                self.args()
                    .iter()
                    .map(|a| shell_quote(&a.to_string_lossy())),
            )
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Starts `binary` (`cohort-node`) with `command`, its stdout and stderr going
/// to `log`; the process is killed if the handle is dropped.
pub fn spawn(
    binary: &Path,
    command: &NodeCommand,
    log: &Path,
) -> Result<tokio::process::Child, NodeProcessError> {
    let failed = |source| NodeProcessError::Write {
        path: log.to_owned(),
        source,
    };
    let out = std::fs::File::create(log).map_err(failed)?;
    let err = out.try_clone().map_err(failed)?;
    tokio::process::Command::new(binary)
        .args(command.args())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| NodeProcessError::Spawn {
            path: binary.to_owned(),
            source,
        })
}

/// `text` as one POSIX shell word: bare when it is plainly safe, else in single quotes.
fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use cohort_client::data::{CsvOptions, load_csv};

    use super::*;

    #[test]
    fn a_node_csv_reads_back_as_the_same_rows() {
        let data = Dataset::new(2, vec![0.1, -3.5e-7, 1.0 / 3.0, 42.0], vec![1, 0]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.csv");
        write_node_csv(&data, &path).unwrap();
        let back = load_csv(&path, &CsvOptions::default()).unwrap().dataset;
        assert_eq!(back, data);
    }

    #[test]
    fn an_unwritable_csv_names_its_path() {
        let data = Dataset::new(1, vec![1.0], vec![0]).unwrap();
        let path = Path::new("/nonexistent-folder/node.csv");
        let err = write_node_csv(&data, path).unwrap_err().to_string();
        assert!(err.contains("/nonexistent-folder/node.csv"), "{err}");
    }

    #[test]
    fn the_shell_line_quotes_what_needs_it() {
        let command = NodeCommand {
            coordinator: "10.0.0.5:7443".into(),
            server_name: Some("main".into()),
            federation_id: "sim-x".into(),
            tls: TlsFiles {
                ca_certificate: "ca.pem".into(),
                certificate: "node.pem".into(),
                private_key: "my key's.key".into(),
            },
            data: "data.csv".into(),
            holdout: 0.25,
            split_seed: 9,
            log_format: LogFormat::Text,
        };
        assert_eq!(
            command.shell_line("cohort-node"),
            "cohort-node run --coordinator 10.0.0.5:7443 --server-name main --federation sim-x \
             --ca ca.pem --cert node.pem --key 'my key'\\''s.key' --data data.csv \
             --holdout 0.25 --split-seed 9"
        );
        let json = NodeCommand {
            log_format: LogFormat::Json,
            ..command
        };
        assert!(
            json.shell_line("cohort-node")
                .ends_with("--split-seed 9 --log-format json"),
            "{}",
            json.shell_line("cohort-node")
        );
    }

    #[test]
    fn a_missing_binary_says_how_to_build_it() {
        let err = sibling_binary("no-such-cohort-binary")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no-such-cohort-binary is missing"), "{err}");
        assert!(err.contains("cargo build -p cohort-client"), "{err}");
    }
}
