//! `cohort-sim bench`: the framework's own cost per round, stage by stage.
//!
//! A bench is a scenario built from a few numbers ([`BenchOptions`]): `n`
//! nodes on digits, an MLP whose hidden width gives about `d` parameters
//! (64·h + h + 10·h + 10 = 75·h + 10), one local epoch, optionally under
//! secure aggregation, and optionally with every node a free rider
//! (`cohort_client::fault::Attack::FreeRider`: no training, the global model
//! plus seeded noise), so that what remains is the framework alone. Real
//! training stays the default. It runs as `cohort-sim run` runs a scenario
//! (same reports), and each round's [`RoundTiming`], measured by the
//! coordinator (`cohort_coordinator::rounds::timing`), becomes a [`BenchRow`]:
//! printed, and written to `bench.csv` (one line per round, one column per
//! part and per part that moved bytes) and `bench.json`. A round whose parts
//! miss more than [`TOLERANCE`] of its time is flagged.

use std::collections::BTreeMap;
use std::path::Path;

use cohort_coordinator::rounds::timing::{RoundTiming, StagePart};
use serde::Serialize;

use crate::progress::Progress;
use crate::report::{self, ReportError};
use crate::run::{self, RunError, RunOutcome};
use crate::scenario::{Scenario, ScenarioError};

/// The largest share of a round's time its parts may leave unaccounted.
pub const TOLERANCE: f64 = 0.05;

/// Digits: 1797 rows, 64 features, 10 classes.
const DIGITS_ROWS: usize = 1797;

/// What to benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchOptions {
    /// Nodes, all sampled in every round.
    pub nodes: usize,
    /// About how many model parameters (d); the MLP's hidden width is
    /// chosen to come closest.
    pub parameters: usize,
    /// Rounds to run.
    pub rounds: u64,
    /// Aggregate under secure aggregation (SecAgg+).
    pub secure_aggregation: bool,
    /// Under secure aggregation: neighbours per node (k); default the
    /// coordinator's, min(40, n − 1).
    pub neighbours: Option<usize>,
    /// Free riders instead of training: every node sends the global model
    /// plus N(0, `noise_std`²) per coordinate.
    pub skip_training: bool,
    /// The free riders' noise.
    pub noise_std: f64,
    /// The scenario's seed.
    pub seed: u64,
}

/// Why a bench failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The options make no scenario.
    #[error("the bench's scenario: {0}")]
    Scenario(#[from] ScenarioError),
    /// The run failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A report could not be written.
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// The hidden width of the MLP on digits closest to `parameters`.
pub fn hidden_width(parameters: usize) -> usize {
    (parameters.saturating_sub(10) as f64 / 75.0)
        .round()
        .max(1.0) as usize
}

/// The parameters of the MLP on digits with one hidden layer of `hidden`.
pub fn mlp_parameters(hidden: usize) -> usize {
    75 * hidden + 10
}

/// The scenario `options` describe. Up to 179 nodes split digits IID (at
/// least 10 rows each, a fifth held out); more follow the 1000-node
/// scenario's power law, so that some nodes still hold rows out.
pub fn scenario(options: &BenchOptions) -> Result<Scenario, ScenarioError> {
    let n = options.nodes;
    let (holdout, partition) = if n * 10 <= DIGITS_ROWS {
        (0.2, r#"{ kind = "iid" }"#)
    } else {
        (
            0.25,
            r#"{ kind = "quantity_skew", exponent = 1.0, min_rows = 1 }"#,
        )
    };
    let mut text = format!(
        "seed = {seed}\nnodes = {n}\nholdout = {holdout}\ndata = \"digits\"\npartition = {partition}\n\
         [rounds]\ncount = {rounds}\nmin_clients = {n}\ndeadline_secs = 600\n\
         [training]\nlocal_epochs = 1\nbatch_size = 32\nlearning_rate = 0.05\n\
         [model]\nkind = \"mlp\"\nhidden_layers = [{hidden}]\n",
        seed = options.seed,
        rounds = options.rounds,
        hidden = hidden_width(options.parameters),
    );
    if options.secure_aggregation {
        text.push_str("[secure_aggregation]\n");
        if let Some(k) = options.neighbours {
            text.push_str(&format!("neighbours = {k}\n"));
        }
    }
    if options.skip_training {
        text.push_str(&format!(
            "[faults]\nmalicious = {{ fraction = 1.0, attack = {{ kind = \"free_rider\", std = {:e} }} }}\n",
            options.noise_std
        ));
    }
    Scenario::parse(&text)
}

/// One part of a round, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchPart {
    /// Its name (see `cohort_coordinator::rounds::timing`).
    pub name: String,
    /// Its seconds.
    pub seconds: f64,
    /// Bytes it moved; 0 if none or not measured.
    pub bytes: u64,
}

impl From<&StagePart> for BenchPart {
    fn from(part: &StagePart) -> Self {
        Self {
            name: part.name.clone(),
            seconds: part.seconds,
            bytes: part.bytes,
        }
    }
}

/// One round's breakdown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchRow {
    /// The round.
    pub round: u64,
    /// The attempt that committed.
    pub attempt: u32,
    /// The round's time as the coordinator measured it (model load to the
    /// end of evaluation).
    pub seconds: f64,
    /// The round's time as the runner saw it: from the previous round's end
    /// (or the start of the run) to this one's (`rounds.csv`'s `seconds`).
    pub wall_seconds: f64,
    /// The seconds the parts account for.
    pub accounted: f64,
    /// `seconds − accounted`.
    pub residual: f64,
    /// Whether |residual| ≤ [`TOLERANCE`] · seconds.
    pub adds_up: bool,
    /// The parts, in the order they ended.
    pub parts: Vec<BenchPart>,
}

