//! How fast the tier-A world runs: simulated time per wall-clock time and seeds per second, for
//! 60-simulated-second runs of a 3-node cluster with 5 clients under faults (swarm mix), at two
//! client rates: the default, Jepsen-like pace (a pause of 10-100 ms between an answer and the
//! next call: about 90 operations per simulated second) and a heavy load (0-5 ms: about 1,000
//! per second, `arakoon-admin sim --pause 0ms..5ms`).
//!
//! Then tier B: the real server and client over turmoil, 3 nodes and 3 clients under the default
//! faults (partitions, crashes, latency), 35 virtual seconds a seed; it prints the median, the
//! slowest and the fastest seed's virtual time per wall-clock time (issue 4 asks for 50x).
//!
//! Tier A also prints the agenda's events a seed and the wall-clock nanoseconds each costs on
//! average (everything the run does, the end checks included, divided by its events).
//!
//! `cargo bench -p arakoon-sim --bench speed [-- SEEDS] [a|b]` (default 20 seeds per case; `a`
//! or `b` runs one tier only).

use arakoon_sim::tier_b::{run_tier_b, TierBConfig};
use arakoon_sim::{run_seed, SimConfig};
use std::time::Instant;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let seeds: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(20);
    let only = args.iter().find(|a| *a == "a" || *a == "b").map(String::as_str);
    if only != Some("b") {
        tier_a(seeds);
    }
    if only != Some("a") {
        tier_b(seeds);
    }
}

fn tier_b(seeds: u64) {
    let cfg = TierBConfig::new(3);
    let mut speeds = Vec::new();
    let (mut ops, mut failed) = (0, 0);
    for seed in 0..seeds {
        let r = run_tier_b(seed, &cfg);
        speeds.push(r.speed());
        ops += r.ops as u64;
        failed += u64::from(!r.passed());
    }
    speeds.sort_by(f64::total_cmp);
    let median = speeds[speeds.len() / 2];
    println!(
        "{:<34} {:>8} {:>12} {:>10} {:>12}",
        "tier B (3 nodes, 3 clients, faults)", "seeds", "median x", "min..max", "ops/seed"
    );
    println!(
        "{:<34} {seeds:>8} {median:>12.0} {:>10} {:>12}{}",
        "",
        format!("{:.0}..{:.0}", speeds[0], speeds[speeds.len() - 1]),
        ops / seeds.max(1),
        if failed > 0 { format!("  ({failed} seeds FAILED a check)") } else { String::new() }
    );
}

fn tier_a(seeds: u64) {
    println!(
        "{:<34} {:>8} {:>12} {:>10} {:>12} {:>12} {:>10}",
        "case", "seeds", "x real time", "seeds/s", "ops/seed", "events/seed", "ns/event"
    );
    for (name, think_us) in [
        ("default clients (10-100 ms pause)", (10_000, 100_000)),
        ("heavy load (0-5 ms pause)", (0, 5_000)),
    ] {
        let cfg = SimConfig { think_us, ..SimConfig::default() };
        let started = Instant::now();
        let (mut simulated_ms, mut ops, mut failed, mut events) = (0u64, 0u64, 0u64, 0u64);
        for seed in 0..seeds {
            let r = run_seed(seed, &cfg);
            simulated_ms += r.simulated_ms;
            ops += r.ops_ok;
            events += r.agenda_events;
            failed += u64::from(!r.passed());
        }
        let wall = started.elapsed().as_secs_f64();
        println!(
            "{name:<34} {seeds:>8} {:>12.0} {:>10.1} {:>12} {:>12} {:>10.0}{}",
            simulated_ms as f64 / 1000.0 / wall,
            seeds as f64 / wall,
            ops / seeds.max(1),
            events / seeds.max(1),
            wall * 1e9 / events.max(1) as f64,
            if failed > 0 { format!("  ({failed} seeds FAILED a check)") } else { String::new() }
        );
    }
}
