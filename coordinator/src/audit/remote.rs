//! An auditor's copy of the log, fetched over the auditor API and checked on
//! the auditor's side: the latest signed tree head, then every signed head
//! and every entry up to it, verified with the same checks `audit verify`
//! runs on a coordinator's state ([`verify_log`]) against the audit key and
//! the federation the auditor pinned ([`Pins`]): every head must name both. Lineage and erasure answers are then computed from these
//! verified entries, so what an auditor reports never rests on the
//! coordinator's word alone.
//!
//! Each call is an auditor read, which the coordinator logs before answering;
//! the log therefore grows while it is fetched, and the copy is the log as of
//! the head fetched first.

use cohort_crypto::transparency::{LogIdentity, SignedTreeHead};
use cohort_proto::AUDIT_ITEMS_PER_CALL;
use cohort_proto::audit_v1::audit_client::AuditClient;
use cohort_proto::audit_v1::{self as v1};
use tonic::transport::Channel;

use super::{AuditViolation, VerifiedLog, verify_log};

/// Why an auditor's copy of the log could not be fetched or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum RemoteAuditError {
    /// The coordinator refused a call of the auditor API.
    #[error(
        "the coordinator answered {call} with {code:?}{}: {message}",
        reason.map(|r| format!(" ({r})")).unwrap_or_default()
    )]
    Refused {
        /// The call refused.
        call: &'static str,
        /// The gRPC status it returned.
        code: tonic::Code,
        /// The refusal's typed reason, if it carried one.
        reason: Option<cohort_crypto::authz::RefusalReason>,
        /// The coordinator's message.
        message: String,
    },
    /// The coordinator's tree heads are signed with another key than the
    /// auditor pinned.
    #[error("the coordinator signs with audit key {served}, not the pinned key {pinned}")]
    KeyMismatch {
        /// The key the coordinator signs with (hex).
        served: String,
        /// The pinned key (hex).
        pinned: String,
    },
    /// The coordinator serves another federation's log than the auditor pinned.
    #[error("the coordinator serves federation {served:?}'s log, not the pinned {pinned:?}")]
    FederationMismatch {
        /// The federation the coordinator names.
        served: String,
        /// The pinned federation.
        pinned: String,
    },
    /// The coordinator served something that does not parse or does not belong
    /// where it was served.
    #[error("the coordinator served {what}: {reason}")]
    Malformed {
        /// What it served.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The served entries and heads fail the checks of [`verify_log`].
    #[error("the served log does not verify: {0}")]
    Tampered(#[from] AuditViolation),
}

/// What an auditor trusts before fetching. Each that is `None` is taken from
/// the coordinator on first use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pins {
    /// The audit public key.
    pub public_key: Option<Vec<u8>>,
    /// The federation whose log the auditor audits.
    pub federation_id: Option<String>,
}

/// A log fetched from a coordinator and verified.
#[derive(Debug, Clone)]
pub struct FetchedLog {
    /// The entries and heads, verified.
    pub log: VerifiedLog,
    /// The log (federation and key) the heads were checked as.
    pub identity: LogIdentity,
    /// False when no key was pinned and the served key was taken on trust
    /// (which proves only that the log is self-consistent).
    pub key_pinned: bool,
    /// False when no federation was pinned and the served one was taken on trust.
    pub federation_pinned: bool,
}

fn refused(call: &'static str) -> impl FnOnce(tonic::Status) -> RemoteAuditError {
    move |status| RemoteAuditError::Refused {
        call,
        code: status.code(),
        reason: cohort_crypto::authz::RefusalReason::of(&status),
        message: status.message().to_owned(),
    }
}

