//! Erasure requests in the end-to-end tests: reporting one as
//! `cohort-node report-erasure` does, and what it must have left behind in the
//! verified audit log.

use std::net::SocketAddr;

use cohort_client::erasure::{ErasureRequest, erasure_report};
use cohort_coordinator::audit::AuditEntry;
use cohort_coordinator::audit::erasure::statuses;
use cohort_coordinator::audit::lineage::{Lineage, ModelLineage};
use cohort_coordinator::store::records::DatasetRef;
use cohort_crypto::transparency::SubjectPseudonymKey;
use cohort_proto::v1;

use crate::{Testbed, raw_client};

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
