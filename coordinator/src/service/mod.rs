//! The `Federation` gRPC service: checks every request's identity and header,
//! turns valid submissions into stage results, and refuses everything else with
//! the status code that says why. Every refusal is logged with the node and reason.

pub mod auditor;
pub mod rate_limit;
mod secure_aggregation;
mod upload;

use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use cohort_crypto::Role;
use cohort_proto::v1::federation_server::Federation as FederationRpc;
use cohort_proto::v1::{self, poll_task_response::Outcome};
use cohort_proto::{MAX_CHUNK_BYTES, PROTOCOL_VERSION};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::audit::AuditEvent;
use crate::federation::{Federation, PollOutcome};
use crate::rounds::stage::{NodeEvaluation, StageResult, SubmissionError};
use crate::store::records::{NodeRecord, RegisteredDataset, SCHEMA_VERSION};
use cohort_crypto::tls::acceptor::PeerInfo;
use cohort_proto::dataset::check_dataset_version;
use cohort_proto::scaling::FeatureStats;

#[derive(Debug, Clone)]
pub struct FederationService {
    federation: Arc<Federation>,
}

impl FederationService {
    pub fn new(federation: Arc<Federation>) -> Self {
        Self { federation }
    }
}

/// Logs a refusal (and queues it for the audit log) and returns it.
fn refuse(federation: &Federation, peer: &str, status: Status) -> Status {
    tracing::warn!(peer, code = ?status.code(), reason = status.message(), "request refused");
    federation.audit(AuditEvent::RequestRefused {
        peer: peer.to_owned(),
        code: format!("{:?}", status.code()),
        reason: status.message().to_owned(),
        count: 1,
    });
    status
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

/// The node behind a request: its certificate's identity, which must be a node
/// and must match the header's claim, in a header of our protocol and federation.
fn authenticate<T>(
    federation: &Federation,
    request: &Request<T>,
    header: Option<&v1::RequestHeader>,
) -> Result<String, Status> {
    let peer = request
        .extensions()
        .get::<PeerInfo>()
        .ok_or_else(|| Status::unauthenticated("no verified client certificate"))?;
    let node_id = peer.identity.name().to_owned();
    let peer_name = peer.identity.to_string();
    let refused = |status| Err(refuse(federation, &peer_name, status));
    if peer.identity.role() != Role::Node {
        return refused(Status::permission_denied(format!(
            "{} may not use the training API",
            peer.identity
        )));
    }
    if federation
        .revoked_certificates
        .contains(&peer.certificate_sha256)
    {
        return refused(Status::permission_denied(format!(
            "the certificate of {} ({}) was revoked",
            peer.identity, peer.certificate_sha256
        )));
    }
    if let Err(status) = federation.rate_limiter.check(&node_id) {
        return refused(status);
    }
    let Some(header) = header else {
        return refused(Status::invalid_argument("request header is missing"));
    };
    if header.protocol_version != PROTOCOL_VERSION {
        return refused(Status::failed_precondition(format!(
            "protocol version {} is not supported; this coordinator speaks version {PROTOCOL_VERSION}",
            header.protocol_version
        )));
    }
    if header.federation_id != federation.config.federation_id {
        return refused(Status::failed_precondition(format!(
            "this coordinator runs federation {:?}, not {:?}",
            federation.config.federation_id, header.federation_id
        )));
    }
    if header.node_id != node_id {
        return refused(Status::permission_denied(format!(
            "request claims node id {:?} but the client certificate is for {:?}",
            header.node_id, node_id
        )));
    }
    Ok(node_id)
}

fn require_registered(federation: &Federation, node_id: &str) -> Result<(), Status> {
    if federation.is_registered(node_id) {
        Ok(())
    } else {
        Err(refuse(
            federation,
            node_id,
            Status::failed_precondition(
                "node is not registered with this coordinator; register first",
            ),
        ))
    }
}

fn now_ms() -> u64 {
    crate::rounds::stage::unix_ms(SystemTime::now())
}

fn internal(error: impl std::fmt::Display) -> Status {
    tracing::error!(%error, "internal error");
    Status::internal(error.to_string())
}

type ModelStream = Pin<Box<dyn Stream<Item = Result<v1::ModelChunk, Status>> + Send>>;

#[tonic::async_trait]
impl FederationRpc for FederationService {
    async fn register(
        &self,
        request: Request<v1::RegisterRequest>,
    ) -> Result<Response<v1::RegisterResponse>, Status> {
        let fed = &self.federation;
        let node_id = authenticate(fed, &request, request.get_ref().header.as_ref())?;
        let body = request.get_ref();
        if body.num_features != fed.config.model.num_features {
            return Err(refuse(
                fed,
                &node_id,
                Status::invalid_argument(format!(
                    "node data has {} features; the federation's model takes {}",
                    body.num_features, fed.config.model.num_features
                )),
            ));
        }
        let dataset = match &body.dataset {
            None => None,
            Some(wire) => match check_dataset_version(wire) {
                Ok(_) => Some(RegisteredDataset::from(wire)),
                Err(problem) => {
                    return Err(refuse(
                        fed,
                        &node_id,
                        Status::invalid_argument(format!("dataset version refused: {problem}")),
                    ));
                }
            },
        };
        let certificate_sha256 = request
            .extensions()
            .get::<PeerInfo>()
            .map(|p| p.certificate_sha256.clone())
            .unwrap_or_default();
        let now = now_ms();
        let first = fed.store.node(&node_id).map_err(internal)?;
        if let Some(left_ms) = first.as_ref().and_then(|r| r.left_ms) {
            return Err(refuse(
                fed,
                &node_id,
                Status::permission_denied(format!(
                    "node {node_id} left the federation (erasure of its contributions) at {left_ms} ms"
                )),
            ));
        }
        let new_dataset = dataset
            .as_ref()
            .filter(|d| first.as_ref().and_then(|r| r.dataset.as_ref()) != Some(*d));
        fed.store
            .put_node(&NodeRecord {
                schema: SCHEMA_VERSION,
                node_id: node_id.clone(),
                first_registered_ms: first.as_ref().map_or(now, |r| r.first_registered_ms),
                last_registered_ms: now,
                certificate_sha256: certificate_sha256.clone(),
                num_train_examples: body.num_train_examples,
                dataset: dataset.clone(),
                left_ms: None,
            })
            .map_err(internal)?;
        // A new data set version is durable in the log before the node can
        // train on it, so every round's lineage points at a logged version.
        let mut events = vec![AuditEvent::NodeRegistered {
            node_id: node_id.clone(),
            certificate_sha256,
        }];
        if let Some(dataset) = new_dataset {
            events.push(AuditEvent::DatasetRegistered {
                node_id: node_id.clone(),
                dataset: dataset.clone(),
            });
        }
        fed.audit_log
            .append(&fed.store, events)
            .await
            .map_err(internal)?;
        fed.node_registered(&node_id, body.num_holdout_examples > 0);
        fed.emit(crate::federation::FederationEvent::NodeRegistered {
            node_id: node_id.clone(),
            dataset: dataset.as_ref().map(RegisteredDataset::reference),
        });
        tracing::info!(node = %node_id, examples = body.num_train_examples, "node registered");
        Ok(Response::new(v1::RegisterResponse {
            protocol_version: PROTOCOL_VERSION,
            model: Some(fed.config.model_spec()),
            model_fingerprint: fed.fingerprint.to_vec(),
            poll_timeout_ms: fed.config.server.poll_timeout_ms,
        }))
    }

    async fn poll_task(
        &self,
        request: Request<v1::PollTaskRequest>,
    ) -> Result<Response<v1::PollTaskResponse>, Status> {
        let fed = &self.federation;
        let node_id = authenticate(fed, &request, request.get_ref().header.as_ref())?;
        require_registered(fed, &node_id)?;
        let outcome = match fed.poll(&node_id).await {
            PollOutcome::Task(task) => Outcome::Task(*task),
            PollOutcome::Idle => Outcome::Idle(v1::Idle {}),
            PollOutcome::Finished(finished) => Outcome::Finished(finished),
            PollOutcome::ShuttingDown => {
                return Err(Status::unavailable("the coordinator is shutting down"));
            }
        };
        Ok(Response::new(v1::PollTaskResponse {
            outcome: Some(outcome),
        }))
    }

    async fn report_erasure(
        &self,
        request: Request<v1::ErasureReport>,
    ) -> Result<Response<v1::ErasureReceipt>, Status> {
        let fed = &self.federation;
        let node_id = authenticate(fed, &request, request.get_ref().header.as_ref())?;
        match crate::audit::erasure::receive(fed, &node_id, request.get_ref()).await {
            Ok(receipt) => Ok(Response::new(receipt.into())),
            Err(crate::audit::erasure::ErasureError::Refused(reason)) => {
                Err(refuse(fed, &node_id, Status::failed_precondition(reason)))
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
        let node_id = authenticate(fed, &request, request.get_ref().header.as_ref())?;
        require_registered(fed, &node_id)?;
        let version = request.get_ref().model_version.clone();
        if fed.store.is_tainted(&version).map_err(internal)? {
            return Err(refuse(
                fed,
                &node_id,
                Status::failed_precondition(format!(
                    "model version {version} learned from erased data and is no longer served"
                )),
            ));
        }
        let Some(bytes) = fed.store.model(&version).map_err(internal)? else {
            return Err(refuse(
                fed,
                &node_id,
                Status::not_found(format!("no model version {version}")),
            ));
        };
        // Durable before the model leaves: who received which model is part
        // of its lineage (HIPAA's access record), so a crash must not lose it.
        fed.audit_log
            .append(
                &fed.store,
                vec![AuditEvent::ModelDownloaded {
                    node_id: node_id.clone(),
                    model_version: version.clone(),
                }],
            )
            .await
            .map_err(internal)?;
        let header = v1::ModelChunkHeader {
            model_version: version,
            model_fingerprint: fed.fingerprint.to_vec(),
            total_bytes: bytes.len() as u64,
        };
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
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn submit_feature_stats(
        &self,
        request: Request<v1::FeatureStatsSubmission>,
    ) -> Result<Response<v1::Ack>, Status> {
        let fed = &self.federation;
        let node_id = authenticate(fed, &request, request.get_ref().header.as_ref())?;
        require_registered(fed, &node_id)?;
        let body = request.into_inner();
        let width = fed.config.model.num_features as usize;
        let problem = if body.count == 0 {
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
        };
        if let Some(problem) = problem {
            return Err(refuse(fed, &node_id, Status::invalid_argument(problem)));
        }
        let result = StageResult::FeatureStats(FeatureStats {
            count: body.count,
            sum: body.sum,
            sum_of_squares: body.sum_of_squares,
        });
        fed.submit(&node_id, 0, result)
            .map_err(|e| refuse(fed, &node_id, e.into()))?;
        Ok(Response::new(v1::Ack {
            message: "feature statistics accepted".into(),
        }))
    }

    async fn submit_update(
        &self,
        request: Request<Streaming<v1::UpdateChunk>>,
    ) -> Result<Response<v1::Ack>, Status> {
        upload::receive_update(&self.federation, request).await
    }

    async fn submit_sec_agg(
        &self,
        request: Request<v1::SecAggSubmission>,
    ) -> Result<Response<v1::Ack>, Status> {
        secure_aggregation::receive_message(&self.federation, request)
    }

    async fn submit_masked_input(
        &self,
        request: Request<Streaming<v1::MaskedInputChunk>>,
    ) -> Result<Response<v1::Ack>, Status> {
        secure_aggregation::receive_masked_input(&self.federation, request).await
    }

    async fn submit_evaluation(
        &self,
        request: Request<v1::EvaluationSubmission>,
    ) -> Result<Response<v1::Ack>, Status> {
        let fed = &self.federation;
        let node_id = authenticate(fed, &request, request.get_ref().header.as_ref())?;
        require_registered(fed, &node_id)?;
        let body = request.into_inner();
        if body.num_examples == 0
            || !body.loss.is_finite()
            || body.loss < 0.0
            || !(0.0..=1.0).contains(&body.accuracy)
        {
            return Err(refuse(
                fed,
                &node_id,
                Status::invalid_argument(format!(
                    "evaluation needs examples > 0, a finite loss ≥ 0 and accuracy in [0, 1]; got {} examples, loss {}, accuracy {}",
                    body.num_examples, body.loss, body.accuracy
                )),
            ));
        }
        fed.check_submission(&node_id, body.round, "evaluate", Some(&body.model_version))
            .map_err(|e| refuse(fed, &node_id, e.into()))?;
        let result = StageResult::Evaluate(NodeEvaluation {
            num_examples: body.num_examples,
            loss: body.loss,
            accuracy: body.accuracy,
        });
        fed.submit(&node_id, body.round, result)
            .map_err(|e| refuse(fed, &node_id, e.into()))?;
        Ok(Response::new(v1::Ack {
            message: "evaluation accepted".into(),
        }))
    }
}
