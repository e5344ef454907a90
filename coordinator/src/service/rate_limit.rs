//! Per-peer request rate limits: a node (or an auditor) may make
//! `requests_per_second` requests a second, sustained, and `request_burst` at
//! once (GCRA, the generic cell rate algorithm, via `governor`). A peer that
//! floods the coordinator is refused with RESOURCE_EXHAUSTED and the
//! federation goes on serving the others. Keys are certificate identities,
//! checked before the limit applies, so the table grows only with the
//! federation's own members.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tonic::Status;

/// One GCRA limit per peer identity (see the module docs).
#[derive(Debug)]
pub struct RequestRateLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    per_second: u32,
    burst: u32,
}

impl RequestRateLimiter {
    /// Zero rates are raised to one (configuration validation refuses them).
    pub fn new(per_second: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst_cells = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst_cells)),
            per_second: rate.get(),
            burst: burst_cells.get(),
        }
    }

    /// Counts one request of `peer` (a node id, or an auditor's identity), or
    /// says why it is refused.
    pub fn check(&self, peer: &str) -> Result<(), Status> {
        self.limiter.check_key(&peer.to_owned()).map_err(|_| {
            Status::resource_exhausted(format!(
                "{peer} exceeded its request rate ({} per second, bursts of {}); slow down",
                self.per_second, self.burst
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_flood_is_refused_per_node() {
        let limiter = RequestRateLimiter::new(1, 5);
        for _ in 0..5 {
            limiter.check("flooder").unwrap();
        }
        let refused = limiter.check("flooder").unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused.message().contains("flooder"),
            "{}",
            refused.message()
        );
        // Another node is unaffected.
        limiter.check("quiet").unwrap();
    }
}
