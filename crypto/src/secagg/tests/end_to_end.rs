//! Whole rounds with dropouts: the unmasked sum is exactly the sum of the survivors'
//! quantized inputs, and the weighted mean is within the quantization bound.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::harness::{Federation, Plan, pick, plain_sum, run};
use crate::secagg::graph::NeighbourGraph;
use crate::secagg::prg::{Prg, PrgSeed};
use crate::secagg::{NodeId, RoundId, SecAggConfig, SecAggError};

#[derive(Debug, Clone, Copy)]
enum DropBefore {
    MaskedInput,
    Signing,
    Unmasking,
}

/// Random updates in ±1.5 (so some coordinates are clipped at 1.0) and weights.
fn updates(ids: &[NodeId], len: usize, salt: u8) -> BTreeMap<NodeId, (Vec<f32>, f64)> {
    let mut prg = Prg::new(&PrgSeed::from_bytes([salt; 32]));
    let mut uniform = move || (prg.next_u64().unwrap() >> 11) as f64 / (1u64 << 53) as f64;
    ids.iter()
        .map(|&id| {
            let update = (0..len).map(|_| (3.0 * uniform() - 1.5) as f32).collect();
            (id, (update, 0.1 + 0.9 * uniform()))
        })
        .collect()
}

fn check_round(n: usize, dropout_percent: usize, when: DropBefore, config: SecAggConfig) {
    let vector_len = 40;
    let federation = Federation::new(n, vector_len, config, RoundId(7));
    let raw = updates(&federation.ids, vector_len, n as u8 ^ dropout_percent as u8);
    let inputs = federation.quantize(&raw);
    let dropped = pick(&federation.ids, n * dropout_percent / 100, 42);
    let mut plan = Plan::default();
    match when {
        DropBefore::MaskedInput => plan.before_masked_input = dropped.clone(),
        DropBefore::Signing => plan.before_signing = dropped.clone(),
        DropBefore::Unmasking => plan.before_unmasking = dropped.clone(),
    }
    let context = format!("n {n}, {dropout_percent}% dropping {when:?}");
    let outcome = run(&federation, &plan, &inputs);
    assert!(outcome.failed.is_empty(), "{context}: {:?}", outcome.failed);
    let sum = outcome.result.unwrap_or_else(|e| panic!("{context}: {e}"));

    // Who counts: everyone but those that dropped before their masked input.
    let expected: Vec<NodeId> = match when {
        DropBefore::MaskedInput => federation
            .ids
            .iter()
            .copied()
            .filter(|id| !dropped.contains(id))
            .collect(),
        DropBefore::Signing | DropBefore::Unmasking => federation.ids.clone(),
    };
    assert_eq!(sum.contributors(), expected.as_slice(), "{context}");
    let dropouts = sum.dropouts();
    let recorded = match when {
        DropBefore::MaskedInput => &dropouts.before_masked_input,
        DropBefore::Signing => &dropouts.before_signing,
        DropBefore::Unmasking => &dropouts.before_unmasking,
    };
    assert_eq!(recorded, &dropped.iter().copied().collect::<Vec<_>>());

    // Exact: the masks cancel to the last bit.
    let bits = federation.config.bits;
    assert_eq!(
        sum.values(),
        plain_sum(&inputs, &expected, bits).as_slice(),
        "{context}"
    );

    // The coordinator never asked for both secrets of one node.
    let seeds: BTreeSet<NodeId> = outcome
        .requests
        .iter()
        .flat_map(|r| r.survivors.clone())
        .collect();
    let keys: BTreeSet<NodeId> = outcome
        .requests
        .iter()
        .flat_map(|r| r.dropped.clone())
        .collect();
    assert!(seeds.is_disjoint(&keys), "{context}");

    // The weighted mean is within the quantization bound of the float mean.
    let quantizer = federation.quantizer();
    let dequantized = quantizer
        .dequantize_sum(sum.values(), expected.len())
        .unwrap();
    let mean = dequantized.weighted_mean().unwrap();
    let clip = federation.config.clip_range;
    let total_weight: f64 = expected.iter().map(|id| raw[id].1).sum();
    let contributors = expected.len() as f64;
    for (i, got) in mean.iter().enumerate() {
        let weighted: f64 = expected
            .iter()
            .map(|id| raw[id].1 * f64::from(raw[id].0[i]).clamp(-clip, clip))
            .sum();
        let exact = weighted / total_weight;
        // N̂/D̂ − N/D = (ΔN − (N/D)·ΔD) / D̂, with |ΔN| < n·step and |ΔD| < n·weight step.
        let bound = (contributors * quantizer.step()
            + exact.abs() * contributors * quantizer.weight_step())
            / dequantized.total_weight;
        assert!(
            (got - exact).abs() <= bound * 1.01,
            "{context}: coordinate {i}: {got} vs {exact} (bound {bound})"
        );
    }
}

