//! The `cohort-node` subcommands, one file each; shared argument groups here.

pub mod data;
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

use clap::Args;
use cohort_client::data::LabelColumn;
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
        self.address_of(&self.coordinator)
    }

    /// `address` with --server-name, if given, as its TLS server name.
    pub fn address_of(&self, address: &str) -> ServerAddress {
        let mut address = ServerAddress::new(address);
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

pub use data::DataArgs;

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
