//! The nodes registered with this process and when each was last heard from:
//! who can be sampled now. (The durable registry is the store's `nodes` tree;
//! this is the live view, rebuilt as nodes register after a restart.)

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// A node registered with this process.
#[derive(Debug, Clone, Copy)]
struct LiveNode {
    last_seen: Instant,
    /// It has a held-out split to evaluate on.
    evaluates: bool,
    /// Its last poll told it the federation finished, so it has stopped
    /// (`cohort-node run` does): not sampled for a retrain until it polls or
    /// registers again.
    heard_finished: bool,
    /// The round in which it advertised secure-aggregation keys and then
    /// withheld its graph nonce, aborting the attempt: it is left out of that
    /// round's later attempts, so one member cannot fail every retry.
    withheld_nonce_in: Option<u64>,
}

/// A registered node as observers see it ([`LiveNodes::sightings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSighting {
    /// The node's identity.
    pub node_id: String,
    /// How long since its last registration or poll.
    pub silent_for: Duration,
    /// Whether it may be sampled now.
    pub status: NodeStatus,
}

/// Whether a registered node may be sampled now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeStatus {
    /// Heard from within the liveness window.
    Available,
    /// Not heard from within the liveness window.
    Silent,
    /// Told at its last poll that the federation finished (it stopped).
    Finished,
}

impl NodeStatus {
    /// Its name in lower case.
    pub fn name(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Silent => "silent",
            Self::Finished => "finished",
        }
    }
}

/// The live node registry (see the module docs).
#[derive(Debug)]
pub struct LiveNodes {
    nodes: Mutex<BTreeMap<String, LiveNode>>,
    /// Bumped when a node registers or leaves.
    changed: watch::Sender<u64>,
    /// A node not heard from for this long is not available.
    liveness: Duration,
}

impl LiveNodes {
    /// No nodes yet; a node is available while heard from within `liveness`.
    pub fn new(liveness: Duration) -> Self {
        Self {
            nodes: Mutex::default(),
            changed: watch::channel(0).0,
            liveness,
        }
    }

    fn nodes(&self) -> MutexGuard<'_, BTreeMap<String, LiveNode>> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Marks a node as connected to this process, heard from now.
    pub fn registered(&self, node_id: &str, evaluates: bool) {
        self.nodes().insert(
            node_id.to_owned(),
            LiveNode {
                last_seen: Instant::now(),
                evaluates,
                heard_finished: false,
                withheld_nonce_in: None,
            },
        );
        self.bump();
    }

    /// A node left the federation: it is no longer sampled.
    pub fn left(&self, node_id: &str) {
        self.nodes().remove(node_id);
        self.bump();
    }

    /// Whether `node_id` registered with this process (and has not left).
    pub fn is_registered(&self, node_id: &str) -> bool {
        self.nodes().contains_key(node_id)
    }

    /// A poll from `node_id`: heard from now, and told the federation
    /// `finished` (or not).
    pub fn polled(&self, node_id: &str, finished: bool) {
        if let Some(node) = self.nodes().get_mut(node_id) {
            node.last_seen = Instant::now();
            node.heard_finished = finished;
        }
    }

    /// Registered nodes heard from within the liveness window (and not told
    /// since that the federation finished), sorted.
    pub fn available(&self) -> Vec<String> {
        self.live(|_| true)
    }

    /// Available nodes that may be sampled for `round`: all but those that
    /// withheld their graph nonce in an earlier attempt at it, sorted.
    pub fn available_for_round(&self, round: u64) -> Vec<String> {
        self.live(|node| node.withheld_nonce_in != Some(round))
    }

    /// `node_id` advertised keys in an attempt at `round` and then withheld
    /// its graph nonce: later attempts at `round` leave it out.
    pub fn withheld_graph_nonce(&self, node_id: &str, round: u64) {
        if let Some(node) = self.nodes().get_mut(node_id) {
            node.withheld_nonce_in = Some(round);
        }
    }

    /// Available nodes that have a held-out split, sorted.
    pub fn evaluating(&self) -> Vec<String> {
        self.live(|node| node.evaluates)
    }

    fn live(&self, keep: impl Fn(&LiveNode) -> bool) -> Vec<String> {
        self.nodes()
            .iter()
            .filter(|(_, node)| {
                node.last_seen.elapsed() <= self.liveness && !node.heard_finished && keep(node)
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Every node registered with this process, as the console shows it:
    /// how long ago it was last heard from, and whether it may be sampled.
    pub fn sightings(&self) -> Vec<NodeSighting> {
        self.nodes()
            .iter()
            .map(|(id, node)| {
                let silent_for = node.last_seen.elapsed();
                let status = if node.heard_finished {
                    NodeStatus::Finished
                } else if silent_for <= self.liveness {
                    NodeStatus::Available
                } else {
                    NodeStatus::Silent
                };
                NodeSighting {
                    node_id: id.clone(),
                    silent_for,
                    status,
                }
            })
            .collect()
    }

    /// Waits until at least `count` nodes are available.
    pub async fn wait_for(&self, count: usize) {
        let mut changed = self.changed.subscribe();
        loop {
            changed.borrow_and_update();
            if self.available().len() >= count {
                return;
            }
            if changed.changed().await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_that_withheld_its_graph_nonce_sits_out_that_rounds_retries_only() {
        let nodes = LiveNodes::new(Duration::from_secs(3600));
        for name in ["a", "b", "c"] {
            nodes.registered(name, true);
        }
        nodes.withheld_graph_nonce("b", 7);
        assert_eq!(nodes.available_for_round(7), vec!["a", "c"]);
        assert_eq!(nodes.available_for_round(8), vec!["a", "b", "c"]);
        assert_eq!(nodes.available(), vec!["a", "b", "c"]);
    }

    #[test]
    fn sightings_tell_available_from_finished_nodes() {
        let nodes = LiveNodes::new(Duration::from_secs(3600));
        nodes.registered("a", true);
        nodes.registered("b", true);
        nodes.polled("b", true);
        let statuses: Vec<_> = nodes
            .sightings()
            .into_iter()
            .map(|s| (s.node_id, s.status))
            .collect();
        assert_eq!(
            statuses,
            [
                ("a".to_owned(), NodeStatus::Available),
                ("b".to_owned(), NodeStatus::Finished)
            ]
        );
    }
}
