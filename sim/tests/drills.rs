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
