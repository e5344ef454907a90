//! The node's side of secure aggregation (SecAgg+, Bell et al., CCS 2020, over
//! Bonawitz et al., CCS 2017; the protocol itself is `cohort_crypto::secagg`).
//!
//! After training, the node holds its model change Δ and a [`Participant`]; each
//! later task of the round moves the participant one stage on. What the node
//! checks itself, trusting the coordinator for nothing but delivery:
//! - the neighbour graph is drawn from the nonces every advertiser committed to
//!   before any was revealed, its own among them, never from a value the
//!   coordinator picks;
//! - every neighbour's certificate chains to the federation's CA and names the
//!   node that the round's participant list puts at that protocol id, and the
//!   neighbour's key advertisement is signed by that certificate's key;
//! - every sealed share opens (authenticated encryption bound to round, sender and
//!   recipient);
//! - it signs one survivor set (the consistency check of Bonawitz et al. 2017), and
//!   reveals shares only as that set calls for, once at least t of its neighbours
//!   signed the same set (each signature checked against the neighbour's
//!   certificate); it never reveals both secrets of one neighbour.
//!
//! What leaves the node: its public keys, shares sealed for its neighbours, its
//! quantized weight·Δ and weight under masks that only the sum removes, its
//! signature on the survivor set, and the shares the unmasking needs.

use cohort_crypto::secagg::{
    AdvertiseKeys, AttemptBudget, EcdsaP256Signer, EcdsaP256Verifier, EncryptedShare,
    GraphCommitments, GraphReveal, GraphReveals, NodeId, NodePolicy, Participant, QuantizedInput,
    Quantizer, RoundId, SecAggConfig, SecAggError, SurvivorList, SurvivorSignature, UnmaskRequest,
};
use cohort_crypto::tls::{PeerCertificateVerifier, TlsFiles};
use cohort_proto::v1;

/// What the node proves and checks identities with: its TLS key signs its key
/// advertisements; its CA vouches for its neighbours'.
#[derive(Debug)]
pub struct SecAggCredentials {
    signer: EcdsaP256Signer,
    certificates: PeerCertificateVerifier,
    /// The federation this node signs statements in.
    federation_id: String,
}

impl SecAggCredentials {
    /// Adopts the CA-signed revocation list a task carried (see
    /// [`PeerCertificateVerifier::adopt_revocations`]): neighbours it lists
    /// are refused from now on.
    pub fn adopt_revocations(
        &mut self,
        signed: &[u8],
    ) -> Result<(), cohort_crypto::pki::RevocationsRefused> {
        self.certificates.adopt_revocations(signed)
    }

    /// This node's signing key (from its TLS private key) and its CA's verifier
    /// (from the CA certificate), for statements in federation
    /// `federation_id`. Fails, with the reason, if either file cannot be read
    /// or parsed.
    pub fn load(tls: &TlsFiles, federation_id: &str) -> Result<Self, String> {
        Ok(Self {
            signer: EcdsaP256Signer::from_pem_file(&tls.private_key).map_err(|e| e.to_string())?,
            certificates: PeerCertificateVerifier::from_ca_file(&tls.ca_certificate)
                .map_err(|e| e.to_string())?,
            federation_id: federation_id.to_owned(),
        })
    }

    /// What the round's setup adds to the protocol's own digest, for this
    /// node's federation: see [`setup_context`].
    fn setup_context(&self, setup: &v1::SecAggSetup) -> Vec<u8> {
        setup_context(&self.federation_id, setup)
    }
}

