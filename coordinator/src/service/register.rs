//! Registration: a node joins (or rejoins) the federation with the shape of
//! its data and, if it describes one, its data set version. The record and
//! the audit entries are durable before the node is answered, so every round
//! it later trains in points at a logged data set version.

use cohort_crypto::authz::{Caller, Refusal, RefusalReason};
use cohort_proto::dataset::check_dataset_version;
use cohort_proto::{PROTOCOL_VERSION, v1};
use tonic::{Request, Response, Status};

use super::{FederationService, internal};
use crate::audit::AuditEvent;
use crate::federation::FederationEvent;
use crate::store::records::{NodeRecord, RegisteredDataset, SCHEMA_VERSION, unix_ms};

/// Registers the node behind `request` (see the module docs).
pub(super) async fn register(
    service: &FederationService,
    request: Request<v1::RegisterRequest>,
) -> Result<Response<v1::RegisterResponse>, Status> {
    let fed = &service.federation;
    let node_id = service.authenticate(&request, request.get_ref().header.as_ref())?;
    let body = request.get_ref();
    check_model(service, &node_id, body)?;
    let dataset = described_dataset(service, &node_id, body)?;
    let certificate_sha256 = Caller::of(&request)?.certificate_sha256().to_owned();
    record(
        service,
        &node_id,
        body,
        dataset.as_ref(),
        certificate_sha256,
    )
    .await?;
    fed.nodes
        .registered(&node_id, body.num_holdout_examples > 0);
    fed.emit(FederationEvent::NodeRegistered {
        node_id: node_id.clone(),
        dataset: dataset.as_ref().map(RegisteredDataset::reference),
    });
    tracing::info!(node = %node_id, examples = body.num_train_examples, "node registered");
    Ok(Response::new(v1::RegisterResponse {
        protocol_version: PROTOCOL_VERSION,
        model: Some(fed.model.to_proto()),
        model_fingerprint: fed.fingerprint.to_vec(),
        poll_timeout_ms: fed.config.server.poll_timeout_ms,
    }))
}

/// Refuses a node whose model code was built from another descriptor than
/// the federation's, before anything of it is recorded. A node that states
/// no fingerprint builds the federation's model (and checks the fingerprint
/// it is answered).
fn check_model(
    service: &FederationService,
    node_id: &str,
    body: &v1::RegisterRequest,
) -> Result<(), Status> {
    let fed = &service.federation;
    if body.model_fingerprint.is_empty() || body.model_fingerprint == fed.fingerprint {
        return Ok(());
    }
    if body.model_fingerprint.len() != fed.fingerprint.len() {
        return Err(service.refuse(
            node_id,
            Status::invalid_argument(format!(
                "model_fingerprint has {} bytes; a fingerprint is SHA-256 (32 bytes)",
                body.model_fingerprint.len()
            )),
        ));
    }
    let message = format!(
        "the node's model has fingerprint {}, but this federation trains {} (fingerprint {})",
        hex::encode(&body.model_fingerprint),
        fed.model.label(),
        hex::encode(fed.fingerprint)
    );
    Err(service.refuse(
        node_id,
        Refusal::new(RefusalReason::ModelMismatch, message).into(),
    ))
}

/// The node's data as it describes it: the model's width, and a data set
/// version that passes the checks (or none described).
fn described_dataset(
    service: &FederationService,
    node_id: &str,
    body: &v1::RegisterRequest,
) -> Result<Option<RegisteredDataset>, Status> {
    let num_features = service.federation.config.model.num_features;
    if body.num_features != num_features {
        return Err(service.refuse(
            node_id,
            Status::invalid_argument(format!(
                "node data has {} features; the federation's model takes {num_features}",
                body.num_features
            )),
        ));
    }
    let Some(wire) = &body.dataset else {
        return Ok(None);
    };
    match check_dataset_version(wire) {
        Ok(_) => Ok(Some(RegisteredDataset::from(wire))),
        Err(problem) => Err(service.refuse(
            node_id,
            Status::invalid_argument(format!("dataset version refused: {problem}")),
        )),
    }
}

/// Writes the node's record and logs its registration (and a new data set
/// version) durably. A node that left the federation is refused.
async fn record(
    service: &FederationService,
    node_id: &str,
    body: &v1::RegisterRequest,
    dataset: Option<&RegisteredDataset>,
    certificate_sha256: String,
) -> Result<(), Status> {
    let fed = &service.federation;
    let now = unix_ms(std::time::SystemTime::now());
    let first = fed.store.node(node_id).await.map_err(internal)?;
    if let Some(left_ms) = first.as_ref().and_then(|r| r.left_ms) {
        return Err(service.refuse(
            node_id,
            Status::permission_denied(format!(
                "node {node_id} left the federation (erasure of its contributions) at {left_ms} ms"
            )),
        ));
    }
    let new_dataset =
        dataset.filter(|d| first.as_ref().and_then(|r| r.dataset.as_ref()) != Some(*d));
    fed.store
        .put_node(&NodeRecord {
            schema: SCHEMA_VERSION,
            node_id: node_id.to_owned(),
            first_registered_ms: first.as_ref().map_or(now, |r| r.first_registered_ms),
            last_registered_ms: now,
            certificate_sha256: certificate_sha256.clone(),
            num_train_examples: body.num_train_examples,
            dataset: dataset.cloned(),
            left_ms: None,
        })
        .await
        .map_err(internal)?;
    let mut events = vec![AuditEvent::NodeRegistered {
        node_id: node_id.to_owned(),
        certificate_sha256,
    }];
    if let Some(dataset) = new_dataset {
        events.push(AuditEvent::DatasetRegistered {
            node_id: node_id.to_owned(),
            dataset: dataset.clone(),
        });
    }
    fed.audit_log
        .append(&fed.store, events)
        .await
        .map_err(internal)?;
    Ok(())
}
