//! Bug-finding power per CPU second at two client rates: for every planted bug, the first seed
//! that catches it and the wall time spent until then, with the test default client pause
//! (0-5 ms) and a Jepsen-like one (10-100 ms). Same fault mixes and cluster shapes as
//! `tests/planted.rs` (even seeds every fault family, odd seeds their own mix; the cluster's
//! size and quorum drawn, so that a quorum bug of even sizes can be found). The last lines say
//! how many bugs each pace found within 1,000 seeds (issue 14 asks for all of them).
//!
//! `cargo bench -p arakoon-sim --features planted-bugs --bench hunt`

use arakoon_node::planted::{self, Bug};
use arakoon_sim::{run_seed, FaultMix, Outcome, SimConfig};
use std::time::Instant;

const SEEDS_MAX: u64 = 1_000;

fn main() {
    // A planted bug often trips one of the core's own assertions: the run reports it as a
    // violation; its panic message would only clutter the table.
    std::panic::set_hook(Box::new(|_| {}));
    println!("{:<28} {:>22} {:>22}", "bug", "0-5 ms: seed / secs", "10-100 ms: seed / secs");
    let mut totals = [0.0f64; 2];
    let mut found_n = [0usize; 2];
    for bug in Bug::ALL {
        let mut cells = Vec::new();
        for (n, think_us) in [(0, 5_000), (10_000, 100_000)].into_iter().enumerate() {
            planted::clear();
            planted::set(bug, true);
            let started = Instant::now();
            let found = (0..SEEDS_MAX).find(|&seed| {
                let faults = seed.is_multiple_of(2).then(FaultMix::all);
                let cfg = SimConfig {
                    duration_ms: 20_000,
                    faults,
                    think_us,
                    draw_shape: true,
                    ..SimConfig::default()
                };
                matches!(run_seed(seed, &cfg).outcome, Outcome::Violation(_))
            });
            let secs = started.elapsed().as_secs_f64();
            totals[n] += secs;
            found_n[n] += usize::from(found.is_some());
            cells.push(match found {
                Some(seed) => format!("{seed:>8} / {secs:>8.2}"),
                None => format!("{:>8} / {secs:>8.2}", "missed"),
            });
        }
        println!("{:<28} {:>22} {:>22}", bug.name(), cells[0], cells[1]);
    }
    planted::clear();
    println!("{:<28} {:>22.2} {:>22.2}", "total seconds", totals[0], totals[1]);
    let all = Bug::ALL.len();
    println!(
        "{:<28} {:>22} {:>22}",
        "bugs found",
        format!("{} of {all}", found_n[0]),
        format!("{} of {all}", found_n[1])
    );
}
