//! `cohort-sim run` from the command line: a scenario file in, a run folder out;
//! a bad scenario refused naming the key; process nodes log as the simulator does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

const SCENARIO: &str = r#"
seed = 5
nodes = 3
data = "breast_cancer"
partition = { kind = "quantity_skew", exponent = 1.0, min_rows = 40 }

[rounds]
count = 2
min_clients = 3
deadline_secs = 60

[training]
local_epochs = 1
batch_size = 16
learning_rate = 0.05

[model]
kind = "logistic_regression"
"#;

fn cohort_sim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cohort-sim"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .unwrap()
}

#[test]
fn run_writes_a_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("tiny.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let out = dir.path().join("run");
    let output = cohort_sim(&[
        "run",
        "--scenario",
        scenario.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("2 of 2 rounds"), "{stdout}");
    let csv = std::fs::read_to_string(out.join("rounds.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    // The same rounds as TensorBoard scalars: one accuracy per round, equal to
    // rounds.json's (as the f32 TensorBoard keeps).
    let rounds: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("rounds.json")).unwrap()).unwrap();
    let event_files: Vec<_> = std::fs::read_dir(out.join("tensorboard"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(event_files.len(), 1, "{event_files:?}");
    let scalars = cohort_proto::tensorboard::read_scalars(&event_files[0]).unwrap();
    let accuracy: Vec<(u64, f32)> = scalars
        .iter()
        .filter(|s| s.tag == "eval/accuracy")
        .map(|s| (s.step, s.value))
        .collect();
    let expected: Vec<(u64, f32)> = rounds
        .iter()
        .map(|r| {
            (
                r["round"].as_u64().unwrap(),
                r["accuracy"].as_f64().unwrap() as f32,
            )
        })
        .collect();
    assert_eq!(accuracy, expected);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["scenario"], "tiny");
    assert_eq!(summary["partitioner"], "quantity_skew(exponent = 1)");
    let sizes: Vec<u64> = summary["rows_per_node"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(sizes.iter().sum::<u64>(), 569);
    assert!(sizes.iter().all(|&n| n >= 40), "{sizes:?}");
}

#[test]
fn a_bad_scenario_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("bad.toml");
    std::fs::write(&scenario, SCENARIO.replace("nodes = 3", "nodes = 0")).unwrap();
    let output = cohort_sim(&["run", "--scenario", scenario.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`nodes`"), "{stderr}");
    assert!(!dir.path().join("runs").exists());
}

#[test]
fn process_nodes_log_in_the_format_the_simulator_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("tiny.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let out = dir.path().join("run");
    let output = Command::new(env!("CARGO_BIN_EXE_cohort-sim"))
        .args(["--log-format", "json", "run", "--processes", "--scenario"])
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .env("RUST_LOG", "warn,cohort_client=info")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for node in ["node-000", "node-001", "node-002"] {
        let log = std::fs::read_to_string(out.join(format!("node-logs/{node}.log"))).unwrap();
        // Its log lines are JSON; the one plain line is its summary on stdout.
        let (json, plain): (Vec<&str>, Vec<&str>) =
            log.lines().partition(|line| line.starts_with('{'));
        assert_eq!(plain.len(), 1, "{node}: {log}");
        assert!(
            plain[0].starts_with("federation finished after 2 rounds"),
            "{node}: {log}"
        );
        let lines: Vec<serde_json::Value> = json
            .iter()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect();
        assert!(
            lines.iter().any(|line| line["level"] == "INFO"),
            "{node}: {log}"
        );
    }
}
