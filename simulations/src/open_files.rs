//! Whether this process may open enough files for a run: every node in a run
//! holds a TLS connection to the coordinator, which costs a socket on each side
//! when the node is a task of this process (one, the coordinator's, when it is a
//! separate process). A thousand task nodes need about 2000 descriptors, more
//! than the common default soft limit of 1024; past the limit the run would fail
//! midway with "Too many open files", so it is refused up front instead.

/// Descriptors beyond the nodes' sockets: the runtime, listeners, state, reports.
const HEADROOM: u64 = 64;

/// The run needs more open files than this process may open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{nodes} nodes as {kind} need about {needed} open files (sockets), but this process may \
     open only {limit}: raise the limit first, e.g. `ulimit -n {suggested}`"
)]
pub struct TooFewFiles {
    /// Nodes in the run.
    pub nodes: usize,
    /// How they run, for the message (`tasks`, `processes`).
    pub kind: &'static str,
    /// Descriptors the run needs: the nodes' sockets plus headroom.
    pub needed: u64,
    /// This process's soft limit on open files.
    pub limit: u64,
    /// A limit to raise it to: `needed` rounded up to a power of two.
    pub suggested: u64,
}

/// Refuses a run of `nodes` nodes (`sockets_per_node` descriptors each, in this
/// process) when the soft limit on open files is known and too low.
pub fn check(nodes: usize, sockets_per_node: u64, kind: &'static str) -> Result<(), TooFewFiles> {
    match soft_limit() {
        Some(limit) => check_against(nodes, sockets_per_node, kind, limit),
        None => Ok(()),
    }
}

fn check_against(
    nodes: usize,
    sockets_per_node: u64,
    kind: &'static str,
    limit: u64,
) -> Result<(), TooFewFiles> {
    let needed = (nodes as u64)
        .saturating_mul(sockets_per_node)
        .saturating_add(HEADROOM);
    if needed <= limit {
        Ok(())
    } else {
        Err(TooFewFiles {
            nodes,
            kind,
            needed,
            limit,
            suggested: needed.next_power_of_two(),
        })
    }
}

/// The soft `Max open files` of this process (Linux: `/proc/self/limits`).
fn soft_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_soft_limit(&limits)
}

fn parse_soft_limit(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?;
    // "unlimited" does not parse: no limit to check.
    line.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_soft_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max cpu time              unlimited            unlimited            seconds\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_soft_limit(limits), Some(1024));
        assert_eq!(
            parse_soft_limit("Max open files            unlimited  unlimited  files\n"),
            None
        );
        assert_eq!(parse_soft_limit("Max processes 10 10\n"), None);
    }

    #[test]
    fn a_thousand_task_nodes_do_not_fit_in_1024_files() {
        let err = check_against(1000, 2, "tasks", 1024).unwrap_err();
        assert_eq!(err.needed, 2064);
        let message = err.to_string();
        assert!(
            message.contains("1000 nodes as tasks need about 2064 open files"),
            "{message}"
        );
        assert!(message.contains("ulimit -n 4096"), "{message}");
        assert_eq!(check_against(1000, 2, "tasks", 20_000), Ok(()));
        assert_eq!(check_against(900, 1, "processes", 1024), Ok(()));
    }
}
