//! The auditor API (`cohort.audit.v1.Audit`): read-only access to the audit
//! log, its signed tree heads and RFC 9162 proofs, lineage and erasure
//! requests, for certificates with the auditor role only (the authorization
//! layer's policy, [`super::access`], which also refuses revoked auditors and
//! applies the per-identity rate limit: each read is a durable entry). Every
//! call is first
//! recorded in the log itself (who read what), durably, before it is answered:
//! HIPAA asks who accessed the records, auditors included.
//!
//! Proofs need the whole tree, which the log itself does not keep (it appends
//! from the tree's frontier): the service keeps its own copy, built on the
//! first proof call and extended with only the entries appended since, so a
//! proof costs O(log² n) hashes plus the new entries (64 bytes of memory per
//! entry). Entries and heads are read by key range, never the whole log.

use std::sync::Arc;
use std::time::SystemTime;

use cohort_crypto::authz::Caller;
use cohort_crypto::transparency::{MerkleTree, SignedTreeHead};
use cohort_proto::audit_v1::audit_server::Audit as AuditRpc;
use cohort_proto::audit_v1::{self as v1, lineage_request::Query};
use cohort_proto::{AUDIT_ITEMS_PER_CALL, MAX_CHUNK_BYTES};
use tokio::sync::{Mutex, MutexGuard};
use tonic::{Request, Response, Status};

use super::internal;
use crate::audit::erasure::statuses;
use crate::audit::lineage::{Lineage, Source};
use crate::audit::{AuditEvent, stored_entries};
use crate::federation::Federation;
use crate::store::records::unix_ms;

/// The auditor API (see the module docs).
#[derive(Debug, Clone)]
pub struct AuditService {
    federation: Arc<Federation>,
    /// The Merkle tree over the stored entries, as far as proofs needed it.
    tree: Arc<Mutex<MerkleTree>>,
}

impl AuditService {
    /// The service over the federation's log (served behind the
    /// authorization layer).
    pub fn new(federation: Arc<Federation>) -> Self {
        Self {
            federation,
            tree: Arc::default(),
        }
    }

    /// The auditor the authorization layer admitted for `request`, after
    /// logging what it reads.
    async fn admit<T>(&self, request: &Request<T>, reading: String) -> Result<String, Status> {
        let fed = &self.federation;
        let caller = Caller::of(request)?;
        let auditor = caller.identity().name().to_owned();
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

    /// The tree over at least the first `size` stored entries (all of them if
    /// fewer are stored), extended from the store as needed. The log only
    /// ever appends, so what the tree holds stays true.
    async fn tree(&self, size: u64) -> Result<MutexGuard<'_, MerkleTree>, Status> {
        let mut tree = self.tree.lock().await;
        if tree.len() < size {
            let store = &self.federation.store;
            for (seq, bytes) in store
                .audit_entries_in(tree.len()..size)
                .await
                .map_err(internal)?
            {
                if seq != tree.len() {
                    return Err(internal(format!("audit entry {} is missing", tree.len())));
                }
                tree.append(&bytes);
            }
        }
        Ok(tree)
    }
}

/// Items in order until their bytes would pass [`MAX_CHUNK_BYTES`] (at least one).
fn within_message_size<T>(items: Vec<T>, bytes: impl Fn(&T) -> usize) -> Vec<T> {
    let mut total = 0;
    items
        .into_iter()
        .take_while(|item| {
            let fits = total == 0 || total + bytes(item) <= MAX_CHUNK_BYTES;
            total += bytes(item);
            fits
        })
        .collect()
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
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::not_found("the audit log is empty"))?;
        // Parsed to refuse serving a corrupt head; served as stored.
        SignedTreeHead::from_bytes(&head).map_err(internal)?;
        Ok(Response::new(v1::TreeHead {
            signed_tree_head: head,
            public_key: fed.audit_log.public_key().to_vec(),
            federation_id: fed.audit_log.identity().federation_id().to_owned(),
        }))
    }

    async fn get_entries(
        &self,
        request: Request<v1::GetEntriesRequest>,
    ) -> Result<Response<v1::Entries>, Status> {
        let v1::GetEntriesRequest { start, end } = *request.get_ref();
        self.admit(&request, format!("entries {start}..{end}"))
            .await?;
        if end < start || end - start > AUDIT_ITEMS_PER_CALL {
            return Err(Status::invalid_argument(format!(
                "entries {start}..{end}: ask for 0 to {AUDIT_ITEMS_PER_CALL} entries, start ≤ end"
            )));
        }
        let stored = self
            .federation
            .store
            .audit_entries_in(start..end)
            .await
            .map_err(internal)?;
        let entries = within_message_size(stored, |(_, bytes)| bytes.len())
            .into_iter()
            .map(|(seq, canonical_json)| v1::Entry {
                seq,
                canonical_json,
            })
            .collect();
        Ok(Response::new(v1::Entries { entries }))
    }

    async fn get_tree_heads(
        &self,
        request: Request<v1::GetTreeHeadsRequest>,
    ) -> Result<Response<v1::TreeHeads>, Status> {
        let v1::GetTreeHeadsRequest {
            after_size,
            up_to_size,
        } = *request.get_ref();
        self.admit(
            &request,
            format!("tree heads over {after_size}..={up_to_size} entries"),
        )
        .await?;
        if up_to_size < after_size {
            return Err(Status::invalid_argument(format!(
                "tree heads after size {after_size} up to {up_to_size}: the range is reversed"
            )));
        }
        let heads = self
            .federation
            .store
            .audit_heads_in(
                after_size.saturating_add(1)..up_to_size.saturating_add(1),
                AUDIT_ITEMS_PER_CALL as usize,
            )
            .await
            .map_err(internal)?
            .into_iter()
            .map(|(_, head)| head)
            .collect();
        Ok(Response::new(v1::TreeHeads {
            signed_tree_heads: heads,
        }))
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
            .tree(new_size)
            .await?
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
            .tree(tree_size)
            .await?
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
        let entries = stored_entries(&self.federation.store)
            .await
            .map_err(internal)?;
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
        let entries = stored_entries(&self.federation.store)
            .await
            .map_err(internal)?;
        let mut requests = statuses(&entries, unix_ms(SystemTime::now()));
        requests.retain(|r| r.overdue || !overdue_only);
        json(&requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_stops_before_the_message_limit_but_holds_at_least_one_item() {
        let mib = 1 << 20;
        let sizes = |items: Vec<usize>| within_message_size(items, |size| *size);
        assert_eq!(sizes(vec![mib, mib, mib]), vec![mib, mib, mib]);
        assert_eq!(sizes(vec![3 * mib, 2 * mib, 1]), vec![3 * mib]);
        assert_eq!(sizes(vec![5 * mib, 1]), vec![5 * mib]);
        assert_eq!(sizes(Vec::new()), Vec::<usize>::new());
    }
}