/// Fetches the log as of the coordinator's latest signed tree head and
/// verifies it as the log `pins` names (or, for what they leave out, the key
/// and federation the coordinator serves).
pub async fn fetch_verified(channel: Channel, pins: &Pins) -> Result<FetchedLog, RemoteAuditError> {
    let mut client =
        AuditClient::new(channel).max_decoding_message_size(cohort_proto::MAX_MESSAGE_BYTES);
    let served = client
        .get_tree_head(v1::GetTreeHeadRequest {})
        .await
        .map_err(refused("GetTreeHead"))?
        .into_inner();
    let identity = pinned_identity(&served, pins)?;
    let latest = SignedTreeHead::from_bytes(&served.signed_tree_head).map_err(|e| {
        RemoteAuditError::Malformed {
            what: "a latest tree head that does not parse".into(),
            reason: e.to_string(),
        }
    })?;
    let size = latest.tree_size;
    let heads = fetch_heads(&mut client, size).await?;
    let entries = fetch_entries(&mut client, size).await?;
    let log = verify_log(&entries, &heads, &identity)?;
    // The heads fetched end at the latest one, which must be the one served.
    if log.head.as_ref().map(SignedTreeHead::to_bytes) != Some(latest.to_bytes()) {
        return Err(RemoteAuditError::Malformed {
            what: format!("a latest tree head (size {size})"),
            reason: "it is not the last of the heads it serves".into(),
        });
    }
    Ok(FetchedLog {
        log,
        identity,
        key_pinned: pins.public_key.is_some(),
        federation_pinned: pins.federation_id.is_some(),
    })
}

/// The log to check the served one as: the pins, which the coordinator must
/// agree with, and what it serves for the rest.
fn pinned_identity(served: &v1::TreeHead, pins: &Pins) -> Result<LogIdentity, RemoteAuditError> {
    let public_key = match &pins.public_key {
        // Public keys: nothing secret to compare in constant time.
        Some(pinned) if *pinned != served.public_key => {
            return Err(RemoteAuditError::KeyMismatch {
                served: hex::encode(&served.public_key),
                pinned: hex::encode(pinned),
            });
        }
        Some(pinned) => pinned,
        None => &served.public_key,
    };
    let federation_id = match &pins.federation_id {
        Some(pinned) if *pinned != served.federation_id => {
            return Err(RemoteAuditError::FederationMismatch {
                served: served.federation_id.clone(),
                pinned: pinned.clone(),
            });
        }
        Some(pinned) => pinned,
        None => &served.federation_id,
    };
    Ok(LogIdentity::new(federation_id, public_key))
}

/// Every signed head over at most `size` entries, by increasing size.
async fn fetch_heads(
    client: &mut AuditClient<Channel>,
    size: u64,
) -> Result<Vec<(u64, Vec<u8>)>, RemoteAuditError> {
    let mut heads = Vec::new();
    let mut after_size = 0;
    while after_size < size {
        let page = client
            .get_tree_heads(v1::GetTreeHeadsRequest {
                after_size,
                up_to_size: size,
            })
            .await
            .map_err(refused("GetTreeHeads"))?
            .into_inner()
            .signed_tree_heads;
        if page.is_empty() {
            // The heads stop short of `size`: `verify_log` reports what is unsigned.
            break;
        }
        for bytes in page {
            let head =
                SignedTreeHead::from_bytes(&bytes).map_err(|e| RemoteAuditError::Malformed {
                    what: format!("a tree head after size {after_size}"),
                    reason: e.to_string(),
                })?;
            // Sizes must grow, or paging could go on forever.
            if head.tree_size <= after_size || head.tree_size > size {
                return Err(RemoteAuditError::Malformed {
                    what: format!("a tree head of size {}", head.tree_size),
                    reason: format!("it was asked for sizes {after_size} < size ≤ {size}"),
                });
            }
            after_size = head.tree_size;
            heads.push((head.tree_size, bytes));
        }
    }
    Ok(heads)
}

/// Entries `0..size`, as served; gaps are left for `verify_log` to name.
async fn fetch_entries(
    client: &mut AuditClient<Channel>,
    size: u64,
) -> Result<Vec<(u64, Vec<u8>)>, RemoteAuditError> {
    let mut entries: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut start = 0;
    while start < size {
        let end = size.min(start + AUDIT_ITEMS_PER_CALL);
        let page = client
            .get_entries(v1::GetEntriesRequest { start, end })
            .await
            .map_err(refused("GetEntries"))?
            .into_inner()
            .entries;
        let Some(last) = page.last().map(|entry| entry.seq) else {
            break;
        };
        if page
            .iter()
            .zip(page.iter().skip(1))
            .any(|(a, b)| a.seq >= b.seq)
            || page.iter().any(|entry| !(start..end).contains(&entry.seq))
        {
            return Err(RemoteAuditError::Malformed {
                what: format!("entries for {start}..{end}"),
                reason: "their sequence numbers are out of that range or order".into(),
            });
        }
        entries.extend(page.into_iter().map(|e| (e.seq, e.canonical_json)));
        // A short page (the message size cap) continues after its last entry.
        start = last + 1;
    }
    Ok(entries)
}
