//! What the coordinator learns about this node under distributed DP, bounded
//! by the node itself: `cohort-node run --max-epsilon E --min-cohort N
//! --privacy-ledger FILE`.
//!
//! Adversary: the coordinator (and whoever it shares sums with). It draws the
//! sample, so amplification by subsampling does not hold against it: each
//! round counts with q = 1 (`DpEvent::with_known_sample`'s view). Under
//! distributed DP (Kairouz, Liu, Steinke, ICML 2021) it sees only sums of
//! nodes' noisy changes; a sum of s changes carries the noise of s shares.
//!
//! When the node charges: before its masked change leaves (the masked-input
//! stage), since after that the node cannot stop the release — the
//! coordinator unmasks with its neighbours' shares, not its own. It charges
//! the round as a sum of `min_cohort` noisy changes, and signs no survivor set
//! smaller than that ([`super::secure_aggregation::SecureRoundError::CohortTooSmall`]).
//! So the ledger's ε holds for every sum the coordinator can unmask with this
//! node's change in it, provided the survivor set it uses gets the
//! signatures of enough of this node's neighbours that enforce the same
//! minimum (a consortium's node policy; with c colluding neighbours, t − c
//! honest signers are needed, see `crypto/README.md`). A round without
//! distributed noise has no finite ε: a node with a budget refuses it.
//! Every attempt of a round that reaches the masked-input stage is charged.

use std::path::PathBuf;

use cohort_privacy::{DistributedDiscreteGaussian, DpEvent, PrivacyBudget};
use cohort_proto::v1;

use super::ledger_file::{BudgetRefusal, LedgerError, LedgerFile};

/// What `cohort-node run --max-epsilon` configures.
#[derive(Debug, Clone, PartialEq)]
pub struct DistributedPrivacy {
    /// The most the coordinator may learn about this node's data, over all rounds.
    pub budget: PrivacyBudget,
    /// The fewest noisy changes in a sum holding this node's (also the
    /// smallest survivor set it signs).
    pub min_cohort: usize,
    /// Where the spend is kept across runs.
    pub ledger_path: PathBuf,
}

/// Why the node does not send its masked change.
#[derive(Debug, thiserror::Error)]
pub enum ChargeError {
    /// The round would exceed the node's budget against the coordinator.
    #[error(transparent)]
    Refused(#[from] BudgetRefusal),
    /// The round adds no distributed noise, so no ε bounds what the
    /// coordinator learns.
    #[error(
        "the round adds no distributed noise: this node has a privacy budget and does not take part"
    )]
    NoNoise,
    /// The ledger could not be written or the round not accounted.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The node's ledger of distributed-DP rounds, against the coordinator.
#[derive(Debug)]
pub struct DistributedLedger {
    min_cohort: usize,
    ledger: LedgerFile,
}

impl DistributedLedger {
    /// The ledger at `config.ledger_path` (new if missing), under its budget.
    pub fn open(config: &DistributedPrivacy) -> Result<Self, LedgerError> {
        Ok(Self {
            min_cohort: config.min_cohort,
            ledger: LedgerFile::open("distributed", &config.ledger_path, config.budget)?,
        })
    }

    /// The minimum cohort the node signs survivor sets against.
    pub fn min_cohort(&self) -> usize {
        self.min_cohort
    }

    /// Charges round `round` before the masked change leaves: the sum of
    /// `min_cohort` changes of `dimension` coordinates noised as `noise`
    /// says, seen by a coordinator that knows the sample. Returns ε spent.
    pub fn charge(
        &mut self,
        round: u64,
        noise: Option<&v1::DistributedNoise>,
        dimension: usize,
    ) -> Result<f64, ChargeError> {
        let noise = noise.ok_or(ChargeError::NoNoise)?;
        let event = release_event(noise, self.min_cohort, dimension).map_err(LedgerError::from)?;
        self.ledger.admit(std::slice::from_ref(&event))?;
        Ok(self.ledger.record(round, vec![event])?)
    }
}

/// The distributed discrete Gaussian sum of `contributors` noisy changes, as
/// the coordinator sees it (q = 1).
pub fn release_event(
    noise: &v1::DistributedNoise,
    contributors: usize,
    dimension: usize,
) -> Result<DpEvent, cohort_privacy::PrivacyError> {
    let mechanism = DistributedDiscreteGaussian {
        clip_norm: noise.clip_norm,
        granularity: noise.granularity,
        local_stddev: noise.local_stddev,
        clients: contributors as u64,
        dimension: dimension as u64,
        rounding_beta: noise.rounding_beta,
    };
    DpEvent::distributed_discrete_gaussian(1.0, mechanism, 1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use cohort_privacy::{Accountant, Conversion, RdpAccountant};

    fn noise() -> v1::DistributedNoise {
        // σ·C over 3 nodes' shares: √3 · 256 · γ = 1 (the coordinator's choice).
        v1::DistributedNoise {
            clip_norm: 1.0,
            granularity: 1.0 / (256.0 * 3f64.sqrt()),
            local_stddev: 256.0,
            rounding_beta: (-0.5f64).exp(),
        }
    }

    #[test]
    fn rounds_are_charged_unamplified_until_the_budget_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (cohort, dimension) = (3, 62);
        let event = release_event(&noise(), cohort, dimension).unwrap();
        let accountant = RdpAccountant::new(Conversion::Improved);
        let after = |rounds: usize| accountant.epsilon(&vec![event; rounds], 1e-5).unwrap();
        let config = DistributedPrivacy {
            budget: PrivacyBudget::new((after(2) + after(3)) / 2.0, 1e-5).unwrap(),
            min_cohort: cohort,
            ledger_path: dir.path().join("distributed.json"),
        };
        let mut ledger = DistributedLedger::open(&config).unwrap();
        for round in 1..=2 {
            let spent = ledger.charge(round, Some(&noise()), dimension).unwrap();
            assert!(
                (spent - after(round as usize)).abs() < 1e-9,
                "round {round}: {spent}"
            );
        }
        assert!(matches!(
            ledger.charge(3, Some(&noise()), dimension),
            Err(ChargeError::Refused(_))
        ));
        // The refused round was not recorded, and a restart finds both spends.
        let mut reopened = DistributedLedger::open(&config).unwrap();
        assert_eq!(reopened.ledger.rounds(), 2);
        assert!(matches!(
            reopened.charge(3, Some(&noise()), dimension),
            Err(ChargeError::Refused(_))
        ));
        // Without distributed noise nothing bounds ε: refused, not charged.
        let fresh = DistributedPrivacy {
            ledger_path: dir.path().join("other.json"),
            ..config
        };
        let mut other = DistributedLedger::open(&fresh).unwrap();
        assert!(matches!(
            other.charge(1, None, dimension),
            Err(ChargeError::NoNoise)
        ));
        assert_eq!(other.ledger.rounds(), 0);
    }

    #[test]
    fn a_smaller_cohort_costs_more() {
        // The coordinator's q = 1 view of a sum of fewer shares is less noisy.
        let accountant = RdpAccountant::new(Conversion::Improved);
        let epsilon = |cohort| {
            let event = release_event(&noise(), cohort, 62).unwrap();
            accountant.epsilon(&[event], 1e-5).unwrap()
        };
        assert!(epsilon(2) > epsilon(3));
        assert!(epsilon(3) > epsilon(10));
    }
}
