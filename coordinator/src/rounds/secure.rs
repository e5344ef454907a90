//! A round's fit under secure aggregation: the six stages of SecAgg+ (Bell et al.,
//! CCS 2020, over Bonawitz et al., CCS 2017; see `cohort_crypto::secagg`) run as
//! six stages of the round, each a task per participant with its own deadline.
//!
//! ```text
//! advertise-keys     node trains, then sends its two public keys and a commitment to
//!                    a fresh nonce (signed by its TLS key)
//! graph-seed         node gets every advertiser's commitment, reveals its nonce
//! share-keys         node gets every nonce (they draw the graph) and its neighbours'
//!                    adverts + certificates, sends sealed shares
//! masked-input       node gets the shares sealed for it, sends weight·Δ and weight, masked
//! consistency-check  node gets the survivor set, signs it (once)
//! unmasking          node gets its neighbours' signatures and whose shares to reveal,
//!                    checks both against the set it signed, reveals them
//! ```
//!
//! The coordinator only relays and sums: the [`Aggregator`] adds each masked input
//! to a running sum as it arrives and keeps nothing else of it, and what comes out
//! is the weighted mean of the survivors' model changes. A node's protocol id is
//! its index among the round's participants (sorted); a message is accepted only
//! if its sender id is the id of the TLS peer that sent it. Each attempt at a round
//! has its own protocol round id, so no message replays into a retry.
//!
//! The driver (`fit`) has one method per step; each builds the step's tasks
//! from the aggregator, runs the stage (the same `LiveRound::run_stage` as the
//! plain fit) and closes the aggregator's step. The aggregator is shared with
//! each open stage, so every submission reaches it the moment it arrives.
//!
//! Threat model: see `crypto/README.md`. The coordinator here follows the
//! protocol; the nodes do not rely on it: the graph is drawn from their nonces,
//! and what a node reveals is fixed by the one survivor set it signed and by its
//! neighbours' signatures on that set.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use cohort_crypto::secagg::{
    AdvertiseKeys, AggregateSum, Aggregator, GraphReveal, MaskedInput, NodeId, Quantizer, RoundId,
    SecAggConfig, SecAggError, ShareKeys, SurvivorSignature, UnmaskResponse, to_signed,
};
use cohort_privacy::DistributedDiscreteGaussian;
use cohort_proto::v1::{self, task::Stage};
use ndarray::Array1;

use super::live::LiveRound;
use super::phases::RoundPlan;
use super::spending::ReleaseCharge;
use super::stage::{ActiveStage, StageResult, StageTask, SubmissionError};
use super::timing::StagePart;
use crate::federation::Federation;
use crate::federation::nodes::LiveNodes;
use crate::strategy::SecureSum;
use crate::strategy::dp_mechanism;

/// The six stages, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecAggStep {
    /// Train, then advertise two public keys and a graph commitment.
    AdvertiseKeys,
    /// Reveal the graph nonce.
    GraphSeed,
    /// Share the secrets with the neighbours, sealed.
    ShareKeys,
    /// Send the masked input.
    MaskedInput,
    /// Sign the survivor set.
    ConsistencyCheck,
    /// Reveal the shares that remove the masks.
    Unmasking,
}

impl SecAggStep {
    /// The stage's name in tasks, errors and logs.
    pub fn name(self) -> &'static str {
        match self {
            SecAggStep::AdvertiseKeys => "secagg-advertise-keys",
            SecAggStep::GraphSeed => "secagg-graph-seed",
            SecAggStep::ShareKeys => "secagg-share-keys",
            SecAggStep::MaskedInput => "secagg-masked-input",
            SecAggStep::ConsistencyCheck => "secagg-consistency-check",
            SecAggStep::Unmasking => "secagg-unmasking",
        }
    }
}

/// A decoded secure-aggregation message from a node.
#[derive(Debug, Clone)]
pub enum SecAggMessage {
    /// Its public keys and graph commitment, signed.
    AdvertiseKeys(AdvertiseKeys),
    /// Its graph nonce.
    GraphReveal(GraphReveal),
    /// Its sealed shares.
    ShareKeys(ShareKeys),
    /// Its masked input.
    MaskedInput(MaskedInput),
    /// Its signature on the survivor set.
    SurvivorSignature(SurvivorSignature),
    /// The shares it reveals.
    UnmaskResponse(UnmaskResponse),
}

