//! Whole configuration files: sections parsed together and checked against
//! each other.

use super::*;

/// Public scaling for the example's 30 features.
const SCALING: &str = "[scaling]\nmean = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]\nstd = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]\n";

/// A whole federation.toml (also the failover tests' federation).
pub(crate) const EXAMPLE: &str = r#"
federation_id = "breast-cancer"

[server]
listen = "127.0.0.1:7443"
state_dir = "state"
ca_certificate = "pki/ca.pem"
certificate = "pki/coordinator-main.pem"
private_key = "pki/coordinator-main.key"

[model]
kind = "logistic_regression"
num_features = 30
num_classes = 2

[rounds]
count = 20
fraction = 1.0
min_clients = 3
deadline_secs = 30

[training]
local_epochs = 2
batch_size = 16
learning_rate = 0.1
"#;

#[test]
fn example_parses() {
    let config = FederationConfig::parse(EXAMPLE).unwrap();
    assert_eq!(config.rounds.count, 20);
    assert_eq!(config.min_results(), 3);
    assert!(
        !config.server.serve_after_finish,
        "by default the coordinator stops after the last round"
    );
    let serving = EXAMPLE.replace(
        "private_key = \"pki/coordinator-main.key\"",
        "private_key = \"pki/coordinator-main.key\"\nserve_after_finish = true",
    );
    assert!(
        FederationConfig::parse(&serving)
            .unwrap()
            .server
            .serve_after_finish
    );
}

#[test]
fn strategy_section_defaults_to_fedavg_and_parses() {
    let config = FederationConfig::parse(EXAMPLE).unwrap();
    assert_eq!(config.strategy, StrategyConfig::default());
    let text = format!("{EXAMPLE}\n[strategy]\nname = \"fedadam\"\nserver_learning_rate = 0.03\n");
    let config = FederationConfig::parse(&text).unwrap();
    assert_eq!(
        config.strategy,
        StrategyConfig::FedAdam {
            server_learning_rate: 0.03,
            beta1: 0.9,
            beta2: 0.99,
            tau: 1e-3,
            max_update_norm: None,
        }
    );
    let typo = format!("{EXAMPLE}\n[strategy]\nname = \"fedadam\"\nserver_lr = 0.03\n");
    let err = FederationConfig::parse(&typo).unwrap_err().to_string();
    assert!(err.contains("server_lr"), "{err}");
}

#[test]
fn unknown_keys_are_named() {
    let text = EXAMPLE.replace("fraction = 1.0", "fraction = 1.0\nfractoin = 0.5");
    let err = FederationConfig::parse(&text).unwrap_err().to_string();
    assert!(err.contains("fractoin"), "{err}");
}

