//! Runs whole rounds in memory: every node a [`Participant`], the coordinator an
//! [`Aggregator`], messages passed by hand, dropouts by plan.

use std::collections::{BTreeMap, BTreeSet};

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};

use crate::secagg::graph::NeighbourGraph;
use crate::secagg::masking::modulus_mask;
use crate::secagg::prg::{Prg, PrgSeed};
use crate::secagg::{
    AdvertiseKeys, AggregateSum, Aggregator, Dropouts, EcdsaP256Signer, EcdsaP256Verifier,
    MaskedInput, NodeId, NodePolicy, Participant, QuantizedInput, Quantizer, RoundId, SecAggConfig,
    SecAggError, Stage,
};

/// A node policy that takes any valid round: these tests explore small rounds.
const PERMISSIVE: NodePolicy = NodePolicy {
    min_participants: 2,
    min_threshold: 1,
};

/// The nodes of a round, with their identity keys.
pub struct Federation {
    pub config: SecAggConfig,
    pub round: RoundId,
    pub ids: Vec<NodeId>,
    pub vector_len: usize,
    pub signers: BTreeMap<NodeId, EcdsaP256Signer>,
    pub verifier: EcdsaP256Verifier,
    /// The setup context each node is told (`Participant::bind_context`);
    /// none bound when empty.
    pub contexts: BTreeMap<NodeId, Vec<u8>>,
    /// When set, every node's graph nonce is fixed by its id, so every
    /// attempt with the same round id draws the same graph.
    pub fixed_graph_nonces: bool,
    identity_keys: BTreeMap<NodeId, Vec<u8>>,
}

impl Federation {
    /// `n` nodes with scattered ids (not 0..n) and fresh ECDSA P-256 identity keys.
    pub fn new(n: usize, vector_len: usize, config: SecAggConfig, round: RoundId) -> Self {
        let rng = SystemRandom::new();
        let ids: Vec<NodeId> = (0..n as u32).map(|i| NodeId(i * 7 + 3)).collect();
        let identity_keys = ids
            .iter()
            .map(|&id| {
                let pkcs8 =
                    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
                (id, pkcs8.as_ref().to_vec())
            })
            .collect();
        Self::with_identities(config, round, ids, vector_len, identity_keys)
    }

    fn with_identities(
        config: SecAggConfig,
        round: RoundId,
        ids: Vec<NodeId>,
        vector_len: usize,
        identity_keys: BTreeMap<NodeId, Vec<u8>>,
    ) -> Self {
        let mut signers = BTreeMap::new();
        let mut verifier = EcdsaP256Verifier::new();
        for (&id, pkcs8) in &identity_keys {
            let signer = EcdsaP256Signer::from_pkcs8(pkcs8).unwrap();
            verifier.insert_public_key(id, signer.public_key());
            signers.insert(id, signer);
        }
        Self {
            config,
            round,
            ids,
            vector_len,
            signers,
            verifier,
            contexts: BTreeMap::new(),
            fixed_graph_nonces: false,
            identity_keys,
        }
    }

    /// The same nodes, with the same identity keys (and the same choice of
    /// fixed graph nonces), in another round.
    pub fn in_round(&self, round: RoundId) -> Self {
        let mut next = Self::with_identities(
            self.config,
            round,
            self.ids.clone(),
            self.vector_len,
            self.identity_keys.clone(),
        );
        next.fixed_graph_nonces = self.fixed_graph_nonces;
        next
    }

    pub fn participants(&self) -> BTreeMap<NodeId, Participant> {
        self.ids
            .iter()
            .map(|&id| {
                let p = Participant::new(
                    &self.config,
                    &PERMISSIVE,
                    self.round,
                    id,
                    &self.ids,
                    self.vector_len,
                )
                .unwrap();
                let mut p = p;
                if self.fixed_graph_nonces {
                    let mut nonce = [0u8; 32];
                    nonce[..4].copy_from_slice(&id.0.to_be_bytes());
                    p.fix_graph_nonce(nonce);
                }
                if let Some(context) = self.contexts.get(&id) {
                    p.bind_context(context).unwrap();
                }
                (id, p)
            })
            .collect()
    }

    pub fn aggregator(&self) -> Aggregator {
        Aggregator::new(&self.config, self.round, &self.ids, self.vector_len).unwrap()
    }

    pub fn quantizer(&self) -> Quantizer {
        Quantizer::new(&self.config, self.ids.len(), self.vector_len).unwrap()
    }

