//! The work a task asks for, done on the node's own data. Training and evaluation
//! run on the blocking pool: they are CPU-bound and must not stall the runtime.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use cohort_proto::model::{ModelDescriptor, ParameterLayout, encode_f32};
use cohort_proto::v1::{self, sec_agg_submission::Message, task::Stage};
use tonic::Status;

use super::distributed_privacy::{ChargeError, DistributedLedger};
use super::metrics::NodeMetrics;
use super::record_privacy::RecordLedger;
use super::secure_aggregation::{
    RoundRequirements, SecAggCredentials, SecureRound, SecureRoundError,
};
use super::session::{Session, Upload};
use super::{LocalData, NodeSummary};
use crate::data::{Dataset, FeatureScaling, feature_stats, standardized};
use crate::fault::{FaultActor, FaultPlan, FitFaults};
use crate::model::{SavedModel, WithdrawalError, WithdrawnModels};
use crate::training::TrainOutcome;
use crate::training::{DpSgdConfig, LocalTrainingConfig, Trainable, trainable};
use cohort_crypto::secagg::{AttemptBudget, AttemptLedger, RoundId};
use cohort_privacy::DpEvent;

#[derive(Debug)]
pub(super) enum WorkError {
    /// The coordinator refused or the connection failed.
    Rpc(Status),
    /// Local computation failed: a bug or broken data, not worth retrying.
    Local(String),
}

impl From<Status> for WorkError {
    fn from(status: Status) -> Self {
        WorkError::Rpc(status)
    }
}

/// The model the federation trains, as agreed at registration.
#[derive(Debug, Clone)]
struct AgreedModel {
    trainable: Arc<dyn Trainable>,
    /// The built-in dense model's layout (`None` for the node's own model):
    /// the models this node keeps and serves are dense.
    dense: Option<ParameterLayout>,
    fingerprint: [u8; 32],
}

/// The node's data standardized with the federation's scaling.
#[derive(Debug)]
struct ScaledData {
    scaling: FeatureScaling,
    train: Arc<Dataset>,
    holdout: Arc<Dataset>,
}

#[derive(Debug)]
pub(super) struct Workbench {
    data: LocalData,
    model: Option<AgreedModel>,
    /// The node's own model (a node SDK model), if it brought one.
    own_model: Option<Arc<dyn Trainable>>,
    scaled: Option<ScaledData>,
    /// The last global model fetched: fit and evaluate of one round share it.
    cached_model: Option<(String, Arc<Vec<f32>>)>,
    credentials: SecAggCredentials,
    /// What this node itself requires of a secure-aggregation round.
    requirements: RoundRequirements,
    node_id: String,
    /// The secure-aggregation round in progress, between its stages.
    secure_round: Option<SecureRound>,
    /// The secure-aggregation attempts this node joined and completed, against
    /// its budget for aborted ones.
    attempts: AttemptLedger,
    /// Simulated faults (`cohort-sim` only); `None` in a real node.
    faults: Option<FaultActor>,
    /// Record-level DP-SGD under the node's own budget, if configured.
    record_privacy: Option<RecordLedger>,
    /// The node's budget against the coordinator under distributed DP.
    distributed_privacy: Option<DistributedLedger>,
    /// Where to keep global models, if anywhere.
    models_dir: Option<PathBuf>,
    /// Tainted versions this node withdrew (kept in the models folder, if any).
    withdrawn: WithdrawnModels,
    /// What the node's own monitoring may scrape.
    pub(super) metrics: Arc<NodeMetrics>,
}

/// A secure-aggregation step this node will not take: the round goes on without
/// it (or aborts), and the node waits for its next task.
fn refused(error: SecureRoundError) -> WorkError {
    tracing::warn!(%error, "secure-aggregation step refused");
    WorkError::Rpc(Status::failed_precondition(error.to_string()))
}

