//! The requester's side of encrypted inference (`cohort-node he ...`): keep a TFHE
//! key pair, prepare inputs the way the node's model expects, call a node's
//! `EncryptedInference` service, decrypt the answers.
//!
//! - [`key_files`]: the key folder (client key 0600, compressed evaluation key);
//! - [`InputEncoder`]: raw feature rows → standardized with the model's scaling →
//!   quantized with the node's published quantizer, from a [`ModelDescription`];
//! - [`Requester`]: the gRPC calls (the key goes up in 4 MiB chunks);
//! - [`predict_rows`]: the whole flow for a batch of rows;
//! - [`check`]: `--check-plaintext`, the same quantized computation in the clear.
//!
//! Only ciphertexts and the evaluation key leave the requester; the client key
//! never does.

pub mod check;
pub mod key_files;

use std::sync::Arc;

use cohort_crypto::he::{
    EncryptedInput, EncryptedOutput, InputQuantizer, KeyId, OutputMode, QuantizedInput, SizeLimits,
    decrypt_output, encrypt,
};
use cohort_proto::inference::encrypted_inference_client::EncryptedInferenceClient;
use cohort_proto::inference::{
    DescribeModelRequest, KeyChunk, KeyStatusRequest, KeyUploadHeader, ListModelsRequest,
    ModelDescription, PredictRequest, RegisterKeyResponse, key_chunk,
};
use cohort_proto::scaling::FeatureScaling;
use cohort_proto::{MAX_CHUNK_BYTES, MAX_MESSAGE_BYTES};
use tokio_stream::StreamExt;
use tonic::Status;
use tonic::transport::Channel;

use crate::data::{DataError, Dataset, standardized};
use cohort_crypto::tls::connector::{ConnectError, ServerAddress};
use key_files::RequesterKeys;

