//! The `EncryptedInference` gRPC service: checks who is asking and what they
//! sent, caches evaluation keys, and evaluates models on ciphertexts.
//!
//! **Promises.**
//! - Only peers whose mTLS certificate carries the role `requester`, is not
//!   revoked and is within its request rate are served: the server runs
//!   behind the one authorization layer of every Cohort server
//!   ([`cohort_crypto::authz`], see [`super::server`]), and each handler takes
//!   its [`Caller`] from it. The identity comes from the certificate.
//! - The node holds evaluation keys only; it never sees a client key, an input or
//!   a score in the clear.
//! - Each answer holds what the served model's output mode says, and nothing
//!   more ([`super::registry::ServedModel::output`], advertised in its
//!   description): in class mode the encrypted class of the row (the requester
//!   learns one class per row), in scores mode every encrypted class score (the
//!   requester learns the logits); both sanitized
//!   ([`cohort_crypto::he::sanitize`]).
//! - Every refusal is a gRPC status naming what was wrong: `NotFound` for a model
//!   version the node does not serve or a key id it does not hold (for this
//!   requester); `InvalidArgument` for a truncated, oversized, corrupted or
//!   mislabelled key or ciphertext, a ciphertext count that is not the model's
//!   input width, an empty or too large batch; `ResourceExhausted` when too many
//!   keys are being uploaded at once, or when the requester already has
//!   [`InferenceConfig::max_predictions_per_requester`] predictions in flight
//!   (refused before anything is computed), or when a batch would take the
//!   requester past its query budget of
//!   [`InferenceConfig::max_rows_per_requester`] encrypted inputs in all
//!   ([`super::budget`]; refused whole, nothing evaluated). These two refusals
//!   carry the typed reason ([`RefusalReason`], metadata
//!   [`cohort_crypto::authz::REFUSAL_METADATA`]) `too-many-in-flight` or
//!   `query-budget-exhausted`, so a requester can tell "retry later" from
//!   "never again". A refused request leaves the key
//!   cache as it was: a key is cached only after it was received in full, hashed
//!   to its announced id, parsed, validated and expanded.
//! - Key parsing, expansion and evaluation run on the blocking pool
//!   (`spawn_blocking`): they are CPU-bound and must not stall the runtime.
//! - At most [`InferenceConfig::max_concurrent_evaluations`] inputs are evaluated
//!   at once, across all requesters: each input's evaluation waits for a permit
//!   of one FIFO-fair semaphore, so concurrent predictions interleave input by
//!   input instead of one batch holding the cores. A permit is held only while
//!   its input is evaluated, never while a score waits for the requester to read
//!   it.
//! - A prediction whose requester went away (its response stream dropped) stops:
//!   the input being evaluated finishes, no further input is queued or
//!   evaluated, and its slot among the requester's predictions in flight is freed.
//! - Each accepted or refused request is recorded in the [`RequestLog`].

use std::num::{NonZeroU64, NonZeroUsize};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cohort_crypto::PeerIdentity;
use cohort_crypto::authz::{
    Caller, Refusal, RefusalObserver, RefusalReason, RefusedCall, RequestRate,
};
use cohort_crypto::he::{
    CompressedEvaluationKey, EncryptedInput, EvaluationKey, KeyId, PARAMS, SizeLimits,
    evaluate_output,
};
use cohort_proto::inference::encrypted_inference_server::EncryptedInference;
use cohort_proto::inference::{
    DescribeModelRequest, KeyChunk, KeyStatusRequest, KeyStatusResponse, ListModelsRequest,
    ListModelsResponse, ModelDescription, PredictRequest, PredictResponse, RegisterKeyResponse,
    key_chunk,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Code, Request, Response, Status, Streaming};

use super::admission::{AdmittedPrediction, PredictionAdmission};
use super::budget::{DEFAULT_ROWS_PER_REQUESTER, QueryBudget};
use super::key_cache::{KeyCache, KeyCacheConfig};
use super::registry::{ModelRegistry, ServedModel};
use super::request_log::{RequestEvent, RequestLog};

