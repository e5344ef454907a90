//! A node driven by hand through secure aggregation: it sends a model change the
//! test chooses (no training), with the real node's protocol code
//! (`cohort_client::node::secure_aggregation`), and can fall silent at any stage
//! or tamper with what it sends.

use std::net::SocketAddr;

use cohort_client::node::secure_aggregation::{RoundRequirements, SecAggCredentials, SecureRound};
use cohort_coordinator::rounds::secure::SecAggStep;
use cohort_crypto::pki::RevocationsRefused;
use cohort_crypto::secagg::ShareKeys;
use cohort_proto::v1::{
    self, poll_task_response::Outcome, sec_agg_submission::Message, task::Stage,
};
use tonic::Status;

use crate::{HandDrivenNode, Testbed, header, within};

/// Where a node stops answering in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Silence {
    /// Answers every stage.
    #[default]
    Never,
    /// Advertises and shares keys, then sends no masked input.
    BeforeMaskedInput,
    /// Sends its masked input, then does not answer the unmask request.
    BeforeUnmasking,
}

/// What the driver saw in one round.
#[derive(Debug, Default)]
pub struct RoundLog {
    pub round: u64,
    /// The global model the round started from.
    pub base_model: String,
    /// Refusals by the coordinator, per stage name.
    pub refused: Vec<(&'static str, Status)>,
    /// The node's own refusals (e.g. a share that failed authentication).
    pub own_errors: Vec<String>,
    /// Whether its masked input was accepted.
    pub masked_input_sent: bool,
    /// The step it fell silent at (it will not answer that stage), if it did.
    pub silent_at: Option<SecAggStep>,
}

/// Edits a node's sealed shares before they are sent.
pub type ShareTamper = Box<dyn FnMut(&mut ShareKeys) + Send>;
/// Makes a bad masked input from the genuine encoding.
pub type MaskedInputTamper = Box<dyn FnMut(Vec<u8>) -> Vec<u8> + Send>;

/// How a driven node departs from the protocol in one round.
#[derive(Default)]
pub struct Behaviour {
    pub silence: Silence,
    /// Applied to its sealed shares before sending.
    pub tamper_shares: Option<ShareTamper>,
    /// Sent (once) before the genuine masked input, from the genuine encoding.
    pub tamper_masked: Option<MaskedInputTamper>,
    /// An encoded advertisement from an earlier round, sent before its own
    /// (once with that round's number, once with the current one).
    pub replay_advertisement: Option<(u64, Vec<u8>)>,
    /// What the node itself requires of the round (the real node's checks).
    pub requirements: RoundRequirements,
}

#[derive(Debug)]
pub struct SecAggNode {
    pub node: HandDrivenNode,
    credentials: SecAggCredentials,
    round: Option<SecureRound>,
    /// The round and encoding of the last advertisement it sent.
    pub last_advertisement: Option<(u64, Vec<u8>)>,
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Behaviour")
            .field("silence", &self.silence)
            .field("tamper_shares", &self.tamper_shares.is_some())
            .field("tamper_masked", &self.tamper_masked.is_some())
            .field("replay_advertisement", &self.replay_advertisement.is_some())
            .field("requirements", &self.requirements)
            .finish()
    }
}

impl SecAggNode {
    pub async fn join(testbed: &Testbed, node_id: &str, coordinator: SocketAddr) -> Self {
        let node = HandDrivenNode::join(testbed, node_id, coordinator).await;
        let credentials =
            SecAggCredentials::load(&testbed.node_tls(node_id), &testbed.plan.federation_id)
                .expect("credentials");
        Self {
            node,
            credentials,
            round: None,
            last_advertisement: None,
        }
    }

    /// Adopts a CA-signed revocation list, as from a task.
    pub fn adopt_revocations(&mut self, signed: &[u8]) -> Result<(), RevocationsRefused> {
        self.credentials.adopt_revocations(signed)
    }

