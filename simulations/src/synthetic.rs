//! Synthetic data for what no public data set can ship: card transactions.
//!
//! [`fraud_sequences`] draws `accounts` accounts' last ten transactions, each
//! as four features, and labels the account fraudulent (1) or not (0). It is
//! generated, with a fixed seed, because real transaction data cannot be
//! published; `data/fraud_sequences.csv.gz` is its output for seed 7 and
//! 4,000 accounts (`cohort-sim generate fraud-sequences`), and a test checks
//! that the shipped file is exactly that.
//!
//! How an account is drawn (all draws from ChaCha8 seeded with `seed`):
//! - A legitimate transaction: log amount ~ N(3.5, 0.9) (a median of about
//!   33), hours since the previous one ~ Exp(mean 30), foreign with
//!   probability 0.03, at a new merchant with probability 0.15.
//! - 10 % of accounts are fraudulent: a burst of 2–4 consecutive
//!   transactions, starting anywhere in the ten, whose log amounts are
//!   ~ N(5.0, 0.6) (a median of about 150), gaps ~ Exp(mean 0.25 h),
//!   foreign with probability 0.6 and at new merchants with 0.85.
//! - 10 % of the legitimate accounts travel: their last three transactions
//!   are foreign with probability 0.9, so being abroad alone is no sign.
//! - 1 % of labels are flipped (chargebacks misfiled, frauds unreported).
//!
//! A row is the ten transactions in time order, each `ln(amount)`,
//! `ln(1 + hours since the previous)`, `foreign` (0/1), `new merchant`
//! (0/1), then the label.

use std::fmt::Write as _;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Normal};

/// Transactions per account.
pub const STEPS: usize = 10;

/// The CSV text (no header; 40 features, then the label) of `accounts`
/// accounts drawn from `seed` (see the module docs).
pub fn fraud_sequences(seed: u64, accounts: usize) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut csv = String::with_capacity(accounts * 200);
    for _ in 0..accounts {
        let fraud = rng.random_bool(0.1);
        let traveller = !fraud && rng.random_bool(0.1);
        let burst_len = rng.random_range(2..=4);
        let burst_start = rng.random_range(0..=STEPS - burst_len);
        for step in 0..STEPS {
            let in_burst = fraud && (burst_start..burst_start + burst_len).contains(&step);
            let abroad = traveller && step >= STEPS - 3;
            for value in transaction(&mut rng, in_burst, abroad) {
                // Four decimals: a value's text is the same on every machine.
                let _ = write!(csv, "{value:.4},");
            }
        }
        let flipped = rng.random_bool(0.01);
        let _ = writeln!(csv, "{}", u8::from(fraud != flipped));
    }
    csv
}

/// One transaction's four features.
fn transaction(rng: &mut ChaCha8Rng, in_burst: bool, abroad: bool) -> [f64; 4] {
    let (amount, gap) = if in_burst {
        (normal(5.0, 0.6).sample(rng), exp(1.0 / 0.25).sample(rng))
    } else {
        (normal(3.5, 0.9).sample(rng), exp(1.0 / 30.0).sample(rng))
    };
    let foreign = match (in_burst, abroad) {
        (true, _) => 0.6,
        (false, true) => 0.9,
        (false, false) => 0.03,
    };
    let new_merchant = if in_burst { 0.85 } else { 0.15 };
    [
        amount,
        gap.ln_1p(),
        f64::from(u8::from(rng.random_bool(foreign))),
        f64::from(u8::from(rng.random_bool(new_merchant))),
    ]
}

// The parameters above are constants within the distributions' domains.
#[allow(clippy::unwrap_used)]
fn normal(mean: f64, std: f64) -> Normal<f64> {
    Normal::new(mean, std).unwrap()
}

#[allow(clippy::unwrap_used)]
fn exp(rate: f64) -> Exp<f64> {
    Exp::new(rate).unwrap()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// The shipped file is the generator's output for seed 7, 4,000 accounts.
    #[test]
    fn the_shipped_file_is_the_generators_output() {
        let path = crate::demo::bundled("fraud_sequences.csv.gz");
        let mut shipped = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
            .read_to_string(&mut shipped)
            .unwrap();
        assert!(
            shipped == fraud_sequences(7, 4000),
            "{} differs",
            path.display()
        );
    }

    #[test]
    fn a_tenth_of_the_accounts_are_fraudulent() {
        let csv = fraud_sequences(7, 4000);
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows.len(), 4000);
        assert!(rows.iter().all(|r| r.split(',').count() == 4 * STEPS + 1));
        let frauds = rows.iter().filter(|r| r.ends_with(",1")).count();
        assert!((330..=470).contains(&frauds), "{frauds}");
    }
}
