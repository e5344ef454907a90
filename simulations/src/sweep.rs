//! `cohort-sim sweep`: what privacy costs in accuracy. One scenario is run once
//! per ε budget, with the noise multiplier σ calibrated (RDP accountant,
//! improved conversion) so that its planned rounds spend at most that budget,
//! and once without DP (ε = ∞). The scenario's `[privacy]` section is the
//! template: its clip norm, δ and accountant are kept, its σ and ε replaced.
//!
//! Writes, in the output folder: one run folder per budget (`eps-1`, …,
//! `eps-inf`, each with the usual reports), `accuracy_vs_epsilon.csv` and
//! `accuracy_vs_epsilon.png`.

use std::path::{Path, PathBuf};

use cohort_coordinator::config::NoisePlacement;
use cohort_coordinator::config::PrivacyConfig;
use cohort_coordinator::strategy::dp_mechanism::round_event;
use cohort_privacy::calibrate::DEFAULT_TOLERANCE;
use cohort_privacy::{Conversion, PrivacyBudget, RdpAccountant, calibrate_mechanism};
use serde::Serialize;

use crate::plot::{Chart, PlotError, Series, line_chart};
use crate::progress::Progress;
use crate::run::{RunError, run};
use crate::scenario::Scenario;

/// Why a sweep could not run.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The scenario has no `[privacy]` section to take the clip norm and δ from.
    #[error(
        "the scenario needs a [privacy] section: its clip_norm and delta are the sweep's template"
    )]
    NoPrivacyTemplate,
    /// The template uses distributed noise, which this calibration does not cover.
    #[error(
        "the sweep calibrates the Gaussian mechanism's σ; `privacy.placement = \"distributed\"` is accounted differently: use central placement"
    )]
    DistributedPlacement,
    /// No noise multiplier keeps the planned rounds within this budget, or the
    /// budget itself is invalid.
    #[error("ε = {epsilon}: {reason}")]
    Calibration {
        /// The budget.
        epsilon: f64,
        /// The privacy crate's error.
        reason: String,
    },
    /// One budget's run failed; the sweep stops there.
    #[error("ε = {label}: {source}")]
    Run {
        /// The budget as in its folder name (`1`, `inf`, …).
        label: String,
        /// The run's error (boxed: a run's error is large, the sweep's stays small).
        source: Box<RunError>,
    },
    /// `accuracy_vs_epsilon.csv` could not be written.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The CSV file.
        path: PathBuf,
        /// The CSV writer's error.
        reason: String,
    },
    /// `accuracy_vs_epsilon.png` could not be drawn.
    #[error(transparent)]
    Plot(#[from] PlotError),
}

/// One budget's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepPoint {
    /// The budget; `None` is the run without DP.
    pub epsilon_target: Option<f64>,
    /// The calibrated noise multiplier σ; `None` without DP.
    pub noise_multiplier: Option<f64>,
    /// ε spent after the run's last accounted round; `None` without DP or rounds.
    pub epsilon_spent: Option<f64>,
    /// Rounds the coordinator committed.
    pub rounds_completed: u64,
    /// Held-out accuracy of the last round's model, if it was evaluated.
    pub final_accuracy: Option<f64>,
    /// Best held-out accuracy of any round.
    pub best_accuracy: Option<f64>,
}

fn label(epsilon: Option<f64>) -> String {
    epsilon.map_or_else(|| "inf".to_owned(), |e| e.to_string())
}

