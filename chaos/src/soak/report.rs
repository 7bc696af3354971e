//! What a soak found: per node its memory and descriptors against the bounds its configuration
//! gives, the operations per kind, the faults applied, and the findings that fail the run.
//!
//! How the bounds are judged:
//! - memory: a node's largest resident size must stay under `memory_bound_bytes` of the
//!   cluster's configuration (`node/src/server/limits.rs`, README "Memory"); it is sampled, so
//!   a peak shorter than the interval can pass unseen (`node/tests/memory.rs` samples faster);
//! - descriptors: never more than `max_connections` plus the descriptors the node keeps for
//!   itself (`node/src/server/fdlimit.rs` `reserve`), and after the load stops and the cluster
//!   has settled, back to at most the count before the load plus [`descriptors_slack`]: a node
//!   that holds a descriptor per client it ever served, or per fault it lived through, leaks;
//! - writes: every write acknowledged and not deleted must be read back with its value, and no
//!   deleted or refused key may come back ([`super::workload`]).

use super::sample::Summary;
use super::workload::{OpCount, Violations};
use serde::Serialize;
use std::fmt;

/// What one node's samples say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeReport {
    pub name: String,
    #[serde(flatten)]
    pub summary: Summary,
    /// Samples taken while the node had no process (killed, not restarted yet).
    pub down_samples: u64,
    pub memory_bound_bytes: u64,
    pub descriptors_bound: u64,
    /// Before the load began, and after it stopped and the cluster settled.
    pub descriptors_start: Option<u32>,
    pub descriptors_end: Option<u32>,
}

/// The descriptors a settled node may hold beyond its count before the load: connections a
/// restart or a partition re-made to each peer in both directions and one being closed, the
/// final reader's connection, a TLog file more after a rollover.
pub fn descriptors_slack(nodes: usize) -> u32 {
    16 + 4 * nodes as u32
}

/// Something that fails the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "finding", rename_all = "snake_case")]
pub enum Finding {
    OverMemory {
        node: String,
        rss_max_bytes: u64,
        bound_bytes: u64,
    },
    OverDescriptors {
        node: String,
        descriptors_max: u32,
        bound: u64,
    },
    DescriptorsKept {
        node: String,
        start: u32,
        end: u32,
        slack: u32,
    },
    /// A node was never sampled (its process never seen).
    NoSamples {
        node: String,
    },
    /// Acknowledged writes lost, deleted or refused keys back, or wrong values.
    LostWrites {
        count: u64,
        first: Vec<String>,
    },
    /// A fault of the schedule could not be applied (a node that would not restart).
    ScheduleBroke {
        detail: String,
    },
    /// After the run, the nodes did not all come back and catch up.
    NotSettled {
        detail: String,
    },
    /// The final read-back could not be done.
    Unverified {
        detail: String,
    },
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::OverMemory { node, rss_max_bytes, bound_bytes } => write!(
                f,
                "{node}: resident memory reached {}, over its bound of {} (memory_bound_bytes)",
                mib(*rss_max_bytes),
                mib(*bound_bytes)
            ),
            Finding::OverDescriptors { node, descriptors_max, bound } => write!(
                f,
                "{node}: {descriptors_max} open descriptors, over max_connections + the node's \
                 reserve ({bound})"
            ),
            Finding::DescriptorsKept { node, start, end, slack } => write!(
                f,
                "{node}: {end} open descriptors after the load stopped and the cluster settled, \
                 against {start} before it (at most {slack} more allowed): descriptors leak"
            ),
            Finding::NoSamples { node } => write!(f, "{node}: never sampled (no process seen)"),
            Finding::LostWrites { count, first } => {
                write!(f, "{count} acknowledged write(s) contradicted:")?;
                for w in first {
                    write!(f, "\n    {w}")?;
                }
                Ok(())
            }
            Finding::ScheduleBroke { detail } => {
                write!(f, "a fault of the schedule could not be applied: {detail}")
            }
            Finding::NotSettled { detail } => write!(f, "the cluster did not settle: {detail}"),
            Finding::Unverified { detail } => {
                write!(f, "the final read-back of the written keys failed: {detail}")
            }
        }
    }
}

/// A soak run, as printed and as `--json` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SoakReport {
    pub seed: u64,
    pub duration_ms: u64,
    pub clients: usize,
    pub value_bytes_max: usize,
    /// The schedule the seed drew, a line a step.
    pub schedule: Vec<String>,
    /// What the steps did: ms since the start, what.
    pub faults: Vec<(u64, String)>,
    pub nodes: Vec<NodeReport>,
    pub ops: Vec<OpCount>,
    /// Keys the clients' ledgers tracked, and those read back at the end.
    pub keys_tracked: u64,
    pub keys_read_back: u64,
    /// Keys written beyond the ledgers' bound (not checked).
    pub keys_untracked: u64,
    pub findings: Vec<Finding>,
    pub passed: bool,
}

