//! Encrypted inference on the node: the `EncryptedInference` gRPC service through
//! which people outside the consortium get predictions from the node's models on
//! inputs the node never sees (TFHE, [`cohort_crypto::he`]).
//!
//! - [`admission`]: how many predictions each requester may have in flight;
//! - [`budget`]: how many inputs each requester may have evaluated in all (its
//!   query budget, against model extraction);
//! - [`registry`]: the models the node serves (kept during a federation), by
//!   version, quantized with the node's training split;
//! - [`key_cache`]: requesters' expanded evaluation keys, bounded and expiring;
//! - [`request_log`]: who asked for what (never the ciphertexts);
//! - [`service`]: the gRPC handlers and every check on what a requester sends;
//! - [`server`]: serving it over the federation's mutual TLS.
//!
//! The requester's side is [`crate::requester`].

pub mod admission;
pub mod budget;
pub mod key_cache;
pub mod registry;
pub mod request_log;
pub mod server;
pub mod service;

pub use admission::{AdmittedPrediction, PredictionAdmission, TooManyPredictions};
pub use budget::{DEFAULT_ROWS_PER_REQUESTER, QueryBudget, QueryBudgetExhausted};
pub use cohort_crypto::authz::REFUSAL_METADATA;
pub use key_cache::{KeyCache, KeyCacheConfig, KeyCacheError};
pub use registry::{ModelRegistry, RegistryError, ServedModel};
pub use request_log::{RequestEvent, RequestLog, RequestRecord};
pub use server::InferenceServer;
pub use service::{
    DEFAULT_PREDICTIONS_PER_REQUESTER, DEFAULT_REQUEST_RATE, InferenceConfig, InferenceService,
    available_cores,
};
