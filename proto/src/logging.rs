//! How every Cohort binary logs (feature `logging`): the `--log-format`
//! choice and the one subscriber set-up behind it. It lives here because
//! `cohort-proto` is the one crate all three binaries (`cohort-coordinator`,
//! `cohort-node`, `cohort-sim`) depend on; nothing else of the protocol uses it.

use std::io::IsTerminal;
use std::sync::OnceLock;

/// The format [`init`] set up, for programs that start other Cohort binaries
/// and want them to log alike (the simulator's process nodes).
static CHOSEN: OnceLock<LogFormat> = OnceLock::new();

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people; coloured only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object a line (timestamp, level, fields, target), for log shippers.
    Json,
}

/// Logs to stderr in `format`, at the level `RUST_LOG` names, else
/// `default_level` (e.g. `"info"`).
pub fn init(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_level.into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = CHOSEN.set(format);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().with_ansi(false).init(),
    }
}

/// The format this process logs in: the one [`init`] was given, else the default.
pub fn chosen() -> LogFormat {
    CHOSEN.get().copied().unwrap_or_default()
}

impl LogFormat {
    /// The value `--log-format` takes for this format.
    pub fn as_arg(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}
