//! Secure aggregation costs: one node's masking time, one node's consistency check
//! (signing the survivor set, then checking its neighbours' signatures and
//! revealing its shares) and its share of the whole node's protocol time, one
//! node's graph-seed work (checking the commitment list, then every revealed
//! nonce) and the bytes that stage sends it, the coordinator's unmasking time,
//! the bytes a node sends against a plain f32 update, and the PRG's throughput.
//!
//! `cargo bench -p cohort-crypto --bench secagg` runs every n ∈ {10, 100, 1000},
//! d ∈ {10^4, 10^6}, dropout ∈ {0, 10, 30}% (nodes dropping after sharing keys, before
//! their masked input: the case that makes the coordinator rebuild mask keys), with
//! the default SecAgg+ parameters (k = min(40, n − 1), t = k/2 + 1, b = 32). Add
//! `-- quick` to skip d = 10^6. Prints a Markdown table; every round's sum is checked.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cohort_crypto::secagg::graph::NeighbourGraph;
use cohort_crypto::secagg::graph_seed;
use cohort_crypto::secagg::masking::{MaskTerm, Sign, apply_masks};
use cohort_crypto::secagg::prg::{Prg, PrgSeed};
use cohort_crypto::secagg::{
    Aggregator, EcdsaP256Signer, EcdsaP256Verifier, NodeId, NodePolicy, Participant,
    QuantizedInput, Quantizer, RoundId, SecAggConfig, SecAggError,
};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};

fn gb_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / 1e9
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn prg_throughput() {
    let mut buffer = vec![0u8; 64 << 20];
    let mut prg = Prg::new(&PrgSeed::from_bytes([1; 32]));
    let raw = best_of(3, || prg.fill_bytes(&mut buffer));
    println!(
        "PRG (AES-256 counter-mode keystream, one thread): {:.2} GB/s",
        gb_per_s(buffer.len(), raw)
    );

    let d = 1_000_000;
    let terms: Vec<MaskTerm> = (0..41u8)
        .map(|i| MaskTerm {
            seed: PrgSeed::from_bytes([i; 32]),
            sign: if i % 2 == 0 {
                Sign::Add
            } else {
                Sign::Subtract
            },
        })
        .collect();
    let mut values = vec![0u64; d];
    let masks = best_of(3, || apply_masks(&mut values, &terms, 32));
    println!(
        "Mask expansion (41 seeds × 10^6 coordinates, 32-bit words, all threads): {:.2} GB/s of keystream, {:.0} ms",
        gb_per_s(41 * d * 4, masks),
        masks.as_secs_f64() * 1e3
    );
}

struct Row {
    n: usize,
    d: usize,
    dropout: usize,
    node_masking: Duration,
    node_check: Duration,
    node_graph_seed: Duration,
    graph_bytes: usize,
    unmasking: Duration,
    bytes_sent: usize,
    setup: Duration,
    /// Nodes that refused to sign the survivor set (too few surviving
    /// neighbours) and so dropped out of unmasking.
    refusals: usize,
    /// Too few shares of some secret: the round aborted.
    aborted: bool,
}

fn identity(rng: &SystemRandom) -> EcdsaP256Signer {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, rng)
        .map_err(|e| e.to_string())
        .and_then(|k| EcdsaP256Signer::from_pkcs8(k.as_ref()).map_err(|e| e.to_string()));
    match pkcs8 {
        Ok(signer) => signer,
        Err(e) => panic!("identity key: {e}"),
    }
}

