//! One line per seed of a default campaign (`arakoon-admin sim --seeds A..B`, or with `draw`
//! as `--nodes draw`): its outcome, operation counts, chosen slots, events and trace hash. Run it
//! before and after a change that must not change what the simulator does (a speed-up, say) and
//! diff the two outputs: any difference is a changed run.
//!
//! `cargo run --release -p arakoon-sim --example seed_outcomes -- 0..300 [draw]`

use arakoon_sim::{run_seed, Outcome, SimConfig};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let range = args.first().map_or("0..20", String::as_str);
    let (a, b) = range.split_once("..").expect("a range A..B");
    let (a, b): (u64, u64) = (a.parse().expect("a seed"), b.parse().expect("a seed"));
    let cfg = SimConfig { draw_shape: args.iter().any(|x| x == "draw"), ..SimConfig::default() };
    for seed in a..b {
        let r = run_seed(seed, &cfg);
        let outcome = match &r.outcome {
            Outcome::Pass => "pass".to_string(),
            Outcome::Violation(v) => format!("FAIL {}: {}", v.check, v.detail),
        };
        let exercised: u64 = r.exercised.values().sum();
        println!(
            "seed {seed} [{}] {outcome}; ok {} failed {} unknown {} slots {} events {} \
             trace {:016x} ms {} history {} exercised {exercised} lin {:?} beyond {:?}",
            r.shape,
            r.ops_ok,
            r.ops_failed,
            r.ops_unknown,
            r.committed_slots,
            r.events,
            r.trace_hash,
            r.simulated_ms,
            r.history_ops,
            r.linearizability,
            r.broke_beyond_bound.map(|v| v.check),
        );
    }
}
