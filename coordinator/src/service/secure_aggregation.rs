//! Receiving secure-aggregation messages.
//!
//! Each is decoded with the shared encoding (`cohort_crypto::secagg::wire`) and
//! handed to the open stage's aggregator, which checks round, stage, sender and
//! content; a refusal names what was wrong and the round goes on without it. The
//! masked input is streamed like a model update, header first, and read no
//! further than the largest input the model could need.

use cohort_crypto::secagg::{AdvertiseKeys, MaskedInput, SecAggError, ShareKeys, UnmaskResponse};
use cohort_proto::v1::{self, masked_input_chunk::Part, sec_agg_submission::Message};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::{authenticate, refuse, require_registered};
use crate::federation::Federation;
use crate::rounds::secure::{SecAggMessage, SecAggStep};
use cohort_crypto::tls::acceptor::PeerInfo;

fn undecodable(fed: &Federation, node_id: &str, error: SecAggError) -> Status {
    refuse(fed, node_id, Status::invalid_argument(error.to_string()))
}

pub(super) fn receive_message(
    fed: &Federation,
    request: Request<v1::SecAggSubmission>,
) -> Result<Response<v1::Ack>, Status> {
    let node_id = authenticate(fed, &request, request.get_ref().header.as_ref())?;
    require_registered(fed, &node_id)?;
    let certificate = request
        .extensions()
        .get::<PeerInfo>()
        .map(|peer| peer.certificate.clone());
    let body = request.into_inner();
    let message = match body.message {
        Some(Message::Advertisement(bytes)) => {
            AdvertiseKeys::from_bytes(&bytes).map(SecAggMessage::AdvertiseKeys)
        }
        Some(Message::ShareKeys(bytes)) => {
            ShareKeys::from_bytes(&bytes).map(SecAggMessage::ShareKeys)
        }
        Some(Message::UnmaskResponse(bytes)) => {
            UnmaskResponse::from_bytes(&bytes).map(SecAggMessage::UnmaskResponse)
        }
        None => {
            return Err(refuse(
                fed,
                &node_id,
                Status::invalid_argument("secure-aggregation submission carries no message"),
            ));
        }
    }
    .map_err(|e| undecodable(fed, &node_id, e))?;
    let step = message.step();
    fed.submit_secure_aggregation(&node_id, body.round, message, certificate)
        .map_err(|e| refuse(fed, &node_id, e.into()))?;
    Ok(Response::new(v1::Ack {
        message: format!("{} message for round {} accepted", step.name(), body.round),
    }))
}

pub(super) async fn receive_masked_input(
    fed: &Federation,
    request: Request<Streaming<v1::MaskedInputChunk>>,
) -> Result<Response<v1::Ack>, Status> {
    let (metadata, extensions, mut stream) = request.into_parts();
    let first = stream.next().await.transpose()?;
    let probe = Request::from_parts(metadata, extensions, ());
    let header = match first.and_then(|c| c.part) {
        Some(Part::Header(header)) => header,
        _ => {
            let node = authenticate(fed, &probe, None).unwrap_or_default();
            return Err(refuse(
                fed,
                &node,
                Status::invalid_argument("a masked-input stream must start with its header"),
            ));
        }
    };
    let node_id = authenticate(fed, &probe, header.header.as_ref())?;
    require_registered(fed, &node_id)?;
    let invalid = |message: String| Err(refuse(fed, &node_id, Status::invalid_argument(message)));
    let step = SecAggStep::MaskedInput;
    fed.check_submission(&node_id, header.round, step.name(), None)
        .map_err(|e| refuse(fed, &node_id, e.into()))?;
    // The widest masked input: every value of the model and the weight at 64 bits.
    let most = MaskedInput::encoded_len(fed.layout.num_parameters() + 1, 64);
    let declared = header.total_bytes;
    if declared > most as u64 {
        return invalid(format!(
            "masked input declares {declared} bytes; a masked input of this model is at most {most}"
        ));
    }
    let declared = declared as usize;
    let mut bytes = Vec::with_capacity(declared);
    while let Some(chunk) = stream.next().await {
        match chunk?.part {
            Some(Part::Data(data)) => {
                if bytes.len() + data.len() > declared {
                    return invalid(format!(
                        "masked input carries more than the declared {declared} bytes"
                    ));
                }
                bytes.extend_from_slice(&data);
            }
            Some(Part::Header(_)) => {
                return invalid("a masked input has exactly one header".into());
            }
            None => return invalid("empty masked-input chunk".into()),
        }
    }
    if bytes.len() != declared {
        return invalid(format!(
            "masked input ended after {} of the declared {declared} bytes",
            bytes.len()
        ));
    }
    let message = MaskedInput::from_bytes(&bytes).map_err(|e| undecodable(fed, &node_id, e))?;
    fed.submit_secure_aggregation(
        &node_id,
        header.round,
        SecAggMessage::MaskedInput(message),
        None,
    )
    .map_err(|e| refuse(fed, &node_id, e.into()))?;
    Ok(Response::new(v1::Ack {
        message: format!("masked input for round {} accepted", header.round),
    }))
}
