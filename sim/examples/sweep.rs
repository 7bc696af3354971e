fn main() {
    let from: u64 = std::env::args().nth(1).map_or(0, |s| s.parse().unwrap());
    let to: u64 = std::env::args().nth(2).map_or(300, |s| s.parse().unwrap());
    let all = std::env::args().nth(3).is_some();
    let t = std::time::Instant::now();
    let mut fails = 0;
    for seed in from..to {
        let cfg = arakoon_sim::SimConfig {
            faults: if all { Some(arakoon_sim::FaultMix::all()) } else { None },
            ..Default::default()
        };
        let r = arakoon_sim::run_seed(seed, &cfg);
        if !r.passed() {
            fails += 1;
            println!("seed {seed}: {:?} [{}]", r.outcome, r.faults);
        }
    }
    println!("{} seeds of 60 s in {:?}, {fails} failed", to - from, t.elapsed());
}