/// One round; nodes in `dropped` vanish after sharing keys.
fn round(
    n: usize,
    d: usize,
    dropout: usize,
    input: &QuantizedInput,
    signers: &BTreeMap<NodeId, EcdsaP256Signer>,
    verifier: &EcdsaP256Verifier,
) -> Result<Row, SecAggError> {
    let started = Instant::now();
    let config = SecAggConfig::for_participants(n);
    let ids: Vec<NodeId> = signers.keys().copied().collect();
    let round = RoundId((n * 1000 + dropout) as u64);
    let mut aggregator = Aggregator::new(&config, round, &ids, d)?;
    let mut nodes = BTreeMap::new();
    let mut bytes: BTreeMap<NodeId, usize> = BTreeMap::new();
    for &id in &ids {
        let mut node = Participant::new(&config, &NodePolicy::default(), round, id, &ids, d)?;
        let advert = node.advertise(&signers[&id])?;
        *bytes.entry(id).or_default() += advert.wire_size();
        aggregator.receive_advertisement(advert)?;
        nodes.insert(id, node);
    }
    aggregator.close_advertise_keys()?;
    let commitments = aggregator.graph_commitments();
    let mut graph_seed = Vec::new();
    for (&id, node) in nodes.iter_mut() {
        let start = Instant::now();
        let reveal = node.reveal_graph_nonce(&commitments)?;
        graph_seed.push(start.elapsed());
        *bytes.entry(id).or_default() += reveal.wire_size();
        aggregator.receive_graph_reveal(reveal)?;
    }
    aggregator.close_graph_seed()?;
    let reveals = aggregator.graph_reveals();
    let graph_bytes = commitments.wire_size() + reveals.wire_size();
    // A node's draw of the graph: check every nonce, hash, shuffle.
    let committed = commitments.commitments.iter().copied().collect();
    let draw = best_of(3, || {
        graph_seed::seed_from_reveals(round, ids[0], &committed, &reveals)
            .and_then(|seed| NeighbourGraph::harary(&config, &ids, round, &seed))
    });
    graph_seed.sort();
    let graph_seed = graph_seed[graph_seed.len() / 2] + draw;
    for (&id, node) in nodes.iter_mut() {
        let message = node.share_keys(&reveals, &aggregator.advertisements_for(id), verifier)?;
        *bytes.entry(id).or_default() += message.wire_size();
        aggregator.receive_shares(message)?;
    }
    aggregator.close_share_keys()?;
    // i ↦ 37·i mod 100 permutes each block of 100 ids: exactly `dropout`% drop.
    let drops = |id: &NodeId| (id.0 as usize * 37) % 100 < dropout;
    let setup = started.elapsed();

    let mut masking = Vec::new();
    for (&id, node) in nodes.iter_mut() {
        if drops(&id) {
            continue;
        }
        let shares = aggregator.shares_for(id);
        let start = Instant::now();
        let message = node.masked_input(&shares, input, &signers[&id])?;
        masking.push(start.elapsed());
        *bytes.entry(id).or_default() += message.wire_size();
        aggregator.receive_masked_input(message)?;
    }
    masking.sort();

    let start = Instant::now();
    aggregator.close_masked_input()?;
    let mut checking: BTreeMap<NodeId, Duration> = BTreeMap::new();
    let mut refusals = 0;
    for (&id, node) in nodes.iter_mut() {
        let Some(list) = aggregator.survivor_list_for(id) else {
            continue;
        };
        let node_start = Instant::now();
        // A node with fewer than t surviving neighbours refuses to sign and
        // drops out, as it would in a real round.
        let signature = match node.consistency_check(&list, &signers[&id]) {
            Ok(signature) => signature,
            Err(SecAggError::ConsistencyRefused { .. }) => {
                refusals += 1;
                continue;
            }
            Err(other) => return Err(other),
        };
        checking.insert(id, node_start.elapsed());
        *bytes.entry(id).or_default() += signature.wire_size();
        aggregator.receive_survivor_signature(signature)?;
    }
    let aborted = |unmasking: Duration| Row {
        n,
        d,
        dropout,
        node_masking: masking[masking.len() / 2],
        node_check: Duration::ZERO,
        node_graph_seed: graph_seed,
        graph_bytes,
        unmasking,
        bytes_sent: 0,
        setup,
        refusals,
        aborted: true,
    };
    // Too few shares of some secret for any unmasking: the round ends here.
    match aggregator.close_consistency_check() {
        Err(SecAggError::RoundAborted { .. }) => return Ok(aborted(start.elapsed())),
        other => other?,
    }
    let requests: Vec<_> = aggregator.unmask_requests().cloned().collect();
    for request in &requests {
        let node_start = Instant::now();
        let answer = nodes
            .get_mut(&request.node)
            .map(|node| node.unmask(request, verifier))
            .unwrap_or(Err(SecAggError::InvalidConfig("no such node".into())));
        // A signer with fewer than t signing neighbours refuses, as in a real
        // round; the others' shares may still suffice.
        let response = match answer {
            Err(SecAggError::ConsistencyRefused { .. }) => continue,
            other => other?,
        };
        *checking.entry(request.node).or_default() += node_start.elapsed();
        *bytes.entry(request.node).or_default() += response.wire_size();
        aggregator.receive_unmask_response(response)?;
    }
    let sum = match aggregator.finish() {
        Err(SecAggError::RoundAborted { .. }) => return Ok(aborted(start.elapsed())),
        other => other?,
    };
    // The nodes' part ran in this process too: the server's is the rest.
    let nodes_time: Duration = checking.values().sum();
    let unmasking = start.elapsed().saturating_sub(nodes_time);
    let mut checking: Vec<Duration> = checking.into_values().collect();
    checking.sort();

    // Everyone sent the same input: the sum is that input times the survivors.
    let survivors = sum.contributors().len() as u64;
    let mask = u64::MAX >> (64 - config.bits);
    let exact = sum
        .values()
        .iter()
        .zip(input.values())
        .all(|(s, v)| *s == v.wrapping_mul(survivors) & mask);
    assert!(exact, "n {n} d {d} dropout {dropout}%: wrong sum");

    let mut sent: Vec<usize> = bytes
        .iter()
        .filter(|(id, _)| !drops(id))
        .map(|(_, b)| *b)
        .collect();
    sent.sort_unstable();
    Ok(Row {
        n,
        d,
        dropout,
        node_masking: masking[masking.len() / 2],
        node_check: checking[checking.len() / 2],
        node_graph_seed: graph_seed,
        graph_bytes,
        unmasking,
        bytes_sent: sent[sent.len() / 2],
        setup,
        refusals,
        aborted: false,
    })
}

