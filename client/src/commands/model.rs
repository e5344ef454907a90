//! `cohort-node model export`: a model this node kept (`run --models-dir`)
//! as ONNX or safetensors ([`cohort_proto::export`]), with the feature
//! scaling it was saved with. A version an erasure withdrew is refused.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use cohort_client::model::{SavedModel, WithdrawnModels};
use cohort_proto::export::{DenseModel, ExportFormat};

/// `cohort-node model …`.
#[derive(Subcommand)]
pub enum ModelCommand {
    /// Write a kept model as ONNX (raw features in, the feature scaling folded
    /// in; logits and probabilities out) or safetensors (tensors, with
    /// architecture and scaling in its metadata).
    Export(ExportArgs),
}

/// `cohort-node model export`'s options.
#[derive(Args)]
pub struct ExportArgs {
    /// The folder the node keeps models in (`run --models-dir`).
    #[arg(long)]
    models_dir: PathBuf,
    /// The model version (its file is `VERSION.model.json` there).
    #[arg(long)]
    version: String,
    /// `onnx` or `safetensors`.
    #[arg(long)]
    format: ExportFormat,
    /// The file to write.
    #[arg(long)]
    out: PathBuf,
}

/// Runs a `model` command.
pub fn model(command: ModelCommand) -> anyhow::Result<()> {
    let ModelCommand::Export(args) = command;
    let withdrawn = WithdrawnModels::load(&args.models_dir)?;
    if withdrawn.contains(&args.version) {
        anyhow::bail!(
            "model {} was withdrawn: an erasure request tainted it, so it is not exported",
            args.version
        );
    }
    let path = SavedModel::path_in(&args.models_dir, &args.version);
    let saved = SavedModel::load(&path)?;
    let model = DenseModel::new(saved.spec, saved.scaling, saved.parameters)?;
    let bytes = model.export(args.format)?;
    std::fs::write(&args.out, &bytes).with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "model {} written as {} to {} ({} bytes)",
        model.model_version(),
        args.format,
        args.out.display(),
        bytes.len()
    );
    Ok(())
}
