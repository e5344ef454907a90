//! Drives the federation's rounds until the configured count is reached, and,
//! when the coordinator serves after finish, again whenever an erasure request
//! taints the final model (see [`run`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cohort_proto::model::{decode_f32, encode_f32, model_version};
use cohort_proto::v1;
use ndarray::Array1;

use cohort_privacy::{PrivacyError, PrivacyLedger};

use super::sampling::{poisson_sample, sample_nodes};
use super::secure;
use super::stage::{self, ActiveStage, StageKind, StageResult, unix_ms};
use crate::audit::{AuditEvent, ContributorDataset, RoundProtection, erasure};
use crate::federation::{Federation, FederationEvent};
use crate::store::StoreError;
use crate::store::records::{
    Contribution, EvaluationSummary, FederationHead, RoundOutcome, RoundRecord, SCHEMA_VERSION,
};
use crate::strategy::{FitResult, RoundContext, Strategy, dp_mechanism};
use cohort_proto::scaling::{FeatureScaling, FeatureStats};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("round {round} failed {attempts} times in a row; last reason: {reason}")]
    RoundKeepsFailing {
        round: u64,
        attempts: u32,
        reason: String,
    },
    #[error("the head model {0} is missing from the store")]
    MissingModel(String),
    #[error("stored model {version} is unreadable: {reason}")]
    UnreadableModel { version: String, reason: String },
    #[error("privacy accounting failed: {0}")]
    Privacy(#[from] PrivacyError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error(transparent)]
    Erasure(#[from] erasure::ErasureError),
    #[error("strategy: {0}")]
    Strategy(#[from] crate::strategy::StrategyError),
}

/// The privacy budget and what has been spent of it, when DP is on.
struct Spending {
    ledger: PrivacyLedger,
    accountant: Box<dyn cohort_privacy::Accountant + Send + Sync>,
    event: cohort_privacy::DpEvent,
}

impl Spending {
    /// The ledger stored with the federation (or a new one), under the
    /// configured budget.
    fn load(federation: &Federation) -> Result<Option<Self>, EngineError> {
        let Some(privacy) = &federation.config.privacy else {
            return Ok(None);
        };
        let budget = privacy.budget()?;
        let ledger = match federation.store.privacy_ledger()? {
            Some(mut stored) => {
                if stored.budget != budget {
                    tracing::warn!(stored = ?stored.budget, configured = ?budget, "privacy budget changed by the configuration");
                }
                stored.budget = budget;
                stored
            }
            None => PrivacyLedger::new(budget)?,
        };
        Ok(Some(Self {
            ledger,
            accountant: dp_mechanism::accountant(privacy.accountant),
            event: dp_mechanism::round_event(
                privacy,
                federation.config.rounds.fraction,
                federation.config.min_results(),
                federation.layout.num_parameters(),
            )?,
        }))
    }

    /// The ledger with one more round, and ε after it; or why the budget forbids it.
    fn next_round(&self, round: u64) -> Result<Result<(PrivacyLedger, f64), String>, EngineError> {
        let budget = self.ledger.budget;
        let check = match self.ledger.check(&[self.event], self.accountant.as_ref()) {
            Ok(check) => check,
            Err(PrivacyError::BudgetAlreadyExceeded { epsilon_spent, .. }) => {
                return Ok(Err(format!(
                    "privacy budget exhausted: ε = {epsilon_spent:.4} already spent of {} (δ = {})",
                    budget.epsilon, budget.delta
                )));
            }
            Err(other) => return Err(other.into()),
        };
        if check.exceeds() {
            return Ok(Err(format!(
                "privacy budget exhausted: ε = {:.4} spent of {} (δ = {}); round {round} would bring it to {:.4}",
                check.epsilon_spent, budget.epsilon, budget.delta, check.epsilon_after
            )));
        }
        let mut next = self.ledger.clone();
        next.record(round, vec![self.event], self.accountant.as_ref())?;
        Ok(Ok((next, check.epsilon_after)))
    }
}

/// What the engine carries from one round to the next.
struct Progress {
    strategy: Box<dyn Strategy>,
    /// None until agreed (at the first round to run, and again after a
    /// rollback to the initial model): agreeing needs the nodes, so it waits
    /// until a round will run.
    scaling: Option<FeatureScaling>,
    head: FederationHead,
    spending: Option<Spending>,
}

/// Runs rounds until `rounds.count` have completed (or the privacy budget
/// stops the federation), then finishes the federation.
///
/// Serving after finish (`server.serve_after_finish`), the engine then waits
/// for an erasure request that taints the final model: the federation is
/// reopened, rolled back and retrained by the nodes that start again, and
/// finishes again. Waiting is on a signal from the erasure handling, never a
/// timer. Returns the final head when it stops: after the rounds, or, serving
/// after finish, when the coordinator shuts down.
pub async fn run(
    federation: Arc<Federation>,
    strategy: Box<dyn Strategy>,
) -> Result<FederationHead, EngineError> {
    let head = federation
        .store
        .head()?
        .ok_or_else(|| EngineError::MissingModel("(no head)".into()))?;
    let mut progress = Progress {
        strategy,
        scaling: None,
        head,
        spending: Spending::load(&federation)?,
    };
    loop {
        let stop_reason = run_rounds(&federation, &mut progress).await?;
        let head = &progress.head;
        tracing::info!(completed_rounds = head.completed_rounds, model = %head.model_version, stop_reason, "federation finished");
        federation.finish(v1::Finished {
            completed_rounds: head.completed_rounds,
            final_model_version: head.model_version.clone(),
            stop_reason: stop_reason.clone().unwrap_or_default(),
        });
        federation.emit(FederationEvent::Finished {
            completed_rounds: head.completed_rounds,
            model_version: head.model_version.clone(),
            stop_reason,
        });
        if !federation.config.server.serve_after_finish
            || !erasure::wait_for_rollback(&federation).await?
        {
            return Ok(progress.head);
        }
        tracing::info!(model = %progress.head.model_version, "an erasure request tainted the final model: retraining with the nodes that start again");
        federation.reopen();
        federation.emit(FederationEvent::Reopened {
            model_version: progress.head.model_version.clone(),
        });
    }
}

/// Runs rounds from `progress` until `rounds.count` have completed; returns
/// why it stopped before, if the privacy budget forbade the next round.
async fn run_rounds(
    federation: &Federation,
    progress: &mut Progress,
) -> Result<Option<String>, EngineError> {
    let config = &federation.config;
    let mut failed_attempts = 0u32;
    loop {
        // An erasure request may have tainted the head: retrain from the last
        // untainted model (exact unlearning), whether or not rounds remain.
        if let Some(rolled_back) = erasure::apply_rollback(federation).await? {
            progress.head = rolled_back;
            failed_attempts = 0;
            // The strategy resumes the state (momentum, moments) it had at the
            // round rolled back to, as the store now holds it: the retrain is
            // the training that would have happened without the erased data.
            progress.strategy = crate::strategy::for_config(config)?;
            crate::strategy::resume(
                progress.strategy.as_mut(),
                federation.store.strategy_state()?,
            )?;
            if progress.head.completed_rounds == 0 {
                // Back to the initial model: the scaling is agreed again on
                // the nodes' current data (the rollback removed the old one).
                progress.scaling = None;
            }
        }
        if progress.head.completed_rounds >= config.rounds.count {
            return Ok(None);
        }
        let round = progress.head.completed_rounds + 1;
        let attempt = failed_attempts + 1;
        // The budget is checked before the round runs: a round that would
        // overspend never trains, so it never releases anything.
        let spend = match &progress.spending {
            Some(spending) => match spending.next_round(round)? {
                Ok(next) => Some(next),
                Err(reason) => {
                    tracing::warn!(%reason, "federation stopped");
                    federation
                        .audit_log
                        .append(
                            &federation.store,
                            vec![AuditEvent::FederationStopped {
                                reason: reason.clone(),
                            }],
                        )
                        .await?;
                    erasure::after_stop(federation, &progress.head, &reason).await?;
                    return Ok(Some(reason));
                }
            },
            None => None,
        };
        let spend_ref = spend.as_ref().map(|(ledger, epsilon)| (ledger, *epsilon));
        let scaling = match progress.scaling.take() {
            Some(scaling) => scaling,
            None => agree_on_scaling(federation).await?,
        };
        let scaling = progress.scaling.insert(scaling);
        let outcome = run_round(
            federation,
            progress.strategy.as_mut(),
            &progress.head,
            scaling,
            round,
            attempt,
            spend_ref,
        )
        .await?;
        match outcome {
            Ok(new_head) => {
                progress.head = new_head;
                failed_attempts = 0;
                if let (Some(spending), Some((ledger, _))) = (&mut progress.spending, spend) {
                    spending.ledger = ledger;
                }
            }
            // Discarded for an erasure's rollback, which the loop applies
            // next: not the round's fault, so not a failed attempt.
            Err(_) if erasure::rollback_pending(federation)? => {}
            Err(reason) => {
                failed_attempts += 1;
                if failed_attempts >= config.rounds.max_failed_attempts {
                    return Err(EngineError::RoundKeepsFailing {
                        round,
                        attempts: failed_attempts,
                        reason,
                    });
                }
            }
        }
    }
}

fn deadline(federation: &Federation) -> SystemTime {
    SystemTime::now() + Duration::from_secs_f64(federation.config.rounds.deadline_secs)
}

/// Round 0: nodes' feature statistics become the global standardization. Done
/// once per federation; a restart reuses the stored result.
async fn agree_on_scaling(federation: &Federation) -> Result<FeatureScaling, EngineError> {
    if let Some(scaling) = federation.store.feature_scaling()? {
        return Ok(scaling);
    }
    let min = federation.config.rounds.min_clients;
    loop {
        federation.wait_for_nodes(min).await;
        let participants = federation.available_nodes();
        let deadline = deadline(federation);
        federation.open_stage(ActiveStage::new(
            0,
            StageKind::FeatureStats,
            deadline,
            participants,
        ));
        federation.wait_for_results(deadline).await;
        let Some(stage) = federation.close_stage() else {
            continue;
        };
        let (contributors, stats): (Vec<String>, Vec<FeatureStats>) = stage
            .results
            .into_iter()
            .filter_map(|(node, r)| match r {
                StageResult::FeatureStats(s) => Some((node, s)),
                _ => None,
            })
            .unzip();
        if stats.len() < federation.config.min_results() {
            tracing::warn!(
                answered = stats.len(),
                needed = federation.config.min_results(),
                "too few nodes sent feature statistics; asking again"
            );
            continue;
        }
        match FeatureStats::combine(&stats) {
            Ok(scaling) => {
                // Logged first: the scaling shapes every later model, so the
                // nodes' data behind it is part of every model's lineage.
                let datasets = registered_datasets(federation, &contributors)?;
                federation
                    .audit_log
                    .append(
                        &federation.store,
                        vec![AuditEvent::ScalingAgreed {
                            contributors,
                            datasets,
                        }],
                    )
                    .await?;
                federation.store.set_feature_scaling(&scaling).await?;
                tracing::info!(nodes = stats.len(), "agreed on global feature scaling");
                return Ok(scaling);
            }
            Err(error) => tracing::warn!(%error, "feature statistics unusable; asking again"),
        }
    }
}

fn load_model(federation: &Federation, version: &str) -> Result<Array1<f32>, EngineError> {
    let bytes = federation
        .store
        .model(version)?
        .ok_or_else(|| EngineError::MissingModel(version.to_owned()))?;
    decode_f32(&bytes, federation.layout.num_parameters())
        .map(Array1::from)
        .map_err(|e| EngineError::UnreadableModel {
            version: version.to_owned(),
            reason: e.to_string(),
        })
}

/// The plain fit stage: every sampled node's trained model, as many as arrive
/// before the deadline.
async fn collect_fit(
    federation: &Federation,
    head: &FederationHead,
    scaling: &FeatureScaling,
    training: v1::TrainingConfig,
    sampled: &[String],
    round: u64,
    deadline: SystemTime,
) -> Vec<FitResult> {
    federation.open_stage(ActiveStage::new(
        round,
        StageKind::Fit {
            model_version: head.model_version.clone(),
            training,
            scaling: scaling.clone(),
        },
        deadline,
        sampled.iter().cloned(),
    ));
    federation.wait_for_results(deadline).await;
    federation
        .close_stage()
        .map(|stage| stage.results.into_values())
        .into_iter()
        .flatten()
        .filter_map(|r| match r {
            StageResult::Fit(fit) => Some(fit),
            _ => None,
        })
        .collect()
}

/// The data set version each sampled node has registered, as the round
/// starts: what its contribution will have been trained on.
fn registered_datasets(
    federation: &Federation,
    sampled: &[String],
) -> Result<Vec<ContributorDataset>, EngineError> {
    let mut datasets = Vec::with_capacity(sampled.len());
    for node_id in sampled {
        if let Some(dataset) = federation.store.node(node_id)?.and_then(|r| r.dataset) {
            datasets.push(ContributorDataset {
                node_id: node_id.clone(),
                dataset: dataset.reference(),
            });
        }
    }
    Ok(datasets)
}

/// One attempt at one round. The outer `Result` is a store failure (fatal);
/// the inner one a failed round (recorded, and retried by the caller).
async fn run_round(
    federation: &Federation,
    strategy: &mut dyn Strategy,
    head: &FederationHead,
    scaling: &FeatureScaling,
    round: u64,
    attempt: u32,
    spend: Option<(&PrivacyLedger, f64)>,
) -> Result<Result<FederationHead, String>, EngineError> {
    let config = &federation.config;
    let global = load_model(federation, &head.model_version)?;

    // Sampling: Poisson under differential privacy (what its accounting
    // assumes), else a fixed-size seeded sample.
    federation.wait_for_nodes(config.rounds.min_clients).await;
    let started = SystemTime::now();
    let available = federation.available_nodes();
    let sampled = if config.privacy.is_some() {
        poisson_sample(
            &available,
            config.rounds.fraction,
            config.rounds.seed,
            round,
        )
    } else {
        sample_nodes(
            &available,
            config.rounds.fraction,
            config.rounds.min_clients,
            config.rounds.seed,
            round,
        )
    };
    let context = RoundContext {
        round,
        available: available.len(),
    };
    let datasets = registered_datasets(federation, &sampled)?;
    let mut training = v1::TrainingConfig {
        local_epochs: config.training.local_epochs,
        batch_size: config.training.batch_size,
        learning_rate: config.training.learning_rate,
        seed: config.rounds.seed ^ round,
        ..Default::default()
    };
    strategy.configure_fit(&mut training);
    tracing::info!(round, attempt, sampled = sampled.len(), "round started");
    federation
        .audit_log
        .append(
            &federation.store,
            vec![AuditEvent::RoundStarted {
                round,
                attempt,
                model_in: head.model_version.clone(),
                sampled: sampled.clone(),
            }],
        )
        .await?;

    let fit_deadline = deadline(federation);
    let mut record = RoundRecord {
        schema: SCHEMA_VERSION,
        round,
        attempt,
        strategy: strategy.name().to_owned(),
        model_in: head.model_version.clone(),
        sampled: sampled.clone(),
        started_ms: unix_ms(started),
        finished_ms: 0,
        outcome: RoundOutcome::Failed {
            reason: String::new(),
        },
        epsilon_spent: None,
    };
    let needed = config.min_results();
    let too_few = |got: usize| {
        format!(
            "only {got} of {} sampled nodes returned an update before the deadline; {needed} needed",
            sampled.len()
        )
    };

    // Fit and aggregate: in the clear (each update seen, the strategy combines
    // them) or under secure aggregation (only the weighted mean change is seen).
    let (aggregated, contributions) = match &config.secure_aggregation {
        Some(secagg) => {
            let fit = v1::FitTask {
                model_version: head.model_version.clone(),
                config: Some(training),
                scaling: Some(stage::scaling(scaling)),
            };
            let encoding = match &config.privacy {
                Some(privacy) => secure::Encoding::DistributedNoise(dp_mechanism::distributed(
                    privacy,
                    config.min_results(),
                    federation.layout.num_parameters(),
                )),
                None => secure::Encoding::Weighted,
            };
            match secure::fit(
                federation,
                secagg,
                encoding,
                fit,
                &sampled,
                round,
                attempt,
                fit_deadline,
            )
            .await
            {
                Ok(fit) if fit.contributors.len() < needed => {
                    (Err(too_few(fit.contributors.len())), Vec::new())
                }
                Ok(fit) => {
                    if !fit.dropped.is_empty() {
                        tracing::info!(round, dropped = ?fit.dropped, "nodes dropped out of secure aggregation");
                    }
                    let contributions = fit
                        .contributors
                        .iter()
                        .map(|node_id| Contribution {
                            node_id: node_id.clone(),
                            num_examples: None,
                            train_loss: None,
                        })
                        .collect();
                    let next = strategy
                        .aggregate_secure_sum(&global, &fit.sum, &context)
                        .map_err(|e| e.to_string());
                    (next, contributions)
                }
                Err(reason) => (Err(format!("secure aggregation: {reason}")), Vec::new()),
            }
        }
        None => {
            let results = collect_fit(
                federation,
                head,
                scaling,
                training,
                &sampled,
                round,
                fit_deadline,
            )
            .await;
            let contributions = results
                .iter()
                .map(|r| Contribution {
                    node_id: r.node_id.clone(),
                    num_examples: Some(r.num_examples),
                    train_loss: Some(r.train_loss),
                })
                .collect();
            let next = if results.len() < needed {
                Err(too_few(results.len()))
            } else {
                strategy
                    .aggregate_fit(&global, &results, &context)
                    .map_err(|e| e.to_string())
            };
            (next, contributions)
        }
    };
    // From here to the commit, no erasure request may taint the head unseen.
    let commit_guard = federation.commit_lock.lock().await;
    let aggregated = if erasure::rollback_pending(federation)? {
        Err("discarded: an erasure request tainted the model this round started from".to_owned())
    } else {
        aggregated
    };
    let next = match aggregated {
        Ok(next) => next,
        Err(reason) => {
            tracing::warn!(round, attempt, %reason, "round failed");
            record.finished_ms = unix_ms(SystemTime::now());
            record.outcome = RoundOutcome::Failed {
                reason: reason.clone(),
            };
            federation.store.record_failed_round(&record).await?;
            federation
                .audit_log
                .append(
                    &federation.store,
                    vec![AuditEvent::RoundFailed {
                        round,
                        attempt,
                        reason: reason.clone(),
                    }],
                )
                .await?;
            federation.emit(FederationEvent::RoundFailed(record));
            return Ok(Err(reason));
        }
    };

    // Committing: model, record and head in one transaction.
    let encoded = encode_f32(next.as_slice().unwrap_or(&next.to_vec()));
    let version = model_version(&federation.fingerprint, &encoded);
    record.finished_ms = unix_ms(SystemTime::now());
    record.outcome = RoundOutcome::Completed {
        model_out: version.clone(),
        contributions: contributions.clone(),
        evaluation: None,
    };
    record.epsilon_spent = spend.map(|(_, epsilon)| epsilon);
    let audit = federation
        .audit_log
        .prepare(
            &federation.store,
            vec![AuditEvent::RoundCompleted {
                round,
                attempt,
                strategy: record.strategy.clone(),
                model_in: record.model_in.clone(),
                model_out: version.clone(),
                contributors: contributions.iter().map(|c| c.node_id.clone()).collect(),
                epsilon_spent: record.epsilon_spent,
                datasets: contributions
                    .iter()
                    .filter_map(|c| datasets.iter().find(|d| d.node_id == c.node_id).cloned())
                    .collect(),
                protection: RoundProtection::of(config),
            }],
        )
        .await?;
    let new_head = federation
        .store
        .commit_round(
            &record,
            &version,
            &encoded,
            spend.map(|(ledger, _)| ledger),
            strategy.state().as_ref(),
            audit.batch(),
        )
        .await?;
    audit.stored();
    drop(commit_guard);
    erasure::after_commit(federation, &new_head).await?;

    // Evaluating: every available node scores the new model on its held-out split.
    let eval_deadline = deadline(federation);
    federation.open_stage(ActiveStage::new(
        round,
        StageKind::Evaluate {
            model_version: version.clone(),
            scaling: scaling.clone(),
        },
        eval_deadline,
        federation.evaluating_nodes(),
    ));
    federation.wait_for_results(eval_deadline).await;
    let evaluations: Vec<(String, _)> = federation
        .close_stage()
        .map(|stage| stage.results.into_iter())
        .into_iter()
        .flatten()
        .filter_map(|(node, r)| match r {
            StageResult::Evaluate(e) => Some((node, e)),
            _ => None,
        })
        .collect();
    let examples: u64 = evaluations.iter().map(|(_, e)| e.num_examples).sum();
    if examples > 0 {
        let weighted = |f: fn(&super::stage::NodeEvaluation) -> f64| {
            evaluations
                .iter()
                .map(|(_, e)| f(e) * e.num_examples as f64)
                .sum::<f64>()
                / examples as f64
        };
        let summary = EvaluationSummary {
            nodes: evaluations.iter().map(|(n, _)| n.clone()).collect(),
            num_examples: examples,
            loss: weighted(|e| e.loss),
            accuracy: weighted(|e| e.accuracy),
        };
        record = federation
            .store
            .set_round_evaluation(round, summary)
            .await?;
    }
    let (accuracy, loss) = match &record.outcome {
        RoundOutcome::Completed {
            evaluation: Some(e),
            ..
        } => (e.accuracy, e.loss),
        _ => (f64::NAN, f64::NAN),
    };
    tracing::info!(
        round,
        model = %version,
        accuracy,
        loss,
        epsilon = record.epsilon_spent,
        "round completed"
    );
    federation.emit(FederationEvent::RoundCompleted(record));
    Ok(Ok(new_head))
}
