//! Throughput of the audit log's cryptography (`cohort_crypto::transparency`).
//!
//! Run in release: `cargo bench -p cohort-crypto --bench transparency`. Each
//! figure is the median of several runs, on one thread. Entries are ~300-byte
//! JSON audit events, as the coordinator will log them.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cohort_crypto::transparency::{
    AuditSigningKey, Hash, MerkleFrontier, MerkleTree, SubjectPseudonymKey, leaf_hash,
    verify_consistency, verify_inclusion,
};

const RUNS: usize = 5;

/// Synthetic audit events of about 300 bytes.
fn entries(n: usize, pseudonyms: &SubjectPseudonymKey) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            format!(
                concat!(
                    r#"{{"seq":{},"ts_ms":{},"kind":"update_accepted","round":{},"#,
                    r#""node":"cohort://node/hospital-{}","subject":"{}","#,
                    r#""update_sha256":"{}","clip_norm":1.0,"epsilon_spent":0.0123}}"#
                ),
                i,
                1_760_000_000_000u64 + i as u64,
                i / 1000,
                i % 17,
                pseudonyms.pseudonym(&format!("patient-{i}")),
                leaf_hash(&i.to_be_bytes()),
            )
            .into_bytes()
        })
        .collect()
}

/// The median wall-clock time of `RUNS` runs of `f`.
fn median<T>(mut f: impl FnMut() -> T) -> Duration {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            black_box(f());
            start.elapsed()
        })
        .collect();
    times.sort();
    times[RUNS / 2]
}

fn per_second(count: usize, time: Duration) -> f64 {
    count as f64 / time.as_secs_f64()
}

/// Appends `entries`, signing a tree head every `every` entries.
fn append_and_sign(entries: &[Vec<u8>], key: &AuditSigningKey, every: usize) -> MerkleTree {
    let mut tree = MerkleTree::new();
    for (i, entry) in entries.iter().enumerate() {
        tree.append(entry);
        if (i + 1).is_multiple_of(every) {
            black_box(key.sign_tree_head("bench", tree.len(), i as u64, tree.root()));
        }
    }
    tree
}

/// As [`append_and_sign`], keeping only the tree's right edge (what the
/// coordinator's log does).
fn append_frontier_and_sign(
    entries: &[Vec<u8>],
    key: &AuditSigningKey,
    every: usize,
) -> MerkleFrontier {
    let mut frontier = MerkleFrontier::new();
    for (i, entry) in entries.iter().enumerate() {
        frontier.append(entry);
        if (i + 1).is_multiple_of(every) {
            black_box(key.sign_tree_head("bench", frontier.len(), i as u64, frontier.root()));
        }
    }
    frontier
}

