//! Bring your own model: a burn module of your own, federated across four
//! hospitals with secure aggregation (the coordinator sees only the sum of
//! their updates) and distributed differential privacy (each hospital adds
//! its share of the noise before masking).
//!
//! `cargo run -p cohort-examples --example bring_your_own_model`
//!
//! Your code is the model and the one call that joins a node; the federation
//! around it (PKI, coordinator, data) is `cohort_examples::LocalFederation`.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use cohort_client::model::FederatedModel;
use cohort_client::sdk;
use cohort_examples::{LocalFederation, digits_shares};

// --- Your model: one 3×3 convolution over the 8×8 digits, then a linear head.

#[derive(Module, Debug)]
struct TinyCnn {
    conv: Conv2d,
    head: Linear,
}

impl TinyCnn {
    fn new(device: &Device) -> Self {
        Self {
            conv: Conv2dConfig::new([1, 4], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device),
            head: LinearConfig::new(4 * 8 * 8, 10).init(device),
        }
    }
}

impl FederatedModel for TinyCnn {
    const NAME: &'static str = "example.tiny-cnn";
    const VERSION: &'static str = "1";

    fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        let [rows, _] = features.dims();
        let images = features.reshape([rows, 1, 8, 8]);
        let maps = relu(self.conv.forward(images));
        self.head.forward(maps.reshape([rows, 4 * 8 * 8]))
    }
}

// --- The federation: secure aggregation and distributed DP on.

const ROUNDS: u64 = 3;
const SETTINGS: &str = r#"
[rounds]
count = 3
min_clients = 4
deadline_secs = 60

[training]
local_epochs = 2
batch_size = 16
learning_rate = 0.05

[secure_aggregation]
clip_range = 0.5

[privacy]
noise_multiplier = 0.5
clip_norm = 1.0
epsilon = 60.0
delta = 1e-5
placement = "distributed"
"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The federation's owner draws the first model and starts the coordinator.
    let first = sdk::initial_model(TinyCnn::new, 7)?;
    let (shares, scaling) = digits_shares(4)?;
    let federation = LocalFederation::start(&first, (64, 10), scaling, SETTINGS).await?;

    // Each hospital joins with its own data: one call.
    let mut nodes = Vec::new();
    for (i, data) in shares.into_iter().enumerate() {
        let config = federation.node(&format!("hospital-{i}"))?;
        nodes.push(tokio::spawn(sdk::join(config, TinyCnn::new, data)));
    }

    let summary = federation.finish(nodes).await?;
    anyhow::ensure!(summary.completed_rounds == ROUNDS, "{summary:?}");
    let privacy = summary
        .privacy
        .ok_or_else(|| anyhow::anyhow!("no ε was accounted"))?;
    anyhow::ensure!(
        privacy.epsilon_spent <= privacy.epsilon_budget,
        "{privacy:?}"
    );
    let accuracy = summary.evaluation.map_or(f64::NAN, |e| e.accuracy);
    println!(
        "{} {}: {ROUNDS} rounds under secure aggregation, held-out accuracy {:.1} %, \
         ε = {:.2} of {} (δ = {})",
        TinyCnn::NAME,
        TinyCnn::VERSION,
        accuracy * 100.0,
        privacy.epsilon_spent,
        privacy.epsilon_budget,
        privacy.delta,
    );
    Ok(())
}
