#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! Encrypted inference over real mutual-TLS gRPC on loopback: a node that took
//! part in a federation serves its kept model to a requester; the node holds
//! evaluation keys only. Keys are generated once per test binary (fixed seeds).

use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cohort_client::data::{Dataset, FeatureStats, feature_stats, standardized};
use cohort_client::inference::{
    InferenceConfig, InferenceServer, InferenceService, ModelRegistry, REFUSAL_METADATA,
    RequestLog, ServedModel,
};
use cohort_client::model::{SavedModel, SavedSpec};
use cohort_client::node::{Node, NodeConfig};
use cohort_client::requester::key_files::RequesterKeys;
use cohort_client::requester::{Requester, check, predict_rows};
use cohort_crypto::he::{
    BitsConfig, ClientKey, EncryptedClass, EncryptedScores, InputQuantizer, KeyId, OutputMode,
    QuantizedInput, QuantizedModel, SizeLimits, decrypt, decrypt_class, encrypt, keygen,
};
use cohort_crypto::pki::{PkiDir, Validity};
use cohort_crypto::tls::ExpectedServer;
use cohort_crypto::tls::TlsFiles;
use cohort_crypto::tls::connector::{ServerAddress, connect};
use cohort_crypto::{PeerIdentity, Role};
use cohort_e2e::harness::local_data;
use cohort_e2e::{FEDERATION, Testbed, breast_cancer, plan, within};
use cohort_proto::inference::encrypted_inference_client::EncryptedInferenceClient;
use cohort_proto::inference::{
    DescribeModelRequest, KeyChunk, KeyStatusRequest, KeyUploadHeader, ListModelsRequest,
    PredictRequest, key_chunk,
};
use cohort_proto::model::{ParameterLayout, initial_parameters};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// The requester's keys, and a second client key (another requester's).
struct Keys {
    requester: RequesterKeys,
    other: ClientKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let (client, compressed) = keygen(Some(21)).unwrap();
        let evaluation_key = compressed.to_bytes(&SizeLimits::default()).unwrap();
        let (other, _) = keygen(Some(22)).unwrap();
        Keys {
            requester: RequesterKeys {
                client,
                evaluation_key,
            },
            other,
        }
    })
}

fn issue(pki: &PkiDir, role: Role, name: &str, sans: &[&str]) -> TlsFiles {
    let identity = PeerIdentity::new(role, name).unwrap();
    let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    let files = pki
        .issue(&identity, &sans, Validity::days_from_now(1).unwrap())
        .unwrap();
    TlsFiles {
        ca_certificate: pki.ca_certificate(),
        certificate: files.certificate,
        private_key: files.private_key,
    }
}

async fn start_server(node: &TlsFiles, service: InferenceService) -> InferenceServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls = cohort_crypto::tls::server_config(node).unwrap();
    let nothing_revoked = Arc::new(cohort_crypto::authz::RevocationList::none());
    InferenceServer::start(listener, tls, service, nothing_revoked)
        .await
        .unwrap()
}

/// These tests serve under several node names; any node's certificate will do
/// (a requester names one node, which `he_cli` and `mtls` exercise).
fn any_node() -> ExpectedServer {
    ExpectedServer::Role(Role::Node)
}

fn loopback(addr: SocketAddr) -> ServerAddress {
    ServerAddress {
        address: addr.to_string(),
        server_name: "localhost".into(),
    }
}

async fn requester(tls: &TlsFiles, addr: SocketAddr) -> Requester {
    let config = cohort_crypto::tls::client_config(tls, any_node()).unwrap();
    Requester::connect(&loopback(addr), config).await.unwrap()
}

