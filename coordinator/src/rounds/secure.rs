//! A round's fit under secure aggregation: the four stages of SecAgg+ (Bell et al.,
//! CCS 2020, over Bonawitz et al., CCS 2017; see `cohort_crypto::secagg`) run as
//! four stages of the round, each a task per participant with its own deadline.
//!
//! ```text
//! advertise-keys  node trains, then sends its two public keys (signed by its TLS key)
//! share-keys      node gets its neighbours' adverts + certificates, sends sealed shares
//! masked-input    node gets the shares sealed for it, sends weight·Δ and weight, masked
//! unmasking       node gets whose shares to reveal, reveals them
//! ```
//!
//! The coordinator only relays and sums: the [`Aggregator`] adds each masked input
//! to a running sum as it arrives and keeps nothing else of it, and what comes out
//! is the weighted mean of the survivors' model changes. A node's protocol id is
//! its index among the round's participants (sorted); a message is accepted only
//! if its sender id is the id of the TLS peer that sent it. Each attempt at a round
//! has its own protocol round id, so no message replays into a retry.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use cohort_crypto::secagg::{
    AdvertiseKeys, Aggregator, MaskedInput, NodeId, Quantizer, RoundId, SecAggError, ShareKeys,
    UnmaskResponse, to_signed,
};
use cohort_privacy::DistributedDiscreteGaussian;
use cohort_proto::v1::{self, task::Stage};
use ndarray::Array1;

use super::stage::{ActiveStage, StageKind, StageResult, SubmissionError};
use crate::config::SecureAggregationConfig;
use crate::federation::Federation;
use crate::strategy::SecureSum;

/// The four stages, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecAggStep {
    AdvertiseKeys,
    ShareKeys,
    MaskedInput,
    Unmasking,
}

impl SecAggStep {
    /// The stage's name in tasks, errors and logs.
    pub fn name(self) -> &'static str {
        match self {
            SecAggStep::AdvertiseKeys => "secagg-advertise-keys",
            SecAggStep::ShareKeys => "secagg-share-keys",
            SecAggStep::MaskedInput => "secagg-masked-input",
            SecAggStep::Unmasking => "secagg-unmasking",
        }
    }
}

/// A decoded secure-aggregation message from a node.
#[derive(Debug, Clone)]
pub enum SecAggMessage {
    AdvertiseKeys(AdvertiseKeys),
    ShareKeys(ShareKeys),
    MaskedInput(MaskedInput),
    UnmaskResponse(UnmaskResponse),
}

impl SecAggMessage {
    pub fn step(&self) -> SecAggStep {
        match self {
            SecAggMessage::AdvertiseKeys(_) => SecAggStep::AdvertiseKeys,
            SecAggMessage::ShareKeys(_) => SecAggStep::ShareKeys,
            SecAggMessage::MaskedInput(_) => SecAggStep::MaskedInput,
            SecAggMessage::UnmaskResponse(_) => SecAggStep::Unmasking,
        }
    }

    fn sender(&self) -> NodeId {
        match self {
            SecAggMessage::AdvertiseKeys(m) => m.node,
            SecAggMessage::ShareKeys(m) => m.node,
            SecAggMessage::MaskedInput(m) => m.node,
            SecAggMessage::UnmaskResponse(m) => m.node,
        }
    }
}

/// The coordinator's state of one secure-aggregation round: the aggregator and
/// who is who.
#[derive(Debug, Clone)]
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
            SecAggMessage::ShareKeys(m) => self.aggregator.receive_shares(m),
            SecAggMessage::MaskedInput(m) => self.aggregator.receive_masked_input(m),
            SecAggMessage::UnmaskResponse(m) => self.aggregator.receive_unmask_response(m),
        };
        outcome.map_err(|e| SubmissionError::Rejected(e.to_string()))
    }
}

