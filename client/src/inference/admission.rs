//! How many `Predict` calls each requester may have in flight on the node.
//!
//! Why: every prediction holds its batch of ciphertexts and a task until its
//! last score is sent, and queues its inputs for the node's cores. Without a
//! per-requester bound, one requester opening many streams would fill the
//! evaluation queue ahead of everyone else and pile up memory. So each requester
//! (the identity of its mTLS certificate) may have at most a fixed number of
//! predictions in flight; past it a new one is refused at once, before anything
//! is computed.
//!
//! A prediction holds an [`AdmittedPrediction`] from the moment it is admitted
//! until its task ends (finished, failed, or the requester went away); dropping
//! it frees the slot, so no path can leak one. The counts live in a
//! [`watch`] channel so that a caller can wait for a requester's predictions to
//! end ([`PredictionAdmission::ended`]) instead of polling.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;

use cohort_crypto::PeerIdentity;
use tokio::sync::watch;

/// Predictions in flight, by requester; a requester with none has no entry.
type InFlight = HashMap<PeerIdentity, usize>;

/// Admits a requester's prediction only while it has fewer than the limit in
/// flight; cheap to clone (shared counts).
#[derive(Debug, Clone)]
pub struct PredictionAdmission {
    limit: NonZeroUsize,
    in_flight: Arc<watch::Sender<InFlight>>,
}

/// A requester already has as many predictions in flight as it may.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{requester} already has {limit} {} in flight on this node; wait for one to finish",
    predictions(*.limit)
)]
pub struct TooManyPredictions {
    /// The requester refused.
    pub requester: PeerIdentity,
    /// The predictions one requester may have in flight.
    pub limit: NonZeroUsize,
}

fn predictions(count: NonZeroUsize) -> &'static str {
    if count.get() == 1 {
        "prediction"
    } else {
        "predictions"
    }
}

/// One admitted prediction's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct AdmittedPrediction {
    requester: PeerIdentity,
    in_flight: Arc<watch::Sender<InFlight>>,
}

impl PredictionAdmission {
    /// At most `limit` predictions in flight per requester.
    pub fn new(limit: NonZeroUsize) -> Self {
        Self {
            limit,
            in_flight: Arc::new(watch::Sender::new(InFlight::new())),
        }
    }

    /// Takes one of `requester`'s slots, or says that it has none left.
    pub fn admit(
        &self,
        requester: &PeerIdentity,
    ) -> Result<AdmittedPrediction, TooManyPredictions> {
        let limit = self.limit;
        let admitted = self.in_flight.send_if_modified(|in_flight| {
            let count = in_flight.entry(requester.clone()).or_insert(0);
            // The limit is at least 1, so a fresh entry (0) is always admitted:
            // a refusal never leaves an empty entry behind.
            if *count >= limit.get() {
                return false;
            }
            *count += 1;
            true
        });
        if !admitted {
            return Err(TooManyPredictions {
                requester: requester.clone(),
                limit,
            });
        }
        Ok(AdmittedPrediction {
            requester: requester.clone(),
            in_flight: self.in_flight.clone(),
        })
    }

    /// How many predictions `requester` has in flight.
    pub fn in_flight(&self, requester: &PeerIdentity) -> usize {
        self.in_flight.borrow().get(requester).copied().unwrap_or(0)
    }

    /// Returns once `requester` has no prediction in flight.
    pub async fn ended(&self, requester: &PeerIdentity) {
        let mut counts = self.in_flight.subscribe();
        // An error means the sender is gone, and with it every slot: nothing is
        // in flight then either.
        let _ = counts
            .wait_for(|in_flight| !in_flight.contains_key(requester))
            .await;
    }
}

impl Drop for AdmittedPrediction {
    fn drop(&mut self) {
        self.in_flight.send_modify(|in_flight| {
            if let Some(count) = in_flight.get_mut(&self.requester) {
                *count -= 1;
                if *count == 0 {
                    in_flight.remove(&self.requester);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;
    use std::time::Duration;

    use cohort_crypto::Role;

    use super::*;

    fn requester(name: &str) -> PeerIdentity {
        PeerIdentity::new(Role::Requester, name).unwrap()
    }

    fn admission(limit: usize) -> PredictionAdmission {
        PredictionAdmission::new(NonZeroUsize::new(limit).unwrap())
    }

    #[test]
    fn a_requester_is_refused_past_its_limit_and_served_again_once_one_ends() {
        let admission = admission(2);
        let clinic = requester("clinic-x");
        let first = admission.admit(&clinic).unwrap();
        let second = admission.admit(&clinic).unwrap();
        assert_eq!(admission.in_flight(&clinic), 2);
        let refused = admission.admit(&clinic).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "cohort://requester/clinic-x already has 2 predictions in flight on this node; \
             wait for one to finish"
        );
        assert_eq!(admission.in_flight(&clinic), 2, "a refusal takes no slot");
        drop(first);
        assert_eq!(admission.in_flight(&clinic), 1);
        let third = admission.admit(&clinic).unwrap();
        assert_eq!(admission.in_flight(&clinic), 2);
        drop(second);
        drop(third);
        assert_eq!(admission.in_flight(&clinic), 0);
        assert!(
            admission.in_flight.borrow().is_empty(),
            "no entry left behind"
        );
    }

    #[test]
    fn each_requester_has_slots_of_its_own() {
        let admission = admission(1);
        let x = requester("clinic-x");
        let y = requester("clinic-y");
        let held = admission.admit(&x).unwrap();
        assert!(admission.admit(&x).is_err());
        let other = admission.admit(&y).unwrap();
        assert_eq!((admission.in_flight(&x), admission.in_flight(&y)), (1, 1));
        let refused = admission.admit(&y).unwrap_err();
        assert_eq!(refused.requester, y);
        assert!(
            refused
                .to_string()
                .contains("already has 1 prediction in flight")
        );
        drop(held);
        assert_eq!((admission.in_flight(&x), admission.in_flight(&y)), (0, 1));
        drop(other);
    }

    #[test]
    fn clones_share_the_counts() {
        let admission = admission(1);
        let clinic = requester("clinic-x");
        let _held = admission.clone().admit(&clinic).unwrap();
        assert!(admission.admit(&clinic).is_err());
    }

    /// Polls `future` once: true if it is not ready yet.
    async fn is_pending(future: &mut (impl Future + Unpin)) -> bool {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx).is_pending())).await
    }

    #[tokio::test]
    async fn waiting_for_the_end_returns_when_the_last_slot_is_freed() {
        let admission = admission(2);
        let clinic = requester("clinic-x");
        let first = admission.admit(&clinic).unwrap();
        let second = admission.admit(&clinic).unwrap();
        let _unrelated = admission.admit(&requester("clinic-y")).unwrap();
        let mut ended = std::pin::pin!(admission.ended(&clinic));
        assert!(is_pending(&mut ended).await, "two predictions in flight");
        drop(first);
        assert!(is_pending(&mut ended).await, "one prediction in flight");
        drop(second);
        tokio::time::timeout(Duration::from_secs(10), ended)
            .await
            .expect("the wait ends once the requester has nothing in flight");
    }
}
