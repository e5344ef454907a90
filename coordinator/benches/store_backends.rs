//! The state store's two backends side by side: a round commit's latency
//! (model of 10^5 parameters, record, head, strategy state and one audit entry
//! in one transaction, durable) and audit appends per second (one entry per
//! append, and 100 per append as the audit log's group commit writes them),
//! on sled and on PostgreSQL (a scratch server of the distribution's
//! PostgreSQL on loopback, default durability: `fsync` and
//! `synchronous_commit` on).
//!
//! Run in release: `cargo bench -p cohort-coordinator --bench store_backends`.

use std::time::{Duration, Instant};

use cohort_coordinator::store::postgres::scratch::ScratchServer;
use cohort_coordinator::store::records::{self, AuditBatch, RoundOutcome, RoundRecord};
use cohort_coordinator::store::{Store, StoreLocation};
use cohort_coordinator::strategy::StrategyState;

const COMMITS: u64 = 200;
const APPENDS: u64 = 1000;
const PARAMETERS: usize = 100_000;

fn record(round: u64) -> RoundRecord {
    RoundRecord {
        schema: records::SCHEMA_VERSION,
        round,
        attempt: 1,
        strategy: "fedadam".into(),
        model_in: format!("model-{}", round - 1),
        sampled: (0..10).map(|i| format!("node-{i}")).collect(),
        started_ms: 0,
        finished_ms: 0,
        outcome: RoundOutcome::Completed {
            model_out: format!("model-{round}"),
            contributions: vec![],
            evaluation: None,
        },
        epsilon_spent: None,
        epsilon_against_coordinator: None,
    }
}

fn batch(seqs: std::ops::Range<u64>) -> AuditBatch {
    AuditBatch {
        entries: seqs.map(|seq| (seq, vec![b'e'; 150])).collect(),
        heads: Vec::new(),
        frontier: vec![0; 32 * 20],
    }
}

/// What one commit needs: (record, version, model bytes, strategy state, audit).
fn round(round: u64) -> (RoundRecord, String, Vec<u8>, StrategyState, AuditBatch) {
    let model: Vec<u8> = (0..PARAMETERS * 4)
        .map(|i| (i as u64 ^ round) as u8)
        .collect();
    let state = StrategyState {
        strategy: "fedadam".into(),
        buffers: [("m".to_owned(), vec![0.5; 1000])].into(),
    };
    (
        record(round),
        format!("model-{round}"),
        model,
        state,
        batch(round..round + 1),
    )
}

fn report(name: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mean = latencies.iter().sum::<Duration>() / latencies.len() as u32;
    println!(
        "{name:<10} round commit: median {:>6.2} ms, p90 {:>6.2} ms, mean {:>6.2} ms",
        ms(latencies[latencies.len() / 2]),
        ms(latencies[latencies.len() * 9 / 10]),
        ms(mean)
    );
}

fn rate(name: &str, per_append: u64, time: Duration) {
    println!(
        "{name:<10} audit, {per_append:>3} per append: {:>8.0} appends/s, {:>8.0} entries/s",
        APPENDS as f64 / time.as_secs_f64(),
        (APPENDS * per_append) as f64 / time.as_secs_f64()
    );
}

/// Commits, then appends of each size, each on a fresh store `fresh` gives.
async fn bench(
    name: &str,
    fresh: impl Fn(&str) -> anyhow::Result<StoreLocation>,
) -> anyhow::Result<()> {
    let store = Store::open(&fresh("commits")?).await?;
    let mut latencies = Vec::new();
    for r in 1..=COMMITS {
        let (record, version, model, state, audit) = round(r);
        let start = Instant::now();
        store
            .commit_round(&record, &version, &model, None, Some(&state), &audit)
            .await?;
        latencies.push(start.elapsed());
    }
    report(name, latencies);
    for per_append in [1, 100] {
        let store = Store::open(&fresh(&format!("audit_{per_append}"))?).await?;
        let start = Instant::now();
        for i in 0..APPENDS {
            store
                .append_audit(&batch(i * per_append..(i + 1) * per_append))
                .await?;
        }
        rate(name, per_append, start.elapsed());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    println!("{COMMITS} round commits ({PARAMETERS} parameters each), {APPENDS} audit appends\n");
    bench("sled", |name| {
        Ok(StoreLocation::Folder(dir.path().join(name)))
    })
    .await?;
    match ScratchServer::start()? {
        Some(server) => {
            let fresh = |name: &str| Ok(StoreLocation::Postgres(server.database(name)?));
            bench("PostgreSQL", fresh).await?
        }
        None => println!("PostgreSQL: SKIPPED (not installed)"),
    }
    Ok(())
}
