//! The auditor API (`cohort.audit.v1.Audit`): read-only access to the audit
//! log, its signed tree heads and RFC 9162 proofs, lineage and erasure
//! requests, for certificates with the auditor role only. Every call is first
//! recorded in the log itself (who read what), durably, before it is answered:
//! HIPAA asks who accessed the records, auditors included.
//!
//! Proofs need the whole tree, which the coordinator does not keep in memory
//! (it appends from the tree's frontier): each proof call rebuilds it from the
//! stored entries, O(n) hashing (about 0.1 s per 10^5 entries).

use std::sync::Arc;
use std::time::SystemTime;

use cohort_crypto::Role;
use cohort_crypto::transparency::{MerkleTree, SignedTreeHead, leaf_hash};
use cohort_proto::audit_v1::audit_server::Audit as AuditRpc;
use cohort_proto::audit_v1::{self as v1, lineage_request::Query};
use tonic::{Request, Response, Status};

use super::{internal, refuse};
use crate::audit::erasure::statuses;
use crate::audit::lineage::{Lineage, Source};
use crate::audit::{AuditEvent, stored_entries};
use crate::federation::Federation;
use crate::rounds::stage::unix_ms;
use cohort_crypto::tls::acceptor::PeerInfo;

/// Entries returned by one `GetEntries` call at most.
pub const MAX_ENTRIES_PER_CALL: u64 = 1000;

#[derive(Debug, Clone)]
pub struct AuditService {
    federation: Arc<Federation>,
}

impl AuditService {
    pub fn new(federation: Arc<Federation>) -> Self {
        Self { federation }
    }

    /// The auditor behind a request, after logging what it reads; anyone else
    /// is refused (and the refusal logged).
    async fn admit<T>(&self, request: &Request<T>, reading: String) -> Result<String, Status> {
        let fed = &self.federation;
        let peer = request
            .extensions()
            .get::<PeerInfo>()
            .ok_or_else(|| Status::unauthenticated("no verified client certificate"))?;
        if peer.identity.role() != Role::Auditor {
            return Err(refuse(
                fed,
                &peer.identity.to_string(),
                Status::permission_denied(format!("{} may not use the auditor API", peer.identity)),
            ));
        }
        let auditor = peer.identity.name().to_owned();
        fed.audit_log
            .append(
                &fed.store,
                vec![AuditEvent::AuditorRead {
                    auditor: auditor.clone(),
                    reading,
                }],
            )
            .await
            .map_err(internal)?;
        Ok(auditor)
    }

    /// The whole tree over the stored entries, for proofs.
    fn tree(&self) -> Result<MerkleTree, Status> {
        let stored = self.federation.store.audit_entries().map_err(internal)?;
        Ok(MerkleTree::from_leaf_hashes(
            stored.iter().map(|(_, bytes)| leaf_hash(bytes)),
        ))
    }
}

fn proof(hashes: Vec<cohort_crypto::transparency::Hash>) -> Response<v1::Proof> {
    Response::new(v1::Proof {
        hashes: hashes.iter().map(|h| h.as_bytes().to_vec()).collect(),
    })
}

fn json(value: &impl serde::Serialize) -> Result<Response<v1::JsonAnswer>, Status> {
    Ok(Response::new(v1::JsonAnswer {
        json: serde_json::to_string(value).map_err(internal)?,
    }))
}

#[tonic::async_trait]
impl AuditRpc for AuditService {
    async fn get_tree_head(
        &self,
        request: Request<v1::GetTreeHeadRequest>,
    ) -> Result<Response<v1::TreeHead>, Status> {
        self.admit(&request, "tree head".into()).await?;
        let fed = &self.federation;
        let (_, head) = fed
            .store
            .latest_audit_head()
            .map_err(internal)?
            .ok_or_else(|| Status::not_found("the audit log is empty"))?;
        // Parsed to refuse serving a corrupt head; served as stored.
        SignedTreeHead::from_bytes(&head).map_err(internal)?;
        Ok(Response::new(v1::TreeHead {
            signed_tree_head: head,
            public_key: fed.audit_log.public_key().to_vec(),
        }))
    }

    async fn get_entries(
        &self,
        request: Request<v1::GetEntriesRequest>,
    ) -> Result<Response<v1::Entries>, Status> {
        let v1::GetEntriesRequest { start, end } = *request.get_ref();
        self.admit(&request, format!("entries {start}..{end}"))
            .await?;
        if end < start || end - start > MAX_ENTRIES_PER_CALL {
            return Err(Status::invalid_argument(format!(
                "entries {start}..{end}: ask for 0 to {MAX_ENTRIES_PER_CALL} entries, start ≤ end"
            )));
        }
        let entries = self
            .federation
            .store
            .audit_entries()
            .map_err(internal)?
            .into_iter()
            .filter(|(seq, _)| (start..end).contains(seq))
            .map(|(seq, canonical_json)| v1::Entry {
                seq,
                canonical_json,
            })
            .collect();
        Ok(Response::new(v1::Entries { entries }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<v1::ConsistencyProofRequest>,
    ) -> Result<Response<v1::Proof>, Status> {
        let v1::ConsistencyProofRequest { old_size, new_size } = *request.get_ref();
        self.admit(
            &request,
            format!("consistency proof {old_size} -> {new_size}"),
        )
        .await?;
        let hashes = self
            .tree()?
            .consistency_proof(old_size, new_size)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(proof(hashes))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<v1::InclusionProofRequest>,
    ) -> Result<Response<v1::Proof>, Status> {
        let v1::InclusionProofRequest { seq, tree_size } = *request.get_ref();
        self.admit(
            &request,
            format!("inclusion proof of entry {seq} in {tree_size}"),
        )
        .await?;
        let hashes = self
            .tree()?
            .inclusion_proof(seq, tree_size)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(proof(hashes))
    }

    async fn get_lineage(
        &self,
        request: Request<v1::LineageRequest>,
    ) -> Result<Response<v1::JsonAnswer>, Status> {
        let query = request
            .get_ref()
            .query
            .clone()
            .ok_or_else(|| Status::invalid_argument("name a model, data set or node"))?;
        self.admit(&request, format!("lineage of {query:?}"))
            .await?;
        let entries = stored_entries(&self.federation.store).map_err(internal)?;
        let lineage = Lineage::from_entries(&entries);
        match query {
            Query::ModelVersion(model) => json(
                &lineage
                    .model(&model)
                    .map_err(|e| Status::not_found(e.to_string()))?,
            ),
            Query::Dataset(spec) => json(&lineage.influenced_by(
                &Source::dataset(&spec).map_err(|e| Status::invalid_argument(e.to_string()))?,
            )),
            Query::NodeId(node) => json(&lineage.influenced_by(&Source::Node(node))),
        }
    }

    async fn get_erasures(
        &self,
        request: Request<v1::ErasuresRequest>,
    ) -> Result<Response<v1::JsonAnswer>, Status> {
        let overdue_only = request.get_ref().overdue_only;
        self.admit(&request, format!("erasures (overdue only: {overdue_only})"))
            .await?;
        let entries = stored_entries(&self.federation.store).map_err(internal)?;
        let mut requests = statuses(&entries, unix_ms(SystemTime::now()));
        requests.retain(|r| r.overdue || !overdue_only);
        json(&requests)
    }
}
