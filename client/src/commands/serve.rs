//! `cohort-node inference serve`: answer encrypted predictions with the models
//! this node kept during a federation.

use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use cohort_client::inference::{
    DEFAULT_PREDICTIONS_PER_REQUESTER, DEFAULT_ROWS_PER_REQUESTER, InferenceConfig,
    InferenceServer, InferenceService, KeyCacheConfig, ModelRegistry, RequestLog, ServedModel,
    available_cores,
};
use cohort_client::model::SavedModel;
use cohort_crypto::authz::RevocationList;
use cohort_crypto::he::{BitsConfig, OutputMode};
use cohort_crypto::{PeerIdentity, Role};

use super::{DataArgs, TlsArgs};

#[derive(Subcommand)]
pub enum InferenceCommand {
    /// Serve the EncryptedInference gRPC service (mutual TLS; requester
    /// certificates only) until interrupted.
    Serve(ServeArgs),
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on, host:port.
    #[arg(long)]
    listen: SocketAddr,
    /// The folder `cohort-node run --models-dir` filled.
    #[arg(long)]
    models_dir: PathBuf,
    /// Serve only these model versions (repeatable); default: every saved model.
    #[arg(long = "model")]
    models: Vec<String>,
    /// This node's TLS files; the certificate must be a node's, issued with
    /// `--san` for the name requesters dial.
    #[command(flatten)]
    tls: TlsArgs,
    /// The node's data, split as in `run`: the training split calibrates the
    /// quantization, the holdout measures the quantized accuracy.
    #[command(flatten)]
    data: DataArgs,
    /// Append-only JSON-lines request log (default: MODELS_DIR/requests.jsonl).
    #[arg(long)]
    request_log: Option<PathBuf>,
    /// Also write each quantized model to DIR/{version}.quantized.json, for
    /// trusted parties' `he predict --check-plaintext` (it holds the weights).
    #[arg(long)]
    export_quantized: Option<PathBuf>,
    /// What each answer tells the requester: `class` (the default) computes the
    /// argmax under encryption, so the requester learns one class per row;
    /// `scores` returns every class score (the model's logits), with which a
    /// requester extracts a d-feature linear model in d + 1 queries. Class mode
    /// supports single-layer models (logistic regression, up to 16 classes) and
    /// costs bootstraps; a model it cannot serve is refused at start, saying why.
    #[arg(long, default_value_t = OutputMode::Class)]
    output: OutputMode,
    /// Most encrypted inputs in one Predict call.
    #[arg(long, default_value_t = 64)]
    max_batch: u32,
    /// Most evaluation keys cached at once (about 230 MiB of memory each).
    #[arg(long, default_value_t = 4)]
    max_keys: usize,
    /// Drop a cached evaluation key after this many seconds without use.
    #[arg(long, default_value_t = 3600)]
    key_idle_secs: u64,
    /// Most encrypted inputs evaluated at once, across all requesters (each
    /// keeps a core busy); default: the number of cores.
    #[arg(long, value_parser = at_least_one)]
    max_concurrent_evaluations: Option<NonZeroUsize>,
    /// Most Predict calls one requester may have in flight; past it a new one
    /// is refused (RESOURCE_EXHAUSTED).
    #[arg(long, default_value_t = DEFAULT_PREDICTIONS_PER_REQUESTER, value_parser = at_least_one)]
    max_predictions_per_requester: NonZeroUsize,
    /// Query budget: most encrypted inputs one requester may have evaluated in
    /// all while this node runs; a batch past it is refused
    /// (RESOURCE_EXHAUSTED, cohort-refusal: query-budget-exhausted). Bounds how
    /// much of a model a requester can extract by querying it.
    #[arg(long, default_value_t = DEFAULT_ROWS_PER_REQUESTER, value_parser = at_least_one_row)]
    max_rows_per_requester: NonZeroU64,
    /// The federation's CA-signed revocation list (`revoked.signed`, written
    /// by `cohort-coordinator pki revoke`): a requester whose certificate it
    /// lists is refused from its next call on; the file is re-read when it
    /// changes, without a restart, and refused (every call with it) unless
    /// the federation's CA signed it and it is not older than the list
    /// adopted. Default: nothing revoked.
    #[arg(long)]
    revocation_list: Option<PathBuf>,
}

/// A row budget of at least 1.
fn at_least_one_row(text: &str) -> Result<NonZeroU64, String> {
    let rows: u64 = text
        .parse()
        .map_err(|_| format!("expected a whole number, got {text:?}"))?;
    NonZeroU64::new(rows)
        .ok_or_else(|| "must be at least 1 (with 0 the node would serve no prediction)".to_owned())
}

/// A count of at least 1: with 0 the node would serve no prediction at all.
fn at_least_one(text: &str) -> Result<NonZeroUsize, String> {
    let count: usize = text
        .parse()
        .map_err(|_| format!("expected a whole number, got {text:?}"))?;
    NonZeroUsize::new(count)
        .ok_or_else(|| "must be at least 1 (with 0 the node would serve no prediction)".to_owned())
}