/// Charges the node's own ledger before its masked change leaves, and
/// returns the ε it now stands at; a refusal keeps the change here (the
/// round goes on without it).
fn charge(
    ledger: &mut DistributedLedger,
    round: u64,
    noise: Option<&v1::DistributedNoise>,
    dimension: usize,
) -> Result<f64, WorkError> {
    match ledger.charge(round, noise, dimension) {
        Ok(epsilon) => {
            tracing::info!(
                round,
                epsilon,
                "distributed-DP round charged against the coordinator"
            );
            Ok(epsilon)
        }
        Err(ChargeError::Ledger(error)) => Err(WorkError::Local(error.to_string())),
        Err(refusal) => {
            tracing::warn!(round, %refusal, "not sending the masked change");
            Err(WorkError::Rpc(Status::failed_precondition(
                refusal.to_string(),
            )))
        }
    }
}

/// The secure-aggregation round that a task of round `round` continues.
fn continuing(slot: &mut Option<SecureRound>, round: u64) -> Result<&mut SecureRound, WorkError> {
    match slot {
        Some(secure) if secure.round == round => Ok(secure),
        _ => Err(WorkError::Rpc(Status::failed_precondition(format!(
            "no secure-aggregation round {round} in progress on this node"
        )))),
    }
}

impl Workbench {
    pub fn new(
        data: LocalData,
        models_dir: Option<PathBuf>,
        node_id: &str,
        credentials: SecAggCredentials,
    ) -> Result<Self, WithdrawalError> {
        let withdrawn = match &models_dir {
            Some(dir) => WithdrawnModels::load(dir)?,
            None => WithdrawnModels::default(),
        };
        Ok(Self {
            data,
            model: None,
            own_model: None,
            scaled: None,
            cached_model: None,
            credentials,
            requirements: RoundRequirements::default(),
            node_id: node_id.to_owned(),
            secure_round: None,
            attempts: AttemptLedger::new(AttemptBudget::default()),
            faults: None,
            record_privacy: None,
            distributed_privacy: None,
            models_dir,
            withdrawn,
            metrics: Arc::default(),
        })
    }

    /// Withdraws the tainted versions of a poll answer: deletes those kept
    /// and refuses to keep them again (see `crate::model::WithdrawnModels`).
    pub fn withdraw(&mut self, tainted: &[String]) -> Result<(), WithdrawalError> {
        match &self.models_dir {
            Some(dir) => self.withdrawn.withdraw(dir, tainted),
            // Nothing kept on disk: the list is only this process's.
            None => self.withdrawn.withdraw_in_memory(tainted),
        }
    }

    /// The acknowledgement for a poll: the versions of the last taint list
    /// heard (`tainted`) that this node has withdrawn. Never more than the
    /// coordinator itself sent, however long the node's own list has grown.
    pub fn acknowledgement(&self, tainted: &[String]) -> Vec<String> {
        tainted
            .iter()
            .filter(|version| self.withdrawn.contains(version))
            .cloned()
            .collect()
    }

    /// Acts out `plan` in every fit task (simulation only).
    pub fn set_faults(&mut self, plan: FaultPlan) {
        self.faults = Some(FaultActor::new(plan));
    }

    /// Refuses secure-aggregation rounds below `requirements`.
    pub fn set_round_requirements(&mut self, requirements: RoundRequirements) {
        self.attempts = AttemptLedger::new(requirements.attempts);
        self.requirements = requirements;
    }

    /// Charges every distributed-DP round to `ledger` before the masked change
    /// leaves; survivor sets below its minimum cohort are not signed.
    pub fn set_distributed_privacy(&mut self, ledger: DistributedLedger) {
        let min_cohort = self.requirements.min_cohort.unwrap_or(0);
        self.requirements.min_cohort = Some(min_cohort.max(ledger.min_cohort()));
        self.distributed_privacy = Some(ledger);
    }

    /// Trains every round with DP-SGD, within `ledger`'s budget.
    pub fn set_record_privacy(&mut self, ledger: RecordLedger) {
        self.record_privacy = Some(ledger);
    }

    /// Rows in the training and held-out splits.
    pub fn rows(&self) -> (u64, u64) {
        (self.data.train.len() as u64, self.data.holdout.len() as u64)
    }