    /// A quantized input per node from the given updates and weights, with
    /// reproducible rounding.
    pub fn quantize(
        &self,
        updates: &BTreeMap<NodeId, (Vec<f32>, f64)>,
    ) -> BTreeMap<NodeId, QuantizedInput> {
        let quantizer = self.quantizer();
        let mut rounding = Prg::new(&PrgSeed::from_bytes([0x5e; 32]));
        updates
            .iter()
            .map(|(&id, (update, weight))| {
                (
                    id,
                    quantizer
                        .quantize_weighted_with(update, *weight, &mut rounding)
                        .unwrap(),
                )
            })
            .collect()
    }

    /// Small deterministic inputs (no rounding), for tests that only count.
    pub fn plain_inputs(&self) -> BTreeMap<NodeId, QuantizedInput> {
        let updates = self
            .ids
            .iter()
            .map(|&id| {
                let update = (0..self.vector_len)
                    .map(|i| ((id.0 as usize * 31 + i * 17) % 200) as f32 / 100.0 - 1.0)
                    .collect();
                (id, (update, 1.0))
            })
            .collect();
        self.quantize(&updates)
    }
}

/// A round driven to the start of a chosen stage, keeping every message.
pub struct Staged {
    pub federation: Federation,
    pub nodes: BTreeMap<NodeId, Participant>,
    pub aggregator: Aggregator,
    pub inputs: BTreeMap<NodeId, QuantizedInput>,
    pub adverts: BTreeMap<NodeId, AdvertiseKeys>,
    pub masked: BTreeMap<NodeId, MaskedInput>,
}

/// Runs every stage before `until` honestly, with every node taking part.
pub fn staged(federation: Federation, until: Stage) -> Staged {
    let mut nodes = federation.participants();
    let mut aggregator = federation.aggregator();
    let inputs = federation.plain_inputs();
    let mut adverts = BTreeMap::new();
    let mut masked = BTreeMap::new();
    let staged = |stage: Stage| stage < until;
    if staged(Stage::AdvertiseKeys) {
        for (&id, node) in nodes.iter_mut() {
            let advert = node.advertise(&federation.signers[&id]).unwrap();
            adverts.insert(id, advert.clone());
            aggregator.receive_advertisement(advert).unwrap();
        }
        aggregator.close_advertise_keys().unwrap();
    }
    if staged(Stage::GraphSeed) {
        let commitments = aggregator.graph_commitments();
        for node in nodes.values_mut() {
            let reveal = node.reveal_graph_nonce(&commitments).unwrap();
            aggregator.receive_graph_reveal(reveal).unwrap();
        }
        aggregator.close_graph_seed().unwrap();
    }
    if staged(Stage::ShareKeys) {
        let reveals = aggregator.graph_reveals();
        for (&id, node) in nodes.iter_mut() {
            let message = node
                .share_keys(
                    &reveals,
                    &aggregator.advertisements_for(id),
                    &federation.verifier,
                )
                .unwrap();
            aggregator.receive_shares(message).unwrap();
        }
        aggregator.close_share_keys().unwrap();
    }
    if staged(Stage::MaskedInput) {
        for (&id, node) in nodes.iter_mut() {
            let message = node
                .masked_input(
                    &aggregator.shares_for(id),
                    &inputs[&id],
                    &federation.signers[&id],
                )
                .unwrap();
            masked.insert(id, message.clone());
            aggregator.receive_masked_input(message).unwrap();
        }
        aggregator.close_masked_input().unwrap();
    }
    if staged(Stage::ConsistencyCheck) {
        for (&id, node) in nodes.iter_mut() {
            let list = aggregator.survivor_list_for(id).unwrap();
            let signature = node
                .consistency_check(&list, &federation.signers[&id])
                .unwrap();
            aggregator.receive_survivor_signature(signature).unwrap();
        }
        aggregator.close_consistency_check().unwrap();
    }
    Staged {
        federation,
        nodes,
        aggregator,
        inputs,
        adverts,
        masked,
    }
}

/// Who drops out before which step.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub before_advertising: BTreeSet<NodeId>,
    pub before_sharing: BTreeSet<NodeId>,
    pub before_masked_input: BTreeSet<NodeId>,
    pub before_signing: BTreeSet<NodeId>,
    pub before_unmasking: BTreeSet<NodeId>,
}

/// What a round came to.
#[derive(Debug)]
pub struct Outcome {
    pub result: Result<AggregateSum, SecAggError>,
    /// Nodes whose own step failed (they drop out, as a real node would).
    pub failed: BTreeMap<NodeId, SecAggError>,
    /// Every unmask request sent.
    pub requests: Vec<crate::secagg::UnmaskRequest>,
    /// The coordinator's view of who dropped when, just before unmasking ended.
    pub dropouts: Option<Dropouts>,
    /// The graph the nodes' nonces drew, once drawn.
    pub graph: Option<NeighbourGraph>,
}

