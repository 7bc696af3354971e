//! One drill, one seed, the same nodes struck on the three tiers: the simulator, turmoil and
//! real processes run the drill through the one drill engine, and each fault's targets resolve
//! to the same nodes in the same order. The drill's targets depend on the seed and on which
//! nodes run (which the drill itself decides), not on who happens to be master.

use std::process::{Command, Output};

const DRILL: &str = "\
name: same-targets
description: Random nodes killed, cut off, stopped and restarted; every target drawn from the seed.
cluster: { nodes: 3, lease: 1s }
workload: { clients: 2, keys: 4, rate: 50/s }
duration: 12s
steps:
  - at: 3s
    kill: random
  - after: 1s
    restart: down
  - after: 2s
    isolate: random
  - after: 1s
    heal: true
  - after: 1s
    stop: random
  - after: 1s
    restart: down
expect: [linearizable]
";

fn admin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arakoon-admin")).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The faults the drill applied on `tier` with `seed`, from its report's fault log, without
/// their times: "kill random (n1)", ...
fn struck(drill: &std::path::Path, tier: &str, seed: u64) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().to_str().unwrap();
    let seed = seed.to_string();
    let path = drill.to_str().unwrap();
    let out = admin(&["drill", "run", path, "--tier", tier, "--seed", &seed, "--report", report]);
    assert_eq!(out.status.code(), Some(0), "{tier}: {}", text(&out));
    let log =
        std::fs::read_to_string(dir.path().join(format!("same-targets-seed{seed}/faults.log")))
            .unwrap();
    let faults = ["kill ", "restart ", "isolate ", "heal", "stop "];
    log.lines()
        .filter_map(|l| l.split_once("ms ").map(|(_, what)| what.to_string()))
        .filter(|what| faults.iter().any(|f| what.starts_with(f)))
        .collect()
}

fn arakoon_built() -> bool {
    let admin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_arakoon-admin"));
    if admin.with_file_name("arakoon").exists() {
        return true;
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "arakoon-node", "--bin", "arakoon"])
        .status();
    status.is_ok_and(|s| s.success())
}

#[test]
fn a_drill_and_a_seed_strike_the_same_nodes_in_the_same_order_on_every_tier() {
    let dir = tempfile::tempdir().unwrap();
    let drill = dir.path().join("same-targets.yaml");
    std::fs::write(&drill, DRILL).unwrap();
    let seed = 2;
    let sim = struck(&drill, "sim", seed);
    assert_eq!(sim.len(), 6, "every step struck something: {sim:#?}");
    assert_eq!(struck(&drill, "turmoil", seed), sim, "turmoil struck other nodes than sim");
    if !arakoon_built() {
        eprintln!("skipped the sandbox: cannot build the arakoon binary");
        return;
    }
    assert_eq!(struck(&drill, "sandbox", seed), sim, "the sandbox struck other nodes than sim");
}
