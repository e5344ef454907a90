//! The console's pictures, drawn on the server as inline SVG (nothing is
//! fetched or drawn by a script): a line chart of a metric over rounds, a bar
//! of ε spent against the budget, and a model's lineage as a graph of rounds,
//! nodes and data set versions. Every label goes through maud, so it is
//! escaped like the rest of the page.

use std::collections::BTreeMap;

use maud::{Markup, html};

use crate::audit::lineage::ModelLineage;

const CHART_WIDTH: f64 = 480.0;
const CHART_HEIGHT: f64 = 200.0;
/// Room for the axis labels, left and bottom.
const MARGIN: f64 = 40.0;

/// A line chart of `points` (round, value), titled `title`, with `id` on the
/// `<svg>` (so tests and scripts can find it). The y axis spans the values
/// (or `0..1` for `unit_interval`). No points: an empty frame that says so.
pub fn line_chart(id: &str, title: &str, points: &[(u64, f64)], unit_interval: bool) -> Markup {
    let (low, high) = if unit_interval {
        (0.0, 1.0)
    } else {
        value_range(points)
    };
    let first = points.first().map_or(0, |p| p.0) as f64;
    let last = points.last().map_or(1, |p| p.0) as f64;
    let x = |round: u64| {
        let span = (last - first).max(1.0);
        MARGIN + (round as f64 - first) / span * (CHART_WIDTH - MARGIN - 10.0)
    };
    let y = |value: f64| {
        let span = (high - low).max(f64::EPSILON);
        CHART_HEIGHT - MARGIN - (value - low) / span * (CHART_HEIGHT - MARGIN - 10.0)
    };
    let path: Vec<String> = points
        .iter()
        .map(|&(round, value)| format!("{:.1},{:.1}", x(round), y(value)))
        .collect();
    let view_box = format!("0 0 {CHART_WIDTH} {CHART_HEIGHT}");
    html! {
        svg id=(id) class="chart" role="img" viewBox=(view_box) width=(CHART_WIDTH) height=(CHART_HEIGHT) {
            title { (title) }
            line x1=(MARGIN) y1=(CHART_HEIGHT - MARGIN) x2=(CHART_WIDTH - 10.0) y2=(CHART_HEIGHT - MARGIN) stroke="#888" {}
            line x1=(MARGIN) y1="10" x2=(MARGIN) y2=(CHART_HEIGHT - MARGIN) stroke="#888" {}
            text x="4" y="16" font-size="11" { (format!("{high:.3}")) }
            text x="4" y=(CHART_HEIGHT - MARGIN) font-size="11" { (format!("{low:.3}")) }
            text x=(CHART_WIDTH / 2.0) y=(CHART_HEIGHT - 8.0) font-size="11" text-anchor="middle" { (title) " by round" }
            @if points.is_empty() {
                text x=(CHART_WIDTH / 2.0) y=(CHART_HEIGHT / 2.0) text-anchor="middle" fill="#888" { "no evaluated round yet" }
            } @else {
                polyline points=(path.join(" ")) fill="none" stroke="#1f6feb" stroke-width="2" {}
                @for &(round, value) in points {
                    circle class="point" cx=(format!("{:.1}", x(round))) cy=(format!("{:.1}", y(value))) r="3" fill="#1f6feb" {
                        title { "round " (round) ": " (format!("{value:.4}")) }
                    }
                }
            }
        }
    }
}

/// The smallest and largest value (a flat or empty series gets some room).
fn value_range(points: &[(u64, f64)]) -> (f64, f64) {
    let values = points.iter().map(|p| p.1).filter(|v| v.is_finite());
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if low > high {
        (0.0, 1.0)
    } else if high - low < 1e-9 {
        (low - 0.5, high + 0.5)
    } else {
        (low, high)
    }
}

/// A bar of `spent` against `budget` (full: the budget is spent).
pub fn budget_bar(spent: f64, budget: f64) -> Markup {
    let share = if budget > 0.0 {
        (spent / budget).clamp(0.0, 1.0)
    } else {
        1.0
    };
    let colour = if share >= 0.9 { "#cf222e" } else { "#2da44e" };
    html! {
        svg id="epsilon-bar" role="img" viewBox="0 0 400 24" width="400" height="24" {
            title { "ε spent: " (format!("{spent:.3}")) " of " (format!("{budget:.3}")) }
            rect x="0" y="0" width="400" height="24" fill="#eee" {}
            rect x="0" y="0" width=(format!("{:.1}", share * 400.0)) height="24" fill=(colour) {}
        }
    }
}

