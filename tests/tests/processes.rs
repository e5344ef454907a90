#![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.
//! A deployment as the README describes it: the PKI made with
//! `cohort-coordinator pki`, a config file, `cohort-coordinator serve` and three
//! `cohort-node run` processes, each reading its own CSV file.

use cohort_e2e::deployment::{Deployment, node_output};
use cohort_e2e::within;

#[tokio::test]
async fn coordinator_and_nodes_as_separate_processes() {
    let nodes = ["clinic-a", "clinic-b", "clinic-c"];
    let deployment = Deployment::provision("processes", &nodes).await;
    deployment.write_config(
        "127.0.0.1:0",
        r#"
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
    );
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
