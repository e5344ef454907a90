//! Receiving secure-aggregation messages.
//!
//! Each is decoded with the shared encoding (`cohort_crypto::secagg::wire`) and
//! handed to the open stage's aggregator, which checks round, stage, sender and
//! content; a refusal names what was wrong and the round goes on without it. The
//! masked input is streamed like a model update, header first, and read no
//! further than the largest input the model could need.

use cohort_crypto::secagg::{
    AdvertiseKeys, GraphReveal, MaskedInput, SecAggError, ShareKeys, SurvivorSignature,
    UnmaskResponse,
};
use cohort_proto::v1::{self, sec_agg_submission::Message};
use tonic::{Request, Response, Status, Streaming};

use super::FederationService;
use super::stream::{open_upload, read_body};
use crate::rounds::secure::{SecAggMessage, SecAggStep};
use crate::rounds::stage::StageKind;
use cohort_crypto::authz::Caller;

fn undecodable(service: &FederationService, node_id: &str, error: SecAggError) -> Status {
    service.refuse(node_id, Status::invalid_argument(error.to_string()))
}

/// Takes a key advertisement, a graph nonce, sealed shares, a survivor
/// signature or an unmask response.
pub(super) fn receive_message(
    service: &FederationService,
    request: Request<v1::SecAggSubmission>,
) -> Result<Response<v1::Ack>, Status> {
    let started = std::time::Instant::now();
    let node_id = service.registered_node(&request, request.get_ref().header.as_ref())?;
    let certificate = Some(Caller::of(&request)?.certificate().clone());
    let body = request.into_inner();
    let size = body.message.as_ref().map_or(0, |m| m.encoded_len());
    service.live.note_uploaded(&node_id, started, size);
    let message = match body.message {
        Some(Message::Advertisement(bytes)) => {
            AdvertiseKeys::from_bytes(&bytes).map(SecAggMessage::AdvertiseKeys)
        }
        Some(Message::GraphReveal(bytes)) => {
            GraphReveal::from_bytes(&bytes).map(SecAggMessage::GraphReveal)
        }
        Some(Message::ShareKeys(bytes)) => {
            ShareKeys::from_bytes(&bytes).map(SecAggMessage::ShareKeys)
        }
        Some(Message::SurvivorSignature(bytes)) => {
            SurvivorSignature::from_bytes(&bytes).map(SecAggMessage::SurvivorSignature)
        }
        Some(Message::UnmaskResponse(bytes)) => {
            UnmaskResponse::from_bytes(&bytes).map(SecAggMessage::UnmaskResponse)
        }
        None => {
            return Err(service.refuse(
                &node_id,
                Status::invalid_argument("secure-aggregation submission carries no message"),
            ));
        }
    }
    .map_err(|e| undecodable(service, &node_id, e))?;
    let step = message.step();
    service
        .live
        .submit_secure_aggregation(&node_id, body.round, message, certificate)
        .map_err(|e| service.refuse(&node_id, e.into()))?;
    Ok(Response::new(v1::Ack {
        message: format!("{} message for round {} accepted", step.name(), body.round),
    }))
}

/// Takes a masked input, streamed header first: checked against the open
/// stage and the model's widest input before anything else is read.
pub(super) async fn receive_masked_input(
    service: &FederationService,
    request: Request<Streaming<v1::MaskedInputChunk>>,
) -> Result<Response<v1::Ack>, Status> {
    let started = std::time::Instant::now();
    let (node_id, header, mut stream) = open_upload(service, request).await?;
    let declared = check_masked_header(service, &node_id, &header)?;
    let bytes = read_masked_input(service, &node_id, &mut stream, declared).await?;
    service.live.note_uploaded(&node_id, started, bytes.len());
    let message = MaskedInput::from_bytes(&bytes).map_err(|e| undecodable(service, &node_id, e))?;
    service
        .live
        .submit_secure_aggregation(
            &node_id,
            header.round,
            SecAggMessage::MaskedInput(message),
            None,
        )
        .map_err(|e| service.refuse(&node_id, e.into()))?;
    Ok(Response::new(v1::Ack {
        message: format!("masked input for round {} accepted", header.round),
    }))
}

/// The header against the open stage and the model: the size to read.
fn check_masked_header(
    service: &FederationService,
    node_id: &str,
    header: &v1::MaskedInputHeader,
) -> Result<usize, Status> {
    let kind = StageKind::SecureAggregation(SecAggStep::MaskedInput);
    service
        .live
        .check_submission(node_id, header.round, kind, None)
        .map_err(|e| service.refuse(node_id, e.into()))?;
    // The widest masked input: every value of the model and the weight at 64 bits.
    let most = MaskedInput::max_encoded_len(service.federation.model.num_parameters() + 1, 64);
    let declared = header.total_bytes;
    if declared > most as u64 {
        return Err(service.refuse(
            node_id,
            Status::invalid_argument(format!(
                "masked input declares {declared} bytes; a masked input of this model is at most {most}"
            )),
        ));
    }
    Ok(declared as usize)
}

/// Exactly the `declared` bytes of a masked input.
async fn read_masked_input(
    service: &FederationService,
    node_id: &str,
    stream: &mut Streaming<v1::MaskedInputChunk>,
    declared: usize,
) -> Result<Vec<u8>, Status> {
    let bytes = read_body(service, node_id, stream, declared).await?;
    if bytes.len() != declared {
        return Err(service.refuse(
            node_id,
            Status::invalid_argument(format!(
                "masked input ended after {} of the declared {declared} bytes",
                bytes.len()
            )),
        ));
    }
    Ok(bytes)
}