#[test]
fn impossible_values_are_named() {
    for (from, to, key) in [
        ("fraction = 1.0", "fraction = 1.5", "rounds.fraction"),
        (
            "state_dir = \"state\"",
            "state_dir = \"state\"\nwithdrawal_patience_hours = 720",
            "server.withdrawal_patience_hours",
        ),
        ("count = 20", "count = 0", "rounds.count"),
        ("min_clients = 3", "min_clients = 0", "rounds.min_clients"),
        (
            "learning_rate = 0.1",
            "learning_rate = -1.0",
            "training.learning_rate",
        ),
        ("kind = \"logistic_regression\"", "kind = \"cnn\"", "model"),
        (
            "learning_rate = 0.1",
            "learning_rate = 0.1\n[privacy]\nnoise_multiplier = 0.0\nclip_norm = 1.0\nepsilon = 3.0\ndelta = 1e-5",
            "privacy.noise_multiplier",
        ),
        (
            "learning_rate = 0.1",
            "learning_rate = 0.1\n[privacy]\nnoise_multiplier = 1.0\nclip_norm = 1.0\nepsilon = 3.0\ndelta = 1.5",
            "privacy.epsilon / privacy.delta",
        ),
        (
            "learning_rate = 0.1",
            "learning_rate = 0.1\n[secure_aggregation]\nbits = 1",
            "secure_aggregation",
        ),
        (
            "learning_rate = 0.1",
            "learning_rate = 0.1\n[privacy]\nnoise_multiplier = 1.0\nclip_norm = 1.0\nepsilon = 3.0\ndelta = 1e-5\n[privacy.adaptive_clipping]\ncount_noise_stddev = 0.1",
            "privacy.adaptive_clipping.count_noise_stddev",
        ),
        (
            "learning_rate = 0.1",
            "learning_rate = 0.1\n[secure_aggregation]\nweight_cap = 0",
            "secure_aggregation.weight_cap",
        ),
        (
            "learning_rate = 0.1",
            "learning_rate = 0.1\n[strategy]\nname = \"median\"\n[secure_aggregation]",
            "reveals only their sum",
        ),
        (
            "learning_rate = 0.1",
            "learning_rate = 0.1\n[secure_aggregation]\nthreshold = 1\nneighbours = 2",
            "threshold must exceed half",
        ),
        (
            "learning_rate = 0.1",
            "learning_rate = 0.1\n[strategy]\nname = \"fedadam\"\nserver_learning_rate = -1.0",
            "strategy.server_learning_rate",
        ),
        (
            "learning_rate = 0.1",
            "learning_rate = 0.1\n[strategy]\nname = \"krum\"\nbyzantine = 1",
            "strategy.byzantine",
        ),
        (
            "learning_rate = 0.1",
            "learning_rate = 0.1\n[strategy]\nname = \"median\"\n[privacy]\nnoise_multiplier = 1.0\nclip_norm = 1.0\nepsilon = 3.0\ndelta = 1e-5",
            "strategy.name",
        ),
    ] {
        let err = FederationConfig::parse(&EXAMPLE.replace(from, to))
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{to}: {err}");
    }
}

#[test]
fn secure_aggregation_needs_two_clients_and_no_central_noise() {
    let secagg = format!("{EXAMPLE}\n{SCALING}\n[secure_aggregation]\nclip_range = 0.5\n");
    let config = FederationConfig::parse(&secagg).unwrap();
    let round = config
        .secure_aggregation
        .as_ref()
        .unwrap()
        .for_round(10)
        .unwrap();
    assert_eq!((round.neighbours, round.threshold), (40, 5));
    assert_eq!(round.neighbourhood_size(10), 9);
    let err = FederationConfig::parse(&secagg.replace("min_clients = 3", "min_clients = 1"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("rounds.min_clients"), "{err}");
    let with_privacy = format!(
        "{secagg}\n[privacy]\nnoise_multiplier = 1.0\nclip_norm = 1.0\nepsilon = 3.0\ndelta = 1e-5\n"
    );
    let err = FederationConfig::parse(&with_privacy)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`privacy.placement` must be \"distributed\""),
        "{err}"
    );
    let distributed =
        with_privacy.replace("delta = 1e-5", "delta = 1e-5\nplacement = \"distributed\"");
    let config = FederationConfig::parse(&distributed).unwrap();
    let mechanism = dp_mechanism::distributed(config.privacy.as_ref().unwrap(), 3, 62);
    // σ·C of noise over the three nodes' shares: √3 · 256 · γ = 1.0.
    assert!((3f64.sqrt() * mechanism.local_stddev * mechanism.granularity - 1.0).abs() < 1e-12);
    let alone = distributed.replace("[secure_aggregation]\nclip_range = 0.5\n", "");
    let err = FederationConfig::parse(&alone).unwrap_err().to_string();
    assert!(err.contains("needs [secure_aggregation]"), "{err}");
}

