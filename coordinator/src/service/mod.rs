//! The `Federation` gRPC service: takes each call's node from the
//! authorization layer (which admitted only a node certificate, not revoked,
//! within its rate: [`access`]), checks the request's header, turns valid
//! submissions into stage results, and refuses everything else with the
//! status code that says why. Every refusal is logged with the node and
//! reason ([`access`]).
//!
//! Modules: [`access`] (the coordinator's authorization policy and refusal
//! log), `register`, `poll`, `upload` (streamed model updates),
//! `secure_aggregation` (its messages), `stream` (reading a streamed upload),
//! [`auditor`] (the read-only auditor API).

pub mod access;
pub mod auditor;
mod poll;
mod register;
mod secure_aggregation;
mod stream;
mod upload;

use std::pin::Pin;
use std::sync::Arc;

use cohort_crypto::authz::{Caller, Refusal, RefusalReason};
use cohort_proto::v1::federation_server::Federation as FederationRpc;
use cohort_proto::v1::{self, poll_task_response::Outcome};
use cohort_proto::{MAX_CHUNK_BYTES, PROTOCOL_VERSION};
use prost::Message as _;
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Request, Response, Status, Streaming};

use crate::audit::AuditEvent;
use crate::federation::Federation;
use crate::rounds::live::LiveRound;
use crate::rounds::stage::{NodeEvaluation, StageKind, StageResult, SubmissionError};
use crate::rounds::unlearning::{self, ErasureError};
use access::RefusalLog;
use cohort_proto::scaling::FeatureStats;
use poll::PollOutcome;

/// The training API (`cohort.federation.v1.Federation`), for certificates of
/// role `node` only (the authorization layer's [`access::policy`]).
#[derive(Debug, Clone)]
pub struct FederationService {
    federation: Arc<Federation>,
    live: Arc<LiveRound>,
    withdrawals: Arc<poll::Withdrawals>,
    refusals: Arc<RefusalLog>,
}

impl FederationService {
    /// The service over the shared federation state and the round in
    /// flight, logging its refusals to `refusals`.
    pub fn new(
        federation: Arc<Federation>,
        live: Arc<LiveRound>,
        refusals: Arc<RefusalLog>,
    ) -> Self {
        Self {
            federation,
            live,
            withdrawals: Arc::default(),
            refusals,
        }
    }

    /// Logs a refusal and returns it.
    fn refuse(&self, peer: &str, status: Status) -> Status {
        self.refusals.refuse(peer, status)
    }

    /// The node behind a request: its certificate's identity, which must be a
    /// node and must match the header's claim, in a header of our protocol and
    /// federation. Also requires it registered with this process.
    fn registered_node<T>(
        &self,
        request: &Request<T>,
        header: Option<&v1::RequestHeader>,
    ) -> Result<String, Status> {
        let node_id = self.authenticate(request, header)?;
        if self.federation.nodes.is_registered(&node_id) {
            Ok(node_id)
        } else {
            Err(self.refuse(
                &node_id,
                Status::failed_precondition(
                    "node is not registered with this coordinator; register first",
                ),
            ))
        }
    }

    /// As [`Self::registered_node`], for a node that may not have registered
    /// with this process yet: the node the authorization layer admitted,
    /// whose header must be of our protocol and federation and claim that
    /// node.
    fn authenticate<T>(
        &self,
        request: &Request<T>,
        header: Option<&v1::RequestHeader>,
    ) -> Result<String, Status> {
        let caller = Caller::of(request)?;
        let node_id = caller.identity().name().to_owned();
        self.check_header(&caller.identity().to_string(), &node_id, header)?;
        Ok(node_id)
    }

    /// The request header: our protocol, our federation, the certificate's
    /// node (`node_id`; the refusal names the peer as `peer_name`).
    fn check_header(
        &self,
        peer_name: &str,
        node_id: &str,
        header: Option<&v1::RequestHeader>,
    ) -> Result<(), Status> {
        let refused = |reason, message: String| {
            Err(self.refuse(peer_name, Refusal::new(reason, message).into()))
        };
        let Some(header) = header else {
            return Err(self.refuse(
                peer_name,
                Status::invalid_argument("request header is missing"),
            ));
        };
        let federation_id = &self.federation.config.federation_id;
        if header.protocol_version != PROTOCOL_VERSION {
            return refused(
                RefusalReason::ProtocolVersionUnsupported,
                format!(
                    "protocol version {} is not supported; this coordinator speaks version {PROTOCOL_VERSION}",
                    header.protocol_version
                ),
            );
        }
        if &header.federation_id != federation_id {
            return refused(
                RefusalReason::WrongFederation,
                format!(
                    "this coordinator runs federation {federation_id:?}, not {:?}",
                    header.federation_id
                ),
            );
        }
        if header.node_id != node_id {
            return refused(
                RefusalReason::IdentityMismatch,
                format!(
                    "request claims node id {:?} but the client certificate is for {node_id:?}",
                    header.node_id
                ),
            );
        }
        Ok(())
    }