/// Limits of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InferenceConfig {
    /// Size limits for keys and ciphertexts.
    pub limits: SizeLimits,
    /// Most inputs in one `Predict`.
    pub max_batch: u32,
    /// How many evaluation keys are cached, how big, and for how long.
    pub key_cache: KeyCacheConfig,
    /// Key uploads handled at once (each holds up to `limits.evaluation_key`
    /// bytes, then an expanded key, in memory).
    pub max_concurrent_key_uploads: usize,
    /// Inputs evaluated at once, across all requesters. An evaluation keeps a
    /// core busy (about 7 s for a digits-MLP input), so more than the node's
    /// cores only slows every prediction down and starves the node's own
    /// training.
    pub max_concurrent_evaluations: NonZeroUsize,
    /// `Predict` calls one requester may have in flight; past it a new one is
    /// refused, so one requester cannot fill the evaluation queue.
    pub max_predictions_per_requester: NonZeroUsize,
    /// Encrypted inputs (rows) one requester may have evaluated in all, since
    /// the node started: its query budget against model extraction
    /// ([`super::budget`]).
    pub max_rows_per_requester: NonZeroU64,
    /// Calls of any kind one requester may make, sustained and in a burst
    /// (the authorization layer's limit; past it, RESOURCE_EXHAUSTED with the
    /// reason `rate-limited`).
    pub request_rate: RequestRate,
}

/// Default of [`InferenceConfig::request_rate`]: 20 calls a second, bursts of
/// 40 (a prediction costs a requester a few calls).
pub const DEFAULT_REQUEST_RATE: (u32, u32) = (20, 40);

impl Default for InferenceConfig {
    /// Default size limits, 64 inputs per batch, the default key cache, 2 uploads,
    /// one evaluation per core, 2 predictions in flight, 10 000 rows in all
    /// and [`DEFAULT_REQUEST_RATE`] per requester.
    fn default() -> Self {
        Self {
            limits: SizeLimits::default(),
            max_batch: 64,
            key_cache: KeyCacheConfig::default(),
            max_concurrent_key_uploads: 2,
            max_concurrent_evaluations: available_cores(),
            max_predictions_per_requester: DEFAULT_PREDICTIONS_PER_REQUESTER,
            max_rows_per_requester: DEFAULT_ROWS_PER_REQUESTER,
            request_rate: RequestRate::new(DEFAULT_REQUEST_RATE.0, DEFAULT_REQUEST_RATE.1),
        }
    }
}

/// The refusal for `reason`, explained by `message`, as a status.
fn refusal(reason: RefusalReason, message: String) -> Status {
    Refusal::new(reason, message).into()
}

/// Default of [`InferenceConfig::max_predictions_per_requester`]: one batch
/// evaluated while the requester prepares or reads the next.
pub const DEFAULT_PREDICTIONS_PER_REQUESTER: NonZeroUsize = match NonZeroUsize::new(2) {
    Some(two) => two,
    None => panic!("2 is not 0"),
};

/// The cores this process may use (1 if the system cannot say); the default of
/// [`InferenceConfig::max_concurrent_evaluations`].
pub fn available_cores() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

/// Cached keys are owned by the requester that registered them.
type CacheKey = (PeerIdentity, KeyId);

/// The service; cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct InferenceService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: ModelRegistry,
    config: InferenceConfig,
    keys: Mutex<KeyCache<CacheKey, Arc<EvaluationKey>>>,
    uploads: Semaphore,
    /// Permits to evaluate one input; shared with the prediction tasks, whose
    /// blocking evaluations own a permit each.
    evaluations: Arc<Semaphore>,
    admission: PredictionAdmission,
    budget: QueryBudget,
    log: RequestLog,
}

