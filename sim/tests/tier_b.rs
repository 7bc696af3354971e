//! Tier B: the real server and client over turmoil's network, with faults, histories checked.

use arakoon_sim::tier_b::{run_tier_b, FaultSet, TierBConfig, TierBReport};

fn run(seed: u64, cfg: &TierBConfig) -> TierBReport {
    println!("tier B seed {seed}, {} nodes", cfg.nodes);
    let report = run_tier_b(seed, cfg);
    println!("{}", report.summary());
    for f in &report.faults {
        println!("  {f}");
    }
    if !report.passed() {
        println!("replay: {}", report.replay_command());
    }
    report
}

#[test]
fn smoke_three_nodes_without_faults() {
    let mut cfg = TierBConfig::new(3);
    cfg.faults = FaultSet::NONE;
    cfg.workload_ms = 5_000;
    let r = run(1, &cfg);
    assert!(r.passed(), "{}", r.summary());
}

/// Runs the seed in TIER_B_SEED (TIER_B_NODES nodes, 3 by default).
#[test]
#[ignore]
fn replay() {
    let seed = std::env::var("TIER_B_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let nodes = std::env::var("TIER_B_NODES").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let r = run(seed, &TierBConfig::new(nodes));
    assert!(r.passed(), "{}", r.summary());
}
