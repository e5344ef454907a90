//! A run's reports, written to its run folder:
//!
//! - `rounds.csv`: one line per completed round — `round, sampled,
//!   participants, accuracy, loss, [epsilon,] seconds` (the `epsilon` column only under DP;
//!   an empty cell where no node evaluated). `seconds` is wall time and the only
//!   column that is not reproducible.
//! - `rounds.json`: the same rows as a JSON array.
//! - `summary.json`: the [`RunSummary`].
//! - `scenario.toml`: the scenario as run (after defaults).
//! - `accuracy.png`: held-out accuracy by round; under DP also
//!   `accuracy_vs_epsilon.png`: accuracy against the ε spent so far.
//! - `tensorboard/events.out.tfevents.*`: the rounds as TensorBoard scalars
//!   (`eval/accuracy`, `eval/loss`, `round/participants`, `round/sampled`,
//!   `round/seconds`, `privacy/epsilon_spent`), so that runs can be compared
//!   with `tensorboard --logdir` over several run folders.

use std::path::{Path, PathBuf};

use cohort_proto::tensorboard::{EventFile, EventFileError};
use serde::Serialize;

use crate::plot::{Chart, PlotError, Series, line_chart};
use crate::progress::RoundRow;
use crate::scenario::Scenario;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The run folder could not be made, or a file in it written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `rounds.csv` could not be created or written.
    #[error("cannot write {path}: {source}")]
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// The CSV writer's error.
        source: csv::Error,
    },
    /// The rounds, summary or scenario could not be encoded as JSON or TOML.
    #[error("cannot encode {path}: {message}")]
    Encode {
        /// The file it was for.
        path: PathBuf,
        /// The encoder's message.
        message: String,
    },
    /// A chart could not be drawn.
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// The TensorBoard event file could not be written.
    #[error(transparent)]
    Tensorboard(#[from] EventFileError),
}

/// What a run reached, with what it ran on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// The run's name: the scenario file's stem, with the budget in a sweep.
    pub scenario: String,
    /// The data set's short name, or its CSV file's path.
    pub data: String,
    /// The partitioner and its parameter, e.g. `dirichlet(alpha = 0.1)`.
    pub partitioner: String,
    /// The coordinator's strategy (`fedavg`, `krum`, …; DP-FedAvg under `[privacy]`).
    pub strategy: String,
    /// Indices of the nodes that attacked (`[faults.malicious]`), if any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub malicious_nodes: Vec<usize>,
    /// The scenario's seed.
    pub seed: u64,
    /// Simulated nodes.
    pub nodes: usize,
    /// Rows in the whole data set.
    pub rows: usize,
    /// Features per row.
    pub features: usize,
    /// Classes: labels are 0..classes.
    pub classes: usize,
    /// Rows each node holds (before its holdout split), in node order.
    pub rows_per_node: Vec<usize>,
    /// Per node, its rows of each class (before its holdout split).
    pub class_counts_per_node: Vec<Vec<usize>>,
    /// Rounds the scenario asked for.
    pub rounds_planned: u64,
    /// Rounds the coordinator committed.
    pub rounds_completed: u64,
    /// Held-out accuracy of the last round's model, if it was evaluated.
    pub final_accuracy: Option<f64>,
    /// Held-out loss of the last round's model, if it was evaluated.
    pub final_loss: Option<f64>,
    /// Best held-out accuracy of any round.
    pub best_accuracy: Option<f64>,
    /// Under DP: ε spent after the last round that reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epsilon_spent: Option<f64>,
    /// Why the federation stopped before its planned rounds, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// Content address of the final global model.
    pub model_version: String,
    /// Wall time of the whole run, set-up and shut-down included.
    pub seconds: f64,
    /// Peak resident memory of the simulating process (`VmHWM`, Linux only):
    /// the coordinator and, in task mode, every node. Not reproducible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
}

/// Writes `rounds.csv`, `rounds.json`, `summary.json` and `scenario.toml` into
/// `dir`, creating it if needed.
pub fn write(
    dir: &Path,
    scenario: &Scenario,
    rounds: &[RoundRow],
    summary: &RunSummary,
) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        path: dir.to_owned(),
        source,
    })?;
    write_csv(&dir.join("rounds.csv"), rounds)?;
    write_text(
        &dir.join("rounds.json"),
        json(&dir.join("rounds.json"), rounds)?,
    )?;
    write_text(
        &dir.join("summary.json"),
        json(&dir.join("summary.json"), summary)?,
    )?;
    let path = dir.join("scenario.toml");
    let text = toml::to_string_pretty(scenario).map_err(|e| ReportError::Encode {
        path: path.clone(),
        message: e.to_string(),
    })?;
    write_text(&path, text)?;
    write_tensorboard(&dir.join("tensorboard"), rounds)?;
    plot_rounds(dir, &summary.scenario, rounds)
}

