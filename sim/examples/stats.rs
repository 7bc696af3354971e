fn main() {
    for seed in 0..10 {
        let cfg = arakoon_sim::SimConfig { duration_ms: 20_000, ..Default::default() };
        let t = std::time::Instant::now();
        let r = arakoon_sim::run_seed(seed, &cfg);
        println!(
            "seed {seed}: {:?} events {} ok {} fail {} unknown {} wall {:?} [{}]",
            r.passed(),
            r.events,
            r.ops_ok,
            r.ops_failed,
            r.ops_unknown,
            t.elapsed(),
            r.faults
        );
    }
}