/// Where each node of a lineage graph sits.
struct Layout {
    rounds: Vec<(f64, f64)>,
    nodes: BTreeMap<String, (f64, f64)>,
    datasets: BTreeMap<String, (f64, f64)>,
    width: f64,
}

const ROW_ROUNDS: f64 = 40.0;
const ROW_NODES: f64 = 150.0;
const ROW_DATASETS: f64 = 260.0;
const SPACING: f64 = 150.0;

/// `names` side by side on the row at height `y`.
fn row(names: impl Iterator<Item = String>, y: f64) -> Vec<(String, (f64, f64))> {
    names
        .enumerate()
        .map(|(i, name)| (name, (SPACING / 2.0 + i as f64 * SPACING, y)))
        .collect()
}

fn layout(lineage: &ModelLineage) -> Layout {
    let rounds = row(
        lineage.rounds.iter().map(|r| r.model_out.clone()),
        ROW_ROUNDS,
    );
    let rounds = rounds.into_iter().map(|(_, at)| at).collect();
    let nodes = row(lineage.nodes.iter().cloned(), ROW_NODES)
        .into_iter()
        .collect();
    let datasets = row(
        lineage.datasets.iter().map(ToString::to_string),
        ROW_DATASETS,
    );
    let datasets = datasets.into_iter().collect();
    let widest = lineage
        .rounds
        .len()
        .max(lineage.nodes.len())
        .max(lineage.datasets.len())
        .max(1);
    Layout {
        rounds,
        nodes,
        datasets,
        width: widest as f64 * SPACING,
    }
}

/// `model`'s lineage as a graph: its rounds (oldest left), the nodes that
/// contributed to them, and the data set versions those nodes trained on;
/// an edge for each contribution.
pub fn lineage_graph(lineage: &ModelLineage) -> Markup {
    let places = layout(lineage);
    let mut edges: Vec<((f64, f64), (f64, f64))> = Vec::new();
    for (step, &round_at) in lineage.rounds.iter().zip(&places.rounds) {
        for contributor in &step.datasets {
            let node_at = places.nodes.get(&contributor.node_id);
            let dataset_at = places.datasets.get(&contributor.dataset.to_string());
            if let (Some(&node_at), Some(&dataset_at)) = (node_at, dataset_at) {
                edges.push((round_at, node_at));
                edges.push((node_at, dataset_at));
            }
        }
        for node in &step.contributors {
            if let Some(&node_at) = places.nodes.get(node) {
                edges.push((round_at, node_at));
            }
        }
    }
    edges.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    edges.dedup();
    let view_box = format!("0 0 {} 300", places.width);
    html! {
        svg id="lineage-graph" role="img" viewBox=(view_box) width=(places.width) height="300" {
            title { "Lineage of model " (lineage.model_version) }
            @for (from, to) in &edges {
                line x1=(from.0) y1=(from.1 + 12.0) x2=(to.0) y2=(to.1 - 12.0) stroke="#999" {}
            }
            @for (step, at) in lineage.rounds.iter().zip(&places.rounds) {
                (vertex("round", at, &format!("round {}", step.round), &step.model_out))
            }
            @for (node, at) in &places.nodes {
                (vertex("node", at, node, node))
            }
            @for (dataset, at) in &places.datasets {
                (vertex("dataset", at, dataset, dataset))
            }
        }
    }
}

/// One labelled box of the lineage graph; `detail` is its tooltip.
fn vertex(class: &str, at: &(f64, f64), label: &str, detail: &str) -> Markup {
    let short: String = label.chars().take(20).collect();
    html! {
        g class=(class) {
            title { (detail) }
            rect x=(at.0 - 68.0) y=(at.1 - 12.0) width="136" height="24" rx="4" fill="#f6f8fa" stroke="#57606a" {}
            text x=(at.0) y=(at.1 + 4.0) font-size="11" text-anchor="middle" { (short) }
        }
    }
}
