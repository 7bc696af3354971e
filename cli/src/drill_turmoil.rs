//! Drills on the turmoil tier: the real server and client code over turmoil's simulated network
//! (sim/src/tier_b/drill.rs runs them); this turns a run into a drill report.
//!
//! A seed replays a run exactly, as on the simulation tier; the timeline is in virtual ms.

use crate::drill_report::{restarts_from_roles, Report};
use arakoon_chaos::drill::Drill;
use arakoon_chaos::faults::Tier;
use arakoon_sim::tier_b::drill::run_drill;

/// Runs `seed` of `d` on tier B and reports it.
pub fn run(d: &Drill, seed: u64, replay: String) -> Report {
    let run = run_drill(d, seed);
    let mut extra = serde_json::Map::new();
    extra.insert("virtual_ms".into(), run.virtual_ms.into());
    extra.insert("wall_clock_ms".into(), (run.wall.as_millis() as u64).into());
    extra.insert("x_real_time".into(), (run.speed().round() as u64).into());
    Report {
        drill: d.clone(),
        tier: Tier::Turmoil,
        seed,
        passed: run.passed,
        verdict: run.verdict,
        replay,
        ops_ok: run.ops_ok,
        ops_failed: run.ops_failed,
        ops_unknown: run.ops_unknown,
        linearizability: run.linearizability,
        master_after_last_step_ms: run.master_after_ms,
        end_ms: run.virtual_ms,
        histories: Some(run.history),
        restarts: restarts_from_roles(&run.roles),
        roles: run.roles,
        fault_log: run.fault_log,
        ops: run.ops,
        client_lanes: d.workload.clients.max(1),
        extra,
        trace: Vec::new(),
        logs: Vec::new(),
    }
}