    pub fn num_features(&self) -> usize {
        self.data.train.num_features()
    }

    /// Trains `model` instead of the federation's built-in dense model.
    pub fn set_own_model(&mut self, model: Arc<dyn Trainable>) {
        self.own_model = Some(model);
    }

    /// The fingerprint registration states: the own model's, or none (this
    /// node builds whatever built-in model the federation trains).
    pub fn own_fingerprint(&self) -> Vec<u8> {
        (self.own_model.as_ref()).map_or_else(Vec::new, |m| m.descriptor().fingerprint().to_vec())
    }

    /// Checks the federation's model against this node's data and build.
    pub fn adopt_model(&mut self, registration: &v1::RegisterResponse) -> Result<(), String> {
        let wire = registration
            .model
            .as_ref()
            .ok_or("registration names no model")?;
        let descriptor = ModelDescriptor::from_proto(wire)
            .map_err(|e| format!("the federation's model descriptor is refused: {e}"))?;
        let fingerprint = descriptor.fingerprint();
        if registration.model_fingerprint != fingerprint {
            return Err(format!(
                "coordinator's model fingerprint {} differs from this node's reading of {} ({})",
                hex::encode(&registration.model_fingerprint),
                descriptor.label(),
                hex::encode(fingerprint)
            ));
        }
        let (trainable, dense) = self.trainable_for(&descriptor)?;
        if self.record_privacy.is_some() && !trainable.runs_dp_sgd() {
            return Err(format!(
                "record-level privacy is on, but {} trains with its own loop, not Cohort's \
                 DP-SGD: its privacy cannot be accounted",
                descriptor.label()
            ));
        }
        let classes = trainable.num_classes();
        for (split, data) in [
            ("training", &self.data.train),
            ("holdout", &self.data.holdout),
        ] {
            if let Some(label) = data.labels().iter().find(|&&l| l as usize >= classes) {
                return Err(format!(
                    "{split} data has label {label}, but the model has {classes} classes"
                ));
            }
        }
        self.model = Some(AgreedModel {
            trainable,
            dense,
            fingerprint,
        });
        Ok(())
    }

    /// What trains the federation's `descriptor`: the node's own model if it
    /// is that model, else the built-in dense model it describes.
    fn trainable_for(
        &self,
        descriptor: &ModelDescriptor,
    ) -> Result<(Arc<dyn Trainable>, Option<ParameterLayout>), String> {
        match &self.own_model {
            Some(own) if own.descriptor() == descriptor => Ok((own.clone(), None)),
            Some(own) => Err(format!(
                "the federation trains {}, but this node's model is {}",
                descriptor.label(),
                own.descriptor().label()
            )),
            None => {
                let layout =
                    ParameterLayout::from_descriptor(descriptor).map_err(|e| e.to_string())?;
                Ok((Arc::new(trainable::dense(layout.clone())), Some(layout)))
            }
        }
    }

    fn agreed(&self) -> Result<AgreedModel, WorkError> {
        self.model
            .clone()
            .ok_or_else(|| WorkError::Local("task before registration".into()))
    }

    fn scaled(
        &mut self,
        scaling: Option<&v1::FeatureScaling>,
    ) -> Result<(Arc<Dataset>, Arc<Dataset>), WorkError> {
        let scaling = scaling.ok_or_else(|| {
            WorkError::Rpc(Status::invalid_argument("task carries no feature scaling"))
        })?;
        let wanted = FeatureScaling {
            mean: scaling.mean.clone(),
            std: scaling.std.clone(),
        };
        if let Some(scaled) = &self.scaled
            && scaled.scaling == wanted
        {
            return Ok((scaled.train.clone(), scaled.holdout.clone()));
        }
        let train =
            standardized(&wanted, &self.data.train).map_err(|e| WorkError::Local(e.to_string()))?;
        let holdout = standardized(&wanted, &self.data.holdout)
            .map_err(|e| WorkError::Local(e.to_string()))?;
        let scaled = ScaledData {
            scaling: wanted,
            train: Arc::new(train),
            holdout: Arc::new(holdout),
        };
        let pair = (scaled.train.clone(), scaled.holdout.clone());
        self.scaled = Some(scaled);
        Ok(pair)
    }

