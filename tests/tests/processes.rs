#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! A deployment as the README describes it: the PKI made with
//! `cohort-coordinator pki`, a config file, `cohort-coordinator serve` and three
//! `cohort-node run` processes, each reading its own CSV file.
//!
//! The binaries are the ones `cargo test --workspace` builds next to this test.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use cohort_e2e::{breast_cancer, within};
use cohort_sim::partition::iid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn binary(name: &str) -> PathBuf {
    // target/<profile>/deps/processes-<hash> → target/<profile>/<name>
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo test --workspace`, which builds it",
        path.display()
    );
    path
}

async fn run_ok(program: &Path, args: &[&str]) {
    let out = Command::new(program).args(args).output().await.unwrap();
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn coordinator_and_nodes_as_separate_processes() {
    let coordinator_bin = binary("cohort-coordinator");
    let node_bin = binary("cohort-node");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pki = dir.join("pki");
    let pki = pki.to_str().unwrap();

    run_ok(
        &coordinator_bin,
        &["pki", "init", "--dir", pki, "--federation", "processes"],
    )
    .await;
    run_ok(
        &coordinator_bin,
        &[
            "pki",
            "issue",
            "--dir",
            pki,
            "--coordinator",
            "main",
            "--san",
            "localhost",
        ],
    )
    .await;
    let nodes = ["clinic-a", "clinic-b", "clinic-c"];
    for node in nodes {
        run_ok(
            &coordinator_bin,
            &["pki", "issue", "--dir", pki, "--node", node],
        )
        .await;
    }

    std::fs::write(
        dir.join("federation.toml"),
        r#"
federation_id = "processes"

[server]
listen = "127.0.0.1:0"
state_dir = "state"
ca_certificate = "pki/ca.pem"
certificate = "pki/coordinator-main.pem"
private_key = "pki/coordinator-main.key"
poll_timeout_ms = 1000
liveness_ms = 10000

[model]
kind = "mlp"
num_features = 30
num_classes = 2
hidden_layers = [8]

[rounds]
count = 2
min_clients = 3
deadline_secs = 60

[training]
local_epochs = 1
batch_size = 16
learning_rate = 0.05
"#,
    )
    .unwrap();

    // Each node's share of the data in its own CSV file, label last.
    let data = breast_cancer();
    let parts = iid(data.len(), nodes.len(), 5).unwrap();
    for (node, rows) in nodes.iter().zip(&parts) {
        let mut file = std::fs::File::create(dir.join(format!("{node}.csv"))).unwrap();
        for &row in rows {
            let (features, label) = data.row(row).unwrap();
            let fields: Vec<String> = features.iter().map(f32::to_string).collect();
            writeln!(file, "{},{label}", fields.join(",")).unwrap();
        }
    }

    let mut coordinator = Command::new(&coordinator_bin)
        .args(["serve", "--config"])
        .arg(dir.join("federation.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(coordinator.stdout.take().unwrap()).lines();
    let first = within("the coordinator's address", lines.next_line())
        .await
        .unwrap()
        .expect("the coordinator prints its address");
    let address = first
        .strip_prefix("cohort-coordinator listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    let port = address.rsplit_once(':').unwrap().1;

    let mut children = Vec::new();
    for node in nodes {
        let child = Command::new(&node_bin)
            .args(["run", "--coordinator", &format!("localhost:{port}")])
            .args(["--federation", "processes"])
            .arg("--ca")
            .arg(dir.join("pki/ca.pem"))
            .arg("--cert")
            .arg(dir.join(format!("pki/node-{node}.pem")))
            .arg("--key")
            .arg(dir.join(format!("pki/node-{node}.key")))
            .arg("--data")
            .arg(dir.join(format!("{node}.csv")))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        children.push(child);
    }
    for child in children {
        let out = within("a node process", child.wait_with_output())
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "node failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("finished after 2 rounds"), "{stdout}");
        assert!(stdout.contains("sent 2 updates"), "{stdout}");
    }
    let rest = within("the coordinator to finish", async {
        let mut rest = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            rest.push(line);
        }
        rest
    })
    .await;
    let status = within("the coordinator to exit", coordinator.wait())
        .await
        .unwrap();
    assert!(status.success());
    assert!(
        rest.iter()
            .any(|l| l.starts_with("federation finished: 2 rounds")),
        "{rest:?}"
    );
}