/// What a round's setup adds to the protocol's own digest: the federation,
/// the participants' names (the protocol knows only their ids), the weight
/// cap and the distributed noise every node was told to add, each
/// length-prefixed after the participants' count. Neighbours told otherwise sign under another setup.
fn setup_context(federation_id: &str, setup: &v1::SecAggSetup) -> Vec<u8> {
    use prost::Message as _;
    let mut context = (setup.participants.len() as u64).to_be_bytes().to_vec();
    for text in std::iter::once(federation_id).chain(setup.participants.iter().map(String::as_str))
    {
        context.extend_from_slice(&(text.len() as u64).to_be_bytes());
        context.extend_from_slice(text.as_bytes());
    }
    context.extend_from_slice(&setup.weight_cap.to_be_bytes());
    // A presence byte: no noise and all-zero settings encode differently.
    match &setup.distributed_noise {
        None => context.push(0),
        Some(noise) => {
            context.push(1);
            context.extend_from_slice(&noise.encode_to_vec());
        }
    }
    context
}

/// The distributed discrete Gaussian's encoding (Kairouz, Liu, Steinke, ICML
/// 2021): the change clipped to L2 norm c, scaled by 1/γ and rounded to
/// integers by conditional randomized rounding, plus this node's N_ℤ(0, σ²)
/// share of the noise, then a weight of 1. Noise is drawn from the operating
/// system's CSPRNG (via the thread RNG), never from a seed.
fn noised_integers(
    noise: &v1::DistributedNoise,
    change: &[f32],
    bits: u32,
) -> Result<QuantizedInput, SecureRoundError> {
    let privacy = |e: cohort_privacy::PrivacyError| setup_error(format!("distributed noise: {e}"));
    let mechanism = cohort_privacy::DistributedDiscreteGaussian {
        clip_norm: noise.clip_norm,
        granularity: noise.granularity,
        local_stddev: noise.local_stddev,
        clients: 1,
        dimension: change.len() as u64,
        rounding_beta: noise.rounding_beta,
    };
    let mut clipped = change.to_vec();
    cohort_privacy::clip_l2(&mut clipped, noise.clip_norm).map_err(privacy)?;
    let mut rng = rand::rng();
    let mut integers = mechanism.quantize(&clipped, &mut rng).map_err(privacy)?;
    let sampler = cohort_privacy::DiscreteGaussian::new(noise.local_stddev).map_err(privacy)?;
    for value in &mut integers {
        *value += sampler.sample(&mut rng);
    }
    Ok(QuantizedInput::from_integers(&integers, 1, bits)?)
}

/// What this node itself requires of a secure-aggregation round, whatever the
/// coordinator asks: distributed DP exists so as not to trust the coordinator
/// with the noise, so the node checks the noise it is told to add too.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RoundRequirements {
    /// The fewest participants and the lowest threshold t.
    pub secagg: NodePolicy,
    /// If set, the node takes part only in distributed-DP rounds whose sum
    /// carries at least this noise multiplier z (see [`noise_multiplier`]),
    /// counting only the nodes whose noisy changes are in it.
    pub min_noise_multiplier: Option<f64>,
    /// If set, the node signs no survivor set smaller than this: the fewest
    /// nodes' changes (its own included) a sum holding its change may have.
    /// The node's own ledger ([`super::distributed_privacy`]) accounts each
    /// round as a sum of this many noisy changes.
    pub min_cohort: Option<usize>,
    /// How many attempts the node lets abort before it sent its masked input,
    /// per attempt that got it: the bound on a coordinator retrying until
    /// the neighbour graph suits it (see `cohort_crypto::secagg::attempts`).
    pub attempts: AttemptBudget,
}

impl RoundRequirements {
    /// Refuses `noise` (the round's distributed-DP settings, if any) when a
    /// sum of `contributors` noisy changes would fall below the floor.
    fn check_noise(
        &self,
        noise: Option<&v1::DistributedNoise>,
        contributors: usize,
    ) -> Result<(), SecureRoundError> {
        let Some(floor) = self.min_noise_multiplier else {
            return Ok(());
        };
        let multiplier = noise.map_or(0.0, |noise| noise_multiplier(noise, contributors));
        if multiplier.is_nan() || multiplier < floor {
            return Err(SecureRoundError::NoiseBelowFloor {
                multiplier,
                floor,
                contributors,
            });
        }
        Ok(())
    }
}

