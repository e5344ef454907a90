//! Reporting an erasure request (GDPR Art. 17) to the coordinator, after the
//! node has acted on it: the subject's rows are gone from its data and the node
//! has registered the new data set version (by restarting `cohort-node run`).
//! The coordinator then taints and retrains every model that learned from the
//! old version (see `cohort_coordinator::rounds::unlearning`).
//!
//! The subject is named only by a pseudonym, HMAC-SHA256 of their identifier
//! under a key that never leaves the node ([`SubjectPseudonymKey`]), so the
//! coordinator's log can link the steps of one request without learning who
//! the person is.

use cohort_crypto::tls::TlsFiles;
use cohort_crypto::transparency::SubjectPseudonymKey;
use cohort_proto::PROTOCOL_VERSION;
use cohort_proto::v1::federation_client::FederationClient;
use cohort_proto::v1::{self, erasure_report::Scope};

use cohort_crypto::tls::ExpectedServer;
use cohort_crypto::tls::connector::{ServerAddress, connect};

/// Why an erasure report could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    /// This node's certificate gives no node identity.
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    /// The TLS files could not be loaded.
    #[error(transparent)]
    Tls(#[from] cohort_crypto::tls::TlsError),
    /// No mutual-TLS channel to the coordinator could be opened.
    #[error("cannot reach the coordinator: {0}")]
    Transport(#[from] cohort_crypto::tls::connector::ConnectError),
    /// The coordinator answered the report with an error status (its message).
    #[error("the coordinator refused the erasure report: {0}")]
    Refused(String),
}

/// What the request covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErasureRequest {
    /// One subject, by the identifier the node keeps (it is pseudonymized
    /// here and never sent).
    Subject(String),
    /// The whole data set version.
    WholeDataset,
    /// The node leaves the federation.
    Leave,
}

/// The report for `request`, with the subject (if any) pseudonymized.
pub fn erasure_report(
    node_id: &str,
    federation_id: &str,
    request: &ErasureRequest,
    pseudonyms: &SubjectPseudonymKey,
    dataset_id: &str,
    removed_version: &str,
) -> v1::ErasureReport {
    let scope = match request {
        ErasureRequest::Subject(subject_id) => {
            Scope::SubjectPseudonym(pseudonyms.pseudonym(subject_id))
        }
        ErasureRequest::WholeDataset => Scope::WholeDataset(true),
        ErasureRequest::Leave => Scope::NodeLeaving(true),
    };
    v1::ErasureReport {
        header: Some(v1::RequestHeader {
            protocol_version: PROTOCOL_VERSION,
            federation_id: federation_id.to_owned(),
            node_id: node_id.to_owned(),
        }),
        scope: Some(scope),
        dataset_id: dataset_id.to_owned(),
        removed_version: removed_version.to_owned(),
    }
}

/// Sends `report` to the coordinator; returns its receipt.
pub async fn send_erasure_report(
    coordinator: &ServerAddress,
    tls: &TlsFiles,
    report: v1::ErasureReport,
) -> Result<v1::ErasureReceipt, ErasureError> {
    let tls = cohort_crypto::tls::client_config(tls, ExpectedServer::coordinator())?;
    let channel = connect(coordinator, tls).await?;
    FederationClient::new(channel)
        .report_erasure(report)
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| ErasureError::Refused(status.message().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_report_carries_the_pseudonym_and_never_the_identifier() {
        let dir = tempfile::tempdir().unwrap();
        let key = SubjectPseudonymKey::generate(&dir.path().join("subjects.key")).unwrap();
        let request = ErasureRequest::Subject("patient-0042".into());
        let report = erasure_report("hospital-a", "fed", &request, &key, "bc", "0123");
        assert_eq!(
            report.scope,
            Some(Scope::SubjectPseudonym(key.pseudonym("patient-0042")))
        );
        assert!(!format!("{report:?}").contains("patient-0042"));
        let leaving = erasure_report("hospital-a", "fed", &ErasureRequest::Leave, &key, "", "");
        assert_eq!(leaving.scope, Some(Scope::NodeLeaving(true)));
    }
}