impl InferenceService {
    /// The service over `registry`'s models, within `config`'s limits, logging
    /// requests to `log`.
    pub fn new(registry: ModelRegistry, config: InferenceConfig, log: RequestLog) -> Self {
        Self {
            inner: Arc::new(Inner {
                registry,
                keys: Mutex::new(KeyCache::new(config.key_cache)),
                uploads: Semaphore::new(config.max_concurrent_key_uploads),
                evaluations: Arc::new(Semaphore::new(config.max_concurrent_evaluations.get())),
                admission: PredictionAdmission::new(config.max_predictions_per_requester),
                budget: QueryBudget::new(config.max_rows_per_requester),
                config,
                log,
            }),
        }
    }

    /// Number of evaluation keys held (expired ones dropped first).
    pub fn cached_keys(&self) -> usize {
        let mut keys = self.inner.lock_keys();
        keys.purge_expired(Instant::now());
        keys.len()
    }

    /// The service's limits.
    pub fn config(&self) -> InferenceConfig {
        self.inner.config
    }

    /// How many `Predict` calls of `requester` are in flight (admitted, and their
    /// task not ended yet).
    pub fn predictions_in_flight(&self, requester: &PeerIdentity) -> usize {
        self.inner.admission.in_flight(requester)
    }

    /// Encrypted inputs charged to `requester`'s query budget so far.
    pub fn rows_used(&self, requester: &PeerIdentity) -> u64 {
        self.inner.budget.used(requester)
    }

    /// Returns once `requester` has no `Predict` call in flight.
    pub async fn predictions_ended(&self, requester: &PeerIdentity) {
        self.inner.admission.ended(requester).await;
    }

    /// What the authorization layer calls with each call it refuses: the
    /// refusal goes into the request log, under the method refused.
    pub fn refusal_observer(&self) -> RefusalObserver {
        let inner = self.inner.clone();
        std::sync::Arc::new(move |refused: &RefusedCall| {
            let (requester, certificate_sha256) = match &refused.peer {
                Some(peer) => (peer.identity.to_string(), peer.certificate_sha256.as_str()),
                None => ("unidentified".to_owned(), ""),
            };
            let rpc = refused.path.rsplit('/').next().unwrap_or_default();
            inner.log.record(
                &requester,
                certificate_sha256,
                RequestEvent::Refused {
                    rpc: rpc.to_owned(),
                    code: format!("{:?}", refused.refusal.reason.code()),
                    reason: refused.refusal.to_string(),
                },
            );
        })
    }
}

impl Inner {
    fn lock_keys(&self) -> std::sync::MutexGuard<'_, KeyCache<CacheKey, Arc<EvaluationKey>>> {
        // A panic while holding the lock cannot leave the map half-updated
        // (every mutation is one HashMap call), so a poisoned lock is usable.
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a refusal and returns it.
    fn refuse(&self, caller: &Caller, rpc: &'static str, status: Status) -> Status {
        self.log.record(
            &caller.identity().to_string(),
            caller.certificate_sha256(),
            RequestEvent::Refused {
                rpc: rpc.to_owned(),
                code: format!("{:?}", status.code()),
                reason: status.message().to_owned(),
            },
        );
        status
    }

    fn description(&self, version: &str) -> Option<ModelDescription> {
        self.registry
            .get(version)
            .map(|model| model.description(self.config.max_batch))
    }

    fn unknown_model(&self, version: &str) -> Status {
        if let Err(e) = self.registry.withdrawals_readable() {
            return Status::unavailable(format!(
                "this node serves no model until its withdrawn-models list is readable: {e}"
            ));
        }
        if self.registry.is_withdrawn(version) {
            return refusal(
                RefusalReason::ModelWithdrawn,
                format!("model version {version} was withdrawn: an erasure request tainted it"),
            );
        }
        Status::not_found(format!(
            "this node serves no model version {version:?}; ListModels names the {} it serves",
            self.registry.models().count()
        ))
    }