impl SecAggMessage {
    /// The step the message answers.
    pub fn step(&self) -> SecAggStep {
        match self {
            SecAggMessage::AdvertiseKeys(_) => SecAggStep::AdvertiseKeys,
            SecAggMessage::GraphReveal(_) => SecAggStep::GraphSeed,
            SecAggMessage::ShareKeys(_) => SecAggStep::ShareKeys,
            SecAggMessage::MaskedInput(_) => SecAggStep::MaskedInput,
            SecAggMessage::SurvivorSignature(_) => SecAggStep::ConsistencyCheck,
            SecAggMessage::UnmaskResponse(_) => SecAggStep::Unmasking,
        }
    }

    fn sender(&self) -> NodeId {
        match self {
            SecAggMessage::AdvertiseKeys(m) => m.node,
            SecAggMessage::GraphReveal(m) => m.node,
            SecAggMessage::ShareKeys(m) => m.node,
            SecAggMessage::MaskedInput(m) => m.node,
            SecAggMessage::SurvivorSignature(m) => m.node,
            SecAggMessage::UnmaskResponse(m) => m.node,
        }
    }
}

/// The coordinator's state of one secure-aggregation round: the aggregator and
/// who is who.
#[derive(Debug)]
pub struct SecAggRound {
    aggregator: Aggregator,
    ids: BTreeMap<String, NodeId>,
}

impl SecAggRound {
    /// Takes a participant's message, after checking that it speaks for itself.
    pub fn receive(
        &mut self,
        node_id: &str,
        message: SecAggMessage,
    ) -> Result<(), SubmissionError> {
        let own = self
            .ids
            .get(node_id)
            .copied()
            .ok_or_else(|| SubmissionError::NotSampled(node_id.to_owned()))?;
        if message.sender() != own {
            return Err(SubmissionError::Rejected(format!(
                "the message is signed for protocol id {}, but node {node_id} has id {own} in this round",
                message.sender()
            )));
        }
        let outcome = match message {
            SecAggMessage::AdvertiseKeys(m) => self.aggregator.receive_advertisement(m),
            SecAggMessage::GraphReveal(m) => self.aggregator.receive_graph_reveal(m),
            SecAggMessage::ShareKeys(m) => self.aggregator.receive_shares(m),
            SecAggMessage::MaskedInput(m) => self.aggregator.receive_masked_input(m),
            SecAggMessage::SurvivorSignature(m) => self.aggregator.receive_survivor_signature(m),
            SecAggMessage::UnmaskResponse(m) => self.aggregator.receive_unmask_response(m),
        };
        outcome.map_err(|e| SubmissionError::Rejected(e.to_string()))
    }

    fn ids_of<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> Vec<NodeId> {
        names
            .into_iter()
            .filter_map(|name| self.ids.get(name).copied())
            .collect()
    }

    fn names_by_id(&self) -> BTreeMap<NodeId, String> {
        self.ids
            .iter()
            .map(|(name, id)| (*id, name.clone()))
            .collect()
    }
}

/// What a secure fit yields: the sum of the survivors' encoded changes.
#[derive(Debug, Clone)]
pub struct SecureFit {
    /// The decoded sum and its total weight.
    pub sum: SecureSum,
    /// The nodes whose changes are in the mean.
    pub contributors: Vec<String>,
    /// Sampled nodes that are not, with the step they dropped at.
    pub dropped: Vec<(String, SecAggStep)>,
    /// The seed the nodes' nonces drew the neighbour graph from (hex).
    pub graph_seed: Option<String>,
}

/// The protocol round id of one attempt at one round: unique across attempts.
pub fn protocol_round(round: u64, attempt: u32) -> RoundId {
    RoundId((round << 16) | u64::from(attempt & 0xffff))
}

/// How nodes encode their changes for the sum.
#[derive(Debug, Clone, Copy)]
pub enum Encoding {
    /// weight · clip(Δ) and the weight, by the SecAgg quantizer: FedAvg.
    Weighted,
    /// The distributed discrete Gaussian: clip(Δ) to an L2 norm, rounded to
    /// integers at its granularity, plus each node's noise share; weight 1.
    DistributedNoise(DistributedDiscreteGaussian),
}

impl Encoding {
    /// The encoding `federation`'s configuration asks for: the distributed
    /// discrete Gaussian under `[privacy]`, else FedAvg's weighted changes.
    fn of(federation: &Federation) -> Self {
        let config = &federation.config;
        match &config.privacy {
            Some(privacy) => Encoding::DistributedNoise(dp_mechanism::distributed(
                privacy,
                config.min_results(),
                federation.model.num_parameters(),
            )),
            None => Encoding::Weighted,
        }
    }
}

