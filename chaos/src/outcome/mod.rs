//! The one outcome type of a drill's seed, whatever the tier ([`DrillOutcome`]), and what is
//! made of it: the summary (JSON), the report folder ([`folder`]) and the HTML timeline
//! ([`timeline`]).
//!
//! Each tier's runner fills the outcome with what it saw (the simulator from its own state,
//! `arakoon_sim::drill::DrillRun::outcome`; turmoil, `arakoon_sim::tier_b::drill`; the sandbox
//! by recording its clients and polling its nodes, [`crate::sandbox_drill::SandboxRun::outcome`]);
//! the folder and the timeline are written from that alone, so they mean the same on every tier.

pub mod folder;
pub mod timeline;

use crate::drill::{Drill, Expectation};
use crate::faults::Tier;
use crate::history::OpSummary;
use std::path::{Path, PathBuf};

pub use folder::{write_folder, FolderError};

/// What one seed of a drill did and how it was judged, whatever the tier.
#[derive(Debug, Clone)]
pub struct DrillOutcome {
    pub drill: Drill,
    pub tier: Tier,
    pub seed: u64,
    pub passed: bool,
    pub verdict: String,
    /// The command that runs this seed again.
    pub replay: String,
    pub ops_ok: u64,
    pub ops_failed: u64,
    pub ops_unknown: u64,
    /// "linearizable", or why there is no verdict, or what broke.
    pub linearizability: String,
    /// How long after the last step a master served (ms), when one did.
    pub master_after_last_step_ms: Option<u64>,
    /// The end of the run on the timeline (simulated or wall-clock ms since the start).
    pub end_ms: u64,
    /// The single-key and the sequence history in the checker's JSON-lines format.
    pub histories: Option<(String, String)>,
    /// What the drill's steps did: time (ms), what.
    pub fault_log: Vec<(u64, String)>,
    /// Role changes: time (ms), node, role ("master", "slave", "candidate", "catching_up",
    /// "down", "paused", "starting").
    pub roles: Vec<(u64, usize, String)>,
    /// Node processes that started again: time (ms), node.
    pub restarts: Vec<(u64, usize)>,
    /// Every client operation, by call time.
    pub ops: Vec<OpSummary>,
    /// Client lanes: an operation's lane is its process modulo this (a client that went on as
    /// a new process after an unknown outcome keeps its lane).
    pub client_lanes: usize,
    /// What the tier adds to the summary (the simulator's committed slots, ...).
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// The simulator's trace, when kept.
    pub trace: Vec<String>,
    /// Processes' logs to keep beside the report (file name, text): the sandbox's nodes.
    pub logs: Vec<(String, String)>,
}

/// Restarts read off role changes: a node that was down and is not any more.
pub fn restarts_from_roles(roles: &[(u64, usize, String)]) -> Vec<(u64, usize)> {
    let mut down: Vec<usize> = Vec::new();
    let mut out = Vec::new();
    for (at, node, role) in roles {
        if role == "down" {
            down.push(*node);
        } else if let Some(k) = down.iter().position(|n| n == node) {
            down.swap_remove(k);
            out.push((*at, *node));
        }
    }
    out
}

/// The node that holds the master role last in `roles`, if any.
pub fn last_master(roles: &[(u64, usize, String)], nodes: usize) -> Option<usize> {
    let mut last: Vec<Option<&str>> = vec![None; nodes];
    for (_, k, role) in roles {
        if let Some(slot) = last.get_mut(*k) {
            *slot = Some(role);
        }
    }
    last.iter().position(|r| *r == Some("master"))
}

fn check_name(e: &Expectation) -> String {
    match e {
        Expectation::Linearizable => "linearizable".into(),
        Expectation::NoLostWrites => "no_lost_writes".into(),
        Expectation::InSync => "in_sync".into(),
        Expectation::MasterWithin(limit) => format!("master_within {limit}"),
        Expectation::Violation => "violation".into(),
    }
}

impl DrillOutcome {
    /// The folder for this seed under `dir`.
    pub fn folder(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}-seed{}", self.drill.name, self.seed))
    }

    pub fn summary(&self) -> serde_json::Value {
        let faults: Vec<serde_json::Value> = self
            .fault_log
            .iter()
            .map(|(t, l)| serde_json::json!({"at_ms": t, "what": l}))
            .collect();
        let mut summary = serde_json::json!({
            "drill": self.drill.name,
            "tier": self.tier.name(),
            "seed": self.seed,
            "passed": self.passed,
            "verdict": self.verdict,
            "checks": self.drill.expect.iter().map(check_name).collect::<Vec<_>>(),
            "replay": self.replay,
            "ops_ok": self.ops_ok,
            "ops_failed": self.ops_failed,
            "ops_unknown": self.ops_unknown,
            "linearizability": self.linearizability,
            "master_after_last_step_ms": self.master_after_last_step_ms,
            "duration_ms": self.end_ms,
            "restarts": self.restarts.iter().map(|(t, k)| serde_json::json!({"at_ms": t, "node": format!("n{k}")})).collect::<Vec<_>>(),
            "faults": faults,
        });
        if let Some(map) = summary.as_object_mut() {
            map.extend(self.extra.clone());
        }
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(list: &[(u64, usize, &str)]) -> Vec<(u64, usize, String)> {
        list.iter().map(|(t, k, r)| (*t, *k, r.to_string())).collect()
    }

    #[test]
    fn a_restart_is_a_node_coming_back_from_down() {
        let r = roles(&[
            (0, 0, "slave"),
            (0, 1, "master"),
            (5, 1, "down"),
            (6, 0, "master"),
            (9, 1, "slave"),
            (12, 1, "down"),
        ]);
        assert_eq!(restarts_from_roles(&r), vec![(9, 1)]);
        assert_eq!(last_master(&r, 2), Some(0));
        assert_eq!(last_master(&r[..3], 2), None);
    }
}