/// The noise multiplier of a distributed-DP sum of `contributors` changes,
/// each clipped to L2 norm C and carrying N_ℤ(0, σ²) noise in units of γ:
/// z = √n · σ · γ / C, the sum's noise standard deviation over one change's
/// bound. (The accountant adds the rounding's slack to the sensitivity; this
/// is the figure a node compares with its floor.) NaN for a clip norm that is
/// not positive, which no floor accepts.
pub fn noise_multiplier(noise: &v1::DistributedNoise, contributors: usize) -> f64 {
    if noise.clip_norm <= 0.0 {
        return f64::NAN;
    }
    (contributors as f64).sqrt() * noise.local_stddev * noise.granularity / noise.clip_norm
}

/// One round in progress on this node.
#[derive(Debug)]
pub struct SecureRound {
    /// The federation's round number (tasks of other rounds are refused).
    pub round: u64,
    participants: Vec<String>,
    participant: Participant,
    input: QuantizedInput,
    /// The round's distributed-DP settings, if any, and this node's
    /// requirements: checked again against the survivors before signing.
    noise: Option<v1::DistributedNoise>,
    /// Coordinates of the change.
    dimension: usize,
    requirements: RoundRequirements,
    /// The neighbours' identity keys, from their certificates (set at share-keys):
    /// they check the neighbours' signatures on the survivor set.
    neighbour_keys: EcdsaP256Verifier,
}

/// Why a secure-aggregation task could not be done.
#[derive(Debug, thiserror::Error)]
pub enum SecureRoundError {
    /// The round's setup is unusable: this node is not a participant, the
    /// weight cap is 0, or the distributed noise is invalid.
    #[error("secure-aggregation setup: {0}")]
    Setup(String),
    /// The secure-aggregation protocol refused a message or step.
    #[error(transparent)]
    Protocol(#[from] SecAggError),
    /// A neighbour's message does not check out.
    #[error("neighbour {node}: {reason}")]
    Neighbour {
        /// The neighbour.
        node: NodeId,
        /// What is wrong with its message.
        reason: String,
    },
    #[error(
        "the sum of {contributors} nodes' changes would carry noise multiplier {multiplier:.3}, below this node's floor of {floor}; it does not take part"
    )]
    /// The sum's noise multiplier (0 without distributed DP) would fall below
    /// this node's floor, so it does not take part.
    NoiseBelowFloor {
        /// The noise multiplier the sum would carry.
        multiplier: f64,
        /// This node's floor.
        floor: f64,
        /// The participants the sum is computed over.
        contributors: usize,
    },
    /// The survivor set is smaller than this node's minimum cohort.
    #[error(
        "the survivor set holds {survivors} nodes, fewer than this node's minimum cohort of {min_cohort}; it does not sign it"
    )]
    CohortTooSmall {
        /// Nodes in the survivor set.
        survivors: usize,
        /// This node's minimum.
        min_cohort: usize,
    },
}

fn setup_error(reason: impl Into<String>) -> SecureRoundError {
    SecureRoundError::Setup(reason.into())
}

