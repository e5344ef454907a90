//! Per-identity request rates: a peer may make `per_second` requests a
//! second, sustained, and `burst` at once (GCRA, the generic cell rate
//! algorithm, via `governor`). A peer that floods a server is refused with
//! [`RefusalReason::RateLimited`] and the server goes on serving the others.
//! Keys are certificate identities, checked before the limit applies, so the
//! table grows only with the federation's own members.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{Refusal, RefusalReason};
use crate::identity::PeerIdentity;

/// A sustained rate and a burst, per identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRate {
    /// Requests a second, sustained.
    pub per_second: NonZeroU32,
    /// Requests at once above the sustained rate.
    pub burst: NonZeroU32,
}

impl RequestRate {
    /// `per_second` sustained and `burst` at once; zeros are raised to one
    /// (configuration validation refuses them).
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN),
            burst: NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN),
        }
    }
}

/// One GCRA limit per peer identity (see the module docs).
#[derive(Debug)]
pub struct RequestRateLimiter {
    limiter: DefaultKeyedRateLimiter<PeerIdentity>,
    rate: RequestRate,
}

impl RequestRateLimiter {
    /// Limits every identity to `rate`.
    pub fn new(rate: RequestRate) -> Self {
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate.per_second).allow_burst(rate.burst)),
            rate,
        }
    }

    /// Counts one request of `peer`, or says why it is refused.
    pub fn check(&self, peer: &PeerIdentity) -> Result<(), Refusal> {
        self.limiter.check_key(peer).map_err(|_| {
            Refusal::new(
                RefusalReason::RateLimited,
                format!(
                    "{peer} exceeded its request rate ({} per second, bursts of {}); slow down",
                    self.rate.per_second, self.rate.burst
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Role;

    #[test]
    fn a_burst_passes_then_the_flood_is_refused_per_identity() {
        let limiter = RequestRateLimiter::new(RequestRate::new(1, 5));
        let flooder = PeerIdentity::new(Role::Node, "flooder").unwrap();
        for _ in 0..5 {
            limiter.check(&flooder).unwrap();
        }
        let refused = limiter.check(&flooder).unwrap_err();
        assert_eq!(refused.reason, RefusalReason::RateLimited);
        // Another peer, even of the same name in another role, is unaffected.
        limiter
            .check(&PeerIdentity::new(Role::Auditor, "flooder").unwrap())
            .unwrap();
    }
}