/// What a secure fit yields: the sum of the survivors' encoded changes.
#[derive(Debug, Clone)]
pub struct SecureFit {
    pub sum: SecureSum,
    /// The nodes whose changes are in the mean.
    pub contributors: Vec<String>,
    /// Sampled nodes that are not, with the stage they dropped at.
    pub dropped: Vec<(String, &'static str)>,
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

/// Refuse a round whose noisy integer sum could wrap modulo 2^bits with more
/// than this probability (it would cost accuracy, not privacy).
const MAX_WRAPAROUND_PROBABILITY: f64 = 1e-9;

/// Runs the four stages for `sampled` and returns the sum, or why the round
/// cannot produce one (the caller records it as failed).
#[allow(clippy::too_many_arguments)]
pub async fn fit(
    federation: &Federation,
    secagg: &SecureAggregationConfig,
    encoding: Encoding,
    fit: v1::FitTask,
    sampled: &[String],
    round: u64,
    attempt: u32,
    fit_deadline: SystemTime,
) -> Result<SecureFit, String> {
    let vector_len = federation.layout.num_parameters();
    let n = sampled.len();
    let config = secagg.for_round(n);
    let quantizer = Quantizer::new(&config, n, vector_len).map_err(|e| e.to_string())?;
    let distributed_noise = match encoding {
        Encoding::Weighted => None,
        Encoding::DistributedNoise(mechanism) => {
            // No random rotation: size for the worst case, a node's whole norm
            // in one coordinate (flatness d).
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
            Some(v1::DistributedNoise {
                clip_norm: mechanism.clip_norm,
                granularity: mechanism.granularity,
                local_stddev: mechanism.local_stddev,
                rounding_beta: mechanism.rounding_beta,
            })
        }
    };
    let protocol_round = protocol_round(round, attempt);
    let mut round_seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut round_seed)
        .map_err(|_| "no system randomness for the round seed".to_owned())?;
    let mut names: Vec<String> = sampled.to_vec();
    names.sort();
    let ids: BTreeMap<String, NodeId> = names
        .iter()
        .enumerate()
        .map(|(i, name)| (name.clone(), NodeId(i as u32)))
        .collect();
    let node_ids: Vec<NodeId> = ids.values().copied().collect();
    let aggregator = Aggregator::new(&config, protocol_round, &node_ids, &round_seed, vector_len)
        .map_err(|e| e.to_string())?;
    let setup = v1::SecAggSetup {
        secagg_round: protocol_round.0,
        round_seed: round_seed.to_vec(),
        participants: names.clone(),
        neighbours: config.neighbours as u32,
        threshold: config.threshold as u32,
        clip_range: config.clip_range,
        bits: config.bits,
        weight_cap: secagg.weight_cap,
        distributed_noise,
    };
    let mut state = Box::new(SecAggRound { aggregator, ids });
    let stage_deadline = || {
        SystemTime::now() + Duration::from_secs_f64(federation.config.secagg_stage_deadline_secs())
    };

    // 1. Train and advertise keys.
    let tasks = names
        .iter()
        .map(|name| {
            let task = v1::SecAggFitTask {
                fit: Some(fit.clone()),
                setup: Some(setup.clone()),
            };
            (name.clone(), Stage::SecaggFit(task))
        })
        .collect();
    let (results, returned) = run_step(
        federation,
        round,
        SecAggStep::AdvertiseKeys,
        tasks,
        fit_deadline,
        state,
    )
    .await?;
    state = returned;
    state.aggregator.close_advertise_keys().map_err(reason)?;
    let certificates: BTreeMap<NodeId, std::sync::Arc<[u8]>> = results
        .into_iter()
        .filter_map(|(name, result)| match result {
            StageResult::SecureAggregation {
                certificate: Some(certificate),
                ..
            } => state.ids.get(&name).map(|id| (*id, certificate)),
            _ => None,
        })
        .collect();

    // 2. Relay each node's neighbours' adverts (with their certificates).
    let tasks = relay(&state, certificates.keys().copied(), |aggregator, id| {
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
        }))
    });
    let (results, returned) = run_step(
        federation,
        round,
        SecAggStep::ShareKeys,
        tasks,
        stage_deadline(),
        state,
    )
    .await?;
    state = returned;
    state.aggregator.close_share_keys().map_err(reason)?;

    // 3. Relay the sealed shares; collect masked inputs into the running sum.
    let shared = ids_of(&state, results.keys());
    let tasks = relay(&state, shared, |aggregator, id| {
        let encrypted_shares = aggregator
            .shares_for(id)
            .iter()
            .map(|share| share.to_bytes())
            .collect();
        Some(Stage::SecaggMaskedInput(v1::SecAggMaskedInputTask {
            encrypted_shares,
        }))
    });
    let (results, returned) = run_step(
        federation,
        round,
        SecAggStep::MaskedInput,
        tasks,
        stage_deadline(),
        state,
    )
    .await?;
    state = returned;
    state.aggregator.close_masked_input().map_err(reason)?;

    // 4. Ask the survivors for the shares that remove the masks.
    let masked = ids_of(&state, results.keys());
    let tasks = relay(&state, masked, |aggregator, id| {
        aggregator.unmask_request_for(id).map(|request| {
            Stage::SecaggUnmask(v1::SecAggUnmaskTask {
                request: request.to_bytes(),
            })
        })
    });
    let (_, returned) = run_step(
        federation,
        round,
        SecAggStep::Unmasking,
        tasks,
        stage_deadline(),
        state,
    )
    .await?;
    state = returned;

    let names_by_id: BTreeMap<NodeId, String> = state
        .ids
        .iter()
        .map(|(name, id)| (*id, name.clone()))
        .collect();
    let dropouts = state.aggregator.dropouts();
    let sum = state.aggregator.finish().map_err(reason)?;
    let secure_sum = match encoding {
        Encoding::Weighted => {
            let read = quantizer
                .dequantize_sum(sum.values(), sum.contributors().len())
                .map_err(reason)?;
            SecureSum {
                sum: Array1::from(read.weighted_sum),
                total_weight: read.total_weight,
            }
        }
        Encoding::DistributedNoise(mechanism) => {
            let mut signed = to_signed(sum.values(), config.bits);
            let count = signed.pop().unwrap_or(0);
            SecureSum {
                sum: signed
                    .into_iter()
                    .map(|v| v as f64 * mechanism.granularity)
                    .collect(),
                total_weight: count as f64,
            }
        }
    };
    let name = |id: &NodeId| names_by_id.get(id).cloned().unwrap_or_default();
    let mut dropped = Vec::new();
    for (ids, stage) in [
        (&dropouts.before_advertising, SecAggStep::AdvertiseKeys),
        (&dropouts.before_sharing, SecAggStep::ShareKeys),
        (&dropouts.before_masked_input, SecAggStep::MaskedInput),
        (&dropouts.before_unmasking, SecAggStep::Unmasking),
    ] {
        dropped.extend(ids.iter().map(|id| (name(id), stage.name())));
    }
    Ok(SecureFit {
        sum: secure_sum,
        contributors: sum.contributors().iter().map(name).collect(),
        dropped,
    })
}