/// Refuse a round whose noisy integer sum could wrap modulo 2^bits with more
/// than this probability (it would cost accuracy, not privacy).
const MAX_WRAPAROUND_PROBABILITY: f64 = 1e-9;

/// Runs the six stages for the round's sampled nodes, the first with the
/// fit's `task` until `deadline`, and returns the sum, or why the round
/// cannot produce one (the caller records it as failed). No unmask request
/// goes out (so no sum exists) unless the survivors are at least
/// `rounds.min_results` and, under DP, the round's `charge` is stored.
pub(crate) async fn fit(
    federation: &Federation,
    live: &LiveRound,
    plan: &RoundPlan,
    task: v1::FitTask,
    deadline: SystemTime,
    charge: Option<&ReleaseCharge>,
) -> Result<SecureFit, String> {
    let setting_up = Instant::now();
    let setup = RoundSetup::new(federation, plan)?;
    live.record(StagePart::since("secagg setup", setting_up));
    let driver = SecureFitDriver {
        live,
        nodes: &federation.nodes,
        round: plan.round,
        stage_deadline: Duration::from_secs_f64(federation.config.secagg_stage_deadline_secs()),
        state: setup.state,
    };
    let certificates = driver.advertise_keys(task, setup.wire, deadline).await?;
    driver.graph_seed(&certificates).await?;
    let shared = driver.share_keys(&certificates).await?;
    let masked = driver.masked_input(&shared).await?;
    enough_survivors(federation.config.min_results(), masked.len())?;
    let signed = driver.consistency_check(&masked).await?;
    if let Some(charge) = charge {
        charge.persist(&federation.store).await.map_err(|e| {
            format!("the round's privacy charge could not be stored before unmasking: {e}")
        })?;
    }
    driver.unmask(&signed).await?;
    let summing = Instant::now();
    let fit = driver.finish(&setup.decoding);
    live.record(StagePart::since("secagg unmask sum", summing));
    fit
}

/// Unmasking releases the survivors' sum: refused when they are fewer than
/// the round needs (under distributed DP the noise was sized for
/// `min_results` shares, so fewer would release a sum with less noise than
/// accounted).
fn enough_survivors(needed: usize, survivors: usize) -> Result<(), String> {
    if survivors < needed {
        return Err(format!(
            "only {survivors} nodes sent a masked input and the round needs {needed}; no unmask request was sent, so no sum was released"
        ));
    }
    Ok(())
}

/// How the aggregate sum reads back into a [`SecureSum`].
struct Decoding {
    encoding: Encoding,
    quantizer: Quantizer,
    bits: u32,
}

/// Everything fixed before the first stage opens.
struct RoundSetup {
    /// The aggregator and who is who.
    state: Arc<Mutex<SecAggRound>>,
    /// The setup every participant gets with its fit task.
    wire: v1::SecAggSetup,
    decoding: Decoding,
}

impl RoundSetup {
    fn new(federation: &Federation, plan: &RoundPlan) -> Result<Self, String> {
        let Some(secagg) = &federation.config.secure_aggregation else {
            return Err("secure aggregation is not configured".into());
        };
        let vector_len = federation.model.num_parameters();
        let n = plan.sampled.len();
        let config = secagg.for_round(n).map_err(reason)?;
        if secagg.threat_model.is_some() {
            tracing::info!(
                round = plan.round,
                participants = n,
                neighbours = config.neighbours,
                threshold = config.threshold,
                "secure aggregation: k and t derived from the threat model"
            );
        }
        let quantizer = Quantizer::new(&config, n, vector_len).map_err(reason)?;
        let encoding = Encoding::of(federation);
        let distributed_noise = noise_of(encoding, &config, n, vector_len)?;
        let protocol_round = protocol_round(plan.round, plan.attempt);
        let mut names: Vec<String> = plan.sampled.clone();
        names.sort();
        let ids: BTreeMap<String, NodeId> = names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), NodeId(i as u32)))
            .collect();
        let node_ids: Vec<NodeId> = ids.values().copied().collect();
        let aggregator =
            Aggregator::new(&config, protocol_round, &node_ids, vector_len).map_err(reason)?;
        let wire = v1::SecAggSetup {
            secagg_round: protocol_round.0,
            participants: names,
            neighbours: config.neighbours as u32,
            threshold: config.threshold as u32,
            clip_range: config.clip_range,
            bits: config.bits,
            weight_cap: secagg.weight_cap,
            distributed_noise,
        };
        Ok(Self {
            state: Arc::new(Mutex::new(SecAggRound { aggregator, ids })),
            wire,
            decoding: Decoding {
                encoding,
                quantizer,
                bits: config.bits,
            },
        })
    }
}

