//! Receiving a streamed model update.
//!
//! The header comes first and is checked against the open stage *before* any
//! parameters are read, so a stale, duplicate or mis-shaped upload costs the
//! coordinator one small message. Parameters are then read up to the size the
//! model needs and no further.

use cohort_proto::model::decode_f32;
use cohort_proto::v1::{self, update_chunk::Part};
use ndarray::Array1;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::{authenticate, refuse, require_registered};
use crate::federation::Federation;
use crate::rounds::stage::StageResult;
use crate::strategy::FitResult;

pub(super) async fn receive_update(
    fed: &Federation,
    request: Request<Streaming<v1::UpdateChunk>>,
) -> Result<Response<v1::Ack>, Status> {
    let (metadata, extensions, mut stream) = request.into_parts();
    let first = stream.next().await.transpose()?;
    let header = match first.and_then(|c| c.part) {
        Some(Part::Header(header)) => header,
        _ => {
            let probe = Request::from_parts(metadata, extensions, ());
            let node = authenticate(fed, &probe, None).unwrap_or_default();
            return Err(refuse(
                fed,
                &node,
                Status::invalid_argument("an update stream must start with its header"),
            ));
        }
    };
    let probe = Request::from_parts(metadata, extensions, ());
    let node_id = authenticate(fed, &probe, header.header.as_ref())?;
    require_registered(fed, &node_id)?;
    let invalid = |message: String| Err(refuse(fed, &node_id, Status::invalid_argument(message)));

    if header.model_fingerprint != fed.fingerprint {
        return invalid(format!(
            "update has model fingerprint {}; the federation's model is {}",
            hex::encode(&header.model_fingerprint),
            hex::encode(fed.fingerprint)
        ));
    }
    let expected_bytes = fed.layout.num_bytes();
    if header.total_bytes != expected_bytes as u64 {
        return invalid(format!(
            "update declares {} bytes; the model has {} parameters ({expected_bytes} bytes)",
            header.total_bytes,
            fed.layout.num_parameters()
        ));
    }
    if header.num_examples == 0 {
        return invalid("update is based on 0 training examples".into());
    }
    if !header.train_loss.is_finite() {
        return invalid("update's training loss is NaN or infinite".into());
    }
    fed.check_submission(
        &node_id,
        header.round,
        "fit",
        Some(&header.base_model_version),
    )
    .map_err(|e| refuse(fed, &node_id, e.into()))?;

    let mut bytes = Vec::with_capacity(expected_bytes);
    while let Some(chunk) = stream.next().await {
        match chunk?.part {
            Some(Part::Data(data)) => {
                if bytes.len() + data.len() > expected_bytes {
                    return invalid(format!(
                        "update carries more than the declared {expected_bytes} bytes"
                    ));
                }
                bytes.extend_from_slice(&data);
            }
            Some(Part::Header(_)) => return invalid("an update has exactly one header".into()),
            None => return invalid("empty update chunk".into()),
        }
    }
    let parameters = decode_f32(&bytes, fed.layout.num_parameters()).map_err(|e| {
        refuse(
            fed,
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
    fed.submit(&node_id, header.round, result)
        .map_err(|e| refuse(fed, &node_id, e.into()))?;
    tracing::debug!(node = %node_id, round = header.round, "update accepted");
    Ok(Response::new(v1::Ack {
        message: format!("update for round {} accepted", header.round),
    }))
}
