//! Erasure requests in the end-to-end tests: reporting one as
//! `cohort-node report-erasure` does, and what it must have left behind in the
//! verified audit log.

use std::net::SocketAddr;

use cohort_client::erasure::{ErasureRequest, erasure_report};
use cohort_client::node::LocalData;
use cohort_coordinator::Coordinator;
use cohort_coordinator::audit::AuditEntry;
use cohort_coordinator::audit::erasure::{ErasureStatus, statuses};
use cohort_coordinator::audit::lineage::{Lineage, ModelLineage};
use cohort_coordinator::federation::FederationEvent;
use cohort_coordinator::store::records::{DatasetRef, RegisteredDataset};
use cohort_crypto::transparency::SubjectPseudonymKey;
use cohort_proto::v1;
use tokio::sync::broadcast;

use crate::harness::spawn_node;
use crate::{NodeHandle, Testbed, breast_cancer, next_event, raw_client, share_data, share_rows};

/// The subject identifier a hospital keeps next to row `row` of the file.
pub fn subject_id(row: usize) -> String {
    format!("patient-{row:04}")
}

/// A federation in which hospital-0 erased one subject mid-run: the
/// coordinator started again, hospital-0 back on the reduced data, the
/// erasure reported; the rounds not yet retrained.
#[derive(Debug)]
pub struct MidRunErasure {
    /// The coordinator's address.
    pub address: SocketAddr,
    /// The coordinator, started again after the erasure.
    pub coordinator: Coordinator,
    /// hospital-0.. (hospital-0 restarted on `reduced`).
    pub nodes: Vec<NodeHandle>,
    /// The row of the file (the subject) hospital-0 erased.
    pub erased_row: usize,
    /// hospital-0's local data without the subject's row.
    pub reduced: LocalData,
    /// The data set version that held the row.
    pub old_version: RegisteredDataset,
    /// The version hospital-0 registered instead.
    pub new_version: DatasetRef,
    /// The coordinator's answer to the report.
    pub receipt: v1::ErasureReceipt,
}

/// Runs `testbed`'s federation with `count` nodes on their full shares until
/// round `round` has completed; then [`erase_subject`].
pub async fn erase_subject_after_round(
    testbed: &Testbed,
    round: u64,
    count: usize,
) -> MidRunErasure {
    let (address, nodes) = testbed.run_until_round(round, count).await;
    erase_subject(testbed, address, nodes, count).await
}

/// With the coordinator at `address` stopped, hospital-0 (`nodes[0]`) erases
/// the first subject of its share of `count` (the row of the file
/// `share_rows(count)[0][0]`), restarts on the rest of its share, and reports
/// the erasure to a restarted coordinator, naming the data set version it had
/// registered as the one the rows were removed from.
pub async fn erase_subject(
    testbed: &Testbed,
    address: SocketAddr,
    mut nodes: Vec<NodeHandle>,
    count: usize,
) -> MidRunErasure {
    let old_version = registered_dataset(testbed, "hospital-0").await;
    let share = &share_rows(count)[0];
    let (erased_row, reduced) = (share[0], share_data(&breast_cancer(), &share[1..], 0));
    let (coordinator, _, new_version) =
        restart_hospital_0(testbed, address, &mut nodes, reduced.clone()).await;
    let request = ErasureRequest::Subject(subject_id(erased_row));
    let removed = old_version.reference();
    let receipt = report_erasure(testbed, address, "hospital-0", &request, Some(&removed)).await;
    MidRunErasure {
        address,
        coordinator,
        nodes,
        erased_row,
        reduced,
        old_version,
        new_version,
        receipt,
    }
}

/// The data set version `node_id` has registered, from the stopped
/// coordinator's store.
pub async fn registered_dataset(testbed: &Testbed, node_id: &str) -> RegisteredDataset {
    let store = testbed.store().await;
    let record = store.node(node_id).await.expect("store read");
    (record.and_then(|r| r.dataset)).unwrap_or_else(|| panic!("{node_id} registered no data"))
}

/// Stops hospital-0 (`nodes[0]`) and starts it again on `data`, with a
/// coordinator at `address` (stopped before). Returns the coordinator, its
/// events from its start, and the data set version hospital-0 registered,
/// which must be new.
pub async fn restart_hospital_0(
    testbed: &Testbed,
    address: SocketAddr,
    nodes: &mut Vec<NodeHandle>,
    data: LocalData,
) -> (
    Coordinator,
    broadcast::Receiver<FederationEvent>,
    DatasetRef,
) {
    let old_version = registered_dataset(testbed, "hospital-0").await.version;
    nodes.remove(0).abort();
    let coordinator = testbed.start_coordinator(address).await;
    let mut events = coordinator.events();
    let node = spawn_node(
        &testbed.provisioned,
        "hospital-0",
        &testbed.plan.federation_id,
        address,
        data,
        None,
        None,
    );
    nodes.insert(0, node.expect("hospital-0 starts again"));
    let new_version = next_event(&mut events, |event| match event {
        FederationEvent::NodeRegistered {
            node_id,
            dataset: Some(dataset),
        } if node_id == "hospital-0" && dataset.version != old_version => Some(dataset.clone()),
        _ => None,
    })
    .await;
    (coordinator, events, new_version)
}

