//! Faults a *simulated* node acts out: dropping out of a round, answering late,
//! or sending a poisoned update. For the simulation harness (`cohort-sim`)
//! only: the production node (`cohort-node`) never sets a [`FaultPlan`], and
//! nothing in the coordinator knows one exists.
//!
//! Faults go through the real protocol. A node that drops out does not upload
//! (before or after spending the time to train) and stays silent until the
//! stage's deadline; a straggler sleeps
//! before uploading and is refused by the coordinator if the round's deadline
//! has passed; a malicious node uploads a tampered model like any other. What
//! the coordinator sees is exactly what a real faulty node would produce.
//!
//! Every decision is drawn from the plan's seed and the node's count of fit
//! stages so far (one ChaCha stream per stage), so the same scenario and seed
//! replay the same faults, and a retried round draws afresh (drawing by round
//! number would drop the same nodes from every attempt of a round). A node that
//! dropped out keeps out of that stage: the coordinator offers an unanswered
//! task again on every poll, and [`FaultActor`] recognises the offer by its
//! round and deadline. The attacks are the usual ones of the Byzantine-robustness
//! literature (e.g. Blanchard et al., NeurIPS 2017; Fang et al., USENIX
//! Security 2020), applied to the node's honest change Δ = w_trained − w_global:
//! sign flipping sends w_global − Δ, scaling w_global + c·Δ, Gaussian noise
//! w_global + N(0, s²) per coordinate in place of Δ.

use std::time::Duration;

use cohort_privacy::GaussianNoise;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A fault setting that cannot be acted out; `field` is the setting's name.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{field} {problem}")]
pub struct FaultError {
    /// The setting's name.
    pub field: &'static str,
    /// What is wrong with its value.
    pub problem: String,
}

fn refuse(field: &'static str, problem: String) -> Result<(), FaultError> {
    Err(FaultError { field, problem })
}

/// Dropping out of a fit task with some probability.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dropout {
    /// Probability of dropping out of each fit task, in [0, 1].
    pub probability: f64,
    /// Whether the node stops before or after training.
    #[serde(default)]
    pub stage: DropoutStage,
}

/// When a dropping node stops; either way it never uploads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropoutStage {
    /// Before training: the node does no work for the round.
    #[default]
    BeforeTraining,
    /// After training: the work is done but the update is never sent.
    AfterTraining,
}

/// How long a straggler waits before uploading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "distribution", rename_all = "snake_case", deny_unknown_fields)]
pub enum Latency {
    /// The same delay every time.
    Fixed {
        /// The delay in seconds.
        secs: f64,
    },
    /// Exponentially distributed with this mean.
    Exponential {
        /// The mean delay in seconds.
        mean_secs: f64,
    },
}

/// What a malicious node does to its update.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Attack {
    /// Sends w_global − Δ: the honest change, negated.
    SignFlip,
    /// Sends w_global + factor·Δ.
    Scale {
        /// The factor applied to the honest change.
        factor: f64,
    },
    /// Sends w_global + N(0, std²) per coordinate: noise instead of a change.
    GaussianNoise {
        /// The noise's standard deviation.
        std: f64,
    },
    /// A free rider (Fraboni et al., AISTATS 2021): does not train at all and
    /// sends w_global + N(0, std²) per coordinate, claiming its training rows
    /// and a loss of 0. With every node one, a run measures the framework's
    /// own cost per round (`cohort-sim bench --skip-training`).
    FreeRider {
        /// The noise's standard deviation.
        std: f64,
    },
}

impl Dropout {
    /// Fails unless the probability is in [0, 1].
    pub fn validate(&self) -> Result<(), FaultError> {
        if !(0.0..=1.0).contains(&self.probability) {
            return refuse(
                "probability",
                format!("must be in [0, 1], got {}", self.probability),
            );
        }
        Ok(())
    }
}

impl Latency {
    /// Fails unless the delay (or its mean) is a finite, non-negative number of
    /// seconds.
    pub fn validate(&self) -> Result<(), FaultError> {
        let (field, secs) = match *self {
            Self::Fixed { secs } => ("secs", secs),
            Self::Exponential { mean_secs } => ("mean_secs", mean_secs),
        };
        if !(secs.is_finite() && secs >= 0.0) {
            return refuse(
                field,
                format!("must be a finite, non-negative number of seconds, got {secs}"),
            );
        }
        Ok(())
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> Duration {
        let secs = match *self {
            Self::Fixed { secs } => secs,
            // Inverse CDF; 1 − u is in (0, 1], so the logarithm is finite.
            Self::Exponential { mean_secs } => -mean_secs * (1.0 - rng.random::<f64>()).ln(),
        };
        // A mean far beyond any deadline can draw past Duration's range: cap it.
        Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX)
    }
}