fn main() -> Result<(), SecAggError> {
    let quick = std::env::args().any(|a| a == "quick");
    prg_throughput();

    let rng = SystemRandom::new();
    let mut rows = Vec::new();
    for n in [10usize, 100, 1000] {
        let signers: BTreeMap<NodeId, EcdsaP256Signer> =
            (0..n as u32).map(|i| (NodeId(i), identity(&rng))).collect();
        let mut verifier = EcdsaP256Verifier::new();
        for (&id, signer) in &signers {
            verifier.insert_public_key(id, signer.public_key());
        }
        for d in [10_000usize, 1_000_000] {
            if quick && d > 10_000 {
                continue;
            }
            let config = SecAggConfig::for_participants(n);
            let quantizer = Quantizer::new(&config, n, d)?;
            let mut noise = Prg::new(&PrgSeed::from_bytes([3; 32]));
            let update: Vec<f32> = (0..d)
                .map(|_| (noise.next_u64().map_or(0, |r| r >> 40) as f32 / (1 << 24) as f32) - 0.5)
                .collect();
            let input = quantizer.quantize_weighted(&update, 0.5)?;
            for dropout in [0, 10, 30] {
                let row = round(n, d, dropout, &input, &signers, &verifier)?;
                eprintln!(
                    "n {n} d {d} dropout {dropout}%: node {:?}, check {:?}, unmask {:?} (setup {:?}), {} refused to sign, aborted: {}",
                    row.node_masking,
                    row.node_check,
                    row.unmasking,
                    row.setup,
                    row.refusals,
                    row.aborted
                );
                rows.push(row);
            }
        }
    }

    println!();
    println!(
        "| n | d | dropout | k | node masking | node consistency check | check's share of the node's time | node graph seed | graph-seed bytes to a node | server unmasking | bytes sent per node | vs f32 update |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        let k = SecAggConfig::for_participants(row.n).neighbours;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let node_total = row.node_masking + row.node_check + row.node_graph_seed;
        if row.aborted {
            println!(
                "| {} | 10^{} | {}% | {} | {:.1} ms | aborted: {} nodes refused to sign, too few shares | | {:.2} ms | {} | | | |",
                row.n,
                (row.d as f64).log10().round(),
                row.dropout,
                k,
                ms(row.node_masking),
                row.refusals,
                ms(row.node_graph_seed),
                row.graph_bytes,
            );
            continue;
        }
        println!(
            "| {} | 10^{} | {}% | {} | {:.1} ms | {:.1} ms | {:.1}% | {:.2} ms | {} | {:.1} ms | {} | {:.3}× |",
            row.n,
            (row.d as f64).log10().round(),
            row.dropout,
            k,
            ms(row.node_masking),
            ms(row.node_check),
            100.0 * row.node_check.as_secs_f64() / node_total.as_secs_f64(),
            ms(row.node_graph_seed),
            row.graph_bytes,
            ms(row.unmasking),
            row.bytes_sent,
            row.bytes_sent as f64 / (4 * row.d) as f64,
        );
    }
    Ok(())
}