    /// Keeps `result` in the open stage, or refuses it with the reason.
    fn submit(&self, node_id: &str, round: u64, result: StageResult) -> Result<(), Status> {
        self.live
            .submit(node_id, round, result)
            .map_err(|e| self.refuse(node_id, e.into()))
    }
}

impl From<SubmissionError> for Status {
    fn from(error: SubmissionError) -> Self {
        match error {
            SubmissionError::NotSampled(_) => Status::permission_denied(error.to_string()),
            SubmissionError::Rejected(_) => Status::invalid_argument(error.to_string()),
            _ => Status::failed_precondition(error.to_string()),
        }
    }
}

fn internal(error: impl std::fmt::Display) -> Status {
    tracing::error!(%error, "internal error");
    Status::internal(error.to_string())
}

/// Why feature statistics are unusable, if they are.
fn feature_stats_problem(body: &v1::FeatureStatsSubmission, width: usize) -> Option<String> {
    if body.count == 0 {
        Some("feature statistics cover no rows".to_owned())
    } else if body.sum.len() != width || body.sum_of_squares.len() != width {
        Some(format!(
            "feature statistics have {} sums and {} sums of squares; the model has {width} features",
            body.sum.len(),
            body.sum_of_squares.len()
        ))
    } else if body
        .sum
        .iter()
        .chain(&body.sum_of_squares)
        .any(|v| !v.is_finite())
    {
        Some("feature statistics contain NaN or infinite values".to_owned())
    } else if body.sum_of_squares.iter().any(|v| *v < 0.0) {
        Some("a sum of squares is negative".to_owned())
    } else {
        None
    }
}

/// A model's bytes as a stream of chunks of at most [`MAX_CHUNK_BYTES`], the
/// header on the first.
fn model_chunks(header: v1::ModelChunkHeader, bytes: &[u8]) -> Vec<Result<v1::ModelChunk, Status>> {
    let mut chunks: Vec<Result<v1::ModelChunk, Status>> = bytes
        .chunks(MAX_CHUNK_BYTES)
        .map(|data| {
            Ok(v1::ModelChunk {
                header: None,
                data: data.to_vec(),
            })
        })
        .collect();
    match chunks.first_mut() {
        Some(Ok(first)) => first.header = Some(header),
        _ => chunks.push(Ok(v1::ModelChunk {
            header: Some(header),
            data: Vec::new(),
        })),
    }
    chunks
}

type ModelStream = Pin<Box<dyn Stream<Item = Result<v1::ModelChunk, Status>> + Send>>;

#[tonic::async_trait]
impl FederationRpc for FederationService {
    async fn register(
        &self,
        request: Request<v1::RegisterRequest>,
    ) -> Result<Response<v1::RegisterResponse>, Status> {
        register::register(self, request).await
    }

    async fn poll_task(
        &self,
        request: Request<v1::PollTaskRequest>,
    ) -> Result<Response<v1::PollTaskResponse>, Status> {
        let node_id = self.registered_node(&request, request.get_ref().header.as_ref())?;
        let withdrawn = &request.get_ref().withdrawn_models;
        let acknowledged = (self.withdrawals)
            .acknowledge(&self.federation, &node_id, withdrawn)
            .await?;
        if acknowledged {
            // It may have been the last holder an erasure request waited for.
            let closed = unlearning::close_withdrawn(&self.federation, &self.live).await;
            if let Err(error) = closed {
                tracing::warn!(%error, "closing erasure requests after a withdrawal failed; retried at the next");
            }
        }
        let outcome = match poll::poll(&self.federation, &self.live, &node_id).await {
            PollOutcome::Task(mut task) => {
                task.signed_revocations = poll::signed_revocations(&self.federation).await;
                self.live.note_delivered(&node_id, task.encoded_len());
                Outcome::Task(*task)
            }
            PollOutcome::Idle => Outcome::Idle(v1::Idle {}),
            PollOutcome::Finished(finished) => Outcome::Finished(finished),
            PollOutcome::ShuttingDown => {
                return Err(Status::unavailable("the coordinator is shutting down"));
            }
        };
        Ok(Response::new(v1::PollTaskResponse {
            outcome: Some(outcome),
            tainted_models: poll::taint_list(&self.federation).await?,
        }))
    }

    async fn report_erasure(
        &self,
        request: Request<v1::ErasureReport>,
    ) -> Result<Response<v1::ErasureReceipt>, Status> {
        let node_id = self.authenticate(&request, request.get_ref().header.as_ref())?;
        let (federation, live) = (&self.federation, &self.live);
        match unlearning::receive(federation, live, &node_id, request.get_ref()).await {
            Ok(receipt) => Ok(Response::new(receipt.into())),
            Err(ErasureError::Refused(reason)) => {
                Err(self.refuse(&node_id, Status::failed_precondition(reason)))
            }
            Err(other) => Err(internal(other)),
        }
    }

