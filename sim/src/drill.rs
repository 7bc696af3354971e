//! Running a drill on the simulation tier: one seed at a time, the drill's steps in place of the
//! random nemesis, and its expectations judged on the run's report; [`DrillRun::outcome`] turns
//! a run into the one outcome type of every tier (`arakoon_chaos::outcome::DrillOutcome`).

use crate::world::{run_seed, Outcome, RunReport, SimConfig};
use arakoon_chaos::director::{judge, Verdict};
use arakoon_chaos::drill::Drill;
use arakoon_chaos::faults::Tier;
use arakoon_chaos::outcome::{restarts_from_roles, DrillOutcome};

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
