//! The console's HTML, rendered on the server with maud, which escapes every
//! value it interpolates (node ids, data set names, failure reasons: all of it
//! may come from a node). Each live part of the operator page is a fragment
//! with an id, served alone under `/fragment/{id}` so the page's script can
//! swap it in place when the federation moves on ([`super::live`]).

use std::time::Duration;

use maud::{DOCTYPE, Markup, html};

use super::charts::{budget_bar, line_chart, lineage_graph};
use super::snapshot::{AuditSnapshot, OperatorSnapshot, Verification};
use crate::audit::erasure::ErasureStatus;
use crate::audit::lineage::ModelLineage;

/// The fragments of the operator page that refresh live.
pub const FRAGMENTS: [&str; 5] = ["rounds", "privacy", "nodes", "stage", "failed"];

/// The console's stylesheet (served as `/console.css`: the pages carry no
/// inline style, so the content security policy can forbid it).
pub const STYLESHEET: &str = "\
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1f2328}\
nav a{margin-right:1rem}\
table{border-collapse:collapse;margin:.5rem 0}\
th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:right}\
th{background:#f6f8fa}td.text{text-align:left;font-family:monospace}\
.charts{display:flex;flex-wrap:wrap;gap:1rem}\
.ok{color:#1a7f37}.bad{color:#cf222e}\
section{margin-bottom:1.5rem}\
";

/// A whole page: `title`, the navigation and `body`.
fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · Cohort console" }
                // First, so that it records errors of everything after it.
                script src="/console.js" {}
                link rel="stylesheet" href="/console.css";
            }
            body {
                nav { a href="/" { "Federation" } a href="/audit" { "Audit" } }
                h1 { (title) }
                (body)
            }
        }
    }
}

/// The operator page: every fragment, the federation's name and state.
pub fn operator_page(snapshot: &OperatorSnapshot) -> Markup {
    let title = format!("Federation {}", snapshot.federation_id);
    page(
        &title,
        html! {
            @for name in FRAGMENTS {
                section id=(name) { (fragment(name, snapshot).unwrap_or_default()) }
            }
        },
    )
}

/// The inside of fragment `name` (one of [`FRAGMENTS`]), or `None` for
/// another name.
pub fn fragment(name: &str, snapshot: &OperatorSnapshot) -> Option<Markup> {
    Some(match name {
        "rounds" => rounds(snapshot),
        "privacy" => privacy(snapshot),
        "nodes" => nodes(snapshot),
        "stage" => stage(snapshot),
        "failed" => failed(snapshot),
        _ => return None,
    })
}

fn optional(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.digits$}"))
}

fn rounds(snapshot: &OperatorSnapshot) -> Markup {
    let accuracy: Vec<(u64, f64)> = snapshot
        .rounds
        .iter()
        .filter_map(|r| Some((r.round, r.accuracy?)))
        .collect();
    let loss: Vec<(u64, f64)> = snapshot
        .rounds
        .iter()
        .filter_map(|r| Some((r.round, r.loss?)))
        .collect();
    let state = if snapshot.finished {
        "finished"
    } else {
        "running"
    };
    html! {
        h2 { "Rounds" }
        p id="summary" {
            (snapshot.rounds.len()) " of " (snapshot.rounds_configured) " rounds committed; " (state)
        }
        div class="charts" {
            (line_chart("accuracy-chart", "Held-out accuracy", &accuracy, true))
            (line_chart("loss-chart", "Held-out loss", &loss, false))
        }
        table id="rounds-table" {
            thead { tr { th { "Round" } th { "Participants" } th { "Dropouts" } th { "Accuracy" } th { "Loss" } th { "ε" } } }
            tbody {
                @for row in snapshot.rounds.iter().rev() {
                    tr class="round" data-round=(row.round) {
                        td { (row.round) } td { (row.participants) } td { (row.dropouts) }
                        td { (optional(row.accuracy, 4)) } td { (optional(row.loss, 4)) }
                        td { (optional(row.epsilon, 3)) }
                    }
                }
            }
        }
    }
}

fn privacy(snapshot: &OperatorSnapshot) -> Markup {
    html! {
        h2 { "Privacy budget" }
        @match &snapshot.privacy {
            Some(budget) => {
                p { "ε spent " strong { (format!("{:.3}", budget.spent)) } " of " (format!("{:.3}", budget.budget))
                    " (δ = " (format!("{:e}", budget.delta)) ")" }
                (budget_bar(budget.spent, budget.budget))
            }
            None => p { "No differential privacy configured." },
        }
    }
}