    async fn global_model(
        &mut self,
        session: &mut Session,
        version: &str,
    ) -> Result<Arc<Vec<f32>>, WorkError> {
        if let Some((cached, params)) = &self.cached_model
            && cached == version
        {
            return Ok(params.clone());
        }
        let model = self.agreed()?;
        let params = Arc::new(
            session
                .fetch_model(
                    version,
                    &model.fingerprint,
                    model.trainable.descriptor().num_parameters(),
                )
                .await?,
        );
        self.cached_model = Some((version.to_owned(), params.clone()));
        self.keep(version, &params)?;
        Ok(params)
    }

    /// Trains from the task's global model; returns the outcome and that model,
    /// or `None` when a simulated fault keeps this node from answering.
    async fn train(
        &mut self,
        session: &mut Session,
        fit: &v1::FitTask,
        round: u64,
        deadline_unix_ms: u64,
        reported: Reported,
    ) -> Result<Option<(TrainOutcome, Arc<Vec<f32>>)>, WorkError> {
        let mut faults = None;
        if let Some(actor) = &mut self.faults {
            match actor.before_training(round, deadline_unix_ms).await {
                Some(acted) => faults = Some(acted),
                None => return Ok(None),
            }
        }
        let model = self.agreed()?;
        let (train, _) = self.scaled(fit.scaling.as_ref())?;
        let global = self.global_model(session, &fit.model_version).await?;
        let local = local_config(fit)?;
        let (trainable, start, rows) = (model.trainable.clone(), global.clone(), train.clone());
        let record_round = self.record_round(&local, train.len(), reported, round)?;
        let dp = match &record_round {
            RecordRound::OverBudget => {
                self.metrics.over_budget(round);
                return Ok(None);
            }
            RecordRound::Plain => None,
            RecordRound::DpSgd { dp, .. } => Some(*dp),
        };
        let free_rider = faults.as_ref().is_some_and(FitFaults::skips_training);
        let started = Instant::now();
        let mut outcome = tokio::task::spawn_blocking(move || match dp {
            // A simulated free rider: the global model, tampered below.
            None if free_rider => Ok(TrainOutcome {
                parameters: start.to_vec(),
                num_examples: rows.len() as u64,
                mean_loss: 0.0,
            }),
            None => trainable.train(&start, &rows, &local, None),
            Some(dp) => trainable.train(&start, &rows, &local, Some(&dp)),
        })
        .await
        .map_err(|e| WorkError::Local(e.to_string()))?
        .map_err(|e| WorkError::Local(e.to_string()))?;
        self.metrics.trained(train.len() as u64, started.elapsed());
        if let (Some(ledger), RecordRound::DpSgd { events, .. }) =
            (&mut self.record_privacy, record_round)
        {
            if reported == Reported::ExampleCountAndLoss {
                report_privately(ledger, &*model.trainable, &train, &mut outcome)?;
            }
            let epsilon = ledger
                .record(round, events)
                .map_err(|e| WorkError::Local(e.to_string()))?;
            tracing::info!(round, epsilon, "record-level privacy spent");
            self.metrics.record_privacy_spent(epsilon);
        }
        if let Some(faults) = &mut faults
            && !faults
                .after_training(&global, &mut outcome.parameters, deadline_unix_ms)
                .await
        {
            return Ok(None);
        }
        Ok(Some((outcome, global)))
    }

    /// How this round trains under the node's record-level privacy, and what
    /// it costs: its DP-SGD steps, and its statistics if they leave the node.
    fn record_round(
        &self,
        local: &LocalTrainingConfig,
        rows: usize,
        reported: Reported,
        round: u64,
    ) -> Result<RecordRound, WorkError> {
        let Some(ledger) = &self.record_privacy else {
            return Ok(RecordRound::Plain);
        };
        let with_statistics = reported == Reported::ExampleCountAndLoss;
        let events = ledger
            .round_events(local, rows, with_statistics)
            .map_err(|e| WorkError::Local(e.to_string()))?;
        if let Err(reason) = ledger.admit(&events) {
            // The node's promise to its data subjects outranks the round.
            tracing::warn!(round, %reason, "not training");
            return Ok(RecordRound::OverBudget);
        }
        Ok(RecordRound::DpSgd {
            dp: ledger.dp,
            events,
        })
    }