impl SecureRound {
    /// Quantizes this node's change and prepares its participant, if the round
    /// meets this node's `requirements` (with every participant counted for the
    /// noise; the survivors are counted again before signing); returns the
    /// round and the signed key advertisement to send.
    pub fn start(
        setup: &v1::SecAggSetup,
        round: u64,
        own_name: &str,
        change: &[f32],
        num_examples: u64,
        credentials: &SecAggCredentials,
        requirements: &RoundRequirements,
    ) -> Result<(Self, AdvertiseKeys), SecureRoundError> {
        let config = SecAggConfig {
            neighbours: setup.neighbours as usize,
            threshold: setup.threshold as usize,
            clip_range: setup.clip_range,
            bits: setup.bits,
        };
        let n = setup.participants.len();
        requirements.check_noise(setup.distributed_noise.as_ref(), n)?;
        let own = setup
            .participants
            .iter()
            .position(|name| name == own_name)
            .ok_or_else(|| {
                setup_error(format!("{own_name} is not among the round's participants"))
            })?;
        if setup.weight_cap == 0 {
            return Err(setup_error("the weight cap is 0"));
        }
        let ids: Vec<NodeId> = (0..n as u32).map(NodeId).collect();
        let input = match &setup.distributed_noise {
            None => {
                let quantizer = Quantizer::new(&config, n, change.len())?;
                let weight = num_examples.min(setup.weight_cap) as f64 / setup.weight_cap as f64;
                quantizer.quantize_weighted(change, weight)?
            }
            Some(noise) => noised_integers(noise, change, config.bits)?,
        };
        let mut participant = Participant::new(
            &config,
            &requirements.secagg,
            RoundId(setup.secagg_round),
            NodeId(own as u32),
            &ids,
            change.len(),
        )?;
        participant.bind_context(&credentials.setup_context(setup))?;
        let advertisement = participant.advertise(&credentials.signer)?;
        Ok((
            Self {
                round,
                participants: setup.participants.clone(),
                participant,
                input,
                noise: setup.distributed_noise,
                dimension: change.len(),
                requirements: *requirements,
                neighbour_keys: EcdsaP256Verifier::new(),
            },
            advertisement,
        ))
    }

    /// Checks the advertisers' graph commitments (this node's own among them)
    /// and reveals this node's graph nonce.
    pub fn reveal_graph_nonce(
        &mut self,
        task: &v1::SecAggGraphSeedTask,
    ) -> Result<GraphReveal, SecureRoundError> {
        let list = GraphCommitments::from_bytes(&task.commitments)?;
        Ok(self.participant.reveal_graph_nonce(&list)?)
    }

    /// Draws the graph from the revealed nonces, checks each neighbour's
    /// certificate and advertisement; returns the shares to send.
    pub fn share_keys(
        &mut self,
        task: &v1::SecAggShareKeysTask,
        credentials: &SecAggCredentials,
    ) -> Result<cohort_crypto::secagg::ShareKeys, SecureRoundError> {
        let mut verifier = EcdsaP256Verifier::new();
        let mut adverts = Vec::with_capacity(task.neighbours.len());
        for neighbour in &task.neighbours {
            let advert = AdvertiseKeys::from_bytes(&neighbour.advertisement)?;
            let node = advert.node;
            let refuse = |reason: String| SecureRoundError::Neighbour { node, reason };
            let expected = self
                .participants
                .get(node.0 as usize)
                .ok_or_else(|| refuse("not a participant of this round".into()))?;
            let identity = credentials
                .certificates
                .verify(&neighbour.certificate_der)
                .map_err(|e| refuse(e.to_string()))?;
            if identity.role() != cohort_crypto::Role::Node || identity.name() != expected {
                return Err(refuse(format!(
                    "its certificate is for {identity}, but the round lists node {expected} at this id"
                )));
            }
            verifier.insert_certificate(node, &neighbour.certificate_der)?;
            adverts.push(advert);
        }
        let reveals = GraphReveals::from_bytes(&task.graph_reveals)?;
        let shares = self.participant.share_keys(&reveals, &adverts, &verifier)?;
        self.neighbour_keys = verifier;
        Ok(shares)
    }

