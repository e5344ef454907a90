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
use crate::scenario::ZooModel;

/// Why a node could not be started, or did not finish well.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// A task node's data could not be split or the node set up, or a node
    /// prepared as a process was started without process places.
    #[error("node {node}: {message}")]
    Start {
        /// The node's id.
        node: String,
        /// What went wrong.
        message: String,
    },
    /// A process node's certificate could not be issued.
    #[error("node {node}: {source}")]
    Pki {
        /// The node's id.
        node: String,
        /// The PKI's error.
        source: PkiError,
    },
    /// A process node's CSV file or log could not be written, or its process started.
    #[error("node {node}: {source}")]
    Process {
        /// The node's id.
        node: String,
        /// What went wrong.
        source: NodeProcessError,
    },
    /// A task node ran and returned an error.
    #[error("node {node}: {source}")]
    Failed {
        /// The node's id.
        node: String,
        /// The node's error.
        source: NodeError,
    },
    /// A task node panicked or was cancelled, or a process node could not be waited for.
    #[error("node {node} stopped abnormally: {message}")]
    Aborted {
        /// The node's id.
        node: String,
        /// The join or wait error.
        message: String,
    },
    /// A process node exited unsuccessfully.
    #[error("node {node}'s process exited with {status}; its log is {}", log.display())]
    Exited {
        /// The node's id.
        node: String,
        /// Its exit status.
        status: ExitStatus,
        /// The file its stdout and stderr went to.
        log: PathBuf,
    },
}

/// One node's share of the data, prepared before the coordinator starts.
#[derive(Debug)]
pub struct NodeShare {
    /// The node's id.
    pub node: String,
    /// The node's rows, before its train/holdout split.
    pub data: Dataset,
    /// Seed of its train/holdout split.
    pub split_seed: u64,
}

/// Where and how the nodes are started.
#[derive(Debug)]
pub struct Launcher<'a> {
    /// The PKI the nodes' certificates are issued from.
    pub provisioned: &'a Provisioned,
    /// The federation the nodes join.
    pub federation_id: &'a str,
    /// Fraction of each node's rows held out for federated evaluation.
    pub holdout: f64,
    /// For processes: the `cohort-node` binary, a folder for their CSV files and
    /// one for their logs.
    pub processes: Option<ProcessPlaces>,
    /// The node SDK's model the nodes train, if not a built-in one.
    pub model: Option<ZooModel>,
}

/// Where process nodes come from and write to.
#[derive(Debug, Clone)]
pub struct ProcessPlaces {
    /// The `cohort-node` binary.
    pub binary: PathBuf,
    /// The folder each node's CSV file (`<node>.csv`) is written to.
    pub data_dir: PathBuf,
    /// The folder each node's log (`<node>.log`) is written to.
    pub log_dir: PathBuf,
}

/// A started node.
#[derive(Debug)]
pub enum Running {
    /// A node running as a task of this process.
    Task {
        /// The node's id.
        node: String,
        /// The task, ending with the node's summary or error.
        handle: JoinHandle<Result<NodeSummary, NodeError>>,
    },
    /// A node running as a `cohort-node` process, killed if this is dropped.
    Process {
        /// The node's id.
        node: String,
        // Boxed: a child process handle is much larger than a task's.
        /// The node's process.
        child: Box<tokio::process::Child>,
        /// The file its stdout and stderr go to.
        log: PathBuf,
    },
}

/// A node ready to start: in-process with its split data, or as a process
/// with its CSV file written.
#[derive(Debug)]
pub enum Prepared {
    /// A node to run as a task.
    Task {
        /// The node's id.
        node: String,
        /// Its training and held-out rows.
        data: cohort_client::node::LocalData,
    },
    /// A node to run as a `cohort-node` process.
    Process {
        /// The node's id.
        node: String,
        /// Its CSV file (label last, no header).
        csv: PathBuf,
        /// Seed of the train/holdout split the process makes.
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
                    log_format: cohort_proto::logging::chosen(),
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
                let model = match self.model.map(|zoo| zoo.trainable(&data.train)) {
                    None => None,
                    Some(Ok(model)) => Some(model),
                    Some(Err(e)) => {
                        return Err(LaunchError::Start {
                            message: e.to_string(),
                            node,
                        });
                    }
                };
                match spawn_node(
                    self.provisioned,
                    &node,
                    self.federation_id,
                    address,
                    data,
                    faults,
                    model,
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