fn main() {
    let tmp =
        std::env::temp_dir().join(format!("cohort-transparency-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).ok();
    let key = match AuditSigningKey::generate(&tmp.join("audit.key")) {
        Ok(key) => key,
        Err(e) => return eprintln!("audit key: {e}"),
    };
    let pseudonyms = match SubjectPseudonymKey::generate(&tmp.join("pseudonym.key")) {
        Ok(key) => key,
        Err(e) => return eprintln!("pseudonym key: {e}"),
    };
    std::fs::remove_dir_all(&tmp).ok();

    const N: usize = 100_000;
    let data = entries(N, &pseudonyms);
    let mean_len = data.iter().map(Vec::len).sum::<usize>() / N;
    println!("{N} entries of {mean_len} bytes on average, median of {RUNS} runs\n");

    let t = median(|| append_and_sign(&data, &key, 100));
    println!(
        "append, tree head signed every 100 entries: {:>10.0} entries/s ({:.0} ms for {N})",
        per_second(N, t),
        t.as_secs_f64() * 1e3
    );
    let t = median(|| append_frontier_and_sign(&data, &key, 100));
    println!(
        "append to the frontier only (O(log n) state), head every 100: {:>10.0} entries/s",
        per_second(N, t)
    );
    let signed = 20_000;
    let t = median(|| append_and_sign(&data[..signed], &key, 1));
    println!(
        "append, tree head signed every entry:       {:>10.0} entries/s",
        per_second(signed, t)
    );
    let t = median(|| {
        let mut tree = MerkleTree::new();
        data.iter().for_each(|e| {
            tree.append(e);
        });
        tree.root()
    });
    println!(
        "append only, no signature:                  {:>10.0} entries/s",
        per_second(N, t)
    );

    let t = median(|| MerkleTree::from_leaf_hashes(data.iter().map(|e| leaf_hash(e))).root());
    println!(
        "\nroot of {N} entries from scratch (hash entries, build):  {:>8.2} ms",
        t.as_secs_f64() * 1e3
    );
    let hashes: Vec<Hash> = data.iter().map(|e| leaf_hash(e)).collect();
    let t = median(|| MerkleTree::from_leaf_hashes(hashes.iter().copied()).root());
    println!(
        "root of {N} leaf hashes from scratch (from_leaf_hashes): {:>8.2} ms",
        t.as_secs_f64() * 1e3
    );
    let million: Vec<Hash> = (0..1_000_000u32)
        .map(|i| leaf_hash(&i.to_be_bytes()))
        .collect();
    let t = median(|| MerkleTree::from_leaf_hashes(million.iter().copied()).root());
    println!(
        "root of 1000000 leaf hashes from scratch:                {:>8.2} ms",
        t.as_secs_f64() * 1e3
    );

    // Proofs between pseudo-random sizes of the 10^5-entry tree.
    let tree = MerkleTree::from_leaf_hashes(hashes.iter().copied());
    let new_size = N as u64;
    let new_root = tree.root();
    let olds: Vec<u64> = (1..=1000u64).map(|i| i * 7919 % new_size + 1).collect();
    let proofs: Vec<(u64, Hash, Vec<Hash>)> = olds
        .iter()
        .filter_map(|&m| {
            Some((
                m,
                tree.root_at(m).ok()?,
                tree.consistency_proof(m, new_size).ok()?,
            ))
        })
        .collect();
    let t = median(|| {
        olds.iter()
            .filter_map(|&m| tree.consistency_proof(m, new_size).ok())
            .map(|proof| proof.len())
            .sum::<usize>()
    });
    println!(
        "\nconsistency proof m -> {N}, generate:  {:>7.2} µs",
        t.as_secs_f64() * 1e6 / olds.len() as f64
    );
    let all_consistent = proofs.iter().all(|(m, old_root, proof)| {
        verify_consistency(*m, new_size, old_root, &new_root, proof).is_ok()
    });
    if !all_consistent || proofs.len() != olds.len() {
        eprintln!("a consistency proof failed to verify");
        std::process::exit(1);
    }
    let t = median(|| {
        proofs
            .iter()
            .filter(|(m, old_root, proof)| {
                verify_consistency(*m, new_size, old_root, &new_root, proof).is_ok()
            })
            .count()
    });
    println!(
        "consistency proof m -> {N}, verify:    {:>7.2} µs ({} hashes per proof at most)",
        t.as_secs_f64() * 1e6 / proofs.len() as f64,
        proofs.iter().map(|p| p.2.len()).max().unwrap_or(0)
    );
    let indices: Vec<u64> = olds.iter().map(|m| m - 1).collect();
    let t = median(|| {
        indices
            .iter()
            .filter_map(|&i| tree.inclusion_proof(i, new_size).ok())
            .count()
    });
    println!(
        "inclusion proof in {N}, generate:      {:>7.2} µs",
        t.as_secs_f64() * 1e6 / indices.len() as f64
    );
    let inclusion: Vec<(u64, Vec<Hash>)> = indices
        .iter()
        .filter_map(|&i| Some((i, tree.inclusion_proof(i, new_size).ok()?)))
        .collect();
    let all_included = inclusion.iter().all(|(i, path)| {
        verify_inclusion(*i, new_size, &hashes[*i as usize], path, &new_root).is_ok()
    });
    if !all_included || inclusion.len() != indices.len() {
        eprintln!("an inclusion proof failed to verify");
        std::process::exit(1);
    }
    let t = median(|| {
        inclusion
            .iter()
            .filter(|(i, path)| {
                verify_inclusion(*i, new_size, &hashes[*i as usize], path, &new_root).is_ok()
            })
            .count()
    });
    println!(
        "inclusion proof in {N}, verify:        {:>7.2} µs",
        t.as_secs_f64() * 1e6 / inclusion.len() as f64
    );

    let sth = key.sign_tree_head("bench", new_size, 0, new_root);
    let log = key.log_identity("bench");
    let t = median(|| (0..2000).filter(|_| sth.verify(&log).is_ok()).count());
    println!(
        "\nsigned tree head, verify:   {:>8.0} /s",
        per_second(2000, t)
    );
    let t = median(|| {
        (0..20_000)
            .map(|i| pseudonyms.pseudonym(&format!("patient-{i}")).len())
            .sum::<usize>()
    });
    println!(
        "pseudonym (HMAC-SHA256):    {:>8.0} /s",
        per_second(20_000, t)
    );
}