async fn raw_client(tls: &TlsFiles, addr: SocketAddr) -> EncryptedInferenceClient<Channel> {
    let config = cohort_crypto::tls::client_config(tls, any_node()).unwrap();
    let channel: Channel = connect(&loopback(addr), config).await.unwrap();
    EncryptedInferenceClient::new(channel)
        .max_decoding_message_size(cohort_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(cohort_proto::MAX_MESSAGE_BYTES)
}

fn read_log(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_predictions_over_grpc_equal_the_quantized_clear_ones() {
    // A one-node federation whose node keeps its models; its certificate also
    // serves TLS on loopback.
    let testbed = Testbed::new(plan(3, 1));
    let pki = &testbed.provisioned.pki;
    let node_tls = issue(pki, Role::Node, "hospital-0", &["localhost", "127.0.0.1"]);
    let mut coordinator = testbed
        .start_coordinator("127.0.0.1:0".parse().unwrap())
        .await;
    let local = local_data(&breast_cancer(), 0.3, 5).unwrap();
    let models_dir = testbed.dir.path().join("models");
    let node = Node::new(
        NodeConfig {
            coordinator: loopback(coordinator.local_addr()),
            tls: node_tls.clone(),
            standby_coordinators: Vec::new(),
            federation_id: FEDERATION.into(),
            give_up_after: Duration::from_secs(60),
            models_dir: Some(models_dir.clone()),
        },
        local.clone(),
    )
    .unwrap();
    let node = tokio::spawn(node.run());
    let head = within("the federation", coordinator.wait()).await.unwrap();
    let summary = within("the node", node).await.unwrap().unwrap();
    assert_eq!(summary.final_model_version, head.model_version);
    coordinator.shutdown().await;

    // The node kept the final model; it serves it quantized with its training split.
    let saved = SavedModel::load(&SavedModel::path_in(&models_dir, &head.model_version)).unwrap();
    let kept = SavedModel::load_dir(&models_dir).unwrap();
    assert!(kept.len() >= 2, "every fetched global model is kept too");
    let served = ServedModel::quantize(
        saved,
        &local.train,
        BitsConfig::default(),
        OutputMode::Scores,
    )
    .unwrap();
    let accuracy = served.accuracy(&local.holdout).unwrap();
    assert!(
        accuracy.quantized_correct + accuracy.rows / 100 >= accuracy.float_correct,
        "quantized accuracy within 1 point of the float model's: {accuracy:?}"
    );
    let clear_model = served.quantized().clone();
    let scaling = served.saved().scaling.clone();
    let exported = testbed.dir.path().join("model.quantized.json");
    std::fs::write(&exported, served.quantized_json()).unwrap();
    let log_path = models_dir.join("requests.jsonl");
    let service = InferenceService::new(
        ModelRegistry::new(vec![served]).unwrap(),
        InferenceConfig::default(),
        RequestLog::open(&log_path).unwrap(),
    );
    let server = start_server(&node_tls, service.clone()).await;

    // The requester: its description of the model, then every held-out row.
    let clinic = issue(pki, Role::Requester, "clinic-x", &[]);
    let mut requester = requester(&clinic, server.local_addr()).await;
    let description = requester.describe(&head.model_version).await.unwrap();
    assert_eq!(description.num_features, 30);
    let listed = requester.list_models().await.unwrap();
    assert_eq!(listed, vec![description.clone()]);
    let keys = keys();
    let predictions = within(
        "encrypted predictions",
        predict_rows(
            &mut requester,
            &keys.requester,
            &description,
            &local.holdout,
        ),
    )
    .await
    .unwrap();
    assert_eq!(predictions.len(), local.holdout.len());
    let scaled = standardized(&scaling, &local.holdout).unwrap();
    let mut equal = 0;
    for (prediction, (row, _)) in predictions.iter().zip(scaled.rows()) {
        let q = clear_model.quantize_input(row).unwrap();
        assert_eq!(
            prediction.input, q,
            "the requester quantizes as the node's model"
        );
        let clear = clear_model.scores_clear(&q).unwrap();
        equal += usize::from(
            prediction.scores.as_ref() == Some(&clear)
                && prediction.class == clear_model.predict_clear(&q).unwrap(),
        );
    }
    assert_eq!(
        equal,
        predictions.len(),
        "encrypted = clear on every held-out row"
    );
    // The exported quantized model is the served one, and the clear check agrees.
    let model = check::load_quantized(&exported, &description).unwrap();
    let agreement = check::agreement(&model, &predictions).unwrap();
    assert_eq!(agreement.equal_scores, predictions.len());

    // One prediction end to end (key already registered): the latency a requester sees.
    let one = local.holdout.subset(&[0]).unwrap();
    let started = Instant::now();
    predict_rows(&mut requester, &keys.requester, &description, &one)
        .await
        .unwrap();
    eprintln!(
        "one LR prediction over mTLS gRPC (encrypt, key check, evaluate, decrypt): {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );

    // The answers decrypted with another client key are garbage.
    let limits = SizeLimits::default();
    let inputs: Vec<Vec<u8>> = predictions[..4]
        .iter()
        .map(|p| {
            encrypt(&keys.requester.client, &p.input)
                .unwrap()
                .to_bytes(&limits)
                .unwrap()
        })
        .collect();
    let answers = requester
        .predict_encrypted(&head.model_version, keys.requester.key_id(), inputs)
        .await
        .unwrap();
    let mut garbage = 0;
    for (answer, prediction) in answers.iter().zip(&predictions) {
        let scores = EncryptedScores::from_bytes(answer, &limits).unwrap();
        let served_scores = prediction.scores.as_ref().unwrap();
        assert_eq!(&decrypt(&keys.requester.client, &scores), served_scores);
        let wrong = decrypt(&keys.other, &scores);
        garbage += wrong
            .iter()
            .zip(served_scores)
            .filter(|(a, b)| a != b)
            .count();
    }
    assert_eq!(garbage, 8, "another client key must not decrypt any score");

    // The key was uploaded once and is cached; the log says who asked for what,
    // and holds no ciphertext.
    assert!(
        requester
            .key_registered(keys.requester.key_id())
            .await
            .unwrap()
    );
    assert_eq!(service.cached_keys(), 1);
    let log = read_log(&log_path);
    let registered = log
        .iter()
        .filter(|r| r["event"] == "key_registered")
        .count();
    assert_eq!(registered, 1, "{log:?}");
    let predicted: u64 = log
        .iter()
        .filter(|r| r["event"] == "predict")
        .map(|r| {
            assert_eq!(r["requester"], "cohort://requester/clinic-x");
            assert_eq!(r["model_version"], head.model_version.as_str());
            r["inputs"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(predicted, local.holdout.len() as u64 + 1 + 4);
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        text.len() < 400 * log.len(),
        "log lines are short: no ciphertext"
    );
    server.shutdown().await;
}

/// A served logistic regression with random weights, answering with its
/// scores: enough to exercise refusals.
fn random_model(data: &Dataset) -> ServedModel {
    random_model_answering(data, OutputMode::Scores)
}

fn random_model_answering(data: &Dataset, output: OutputMode) -> ServedModel {
    let spec = SavedSpec::logistic_regression(30, 2);
    let layout = ParameterLayout::of(&spec).unwrap();
    let scaling = FeatureStats::combine(&[feature_stats(data)]).unwrap();
    let saved = SavedModel::new(spec, scaling, initial_parameters(&layout, 3)).unwrap();
    ServedModel::quantize(saved, data, BitsConfig::default(), output).unwrap()
}

/// A node serving in class mode (the default of `inference serve`): it says so
/// in the model's description, and the requester gets, per row, exactly the
/// class the quantized model predicts in the clear, and no score; an answer is
/// an encrypted class, which does not read as scores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serving_in_class_mode_answers_the_clear_class_and_no_score() {
    let dir = tempfile::tempdir().unwrap();
    let pki = PkiDir::new(dir.path().join("pki"));
    pki.init("inference", Validity::days_from_now(1).unwrap())
        .unwrap();
    let node_tls = issue(&pki, Role::Node, "hospital-c", &["localhost", "127.0.0.1"]);
    let data = breast_cancer();
    let served = random_model_answering(&data, OutputMode::Class);
    let version = served.version().to_owned();
    let clear = served.quantized().clone();
    let service = InferenceService::new(
        ModelRegistry::new(vec![served]).unwrap(),
        InferenceConfig::default(),
        RequestLog::open(&dir.path().join("requests.jsonl")).unwrap(),
    );
    let server = start_server(&node_tls, service).await;
    let clinic = issue(&pki, Role::Requester, "clinic-c", &[]);
    let mut requester = requester(&clinic, server.local_addr()).await;
    let description = requester.describe(&version).await.unwrap();
    assert_eq!(description.output, "class");
    assert!(
        description.bootstraps_per_prediction > 0,
        "the argmax costs bootstraps, and the description says how many"
    );
    let rows = data.subset(&(0..16).collect::<Vec<_>>()).unwrap();
    let keys = &keys().requester;
    let predictions = within(
        "class-mode predictions",
        predict_rows(&mut requester, keys, &description, &rows),
    )
    .await
    .unwrap();
    assert_eq!(predictions.len(), 16);
    let mut classes = [0usize; 2];
    for prediction in &predictions {
        assert_eq!(prediction.scores, None, "class mode returns no score");
        assert_eq!(
            prediction.class,
            clear.predict_clear(&prediction.input).unwrap()
        );
        classes[prediction.class] += 1;
    }
    eprintln!("class-mode predictions per class: {classes:?}");

    // The raw answer is one encrypted class, not scores.
    let limits = SizeLimits::default();
    let input = predictions[0].input.clone();
    let answers = requester
        .predict_encrypted(
            &version,
            keys.key_id(),
            vec![
                encrypt(&keys.client, &input)
                    .unwrap()
                    .to_bytes(&limits)
                    .unwrap(),
            ],
        )
        .await
        .unwrap();
    assert!(EncryptedScores::from_bytes(&answers[0], &limits).is_err());
    let class = EncryptedClass::from_bytes(&answers[0], &limits).unwrap();
    assert_eq!(
        decrypt_class(&keys.client, &class).unwrap(),
        clear.predict_clear(&input).unwrap()
    );
    server.shutdown().await;
}

/// Asserts that `result` is the status `code` and that its message says `says`.
fn expect_status<T>(result: Result<T, Status>, code: Code, says: &str) {
    match result {
        Err(status) => assert!(
            status.code() == code && status.message().contains(says),
            "{status:?} should be {code:?} saying {says:?}"
        ),
        Ok(_) => panic!("accepted; expected {code:?} saying {says:?}"),
    }
}

fn upload(parts: Vec<key_chunk::Part>) -> impl tokio_stream::Stream<Item = KeyChunk> {
    tokio_stream::iter(
        parts
            .into_iter()
            .map(|part| KeyChunk { part: Some(part) })
            .collect::<Vec<_>>(),
    )
}

fn header(key_id: &str, total_bytes: u64) -> key_chunk::Part {
    key_chunk::Part::Header(KeyUploadHeader {
        key_id: key_id.to_owned(),
        total_bytes,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_nothing_is_cached() {
    let dir = tempfile::tempdir().unwrap();
    let pki = PkiDir::new(dir.path().join("pki"));
    pki.init("inference", Validity::days_from_now(1).unwrap())
        .unwrap();
    let node_tls = issue(&pki, Role::Node, "hospital-a", &["localhost", "127.0.0.1"]);
    let clinic = issue(&pki, Role::Requester, "clinic-x", &[]);
    let auditor = issue(&pki, Role::Auditor, "alice", &[]);
    let data = breast_cancer();
    let served = random_model(&data);
    let version = served.version().to_owned();
    let log_path = dir.path().join("requests.jsonl");
    let config = InferenceConfig::default();
    let service = InferenceService::new(
        ModelRegistry::new(vec![served]).unwrap(),
        config,
        RequestLog::open(&log_path).unwrap(),
    );
    let server = start_server(&node_tls, service.clone()).await;
    let addr = server.local_addr();
    let mut client = raw_client(&clinic, addr).await;
    let keys = keys();
    let key_id = keys.requester.key_id();
    let key_hex = key_id.to_hex();
    let key_bytes = &keys.requester.evaluation_key;

    // Only requesters are served.
    let mut audit_client = raw_client(&auditor, addr).await;
    expect_status(
        audit_client.list_models(ListModelsRequest {}).await,
        Code::PermissionDenied,
        "requester certificate",
    );

    // A model version the node does not have.
    let unknown = "ab".repeat(32);
    expect_status(
        client
            .describe_model(DescribeModelRequest {
                model_version: unknown.clone(),
            })
            .await,
        Code::NotFound,
        "serves no model version",
    );

    // An encrypted input the node could evaluate, once it has the key.
    let limits = SizeLimits::default();
    let model_width = InputQuantizer {
        input_bits: 8,
        scales: vec![1.0; 30],
    };
    let q = model_width.quantize(&[0.5; 30]).unwrap();
    let good_input = encrypt(&keys.requester.client, &q)
        .unwrap()
        .to_bytes(&limits)
        .unwrap();
    let predict = |model_version: &str, key_id: &str, inputs: Vec<Vec<u8>>| PredictRequest {
        model_version: model_version.to_owned(),
        key_id: key_id.to_owned(),
        encrypted_inputs: inputs,
    };

    // An unknown key id (never registered).
    expect_status(
        client
            .predict(predict(&version, &key_hex, vec![good_input.clone()]))
            .await,
        Code::NotFound,
        "no evaluation key",
    );
    expect_status(
        client
            .predict(predict(&unknown, &key_hex, vec![good_input.clone()]))
            .await,
        Code::NotFound,
        "serves no model version",
    );

    // Bad key uploads; after each, nothing is cached.
    let limit = config.limits.evaluation_key;
    let cases: Vec<(&str, Vec<key_chunk::Part>, &str)> = vec![
        (
            "oversized",
            vec![header(&key_hex, limit + 1)],
            "over this node's limit",
        ),
        (
            "cut short",
            vec![
                header(&key_hex, key_bytes.len() as u64),
                key_chunk::Part::Data(key_bytes[..1 << 20].to_vec()),
            ],
            "truncated key upload",
        ),
        (
            "longer than announced",
            vec![
                header(&KeyId::of(&key_bytes[..10]).to_hex(), 10),
                key_chunk::Part::Data(key_bytes[..20].to_vec()),
            ],
            "more than the 10 bytes",
        ),
        (
            "a truncated key blob",
            vec![
                header(&KeyId::of(&key_bytes[..4096]).to_hex(), 4096),
                key_chunk::Part::Data(key_bytes[..4096].to_vec()),
            ],
            "evaluation key refused",
        ),
        (
            "bytes not matching the announced id",
            vec![
                header(&key_hex, 4096),
                key_chunk::Part::Data(key_bytes[..4096].to_vec()),
            ],
            "hash to",
        ),
        (
            "no header",
            vec![key_chunk::Part::Data(key_bytes[..16].to_vec())],
            "must start with",
        ),
        ("a malformed key id", vec![header("xyz", 16)], "not 64 hex"),
    ];
    for (what, parts, says) in cases {
        let result = client.register_key(upload(parts)).await;
        expect_status(result, Code::InvalidArgument, says);
        assert_eq!(service.cached_keys(), 0, "{what}: nothing is cached");
    }
    let status = client
        .key_status(KeyStatusRequest {
            key_id: key_hex.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!status.registered);

    // The real key registers; another requester cannot see or use it.
    let mut clinic_requester = requester(&clinic, addr).await;
    clinic_requester
        .register_key(Arc::new(key_bytes.clone()))
        .await
        .unwrap();
    assert_eq!(service.cached_keys(), 1);
    let other_clinic = issue(&pki, Role::Requester, "clinic-y", &[]);
    let mut other = raw_client(&other_clinic, addr).await;
    expect_status(
        other
            .predict(predict(&version, &key_hex, vec![good_input.clone()]))
            .await,
        Code::NotFound,
        "no evaluation key",
    );

    // Bad ciphertexts, each refused before any evaluation.
    let short = InputQuantizer {
        input_bits: 8,
        scales: vec![1.0; 29],
    };
    let wrong_count = encrypt(&keys.requester.client, &short.quantize(&[0.5; 29]).unwrap())
        .unwrap()
        .to_bytes(&limits)
        .unwrap();
    let foreign = encrypt(&keys.other, &q).unwrap().to_bytes(&limits).unwrap();
    let cases: Vec<(&str, Vec<Vec<u8>>, &str)> = vec![
        (
            "wrong ciphertext count",
            vec![wrong_count],
            "has 29 ciphertexts",
        ),
        (
            "truncated ciphertext",
            vec![good_input[..good_input.len() - 1].to_vec()],
            "encrypted input 0",
        ),
        (
            "oversized ciphertext",
            vec![
                good_input.clone(),
                vec![0u8; (limits.encrypted_input + 1) as usize],
            ],
            "over the limit",
        ),
        ("input for another key", vec![foreign], "was made for key"),
        ("empty batch", vec![], "a batch holds"),
        (
            "batch too large",
            vec![good_input.clone(); config.max_batch as usize + 1],
            "a batch holds",
        ),
    ];
    for (what, inputs, says) in cases {
        let result = client.predict(predict(&version, &key_hex, inputs)).await;
        expect_status(result, Code::InvalidArgument, says);
        assert_eq!(service.cached_keys(), 1, "{what}: the cache is unchanged");
    }

    // The node still answers a good request, with the right number of scores.
    let answers = clinic_requester
        .predict_encrypted(&version, key_id, vec![good_input])
        .await
        .unwrap();
    let scores = EncryptedScores::from_bytes(&answers[0], &limits).unwrap();
    assert_eq!(decrypt(&keys.requester.client, &scores).len(), 2);

    // Every refusal is in the request log with its reason.
    let log = read_log(&log_path);
    let refused = log.iter().filter(|r| r["event"] == "refused").count();
    assert!(refused >= 15, "{refused} refusals logged: {log:?}");
    server.shutdown().await;
}

/// A node with the random model and `config`, a requester certificate for each
/// of `requesters`, and the evaluation key registered by each.
struct Limited {
    _dir: tempfile::TempDir,
    server: InferenceServer,
    service: InferenceService,
    version: String,
    /// The served model, to compute the scores in the clear.
    clear: QuantizedModel,
    requesters: Vec<(PeerIdentity, TlsFiles)>,
    log_path: std::path::PathBuf,
}

async fn limited_node(config: InferenceConfig, requesters: &[&str]) -> Limited {
    let dir = tempfile::tempdir().unwrap();
    let pki = PkiDir::new(dir.path().join("pki"));
    pki.init("inference", Validity::days_from_now(1).unwrap())
        .unwrap();
    let node_tls = issue(&pki, Role::Node, "hospital-a", &["localhost", "127.0.0.1"]);
    let served = random_model(&breast_cancer());
    let version = served.version().to_owned();
    let clear = served.quantized().clone();
    let log_path = dir.path().join("requests.jsonl");
    let service = InferenceService::new(
        ModelRegistry::new(vec![served]).unwrap(),
        config,
        RequestLog::open(&log_path).unwrap(),
    );
    let server = start_server(&node_tls, service.clone()).await;
    let mut issued = Vec::new();
    for name in requesters {
        let tls = issue(&pki, Role::Requester, name, &[]);
        requester(&tls, server.local_addr())
            .await
            .ensure_key(&keys().requester)
            .await
            .unwrap();
        issued.push((PeerIdentity::new(Role::Requester, name).unwrap(), tls));
    }
    Limited {
        _dir: dir,
        server,
        service,
        version,
        clear,
        requesters: issued,
        log_path,
    }
}

/// One input the model takes.
fn probe_input(model: &QuantizedModel) -> QuantizedInput {
    model.quantize_input(&[0.5; 30]).unwrap()
}

/// `count` encrypted copies of [`probe_input`].
fn encrypted_inputs(model: &QuantizedModel, count: usize) -> Vec<Vec<u8>> {
    let q = probe_input(model);
    let limits = SizeLimits::default();
    (0..count)
        .map(|_| {
            encrypt(&keys().requester.client, &q)
                .unwrap()
                .to_bytes(&limits)
                .unwrap()
        })
        .collect()
}

/// The requester of `tls` asks `node` for `count` predictions of
/// [`probe_input`]; each answer must decrypt to the clear scores.
async fn predict_and_check(node: &Limited, tls: &TlsFiles, count: usize) {
    let mut requester = requester(tls, node.server.local_addr()).await;
    let answers = within(
        "a prediction",
        requester.predict_encrypted(
            &node.version,
            keys().requester.key_id(),
            encrypted_inputs(&node.clear, count),
        ),
    )
    .await
    .unwrap();
    assert_eq!(answers.len(), count);
    let clear = node.clear.scores_clear(&probe_input(&node.clear)).unwrap();
    for answer in answers {
        let scores = EncryptedScores::from_bytes(&answer, &SizeLimits::default()).unwrap();
        assert_eq!(decrypt(&keys().requester.client, &scores), clear);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requester_past_its_predictions_in_flight_is_refused_and_others_are_served() {
    // A batch whose scores (2 × 16 KiB each) overflow HTTP/2 flow control (the
    // client's 2 MiB stream window) several times over: while its requester does
    // not read, its task cannot finish, so its slot is held for sure.
    let held_inputs = 256;
    let config = InferenceConfig {
        max_batch: held_inputs as u32,
        max_predictions_per_requester: NonZeroUsize::MIN,
        ..InferenceConfig::default()
    };
    let node = limited_node(config, &["clinic-x", "clinic-y"]).await;
    let addr = node.server.local_addr();
    let version = node.version.clone();
    let key_hex = keys().requester.key_id().to_hex();
    let predict = |inputs: Vec<Vec<u8>>| PredictRequest {
        model_version: version.clone(),
        key_id: key_hex.clone(),
        encrypted_inputs: inputs,
    };
    let (x, x_tls) = &node.requesters[0];
    let (y, y_tls) = &node.requesters[1];
    let mut x_client = raw_client(x_tls, addr).await;

    // clinic-x holds one prediction open, reading only its first answer.
    let mut held = x_client
        .predict(predict(encrypted_inputs(&node.clear, held_inputs)))
        .await
        .unwrap()
        .into_inner();
    let first = within("the first answer", held.message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.index, 0);
    assert_eq!(node.service.predictions_in_flight(x), 1);

    // A second one is refused at once; clinic-y is still served.
    expect_status(
        x_client
            .predict(predict(encrypted_inputs(&node.clear, 1)))
            .await,
        Code::ResourceExhausted,
        "cohort://requester/clinic-x already has 1 prediction in flight on this node; \
         wait for one to finish",
    );
    predict_and_check(&node, y_tls, 3).await;
    assert_eq!(
        node.service.predictions_in_flight(y),
        0,
        "a slot is freed before its stream ends"
    );
    assert_eq!(node.service.predictions_in_flight(x), 1, "still held");

    // clinic-x goes away: its task stops and frees the slot; it is served again.
    drop(held);
    within(
        "clinic-x's prediction to end",
        node.service.predictions_ended(x),
    )
    .await;
    predict_and_check(&node, x_tls, 2).await;

    // The refusal is in the request log, nothing else was refused.
    let refused: Vec<_> = read_log(&node.log_path)
        .into_iter()
        .filter(|r| r["event"] == "refused")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["requester"], "cohort://requester/clinic-x");
    assert_eq!(refused[0]["rpc"], "Predict");
    assert_eq!(refused[0]["code"], "ResourceExhausted");
    node.server.shutdown().await;
}

/// A `Predict` of `count` probe inputs that must be refused as past the
/// requester's query budget, with the metadata saying so.
async fn expect_over_budget(node: &Limited, tls: &TlsFiles, count: usize, says: &str) {
    let mut client = raw_client(tls, node.server.local_addr()).await;
    let result = client
        .predict(PredictRequest {
            model_version: node.version.clone(),
            key_id: keys().requester.key_id().to_hex(),
            encrypted_inputs: encrypted_inputs(&node.clear, count),
        })
        .await;
    let reason = result
        .as_ref()
        .err()
        .and_then(|status| status.metadata().get(REFUSAL_METADATA))
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    expect_status(result, Code::ResourceExhausted, says);
    assert_eq!(reason.as_deref(), Some("query-budget-exhausted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requester_past_its_query_budget_is_refused_and_others_are_served() {
    let config = InferenceConfig {
        max_rows_per_requester: NonZeroU64::new(5).unwrap(),
        ..InferenceConfig::default()
    };
    let node = limited_node(config, &["clinic-x", "clinic-y"]).await;
    let (x, x_tls) = &node.requesters[0];
    let (y, y_tls) = &node.requesters[1];

    predict_and_check(&node, x_tls, 3).await;
    assert_eq!(node.service.rows_used(x), 3);
    // 3 more would make 6 of 5: the whole batch is refused, nothing charged.
    expect_over_budget(
        &node,
        x_tls,
        3,
        "cohort://requester/clinic-x has used 3 of its 5 predictions on this node; a batch \
         of 3 would exceed its query budget",
    )
    .await;
    assert_eq!(node.service.rows_used(x), 3);
    // Exactly up to the budget is served; one more row is not.
    predict_and_check(&node, x_tls, 2).await;
    expect_over_budget(&node, x_tls, 1, "has used 5 of its 5 predictions").await;
    // clinic-y has a budget of its own.
    predict_and_check(&node, y_tls, 5).await;
    assert_eq!(
        (node.service.rows_used(x), node.service.rows_used(y)),
        (5, 5)
    );

    let refused: Vec<_> = read_log(&node.log_path)
        .into_iter()
        .filter(|r| r["event"] == "refused")
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused.iter().all(
        |r| r["requester"] == "cohort://requester/clinic-x" && r["code"] == "ResourceExhausted"
    ));
    node.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_evaluation_at_a_time_concurrent_predictions_queue_and_are_right() {
    let config = InferenceConfig {
        max_concurrent_evaluations: NonZeroUsize::MIN,
        ..InferenceConfig::default()
    };
    let node = limited_node(config, &["clinic-x", "clinic-y"]).await;
    let addr = node.server.local_addr();
    let rows = breast_cancer();
    let (x_rows, y_rows) = (
        rows.subset(&[0, 1, 2, 3, 4, 5]).unwrap(),
        rows.subset(&[6, 7, 8, 9, 10, 11]).unwrap(),
    );
    let mut x = requester(&node.requesters[0].1, addr).await;
    let mut y = requester(&node.requesters[1].1, addr).await;
    let description = x.describe(&node.version).await.unwrap();
    let keys = &keys().requester;
    let (x_predictions, y_predictions) = within("both predictions", async {
        tokio::join!(
            predict_rows(&mut x, keys, &description, &x_rows),
            predict_rows(&mut y, keys, &description, &y_rows),
        )
    })
    .await;
    let clear = &node.clear;
    for predictions in [x_predictions.unwrap(), y_predictions.unwrap()] {
        assert_eq!(predictions.len(), 6);
        for prediction in predictions {
            assert_eq!(
                prediction.scores,
                Some(clear.scores_clear(&prediction.input).unwrap())
            );
        }
    }
    let log = read_log(&node.log_path);
    assert!(log.iter().all(|r| r["event"] != "refused"), "{log:?}");
    node.server.shutdown().await;
}
