//! One connection to the coordinator: the federation's RPCs with this node's
//! request header filled in.

use cohort_proto::model::decode_f32;
use cohort_proto::v1::federation_client::FederationClient;
use cohort_proto::v1::{self, poll_task_response::Outcome};
use cohort_proto::{MAX_CHUNK_BYTES, MAX_MESSAGE_BYTES, PROTOCOL_VERSION};
use tokio_stream::StreamExt;
use tonic::Status;
use tonic::transport::Channel;

#[derive(Debug)]
pub(super) struct Session {
    client: FederationClient<Channel>,
    header: v1::RequestHeader,
}

/// A trained model ready to upload.
#[derive(Debug)]
pub(super) struct Upload<'a> {
    pub round: u64,
    pub base_model_version: &'a str,
    pub fingerprint: &'a [u8],
    pub num_examples: u64,
    pub train_loss: f64,
    pub encoded: Vec<u8>,
}

impl Session {
    pub fn new(channel: Channel, federation_id: &str, node_id: &str) -> Self {
        Self {
            client: FederationClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            header: v1::RequestHeader {
                protocol_version: PROTOCOL_VERSION,
                federation_id: federation_id.to_owned(),
                node_id: node_id.to_owned(),
            },
        }
    }

    fn header(&self) -> Option<v1::RequestHeader> {
        Some(self.header.clone())
    }

    pub async fn register(
        &mut self,
        num_features: usize,
        num_train_examples: u64,
        num_holdout_examples: u64,
        dataset: &v1::DatasetVersion,
        model_fingerprint: Vec<u8>,
    ) -> Result<v1::RegisterResponse, Status> {
        let request = v1::RegisterRequest {
            header: self.header(),
            num_features: num_features as u32,
            num_train_examples,
            num_holdout_examples,
            dataset: Some(dataset.clone()),
            model_fingerprint,
        };
        Ok(self.client.register(request).await?.into_inner())
    }

    /// Polls for the next task, acknowledging the tainted versions this
    /// node has `withdrawn`; returns the task and the coordinator's taint list.
    pub async fn poll(&mut self, withdrawn: Vec<String>) -> Result<(Outcome, Vec<String>), Status> {
        let request = v1::PollTaskRequest {
            header: self.header(),
            withdrawn_models: withdrawn,
        };
        let answer = self.client.poll_task(request).await?.into_inner();
        let outcome = answer
            .outcome
            .ok_or_else(|| Status::internal("poll answer carries no outcome"))?;
        Ok((outcome, answer.tainted_models))
    }

    /// Downloads a model version and checks its fingerprint, size and content address.
    pub async fn fetch_model(
        &mut self,
        version: &str,
        fingerprint: &[u8; 32],
        num_parameters: usize,
    ) -> Result<Vec<f32>, Status> {
        let request = v1::FetchModelRequest {
            header: self.header(),
            model_version: version.to_owned(),
        };
        let mut stream = self.client.fetch_model(request).await?.into_inner();
        let expected_bytes = num_parameters * 4;
        // Grown as chunks arrive: the size is the coordinator's claim.
        let mut bytes = Vec::with_capacity(expected_bytes.min(cohort_proto::MAX_CHUNK_BYTES));
        let mut first = true;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if first {
                let header = chunk
                    .header
                    .ok_or_else(|| Status::data_loss("model stream has no header"))?;
                if header.model_fingerprint != fingerprint {
                    return Err(Status::data_loss(
                        "model fingerprint differs from the registered model's",
                    ));
                }
                if header.total_bytes != expected_bytes as u64 {
                    return Err(Status::data_loss(format!(
                        "model has {} bytes, expected {expected_bytes}",
                        header.total_bytes
                    )));
                }
                first = false;
            }
            if bytes.len() + chunk.data.len() > expected_bytes {
                return Err(Status::data_loss("model stream is longer than announced"));
            }
            bytes.extend_from_slice(&chunk.data);
        }
        let address = cohort_proto::model::model_version(fingerprint, &bytes);
        if address != version {
            return Err(Status::data_loss(format!(
                "model content hashes to {address}, not the requested {version}"
            )));
        }
        decode_f32(&bytes, num_parameters).map_err(|e| Status::data_loss(e.to_string()))
    }

    pub async fn submit_feature_stats(
        &mut self,
        count: u64,
        sum: Vec<f64>,
        sum_of_squares: Vec<f64>,
    ) -> Result<(), Status> {
        let request = v1::FeatureStatsSubmission {
            header: self.header(),
            count,
            sum,
            sum_of_squares,
        };
        self.client.submit_feature_stats(request).await?;
        Ok(())
    }

    pub async fn submit_update(&mut self, upload: Upload<'_>) -> Result<(), Status> {
        let header = v1::UpdateChunk {
            part: Some(v1::update_chunk::Part::Header(v1::UpdateHeader {
                header: self.header(),
                round: upload.round,
                base_model_version: upload.base_model_version.to_owned(),
                model_fingerprint: upload.fingerprint.to_vec(),
                num_examples: upload.num_examples,
                total_bytes: upload.encoded.len() as u64,
                train_loss: upload.train_loss,
            })),
        };
        let chunks: Vec<v1::UpdateChunk> = std::iter::once(header)
            .chain(
                upload
                    .encoded
                    .chunks(MAX_CHUNK_BYTES)
                    .map(|data| v1::UpdateChunk {
                        part: Some(v1::update_chunk::Part::Data(data.to_vec())),
                    }),
            )
            .collect();
        self.client
            .submit_update(tokio_stream::iter(chunks))
            .await?;
        Ok(())
    }

    pub async fn submit_evaluation(
        &mut self,
        evaluation: v1::EvaluationSubmission,
    ) -> Result<(), Status> {
        let request = v1::EvaluationSubmission {
            header: self.header(),
            ..evaluation
        };
        self.client.submit_evaluation(request).await?;
        Ok(())
    }

    /// Sends a key advertisement, sealed shares or revealed shares.
    pub async fn submit_secure_aggregation(
        &mut self,
        round: u64,
        message: v1::sec_agg_submission::Message,
    ) -> Result<(), Status> {
        let request = v1::SecAggSubmission {
            header: self.header(),
            round,
            message: Some(message),
        };
        self.client.submit_sec_agg(request).await?;
        Ok(())
    }

    /// Streams an encoded masked input, header first.
    pub async fn submit_masked_input(
        &mut self,
        round: u64,
        encoded: Vec<u8>,
    ) -> Result<(), Status> {
        use v1::masked_input_chunk::Part;
        let header = v1::MaskedInputChunk {
            part: Some(Part::Header(v1::MaskedInputHeader {
                header: self.header(),
                round,
                total_bytes: encoded.len() as u64,
            })),
        };
        let chunks: Vec<v1::MaskedInputChunk> = std::iter::once(header)
            .chain(
                encoded
                    .chunks(MAX_CHUNK_BYTES)
                    .map(|data| v1::MaskedInputChunk {
                        part: Some(Part::Data(data.to_vec())),
                    }),
            )
            .collect();
        self.client
            .submit_masked_input(tokio_stream::iter(chunks))
            .await?;
        Ok(())
    }
}
