//! ε for 10⁴ DP-SGD steps with the RDP and PLD accountants, and the exact
//! central noise's cost.
//!
//! A plain bench binary (harness = false) to keep the dependency tree small:
//! `cargo bench -p cohort-privacy --bench epsilon` prints the median wall
//! time of repeated runs. Setting: q = 256/60000, σ = 1.1, δ = 1e-5,
//! T = 10⁴. Noise: `GridGaussian::release` of 10⁴ coordinates for σ = 1,
//! C = 1, d = 31 (integer noise scale ≈ 2785), from the OS CSPRNG.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cohort_privacy::{Accountant, Conversion, DpEvent, GridGaussian, PldAccountant, RdpAccountant};

fn median_time(runs: usize, mut f: impl FnMut() -> f64) -> (Duration, f64) {
    let mut times = Vec::with_capacity(runs);
    let mut value = 0.0;
    for _ in 0..runs {
        let start = Instant::now();
        value = black_box(f());
        times.push(start.elapsed());
    }
    times.sort();
    (times[runs / 2], value)
}

fn main() -> Result<(), cohort_privacy::PrivacyError> {
    // `cargo test --benches` runs this too; keep that quick.
    let quick = std::env::args().any(|a| a == "--test");
    let runs = if quick { 1 } else { 21 };
    let events = [DpEvent::poisson_sampled_gaussian(
        256.0 / 60_000.0,
        1.1,
        10_000,
    )?];
    let delta = 1e-5;

    for (name, accountant) in [
        (
            "RDP (improved)",
            &RdpAccountant::new(Conversion::Improved) as &dyn Accountant,
        ),
        ("RDP (classic)", &RdpAccountant::new(Conversion::Classic)),
        ("PLD", &PldAccountant::new()),
    ] {
        let mut error = None;
        let (time, eps) = median_time(runs, || match accountant.epsilon(&events, delta) {
            Ok(e) => e,
            Err(e) => {
                error = Some(e);
                f64::NAN
            }
        });
        if let Some(e) = error {
            return Err(e);
        }
        println!("{name:>15}: ε = {eps:.4}   median {time:.2?} over {runs} runs");
    }

    let grid = GridGaussian::new(1.0, 1.0, 31)?;
    let sum = vec![0_i64; 10_000];
    let mut rng = rand::rng();
    let (time, _) = median_time(runs, || f64::from(grid.release(&sum, &mut rng)[0]));
    println!(
        "{:>15}: 10⁴ coordinates at integer scale {:.0}   median {time:.2?} over {runs} runs",
        "grid noise",
        grid.noise_stddev() / grid.granularity()
    );
    Ok(())
}