impl Attack {
    /// Fails if a scale factor is not finite or a noise deviation is not
    /// positive and finite.
    pub fn validate(&self) -> Result<(), FaultError> {
        match *self {
            Self::SignFlip => Ok(()),
            Self::Scale { factor } if !factor.is_finite() => {
                refuse("factor", format!("must be finite, got {factor}"))
            }
            Self::Scale { .. } => Ok(()),
            Self::GaussianNoise { std } | Self::FreeRider { std } => {
                GaussianNoise::new(std).map(|_| ()).map_err(|_| FaultError {
                    field: "std",
                    problem: format!("must be positive, got {std}"),
                })
            }
        }
    }

    /// Turns the honestly trained parameters into the attack's upload.
    fn apply(&self, global: &[f32], trained: &mut [f32], rng: &mut ChaCha8Rng) {
        match *self {
            Self::SignFlip => {
                for (t, &g) in trained.iter_mut().zip(global) {
                    *t = g - (*t - g);
                }
            }
            Self::Scale { factor } => {
                for (t, &g) in trained.iter_mut().zip(global) {
                    *t = (f64::from(g) + factor * f64::from(*t - g)) as f32;
                }
            }
            Self::GaussianNoise { std } | Self::FreeRider { std } => {
                trained.copy_from_slice(global);
                // `validate` refused a non-positive std; such a plan adds nothing.
                if let Ok(noise) = GaussianNoise::new(std) {
                    noise.add_to(trained, rng);
                }
            }
        }
    }
}

/// The faults one simulated node acts out, deterministic from `seed`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    /// Seeds the plan's random draws: the same seed, the same faults.
    pub seed: u64,
    /// Set for a node that drops out of fit tasks.
    pub dropout: Option<Dropout>,
    /// Set for a straggler: the delay before each upload.
    pub latency: Option<Latency>,
    /// Set for a malicious node.
    pub attack: Option<Attack>,
}

/// What the plan decided for one fit task.
#[derive(Debug)]
pub struct FitFaults {
    /// Drop out of this task, and when.
    pub dropout: Option<DropoutStage>,
    /// Wait this long before uploading.
    pub delay: Duration,
    attack: Option<Attack>,
    rng: ChaCha8Rng,
}

impl FaultPlan {
    /// Refuses settings that cannot be acted out.
    pub fn validate(&self) -> Result<(), FaultError> {
        if let Some(dropout) = &self.dropout {
            dropout.validate()?;
        }
        if let Some(latency) = &self.latency {
            latency.validate()?;
        }
        if let Some(attack) = &self.attack {
            attack.validate()?;
        }
        Ok(())
    }

    /// The faults of the node's `nth` fit task: the same for the same seed and `nth`.
    pub fn for_fit(&self, nth: u64) -> FitFaults {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(nth);
        let dropout = self.dropout.and_then(|d| {
            rng.random_bool(d.probability.clamp(0.0, 1.0))
                .then_some(d.stage)
        });
        let delay = self
            .latency
            .map_or(Duration::ZERO, |latency| latency.draw(&mut rng));
        FitFaults {
            dropout,
            delay,
            attack: self.attack,
            rng,
        }
    }
}

