//! What observers hear as the federation moves on.

use crate::rounds::timing::RoundTiming;
use crate::store::records::{DatasetRef, RoundRecord};

/// What the engine and the service report as the federation moves on
/// (through [`super::Federation::subscribe`]): for observers (the simulation
/// harness, the tests); nothing in the coordinator waits on them.
#[derive(Debug, Clone)]
pub enum FederationEvent {
    /// A round committed, with its record (evaluation included).
    RoundCompleted(RoundRecord),
    /// Where a committed round's wall time went (after its `RoundCompleted`).
    RoundTimed(RoundTiming),
    /// An attempt at a round failed; the model is unchanged.
    RoundFailed(RoundRecord),
    /// The rounds are done: every poll now answers `Finished`.
    Finished {
        /// Rounds committed.
        completed_rounds: u64,
        /// The final model.
        model_version: String,
        /// Why it stopped before `rounds.count`, if it did.
        stop_reason: Option<String>,
    },
    /// An erasure request tainted the final model of the finished federation
    /// (serving after finish): it rolls back and retrains, and says `Finished`
    /// again once the retrained rounds are done.
    Reopened {
        /// The final model withdrawn.
        model_version: String,
    },
    /// A node registered, with the data set version it trains on.
    NodeRegistered {
        /// The node.
        node_id: String,
        /// Its data set version, if it described one.
        dataset: Option<DatasetRef>,
    },
    /// A TLS connection was refused before reaching the service.
    ConnectionRefused {
        /// Who connected.
        remote_addr: std::net::SocketAddr,
        /// Why it was refused.
        reason: String,
    },
}
