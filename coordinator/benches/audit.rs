//! The audit log end to end: the coordinator's `AuditLog` appending to sled,
//! each batch durable (one sled transaction and flush) with its signed tree
//! head, and `audit verify` over the stored log.
//!
//! Run in release: `cargo bench -p cohort-coordinator --bench audit`.
//! Entries are `RoundFailed` events of about 150 bytes of canonical JSON.

use std::time::{Duration, Instant};

use cohort_coordinator::audit::{AuditEvent, AuditLog, verify};
use cohort_coordinator::store::Store;

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

/// Appends `ENTRIES` events in batches of `batch`, one signed head each.
async fn fill(store: &Store, log: &AuditLog, batch: u64) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut next = 0;
    while next < ENTRIES {
        let end = (next + batch).min(ENTRIES);
        log.append(store, (next..end).map(event).collect()).await?;
        next = end;
    }
    Ok(start.elapsed())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    println!("{ENTRIES} audit entries through AuditLog + sled, one flush per signed head\n");

    let store = Store::open(&dir.path().join("state-100"))?;
    let log = AuditLog::open(&store, &dir.path().join("audit-100.key"))?;
    let t = fill(&store, &log, 100).await?;
    println!(
        "append, signed head every 100 entries: {:>9.0} entries/s ({:.2} s)",
        per_second(ENTRIES, t),
        t.as_secs_f64()
    );

    let start = Instant::now();
    let verified = verify(&store, &log.public_key())?;
    let t = start.elapsed();
    println!(
        "\naudit verify, {} entries, {} signed heads: {:>7.0} ms",
        verified.entries.len(),
        verified.heads_checked,
        t.as_secs_f64() * 1e3
    );

    // The last appends cost what the first did: no O(n) step per append.
    let start = Instant::now();
    for i in 0..1000 {
        log.append(&store, (0..100).map(|j| event(i * 100 + j)).collect())
            .await?;
    }
    let late = start.elapsed();
    println!(
        "  the next 10^5 (entries 10^5..2·10^5):  {:>9.0} entries/s",
        per_second(ENTRIES, late)
    );

    let start = Instant::now();
    drop(log);
    let reopened = AuditLog::open(&store, &dir.path().join("audit-100.key"))?;
    println!(
        "\nreopen (resume from the stored frontier): {:>7.2} ms, {} entries",
        start.elapsed().as_secs_f64() * 1e3,
        reopened.entry_count().await
    );

    let store = Store::open(&dir.path().join("state-1"))?;
    let log = AuditLog::open(&store, &dir.path().join("audit-1.key"))?;
    let signed_each = 5_000;
    let start = Instant::now();
    for i in 0..signed_each {
        log.append(&store, vec![event(i)]).await?;
    }
    let t = start.elapsed();
    println!(
        "\nappend, signed head and flush every entry: {:>7.0} entries/s ({signed_each} entries)",
        per_second(signed_each, t)
    );
    Ok(())
}