/// The nodes' noise parameters under the distributed discrete Gaussian, once
/// the sum of `n` nodes is known not to wrap modulo 2^bits.
fn noise_of(
    encoding: Encoding,
    config: &SecAggConfig,
    n: usize,
    vector_len: usize,
) -> Result<Option<v1::DistributedNoise>, String> {
    let Encoding::DistributedNoise(mechanism) = encoding else {
        return Ok(None);
    };
    // No random rotation: size for the worst case, a node's whole norm in one
    // coordinate (flatness d).
    let wrap = DistributedDiscreteGaussian {
        clients: n as u64,
        ..mechanism
    }
    .wraparound_probability(config.bits, vector_len as f64);
    if wrap > MAX_WRAPAROUND_PROBABILITY {
        return Err(format!(
            "the noisy sum of {n} nodes could wrap modulo 2^{} (probability {wrap:.2e}); raise secure_aggregation.bits",
            config.bits
        ));
    }
    Ok(Some(v1::DistributedNoise {
        clip_norm: mechanism.clip_norm,
        granularity: mechanism.granularity,
        local_stddev: mechanism.local_stddev,
        rounding_beta: mechanism.rounding_beta,
    }))
}

/// The coordinator's side of one attempt's secure aggregation: one method
/// per step, in order.
struct SecureFitDriver<'a> {
    live: &'a LiveRound,
    /// Where a node that withholds its graph nonce is left out of the
    /// round's later attempts.
    nodes: &'a LiveNodes,
    round: u64,
    /// How long every stage after the first stays open.
    stage_deadline: Duration,
    /// The aggregator and who is who; shared with each open stage.
    state: Arc<Mutex<SecAggRound>>,
}