/// `duration` as people read it: `42 s`, `3 min`, `2 h`.
fn ago(duration: Duration) -> String {
    match duration.as_secs() {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

fn nodes(snapshot: &OperatorSnapshot) -> Markup {
    html! {
        h2 { "Nodes" }
        table id="nodes-table" {
            thead { tr { th { "Node" } th { "Last seen" } th { "Data set version" } th { "Status" } } }
            tbody {
                @for node in &snapshot.nodes {
                    tr {
                        td class="text" { (node.node_id) } td { (ago(node.silent_for)) " ago" }
                        td class="text" { (node.dataset.as_deref().unwrap_or("–")) } td { (node.status) }
                    }
                }
            }
        }
    }
}

fn stage(snapshot: &OperatorSnapshot) -> Markup {
    html! {
        h2 { "Current stage" }
        @match &snapshot.stage {
            Some(stage) => p {
                "Round " (stage.round) ": " strong { (stage.kind) } ", waiting for "
                (stage.waiting_for) " participant(s); closes in "
                span id="countdown" data-remaining-ms=(stage.remaining.as_millis()) {
                    (stage.remaining.as_secs()) " s"
                }
            },
            None => p { "No stage open." },
        }
    }
}

fn failed(snapshot: &OperatorSnapshot) -> Markup {
    html! {
        h2 { "Failed rounds" }
        @if snapshot.failed.is_empty() {
            p { "None." }
        } @else {
            table id="failed-table" {
                thead { tr { th { "Round" } th { "Attempt" } th { "Reason" } } }
                tbody {
                    @for failure in snapshot.failed.iter().rev() {
                        tr { td { (failure.round) } td { (failure.attempt) } td class="text" { (failure.reason) } }
                    }
                }
            }
        }
    }
}

/// The audit page: the server's verification of the log, the erasure
/// requests, and the committed models with links to their lineage.
pub fn audit_page(snapshot: &AuditSnapshot) -> Markup {
    page(
        "Audit log",
        html! {
            section id="verification" { (verification(&snapshot.verification, &snapshot.audit_key)) }
            section id="erasures" { (erasures(&snapshot.erasures, snapshot.now_ms)) }
            section id="models" {
                h2 { "Lineage" }
                p { a href="/audit/export" download="audit-log.json" { "Download the verified log (JSON)" } }
                ul {
                    @for (round, model) in &snapshot.models {
                        li { "Round " (round) ": " a href=(format!("/audit/lineage/{model}")) { code { (model) } } }
                    }
                }
            }
        },
    )
}

fn verification(verification: &Verification, audit_key: &str) -> Markup {
    html! {
        h2 { "Verification" }
        @match verification {
            Verification::Verified { entries, heads_checked, head } => {
                p id="verified" class="ok" { "Verified by the server: " (entries) " entries, " (heads_checked) " signed tree heads checked." }
                @if let Some(head) = head {
                    table { tbody {
                        tr { th { "Tree size" } td { (head.tree_size) } }
                        tr { th { "Root" } td class="text" { (head.root_hash) } }
                        tr { th { "Signed at (Unix ms)" } td { (head.timestamp_ms) } }
                    } }
                }
            }
            Verification::Failed { reason } => p id="verification-failed" class="bad" { "Does not verify: " (reason) },
        }
        p { "Tree heads are signed with Ed25519 key " code { (audit_key) } "." }
    }
}

fn erasures(requests: &[ErasureStatus], now_ms: u64) -> Markup {
    html! {
        h2 { "Erasure requests" }
        @if requests.is_empty() {
            p { "None." }
        } @else {
            table id="erasures-table" {
                thead { tr { th { "Request" } th { "Node" } th { "State" } th { "Deadline" } th { "Awaiting withdrawal" } } }
                tbody {
                    @for request in requests {
                        tr class=(if request.overdue { "bad" } else { "" }) {
                            td class="text" { (request.request_id) } td class="text" { (request.node_id) }
                            td { (erasure_state(request)) }
                            td { (deadline(request, now_ms)) }
                            td class="text" { (request.awaiting_withdrawal.join(", ")) }
                        }
                    }
                }
            }
        }
    }
}

fn erasure_state(request: &ErasureStatus) -> &'static str {
    match (request.closed_ms, request.overdue) {
        (Some(_), true) => "closed late",
        (Some(_), false) => "closed",
        (None, true) => "open, overdue",
        (None, false) => "open",
    }
}

fn deadline(request: &ErasureStatus, now_ms: u64) -> String {
    let left = Duration::from_millis(request.deadline_ms.saturating_sub(now_ms));
    if request.closed_ms.is_some() || request.overdue {
        format!("{} (Unix ms)", request.deadline_ms)
    } else {
        format!("in {}", ago(left))
    }
}

/// The lineage page of one model version: the graph and its rounds.
pub fn lineage_page(lineage: &ModelLineage) -> Markup {
    page(
        "Model lineage",
        html! {
            p { "Model " code { (lineage.model_version) } ", from initial model " code { (lineage.initial_model) } "." }
            (lineage_graph(lineage))
            table id="lineage-table" {
                thead { tr { th { "Round" } th { "Contributors" } th { "Data set versions" } } }
                tbody {
                    @for step in &lineage.rounds {
                        tr {
                            td { (step.round) } td class="text" { (step.contributors.join(", ")) }
                            td class="text" {
                                @for (i, dataset) in step.datasets.iter().enumerate() {
                                    @if i > 0 { ", " }
                                    (dataset.node_id) ": " (dataset.dataset.to_string())
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// A page that says what went wrong.
pub fn error_page(title: &str, detail: &str) -> Markup {
    page(title, html! { p class="bad" { (detail) } })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // A failed expectation is a failed test.

    use std::collections::BTreeSet;

    use super::*;
    use crate::audit::ContributorDataset;
    use crate::audit::lineage::RoundStep;
    use crate::console::snapshot::{FailedRound, NodeRow, RoundRow};
    use crate::store::records::DatasetRef;

    const HOSTILE: &str = "<script>alert(1)</script>\"'&";

    fn hostile_snapshot() -> OperatorSnapshot {
        OperatorSnapshot {
            federation_id: HOSTILE.into(),
            rounds_configured: 2,
            rounds: vec![RoundRow {
                round: 1,
                participants: 3,
                dropouts: 1,
                accuracy: Some(0.9),
                loss: Some(0.3),
                epsilon: None,
                model_out: HOSTILE.into(),
            }],
            failed: vec![FailedRound {
                round: 2,
                attempt: 1,
                failed_ms: 0,
                reason: HOSTILE.into(),
            }],
            nodes: vec![NodeRow {
                node_id: HOSTILE.into(),
                silent_for: Duration::from_secs(3),
                dataset: Some(HOSTILE.into()),
                status: "available",
            }],
            ..OperatorSnapshot::default()
        }
    }

    /// Neither a tag nor an attribute can be opened by `HOSTILE`.
    fn assert_escaped(html: &str) {
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("\"'&<"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;"),
            "{html}"
        );
    }

    #[test]
    fn a_hostile_node_id_data_set_and_reason_are_escaped_on_the_operator_page() {
        let html = operator_page(&hostile_snapshot()).into_string();
        assert_escaped(&html);
        // The page's only script is the coordinator's own file.
        assert_eq!(html.matches("<script").count(), 1, "{html}");
        assert!(html.contains("<script src=\"/console.js\">"));
    }

    #[test]
    fn a_hostile_node_id_is_escaped_in_the_lineage_graph_and_table() {
        let dataset = DatasetRef {
            dataset_id: HOSTILE.into(),
            version: "v1".into(),
        };
        let lineage = ModelLineage {
            model_version: "m1".into(),
            initial_model: "m0".into(),
            scaling: None,
            rounds: vec![RoundStep {
                seq: 3,
                time_ms: 0,
                round: 1,
                attempt: 1,
                model_in: "m0".into(),
                model_out: "m1".into(),
                contributors: vec![HOSTILE.into()],
                datasets: vec![ContributorDataset {
                    node_id: HOSTILE.into(),
                    dataset: dataset.clone(),
                }],
            }],
            nodes: BTreeSet::from([HOSTILE.to_owned()]),
            datasets: BTreeSet::from([dataset]),
        };
        let html = lineage_page(&lineage).into_string();
        assert_escaped(&html);
        assert!(html.contains("id=\"lineage-graph\""));
        // A round, a node and a data set version, two edges between them.
        assert_eq!(html.matches("<g class=").count(), 3, "{html}");
        assert_eq!(html.matches("<line ").count(), 2, "{html}");
    }

    #[test]
    fn every_fragment_renders_alone_and_no_other_name_does() {
        let snapshot = hostile_snapshot();
        for name in FRAGMENTS {
            let html = fragment(name, &snapshot).unwrap().into_string();
            assert!(!html.contains("<html"), "{name}: a fragment, not a page");
        }
        assert!(fragment("../audit", &snapshot).is_none());
    }

    #[test]
    fn the_open_stage_counts_down_from_its_deadline() {
        let mut snapshot = OperatorSnapshot::default();
        let idle = fragment("stage", &snapshot).unwrap().into_string();
        assert!(idle.contains("No stage open."), "{idle}");
        snapshot.stage = Some(crate::console::snapshot::StageRow {
            round: 3,
            kind: "fit",
            waiting_for: 2,
            remaining: Duration::from_millis(12_500),
        });
        let open = fragment("stage", &snapshot).unwrap().into_string();
        assert!(open.contains("Round 3: <strong>fit</strong>"), "{open}");
        // The page's script counts down from this.
        assert!(
            open.contains("id=\"countdown\" data-remaining-ms=\"12500\""),
            "{open}"
        );
    }

    #[test]
    fn the_rounds_fragment_charts_accuracy_and_loss() {
        let html = fragment("rounds", &hostile_snapshot())
            .unwrap()
            .into_string();
        assert!(html.contains("id=\"accuracy-chart\""), "{html}");
        assert!(html.contains("id=\"loss-chart\""), "{html}");
        assert_eq!(html.matches("class=\"point\"").count(), 2, "{html}");
        assert!(html.contains("data-round=\"1\""), "{html}");
    }
}