/// Why a prediction could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RequesterError {
    /// No mutual-TLS channel to the node could be opened.
    #[error(transparent)]
    Transport(#[from] ConnectError),
    /// The node answered a call with an error status.
    #[error("the node refused: {}: {}", code_name(.0), .0.message())]
    Rpc(#[from] Status),
    /// The node's model description is inconsistent (its scaling or input
    /// scales do not fit its feature count).
    #[error("the node's model description is unusable: {0}")]
    Description(String),
    /// The input rows could not be standardized.
    #[error("input rows: {0}")]
    Data(#[from] DataError),
    /// One input row could not be quantized or encrypted.
    #[error("row {row}: {reason}")]
    Row {
        /// The row (0-based).
        row: usize,
        /// Why.
        reason: String,
    },
    /// The node's answers are out of order, missing, malformed or of the wrong
    /// width.
    #[error("the node's answer is unusable: {0}")]
    Answer(String),
}

/// The status code, with the typed refusal reason if the node gave one.
fn code_name(status: &Status) -> String {
    match cohort_crypto::authz::RefusalReason::of(status) {
        Some(reason) => format!("{:?} ({reason})", status.code()),
        None => format!("{:?}", status.code()),
    }
}

/// Prepares raw rows for one model: standardize, then quantize.
#[derive(Debug, Clone, PartialEq)]
pub struct InputEncoder {
    /// The standardization the model was trained with.
    pub scaling: FeatureScaling,
    /// The quantization of standardized features into the model's integer
    /// inputs.
    pub quantizer: InputQuantizer,
}

impl InputEncoder {
    /// From the node's description of the model; refuses an inconsistent one.
    pub fn from_description(description: &ModelDescription) -> Result<Self, RequesterError> {
        let width = description.num_features as usize;
        let scaling = FeatureScaling {
            mean: description.scaling_mean.clone(),
            std: description.scaling_std.clone(),
        };
        scaling
            .validate(width)
            .map_err(|e| RequesterError::Description(e.to_string()))?;
        if description.input_scales.len() != width {
            return Err(RequesterError::Description(format!(
                "{} input scales for {width} features",
                description.input_scales.len()
            )));
        }
        Ok(Self {
            scaling,
            quantizer: InputQuantizer {
                input_bits: description.input_bits,
                scales: description.input_scales.clone(),
            },
        })
    }

    /// Quantized inputs for every row of `rows` (raw features).
    pub fn encode(&self, rows: &Dataset) -> Result<Vec<QuantizedInput>, RequesterError> {
        let scaled = standardized(&self.scaling, rows)?;
        scaled
            .rows()
            .enumerate()
            .map(|(row, (features, _))| {
                self.quantizer
                    .quantize(features)
                    .map_err(|e| RequesterError::Row {
                        row,
                        reason: e.to_string(),
                    })
            })
            .collect()
    }
}

/// One decrypted prediction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    /// The quantized input that was encrypted.
    pub input: QuantizedInput,
    /// Decrypted class scores (integers in the model's score unit), only when
    /// the node serves scores (`ModelDescription.output` is `"scores"`).
    pub scores: Option<Vec<i64>>,
    /// The predicted class: index of the largest score (first on ties).
    pub class: usize,
}

/// What the node's answers for the described model hold: `"class"` or
/// `"scores"`; empty (a node older than the field) means scores.
pub fn output_mode(description: &ModelDescription) -> Result<OutputMode, RequesterError> {
    if description.output.is_empty() {
        return Ok(OutputMode::Scores);
    }
    description
        .output
        .parse()
        .map_err(|e: cohort_crypto::he::UnknownOutputMode| {
            RequesterError::Description(e.to_string())
        })
}

/// Reads and decrypts one answer of `mode`, checking it against the model's
/// number of classes.
fn decrypt_answer(
    keys: &RequesterKeys,
    answer: &[u8],
    mode: OutputMode,
    num_classes: usize,
    limits: &SizeLimits,
) -> Result<cohort_crypto::he::Prediction, RequesterError> {
    let unusable = |e: cohort_crypto::he::HeError| RequesterError::Answer(e.to_string());
    let output = EncryptedOutput::from_bytes(answer, mode, limits).map_err(unusable)?;
    let prediction = decrypt_output(&keys.client, &output).map_err(unusable)?;
    let width = match (&output, &prediction.scores) {
        (EncryptedOutput::Class(class), _) => class.num_classes(),
        (_, Some(scores)) => scores.len(),
        (_, None) => 0,
    };
    if width != num_classes {
        return Err(RequesterError::Answer(format!(
            "an answer for {width} classes from a model of {num_classes} classes"
        )));
    }
    Ok(prediction)
}

/// A connection to a node's `EncryptedInference` service.
#[derive(Debug, Clone)]
pub struct Requester {
    client: EncryptedInferenceClient<Channel>,
}

impl Requester {
    /// Connects over mutual TLS (the requester's certificate must have the role
    /// `requester`). `tls` names the node expected
    /// (`client_config(files, ExpectedServer::node(NAME))`): any other server
    /// is refused in the handshake.
    pub async fn connect(
        node: &ServerAddress,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Self, RequesterError> {
        let channel = cohort_crypto::tls::connector::connect(node, tls).await?;
        Ok(Self::new(channel))
    }

    /// A requester over an already open channel.
    pub fn new(channel: Channel) -> Self {
        Self {
            client: EncryptedInferenceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        }
    }

    /// The models the node serves. Fails with the node's status if it refuses
    /// the call.
    pub async fn list_models(&mut self) -> Result<Vec<ModelDescription>, Status> {
        Ok(self
            .client
            .list_models(ListModelsRequest {})
            .await?
            .into_inner()
            .models)
    }

    /// The description of the served model `model_version`. Fails with the
    /// node's status if it refuses the call or does not serve that version.
    pub async fn describe(&mut self, model_version: &str) -> Result<ModelDescription, Status> {
        Ok(self
            .client
            .describe_model(DescribeModelRequest {
                model_version: model_version.to_owned(),
            })
            .await?
            .into_inner())
    }

    /// Whether the node holds this requester's key `key_id`.
    pub async fn key_registered(&mut self, key_id: KeyId) -> Result<bool, Status> {
        Ok(self
            .client
            .key_status(KeyStatusRequest {
                key_id: key_id.to_hex(),
            })
            .await?
            .into_inner()
            .registered)
    }

    /// Uploads a serialized compressed evaluation key in chunks.
    pub async fn register_key(
        &mut self,
        key_bytes: Arc<Vec<u8>>,
    ) -> Result<RegisterKeyResponse, Status> {
        let header = KeyChunk {
            part: Some(key_chunk::Part::Header(KeyUploadHeader {
                key_id: KeyId::of(&key_bytes).to_hex(),
                total_bytes: key_bytes.len() as u64,
            })),
        };
        let chunks = key_bytes.len().div_ceil(MAX_CHUNK_BYTES);
        let data = (0..chunks).map(move |i| {
            let end = ((i + 1) * MAX_CHUNK_BYTES).min(key_bytes.len());
            KeyChunk {
                part: Some(key_chunk::Part::Data(
                    key_bytes[i * MAX_CHUNK_BYTES..end].to_vec(),
                )),
            }
        });
        let stream = tokio_stream::iter(std::iter::once(header).chain(data));
        Ok(self.client.register_key(stream).await?.into_inner())
    }

    /// Uploads the evaluation key unless the node already holds it; true if it
    /// was uploaded. (The id comes from the client key: hashing 86 MiB of key
    /// bytes on every call would cost more than a prediction.)
    pub async fn ensure_key(&mut self, keys: &RequesterKeys) -> Result<bool, Status> {
        if self.key_registered(keys.key_id()).await? {
            return Ok(false);
        }
        self.register_key(Arc::new(keys.evaluation_key.clone()))
            .await?;
        Ok(true)
    }

    /// One `Predict` call: serialized encrypted inputs in, serialized encrypted
    /// outputs (scores or class, as the model's description says) out, in the
    /// same order.
    pub async fn predict_encrypted(
        &mut self,
        model_version: &str,
        key_id: KeyId,
        encrypted_inputs: Vec<Vec<u8>>,
    ) -> Result<Vec<Vec<u8>>, RequesterError> {
        let expected = encrypted_inputs.len();
        let mut stream = self
            .client
            .predict(PredictRequest {
                model_version: model_version.to_owned(),
                key_id: key_id.to_hex(),
                encrypted_inputs,
            })
            .await?
            .into_inner();
        let mut out = Vec::with_capacity(expected);
        while let Some(response) = stream.next().await {
            let response = response?;
            if response.index as usize != out.len() {
                return Err(RequesterError::Answer(format!(
                    "answer {} arrived in position {}",
                    response.index,
                    out.len()
                )));
            }
            out.push(response.encrypted_scores);
        }
        if out.len() != expected {
            return Err(RequesterError::Answer(format!(
                "{} answers for {expected} inputs",
                out.len()
            )));
        }
        Ok(out)
    }
}

/// The whole flow for `rows` (raw features): encode with the model's
/// description, encrypt, make sure the node has the evaluation key, predict in
/// batches of the node's `max_batch`, decrypt the class (and the scores when
/// the description's output mode is `scores`).
pub async fn predict_rows(
    requester: &mut Requester,
    keys: &RequesterKeys,
    description: &ModelDescription,
    rows: &Dataset,
) -> Result<Vec<Prediction>, RequesterError> {
    let encoder = InputEncoder::from_description(description)?;
    let mode = output_mode(description)?;
    let inputs = encoder.encode(rows)?;
    requester.ensure_key(keys).await?;
    let limits = SizeLimits::default();
    let batch = description.max_batch.max(1) as usize;
    let mut predictions = Vec::with_capacity(inputs.len());
    for (batch_index, chunk) in inputs.chunks(batch).enumerate() {
        let encrypted = chunk
            .iter()
            .enumerate()
            .map(|(i, input)| {
                let row = batch_index * batch + i;
                let fail = |e: cohort_crypto::he::HeError| RequesterError::Row {
                    row,
                    reason: e.to_string(),
                };
                encrypt(&keys.client, input)
                    .and_then(|ct: EncryptedInput| ct.to_bytes(&limits))
                    .map_err(fail)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let answers = requester
            .predict_encrypted(&description.model_version, keys.key_id(), encrypted)
            .await?;
        for (input, answer) in chunk.iter().zip(answers) {
            let num_classes = description.num_classes as usize;
            let prediction = decrypt_answer(keys, &answer, mode, num_classes, &limits)?;
            predictions.push(Prediction {
                input: input.clone(),
                class: prediction.class,
                scores: prediction.scores,
            });
        }
    }
    Ok(predictions)
}
