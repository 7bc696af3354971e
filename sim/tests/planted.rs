//! The simulator finds every planted bug within a bounded number of seeds, and names the check
//! each one broke. Run with `cargo test -p arakoon-sim --features planted-bugs --test planted`.
#![cfg(feature = "planted-bugs")]

use arakoon_node::planted::{self, Bug};
use arakoon_sim::{run_seed, FaultMix, Outcome, SimConfig};

const SEEDS_MAX: u64 = 400;

/// Even seeds run every fault family at once on 3 nodes, odd seeds draw their mix and their
/// deployment's shape (swarm, `--nodes draw`).
fn config(seed: u64) -> SimConfig {
    let faults = seed.is_multiple_of(2).then(FaultMix::all);
    SimConfig { duration_ms: 20_000, faults, draw_shape: true, ..SimConfig::default() }
}

/// The first seed (and the check) that catches `bug`, if any within the budget.
fn hunt(bug: Bug) -> Option<(u64, &'static str, String)> {
    planted::clear();
    planted::set(bug, true);
    let found = (0..SEEDS_MAX).find_map(|seed| match run_seed(seed, &config(seed)).outcome {
        Outcome::Violation(v) => Some((seed, v.check, v.detail)),
        Outcome::Pass => None,
    });
    planted::clear();
    found
}

#[test]
fn the_simulator_finds_every_planted_bug() {
    let mut missed = Vec::new();
    for bug in Bug::ALL {
        match hunt(bug) {
            Some((seed, check, detail)) => {
                println!("{:<28} found by seed {seed:>3}: {check}: {detail:.100}", bug.name())
            }
            None => missed.push(bug.name()),
        }
    }
    assert!(missed.is_empty(), "not found within {SEEDS_MAX} seeds: {missed:?}");
}

#[test]
fn with_every_bug_off_the_seeds_that_catch_them_pass() {
    planted::clear();
    for seed in 0..300 {
        let r = run_seed(seed, &config(seed));
        assert!(r.passed(), "seed {seed}: {:?}", r.outcome);
    }
}

/// Drills, not only the random nemesis, catch planted bugs: the master cut off in a minority
/// exposes acknowledging before a quorum, and the master paused beyond its lease exposes reads
/// served after the lease; with the bugs off the same seeds pass.
#[test]
fn drills_catch_planted_bugs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    for (file, bug) in [
        ("master-in-minority.yaml", Bug::AckBeforeQuorum),
        ("master-paused-beyond-lease.yaml", Bug::ReadAfterLeaseExpired),
    ] {
        let drill =
            arakoon_chaos::drill::load(&dir.join(file), None).unwrap_or_else(|e| panic!("{e}"));
        planted::clear();
        planted::set(bug, true);
        let caught = drill.seeds.clone().find_map(|seed| {
            let run = arakoon_sim::drill::run_drill(&drill, seed, false);
            (!run.passed).then_some((seed, run.verdict))
        });
        planted::clear();
        let (seed, verdict) =
            caught.unwrap_or_else(|| panic!("{} slips through the drill {file}", bug.name()));
        println!("drill {file} caught {} at seed {seed}: {verdict:.100}", bug.name());
        let run = arakoon_sim::drill::run_drill(&drill, seed, false);
        assert!(run.passed, "{file} with the bug off, seed {seed}: {}", run.verdict);
    }
}
