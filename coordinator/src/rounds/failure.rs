//! Why an attempt at a round committed nothing: [`RoundFailure`] while the
//! engine handles it, [`FailureKind`] in the stored record and in `/metrics`
//! (programs match the kind, never the words).

use serde::{Deserialize, Serialize};

/// What kind of failure ended an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Fewer updates than `rounds.min_results` came back before the deadline.
    TooFewUpdates,
    /// Secure aggregation produced no sum (too few survivors, a node's
    /// misbehaviour, the privacy budget refusing the release, …).
    SecureAggregationAborted,
    /// The strategy could not aggregate the updates it got.
    AggregationFailed,
    /// An erasure request tainted the model the attempt started from: it was
    /// discarded, and the federation retrains from an untainted model.
    Discarded,
}

impl FailureKind {
    /// Every kind.
    pub const ALL: [FailureKind; 4] = [
        Self::TooFewUpdates,
        Self::SecureAggregationAborted,
        Self::AggregationFailed,
        Self::Discarded,
    ];

    /// The kind's name in records and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooFewUpdates => "too_few_updates",
            Self::SecureAggregationAborted => "secure_aggregation_aborted",
            Self::AggregationFailed => "aggregation_failed",
            Self::Discarded => "discarded",
        }
    }
}

/// Why an attempt at a round committed nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RoundFailure {
    /// See [`FailureKind::TooFewUpdates`].
    #[error(
        "only {got} of {sampled} sampled nodes returned an update before the deadline; {needed} needed"
    )]
    TooFewUpdates {
        /// Updates that came back.
        got: usize,
        /// Nodes sampled.
        sampled: usize,
        /// Updates needed.
        needed: usize,
    },
    /// See [`FailureKind::SecureAggregationAborted`].
    #[error("secure aggregation: {0}")]
    SecureAggregationAborted(String),
    /// See [`FailureKind::AggregationFailed`].
    #[error("{0}")]
    AggregationFailed(String),
    /// See [`FailureKind::Discarded`].
    #[error("discarded: an erasure request tainted the model this round started from")]
    Discarded,
}

impl RoundFailure {
    /// Its kind.
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::TooFewUpdates { .. } => FailureKind::TooFewUpdates,
            Self::SecureAggregationAborted(_) => FailureKind::SecureAggregationAborted,
            Self::AggregationFailed(_) => FailureKind::AggregationFailed,
            Self::Discarded => FailureKind::Discarded,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Records (serde) and metric labels (`as_str`) name a kind alike.
    #[test]
    fn a_kind_has_one_name_in_records_and_metrics() {
        for kind in FailureKind::ALL {
            let stored = serde_json::to_string(&kind).unwrap();
            assert_eq!(stored, format!("\"{}\"", kind.as_str()));
        }
    }
}
