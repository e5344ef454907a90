//! `cohort-node report-erasure`: tell the coordinator an erasure request (GDPR
//! Art. 17) has been carried out on this node, so that it taints and retrains
//! the models that learned from the removed data. The subject travels only as a
//! pseudonym (HMAC-SHA256 under a key that stays on the node).

use std::path::PathBuf;

use clap::Args;
use cohort_client::erasure::{ErasureRequest, erasure_report, send_erasure_report};
use cohort_client::identity::own_identity;
use cohort_crypto::transparency::SubjectPseudonymKey;

use super::ConnectionArgs;

#[derive(Args)]
#[command(group = clap::ArgGroup::new("what").required(true))]
pub struct ErasureArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// The node's pseudonym key (HMAC-SHA256, created 0600 if missing). Keep
    /// it: the same subject must always get the same pseudonym.
    #[arg(long)]
    pseudonym_key: PathBuf,
    /// The data subject's identifier, as the node knows it (never sent).
    #[arg(long, group = "what")]
    subject: Option<String>,
    /// Withdraw the whole data set version.
    #[arg(long, group = "what")]
    whole_dataset: bool,
    /// Leave the federation: everything this node contributed is withdrawn.
    #[arg(long, group = "what")]
    leave: bool,
    /// The data set that held the data (see the `run` log's "dataset" field).
    #[arg(long, default_value = "")]
    dataset_id: String,
    /// The data set version that held the data (the `run` log's "version").
    #[arg(long, default_value = "")]
    removed_version: String,
}

pub async fn report_erasure(args: ErasureArgs) -> anyhow::Result<()> {
    let tls = args.connection.tls.files();
    let identity = own_identity(&tls)?;
    let pseudonyms = if args.pseudonym_key.exists() {
        SubjectPseudonymKey::load(&args.pseudonym_key)?
    } else {
        SubjectPseudonymKey::generate(&args.pseudonym_key)?
    };
    let request = match (args.subject, args.whole_dataset, args.leave) {
        (Some(subject), false, false) => ErasureRequest::Subject(subject),
        (None, true, false) => ErasureRequest::WholeDataset,
        (None, false, true) => ErasureRequest::Leave,
        _ => anyhow::bail!("name exactly one of --subject, --whole-dataset, --leave"),
    };
    let report = erasure_report(
        identity.name(),
        &args.connection.federation,
        &request,
        &pseudonyms,
        &args.dataset_id,
        &args.removed_version,
    );
    let receipt = send_erasure_report(&args.connection.address(), &tls, report).await?;
    println!(
        "erasure request {} recorded; deadline {} ms since the epoch; {} model versions tainted{}",
        receipt.request_id,
        receipt.deadline_unix_ms,
        receipt.tainted_models.len(),
        if receipt.rollback_to.is_empty() {
            String::new()
        } else {
            format!("; retraining from {}", receipt.rollback_to)
        }
    );
    Ok(())
}
