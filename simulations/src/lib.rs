//! Cohort's simulation harness: whole federations on one machine, over the real
//! protocol (mutual-TLS gRPC on loopback).
//!
//! - [`partition`]: splitting a data set among simulated nodes (IID, Dirichlet).
//! - [`harness`]: provisioning a PKI and starting a coordinator and nodes.
//! - [`demo`]: the one-command demo.

pub mod demo;
pub mod harness;
pub mod partition;