/// The rounds as TensorBoard scalars, one event per round. The folder is the
/// run's own: event files of an earlier run into the same `--out` are removed,
/// as its other reports are overwritten, so TensorBoard does not merge them.
fn write_tensorboard(dir: &Path, rounds: &[RoundRow]) -> Result<(), ReportError> {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")
            {
                std::fs::remove_file(entry.path()).map_err(|source| ReportError::Io {
                    path: entry.path(),
                    source,
                })?;
            }
        }
    }
    let mut events = EventFile::create(dir, "cohort-sim")?;
    for row in rounds {
        let mut scalars = vec![
            ("round/sampled", row.sampled as f64),
            ("round/participants", row.participants as f64),
            ("round/seconds", row.seconds),
        ];
        let optional = [
            ("eval/accuracy", row.accuracy),
            ("eval/loss", row.loss),
            ("privacy/epsilon_spent", row.epsilon),
        ];
        scalars.extend(optional.into_iter().filter_map(|(tag, v)| Some((tag, v?))));
        events.scalars(row.round, &scalars)?;
    }
    Ok(())
}

/// `accuracy.png`, and under DP `accuracy_vs_epsilon.png`; nothing when no
/// round was evaluated.
fn plot_rounds(dir: &Path, name: &str, rounds: &[RoundRow]) -> Result<(), ReportError> {
    let accuracy_by = |x: fn(&RoundRow) -> Option<f64>| -> Vec<(f64, f64)> {
        rounds
            .iter()
            .filter_map(|r| Some((x(r)?, r.accuracy?)))
            .collect()
    };
    let charts = [
        (
            "accuracy.png",
            "held-out accuracy",
            "round",
            accuracy_by(|r| Some(r.round as f64)),
        ),
        (
            "accuracy_vs_epsilon.png",
            "accuracy against privacy spent",
            "epsilon spent",
            accuracy_by(|r| r.epsilon),
        ),
    ];
    for (file, what, x_label, points) in charts {
        if points.is_empty() {
            continue;
        }
        let title = format!("{name}: {what}");
        let chart = Chart {
            title: &title,
            x_label,
            y_label: "accuracy",
        };
        let series = [Series {
            name: name.to_owned(),
            points,
        }];
        line_chart(&dir.join(file), chart, &series)?;
    }
    Ok(())
}

/// `rounds.csv`: the epsilon column only if some round spent ε.
pub fn write_csv(path: &Path, rounds: &[RoundRow]) -> Result<(), ReportError> {
    let csv_error = |source| ReportError::Csv {
        path: path.to_owned(),
        source,
    };
    let dp = rounds.iter().any(|r| r.epsilon.is_some());
    let mut writer = csv::Writer::from_path(path).map_err(csv_error)?;
    let mut header = vec!["round", "sampled", "participants", "accuracy", "loss"];
    if dp {
        header.push("epsilon");
    }
    header.push("seconds");
    writer.write_record(&header).map_err(csv_error)?;
    let cell = |x: Option<f64>| x.map(|x| x.to_string()).unwrap_or_default();
    for row in rounds {
        let mut record = vec![
            row.round.to_string(),
            row.sampled.to_string(),
            row.participants.to_string(),
            cell(row.accuracy),
            cell(row.loss),
        ];
        if dp {
            record.push(cell(row.epsilon));
        }
        record.push(format!("{:.3}", row.seconds));
        writer.write_record(&record).map_err(csv_error)?;
    }
    writer.flush().map_err(|source| ReportError::Io {
        path: path.to_owned(),
        source,
    })
}

pub(crate) fn json(path: &Path, value: &(impl Serialize + ?Sized)) -> Result<String, ReportError> {
    serde_json::to_string_pretty(value)
        .map(|text| text + "\n")
        .map_err(|e| ReportError::Encode {
            path: path.to_owned(),
            message: e.to_string(),
        })
}

pub(crate) fn write_text(path: &Path, text: String) -> Result<(), ReportError> {
    std::fs::write(path, text).map_err(|source| ReportError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(round: u64, epsilon: Option<f64>) -> RoundRow {
        RoundRow {
            round,
            sampled: 4,
            participants: 3,
            accuracy: Some(0.5 + round as f64 / 10.0),
            loss: None,
            epsilon,
            seconds: 1.23456,
        }
    }

    #[test]
    fn csv_has_an_epsilon_column_only_under_dp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rounds.csv");
        write_csv(&path, &[row(1, None), row(2, None)]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "round,sampled,participants,accuracy,loss,seconds\n1,4,3,0.6,,1.235\n2,4,3,0.7,,1.235\n"
        );
        write_csv(&path, &[row(1, Some(0.5))]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "round,sampled,participants,accuracy,loss,epsilon,seconds\n1,4,3,0.6,,0.5,1.235\n"
        );
    }
}
