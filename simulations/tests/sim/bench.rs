//! `cohort-sim bench` on a tiny federation (3 nodes, 2 rounds, about 2·10^4
//! parameters): every round's parts are disjoint (they never add up to more
//! than its time), and `bench.csv` has one line per round with a column for
//! every part of every stage. Checked in the clear with training and under
//! secure aggregation with free riders. How closely the parts cover a round
//! (within 5 % on an idle machine) is a measurement, the bench's own
//! `adds_up` flag, not asserted here: a loaded machine preempts the code
//! between the timed steps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cohort_sim::bench::{BenchOptions, bench};

fn options(secure_aggregation: bool) -> BenchOptions {
    BenchOptions {
        nodes: 3,
        parameters: 20_000,
        rounds: 2,
        secure_aggregation,
        neighbours: None,
        skip_training: secure_aggregation,
        noise_std: 1e-3,
        seed: 5,
    }
}

/// Runs the bench and checks its rows, `bench.csv` and `bench.json`;
/// returns the CSV's header.
async fn check(options: BenchOptions) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = 0;
    let outcome = bench(&options, dir.path(), |_| seen += 1).await.unwrap();
    assert_eq!(seen, 2, "one row per round, as it completes");
    assert_eq!(outcome.rows.len(), 2);
    for (row, round) in outcome.rows.iter().zip(1..) {
        assert_eq!(row.round, round);
        // Disjoint parts: the residual is never negative (but for float
        // rounding).
        assert!(row.residual >= -1e-9 * row.seconds, "{}", row.line());
        assert!(row.seconds > 0.0, "{}", row.line());
    }
    let mut csv = csv::Reader::from_path(dir.path().join("bench.csv")).unwrap();
    let header: Vec<String> = csv.headers().unwrap().iter().map(str::to_owned).collect();
    let records: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 2);
    for record in &records {
        assert_eq!(record.len(), header.len());
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("bench.json")).unwrap()).unwrap();
    assert_eq!(json.as_array().map(Vec::len), Some(2));
    header
}

fn has_stage(header: &[String], stage: &str) {
    for segment in ["delivery", "fetch", "work", "upload", "close"] {
        let column = format!("{stage} {segment}");
        assert!(header.contains(&column), "no {column} in {header:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_round_adds_up_and_has_every_stage() {
    let header = check(options(false)).await;
    for column in [
        "seconds",
        "residual",
        "model load",
        "sampling",
        "aggregation",
        "commit encode",
        "commit store write",
        "commit audit",
        "evaluate store write",
        "fit upload bytes",
        "evaluate fetch bytes",
    ] {
        assert!(
            header.iter().any(|h| h == column),
            "no {column} in {header:?}"
        );
    }
    has_stage(&header, "fit");
    has_stage(&header, "evaluate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secure_round_adds_up_and_has_all_six_stages() {
    let header = check(options(true)).await;
    for stage in [
        "secagg-advertise-keys",
        "secagg-graph-seed",
        "secagg-share-keys",
        "secagg-masked-input",
        "secagg-consistency-check",
        "secagg-unmasking",
    ] {
        has_stage(&header, stage);
        assert!(header.contains(&format!("{stage} tasks")));
    }
    assert!(header.iter().any(|h| h == "secagg unmask sum"));
    assert!(
        header
            .iter()
            .any(|h| h == "secagg-masked-input upload bytes")
    );
}