/// What the run observed, before it is judged.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub violations: Violations,
    pub broke: Option<String>,
    pub not_settled: Option<String>,
    pub unverified: Option<String>,
}

/// The findings of a run, worst first: lost writes, then the bounds, then what kept it from
/// being judged.
pub fn judge(nodes: &[NodeReport], observed: &Observed) -> Vec<Finding> {
    let mut findings = Vec::new();
    if observed.violations.count > 0 {
        findings.push(Finding::LostWrites {
            count: observed.violations.count,
            first: observed.violations.first.clone(),
        });
    }
    let slack = descriptors_slack(nodes.len());
    for n in nodes {
        let node = n.name.clone();
        if n.summary.samples == 0 {
            findings.push(Finding::NoSamples { node });
            continue;
        }
        if n.summary.rss_max_bytes > n.memory_bound_bytes {
            findings.push(Finding::OverMemory {
                node: node.clone(),
                rss_max_bytes: n.summary.rss_max_bytes,
                bound_bytes: n.memory_bound_bytes,
            });
        }
        if u64::from(n.summary.descriptors_max) > n.descriptors_bound {
            findings.push(Finding::OverDescriptors {
                node: node.clone(),
                descriptors_max: n.summary.descriptors_max,
                bound: n.descriptors_bound,
            });
        }
        if let (Some(start), Some(end)) = (n.descriptors_start, n.descriptors_end) {
            if end > start.saturating_add(slack) {
                findings.push(Finding::DescriptorsKept { node, start, end, slack });
            }
        }
    }
    for (text, make) in [
        (&observed.broke, (|d| Finding::ScheduleBroke { detail: d }) as fn(String) -> Finding),
        (&observed.not_settled, |d| Finding::NotSettled { detail: d }),
        (&observed.unverified, |d| Finding::Unverified { detail: d }),
    ] {
        if let Some(d) = text {
            findings.push(make(d.clone()));
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, rss_max: u64, fds_max: u32, start: u32, end: u32) -> NodeReport {
        NodeReport {
            name: name.into(),
            summary: Summary {
                samples: 10,
                processes: 1,
                rss_min_bytes: 1,
                rss_median_bytes: 2,
                rss_max_bytes: rss_max,
                descriptors_max: fds_max,
            },
            down_samples: 0,
            memory_bound_bytes: 100,
            descriptors_bound: 50,
            descriptors_start: Some(start),
            descriptors_end: Some(end),
        }
    }

    #[test]
    fn a_run_within_its_bounds_and_without_loss_passes() {
        let nodes = [node("n0", 100, 50, 20, 20 + descriptors_slack(2)), node("n1", 5, 5, 5, 1)];
        assert_eq!(judge(&nodes, &Observed::default()), vec![]);
    }

    #[test]
    fn each_bound_and_each_loss_is_a_finding_of_its_own() {
        let nodes = [
            node("n0", 101, 10, 10, 10),
            node("n1", 10, 51, 10, 10),
            node("n2", 10, 10, 10, 11 + descriptors_slack(3)),
        ];
        let mut observed =
            Observed { broke: Some("restart n1: refused".into()), ..Default::default() };
        observed.violations.add("soak/000/000000000001: acknowledged, and gone".into());
        let found = judge(&nodes, &observed);
        let names: Vec<&str> = found
            .iter()
            .map(|f| match f {
                Finding::LostWrites { .. } => "lost",
                Finding::OverMemory { .. } => "memory",
                Finding::OverDescriptors { .. } => "descriptors",
                Finding::DescriptorsKept { .. } => "kept",
                Finding::ScheduleBroke { .. } => "broke",
                _ => "other",
            })
            .collect();
        assert_eq!(names, ["lost", "memory", "descriptors", "kept", "broke"]);
        assert!(found[1].to_string().starts_with("n0: resident memory reached 0.0 MiB"));
        assert!(found[0].to_string().contains("\n    soak/000/000000000001"), "{}", found[0]);
    }

    #[test]
    fn a_node_never_sampled_fails_the_run() {
        let mut n = node("n0", 0, 0, 0, 0);
        n.summary.samples = 0;
        assert_eq!(
            judge(&[n], &Observed::default()),
            vec![Finding::NoSamples { node: "n0".into() }]
        );
    }
}
