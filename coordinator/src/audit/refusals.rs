//! Refusals on their way into the audit log. Refused requests and connections
//! are logged without the refused caller waiting for a flush: an attacker can
//! cause them at will, so they must cost neither a flush each nor unbounded
//! memory. They go through a bounded queue to one writer task, which
//!
//! - writes whatever has queued up in one group commit;
//! - writes identical refusals drained together (same peer, status and reason,
//!   as a flood of rate-limited requests is) as one entry with their `count`;
//! - counts what did not fit in the queue and logs that count
//!   (`RefusalsNotLogged`), so that no refusal disappears without a trace.
//!
//! Entries still queued when the process dies are lost: nobody was told they
//! were stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, watch};

use super::{AuditEvent, AuditLog};
use crate::store::Store;

/// Refusals waiting for the writer; past this they are only counted.
pub const REFUSAL_QUEUE: usize = 4096;

/// The sending side, kept by the service layer (`crate::service::access`).
#[derive(Debug)]
pub struct RefusalQueue {
    queued: mpsc::Sender<AuditEvent>,
    not_queued: Arc<AtomicU64>,
}

/// The receiving side, run by [`RefusalWriter::run`].
#[derive(Debug)]
pub struct RefusalWriter {
    queued: mpsc::Receiver<AuditEvent>,
    not_queued: Arc<AtomicU64>,
}

impl RefusalQueue {
    /// An empty queue of [`REFUSAL_QUEUE`] places, and its writer (to be run).
    pub fn new() -> (Self, RefusalWriter) {
        let (sender, receiver) = mpsc::channel(REFUSAL_QUEUE);
        let not_queued = Arc::new(AtomicU64::new(0));
        (
            Self {
                queued: sender,
                not_queued: not_queued.clone(),
            },
            RefusalWriter {
                queued: receiver,
                not_queued,
            },
        )
    }

    /// Queues a refusal without waiting; a full queue only counts it.
    pub fn push(&self, refusal: AuditEvent) {
        if self.queued.try_send(refusal).is_err() {
            // Relaxed: a count, read by the one writer.
            if self.not_queued.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!("refusal queue full: refusals are counted, not logged one by one");
            }
        }
    }
}

impl RefusalWriter {
    /// Writes queued refusals until `shutdown`, then what is left.
    pub async fn run(
        mut self,
        log: Arc<AuditLog>,
        store: Store,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut refusals = Vec::new();
        loop {
            tokio::select! {
                received = self.queued.recv_many(&mut refusals, REFUSAL_QUEUE) => if received == 0 { break },
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
            self.write(&log, &store, std::mem::take(&mut refusals))
                .await;
        }
        while let Ok(refusal) = self.queued.try_recv() {
            refusals.push(refusal);
        }
        self.write(&log, &store, refusals).await;
    }

    async fn write(&self, log: &AuditLog, store: &Store, refusals: Vec<AuditEvent>) {
        let mut events = coalesce(refusals);
        let not_queued = self.not_queued.swap(0, Ordering::Relaxed);
        if not_queued > 0 {
            events.push(AuditEvent::RefusalsNotLogged { count: not_queued });
        }
        if events.is_empty() {
            return;
        }
        if let Err(error) = log.append(store, events).await {
            tracing::error!(%error, "audit append of refusals failed");
        }
    }
}

/// Identical refusals as one, with their counts added, in order of first
/// appearance; anything else as it is.
pub fn coalesce(events: Vec<AuditEvent>) -> Vec<AuditEvent> {
    let mut out: Vec<AuditEvent> = Vec::with_capacity(events.len());
    for event in events {
        let same = out.iter_mut().find_map(|seen| match (seen, &event) {
            (
                AuditEvent::RequestRefused {
                    peer,
                    code,
                    reason,
                    count,
                },
                AuditEvent::RequestRefused {
                    peer: p,
                    code: c,
                    reason: r,
                    count: n,
                },
            ) if (&*peer, &*code, &*reason) == (p, c, r) => Some((count, *n)),
            (
                AuditEvent::ConnectionRefused {
                    remote_addr,
                    reason,
                    count,
                },
                AuditEvent::ConnectionRefused {
                    remote_addr: a,
                    reason: r,
                    count: n,
                },
            ) if (&*remote_addr, &*reason) == (a, r) => Some((count, *n)),
            _ => None,
        });
        match same {
            Some((count, more)) => *count += more,
            None => out.push(event),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    fn refused(peer: &str, reason: &str) -> AuditEvent {
        AuditEvent::RequestRefused {
            peer: peer.into(),
            code: "ResourceExhausted".into(),
            reason: reason.into(),
            count: 1,
        }
    }

    #[test]
    fn identical_refusals_become_one_entry_with_their_count() {
        let events = vec![
            refused("hospital-a", "rate"),
            refused("hospital-b", "rate"),
            refused("hospital-a", "rate"),
            refused("hospital-a", "other"),
            refused("hospital-a", "rate"),
        ];
        let counts: Vec<(String, String, u64)> = coalesce(events)
            .into_iter()
            .map(|event| match event {
                AuditEvent::RequestRefused {
                    peer,
                    reason,
                    count,
                    ..
                } => (peer, reason, count),
                other => panic!("{other:?}"),
            })
            .collect();
        let expected = [
            ("hospital-a", "rate", 3),
            ("hospital-b", "rate", 1),
            ("hospital-a", "other", 1),
        ]
        .map(|(p, r, n)| (p.to_owned(), r.to_owned(), n));
        assert_eq!(counts, expected);
    }

    #[tokio::test]
    async fn a_full_queue_counts_what_it_could_not_hold_and_the_count_is_logged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::from(SledStore::open(&dir.path().join("state")).unwrap());
        let log = Arc::new(
            AuditLog::open(&store, &dir.path().join("audit.key"), "refusal-tests")
                .await
                .unwrap(),
        );
        let (queue, writer) = RefusalQueue::new();
        // Nothing drains yet: the queue fills, and the rest is counted.
        for i in 0..REFUSAL_QUEUE + 10 {
            queue.push(refused("flooder", &format!("refusal {}", i % 3)));
        }
        let (stop, shutdown) = watch::channel(true);
        writer.run(log.clone(), store.clone(), shutdown).await;
        drop(stop);
        let entries = crate::audit::verify(&store, &log.identity())
            .await
            .unwrap()
            .entries;
        let mut logged = 0;
        let mut not_logged = 0;
        for entry in entries {
            match entry.event {
                AuditEvent::RequestRefused { count, .. } => logged += count,
                AuditEvent::RefusalsNotLogged { count } => not_logged += count,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(logged, REFUSAL_QUEUE as u64);
        assert_eq!(not_logged, 10);
    }
}