/// How long until a stage's deadline (Unix ms): a node that dropped out stays
/// silent that long, as an offline node would, instead of polling the
/// coordinator for the task it is ignoring.
pub fn until_deadline(deadline_unix_ms: u64) -> Duration {
    let deadline = std::time::UNIX_EPOCH + Duration::from_millis(deadline_unix_ms);
    deadline
        .duration_since(std::time::SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

/// What a faulty node does with a fit task it is offered.
#[derive(Debug)]
pub enum FitDecision {
    /// Ignore it: the node already dropped out of this stage.
    Ignore,
    /// Work on it, acting out these faults.
    Act(Box<FitFaults>),
}

/// A [`FaultPlan`] being acted out: counts the fit stages seen and remembers
/// the one the node dropped out of.
#[derive(Debug)]
pub struct FaultActor {
    plan: FaultPlan,
    stages: u64,
    /// (round, deadline) of the stage last dropped out of.
    dropped: Option<(u64, u64)>,
}

impl FaultActor {
    /// An actor for `plan`, before its first stage.
    pub fn new(plan: FaultPlan) -> Self {
        Self {
            plan,
            stages: 0,
            dropped: None,
        }
    }

    /// The decision for a fit task of `round` whose stage ends at `deadline_unix_ms`.
    pub fn on_fit(&mut self, round: u64, deadline_unix_ms: u64) -> FitDecision {
        let stage = (round, deadline_unix_ms);
        if self.dropped == Some(stage) {
            return FitDecision::Ignore;
        }
        self.stages += 1;
        let faults = self.plan.for_fit(self.stages);
        if faults.dropout.is_some() {
            self.dropped = Some(stage);
        }
        FitDecision::Act(Box::new(faults))
    }

    /// Before training for a fit task: `None` when the node sits the task out
    /// (after staying silent until its deadline), else the faults to act out
    /// once trained.
    pub async fn before_training(
        &mut self,
        round: u64,
        deadline_unix_ms: u64,
    ) -> Option<FitFaults> {
        match self.on_fit(round, deadline_unix_ms) {
            FitDecision::Act(faults) if faults.dropout != Some(DropoutStage::BeforeTraining) => {
                Some(*faults)
            }
            FitDecision::Act(_) | FitDecision::Ignore => {
                tokio::time::sleep(until_deadline(deadline_unix_ms)).await;
                None
            }
        }
    }
}

impl FitFaults {
    /// After training: `false` when the node drops out instead of uploading
    /// (after staying silent until the deadline); else tampers `trained` as the
    /// attack says and waits the straggler's delay before the upload (past the
    /// deadline the coordinator refuses it like any late result).
    pub async fn after_training(
        &mut self,
        global: &[f32],
        trained: &mut [f32],
        deadline_unix_ms: u64,
    ) -> bool {
        if self.dropout == Some(DropoutStage::AfterTraining) {
            tokio::time::sleep(until_deadline(deadline_unix_ms)).await;
            return false;
        }
        self.tamper(global, trained);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        true
    }

    /// Whether the node skips training (a free rider): it uploads the global
    /// model, tampered by [`Self::after_training`].
    pub fn skips_training(&self) -> bool {
        matches!(self.attack, Some(Attack::FreeRider { .. }))
    }

    /// The parameters to upload: `trained` as trained, or tampered by the attack.
    pub fn tamper(&mut self, global: &[f32], trained: &mut [f32]) {
        if let Some(attack) = self.attack {
            attack.apply(global, trained, &mut self.rng);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(attack: Attack) -> FaultPlan {
        FaultPlan {
            seed: 1,
            attack: Some(attack),
            ..FaultPlan::default()
        }
    }

    #[test]
    fn sign_flip_sends_the_negated_change() {
        // global (1, 2, 3), trained (1.5, 1, 3): Δ = (0.5, −1, 0) → sends (0.5, 3, 3).
        let global = [1.0, 2.0, 3.0];
        let mut upload = [1.5, 1.0, 3.0];
        plan(Attack::SignFlip)
            .for_fit(4)
            .tamper(&global, &mut upload);
        assert_eq!(upload, [0.5, 3.0, 3.0]);
    }

    #[test]
    fn scaling_multiplies_the_change() {
        let global = [1.0, -1.0];
        let mut upload = [2.0, -1.5];
        plan(Attack::Scale { factor: -4.0 })
            .for_fit(1)
            .tamper(&global, &mut upload);
        assert_eq!(upload, [-3.0, 1.0]);
    }

    #[test]
    fn gaussian_noise_replaces_the_change_reproducibly() {
        let global = vec![0.5f32; 20_000];
        let attack = plan(Attack::GaussianNoise { std: 2.0 });
        let mut first = vec![100.0f32; 20_000];
        attack.for_fit(3).tamper(&global, &mut first);
        let mut again = vec![-7.0f32; 20_000];
        attack.for_fit(3).tamper(&global, &mut again);
        assert_eq!(first, again, "same seed and task, same noise");
        let n = first.len() as f64;
        let mean = first.iter().map(|&v| f64::from(v) - 0.5).sum::<f64>() / n;
        let var = first
            .iter()
            .map(|&v| (f64::from(v) - 0.5 - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(
            mean.abs() < 0.05 && (var - 4.0).abs() < 0.2,
            "mean {mean}, variance {var}"
        );
    }

    #[test]
    fn a_free_rider_skips_training_and_sends_seeded_noise() {
        let attack = plan(Attack::FreeRider { std: 0.5 });
        assert!(attack.for_fit(1).skips_training());
        assert!(!plan(Attack::SignFlip).for_fit(1).skips_training());
        let global = vec![1.0f32; 1000];
        let (mut first, mut again) = (global.clone(), global.clone());
        attack.for_fit(2).tamper(&global, &mut first);
        attack.for_fit(2).tamper(&global, &mut again);
        assert_eq!(first, again, "same seed and task, same noise");
        assert_ne!(first, global);
        let mean = first.iter().map(|&v| f64::from(v) - 1.0).sum::<f64>() / 1000.0;
        assert!(mean.abs() < 0.1, "mean {mean}");
    }

    #[test]
    fn an_honest_plan_changes_nothing() {
        let mut upload = [1.0, 2.0];
        let mut faults = FaultPlan::default().for_fit(1);
        faults.tamper(&[0.0, 0.0], &mut upload);
        assert_eq!(upload, [1.0, 2.0]);
        assert_eq!(faults.dropout, None);
        assert_eq!(faults.delay, Duration::ZERO);
    }

    #[test]
    fn dropouts_follow_the_probability_and_the_seed() {
        let plan = FaultPlan {
            seed: 9,
            dropout: Some(Dropout {
                probability: 0.3,
                stage: DropoutStage::AfterTraining,
            }),
            latency: Some(Latency::Exponential { mean_secs: 2.0 }),
            attack: None,
        };
        let draws: Vec<_> = (0..2000).map(|nth| plan.for_fit(nth)).collect();
        let dropped = draws.iter().filter(|f| f.dropout.is_some()).count();
        assert!(
            (500..700).contains(&dropped),
            "{dropped} of 2000 at p = 0.3"
        );
        assert!(
            draws
                .iter()
                .flat_map(|f| f.dropout)
                .all(|s| s == DropoutStage::AfterTraining)
        );
        let mean = draws.iter().map(|f| f.delay.as_secs_f64()).sum::<f64>() / 2000.0;
        assert!((mean - 2.0).abs() < 0.2, "mean delay {mean}");
        let again: Vec<_> = (0..2000).map(|nth| plan.for_fit(nth).dropout).collect();
        assert_eq!(again, draws.iter().map(|f| f.dropout).collect::<Vec<_>>());
    }

    #[test]
    fn a_dropped_stage_stays_dropped_when_offered_again() {
        let mut actor = FaultActor::new(FaultPlan {
            seed: 5,
            dropout: Some(Dropout {
                probability: 1.0,
                stage: DropoutStage::BeforeTraining,
            }),
            ..FaultPlan::default()
        });
        assert!(matches!(
            actor.on_fit(3, 1_000),
            FitDecision::Act(faults) if faults.dropout == Some(DropoutStage::BeforeTraining)
        ));
        assert!(matches!(actor.on_fit(3, 1_000), FitDecision::Ignore));
        // A retry of round 3 is a new stage (new deadline): drawn afresh.
        assert!(matches!(actor.on_fit(3, 2_000), FitDecision::Act(_)));
        assert_eq!(actor.stages, 2);
    }

    #[test]
    fn impossible_settings_name_their_field() {
        for (plan, field) in [
            (
                FaultPlan {
                    dropout: Some(Dropout {
                        probability: 1.5,
                        stage: DropoutStage::BeforeTraining,
                    }),
                    ..FaultPlan::default()
                },
                "probability",
            ),
            (
                FaultPlan {
                    latency: Some(Latency::Exponential { mean_secs: -1.0 }),
                    ..FaultPlan::default()
                },
                "mean_secs",
            ),
            (plan(Attack::Scale { factor: f64::NAN }), "factor"),
            (plan(Attack::GaussianNoise { std: 0.0 }), "std"),
        ] {
            assert_eq!(plan.validate().unwrap_err().field, field);
        }
    }
}