pub async fn inference(command: InferenceCommand) -> anyhow::Result<()> {
    match command {
        InferenceCommand::Serve(args) => serve(args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let tls_files = args.tls.files();
    let chain = cohort_crypto::tls::load_certificates(&tls_files.certificate)?;
    let identity = PeerIdentity::from_certificate(&chain[0])
        .with_context(|| format!("identity of {}", tls_files.certificate.display()))?;
    anyhow::ensure!(
        identity.role() == Role::Node,
        "{identity} is not a node certificate: only a consortium node serves its models"
    );
    let tls = cohort_crypto::tls::server_config(&tls_files)?;
    let registry =
        ModelRegistry::new(served_models(&args)?)?.watching_withdrawals(&args.models_dir);
    let log_path = args
        .request_log
        .unwrap_or_else(|| args.models_dir.join("requests.jsonl"));
    let log = RequestLog::open(&log_path)?;
    let config = InferenceConfig {
        max_batch: args.max_batch,
        key_cache: KeyCacheConfig {
            max_keys: args.max_keys,
            idle_expiry: Duration::from_secs(args.key_idle_secs),
            ..KeyCacheConfig::default()
        },
        max_concurrent_evaluations: args
            .max_concurrent_evaluations
            .unwrap_or_else(available_cores),
        max_predictions_per_requester: args.max_predictions_per_requester,
        max_rows_per_requester: args.max_rows_per_requester,
        ..InferenceConfig::default()
    };
    let service = InferenceService::new(registry, config, log);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let revocations = match &args.revocation_list {
        Some(path) => RevocationList::watch(path, &tls_files.ca_certificate)?,
        None => RevocationList::none(),
    };
    let mut server = InferenceServer::start(listener, tls, service, Arc::new(revocations)).await?;
    server.serving().await;
    println!(
        "{identity} serving encrypted inference on {} (request log {}; {} evaluations at \
         once, {} predictions in flight and {} rows in all per requester)",
        server.local_addr(),
        log_path.display(),
        config.max_concurrent_evaluations,
        config.max_predictions_per_requester,
        config.max_rows_per_requester
    );
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            println!("interrupted; stopping");
            server.shutdown().await;
        }
        () = server.wait() => anyhow::bail!("the inference server stopped"),
    }
    Ok(())
}

/// The saved models `args` selects (all of them by default), quantized for
/// encrypted inference against the node's training data, each reported and,
/// with `--export-quantized`, written out. Fails if a named model is not saved
/// or none is.
fn served_models(args: &ServeArgs) -> anyhow::Result<Vec<ServedModel>> {
    let (train, holdout) = args.data.load_split()?;
    let mut saved = SavedModel::load_dir(&args.models_dir)?;
    if !args.models.is_empty() {
        for wanted in &args.models {
            anyhow::ensure!(
                saved.iter().any(|m| &m.model_version == wanted),
                "no saved model {wanted} in {}",
                args.models_dir.display()
            );
        }
        saved.retain(|m| args.models.contains(&m.model_version));
    }
    anyhow::ensure!(
        !saved.is_empty(),
        "no saved models in {}: run `cohort-node run --models-dir {}` first",
        args.models_dir.display(),
        args.models_dir.display()
    );
    let mut served = Vec::with_capacity(saved.len());
    for model in saved {
        let model = ServedModel::quantize(model, &train, BitsConfig::default(), args.output)?;
        report(&model, &holdout)?;
        if let Some(dir) = &args.export_quantized {
            std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
            let path = dir.join(format!("{}.quantized.json", model.version()));
            std::fs::write(&path, model.quantized_json())
                .with_context(|| path.display().to_string())?;
            println!("exported {}", path.display());
        }
        served.push(model);
    }
    Ok(served)
}

/// Prints what is served and how the quantized model compares with the float one.
fn report(model: &ServedModel, holdout: &cohort_client::data::Dataset) -> anyhow::Result<()> {
    let spec = &model.saved().spec;
    println!(
        "model {} ({} {}→{:?}→{}): {}",
        model.version(),
        spec.kind,
        spec.num_features,
        spec.hidden_layers,
        spec.num_classes,
        model.quantized().summary()
    );
    println!(
        "  answers: {} ({} bootstraps per prediction)",
        match model.output().mode() {
            OutputMode::Class => "the predicted class only",
            OutputMode::Scores => "every class score",
        },
        model.output().bootstrap_count(model.quantized())
    );
    if !holdout.is_empty() {
        let accuracy = model.accuracy(holdout)?;
        println!(
            "  holdout ({} rows): float {:.2} %, quantized {:.2} %, agreement {} rows",
            accuracy.rows,
            100.0 * accuracy.float_accuracy(),
            100.0 * accuracy.quantized_accuracy(),
            accuracy.agreement
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluation_limits_are_at_least_one() {
        assert_eq!(at_least_one("3"), Ok(NonZeroUsize::new(3).unwrap()));
        let zero = at_least_one("0").unwrap_err();
        assert!(zero.contains("must be at least 1"), "{zero}");
        let word = at_least_one("many").unwrap_err();
        assert!(word.contains("whole number"), "{word}");
    }
}
