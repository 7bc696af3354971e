//! Running a drill on the simulation tier: one seed at a time, the drill's steps in place of the
//! random nemesis, and its expectations judged on the run's report. And the one outcome type of
//! a drill's seed on any tier ([`DrillOutcome`]), which the reports and timelines render.

use crate::world::{run_seed, Outcome, RunReport, SimConfig};
use arakoon_chaos::director::{judge, Verdict};
use arakoon_chaos::drill::{Drill, Expectation};
use arakoon_chaos::faults::Tier;
use arakoon_chaos::history::OpSummary;
use std::path::{Path, PathBuf};

/// One seed of a drill, judged.
#[derive(Debug, Clone)]
pub struct DrillRun {
    pub seed: u64,
    pub report: RunReport,
    /// Whether the drill's expectation was met (for `expect: violation`, that a check broke).
    pub passed: bool,
    /// What broke, or what was expected to break and did not.
    pub verdict: String,
}

/// The simulator's configuration for a drill.
pub fn sim_config(drill: &Drill) -> SimConfig {
    let m = &drill.workload.mix;
    SimConfig {
        nodes: drill.cluster.nodes,
        clients: drill.workload.clients,
        duration_ms: drill.duration.0,
        lease_ms: drill.cluster.lease.0,
        keys: drill.workload.keys.max(1),
        op_timeout_ms: drill.workload.op_timeout.0,
        op_weights: [m.get, m.set, m.delete, m.test_and_set, m.sequence, m.range],
        think_us: drill.workload.pause_us(),
        key_distribution: drill.workload.key_distribution,
        overrides: drill.cluster.config.clone(),
        script: drill.steps.clone(),
        keep_history: true,
        ..SimConfig::default()
    }
}

/// Runs `seed` of `drill` in the simulator and judges it.
pub fn run_drill(drill: &Drill, seed: u64, keep_trace: bool) -> DrillRun {
    let cfg = SimConfig { keep_trace, ..sim_config(drill) };
    let report = run_seed(seed, &cfg);
    let broke: Option<String> = match &report.outcome {
        Outcome::Violation(v) => Some(format!("{}: {}", v.check, v.detail)),
        Outcome::Pass => None,
    };
    let Verdict { passed, verdict } = judge(drill, broke, report.master_after_script_ms);
    DrillRun { seed, report, passed, verdict }
}

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

impl DrillRun {
    /// The run as the one outcome type; `replay` is the command that runs it again.
    pub fn outcome(self, d: &Drill, replay: String) -> DrillOutcome {
        let r = self.report;
        let mut extra = serde_json::Map::new();
        extra.insert("committed_slots".into(), r.committed_slots.into());
        extra.insert("simulated_ms".into(), r.simulated_ms.into());
        DrillOutcome {
            drill: d.clone(),
            tier: Tier::Sim,
            seed: self.seed,
            passed: self.passed,
            verdict: self.verdict,
            replay,
            ops_ok: r.ops_ok,
            ops_failed: r.ops_failed,
            ops_unknown: r.ops_unknown,
            linearizability: r.linearizability,
            master_after_last_step_ms: r.master_after_script_ms,
            end_ms: r.simulated_ms,
            histories: r.histories,
            restarts: restarts_from_roles(&r.roles),
            roles: r.roles,
            fault_log: r.fault_log,
            ops: r.ops,
            client_lanes: d.workload.clients.max(1),
            extra,
            trace: r.trace,
            logs: Vec::new(),
        }
    }
}
