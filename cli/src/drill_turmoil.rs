//! Drills on the turmoil tier: the real server and client code over turmoil's simulated network
//! (sim/src/tier_b/drill.rs runs them); this turns a run into a drill report.
//!
//! A seed replays a run exactly, as on the simulation tier; the timeline is in virtual ms.

use crate::drill_report::Report;
use arakoon_chaos::drill::Drill;
use arakoon_sim::tier_b::drill::run_drill;

/// Runs `seed` of `d` on tier B and reports it.
pub fn run(d: &Drill, seed: u64, replay: String) -> Report {
    run_drill(d, seed).outcome(d, replay)
}
