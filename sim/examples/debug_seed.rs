fn main() {
    let seed: u64 = std::env::args().nth(1).unwrap().parse().unwrap();
    let all = std::env::args().nth(2).is_some();
    let cfg = arakoon_sim::SimConfig {
        duration_ms: 20_000,
        keep_trace: true,
        faults: if all { Some(arakoon_sim::FaultMix::all()) } else { None },
        ..Default::default()
    };
    let r = arakoon_sim::run_seed(seed, &cfg);
    println!("{:?} {}", r.outcome, r.faults);
    for l in &r.trace {
        println!("{l}");
    }
}
