#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! A deployment as the README describes it: the PKI made with
//! `cohort-coordinator pki`, a config file, `cohort-coordinator serve` and three
//! `cohort-node run` processes, each reading its own CSV file. By default the
//! coordinator exits after the last round; serving after finish, it answers
//! auditors until SIGTERM, then stops gracefully.

use cohort_crypto::tls::ExpectedServer;
use cohort_crypto::tls::TlsFiles;
use cohort_e2e::deployment::{Deployment, binary, node_output, run_ok};
use cohort_e2e::{raw_channel, within};
use cohort_proto::audit_v1::GetTreeHeadRequest;
use cohort_proto::audit_v1::audit_client::AuditClient;

/// The `[model]`, `[rounds]` and `[training]` sections of a small federation.
const SMALL_FEDERATION: &str = r#"
[model]
kind = "mlp"
num_features = 30
num_classes = 2
hidden_layers = [8]

[rounds]
count = ROUNDS
min_clients = NODES
deadline_secs = 60

[training]
local_epochs = 1
batch_size = 16
learning_rate = 0.05
"#;

pub(crate) fn small_federation(rounds: u64, nodes: usize) -> String {
    SMALL_FEDERATION
        .replace("ROUNDS", &rounds.to_string())
        .replace("NODES", &nodes.to_string())
}

#[tokio::test]
async fn coordinator_and_nodes_as_separate_processes() {
    let nodes = ["clinic-a", "clinic-b", "clinic-c"];
    let deployment = Deployment::provision("processes", &nodes).await;
    deployment.write_config("127.0.0.1:0", &small_federation(2, nodes.len()));
    let mut coordinator = deployment.start_coordinator(false).await;
    let port = coordinator.port();
    let children: Vec<_> = nodes
        .iter()
        .map(|node| deployment.start_node(node, &port))
        .collect();
    for child in children {
        let stdout = node_output(child).await;
        assert!(stdout.contains("finished after 2 rounds"), "{stdout}");
        assert!(stdout.contains("sent 2 updates"), "{stdout}");
    }
    let rest = coordinator.rest_of_stdout().await;
    let status = within("the coordinator to exit", coordinator.child.wait())
        .await
        .unwrap();
    assert!(status.success());
    assert!(
        rest.iter()
            .any(|l| l.starts_with("federation finished: 2 rounds")),
        "{rest:?}"
    );
}

#[tokio::test]
async fn serving_after_finish_the_coordinator_answers_auditors_until_sigterm() {
    let nodes = ["clinic-a", "clinic-b"];
    let deployment = Deployment::provision("serving", &nodes).await;
    let pki = deployment.path("pki");
    run_ok(
        &binary("cohort-coordinator"),
        &[
            "pki",
            "issue",
            "--dir",
            pki.to_str().unwrap(),
            "--auditor",
            "alice",
        ],
    )
    .await;
    deployment.write_config(
        "127.0.0.1:0",
        &format!(
            "serve_after_finish = true\n{}",
            small_federation(1, nodes.len())
        ),
    );
    let mut coordinator = deployment.start_coordinator(true).await;
    let port = coordinator.port();
    for child in nodes.map(|node| deployment.start_node(node, &port)) {
        let stdout = node_output(child).await;
        assert!(stdout.contains("finished after 1 rounds"), "{stdout}");
    }
    let finished = within("the finish line", coordinator.stdout.next_line())
        .await
        .unwrap()
        .expect("the coordinator prints that the federation finished");
    assert!(
        finished.starts_with("federation finished: 1 rounds"),
        "{finished}"
    );
    // The last word states the final model's held-out accuracy and ε.
    assert!(
        finished.contains("; held-out accuracy ") && finished.contains(" % (loss "),
        "{finished}"
    );
    assert!(
        finished.contains("ε spent") || finished.contains("no differential privacy"),
        "{finished}"
    );
    coordinator.wait_for_log(&["serving after finish"]).await;

    // After the federation finished, an auditor still reads the log.
    let tls = TlsFiles {
        ca_certificate: pki.join("ca.pem"),
        certificate: pki.join("auditor-alice.pem"),
        private_key: pki.join("auditor-alice.key"),
    };
    let config = cohort_crypto::tls::client_config(&tls, ExpectedServer::coordinator()).unwrap();
    let channel = raw_channel(config, coordinator.address.parse().unwrap())
        .await
        .unwrap();
    let head = AuditClient::new(channel)
        .get_tree_head(GetTreeHeadRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!head.signed_tree_head.is_empty());
    assert!(
        coordinator.child.try_wait().unwrap().is_none(),
        "still serving"
    );

    // SIGTERM (a service manager's stop) shuts it down gracefully.
    let pid = coordinator.child.id().unwrap().to_string();
    run_ok("kill".as_ref(), &["-TERM", &pid]).await;
    coordinator.wait_for_log(&["stopping", "SIGTERM"]).await;
    let status = within("the coordinator to exit", coordinator.child.wait())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}
