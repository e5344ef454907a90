//! A scratch PostgreSQL server for tests and benches: the distribution's own
//! binaries (`/usr/lib/postgresql/<version>/bin`), `initdb` into a temporary
//! folder, listening on a free loopback port, run as an unprivileged user
//! (`postgres`, or `nobody`) when the tests run as root, stopped and deleted
//! on drop.
//!
//! Where PostgreSQL is not installed, [`ScratchServer::start`] fails
//! ([`ScratchError::NotInstalled`], naming the package to install), unless
//! `COHORT_SKIP_POSTGRES=1` is set: then it returns `None` after printing that
//! the test is skipped. A PostgreSQL test
//! never passes silently without a server.

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::PostgresSettings;

/// The environment variable that turns a missing PostgreSQL into a skip.
pub const SKIP_VARIABLE: &str = "COHORT_SKIP_POSTGRES";

/// Why a scratch server could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    /// PostgreSQL's binaries are missing and the skip was not asked for.
    #[error(
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): \
         `apt-get install -y postgresql`, or set {SKIP_VARIABLE}=1 to skip"
    )]
    NotInstalled,
    /// A file or process operation failed.
    #[error("scratch PostgreSQL: {0}")]
    Io(#[from] std::io::Error),
    /// A PostgreSQL tool exited with an error.
    #[error("scratch PostgreSQL: {program} failed: {output}")]
    Failed {
        /// The tool.
        program: String,
        /// What it printed (the server log for a failed start).
        output: String,
    },
}

/// A certificate and key (PEM) for the server's TLS.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The server's certificate chain, PEM.
    pub certificate_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
}

/// A running scratch server (see the module docs).
#[derive(Debug)]
pub struct ScratchServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    run_as: Option<&'static str>,
}

/// The newest installed PostgreSQL's `bin` folder.
fn installed_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The unprivileged user to run the server as when we are root.
fn server_user() -> Option<&'static str> {
    let root = std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0);
    if !root {
        return None;
    }
    ["postgres", "nobody"].into_iter().find(|user| {
        Command::new("id")
            .arg(user)
            .output()
            .is_ok_and(|out| out.status.success())
    })
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl ScratchServer {
    /// Starts a plain (non-TLS) server; `None` only when PostgreSQL is
    /// missing and `COHORT_SKIP_POSTGRES=1` asks for the skip.
    pub fn start() -> Result<Option<Self>, ScratchError> {
        Self::start_with(None)
    }

    /// Starts a server, with TLS when `tls` is given (see [`Self::start`]).
    pub fn start_with(tls: Option<&ServerTls>) -> Result<Option<Self>, ScratchError> {
        let Some(bin) = installed_bin() else {
            if std::env::var(SKIP_VARIABLE).is_ok_and(|v| v == "1") {
                eprintln!("SKIPPED: PostgreSQL is not installed ({SKIP_VARIABLE}=1)");
                return Ok(None);
            }
            return Err(ScratchError::NotInstalled);
        };
        let server = Self {
            dir: tempfile::tempdir()?,
            bin,
            port: free_port()?,
            run_as: server_user(),
        };
        server.init(tls)?;
        Ok(Some(server))
    }

    fn init(&self, tls: Option<&ServerTls>) -> Result<(), ScratchError> {
        let data = self.data();
        self.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "cohort".as_ref(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--no-instructions".as_ref(),
            ],
        )?;
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        if let Some(tls) = tls {
            std::fs::write(data.join("server.crt"), &tls.certificate_pem)?;
            std::fs::write(data.join("server.key"), &tls.key_pem)?;
            self.run(
                "chmod",
                &["0600".as_ref(), data.join("server.key").as_os_str()],
            )?;
            options.push_str(" -c ssl=on");
        }
        let log = self.dir.path().join("server.log");
        let started = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-o", &options, "start"])
            .stdout(Stdio::null())
            .status()?;
        if !started.success() {
            return Err(ScratchError::Failed {
                program: "pg_ctl start".into(),
                output: std::fs::read_to_string(&log).unwrap_or_default(),
            });
        }
        Ok(())
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Hands the folder to the server's user (when we are root).
    fn chown(&self, path: &Path) -> Result<(), ScratchError> {
        let Some(user) = self.run_as else {
            return Ok(());
        };
        let out = Command::new("chown")
            .args(["-R", &format!("{user}:")])
            .arg(path)
            .output()?;
        if !out.status.success() {
            return Err(ScratchError::Failed {
                program: "chown".into(),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(())
    }

    /// `program` from the server's bin folder (or the system's), as the server's user.
    fn command(&self, program: &str) -> Command {
        let bin = self.bin.join(program);
        let program = if bin.exists() {
            bin
        } else {
            PathBuf::from(program)
        };
        match self.run_as {
            Some(user) => {
                let mut command = Command::new("setpriv");
                command
                    .args([
                        &format!("--reuid={user}"),
                        &format!("--regid={user}"),
                        "--init-groups",
                        "--",
                    ])
                    .arg(program);
                command
            }
            None => Command::new(program),
        }
    }

    fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<(), ScratchError> {
        self.chown(self.dir.path())?;
        let out = self.command(program).args(args).output()?;
        if !out.status.success() {
            return Err(ScratchError::Failed {
                program: program.into(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        Ok(())
    }

    /// A connection URL for a fresh database `name` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://cohort@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates database `name` and returns store settings for it (plain).
    pub fn database(&self, name: &str) -> Result<PostgresSettings, ScratchError> {
        let port = self.port.to_string();
        let args = ["-h", "127.0.0.1", "-p", &port, "-U", "cohort", name];
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        self.run("createdb", &args)?;
        Ok(PostgresSettings {
            postgres: self.url(name),
            ca_certificate: None,
        })
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for ScratchServer {
    fn drop(&mut self) {
        // Stopped at once: the folder is deleted right after.
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .status();
    }
}