/// Runs one round to the end (or to its abort).
pub fn run(
    federation: &Federation,
    plan: &Plan,
    inputs: &BTreeMap<NodeId, QuantizedInput>,
) -> Outcome {
    let mut nodes = federation.participants();
    let mut aggregator = federation.aggregator();
    let mut failed = BTreeMap::new();
    let mut requests = Vec::new();
    let mut dropouts = None;
    let mut graph = None;
    let result = (|| {
        for (&id, node) in nodes.iter_mut() {
            if !plan.before_advertising.contains(&id) {
                let message = node.advertise(&federation.signers[&id])?;
                aggregator.receive_advertisement(message)?;
            }
        }
        aggregator.close_advertise_keys()?;

        // Every advertiser reveals its graph nonce (one that did not would
        // abort the attempt); dropping "before sharing" means after it.
        let commitments = aggregator.graph_commitments();
        for (&id, node) in nodes.iter_mut() {
            if !plan.before_advertising.contains(&id) {
                aggregator.receive_graph_reveal(node.reveal_graph_nonce(&commitments)?)?;
            }
        }
        aggregator.close_graph_seed()?;
        graph = Some(aggregator.graph().clone());
        let reveals = aggregator.graph_reveals();

        let mut active: BTreeSet<NodeId> = federation
            .ids
            .iter()
            .copied()
            .filter(|id| !plan.before_advertising.contains(id) && !plan.before_sharing.contains(id))
            .collect();
        for &id in &active.clone() {
            let adverts = aggregator.advertisements_for(id);
            match nodes
                .get_mut(&id)
                .unwrap()
                .share_keys(&reveals, &adverts, &federation.verifier)
            {
                Ok(message) => aggregator.receive_shares(message)?,
                Err(e) => {
                    failed.insert(id, e);
                    active.remove(&id);
                }
            }
        }
        aggregator.close_share_keys()?;

        active.retain(|id| !plan.before_masked_input.contains(id));
        for &id in &active.clone() {
            let shares = aggregator.shares_for(id);
            match nodes.get_mut(&id).unwrap().masked_input(
                &shares,
                &inputs[&id],
                &federation.signers[&id],
            ) {
                Ok(message) => aggregator.receive_masked_input(message)?,
                Err(e) => {
                    failed.insert(id, e);
                    active.remove(&id);
                }
            }
        }
        aggregator.close_masked_input()?;

        active.retain(|id| !plan.before_signing.contains(id));
        for &id in &active.clone() {
            let list = aggregator.survivor_list_for(id).unwrap();
            match nodes
                .get_mut(&id)
                .unwrap()
                .consistency_check(&list, &federation.signers[&id])
            {
                Ok(message) => aggregator.receive_survivor_signature(message)?,
                Err(e) => {
                    failed.insert(id, e);
                    active.remove(&id);
                }
            }
        }
        aggregator.close_consistency_check()?;

        requests = aggregator.unmask_requests().cloned().collect();
        for request in &requests {
            if plan.before_unmasking.contains(&request.node) {
                continue;
            }
            // A node that refuses (too few of its neighbours signed) does not answer.
            match nodes
                .get_mut(&request.node)
                .unwrap()
                .unmask(request, &federation.verifier)
            {
                Ok(response) => aggregator.receive_unmask_response(response)?,
                Err(e) => {
                    failed.insert(request.node, e);
                }
            }
        }
        dropouts = Some(aggregator.dropouts());
        aggregator.finish()
    })();
    Outcome {
        result,
        failed,
        requests,
        dropouts,
        graph,
    }
}

/// Σ of the contributors' inputs, mod 2^bits.
pub fn plain_sum(
    inputs: &BTreeMap<NodeId, QuantizedInput>,
    contributors: &[NodeId],
    bits: u32,
) -> Vec<u64> {
    let len = inputs.values().next().map_or(0, QuantizedInput::len);
    let mut sum = vec![0u64; len];
    for id in contributors {
        for (s, v) in sum.iter_mut().zip(inputs[id].values()) {
            *s = s.wrapping_add(*v);
        }
    }
    sum.iter().map(|s| s & modulus_mask(bits)).collect()
}

/// Picks `count` of `ids` by a fixed shuffle (different per `salt`).
pub fn pick(ids: &[NodeId], count: usize, salt: u8) -> BTreeSet<NodeId> {
    let mut prg = Prg::new(&PrgSeed::from_bytes([salt; 32]));
    let mut order = ids.to_vec();
    for i in (1..order.len()).rev() {
        let j = prg.below(i as u64 + 1).unwrap() as usize;
        order.swap(i, j);
    }
    order.into_iter().take(count).collect()
}
