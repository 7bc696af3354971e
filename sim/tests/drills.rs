//! Every drill in scenarios/ parses, and runs on the simulation tier with its expectation met.

use arakoon_chaos::drill::{load, Drill};
use arakoon_chaos::faults::Tier;
use arakoon_sim::drill::run_drill;
use std::path::PathBuf;

fn scenarios() -> Vec<(PathBuf, Drill)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let d = load(&p, None).unwrap_or_else(|e| panic!("{e}"));
            (p, d)
        })
        .collect()
}

#[test]
fn there_are_at_least_fifteen_drills_and_they_all_parse() {
    let all = scenarios();
    assert!(all.len() >= 15, "only {} drills", all.len());
    for (path, d) in &all {
        assert!(!d.description.is_empty(), "{}: no description", path.display());
        assert!(!d.steps.is_empty(), "{}: no steps", path.display());
    }
}

#[test]
fn every_drill_meets_its_expectation_on_the_simulation_tier() {
    // Two seeds each here (the CI's drill job runs more through arakoon-admin drill run).
    let mut failures = Vec::new();
    for (path, drill) in scenarios() {
        if !drill.runs_on(Tier::Sim) {
            continue;
        }
        for seed in drill.seeds.clone().take(2) {
            let run = run_drill(&drill, seed, false);
            println!(
                "{:<32} seed {seed}: {}",
                drill.name,
                run.verdict.lines().next().unwrap_or("")
            );
            // A disk fault that found nothing to strike would make the drill prove nothing.
            for (at, line) in &run.report.fault_log {
                if line.contains("is running") || line.contains("no sealed") {
                    failures.push(format!(
                        "{} seed {seed}: at {at}ms a fault struck nothing: {line}",
                        drill.name
                    ));
                }
            }
            if !run.passed {
                failures.push(format!(
                    "{} seed {seed}: {}\n  replay: arakoon-admin drill run {} --seed {seed}",
                    drill.name,
                    run.verdict,
                    path.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The full disk strikes: the node whose write fails stops (it is not a violation), stays down
/// while the disk is full, and is started again once space is freed; the drill's checks hold.
#[test]
fn a_full_disk_stops_the_node_until_space_is_freed() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/disk-full.yaml");
    let drill = load(&path, Some(Tier::Sim)).unwrap_or_else(|e| panic!("{e}"));
    let run = run_drill(&drill, 0, true);
    assert!(run.passed, "{}", run.verdict);
    let trace = &run.report.trace;
    let stops: Vec<&String> =
        trace.iter().filter(|l| l.contains("stopped: a write failed")).collect();
    let freed = trace.iter().filter(|l| l.contains("space freed")).count();
    assert_eq!((stops.len(), freed), (2, 2), "{stops:?}");
    let downs = run.report.roles.iter().filter(|(_, _, role)| role == "down").count();
    assert!(downs >= 2, "the struck nodes went down: {:?}", run.report.roles);
    let refused = load(&path, Some(Tier::Sandbox)).unwrap_err();
    assert!(refused.message.contains("cannot apply disk_full"), "{refused}");
}

/// collapse-during-catch-up on the simulation tier: a slave misses seconds of writes, every node
/// collapses keeping one sealed file, so the slots it needs are folded into its peers' heads; it
/// adopts a peer's head (the server's own adoption over its simulated disk,
/// sim/src/world/adopt.rs) and ends level with the others, nothing acknowledged lost.
#[test]
fn a_slave_behind_collapsed_peers_takes_a_head_and_ends_in_sync() {
    use arakoon_sim::world::collapse::{COLLAPSED, HEAD_ADOPTED};
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/collapse-during-catch-up.yaml");
    let drill = load(&path, Some(Tier::Sim)).unwrap_or_else(|e| panic!("{e}"));
    for seed in drill.seeds.clone().take(2) {
        let run = run_drill(&drill, seed, false);
        assert!(run.passed, "seed {seed}: {}", run.verdict);
        let count = |name: &str| run.report.exercised.get(name).copied().unwrap_or(0);
        assert!(count(COLLAPSED) > 0, "seed {seed}: {:?}", run.report.exercised);
        assert!(count(HEAD_ADOPTED) > 0, "seed {seed}: {:?}", run.report.exercised);
    }
}