#[test]
fn a_threat_model_derives_k_and_t_per_round() {
    let small = format!(
        "{EXAMPLE}\n{SCALING}\n[secure_aggregation.threat_model]\ndropout_rate = 0.1\ncolluding_fraction = 0.0\n"
    );
    // Three nodes cannot keep a 10% dropout's abort chance under 2^-20.
    let err = FederationConfig::parse(&small).unwrap_err().to_string();
    assert!(
        err.contains("no k and t meet the threat model for 3 nodes"),
        "{err}"
    );
    let secagg = small.replace("min_clients = 3", "min_clients = 100");
    let config = FederationConfig::parse(&secagg).unwrap();
    let secure = config.secure_aggregation.as_ref().unwrap();
    let round = secure.for_round(100).unwrap();
    assert_eq!((round.neighbours, round.threshold), (34, 18));
    // Unknown assumptions and an explicit k beside the model are refused by name.
    let err = FederationConfig::parse(&secagg.replace("dropout_rate", "dropout"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("dropout"), "{err}");
    let both = secagg.replace(
        "[secure_aggregation.threat_model]",
        "[secure_aggregation]\nneighbours = 10\n[secure_aggregation.threat_model]",
    );
    let err = FederationConfig::parse(&both).unwrap_err().to_string();
    assert!(err.contains("secure_aggregation.threat_model"), "{err}");
}

#[test]
fn secure_aggregation_and_privacy_need_a_declared_scaling_of_the_model_width() {
    // Without one, round 0 would send each node's exact feature sums in the
    // clear, and an erasure would re-run it (the difference is the erased rows).
    for section in [
        "[secure_aggregation]\nclip_range = 0.5\n",
        "[privacy]\nnoise_multiplier = 1.0\nclip_norm = 1.0\nepsilon = 3.0\ndelta = 1e-5\n",
    ] {
        let undeclared = format!("{EXAMPLE}\n{section}");
        match FederationConfig::parse(&undeclared) {
            Err(ConfigError::Invalid { key: "scaling", .. }) => {}
            other => panic!("{section}: {other:?}"),
        }
        let declared = format!("{EXAMPLE}\n{SCALING}\n{section}");
        let config = FederationConfig::parse(&declared).unwrap();
        assert_eq!(config.scaling.unwrap().mean.len(), 30);
    }
    // A declared scaling of the wrong width, or with a zero deviation, is refused.
    let narrow = SCALING.replacen("0.0, ", "", 1);
    let zero = SCALING.replacen("1.0, ", "0.0, ", 1);
    for bad in [narrow, zero] {
        match FederationConfig::parse(&format!("{EXAMPLE}\n{bad}")) {
            Err(ConfigError::Invalid { key: "scaling", .. }) => {}
            other => panic!("{bad}: {other:?}"),
        }
    }
    // Plain federated averaging may still agree on the scaling in round 0.
    assert!(FederationConfig::parse(EXAMPLE).unwrap().scaling.is_none());
}

#[test]
fn the_console_is_off_unless_set_and_may_not_share_a_listener() {
    let config = FederationConfig::parse(EXAMPLE).unwrap();
    assert_eq!(config.server.console_listen, None);
    let with = |address: &str| {
        EXAMPLE.replace(
            "private_key = \"pki/coordinator-main.key\"",
            &format!("private_key = \"pki/coordinator-main.key\"\nconsole_listen = \"{address}\""),
        )
    };
    let console = FederationConfig::parse(&with("127.0.0.1:9465")).unwrap();
    assert_eq!(
        console.server.console_listen,
        Some("127.0.0.1:9465".parse().unwrap())
    );
    match FederationConfig::parse(&with("127.0.0.1:7443")) {
        Err(ConfigError::Invalid {
            key: "server.console_listen",
            ..
        }) => {}
        other => panic!("the gRPC address taken twice was accepted: {other:?}"),
    }
}

/// `[server] store` puts the state in PostgreSQL; absent, it stays in the
/// state folder. A URL that does not parse is refused by the key's name and
/// without its password, and the URL never goes into the stored config.
#[test]
fn the_store_line_selects_postgres_and_keeps_its_password_out() {
    use crate::store::StoreLocation;
    let sled = FederationConfig::parse(EXAMPLE).unwrap();
    assert_eq!(
        sled.server.store_location(),
        StoreLocation::Folder("state".into())
    );
    let with_store = |url: &str| {
        EXAMPLE.replace(
            "state_dir = \"state\"",
            &format!("state_dir = \"state\"\nstore = {{ postgres = \"{url}\", ca_certificate = \"db-ca.pem\" }}"),
        )
    };
    let config =
        FederationConfig::parse(&with_store("postgres://cohort:s3cret@db:5432/fed")).unwrap();
    let StoreLocation::Postgres(settings) = config.server.store_location() else {
        panic!("the store line names PostgreSQL");
    };
    assert_eq!(settings.ca_certificate, Some("db-ca.pem".into()));
    assert_eq!(settings.redacted(), "postgres://cohort:***@db:5432/fed");
    assert!(!format!("{config:?}").contains("s3cret"));
    assert!(!serde_json::to_string(&config).unwrap().contains("s3cret"));

    for url in [
        "mysql://cohort:s3cret@db/fed",
        "postgres://cohort:s3cret@db:port/fed",
    ] {
        let err = FederationConfig::parse(&with_store(url))
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.store.postgres"), "{err}");
        assert!(!err.contains("s3cret"), "the password leaked: {err}");
    }
}

/// The `[model]` of a model the coordinator has no code for.
const OWNER_MODEL: &str = r#"[model]
num_features = 30
num_classes = 2
initial_parameters = "models/first.safetensors"

[model.descriptor]
name = "hospital.conv1d"
version = "3"

[[model.descriptor.tensors]]
name = "conv.weight"
shape = [4, 1, 5]
dtype = "f32"

[[model.descriptor.tensors]]
name = "head.weight"
shape = [104, 2]
dtype = "f32"
"#;

fn with_model(model: &str) -> String {
    let start = EXAMPLE.find("[model]").unwrap();
    let end = EXAMPLE.find("[rounds]").unwrap();
    format!("{}{model}\n{}", &EXAMPLE[..start], &EXAMPLE[end..])
}

#[test]
fn a_descriptor_names_the_model_and_sizes_the_checks() {
    let config = FederationConfig::parse(&with_model(OWNER_MODEL)).unwrap();
    let descriptor = config.model.validate().unwrap();
    assert_eq!(descriptor.label(), "hospital.conv1d 3");
    assert_eq!(descriptor.num_parameters(), 20 + 208);
    assert_eq!(config.dense_spec(), None);
    assert!(matches!(
        config.model.initial_model().unwrap(),
        InitialModel::File(path) if path.ends_with("models/first.safetensors")
    ));
    // Where a host keeps the file is its own business; the model is not.
    let mut elsewhere = config.model.clone();
    elsewhere.initial_parameters = Some("/srv/cohort/first.safetensors".into());
    assert!(config.model.same_model(&elsewhere));
    let mut other = config.model.clone();
    other.descriptor.as_mut().unwrap().version = "4".into();
    assert!(!config.model.same_model(&other));
}

#[test]
fn a_model_is_either_built_in_or_described_and_each_keeps_its_keys() {
    let refused = |model: String, names: &str| {
        let error = FederationConfig::parse(&with_model(&model)).unwrap_err();
        assert!(error.to_string().contains(names), "{error}");
    };
    refused(
        OWNER_MODEL.replace("num_classes = 2\n", "num_classes = 2\nkind = \"mlp\"\n"),
        "not both",
    );
    refused(
        OWNER_MODEL.replace("initial_parameters = \"models/first.safetensors\"\n", ""),
        "model.initial_parameters",
    );
    refused(
        OWNER_MODEL.replace("num_classes = 2\n", "num_classes = 2\ninit_seed = 7\n"),
        "init_seed",
    );
    refused(
        OWNER_MODEL.replace("shape = [104, 2]", "shape = [104, 0]"),
        "head.weight",
    );
    refused(
        "[model]\nnum_features = 30\nnum_classes = 2\n".into(),
        "needs a built-in `kind`",
    );
    refused(
        "[model]\nkind = \"mlp\"\nhidden_layers = [8]\nnum_features = 30\nnum_classes = 2\n\
         initial_parameters = \"x.safetensors\"\n"
            .into(),
        "model.initial_parameters",
    );
}