    /// Receives a key upload: header, then exactly the announced bytes.
    async fn receive_key(
        &self,
        mut stream: Streaming<KeyChunk>,
    ) -> Result<(KeyId, Vec<u8>), Status> {
        let limit = self.config.limits.evaluation_key;
        let header = match stream.next().await {
            Some(Ok(KeyChunk {
                part: Some(key_chunk::Part::Header(header)),
            })) => header,
            Some(Err(status)) => return Err(status),
            Some(Ok(_)) => {
                return Err(Status::invalid_argument(
                    "a key upload must start with a KeyUploadHeader",
                ));
            }
            None => return Err(Status::invalid_argument("empty key upload")),
        };
        let claimed = parse_key_id(&header.key_id)?;
        if header.total_bytes == 0 {
            return Err(Status::invalid_argument("the key upload announces 0 bytes"));
        }
        if header.total_bytes > limit {
            return Err(Status::invalid_argument(format!(
                "evaluation key of {} bytes is over this node's limit of {limit} bytes",
                header.total_bytes
            )));
        }
        let total = header.total_bytes as usize;
        let mut bytes = Vec::with_capacity(total);
        while let Some(chunk) = stream.next().await {
            match chunk?.part {
                Some(key_chunk::Part::Data(data)) => {
                    if bytes.len() + data.len() > total {
                        return Err(Status::invalid_argument(format!(
                            "the key upload sends more than the {total} bytes it announced"
                        )));
                    }
                    bytes.extend_from_slice(&data);
                }
                Some(key_chunk::Part::Header(_)) => {
                    return Err(Status::invalid_argument("a key upload has one header only"));
                }
                None => return Err(Status::invalid_argument("a key chunk carries nothing")),
            }
        }
        if bytes.len() < total {
            return Err(Status::invalid_argument(format!(
                "truncated key upload: received {} of the {total} bytes announced",
                bytes.len()
            )));
        }
        let actual = KeyId::of(&bytes);
        if actual != claimed {
            return Err(Status::invalid_argument(format!(
                "the key bytes hash to {actual}, the header announces {claimed}"
            )));
        }
        Ok((claimed, bytes))
    }
}

fn parse_key_id(text: &str) -> Result<KeyId, Status> {
    let mut id = [0u8; 32];
    hex::decode_to_slice(text, &mut id).map_err(|_| {
        Status::invalid_argument(format!(
            "key id {text:?} is not 64 hex digits (SHA-256 of the compressed evaluation key)"
        ))
    })?;
    Ok(KeyId(id))
}

/// Runs CPU-bound work on the blocking pool; a panic there is an internal error.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Status::internal(format!("background task failed: {e}")))
}

type PredictStream = Pin<Box<dyn Stream<Item = Result<PredictResponse, Status>> + Send>>;

/// What every input of one prediction is evaluated with.
struct Evaluation {
    key: Arc<EvaluationKey>,
    model: Arc<ServedModel>,
    limits: SizeLimits,
}

impl Evaluation {
    /// Evaluates one input on the blocking pool; `permit` is released when the
    /// evaluation ends, even if the prediction's task is gone by then.
    async fn run(
        &self,
        input: EncryptedInput,
        permit: OwnedSemaphorePermit,
    ) -> Result<Vec<u8>, Status> {
        let key = self.key.clone();
        let model = self.model.clone();
        let limits = self.limits;
        blocking(move || {
            let _permit = permit;
            evaluate_output(&key, model.quantized(), model.output(), &input)
                .and_then(|output| output.to_bytes(&limits))
        })
        .await?
        .map_err(|e| Status::new(Code::Internal, format!("evaluation: {e}")))
    }
}

/// A prediction's task: evaluates and sends each input's scores (see
/// [`send_scores`]), then frees the requester's slot, `admitted`, before its
/// stream ends, so a requester that read its answers to the end may at once
/// start another prediction. (Should the task be dropped instead, the slot is
/// freed with it.)
async fn stream_scores(
    evaluation: Evaluation,
    inputs: Vec<EncryptedInput>,
    evaluations: Arc<Semaphore>,
    admitted: AdmittedPrediction,
    tx: mpsc::Sender<Result<PredictResponse, Status>>,
) {
    send_scores(&evaluation, inputs, &evaluations, &tx).await;
    drop(admitted);
    drop(tx);
}

