//! The audit log end to end: the coordinator's `AuditLog` appending to sled
//! (every entry followed by its signed tree head; each append durable: one
//! sled transaction and flush), concurrent appends group-committed, and
//! `audit verify` over the stored log.
//!
//! Run in release: `cargo bench -p cohort-coordinator --bench audit`.
//! Entries are `RoundFailed` events of about 150 bytes of canonical JSON.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cohort_coordinator::audit::{AuditEvent, AuditLog, verify};
use cohort_coordinator::store::{Store, StoreLocation};

const ENTRIES: u64 = 100_000;

fn event(i: u64) -> AuditEvent {
    AuditEvent::RoundFailed {
        round: i,
        attempt: 1,
        reason: format!("only 2 of 5 sampled nodes returned an update (bench entry {i})"),
    }
}

fn per_second(count: u64, time: Duration) -> f64 {
    count as f64 / time.as_secs_f64()
}

/// Appends `ENTRIES` events, `batch` per append (one flush each), from `first`.
async fn fill(store: &Store, log: &AuditLog, first: u64, batch: u64) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut next = first;
    while next < first + ENTRIES {
        let end = (next + batch).min(first + ENTRIES);
        log.append(store, (next..end).map(event).collect()).await?;
        next = end;
    }
    Ok(start.elapsed())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    println!("{ENTRIES} audit entries through AuditLog + sled, a signed head per entry\n");

    let store = Store::open(&StoreLocation::Folder(dir.path().join("state-100"))).await?;
    let log = AuditLog::open(&store, &dir.path().join("audit-100.key"), "bench").await?;
    let t = fill(&store, &log, 0, 100).await?;
    println!(
        "append, 100 entries per flush: {:>9.0} entries/s ({:.2} s)",
        per_second(ENTRIES, t),
        t.as_secs_f64()
    );

    let start = Instant::now();
    let verified = verify(&store, &log.identity()).await?;
    let t = start.elapsed();
    println!(
        "audit verify, {} entries, {} signed heads: {:>7.0} ms",
        verified.entries.len(),
        verified.heads_checked,
        t.as_secs_f64() * 1e3
    );

    // The last appends cost what the first did: no O(n) step per append.
    let late = fill(&store, &log, ENTRIES, 100).await?;
    println!(
        "  the next 10^5 (entries 10^5..2·10^5): {:>9.0} entries/s",
        per_second(ENTRIES, late)
    );

    let start = Instant::now();
    drop(log);
    let reopened = AuditLog::open(&store, &dir.path().join("audit-100.key"), "bench").await?;
    println!(
        "reopen (resume from the stored frontier): {:>7.2} ms, {} entries",
        start.elapsed().as_secs_f64() * 1e3,
        reopened.entry_count().await
    );

    // One entry per append, as downloads and auditor reads are logged: one
    // caller at a time (a flush each), then many at once (group commit).
    let store = Store::open(&StoreLocation::Folder(dir.path().join("state-1"))).await?;
    let log = Arc::new(AuditLog::open(&store, &dir.path().join("audit-1.key"), "bench").await?);
    let single = 5_000;
    let start = Instant::now();
    for i in 0..single {
        log.append(&store, vec![event(i)]).await?;
    }
    println!(
        "\none entry per append, one caller:    {:>7.0} entries/s ({single} entries)",
        per_second(single, start.elapsed())
    );
    let (callers, each) = (200u64, 100u64);
    let start = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|c| {
            let (log, store) = (log.clone(), store.clone());
            tokio::spawn(async move {
                for i in 0..each {
                    log.append(&store, vec![event(c * each + i)]).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    println!(
        "one entry per append, {callers} callers: {:>7.0} entries/s ({} entries)",
        per_second(callers * each, start.elapsed()),
        callers * each
    );
    Ok(())
}