impl BenchRow {
    /// The row of `timing`, whose round took `wall_seconds` as the runner saw it.
    pub fn new(timing: &RoundTiming, wall_seconds: f64) -> Self {
        let residual = timing.residual();
        Self {
            round: timing.round,
            attempt: timing.attempt,
            seconds: timing.seconds,
            wall_seconds,
            accounted: timing.accounted(),
            residual,
            adds_up: residual.abs() <= TOLERANCE * timing.seconds,
            parts: timing.parts.iter().map(BenchPart::from).collect(),
        }
    }

    /// Seconds per stage: the parts summed by their first word (`fit`,
    /// `commit`, `secagg-masked-input`, …), in order.
    pub fn by_stage(&self) -> Vec<(String, f64)> {
        let mut stages: Vec<(String, f64)> = Vec::new();
        for part in &self.parts {
            let stage = part.name.split(' ').next().unwrap_or_default();
            match stages.iter_mut().find(|(name, _)| name == stage) {
                Some((_, seconds)) => *seconds += part.seconds,
                None => stages.push((stage.to_owned(), part.seconds)),
            }
        }
        stages
    }

    /// The row as the bench prints it while running.
    pub fn line(&self) -> String {
        let stages: Vec<String> = self
            .by_stage()
            .iter()
            .map(|(name, seconds)| format!("{name} {seconds:.3}"))
            .collect();
        format!(
            "round {:>3}: {:.3} s (wall {:.3} s), residual {:+.4} s ({:+.1} %){} | {}",
            self.round,
            self.seconds,
            self.wall_seconds,
            self.residual,
            100.0 * self.residual / self.seconds.max(f64::MIN_POSITIVE),
            if self.adds_up { "" } else { " NOT WITHIN 5 %" },
            stages.join(", ")
        )
    }
}

/// A finished bench: its rows and the run behind them.
#[derive(Debug, Clone)]
pub struct BenchOutcome {
    /// One row per completed round.
    pub rows: Vec<BenchRow>,
    /// The run, as `cohort-sim run` reports it.
    pub run: RunOutcome,
}

/// Runs the bench `options` describe, writes the run's reports and
/// `bench.csv` and `bench.json` into `out`, and calls `on` with each row.
pub async fn bench(
    options: &BenchOptions,
    out: &Path,
    mut on: impl FnMut(&BenchRow),
) -> Result<BenchOutcome, BenchError> {
    let scenario = scenario(options)?;
    let mut wall = BTreeMap::new();
    let mut rows = Vec::new();
    let run = run::run(&scenario, "bench", out, |progress| match progress {
        Progress::Round(row) => {
            wall.insert(row.round, row.seconds);
        }
        Progress::Timed(timing) => {
            let wall_seconds = wall.get(&timing.round).copied().unwrap_or(f64::NAN);
            let row = BenchRow::new(timing, wall_seconds);
            on(&row);
            rows.push(row);
        }
        Progress::Failed { .. } | Progress::Stopped(_) => {}
    })
    .await?;
    write_csv(&out.join("bench.csv"), &rows)?;
    let path = out.join("bench.json");
    report::write_text(&path, report::json(&path, &rows)?)?;
    Ok(BenchOutcome { rows, run })
}

