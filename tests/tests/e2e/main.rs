//! Cohort's end-to-end tests: real coordinators and nodes on loopback, over
//! mutual-TLS gRPC, one module per area.
//!
//! They are one test binary so that burn and tfhe are linked once, not once per
//! file. Run one area with a filter: `cargo test -p cohort-e2e --test e2e
//! deadlines::` (or `cargo nextest run -p cohort-e2e -E 'test(/^deadlines::/)'`).
//!
//! `cargo test` runs the tests as threads of one process, so none may change
//! what the process shares: no `std::env::set_var`, no working-directory change,
//! no global tracing subscriber, no resource limits, no fixed port. Each test
//! makes its own temporary folder and PKI and listens on port 0; a test that
//! needs a port to outlive one coordinator (`crash`) takes one from the kernel.
//! Child processes (`cohort-coordinator`, `cohort-node`) are the binaries built
//! next to this one.

mod auditor;
mod authorization;
mod bad_input;
mod console;
mod console_browser;
mod crash;
mod data_formats;
mod dataset_registration;
mod deadlines;
mod erasure;
mod export;
mod failover;
mod federation;
mod health;
mod hostile;
mod inference;
mod load;
mod migration;
mod mtls;
mod observability;
mod owner_model;
mod privacy_budget;
mod processes;
mod record_privacy;
mod replay;
mod restart;
mod revocation;
mod secure_aggregation;
mod serve_after_finish;
mod strategy_state;
