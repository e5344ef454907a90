//! `cohort-node he`: the requester's commands — make a TFHE key pair, ask a node
//! for encrypted predictions.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use cohort_client::data::{CsvOptions, LabelColumn, load_csv};
use cohort_client::requester::key_files::{
    CLIENT_KEY_FILE, EVALUATION_KEY_FILE, generate_keys, read_keys,
};
use cohort_client::requester::{Prediction, Requester, check, output_mode, predict_rows};
use cohort_crypto::authz::RevocationList;
use cohort_crypto::he::OutputMode;
use cohort_crypto::tls::ExpectedServer;
use cohort_crypto::tls::connector::ServerAddress;
use cohort_proto::inference::ModelDescription;

use super::{TlsArgs, parse_label_column};

#[derive(Subcommand)]
pub enum HeCommand {
    /// Generate a key pair: DIR/client.key (secret, 0600, stays here) and
    /// DIR/evaluation.key (uploaded to nodes; cannot decrypt).
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Encrypt rows, have a node evaluate its model on them, decrypt and print
    /// the predictions as CSV: row and class, then the class scores only when
    /// the node serves the model in scores mode (`inference serve --output`).
    Predict(Box<PredictArgs>),
}

#[derive(Args)]
pub struct PredictArgs {
    /// The node's inference address, host:port.
    #[arg(long)]
    node: String,
    /// The node's name, as its certificate says (`cohort://node/NAME`): the
    /// requester talks to that node only, never to another member of the
    /// federation at that address.
    #[arg(long)]
    node_id: String,
    /// The name on the node's certificate (default: the host of --node).
    #[arg(long)]
    server_name: Option<String>,
    /// The model version (hex SHA-256) to use.
    #[arg(long)]
    model: String,
    /// Rows of raw features to predict (CSV, plain or gzip).
    #[arg(long)]
    input: PathBuf,
    /// The label's column if the rows have one (then accuracy is reported), or `none`.
    #[arg(long, default_value = "none", value_parser = parse_label_column)]
    label_column: LabelColumn,
    /// Lines at the top of the input that are not data (a header).
    #[arg(long, default_value_t = 0)]
    header_lines: usize,
    /// The key folder of `he keygen`.
    #[arg(long)]
    keys: PathBuf,
    /// The requester's TLS files (a `requester` certificate).
    #[command(flatten)]
    tls: TlsArgs,
    /// The federation's CA-signed revocation list (`revoked.signed`): a node
    /// whose certificate it names is refused during the handshake, before
    /// any input is sent. Default: no list consulted.
    #[arg(long)]
    revocation_list: Option<PathBuf>,
    /// Also compute the quantized model in the clear from this exported file
    /// (`inference serve --export-quantized`; for trusted parties) and report
    /// agreement with the decrypted answers.
    #[arg(long)]
    check_plaintext: Option<PathBuf>,
}

pub async fn he(command: HeCommand) -> anyhow::Result<()> {
    match command {
        HeCommand::Keygen { out } => {
            let started = Instant::now();
            let (key_id, bytes) = generate_keys(&out)?;
            println!(
                "key {key_id}: {} (secret, 0600) and {} ({:.1} MiB) in {} ({:.1} s)",
                CLIENT_KEY_FILE,
                EVALUATION_KEY_FILE,
                bytes as f64 / (1 << 20) as f64,
                out.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        HeCommand::Predict(args) => predict(*args).await,
    }
}

async fn predict(args: PredictArgs) -> anyhow::Result<()> {
    let options = CsvOptions {
        label_column: args.label_column,
        header_lines: args.header_lines,
        ..CsvOptions::default()
    };
    let rows = load_csv(&args.input, &options)
        .with_context(|| format!("loading {}", args.input.display()))?
        .dataset;
    let keys = read_keys(&args.keys)?;
    let expected = ExpectedServer::node(&args.node_id).context("--node-id")?;
    let files = args.tls.files();
    let revocations = match &args.revocation_list {
        Some(path) => RevocationList::watch(path, &files.ca_certificate)?,
        None => RevocationList::none(),
    };
    let tls = cohort_crypto::tls::client_config_refusing_revoked(
        &files,
        expected,
        Arc::new(revocations),
    )?;
    let mut node = ServerAddress::new(&args.node);
    if let Some(name) = args.server_name {
        node.server_name = name;
    }
    let mut requester = Requester::connect(&node, tls).await?;
    let description = requester
        .describe(&args.model)
        .await
        .map_err(cohort_client::requester::RequesterError::from)?;
    let started = Instant::now();
    let predictions = predict_rows(&mut requester, &keys, &description, &rows).await?;
    let elapsed = started.elapsed();
    print_predictions(&description, &predictions)?;
    eprintln!(
        "{} encrypted predictions from {} in {:.2} s (key upload included if it was needed)",
        predictions.len(),
        args.node,
        elapsed.as_secs_f64()
    );
    if args.label_column != LabelColumn::None {
        let correct = predictions
            .iter()
            .zip(rows.labels())
            .filter(|(p, label)| p.class == **label as usize)
            .count();
        eprintln!(
            "accuracy on the given labels: {correct}/{} ({:.2} %)",
            predictions.len(),
            100.0 * correct as f64 / predictions.len().max(1) as f64
        );
    }
    if let Some(path) = args.check_plaintext {
        let model = check::load_quantized(&path, &description)?;
        let agreement = check::agreement(&model, &predictions)?;
        eprintln!(
            "clear check: scores identical on {}/{} rows that carried scores, classes on {}/{}",
            agreement.equal_scores, agreement.scored, agreement.equal_classes, agreement.rows
        );
        anyhow::ensure!(
            agreement.equal_scores == agreement.scored && agreement.equal_classes == agreement.rows,
            "the decrypted answers differ from the clear computation"
        );
    }
    Ok(())
}

/// Prints one CSV line per row: the class, then the scores when the node
/// serves them (`score_0..`), as its description's output mode says.
fn print_predictions(
    description: &ModelDescription,
    predictions: &[Prediction],
) -> anyhow::Result<()> {
    let mode = output_mode(description)?;
    eprintln!("the node answers in {mode} mode");
    if mode == OutputMode::Class {
        println!("row,class");
        for (row, prediction) in predictions.iter().enumerate() {
            println!("{row},{}", prediction.class);
        }
        return Ok(());
    }
    let classes = description.num_classes as usize;
    let score_columns: Vec<String> = (0..classes).map(|c| format!("score_{c}")).collect();
    println!("row,class,{}", score_columns.join(","));
    for (row, prediction) in predictions.iter().enumerate() {
        let scores: Vec<String> = prediction
            .scores
            .iter()
            .flatten()
            .map(i64::to_string)
            .collect();
        println!("{row},{},{}", prediction.class, scores.join(","));
    }
    Ok(())
}