    async fn poll(&mut self) -> Option<v1::Task> {
        let polled = self
            .node
            .client
            .poll_task(v1::PollTaskRequest {
                header: header(&self.node.node_id),
                withdrawn_models: Vec::new(),
            })
            .await
            .expect("poll")
            .into_inner();
        match polled.outcome {
            Some(Outcome::Task(task)) => Some(task),
            Some(Outcome::Finished(_)) => panic!("{}: federation finished", self.node.node_id),
            _ => None,
        }
    }

    async fn send(&mut self, round: u64, message: Message) -> Result<(), Status> {
        self.node
            .client
            .submit_sec_agg(v1::SecAggSubmission {
                header: header(&self.node.node_id),
                round,
                message: Some(message),
            })
            .await
            .map(|_| ())
    }

    /// Streams an encoded masked input.
    pub async fn send_masked_input(&mut self, round: u64, encoded: Vec<u8>) -> Result<(), Status> {
        use v1::masked_input_chunk::Part;
        let chunks = vec![
            v1::MaskedInputChunk {
                part: Some(Part::Header(v1::MaskedInputHeader {
                    header: header(&self.node.node_id),
                    round,
                    total_bytes: encoded.len() as u64,
                })),
            },
            v1::MaskedInputChunk {
                part: Some(Part::Data(encoded)),
            },
        ];
        self.node
            .client
            .submit_masked_input(tokio_stream::iter(chunks))
            .await
            .map(|_| ())
    }

    /// Sends a raw secure-aggregation message (for replays).
    pub async fn send_raw(&mut self, round: u64, message: Message) -> Result<(), Status> {
        self.send(round, message).await
    }

