//! Receiving a streamed model update.
//!
//! The header comes first and is checked against the open stage *before* any
//! parameters are read, so a stale, duplicate or mis-shaped upload costs the
//! coordinator one small message. Parameters are then read up to the size the
//! model needs and no further.

use cohort_proto::model::decode_f32;
use cohort_proto::v1;
use ndarray::Array1;
use tonic::{Request, Response, Status, Streaming};

use super::FederationService;
use super::stream::{open_upload, read_body};
use crate::rounds::stage::{StageKind, StageResult};
use crate::strategy::FitResult;

/// Takes a node's trained model, streamed header first (see the module docs).
pub(super) async fn receive_update(
    service: &FederationService,
    request: Request<Streaming<v1::UpdateChunk>>,
) -> Result<Response<v1::Ack>, Status> {
    let started = std::time::Instant::now();
    let (node_id, header, mut stream) = open_upload(service, request).await?;
    check_header(service, &node_id, &header)?;
    let fed = &service.federation;
    let bytes = read_body(service, &node_id, &mut stream, fed.model.num_bytes()).await?;
    service.live.note_uploaded(&node_id, started, bytes.len());
    let parameters = decode_f32(&bytes, fed.model.num_parameters()).map_err(|e| {
        service.refuse(
            &node_id,
            Status::invalid_argument(format!("update rejected: {e}")),
        )
    })?;
    let result = StageResult::Fit(FitResult {
        node_id: node_id.clone(),
        parameters: Array1::from(parameters),
        num_examples: header.num_examples,
        train_loss: header.train_loss,
    });
    service.submit(&node_id, header.round, result)?;
    tracing::debug!(node = %node_id, round = header.round, "update accepted");
    Ok(Response::new(v1::Ack {
        message: format!("update for round {} accepted", header.round),
    }))
}

/// The header against the model and the open fit stage.
fn check_header(
    service: &FederationService,
    node_id: &str,
    header: &v1::UpdateHeader,
) -> Result<(), Status> {
    let fed = &service.federation;
    let invalid = |message: String| Err(service.refuse(node_id, Status::invalid_argument(message)));
    if header.model_fingerprint != fed.fingerprint {
        return invalid(format!(
            "update has model fingerprint {}; the federation's model is {}",
            hex::encode(&header.model_fingerprint),
            hex::encode(fed.fingerprint)
        ));
    }
    let expected_bytes = fed.model.num_bytes();
    if header.total_bytes != expected_bytes as u64 {
        return invalid(format!(
            "update declares {} bytes; the model has {} parameters ({expected_bytes} bytes)",
            header.total_bytes,
            fed.model.num_parameters()
        ));
    }
    if header.num_examples == 0 {
        return invalid("update is based on 0 training examples".into());
    }
    if !header.train_loss.is_finite() {
        return invalid("update's training loss is NaN or infinite".into());
    }
    let base = Some(header.base_model_version.as_str());
    service
        .live
        .check_submission(node_id, header.round, StageKind::Fit, base)
        .map_err(|e| service.refuse(node_id, e.into()))
}