    /// Saves a global model in the models folder, if there is one, with the
    /// feature scaling of the current tasks.
    fn keep(&self, version: &str, params: &[f32]) -> Result<(), WorkError> {
        let Some(dir) = &self.models_dir else {
            return Ok(());
        };
        if self.withdrawn.contains(version) {
            return Ok(());
        }
        let (Some(model), Some(scaled)) = (&self.model, &self.scaled) else {
            return Err(WorkError::Local(
                "a model arrived before the federation's model and scaling were known".into(),
            ));
        };
        // The node keeps the built-in dense models, which its encrypted
        // inference serves; its own model's versions it does not keep.
        let Some(layout) = &model.dense else {
            return Ok(());
        };
        let saved = SavedModel::new(layout.spec(), scaled.scaling.clone(), params.to_vec())
            .map_err(WorkError::Local)?;
        if saved.model_version != version {
            return Err(WorkError::Local(format!(
                "model {version} hashes to {} when saved",
                saved.model_version
            )));
        }
        let path = saved
            .save(dir)
            .map_err(|e| WorkError::Local(e.to_string()))?;
        tracing::info!(version, path = %path.display(), "global model kept");
        Ok(())
    }

    /// At the end of the federation: fetches and keeps its final model (if the
    /// node keeps models and took part in at least one scaled task).
    pub async fn keep_final_model(
        &mut self,
        session: &mut Session,
        version: &str,
    ) -> Result<(), WorkError> {
        if self.models_dir.is_none() || self.scaled.is_none() || version.is_empty() {
            return Ok(());
        }
        self.global_model(session, version).await.map(|_| ())
    }

    /// This node's masked change, once its own ledger (if any) has paid for
    /// the release it enables.
    fn masked_input(
        &mut self,
        task: &v1::SecAggMaskedInputTask,
        round: u64,
    ) -> Result<Vec<u8>, WorkError> {
        let secure = continuing(&mut self.secure_round, round)?;
        let masked = secure
            .masked_input(task, &self.credentials)
            .map_err(refused)?;
        if let Some(ledger) = &mut self.distributed_privacy {
            let (noise, dimension) = secure.release();
            let epsilon = charge(ledger, round, noise, dimension)?;
            self.metrics.distributed_privacy_spent(epsilon);
        }
        Ok(masked.to_bytes())
    }

    /// Adopts the CA-signed revocation list a task carried; a list the CA
    /// did not sign, or older than the one held, is refused (and the held
    /// one kept): only the CA can revoke, and a relay cannot un-revoke.
    fn adopt_revocations(&mut self, signed: &[u8]) {
        if let Err(refused) = self.credentials.adopt_revocations(signed) {
            tracing::warn!(node = %self.node_id, %refused, "revocation list from the coordinator refused");
        }
    }

    /// Round 0's exact per-feature statistics, unless the node trains under
    /// record-level privacy: exact sums would tell the coordinator whether a
    /// row is in the training set, so such a node needs a declared scaling.
    async fn send_feature_stats(&self, session: &mut Session) -> Result<(), WorkError> {
        if self.record_privacy.is_some() {
            tracing::warn!(
                "not sending feature statistics under record-level privacy: declare [scaling]"
            );
            return Ok(());
        }
        let stats = feature_stats(&self.data.train);
        session
            .submit_feature_stats(stats.count, stats.sum, stats.sum_of_squares)
            .await?;
        Ok(())
    }