    /// Opens the shares sealed for this node and masks its input; signs the
    /// list of neighbours it masked with.
    pub fn masked_input(
        &mut self,
        task: &v1::SecAggMaskedInputTask,
        credentials: &SecAggCredentials,
    ) -> Result<cohort_crypto::secagg::MaskedInput, SecureRoundError> {
        let shares = task
            .encrypted_shares
            .iter()
            .map(|bytes| EncryptedShare::from_bytes(bytes))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self
            .participant
            .masked_input(&shares, &self.input, &credentials.signer)?)
    }

    /// Signs the survivor set, after checking it (see
    /// [`Participant::consistency_check`]) and that its noisy changes meet
    /// this node's noise floor.
    pub fn consistency_check(
        &mut self,
        task: &v1::SecAggConsistencyCheckTask,
        credentials: &SecAggCredentials,
    ) -> Result<SurvivorSignature, SecureRoundError> {
        let list = SurvivorList::from_bytes(&task.survivor_list)?;
        let survivors = list.survivors.len();
        if let Some(min_cohort) = self.requirements.min_cohort
            && survivors < min_cohort
        {
            return Err(SecureRoundError::CohortTooSmall {
                survivors,
                min_cohort,
            });
        }
        self.requirements
            .check_noise(self.noise.as_ref(), survivors)?;
        Ok(self
            .participant
            .consistency_check(&list, &credentials.signer)?)
    }

    /// The protocol's id of this attempt.
    pub fn attempt(&self) -> RoundId {
        self.participant.round()
    }

    /// The round's distributed-DP settings (`None` without DP) and the length
    /// of the change they noise: what this node's own ledger charges for.
    pub fn release(&self) -> (Option<&v1::DistributedNoise>, usize) {
        (self.noise.as_ref(), self.dimension)
    }

    /// Reveals the shares the unmasking asks for, once the request agrees with
    /// the signed survivor set and enough neighbours signed it.
    pub fn unmask(
        &mut self,
        task: &v1::SecAggUnmaskTask,
    ) -> Result<cohort_crypto::secagg::UnmaskResponse, SecureRoundError> {
        let request = UnmaskRequest::from_bytes(&task.request)?;
        Ok(self.participant.unmask(&request, &self.neighbour_keys)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(local_stddev: f64) -> v1::DistributedNoise {
        v1::DistributedNoise {
            clip_norm: 0.5,
            granularity: 0.01,
            local_stddev,
            rounding_beta: 0.0,
        }
    }

    #[test]
    fn the_setup_context_binds_the_federation_and_every_name() {
        let setup = |names: &[&str]| v1::SecAggSetup {
            participants: names.iter().map(|n| (*n).to_owned()).collect(),
            weight_cap: 100,
            ..v1::SecAggSetup::default()
        };
        let base = setup_context("fed", &setup(&["a", "b", "c"]));
        assert_eq!(base, setup_context("fed", &setup(&["a", "b", "c"])));
        for other in [
            setup(&["a", "b", "d"]),
            setup(&["b", "a", "c"]),
            setup(&["ab", "c"]),
            setup(&["a", "b", "c", ""]),
        ] {
            assert_ne!(base, setup_context("fed", &other), "{other:?}");
        }
        assert_ne!(base, setup_context("other", &setup(&["a", "b", "c"])));
    }

    #[test]
    fn the_noise_multiplier_counts_the_contributors() {
        // √4 · 100 · 0.01 / 0.5 = 4.
        assert!((noise_multiplier(&noise(100.0), 4) - 4.0).abs() < 1e-12);
        assert!((noise_multiplier(&noise(100.0), 1) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn a_node_refuses_noise_below_its_floor() {
        let requirements = RoundRequirements {
            min_noise_multiplier: Some(3.0),
            ..RoundRequirements::default()
        };
        requirements.check_noise(Some(&noise(100.0)), 4).unwrap();
        // The same settings with two survivors: z = 2.83 < 3.
        assert!(matches!(
            requirements.check_noise(Some(&noise(100.0)), 2),
            Err(SecureRoundError::NoiseBelowFloor {
                contributors: 2,
                ..
            })
        ));
        // A round without noise, when the node requires it.
        assert!(matches!(
            requirements.check_noise(None, 100),
            Err(SecureRoundError::NoiseBelowFloor {
                multiplier: 0.0,
                ..
            })
        ));
        // Without a floor anything goes.
        RoundRequirements::default().check_noise(None, 1).unwrap();
    }
}