    type FetchModelStream = ModelStream;

    async fn fetch_model(
        &self,
        request: Request<v1::FetchModelRequest>,
    ) -> Result<Response<Self::FetchModelStream>, Status> {
        let fed = &self.federation;
        let node_id = self.registered_node(&request, request.get_ref().header.as_ref())?;
        let version = request.get_ref().model_version.clone();
        if fed.store.is_tainted(&version).await.map_err(internal)? {
            return Err(self.refuse(
                &node_id,
                Status::failed_precondition(format!(
                    "model version {version} learned from erased data and is no longer served"
                )),
            ));
        }
        let Some(bytes) = fed
            .models
            .get(&fed.store, &version)
            .await
            .map_err(internal)?
        else {
            return Err(self.refuse(
                &node_id,
                Status::not_found(format!("no model version {version}")),
            ));
        };
        // Durable before the model leaves: who received which model is part
        // of its lineage (HIPAA's access record), so a crash must not lose it.
        // A sampled node's download of its round's model is already on record
        // (`RoundStarted`, durable before any task went out).
        if !self.live.release_covers(&node_id, &version) {
            let downloaded = AuditEvent::ModelDownloaded {
                node_id: node_id.clone(),
                model_version: version.clone(),
            };
            fed.audit_log
                .append(&fed.store, vec![downloaded])
                .await
                .map_err(internal)?;
        }
        let header = v1::ModelChunkHeader {
            model_version: version,
            model_fingerprint: fed.fingerprint.to_vec(),
            total_bytes: bytes.len() as u64,
        };
        let chunks = model_chunks(header, &bytes);
        // The transport pulls the last chunk once the others have gone out.
        let (last, live, size) = (
            chunks.len().saturating_sub(1),
            self.live.clone(),
            bytes.len(),
        );
        let chunks = tokio_stream::iter(chunks.into_iter().enumerate()).map(move |(i, chunk)| {
            if i == last {
                live.note_fetched(&node_id, size);
            }
            chunk
        });
        Ok(Response::new(Box::pin(chunks)))
    }

    async fn submit_feature_stats(
        &self,
        request: Request<v1::FeatureStatsSubmission>,
    ) -> Result<Response<v1::Ack>, Status> {
        let node_id = self.registered_node(&request, request.get_ref().header.as_ref())?;
        let body = request.into_inner();
        let width = self.federation.config.model.num_features as usize;
        if let Some(problem) = feature_stats_problem(&body, width) {
            return Err(self.refuse(&node_id, Status::invalid_argument(problem)));
        }
        let result = StageResult::FeatureStats(FeatureStats {
            count: body.count,
            sum: body.sum,
            sum_of_squares: body.sum_of_squares,
        });
        self.submit(&node_id, 0, result)?;
        Ok(Response::new(v1::Ack {
            message: "feature statistics accepted".into(),
        }))
    }

    async fn submit_update(
        &self,
        request: Request<Streaming<v1::UpdateChunk>>,
    ) -> Result<Response<v1::Ack>, Status> {
        upload::receive_update(self, request).await
    }

    async fn submit_sec_agg(
        &self,
        request: Request<v1::SecAggSubmission>,
    ) -> Result<Response<v1::Ack>, Status> {
        secure_aggregation::receive_message(self, request)
    }

    async fn submit_masked_input(
        &self,
        request: Request<Streaming<v1::MaskedInputChunk>>,
    ) -> Result<Response<v1::Ack>, Status> {
        secure_aggregation::receive_masked_input(self, request).await
    }

    async fn submit_evaluation(
        &self,
        request: Request<v1::EvaluationSubmission>,
    ) -> Result<Response<v1::Ack>, Status> {
        let started = std::time::Instant::now();
        let node_id = self.registered_node(&request, request.get_ref().header.as_ref())?;
        let body = request.into_inner();
        if body.num_examples == 0
            || !body.loss.is_finite()
            || body.loss < 0.0
            || !(0.0..=1.0).contains(&body.accuracy)
        {
            return Err(self.refuse(
                &node_id,
                Status::invalid_argument(format!(
                    "evaluation needs examples > 0, a finite loss ≥ 0 and accuracy in [0, 1]; got {} examples, loss {}, accuracy {}",
                    body.num_examples, body.loss, body.accuracy
                )),
            ));
        }
        let model = Some(body.model_version.as_str());
        self.live
            .check_submission(&node_id, body.round, StageKind::Evaluate, model)
            .map_err(|e| self.refuse(&node_id, e.into()))?;
        self.live.note_uploaded(&node_id, started, 0);
        let result = StageResult::Evaluate(NodeEvaluation {
            num_examples: body.num_examples,
            loss: body.loss,
            accuracy: body.accuracy,
        });
        self.submit(&node_id, body.round, result)?;
        Ok(Response::new(v1::Ack {
            message: "evaluation accepted".into(),
        }))
    }
}
