//! `cohort-node run`: take part in a federation until it finishes.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use cohort_client::node::{LocalData, Node, NodeConfig};
use cohort_client::transport::CoordinatorAddress;

use super::{DataArgs, TlsArgs};

#[derive(Args)]
pub struct RunArgs {
    /// The coordinator's address, host:port.
    #[arg(long)]
    coordinator: String,
    /// The name on the coordinator's certificate (default: the host of --coordinator).
    #[arg(long)]
    server_name: Option<String>,
    #[arg(long)]
    federation: String,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    data: DataArgs,
    /// Give up after the coordinator has been unreachable this many seconds.
    #[arg(long, default_value_t = 600)]
    give_up_after_secs: u64,
    /// Keep every global model fetched, and the final one, in this folder
    /// (`{version}.model.json`), to serve encrypted predictions afterwards.
    #[arg(long)]
    models_dir: Option<PathBuf>,
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let (train, holdout) = args.data.load_split()?;
    let mut coordinator = CoordinatorAddress::new(&args.coordinator);
    if let Some(name) = args.server_name {
        coordinator.server_name = name;
    }
    let config = NodeConfig {
        coordinator,
        tls: args.tls.files(),
        federation_id: args.federation,
        give_up_after: Duration::from_secs(args.give_up_after_secs),
        models_dir: args.models_dir,
    };
    let node = Node::new(config, LocalData { train, holdout })?;
    let summary = node.run().await?;
    println!(
        "federation finished after {} rounds; final model {}; this node sent {} updates and {} evaluations",
        summary.completed_rounds,
        summary.final_model_version,
        summary.updates_sent,
        summary.evaluations_sent
    );
    if let Some(reason) = summary.stop_reason {
        println!("the federation stopped early: {reason}");
    }
    Ok(())
}