/// Evaluates each input in turn, one evaluation permit at a time, and sends its
/// scores; until the last input, a failure, or the requester going away.
async fn send_scores(
    evaluation: &Evaluation,
    inputs: Vec<EncryptedInput>,
    evaluations: &Arc<Semaphore>,
    tx: &mpsc::Sender<Result<PredictResponse, Status>>,
) {
    for (index, input) in inputs.into_iter().enumerate() {
        // A closed channel: the requester went away; stop computing, and stop
        // queueing for a permit it would waste.
        let permit = tokio::select! {
            biased;
            () = tx.closed() => return,
            permit = evaluations.clone().acquire_owned() => permit,
        };
        let outcome = match permit {
            Ok(permit) => evaluation.run(input, permit).await,
            // Never closed; should it be, the node is going down.
            Err(_) => Err(Status::unavailable("this node stopped evaluating")),
        }
        .map(|encrypted_scores| PredictResponse {
            index: index as u32,
            encrypted_scores,
        });
        let failed = outcome.is_err();
        if tx.send(outcome).await.is_err() || failed {
            return;
        }
    }
}

#[tonic::async_trait]
impl EncryptedInference for InferenceService {
    async fn list_models(
        &self,
        request: Request<ListModelsRequest>,
    ) -> Result<Response<ListModelsResponse>, Status> {
        let inner = &self.inner;
        Caller::of(&request)?;
        let models = inner
            .registry
            .models()
            .map(|model| model.description(inner.config.max_batch))
            .collect();
        Ok(Response::new(ListModelsResponse { models }))
    }

    async fn describe_model(
        &self,
        request: Request<DescribeModelRequest>,
    ) -> Result<Response<ModelDescription>, Status> {
        let inner = &self.inner;
        let caller = Caller::of(&request)?;
        let version = &request.get_ref().model_version;
        inner
            .description(version)
            .map(Response::new)
            .ok_or_else(|| inner.refuse(&caller, "DescribeModel", inner.unknown_model(version)))
    }

    async fn key_status(
        &self,
        request: Request<KeyStatusRequest>,
    ) -> Result<Response<KeyStatusResponse>, Status> {
        let inner = &self.inner;
        let caller = Caller::of(&request)?;
        let key_id = parse_key_id(&request.get_ref().key_id)
            .map_err(|status| inner.refuse(&caller, "KeyStatus", status))?;
        let registered = inner
            .lock_keys()
            .contains(&(caller.identity().clone(), key_id), Instant::now());
        Ok(Response::new(KeyStatusResponse {
            registered,
            expires_after_idle_secs: if registered {
                inner.config.key_cache.idle_expiry.as_secs()
            } else {
                0
            },
        }))
    }

    async fn register_key(
        &self,
        request: Request<Streaming<KeyChunk>>,
    ) -> Result<Response<RegisterKeyResponse>, Status> {
        let inner = self.inner.clone();
        let caller = Caller::of(&request)?;
        let refuse = |status: Status| inner.refuse(&caller, "RegisterKey", status);
        let _permit = inner.uploads.try_acquire().map_err(|_| {
            refuse(Status::resource_exhausted(
                "too many evaluation keys are being uploaded to this node; retry later",
            ))
        })?;
        let (key_id, bytes) = inner
            .receive_key(request.into_inner())
            .await
            .map_err(&refuse)?;
        let limits = inner.config.limits;
        let key_bytes = bytes.len() as u64;
        let expanded = blocking(move || {
            CompressedEvaluationKey::from_bytes(&bytes, &limits).map(|key| key.expand())
        })
        .await
        .map_err(&refuse)?
        .map_err(|e| {
            refuse(Status::invalid_argument(format!(
                "evaluation key refused: {e}"
            )))
        })?;
        let evicted = inner
            .lock_keys()
            .insert(
                (caller.identity().clone(), key_id),
                Arc::new(expanded),
                PARAMS.expanded_key_payload_bytes(),
                Instant::now(),
            )
            .map_err(|e| refuse(Status::resource_exhausted(e.to_string())))?;
        if !evicted.is_empty() {
            tracing::info!(
                evicted = evicted.len(),
                "evaluation keys evicted from the cache"
            );
        }
        inner.log.record(
            &caller.identity().to_string(),
            caller.certificate_sha256(),
            RequestEvent::KeyRegistered {
                key_id: key_id.to_hex(),
                bytes: key_bytes,
            },
        );
        Ok(Response::new(RegisterKeyResponse {
            key_id: key_id.to_hex(),
            expires_after_idle_secs: inner.config.key_cache.idle_expiry.as_secs(),
        }))
    }