fn reason(error: SecAggError) -> String {
    error.to_string()
}

fn ids_of<'a>(state: &SecAggRound, names: impl Iterator<Item = &'a String>) -> Vec<NodeId> {
    names
        .filter_map(|name| state.ids.get(name).copied())
        .collect()
}

/// Each listed node's task, built from the aggregator's state.
fn relay(
    state: &SecAggRound,
    nodes: impl IntoIterator<Item = NodeId>,
    task: impl Fn(&Aggregator, NodeId) -> Option<Stage>,
) -> BTreeMap<String, Stage> {
    let names: BTreeMap<NodeId, &String> = state.ids.iter().map(|(n, id)| (*id, n)).collect();
    nodes
        .into_iter()
        .filter_map(|id| Some(((*names.get(&id)?).clone(), task(&state.aggregator, id)?)))
        .collect()
}

/// Opens one stage with `tasks`, waits for its answers or its deadline, and
/// returns the answers and the round state.
async fn run_step(
    federation: &Federation,
    round: u64,
    step: SecAggStep,
    tasks: BTreeMap<String, Stage>,
    deadline: SystemTime,
    state: Box<SecAggRound>,
) -> Result<(BTreeMap<String, StageResult>, Box<SecAggRound>), String> {
    let participants: Vec<String> = tasks.keys().cloned().collect();
    let mut stage = ActiveStage::new(
        round,
        StageKind::SecureAggregation { step, tasks },
        deadline,
        participants,
    );
    stage.secure_aggregation = Some(state);
    federation.open_stage(stage);
    federation.wait_for_results(deadline).await;
    let mut stage = federation
        .close_stage()
        .ok_or_else(|| format!("the {} stage vanished", step.name()))?;
    let state = stage
        .secure_aggregation
        .take()
        .ok_or_else(|| format!("the {} stage lost its aggregator", step.name()))?;
    tracing::debug!(
        round,
        stage = step.name(),
        answered = stage.results.len(),
        asked = stage.participants.len(),
        "secure-aggregation stage closed"
    );
    Ok((stage.results, state))
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
