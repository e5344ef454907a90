//! The coordinator's per-round ledger check against the rounds already
//! recorded (1, 10, 100, 1000).
//!
//! `cargo bench -p cohort-privacy --bench ledger` prints, per history
//! length, the median time of `PrivacyLedger::check_spend` for one more
//! round (both observers) on a ledger that has recorded its history one
//! round at a time, as a running coordinator's has, and, for comparison,
//! what recomposing every past round from scratch costs (what the check did
//! before it kept the composition). Events: the distributed discrete
//! Gaussian with the number of noise shares varying by round (so no two
//! rounds merge), q = 0.1, d = 1000; the RDP accountant. And the PLD
//! accountant on one repeated central Gaussian event (q = 0.1, σ = 1).

use std::hint::black_box;
use std::time::{Duration, Instant};

use cohort_privacy::{
    Accountant, Conversion, CoordinatorView, DistributedDiscreteGaussian, DpEvent, PldAccountant,
    PrivacyBudget, PrivacyError, PrivacyLedger, RdpAccountant, RoundSpend,
};

fn median(
    runs: usize,
    mut f: impl FnMut() -> Result<(), PrivacyError>,
) -> Result<Duration, PrivacyError> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        black_box(f()?);
        times.push(start.elapsed());
    }
    times.sort();
    Ok(times[runs / 2])
}

fn ddg_round(round: u64) -> Result<RoundSpend, PrivacyError> {
    let mechanism = DistributedDiscreteGaussian {
        clip_norm: 1.0,
        granularity: 1e-3,
        local_stddev: 256.0,
        clients: 10 + round % 7,
        dimension: 1000,
        rounding_beta: (-0.5f64).exp(),
    };
    let events = vec![DpEvent::distributed_discrete_gaussian(0.1, mechanism, 1)?];
    Ok(RoundSpend {
        round,
        coordinator: CoordinatorView::knowing_the_sample(&events),
        events,
    })
}

fn ledger_of(
    rounds: u64,
    spend: impl Fn(u64) -> Result<RoundSpend, PrivacyError>,
    accountant: &dyn Accountant,
) -> Result<PrivacyLedger, PrivacyError> {
    let mut ledger = PrivacyLedger::new(PrivacyBudget::new(1e9, 1e-5)?)?;
    for round in 1..=rounds {
        ledger.record_spend(spend(round)?, accountant)?;
    }
    Ok(ledger)
}

fn main() -> Result<(), PrivacyError> {
    let quick = std::env::args().any(|a| a == "--test");
    let (runs, lengths): (usize, &[u64]) = if quick {
        (1, &[1, 10])
    } else {
        (11, &[1, 10, 100, 1000])
    };
    let rdp = RdpAccountant::new(Conversion::Improved);
    let pld = PldAccountant::new();
    let central = |round| {
        Ok(RoundSpend {
            round,
            events: vec![DpEvent::poisson_sampled_gaussian(0.1, 1.0, 1)?],
            coordinator: CoordinatorView::Trusted,
        })
    };
    println!("rounds so far | RDP check (DDG) | recompose all (DDG) | PLD check (central)");
    for &n in lengths {
        let ddg = ledger_of(n, ddg_round, &rdp)?;
        let next = ddg_round(n + 1)?;
        let check = median(runs, || ddg.check_spend(&next, &rdp).map(|_| ()))?;
        let recompose = median(runs, || {
            let mut all: Vec<DpEvent> = ddg.rounds.iter().flat_map(|r| r.events.clone()).collect();
            all.extend(next.events.iter().copied());
            rdp.epsilon(&all, 1e-5).map(|_| ())
        })?;
        // Recorded with RDP (fast), then composed once for PLD: the timed
        // checks find the PLD composition kept, as a running coordinator's.
        let central_ledger = ledger_of(n, central, &rdp)?;
        central_ledger.epsilon_spent(&pld)?;
        let next_central = central(n + 1)?;
        let pld_check = median(runs.min(5), || {
            central_ledger.check_spend(&next_central, &pld).map(|_| ())
        })?;
        println!("{n:>13} | {check:>15.2?} | {recompose:>19.2?} | {pld_check:>19.2?}");
    }
    Ok(())
}