/// Every part's name in the order first seen, and whether any round saw it
/// move bytes.
fn columns(rows: &[BenchRow]) -> Vec<(String, bool)> {
    let mut columns: Vec<(String, bool)> = Vec::new();
    for part in rows.iter().flat_map(|r| &r.parts) {
        match columns.iter_mut().find(|(name, _)| *name == part.name) {
            Some((_, bytes)) => *bytes |= part.bytes > 0,
            None => columns.push((part.name.clone(), part.bytes > 0)),
        }
    }
    columns
}

/// `bench.csv`: one line per round; a column per part (seconds) and per
/// part that moved bytes (`… bytes`). A part a round lacks is 0.
pub fn write_csv(path: &Path, rows: &[BenchRow]) -> Result<(), ReportError> {
    let csv_error = |source| ReportError::Csv {
        path: path.to_owned(),
        source,
    };
    let columns = columns(rows);
    let mut header: Vec<String> = ["round", "attempt", "seconds", "wall_seconds"]
        .into_iter()
        .chain(["accounted", "residual"])
        .map(str::to_owned)
        .collect();
    for (name, bytes) in &columns {
        header.push(name.clone());
        if *bytes {
            header.push(format!("{name} bytes"));
        }
    }
    let mut writer = csv::Writer::from_path(path).map_err(csv_error)?;
    writer.write_record(&header).map_err(csv_error)?;
    for row in rows {
        let mut record = vec![
            row.round.to_string(),
            row.attempt.to_string(),
            format!("{:.6}", row.seconds),
            format!("{:.6}", row.wall_seconds),
            format!("{:.6}", row.accounted),
            format!("{:.6}", row.residual),
        ];
        for (name, bytes) in &columns {
            let part = row.parts.iter().filter(|p| p.name == *name);
            let (seconds, moved) = part.fold((0.0, 0), |(s, b), p| (s + p.seconds, b + p.bytes));
            record.push(format!("{seconds:.6}"));
            if *bytes {
                record.push(moved.to_string());
            }
        }
        writer.write_record(&record).map_err(csv_error)?;
    }
    writer.flush().map_err(|source| ReportError::Io {
        path: path.to_owned(),
        source,
    })
}

/// The median of `values` (NaN if none).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The per-part table of medians over `rows` (without round 1, which waits
/// for the nodes to register, when there are others): part, seconds, share
/// of the round, bytes.
pub fn summary(rows: &[BenchRow]) -> String {
    let steady: Vec<&BenchRow> = match rows {
        [_, rest @ ..] if !rest.is_empty() => rest.iter().collect(),
        all => all.iter().collect(),
    };
    let round = median(&mut steady.iter().map(|r| r.seconds).collect::<Vec<_>>());
    let wall = median(&mut steady.iter().map(|r| r.wall_seconds).collect::<Vec<_>>());
    let residual = median(&mut steady.iter().map(|r| r.residual).collect::<Vec<_>>());
    let mut lines = vec![format!(
        "median of {} rounds: {round:.3} s per round (wall {wall:.3} s), residual {residual:+.4} s",
        steady.len()
    )];
    lines.push(format!(
        "{:<40} {:>9} {:>7} {:>14}",
        "part", "seconds", "share", "bytes"
    ));
    for (name, _) in columns(rows) {
        let pick = |f: fn(&BenchPart) -> f64| {
            let mut values: Vec<f64> = steady
                .iter()
                .map(|r| r.parts.iter().filter(|p| p.name == name).map(f).sum())
                .collect();
            median(&mut values)
        };
        let seconds = pick(|p| p.seconds);
        let bytes = pick(|p| p.bytes as f64);
        lines.push(format!(
            "{name:<40} {seconds:>9.4} {:>6.1}% {bytes:>14.0}",
            100.0 * seconds / round
        ));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hidden_width_comes_closest_to_the_asked_size() {
        assert_eq!(hidden_width(1_000_000), 13_333);
        assert_eq!(mlp_parameters(13_333), 999_985);
        assert_eq!(hidden_width(4_800), 64);
        assert_eq!(hidden_width(0), 1);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn options_make_a_valid_scenario() {
        let mut options = BenchOptions {
            nodes: 1000,
            parameters: 5_000,
            rounds: 3,
            secure_aggregation: true,
            neighbours: Some(20),
            skip_training: true,
            noise_std: 1e-3,
            seed: 7,
        };
        let built = scenario(&options).map_err(|e| e.to_string());
        assert!(built.is_ok(), "{built:?}");
        options.nodes = 10;
        let built = scenario(&options).map_err(|e| e.to_string());
        assert!(built.is_ok_and(|s| s.secure_aggregation.is_some()));
    }
}
