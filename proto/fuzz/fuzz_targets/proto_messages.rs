//! Decodes arbitrary bytes as every message of Cohort's protocols: the
//! federation's, the auditor API's and a node's encrypted-inference service.
//!
//! Checks, for each message type: decoding never panics, and a message that
//! decodes re-encodes to bytes that decode again and encode to the same bytes
//! (prost's encoding of a decoded message is stable, so the coordinator and a
//! node never disagree on what a message they relay says). `scripts/fuzz.sh`
//! checks that every `message` of every `.proto` file is listed here.
#![no_main]

use cohort_proto::{audit_v1, inference, v1};
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// Decodes `data` as an `M`; if that works, checks that its encoding is stable.
fn check<M: Message + Default>(data: &[u8]) {
    let Ok(message) = M::decode(data) else {
        return;
    };
    let encoded = message.encode_to_vec();
    assert_eq!(encoded.len(), message.encoded_len());
    let again = match M::decode(encoded.as_slice()) {
        Ok(again) => again,
        Err(e) => panic!(
            "a re-encoded {} does not decode: {e}",
            std::any::type_name::<M>()
        ),
    };
    assert_eq!(
        again.encode_to_vec(),
        encoded,
        "the encoding of a decoded {} is not stable",
        std::any::type_name::<M>()
    );
}

macro_rules! check_all {
    ($data:expr; $package:ident: $($message:ident),+ $(,)?) => {
        $( check::<$package::$message>($data); )+
    };
}

fuzz_target!(|data: &[u8]| {
    check_all!(data; v1:
        RequestHeader, RegisterRequest, RegisterResponse, ModelDescriptor, TensorSpec,
        PollTaskRequest, PollTaskResponse, Idle, Finished, Task,
        FeatureStatsTask, FeatureScaling, TrainingConfig, FitTask,
        SecAggFitTask, SecAggSetup, DistributedNoise, PeerAdvertisement,
        SecAggShareKeysTask, SecAggMaskedInputTask, SecAggUnmaskTask,
        SecAggSubmission, MaskedInputChunk, MaskedInputHeader, EvaluateTask,
        FetchModelRequest, ModelChunk, ModelChunkHeader, FeatureStatsSubmission,
        UpdateChunk, UpdateHeader, EvaluationSubmission, Ack, DatasetVersion,
        ErasureReport, ErasureReceipt,
    );
    check_all!(data; audit_v1:
        GetTreeHeadRequest, TreeHead, GetEntriesRequest, Entry, Entries,
        GetTreeHeadsRequest, TreeHeads, ConsistencyProofRequest,
        InclusionProofRequest, Proof, LineageRequest, ErasuresRequest, JsonAnswer,
    );
    check_all!(data; inference:
        ListModelsRequest, ListModelsResponse, DescribeModelRequest,
        ModelDescription, KeyStatusRequest, KeyStatusResponse, KeyChunk,
        KeyUploadHeader, RegisterKeyResponse, PredictRequest, PredictResponse,
    );
});
