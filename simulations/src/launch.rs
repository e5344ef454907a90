//! Starting a run's nodes — as tasks of this process, or as `cohort-node run`
//! processes ([`crate::scenario::Mode`]) — and waiting for them to finish.
//! Either way a node speaks the same mutual-TLS gRPC protocol to the coordinator.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;

use cohort_client::data::Dataset;
use cohort_client::fault::FaultPlan;
use cohort_client::node::{NodeError, NodeSummary};
use cohort_crypto::pki::PkiError;
use tokio::task::JoinHandle;

use crate::harness::{Provisioned, local_data, spawn_node};
use crate::node_process::{self, NodeCommand, NodeProcessError};

/// Why a node could not be started, or did not finish well.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("node {node}: {message}")]
    Start { node: String, message: String },
    #[error("node {node}: {source}")]
    Pki { node: String, source: PkiError },
    #[error("node {node}: {source}")]
    Process {
        node: String,
        source: NodeProcessError,
    },
    #[error("node {node}: {source}")]
    Failed { node: String, source: NodeError },
    #[error("node {node} stopped abnormally: {message}")]
    Aborted { node: String, message: String },
    #[error("node {node}'s process exited with {status}; its log is {}", log.display())]
    Exited {
        node: String,
        status: ExitStatus,
        log: PathBuf,
    },
}

/// One node's share of the data, prepared before the coordinator starts.
#[derive(Debug)]
pub struct NodeShare {
    pub node: String,
    pub data: Dataset,
    /// Seed of its train/holdout split.
    pub split_seed: u64,
}

/// Where and how the nodes are started.
#[derive(Debug)]
pub struct Launcher<'a> {
    pub provisioned: &'a Provisioned,
    pub federation_id: &'a str,
    pub holdout: f64,
    /// For processes: the `cohort-node` binary, a folder for their CSV files and
    /// one for their logs.
    pub processes: Option<ProcessPlaces>,
}

#[derive(Debug, Clone)]
pub struct ProcessPlaces {
    pub binary: PathBuf,
    pub data_dir: PathBuf,
    pub log_dir: PathBuf,
}

/// A started node.
#[derive(Debug)]
pub enum Running {
    Task {
        node: String,
        handle: JoinHandle<Result<NodeSummary, NodeError>>,
    },
    Process {
        node: String,
        // Boxed: a child process handle is much larger than a task's.
        child: Box<tokio::process::Child>,
        log: PathBuf,
    },
}

/// A node ready to start: in-process with its split data, or as a process
/// with its CSV file written.
#[derive(Debug)]
pub enum Prepared {
    Task {
        node: String,
        data: cohort_client::node::LocalData,
    },
    Process {
        node: String,
        csv: PathBuf,
        split_seed: u64,
    },
}

impl Launcher<'_> {
    /// Splits (tasks) or writes out (processes) a node's share; done for every
    /// node before the coordinator starts, so bad data fails the run early.
    pub fn prepare(&self, share: NodeShare) -> Result<Prepared, LaunchError> {
        let NodeShare {
            node,
            data,
            split_seed,
        } = share;
        match &self.processes {
            None => match local_data(&data, self.holdout, split_seed) {
                Ok(data) => Ok(Prepared::Task { node, data }),
                Err(e) => Err(LaunchError::Start {
                    message: format!("{e:#}"),
                    node,
                }),
            },
            Some(places) => {
                let csv = places.data_dir.join(format!("{node}.csv"));
                match node_process::write_node_csv(&data, &csv) {
                    Ok(()) => Ok(Prepared::Process {
                        node,
                        csv,
                        split_seed,
                    }),
                    Err(source) => Err(LaunchError::Process { node, source }),
                }
            }
        }
    }

    /// Starts a prepared node against the coordinator at `address`; `faults`
    /// are acted out by task nodes only (process-mode scenarios have none).
    pub fn start(
        &self,
        prepared: Prepared,
        address: SocketAddr,
        faults: Option<FaultPlan>,
    ) -> Result<Running, LaunchError> {
        match (prepared, &self.processes) {
            (
                Prepared::Process {
                    node,
                    csv,
                    split_seed,
                },
                Some(places),
            ) => {
                let tls = self
                    .provisioned
                    .node(&node)
                    .map_err(|source| LaunchError::Pki {
                        node: node.clone(),
                        source,
                    })?;
                let command = NodeCommand {
                    coordinator: address.to_string(),
                    server_name: Some("localhost".into()),
                    federation_id: self.federation_id.to_owned(),
                    tls,
                    data: csv,
                    holdout: self.holdout,
                    split_seed,
                };
                let log = places.log_dir.join(format!("{node}.log"));
                match node_process::spawn(&places.binary, &command, &log) {
                    Ok(child) => Ok(Running::Process {
                        node,
                        child: Box::new(child),
                        log,
                    }),
                    Err(source) => Err(LaunchError::Process { node, source }),
                }
            }
            (Prepared::Task { node, data }, _) => {
                match spawn_node(
                    self.provisioned,
                    &node,
                    self.federation_id,
                    address,
                    data,
                    faults,
                ) {
                    Ok(handle) => Ok(Running::Task { node, handle }),
                    Err(e) => Err(LaunchError::Start {
                        message: format!("{e:#}"),
                        node,
                    }),
                }
            }
            (Prepared::Process { node, .. }, None) => Err(LaunchError::Start {
                node,
                message: "prepared as a process but launched as a task".into(),
            }),
        }
    }
}

impl Running {
    /// Waits for the node to finish; an error if it failed.
    pub async fn finish(self) -> Result<(), LaunchError> {
        match self {
            Self::Task { node, handle } => match handle.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(source)) => Err(LaunchError::Failed { node, source }),
                Err(join) => Err(LaunchError::Aborted {
                    node,
                    message: join.to_string(),
                }),
            },
            Self::Process {
                node,
                mut child,
                log,
            } => match child.wait().await {
                Ok(status) if status.success() => Ok(()),
                Ok(status) => Err(LaunchError::Exited { node, status, log }),
                Err(e) => Err(LaunchError::Aborted {
                    node,
                    message: e.to_string(),
                }),
            },
        }
    }
}

/// The node of index `i`.
pub fn node_id(i: usize) -> String {
    format!("node-{i:03}")
}
