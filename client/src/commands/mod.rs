//! The `cohort-node` subcommands, one file each; shared argument groups here.

pub mod erasure;
#[cfg(feature = "he")]
pub mod he;
pub mod model;
pub mod run;
#[cfg(feature = "he")]
pub mod serve;
#[cfg(not(feature = "he"))]
pub mod without_he;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use cohort_client::data::{
    BadRowPolicy, CsvOptions, Dataset, LabelColumn, load_csv, train_holdout_split,
};
use cohort_crypto::tls::TlsFiles;
use cohort_crypto::tls::connector::ServerAddress;

/// How a node reaches its coordinator: address, federation and mutual-TLS files.
#[derive(Args)]
pub struct ConnectionArgs {
    /// The coordinator's address, host:port.
    #[arg(long)]
    pub coordinator: String,
    /// The name on the coordinator's certificate (default: the host of --coordinator).
    #[arg(long)]
    pub server_name: Option<String>,
    #[arg(long)]
    pub federation: String,
    #[command(flatten)]
    pub tls: TlsArgs,
}

impl ConnectionArgs {
    pub fn address(&self) -> ServerAddress {
        let mut address = ServerAddress::new(&self.coordinator);
        if let Some(name) = &self.server_name {
            address.server_name = name.clone();
        }
        address
    }
}

/// This peer's certificate and the federation's CA.
#[derive(Args)]
pub struct TlsArgs {
    /// The federation's CA certificate.
    #[arg(long)]
    pub ca: PathBuf,
    /// This peer's certificate; its identity is the one the other side sees.
    #[arg(long)]
    pub cert: PathBuf,
    /// This peer's private key.
    #[arg(long)]
    pub key: PathBuf,
}

impl TlsArgs {
    pub fn files(&self) -> TlsFiles {
        TlsFiles {
            ca_certificate: self.ca.clone(),
            certificate: self.cert.clone(),
            private_key: self.key.clone(),
        }
    }
}

/// The node's local data and how it is split (the same flags for `run` and
/// `inference serve`, so both see the same training split).
#[derive(Args)]
pub struct DataArgs {
    /// The local data: a CSV file (or .csv.gz) of numeric features and a label.
    #[arg(long)]
    pub data: PathBuf,
    /// The label's 0-based column, or `last`.
    #[arg(long, default_value = "last", value_parser = parse_label_column)]
    pub label_column: LabelColumn,
    /// Lines at the top of the file that are not data (a header).
    #[arg(long, default_value_t = 0)]
    pub header_lines: usize,
    /// Fraction of rows held out for federated evaluation.
    #[arg(long, default_value_t = 0.2)]
    pub holdout: f64,
    /// Seed of the train/holdout split.
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    /// What to do with rows that fail to parse.
    #[arg(long, value_enum, default_value_t = BadRows::Reject)]
    pub bad_rows: BadRows,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum BadRows {
    Skip,
    Reject,
}

impl DataArgs {
    /// Loads the file and splits it into (train, holdout).
    pub fn load_split(&self) -> anyhow::Result<(Dataset, Dataset)> {
        let options = CsvOptions {
            label_column: self.label_column,
            header_lines: self.header_lines,
            bad_rows: match self.bad_rows {
                BadRows::Skip => BadRowPolicy::Skip,
                BadRows::Reject => BadRowPolicy::Reject,
            },
        };
        let loaded = load_csv(&self.data, &options)
            .with_context(|| format!("loading {}", self.data.display()))?;
        for bad in &loaded.skipped {
            tracing::warn!(line = bad.line, reason = %bad.reason, "skipped malformed row");
        }
        let (train, holdout) = train_holdout_split(&loaded.dataset, self.holdout, self.split_seed)?;
        tracing::info!(
            rows = loaded.dataset.len(),
            skipped = loaded.skipped.len(),
            train = train.len(),
            holdout = holdout.len(),
            "local data loaded"
        );
        Ok((train, holdout))
    }
}

/// A column index, `last`, or `none` (no label: every column is a feature).
pub fn parse_label_column(text: &str) -> Result<LabelColumn, String> {
    match text {
        "last" => Ok(LabelColumn::Last),
        "none" => Ok(LabelColumn::None),
        _ => text
            .parse()
            .map(LabelColumn::Index)
            .map_err(|_| format!("expected a column index, `last` or `none`, got {text:?}")),
    }
}