    pub async fn perform(
        &mut self,
        session: &mut Session,
        task: v1::Task,
        summary: &mut NodeSummary,
    ) -> Result<(), WorkError> {
        let round = task.round;
        let deadline_unix_ms = task.deadline_unix_ms;
        self.adopt_revocations(&task.signed_revocations);
        match task.stage {
            Some(Stage::FeatureStats(_)) => self.send_feature_stats(session).await?,
            Some(Stage::Fit(fit)) => {
                self.fit_round(session, &fit, round, deadline_unix_ms, summary)
                    .await?;
            }
            Some(Stage::SecaggFit(task)) => {
                self.start_secure_round(session, task, round, deadline_unix_ms, summary)
                    .await?;
            }
            Some(Stage::SecaggGraphSeed(task)) => {
                let reveal = continuing(&mut self.secure_round, round)?
                    .reveal_graph_nonce(&task)
                    .map_err(refused)?;
                let message = Message::GraphReveal(reveal.to_bytes());
                session.submit_secure_aggregation(round, message).await?;
            }
            Some(Stage::SecaggShareKeys(task)) => {
                let shares = continuing(&mut self.secure_round, round)?
                    .share_keys(&task, &self.credentials)
                    .map_err(refused)?;
                session
                    .submit_secure_aggregation(round, Message::ShareKeys(shares.to_bytes()))
                    .await?;
            }
            Some(Stage::SecaggMaskedInput(task)) => {
                let masked = self.masked_input(&task, round)?;
                let attempt = continuing(&mut self.secure_round, round)?.attempt();
                session.submit_masked_input(round, masked).await?;
                self.attempts.completed(attempt);
            }
            Some(Stage::SecaggConsistencyCheck(task)) => {
                let signature = continuing(&mut self.secure_round, round)?
                    .consistency_check(&task, &self.credentials)
                    .map_err(refused)?;
                let message = Message::SurvivorSignature(signature.to_bytes());
                session.submit_secure_aggregation(round, message).await?;
            }
            Some(Stage::SecaggUnmask(task)) => {
                let response = continuing(&mut self.secure_round, round)?
                    .unmask(&task)
                    .map_err(refused)?;
                self.secure_round = None;
                let message = Message::UnmaskResponse(response.to_bytes());
                session.submit_secure_aggregation(round, message).await?;
            }
            Some(Stage::Evaluate(task)) => {
                self.evaluate_round(session, task, round, summary).await?;
            }
            None => {
                return Err(WorkError::Rpc(Status::invalid_argument(
                    "task names no stage",
                )));
            }
        }
        Ok(())
    }

    /// A plain round's fit: train, then upload the new parameters.
    async fn fit_round(
        &mut self,
        session: &mut Session,
        fit: &v1::FitTask,
        round: u64,
        deadline_unix_ms: u64,
        summary: &mut NodeSummary,
    ) -> Result<(), WorkError> {
        let model = self.agreed()?;
        let reported = Reported::ExampleCountAndLoss;
        let Some((outcome, _)) = self
            .train(session, fit, round, deadline_unix_ms, reported)
            .await?
        else {
            return Ok(());
        };
        session
            .submit_update(Upload {
                round,
                base_model_version: &fit.model_version,
                fingerprint: &model.fingerprint,
                num_examples: outcome.num_examples,
                train_loss: outcome.mean_loss,
                encoded: encode_f32(&outcome.parameters),
            })
            .await?;
        summary.updates_sent += 1;
        self.metrics.update_sent();
        Ok(())
    }