#[test]
fn complete_graph_rounds_with_dropouts() {
    for n in [10, 13, 20] {
        for percent in [0, 10, 30] {
            for when in [
                DropBefore::MaskedInput,
                DropBefore::Signing,
                DropBefore::Unmasking,
            ] {
                check_round(n, percent, when, SecAggConfig::for_participants(n));
            }
        }
    }
}

#[test]
fn sparse_graph_rounds_with_dropouts() {
    // SecAgg+: 30 nodes, each masking with 20 of them. The graph is drawn
    // afresh by every run's nonces, so the parameters must hold for any graph:
    // with 9 of 30 gone, every node keeps at least 20 − 9 = 11 = t neighbours.
    let config = SecAggConfig {
        neighbours: 20,
        threshold: 11,
        ..SecAggConfig::default()
    };
    for percent in [0, 10, 30] {
        for when in [DropBefore::MaskedInput, DropBefore::Unmasking] {
            check_round(30, percent, when, config);
        }
    }
}

#[test]
fn narrow_and_wide_rings() {
    for bits in [20, 64] {
        let config = SecAggConfig {
            bits,
            ..SecAggConfig::for_participants(10)
        };
        check_round(10, 10, DropBefore::MaskedInput, config);
    }
}

/// Whether every secret the coordinator needs has at least t shares among the nodes
/// that answered: the condition for a round not to abort in unmasking.
fn enough_shares(
    federation: &Federation,
    graph: &NeighbourGraph,
    shared: &BTreeSet<NodeId>,
    masked: &BTreeSet<NodeId>,
    answered: &BTreeSet<NodeId>,
) -> bool {
    let t = federation.config.threshold;
    let holders = |id: NodeId| {
        graph
            .neighbours(id)
            .into_iter()
            .filter(|v| answered.contains(v))
            .count()
    };
    masked.iter().all(|&u| holders(u) >= t)
        && shared.difference(masked).all(|&w| {
            let has_survivor = graph.neighbours(w).iter().any(|v| masked.contains(v));
            !has_survivor || holders(w) >= t
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// For random n, k and dropouts at every stage, the round either yields exactly
    /// the sum of the inputs of the nodes that sent masked inputs, or aborts for lack
    /// of shares — and it aborts exactly when some needed secret lacks t shares.
    #[test]
    fn masks_cancel_for_random_rounds(
        n in 4usize..16,
        k_choice in 0usize..8,
        drops in proptest::collection::vec(0u8..20, 16),
        salt in any::<u8>(),
    ) {
        let degree = 2 + 2 * (k_choice % ((n - 1) / 2).max(1));
        let k = if k_choice == 7 { n - 1 } else { degree.min(n - 1) };
        let config = SecAggConfig { neighbours: k, threshold: k / 2 + 1, bits: 24, clip_range: 1.0 };
        prop_assume!(config.validate(n, 5).is_ok());
        let federation = Federation::new(n, 5, config, RoundId(u64::from(salt) + 1));
        let inputs = federation.plain_inputs();
        // Each node drops at most once: value 0 before sharing, 1 before masked
        // input, 2 before unmasking, anything else stays (about 15% in all).
        let mut plan = Plan::default();
        for (&id, &d) in federation.ids.iter().zip(&drops) {
            match d {
                0 => { plan.before_sharing.insert(id); }
                1 => { plan.before_masked_input.insert(id); }
                2 => { plan.before_unmasking.insert(id); }
                _ => {}
            }
        }
        let outcome = run(&federation, &plan, &inputs);
        let succeeded = outcome.result.is_ok();
        match &outcome.result {
            Ok(sum) => {
                prop_assert!(sum.contributors().iter().all(|id| !plan.before_masked_input.contains(id)));
                let expected = plain_sum(&inputs, sum.contributors(), 24);
                prop_assert_eq!(sum.values(), expected.as_slice());
            }
            Err(SecAggError::RoundAborted { got, needed, .. }) => prop_assert!(got < needed),
            Err(SecAggError::TooFewNodes { got, needed, .. }) => prop_assert!(got < needed),
            Err(other) => prop_assert!(false, "unexpected error: {}", other),
        }
        // Once unmasking is reached, whether the round aborts is decided by the share
        // counts alone.
        if let (Some(dropouts), Some(graph)) = (outcome.dropouts, &outcome.graph) {
            let all: BTreeSet<NodeId> = federation.ids.iter().copied().collect();
            let without = |set: &BTreeSet<NodeId>, gone: &[NodeId]| -> BTreeSet<NodeId> {
                set.iter().copied().filter(|id| !gone.contains(id)).collect()
            };
            let advertised = without(&all, &dropouts.before_advertising);
            let shared = without(&advertised, &dropouts.before_sharing);
            let masked = without(&shared, &dropouts.before_masked_input);
            let signed = without(&masked, &dropouts.before_signing);
            let answered = without(&signed, &dropouts.before_unmasking);
            prop_assert_eq!(succeeded, enough_shares(&federation, graph, &shared, &masked, &answered));
        }
    }
}