impl SecureFitDriver<'_> {
    fn state(&self) -> MutexGuard<'_, SecAggRound> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs one step's stage with `tasks`, built since `building` (timed as
    /// the step's `tasks`); returns who answered, with the certificate kept
    /// for relaying (advertisements only).
    async fn run_step(
        &self,
        step: SecAggStep,
        tasks: BTreeMap<String, Stage>,
        deadline: SystemTime,
        building: Instant,
    ) -> Result<Vec<(String, Option<Arc<[u8]>>)>, String> {
        self.live
            .record(StagePart::since(format!("{} tasks", step.name()), building));
        let participants: Vec<String> = tasks.keys().cloned().collect();
        let asked = participants.len();
        let mut stage = ActiveStage::new(
            self.round,
            StageTask::SecureAggregation { step, tasks },
            deadline,
            participants,
        );
        stage.secure_aggregation = Some(self.state.clone());
        let answered = self
            .live
            .run_stage(stage, |(name, result)| match result {
                StageResult::SecureAggregation { certificate, .. } => Some((name, certificate)),
                _ => None,
            })
            .await
            .ok_or_else(|| format!("the {} stage was interrupted", step.name()))?;
        tracing::debug!(
            round = self.round,
            stage = step.name(),
            answered = answered.len(),
            asked,
            "secure-aggregation stage closed"
        );
        Ok(answered)
    }

    /// Times the step's bookkeeping after its stage closed, since `tallying`.
    fn tallied(&self, step: SecAggStep, tallying: Instant) {
        self.live
            .record(StagePart::since(format!("{} tally", step.name()), tallying));
    }

    /// The deadline of a stage opened now, after the first.
    fn next_deadline(&self) -> SystemTime {
        SystemTime::now() + self.stage_deadline
    }

    /// Each listed node's task, built from the aggregator's state.
    fn relay(
        &self,
        nodes: &[NodeId],
        task: impl Fn(&Aggregator, NodeId) -> Option<Stage>,
    ) -> BTreeMap<String, Stage> {
        let state = self.state();
        let names = state.names_by_id();
        nodes
            .iter()
            .filter_map(|id| Some((names.get(id)?.clone(), task(&state.aggregator, *id)?)))
            .collect()
    }

    /// Step 1: every participant trains and advertises its keys. Returns the
    /// certificates of those that did, to relay with their adverts.
    async fn advertise_keys(
        &self,
        fit: v1::FitTask,
        setup: v1::SecAggSetup,
        deadline: SystemTime,
    ) -> Result<BTreeMap<NodeId, Arc<[u8]>>, String> {
        let building = Instant::now();
        let tasks = setup
            .participants
            .iter()
            .map(|name| {
                let task = v1::SecAggFitTask {
                    fit: Some(fit.clone()),
                    setup: Some(setup.clone()),
                };
                (name.clone(), Stage::SecaggFit(task))
            })
            .collect();
        let answered = self
            .run_step(SecAggStep::AdvertiseKeys, tasks, deadline, building)
            .await?;
        let tallying = Instant::now();
        let mut state = self.state();
        state.aggregator.close_advertise_keys().map_err(reason)?;
        let certificates = answered
            .into_iter()
            .filter_map(|(name, certificate)| Some((*state.ids.get(&name)?, certificate?)))
            .collect();
        drop(state);
        self.tallied(SecAggStep::AdvertiseKeys, tallying);
        Ok(certificates)
    }

    /// Step 2: sends every advertiser the commitment list; each reveals its
    /// nonce. One that does not aborts the attempt (the aggregator refuses to
    /// draw a graph without it).
    async fn graph_seed(&self, certificates: &BTreeMap<NodeId, Arc<[u8]>>) -> Result<(), String> {
        let building = Instant::now();
        let advertised: Vec<NodeId> = certificates.keys().copied().collect();
        let commitments = self.state().aggregator.graph_commitments().to_bytes();
        let tasks = self.relay(&advertised, |_, _| {
            Some(Stage::SecaggGraphSeed(v1::SecAggGraphSeedTask {
                commitments: commitments.clone(),
            }))
        });
        let deadline = self.next_deadline();
        self.run_step(SecAggStep::GraphSeed, tasks, deadline, building)
            .await?;
        let tallying = Instant::now();
        let closed = {
            let mut state = self.state();
            let closed = state.aggregator.close_graph_seed();
            if closed.is_err() {
                let names = state.names_by_id();
                for id in state.aggregator.unrevealed() {
                    if let Some(name) = names.get(&id) {
                        self.nodes.withheld_graph_nonce(name, self.round);
                    }
                }
            }
            closed
        };
        closed.map_err(reason)?;
        self.tallied(SecAggStep::GraphSeed, tallying);
        Ok(())
    }

    /// Step 3: relays every nonce and each node's neighbours' adverts (with
    /// their certificates); returns who sent its sealed shares.
    async fn share_keys(
        &self,
        certificates: &BTreeMap<NodeId, Arc<[u8]>>,
    ) -> Result<Vec<NodeId>, String> {
        let building = Instant::now();
        let advertised: Vec<NodeId> = certificates.keys().copied().collect();
        let graph_reveals = self.state().aggregator.graph_reveals().to_bytes();
        let tasks = self.relay(&advertised, |aggregator, id| {
            let neighbours = aggregator
                .advertisements_for(id)
                .into_iter()
                .map(|advert| v1::PeerAdvertisement {
                    certificate_der: certificates
                        .get(&advert.node)
                        .map(|c| c.to_vec())
                        .unwrap_or_default(),
                    advertisement: advert.to_bytes(),
                })
                .collect();
            Some(Stage::SecaggShareKeys(v1::SecAggShareKeysTask {
                neighbours,
                graph_reveals: graph_reveals.clone(),
            }))
        });
        let deadline = self.next_deadline();
        let answered = self
            .run_step(SecAggStep::ShareKeys, tasks, deadline, building)
            .await?;
        let tallying = Instant::now();
        let mut state = self.state();
        state.aggregator.close_share_keys().map_err(reason)?;
        let ids = state.ids_of(answered.iter().map(|(name, _)| name));
        drop(state);
        self.tallied(SecAggStep::ShareKeys, tallying);
        Ok(ids)
    }

    /// Step 4: relays the sealed shares; the masked inputs go into the running
    /// sum as they arrive. Returns who sent one.
    async fn masked_input(&self, shared: &[NodeId]) -> Result<Vec<NodeId>, String> {
        let building = Instant::now();
        let tasks = self.relay(shared, |aggregator, id| {
            let encrypted_shares = aggregator
                .shares_for(id)
                .iter()
                .map(|share| share.to_bytes())
                .collect();
            Some(Stage::SecaggMaskedInput(v1::SecAggMaskedInputTask {
                encrypted_shares,
            }))
        });
        let deadline = self.next_deadline();
        let answered = self
            .run_step(SecAggStep::MaskedInput, tasks, deadline, building)
            .await?;
        let tallying = Instant::now();
        let mut state = self.state();
        state.aggregator.close_masked_input().map_err(reason)?;
        let ids = state.ids_of(answered.iter().map(|(name, _)| name));
        drop(state);
        self.tallied(SecAggStep::MaskedInput, tallying);
        Ok(ids)
    }

    /// Step 5: sends each survivor the survivor set to sign. Returns who signed.
    async fn consistency_check(&self, masked: &[NodeId]) -> Result<Vec<NodeId>, String> {
        let building = Instant::now();
        let tasks = self.relay(masked, |aggregator, id| {
            aggregator.survivor_list_for(id).map(|list| {
                Stage::SecaggConsistencyCheck(v1::SecAggConsistencyCheckTask {
                    survivor_list: list.to_bytes(),
                })
            })
        });
        let deadline = self.next_deadline();
        let answered = self
            .run_step(SecAggStep::ConsistencyCheck, tasks, deadline, building)
            .await?;
        let tallying = Instant::now();
        let mut state = self.state();
        state.aggregator.close_consistency_check().map_err(reason)?;
        let ids = state.ids_of(answered.iter().map(|(name, _)| name));
        drop(state);
        self.tallied(SecAggStep::ConsistencyCheck, tallying);
        Ok(ids)
    }

    /// Step 6: asks the signers for the shares that remove the masks, with
    /// their neighbours' signatures.
    async fn unmask(&self, signed: &[NodeId]) -> Result<(), String> {
        let building = Instant::now();
        let tasks = self.relay(signed, |aggregator, id| {
            aggregator.unmask_request_for(id).map(|request| {
                Stage::SecaggUnmask(v1::SecAggUnmaskTask {
                    request: request.to_bytes(),
                })
            })
        });
        let deadline = self.next_deadline();
        self.run_step(SecAggStep::Unmasking, tasks, deadline, building)
            .await?;
        Ok(())
    }

    /// The unmasked sum, decoded, with who is in it and who dropped where.
    fn finish(self, decoding: &Decoding) -> Result<SecureFit, String> {
        let state = Arc::try_unwrap(self.state)
            .map_err(|_| "the aggregator is still shared with an open stage".to_owned())?
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let names = state.names_by_id();
        let name = |id: &NodeId| names.get(id).cloned().unwrap_or_default();
        let dropouts = state.aggregator.dropouts();
        let graph_seed = state.aggregator.graph_seed().map(hex::encode);
        let sum = state.aggregator.finish().map_err(reason)?;
        let mut dropped = Vec::new();
        for (ids, step) in [
            (&dropouts.before_advertising, SecAggStep::AdvertiseKeys),
            (&dropouts.before_sharing, SecAggStep::ShareKeys),
            (&dropouts.before_masked_input, SecAggStep::MaskedInput),
            (&dropouts.before_signing, SecAggStep::ConsistencyCheck),
            (&dropouts.before_unmasking, SecAggStep::Unmasking),
        ] {
            dropped.extend(ids.iter().map(|id| (name(id), step)));
        }
        Ok(SecureFit {
            sum: decode(decoding, &sum)?,
            contributors: sum.contributors().iter().map(name).collect(),
            dropped,
            graph_seed,
        })
    }
}

/// The aggregate sum as the strategy reads it.
fn decode(decoding: &Decoding, sum: &AggregateSum) -> Result<SecureSum, String> {
    Ok(match decoding.encoding {
        Encoding::Weighted => {
            let read = decoding
                .quantizer
                .dequantize_sum(sum.values(), sum.contributors().len())
                .map_err(reason)?;
            SecureSum {
                sum: Array1::from(read.weighted_sum),
                total_weight: read.total_weight,
            }
        }
        Encoding::DistributedNoise(mechanism) => {
            let mut signed = to_signed(sum.values(), decoding.bits);
            let count = signed.pop().unwrap_or(0);
            SecureSum {
                sum: signed
                    .into_iter()
                    .map(|v| v as f64 * mechanism.granularity)
                    .collect(),
                total_weight: count as f64,
            }
        }
    })
}

fn reason(error: SecAggError) -> String {
    error.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_rounds_differ_across_attempts_and_rounds() {
        assert_ne!(protocol_round(3, 1), protocol_round(3, 2));
        assert_ne!(protocol_round(3, 1), protocol_round(4, 1));
        assert!(protocol_round(3, 2) < protocol_round(4, 1));
    }
}