    /// A secure-aggregation round's first task: train, then start this node's
    /// part of the protocol (if the round meets its requirements) and send its
    /// signed key advertisement.
    async fn start_secure_round(
        &mut self,
        session: &mut Session,
        task: v1::SecAggFitTask,
        round: u64,
        deadline_unix_ms: u64,
        summary: &mut NodeSummary,
    ) -> Result<(), WorkError> {
        let (fit, setup) = task.fit.zip(task.setup).ok_or_else(|| {
            WorkError::Rpc(Status::invalid_argument(
                "secure-aggregation fit task lacks its fit or its setup",
            ))
        })?;
        self.secure_round = None;
        // Before training: a node past its budget of aborted attempts does
        // no work for another.
        let attempt = RoundId(setup.secagg_round);
        self.attempts
            .check(attempt)
            .map_err(|e| refused(SecureRoundError::Protocol(e)))?;
        // Under distributed noise the weight is 1 and no loss is sent: no
        // statistic leaves; otherwise the capped count is in the masked sum.
        let reported = match setup.distributed_noise {
            Some(_) => Reported::Nothing,
            None => Reported::ExampleCountAndLoss,
        };
        let Some((outcome, global)) = self
            .train(session, &fit, round, deadline_unix_ms, reported)
            .await?
        else {
            return Ok(());
        };
        let change: Vec<f32> = outcome
            .parameters
            .iter()
            .zip(global.iter())
            .map(|(local, global)| local - global)
            .collect();
        let (secure_round, advert) = SecureRound::start(
            &setup,
            round,
            &self.node_id,
            &change,
            outcome.num_examples,
            &self.credentials,
            &self.requirements,
        )
        .map_err(refused)?;
        self.secure_round = Some(secure_round);
        self.attempts.joined(attempt);
        session
            .submit_secure_aggregation(round, Message::Advertisement(advert.to_bytes()))
            .await?;
        summary.updates_sent += 1;
        self.metrics.update_sent();
        Ok(())
    }

    /// Scores the global model `task` names on the node's held-out split and
    /// reports it (nothing without a holdout).
    async fn evaluate_round(
        &mut self,
        session: &mut Session,
        task: v1::EvaluateTask,
        round: u64,
        summary: &mut NodeSummary,
    ) -> Result<(), WorkError> {
        let model = self.agreed()?;
        let (_, holdout) = self.scaled(task.scaling.as_ref())?;
        if holdout.is_empty() {
            return Ok(());
        }
        let params = self.global_model(session, &task.model_version).await?;
        let trainable = model.trainable.clone();
        let evaluation = tokio::task::spawn_blocking(move || trainable.evaluate(&params, &holdout))
            .await
            .map_err(|e| WorkError::Local(e.to_string()))?
            .map_err(|e| WorkError::Local(e.to_string()))?;
        session
            .submit_evaluation(v1::EvaluationSubmission {
                header: None,
                round,
                model_version: task.model_version,
                num_examples: evaluation.num_examples,
                loss: evaluation.loss,
                accuracy: evaluation.accuracy,
            })
            .await?;
        summary.evaluations_sent += 1;
        self.metrics.evaluation_sent();
        Ok(())
    }
}

/// Replaces the exact example count and mean loss of a DP-SGD round with
/// their noisy release (the round's ledger entry pays for it).
fn report_privately(
    ledger: &RecordLedger,
    trainable: &dyn Trainable,
    train: &Dataset,
    outcome: &mut TrainOutcome,
) -> Result<(), WorkError> {
    let noisy = ledger
        .report(trainable, &outcome.parameters, train)
        .map_err(|e| WorkError::Local(e.to_string()))?;
    // The coordinator refuses a zero count; one row is the least a trained node has.
    outcome.num_examples = noisy.num_examples.max(1);
    outcome.mean_loss = noisy.mean_loss;
    Ok(())
}

/// What a round sends beside the model change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reported {
    /// The example count and mean training loss (a plain upload, or a
    /// SecAgg round whose weight is the capped count).
    ExampleCountAndLoss,
    /// Neither (SecAgg with distributed noise: weight 1, no loss).
    Nothing,
}

/// A round under the node's record-level privacy, decided before training.
#[derive(Debug)]
enum RecordRound {
    /// No record-level privacy: plain training.
    Plain,
    /// DP-SGD, and the events the round is charged.
    DpSgd {
        dp: DpSgdConfig,
        events: Vec<DpEvent>,
    },
    /// The node's budget refuses the round: it does not train.
    OverBudget,
}

/// The local training settings a fit task asks for.
fn local_config(fit: &v1::FitTask) -> Result<LocalTrainingConfig, WorkError> {
    let config = fit.config.ok_or_else(|| {
        WorkError::Rpc(Status::invalid_argument(
            "fit task carries no training config",
        ))
    })?;
    Ok(LocalTrainingConfig::from(&config))
}
