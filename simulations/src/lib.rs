//! Cohort's simulation harness: whole federations on one machine, over the real
//! protocol (mutual-TLS gRPC on loopback).
//!
//! - [`partition`]: splitting a data set among simulated nodes (IID, Dirichlet, shards, quantity skew).
//! - [`harness`]: provisioning a PKI and starting a coordinator and nodes;
//!   [`launch`]: a run's nodes as tasks or processes; [`node_process`]: `cohort-node`
//!   processes, their CSV files and command lines.
//! - [`scenario`]: a simulation described in a TOML file; [`faults`]: its simulated
//!   dropouts, stragglers and attackers.
//! - [`progress`]: following a running federation round by round.
//! - [`memory`]: the process's peak memory, and [`open_files`]: its file limit, for large runs.
//! - [`shares`]: a scenario's data split among its nodes, and its federation plan.
//! - [`run`]: running a scenario; [`report`]: its per-round reports; [`plot`]: PNG charts.
//! - [`provision`]: a scenario laid out for a federation over several machines.
//! - [`sweep`]: accuracy against ε, one run per privacy budget.
//! - [`demo`]: the one-command demo.
//! - [`bench`]: the framework's own cost per round, stage by stage (`cohort-sim bench`).

#![warn(missing_docs)]

pub mod bench;
pub mod demo;
pub mod faults;
pub mod harness;
pub mod launch;
pub mod memory;
pub mod node_process;
pub mod open_files;
pub mod partition;
pub mod plot;
pub mod progress;
pub mod provision;
pub mod report;
pub mod run;
pub mod scenario;
pub mod scrape;
pub mod shares;
pub mod sweep;
pub mod synthetic;
