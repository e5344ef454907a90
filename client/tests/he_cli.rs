//! The encrypted-inference commands end to end, as an operator and a requester
//! would run them: `he keygen`, `inference serve`, `he predict --check-plaintext`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use cohort_client::data::{CsvOptions, FeatureStats, feature_stats, load_csv};
use cohort_client::model::{SavedModel, SavedSpec};
use cohort_crypto::pki::{IssuedFiles, PkiDir, Validity};
use cohort_crypto::{PeerIdentity, Role};
use cohort_proto::model::{ParameterLayout, initial_parameters};

fn node_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cohort-node"))
}

fn data_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/breast_cancer.csv")
}

/// `he predict` of every row of the data file, as `clinic`, from the node
/// `hospital-a` (the requester names the node it means).
fn predict(address: &str, model: &str, keys: &Path, ca: &Path, clinic: &IssuedFiles) -> Command {
    predict_from("hospital-a", address, model, keys, ca, clinic)
}

/// As [`predict`], naming `node_id` as the node expected at `address`.
fn predict_from(
    node_id: &str,
    address: &str,
    model: &str,
    keys: &Path,
    ca: &Path,
    clinic: &IssuedFiles,
) -> Command {
    let mut command = node_bin();
    command
        .args([
            "he",
            "predict",
            "--node",
            address,
            "--node-id",
            node_id,
            "--server-name",
            "localhost",
        ])
        .args(["--model", model, "--input"])
        .arg(data_path())
        .args(["--header-lines", "1", "--label-column", "last", "--keys"])
        .arg(keys)
        .arg("--ca")
        .arg(ca)
        .arg("--cert")
        .arg(&clinic.certificate)
        .arg("--key")
        .arg(&clinic.private_key);
    command
}

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn keygen_serve_and_predict_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pki = PkiDir::new(dir.join("pki"));
    let validity = Validity::days_from_now(1).unwrap();
    pki.init("cli", validity).unwrap();
    let node = pki
        .issue(
            &PeerIdentity::new(Role::Node, "hospital-a").unwrap(),
            &["localhost".into(), "127.0.0.1".into()],
            validity,
        )
        .unwrap();
    let clinic = pki
        .issue(
            &PeerIdentity::new(Role::Requester, "clinic-x").unwrap(),
            &[],
            validity,
        )
        .unwrap();
    let ca = pki.ca_certificate();

    // A kept model (random weights: the point is the plumbing and the exactness).
    let data = load_csv(
        data_path(),
        &CsvOptions {
            header_lines: 1,
            ..CsvOptions::default()
        },
    )
    .unwrap()
    .dataset;
    let spec = SavedSpec::logistic_regression(30, 2);
    let layout = ParameterLayout::of(&spec).unwrap();
    let scaling = FeatureStats::combine(&[feature_stats(&data)]).unwrap();
    let model = SavedModel::new(spec, scaling, initial_parameters(&layout, 9)).unwrap();
    let models = dir.join("models");
    model.save(&models).unwrap();

    // Keys: the client key is private, and nothing is overwritten.
    let keys = dir.join("keys");
    let out = node_bin()
        .args(["he", "keygen", "--out"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(keys.join("client.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = node_bin()
        .args(["he", "keygen", "--out"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));

    // The node serves every class score (`--output scores`; the default, class
    // mode, costs bootstraps per row and is exercised in the e2e tests); it says
    // where once it listens.
    let export = dir.join("export");
    let mut server = Server(
        node_bin()
            .args([
                "inference",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--models-dir",
            ])
            .arg(&models)
            .arg("--ca")
            .arg(&ca)
            .arg("--cert")
            .arg(&node.certificate)
            .arg("--key")
            .arg(&node.private_key)
            .arg("--data")
            .arg(data_path())
            .args([
                "--header-lines",
                "1",
                "--output",
                "scores",
                "--export-quantized",
            ])
            .arg(&export)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdout = BufReader::new(server.0.stdout.take().unwrap());
    let address = loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the server exited before listening"
        );
        if let Some(rest) = line.split(" serving encrypted inference on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };

    // The requester predicts every row (labelled, so accuracy is reported) and
    // checks against the exported quantized model.
    let quantized = export.join(format!("{}.quantized.json", model.model_version));
    let out = predict(&address, &model.model_version, &keys, &ca, &clinic)
        .arg("--check-plaintext")
        .arg(&quantized)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1 + data.len());
    assert!(
        stdout.starts_with("row,class,score_0,score_1\n"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("scores identical on {0}/{0} rows", data.len())),
        "{stderr}"
    );
    assert!(stderr.contains("answers in scores mode"), "{stderr}");
    assert!(stderr.contains("accuracy on the given labels"), "{stderr}");

    // Another node named: the server at that address is refused before
    // anything is sent, naming what it presented.
    let out = predict_from(
        "hospital-b",
        &address,
        &model.model_version,
        &keys,
        &ca,
        &clinic,
    )
    .output()
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("presented cohort://node/hospital-a")
            && stderr.contains("cohort://node/hospital-b"),
        "{stderr}"
    );

    // An unknown model version is a clear refusal.
    let out = predict(&address, "00", &keys, &ca, &clinic)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("NotFound") && stderr.contains("serves no model version"),
        "{stderr}"
    );
}