    /// Takes part in the next secure-aggregation round with `change` and
    /// `num_examples`, falling silent as `silence` says. Returns once this node's
    /// part of the round is over: after its unmask response, or once the
    /// coordinator has moved past the stage it skipped (its next poll shows a
    /// later round or an evaluation). `tamper_masked` may replace the masked input
    /// the first time it is sent (the genuine one follows if that is refused).
    pub async fn take_part(
        &mut self,
        change: &[f32],
        num_examples: u64,
        mut behaviour: Behaviour,
    ) -> RoundLog {
        let silence = behaviour.silence;
        let mut log = RoundLog::default();
        within("a secure-aggregation round", async {
            loop {
                let Some(task) = self.poll().await else {
                    continue;
                };
                // As the real node does: the CA-signed revocation list each
                // task carries decides which neighbours it accepts.
                if let Err(refused) = self.credentials.adopt_revocations(&task.signed_revocations) {
                    log.own_errors.push(refused.to_string());
                }
                let round = task.round;
                match task.stage {
                    Some(Stage::FeatureStats(_)) => {
                        self.node
                            .client
                            .submit_feature_stats(v1::FeatureStatsSubmission {
                                header: header(&self.node.node_id),
                                count: 1,
                                sum: vec![0.0; 30],
                                sum_of_squares: vec![0.0; 30],
                            })
                            .await
                            .expect("stats accepted");
                    }
                    Some(Stage::SecaggFit(task)) => {
                        if log.round != 0 {
                            // A new round began: this node's part of the last one is over.
                            return;
                        }
                        let fit = task.fit.expect("fit");
                        let setup = task.setup.expect("setup");
                        log.round = round;
                        let started = SecureRound::start(
                            &setup,
                            round,
                            &self.node.node_id,
                            change,
                            num_examples,
                            &self.credentials,
                            &behaviour.requirements,
                        );
                        let (secure, advert) = match started {
                            Ok(started) => started,
                            Err(refusal) => {
                                log.own_errors.push(refusal.to_string());
                                log.silent_at = Some(SecAggStep::AdvertiseKeys);
                                return;
                            }
                        };
                        log.round = round;
                        log.base_model = fit.model_version;
                        self.round = Some(secure);
                        if let Some((old_round, bytes)) = behaviour.replay_advertisement.take() {
                            for claimed in [old_round, round] {
                                if let Err(status) = self
                                    .send(claimed, Message::Advertisement(bytes.clone()))
                                    .await
                                {
                                    log.refused.push(("replay", status));
                                }
                            }
                        }
                        self.last_advertisement = Some((round, advert.to_bytes()));
                        if let Err(status) = self
                            .send(round, Message::Advertisement(advert.to_bytes()))
                            .await
                        {
                            log.refused.push(("advertise", status));
                        }
                    }
                    Some(Stage::SecaggGraphSeed(task)) => {
                        let secure = self.round.as_mut().expect("round");
                        let reveal = match secure.reveal_graph_nonce(&task) {
                            Ok(reveal) => reveal,
                            Err(refusal) => {
                                log.own_errors.push(refusal.to_string());
                                log.silent_at = Some(SecAggStep::GraphSeed);
                                return;
                            }
                        };
                        if let Err(status) = self
                            .send(round, Message::GraphReveal(reveal.to_bytes()))
                            .await
                        {
                            log.refused.push(("graph-seed", status));
                        }
                    }
                    Some(Stage::SecaggShareKeys(task)) => {
                        let secure = self.round.as_mut().expect("round");
                        let mut shares = match secure.share_keys(&task, &self.credentials) {
                            Ok(shares) => shares,
                            Err(refusal) => {
                                log.own_errors.push(refusal.to_string());
                                log.silent_at = Some(SecAggStep::ShareKeys);
                                return;
                            }
                        };
                        if let Some(tamper) = behaviour.tamper_shares.as_mut() {
                            tamper(&mut shares);
                        }
                        if let Err(status) = self
                            .send(round, Message::ShareKeys(shares.to_bytes()))
                            .await
                        {
                            log.refused.push(("share-keys", status));
                        }
                    }
                    Some(Stage::SecaggMaskedInput(task)) => {
                        if silence == Silence::BeforeMaskedInput {
                            log.silent_at = Some(SecAggStep::MaskedInput);
                            return;
                        }
                        let secure = self.round.as_mut().expect("round");
                        let masked = match secure.masked_input(&task, &self.credentials) {
                            Ok(masked) => masked,
                            Err(error) => {
                                log.own_errors.push(error.to_string());
                                log.silent_at = Some(SecAggStep::MaskedInput);
                                return;
                            }
                        };
                        if let Some(mut tamper) = behaviour.tamper_masked.take() {
                            let bad = tamper(masked.to_bytes());
                            if let Err(status) = self.send_masked_input(round, bad).await {
                                log.refused.push(("masked-input", status));
                            }
                        }
                        match self.send_masked_input(round, masked.to_bytes()).await {
                            Ok(()) => log.masked_input_sent = true,
                            Err(status) => log.refused.push(("masked-input", status)),
                        }
                    }
                    Some(Stage::SecaggConsistencyCheck(task)) => {
                        let secure = self.round.as_mut().expect("round");
                        let signature = match secure.consistency_check(&task, &self.credentials) {
                            Ok(signature) => signature,
                            Err(refusal) => {
                                log.own_errors.push(refusal.to_string());
                                log.silent_at = Some(SecAggStep::ConsistencyCheck);
                                return;
                            }
                        };
                        if let Err(status) = self
                            .send(round, Message::SurvivorSignature(signature.to_bytes()))
                            .await
                        {
                            log.refused.push(("consistency-check", status));
                        }
                        if silence == Silence::BeforeUnmasking {
                            log.silent_at = Some(SecAggStep::Unmasking);
                            return;
                        }
                    }
                    Some(Stage::SecaggUnmask(task)) => {
                        let secure = self.round.as_mut().expect("round");
                        let response = secure.unmask(&task).expect("unmask");
                        if let Err(status) = self
                            .send(round, Message::UnmaskResponse(response.to_bytes()))
                            .await
                        {
                            log.refused.push(("unmask", status));
                        }
                        self.round = None;
                        return;
                    }
                    Some(Stage::Evaluate(_)) => {}
                    other => panic!("unexpected task {other:?}"),
                }
            }
        })
        .await;
        log
    }
}
