//! How fast the tier-A world runs: simulated time per wall-clock time and seeds per second, for
//! 60-simulated-second runs of a 3-node cluster with 5 clients under faults (swarm mix), at two
//! client rates: the default, Jepsen-like pace (a pause of 10-100 ms between an answer and the
//! next call: about 90 operations per simulated second) and a heavy load (0-5 ms: about 1,000
//! per second, `arakoon-admin sim --pause 0ms..5ms`).
//!
//! `cargo bench -p arakoon-sim --bench speed [-- SEEDS]` (default 20 seeds per case).

use arakoon_sim::{run_seed, SimConfig};
use std::time::Instant;

fn main() {
    let seeds: u64 = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    println!(
        "{:<34} {:>8} {:>12} {:>10} {:>12}",
        "case", "seeds", "x real time", "seeds/s", "ops/seed"
    );
    for (name, think_us) in [
        ("default clients (10-100 ms pause)", (10_000, 100_000)),
        ("heavy load (0-5 ms pause)", (0, 5_000)),
    ] {
        let cfg = SimConfig { think_us, ..SimConfig::default() };
        let started = Instant::now();
        let (mut simulated_ms, mut ops, mut failed) = (0u64, 0u64, 0u64);
        for seed in 0..seeds {
            let r = run_seed(seed, &cfg);
            simulated_ms += r.simulated_ms;
            ops += r.ops_ok;
            failed += u64::from(!r.passed());
        }
        let wall = started.elapsed().as_secs_f64();
        println!(
            "{name:<34} {seeds:>8} {:>12.0} {:>10.1} {:>12}{}",
            simulated_ms as f64 / 1000.0 / wall,
            seeds as f64 / wall,
            ops / seeds.max(1),
            if failed > 0 { format!("  ({failed} seeds FAILED a check)") } else { String::new() }
        );
    }
}
