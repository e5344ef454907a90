//! What the examples share that is not the point of any of them: a whole
//! federation on this machine. [`LocalFederation`] makes a PKI, writes the
//! owner's first-model file, starts a coordinator on loopback with the
//! `[model]` section `cohort-coordinator model init` would print, and hands
//! out node configs; [`digits_shares`] splits the bundled digits among
//! hospitals. A real deployment does the same with `cohort-coordinator pki`,
//! `model init` and a `federation.toml` (`docs/DEPLOYMENT.md`).

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use cohort_client::data::{
    CsvOptions, Dataset, FeatureScaling, FeatureStats, feature_stats, load_csv, train_holdout_split,
};
use cohort_client::node::{LocalData, NodeConfig, NodeError, NodeSummary};
use cohort_coordinator::Coordinator;
use cohort_coordinator::config::{FederationConfig, ModelConfig};
use cohort_coordinator::federation::summary::FinalSummary;
use cohort_crypto::pki::{PkiDir, Validity};
use cohort_crypto::tls::TlsFiles;
use cohort_crypto::tls::connector::ServerAddress;
use cohort_crypto::{PeerIdentity, Role};
use cohort_proto::export::ModelFile;
use serde::Serialize;
use tokio::task::JoinHandle;

/// The examples' federation.
const FEDERATION: &str = "examples";

/// A coordinator on loopback with its PKI, in a temporary folder.
#[derive(Debug)]
pub struct LocalFederation {
    dir: tempfile::TempDir,
    coordinator: Coordinator,
}

/// A running node's task.
pub type NodeTask = JoinHandle<Result<NodeSummary, NodeError>>;

impl LocalFederation {
    /// Starts a coordinator whose model is `first`'s (rows of `num_features`
    /// features, `num_classes` labels), standardized with `scaling`, with
    /// the federation.toml `sections` ([rounds], [training], and any of
    /// [secure_aggregation], [privacy], [strategy]).
    pub async fn start(
        first: &ModelFile,
        (num_features, num_classes): (u32, u32),
        scaling: FeatureScaling,
        sections: &str,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let pki = PkiDir::new(dir.path().join("pki"));
        let validity = Validity::days_from_now(1)?;
        pki.init(FEDERATION, validity)?;
        let identity = PeerIdentity::new(Role::Coordinator, "coordinator")?;
        let server = pki.issue(&identity, &["localhost".into()], validity)?;
        let first_path = dir.path().join("first-model.safetensors");
        std::fs::write(&first_path, first.to_safetensors(Vec::new())?)?;
        #[derive(Serialize)]
        struct Owned {
            model: ModelConfig,
            scaling: FeatureScaling,
        }
        let model = ModelConfig::described(
            first.descriptor().clone(),
            first_path,
            num_features,
            num_classes,
        );
        let text = format!(
            "federation_id = \"{FEDERATION}\"\n\n[server]\nlisten = \"127.0.0.1:0\"\n\
             state_dir = {:?}\nca_certificate = {:?}\ncertificate = {:?}\nprivate_key = {:?}\n\n\
             {sections}\n{}",
            dir.path().join("state"),
            pki.ca_certificate(),
            server.certificate,
            server.private_key,
            toml::to_string(&Owned { model, scaling })?,
        );
        let config = FederationConfig::parse(&text).context("the federation's config")?;
        let coordinator = Coordinator::start(config).await?;
        Ok(Self { dir, coordinator })
    }

    /// The config of a node `node_id` of this federation (its certificate
    /// issued now).
    pub fn node(&self, node_id: &str) -> anyhow::Result<NodeConfig> {
        let pki = PkiDir::new(self.dir.path().join("pki"));
        let identity = PeerIdentity::new(Role::Node, node_id)?;
        let files = pki.issue(&identity, &[], Validity::days_from_now(1)?)?;
        Ok(NodeConfig {
            coordinator: ServerAddress {
                address: self.coordinator.local_addr().to_string(),
                server_name: "localhost".into(),
            },
            standby_coordinators: Vec::new(),
            tls: TlsFiles {
                ca_certificate: pki.ca_certificate(),
                certificate: files.certificate,
                private_key: files.private_key,
            },
            federation_id: FEDERATION.into(),
            give_up_after: Duration::from_secs(60),
            models_dir: None,
        })
    }

    /// Waits for the federation and its `nodes` to finish; what it released.
    pub async fn finish(mut self, nodes: Vec<NodeTask>) -> anyhow::Result<FinalSummary> {
        let head = self.coordinator.wait().await?;
        for node in nodes {
            node.await??;
        }
        let summary = FinalSummary::of(self.coordinator.federation(), &head).await?;
        self.coordinator.shutdown().await;
        drop(self.dir);
        Ok(summary)
    }
}

/// The bundled 8×8 digits (1,797 rows, 64 features, 10 classes).
pub fn digits() -> anyhow::Result<Dataset> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/digits.csv.gz");
    Ok(load_csv(&path, &CsvOptions::default())?.dataset)
}

/// The digits dealt round-robin to `hospitals`, each split into training
/// and held-out rows, and the scaling of the whole file (standing in for
/// the published constants a real federation declares under secure
/// aggregation or DP).
pub fn digits_shares(hospitals: usize) -> anyhow::Result<(Vec<LocalData>, FeatureScaling)> {
    let data = digits()?;
    let scaling = FeatureStats::combine(&[feature_stats(&data)])?;
    let shares = (0..hospitals)
        .map(|h| {
            let rows: Vec<usize> = (h..data.len()).step_by(hospitals).collect();
            let (train, holdout) = train_holdout_split(&data.subset(&rows)?, 0.2, h as u64)?;
            Ok(LocalData { train, holdout })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((shares, scaling))
}