/// Runs `scenario` once per budget in `epsilons` (`None` = no DP), writing each
/// run under `out`, and the sweep's CSV and chart.
pub async fn sweep(
    scenario: &Scenario,
    name: &str,
    epsilons: &[Option<f64>],
    out: &Path,
    mut on: impl FnMut(Option<f64>, Progress<'_>),
) -> Result<Vec<SweepPoint>, SweepError> {
    let template = scenario
        .privacy
        .clone()
        .ok_or(SweepError::NoPrivacyTemplate)?;
    if template.placement == NoisePlacement::Distributed {
        return Err(SweepError::DistributedPlacement);
    }
    let accountant = RdpAccountant::new(Conversion::Improved);
    let mut points = Vec::with_capacity(epsilons.len());
    for &epsilon in epsilons {
        let mut variant = scenario.clone();
        let mut noise_multiplier = None;
        variant.privacy = match epsilon {
            None => None,
            Some(epsilon) => {
                let calibration = |reason: String| SweepError::Calibration { epsilon, reason };
                let budget = PrivacyBudget::new(epsilon, template.delta)
                    .map_err(|e| calibration(e.to_string()))?;
                let mut privacy = template.clone();
                privacy.epsilon = epsilon;
                // σ for exactly the event the coordinator will charge each round.
                let rounds = scenario.rounds.count as usize;
                let sigma = calibrate_mechanism(budget, &accountant, DEFAULT_TOLERANCE, |sigma| {
                    let at = PrivacyConfig {
                        noise_multiplier: sigma,
                        ..privacy.clone()
                    };
                    let event = round_event(&at, scenario.rounds.fraction, scenario.nodes, 1)?;
                    Ok(vec![event; rounds])
                })
                .map_err(|e| calibration(e.to_string()))?;
                noise_multiplier = Some(sigma);
                privacy.noise_multiplier = sigma;
                Some(privacy)
            }
        };
        let tag = label(epsilon);
        let dir = out.join(format!("eps-{tag}"));
        let outcome = run(&variant, &format!("{name} ε={tag}"), &dir, |p| {
            on(epsilon, p)
        })
        .await
        .map_err(|source| SweepError::Run {
            label: tag.clone(),
            source: Box::new(source),
        })?;
        let s = &outcome.summary;
        points.push(SweepPoint {
            epsilon_target: epsilon,
            noise_multiplier,
            epsilon_spent: s.epsilon_spent,
            rounds_completed: s.rounds_completed,
            final_accuracy: s.final_accuracy,
            best_accuracy: s.best_accuracy,
        });
    }
    write_csv(&out.join("accuracy_vs_epsilon.csv"), &points)?;
    plot(&out.join("accuracy_vs_epsilon.png"), name, &points)?;
    Ok(points)
}

fn write_csv(path: &Path, points: &[SweepPoint]) -> Result<(), SweepError> {
    let error = |reason: String| SweepError::Write {
        path: path.to_owned(),
        reason,
    };
    let cell = |x: Option<f64>| x.map(|x| x.to_string()).unwrap_or_default();
    let mut writer = csv::Writer::from_path(path).map_err(|e| error(e.to_string()))?;
    writer
        .write_record([
            "epsilon_target",
            "noise_multiplier",
            "epsilon_spent",
            "rounds_completed",
            "final_accuracy",
            "best_accuracy",
        ])
        .map_err(|e| error(e.to_string()))?;
    for p in points {
        writer
            .write_record([
                label(p.epsilon_target),
                cell(p.noise_multiplier),
                cell(p.epsilon_spent),
                p.rounds_completed.to_string(),
                cell(p.final_accuracy),
                cell(p.best_accuracy),
            ])
            .map_err(|e| error(e.to_string()))?;
    }
    writer.flush().map_err(|e| error(e.to_string()))
}

/// Final accuracy against ε spent; the run without DP as a flat reference line.
fn plot(path: &Path, name: &str, points: &[SweepPoint]) -> Result<(), SweepError> {
    let private: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| Some((p.epsilon_spent?, p.final_accuracy?)))
        .collect();
    let mut series = vec![Series {
        name: "DP-FedAvg".into(),
        points: private.clone(),
    }];
    if let Some(reference) = points
        .iter()
        .find(|p| p.epsilon_target.is_none())
        .and_then(|p| p.final_accuracy)
    {
        let xs = private.iter().map(|p| p.0);
        let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
        if lo.is_finite() {
            series.push(Series {
                name: "no DP (ε = ∞)".into(),
                points: vec![(lo, reference), (hi, reference)],
            });
        }
    }
    let title = format!("{name}: final accuracy against ε");
    line_chart(
        path,
        Chart {
            title: &title,
            x_label: "epsilon spent",
            y_label: "final held-out accuracy",
        },
        &series,
    )?;
    Ok(())
}