/// The testbed's subject pseudonym key (`subjects.key`), created at first use:
/// the key a node keeps to pseudonymize the subjects it reports.
pub fn subject_pseudonyms(testbed: &Testbed) -> SubjectPseudonymKey {
    let path = testbed.dir.path().join("subjects.key");
    let key = if path.exists() {
        SubjectPseudonymKey::load(&path)
    } else {
        SubjectPseudonymKey::generate(&path)
    };
    key.unwrap_or_else(|e| panic!("subject pseudonym key: {e}"))
}

/// `node_id` reports `request` to the coordinator at `address`, the subject
/// pseudonymized under [`subject_pseudonyms`]; `removed` is the data set
/// version that held the data (none when the node leaves). Returns the receipt.
pub async fn report_erasure(
    testbed: &Testbed,
    address: SocketAddr,
    node_id: &str,
    request: &ErasureRequest,
    removed: Option<&DatasetRef>,
) -> v1::ErasureReceipt {
    let mut client = raw_client(&testbed.node_tls(node_id), address)
        .await
        .unwrap_or_else(|e| panic!("{node_id} connects: {e}"));
    let (dataset_id, version) = removed.map_or(("", ""), |d| (&d.dataset_id, &d.version));
    let report = erasure_report(
        node_id,
        &testbed.plan.federation_id,
        request,
        &subject_pseudonyms(testbed),
        dataset_id,
        version,
    );
    match client.report_erasure(report).await {
        Ok(receipt) => receipt.into_inner(),
        Err(status) => panic!("the erasure report is refused: {status:?}"),
    }
}

/// Asserts that request `request_id` went through every step, in order, and
/// was closed by its deadline.
pub fn assert_closed_with_every_step(entries: &[AuditEntry], request_id: &str) {
    let requests = statuses(entries, u64::MAX / 2);
    let request = requests
        .iter()
        .find(|r| r.request_id == request_id)
        .unwrap_or_else(|| panic!("request {request_id} is not in the log"));
    let steps: Vec<&str> = request.steps.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        steps,
        [
            "received",
            "data_removed",
            "models_identified",
            "rolled_back",
            "remediated",
            "closed"
        ]
    );
    assert!(request.steps.windows(2).all(|w| w[0].1 <= w[1].1));
    assert!(
        request
            .closed_ms
            .is_some_and(|closed| closed <= request.deadline_ms),
        "{request:?}"
    );
    assert_withdrawn_before_closing(request);
}

/// Asserts that every node that had received one of `request`'s tainted
/// models acknowledged withdrawing it, and did before the request closed.
pub fn assert_withdrawn_before_closing(request: &ErasureStatus) {
    assert!(request.awaiting_withdrawal.is_empty(), "{request:?}");
    assert!(request.unacknowledged.is_empty(), "{request:?}");
    let closed = request.closed_ms.expect("closed");
    for holder in &request.holders {
        let acknowledged = (request.withdrawn_by.iter())
            .find(|(node, _)| node == holder)
            .map(|(_, time)| *time);
        assert!(
            acknowledged.is_some_and(|time| time <= closed),
            "{holder} held a tainted model and did not withdraw it before the close: {request:?}"
        );
    }
}

/// Asserts that `model`'s lineage has `rounds` rounds, trained on `kept` and
/// never on `erased`, with none of the `tainted` versions on its path; returns
/// the lineage for further checks.
pub fn assert_unlearned(
    entries: &[AuditEntry],
    model: &str,
    rounds: usize,
    erased: &DatasetRef,
    kept: &DatasetRef,
    tainted: &[String],
) -> ModelLineage {
    let lineage = match Lineage::from_entries(entries).model(model) {
        Ok(lineage) => lineage,
        Err(error) => panic!("lineage of {model}: {error}"),
    };
    assert_eq!(lineage.rounds.len(), rounds, "{lineage:?}");
    assert!(!lineage.datasets.contains(erased), "{:?}", lineage.datasets);
    assert!(lineage.datasets.contains(kept), "{:?}", lineage.datasets);
    assert!(
        lineage
            .rounds
            .iter()
            .all(|r| !tainted.contains(&r.model_out)),
        "no tainted version on the final model's path"
    );
    lineage
}
