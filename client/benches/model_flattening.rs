//! What the node SDK's generic parameter path costs next to the training it
//! serves (#18: under 5% of a local round for the CNN).
//!
//! For the zoo's digits CNN and for the built-in MLP [64] (4,810 parameters,
//! about the CNN's 3,818), on one node's share of a 10-node digits
//! federation (135 rows, one epoch, batch 16): the time to read the trained
//! parameters out of the module (`flatten`), to build the module at a
//! parameter vector (`load`, as every round starts), and one local round.
//!
//! `cargo bench -p cohort-client --bench model_flattening` (add `--profile
//! dev` for the README's build). Prints a Markdown table, best of 20.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark that fails should stop.

use std::time::{Duration, Instant};

use cohort_client::data::{CsvOptions, FeatureStats, feature_stats, load_csv, standardized};
use cohort_client::model::{FederatedModel, cpu_device, flatten, load};
use cohort_client::training::{LocalTrainingConfig, ModuleArchitecture, train_local};
use cohort_client::zoo::DigitsCnn;
use cohort_proto::model::{ParameterLayout, SavedSpec, initial_parameters};

const RUNS: usize = 20;

fn best_of<T>(mut f: impl FnMut() -> T) -> Duration {
    (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/digits.csv.gz");
    let data = load_csv(path, &CsvOptions::default())
        .expect("digits")
        .dataset;
    let share = data.subset(&(0..135).collect::<Vec<_>>()).expect("share");
    let scaling = FeatureStats::combine(&[feature_stats(&share)]).expect("scaling");
    let share = standardized(&scaling, &share).expect("standardized");
    let config = LocalTrainingConfig {
        epochs: 1,
        batch_size: 16,
        learning_rate: 0.05,
        seed: 7,
        proximal_mu: 0.0,
        max_update_norm: None,
    };
    println!(
        "| model | parameters | flatten (ms) | load (ms) | local round (ms) | flatten + load, share of the round |"
    );
    println!("|---|---:|---:|---:|---:|---:|");

    let device = cpu_device();
    let cnn = DigitsCnn::new(&device);
    let start = flatten(&cnn).expect("flatten");
    let flat = best_of(|| flatten(&cnn).expect("flatten"));
    let loaded = best_of(|| load(cnn.clone(), &start, &device).expect("load"));
    let architecture = ModuleArchitecture::new(cnn.clone(), 64, 10);
    let round = best_of(|| train_local(&architecture, &start, &share, &config).expect("train"));
    row(DigitsCnn::NAME, start.len(), flat, loaded, round);

    // The MLP of the README's digits runs, and the one `cohort-sim bench`
    // trains at d ≈ 10^6 (#17).
    for hidden in [64, 13_333] {
        dense_row(hidden, &share, &config);
    }
}

fn dense_row(hidden: u32, share: &cohort_client::data::Dataset, config: &LocalTrainingConfig) {
    let device = cpu_device();
    let layout = ParameterLayout::of(&SavedSpec {
        kind: "mlp".into(),
        num_features: 64,
        num_classes: 10,
        hidden_layers: vec![hidden],
    })
    .expect("layout");
    let start = initial_parameters(&layout, 1);
    let network = cohort_client::model::DenseNetwork::from_parameters(&layout, &start, &device)
        .expect("network");
    let flat = best_of(|| flatten(&network).expect("flatten"));
    let loaded = best_of(|| load(network.clone(), &start, &device).expect("load"));
    let round = best_of(|| train_local(&layout, &start, share, config).expect("train"));
    let name = format!("cohort.dense MLP [{hidden}]");
    row(&name, start.len(), flat, loaded, round);
}

fn row(name: &str, parameters: usize, flat: Duration, loaded: Duration, round: Duration) {
    println!(
        "| {name} | {parameters} | {:.3} | {:.3} | {:.2} | {:.2} % |",
        ms(flat),
        ms(loaded),
        ms(round),
        100.0 * (flat + loaded).as_secs_f64() / round.as_secs_f64()
    );
}
