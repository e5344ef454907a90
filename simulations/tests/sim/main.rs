//! `cohort-sim`'s tests: whole federations over the real protocol, one module
//! per area, in one test binary so that burn and the coordinator are linked once.
//! Run one area with a filter: `cargo test -p cohort-sim --test sim sweep::`.
//!
//! The tests run as threads of one process: none changes the environment, the
//! working directory or a global subscriber; each writes into its own
//! temporary folder.

mod bench;
mod cli;
mod experiments;
mod processes;
mod reproducible;
mod sweep;
