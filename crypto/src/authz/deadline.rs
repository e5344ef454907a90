//! Serving only while this server is sure of its role: a coordinator that
//! holds a lease answers calls only until it can no longer be sure it holds
//! it (`cohort-coordinator`'s `failover`). Past the deadline every call is
//! refused as [`super::RefusalReason::NotActive`], so a coordinator that
//! resumes from a pause longer than its lease answers nothing, not even a
//! read, before it learns that another took over.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The instant until which a server may answer calls, moved forward by
/// whoever keeps the role (a lease's renewals); cheap to check on every call.
#[derive(Debug, Clone)]
pub struct ServingDeadline {
    base: Instant,
    /// Nanoseconds after `base`.
    until: Arc<AtomicU64>,
}

impl ServingDeadline {
    /// Serving until `until`.
    pub fn new(until: Instant) -> Self {
        let deadline = Self {
            base: Instant::now(),
            until: Arc::new(AtomicU64::new(0)),
        };
        deadline.extend_to(until);
        deadline
    }

    /// Serving until `until` from now on (earlier than before included).
    pub fn extend_to(&self, until: Instant) {
        let nanos = until.saturating_duration_since(self.base).as_nanos();
        self.until
            .store(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::Release);
    }

    /// No more calls answered from now on.
    pub fn close(&self) {
        self.until.store(0, Ordering::Release);
    }

    /// Whether the deadline has passed: calls are to be refused.
    pub fn has_passed(&self) -> bool {
        let until = self.base + Duration::from_nanos(self.until.load(Ordering::Acquire));
        Instant::now() >= until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_holds_until_it_passes_moves_and_closes() {
        let now = Instant::now();
        let deadline = ServingDeadline::new(now + Duration::from_secs(3600));
        assert!(!deadline.has_passed());
        deadline.extend_to(now);
        assert!(deadline.has_passed());
        deadline.extend_to(Instant::now() + Duration::from_secs(3600));
        assert!(!deadline.has_passed());
        deadline.close();
        assert!(deadline.has_passed());
    }
}