    type PredictStream = PredictStream;

    async fn predict(
        &self,
        request: Request<PredictRequest>,
    ) -> Result<Response<Self::PredictStream>, Status> {
        let inner = self.inner.clone();
        let caller = Caller::of(&request)?;
        let refuse = |status: Status| inner.refuse(&caller, "Predict", status);
        // First, so that a requester at its limit costs nothing more; the slot
        // is freed on every path (refused below, or the task ends).
        let admitted = inner
            .admission
            .admit(caller.identity())
            .map_err(|e| refuse(refusal(RefusalReason::TooManyInFlight, e.to_string())))?;
        let body = request.into_inner();
        let model = inner
            .registry
            .get(&body.model_version)
            .ok_or_else(|| refuse(inner.unknown_model(&body.model_version)))?;
        let key_id = parse_key_id(&body.key_id).map_err(&refuse)?;
        let key = inner
            .lock_keys()
            .get(&(caller.identity().clone(), key_id), Instant::now())
            .ok_or_else(|| {
                refuse(Status::not_found(format!(
                    "no evaluation key {key_id} registered by {} on this node (never \
                     registered, or expired or evicted): call RegisterKey first",
                    caller.identity()
                )))
            })?;
        let count = body.encrypted_inputs.len();
        let max_batch = inner.config.max_batch as usize;
        if count == 0 || count > max_batch {
            return Err(refuse(Status::invalid_argument(format!(
                "a batch holds 1 to {max_batch} encrypted inputs, this one {count}"
            ))));
        }
        let limits = inner.config.limits;
        let expected = model.quantized().num_inputs();
        let inputs = parse_inputs(&body, key_id, expected, &limits).map_err(&refuse)?;
        // Last, so that only a batch that would be evaluated is charged.
        inner
            .budget
            .charge(caller.identity(), count as u64)
            .map_err(|e| refuse(refusal(RefusalReason::QueryBudgetExhausted, e.to_string())))?;
        inner.log.record(
            &caller.identity().to_string(),
            caller.certificate_sha256(),
            RequestEvent::Predict {
                model_version: body.model_version.clone(),
                key_id: key_id.to_hex(),
                inputs: count,
            },
        );
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(stream_scores(
            Evaluation { key, model, limits },
            inputs,
            inner.evaluations.clone(),
            admitted,
            tx,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// The request's encrypted inputs, each checked to be well formed, made for
/// `key_id` and of the model's `expected` width; the error names the input.
fn parse_inputs(
    body: &PredictRequest,
    key_id: KeyId,
    expected: usize,
    limits: &SizeLimits,
) -> Result<Vec<EncryptedInput>, Status> {
    let mut inputs = Vec::with_capacity(body.encrypted_inputs.len());
    for (index, bytes) in body.encrypted_inputs.iter().enumerate() {
        let input = EncryptedInput::from_bytes(bytes, limits)
            .map_err(|e| Status::invalid_argument(format!("encrypted input {index}: {e}")))?;
        if input.key_id() != key_id {
            return Err(Status::invalid_argument(format!(
                "encrypted input {index} was made for key {}, the request names key {key_id}",
                input.key_id()
            )));
        }
        if input.len() != expected {
            return Err(Status::invalid_argument(format!(
                "encrypted input {index} has {} ciphertexts; model {} takes {expected} features",
                input.len(),
                body.model_version
            )));
        }
        inputs.push(input);
    }
    Ok(inputs)
}
