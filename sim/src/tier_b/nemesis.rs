//! The fault schedule of a tier-B run, drawn from the seed before the run starts. Its families
//! are faults of the catalogue (`arakoon_chaos::faults::Fault`: partition, kill, delay, loss);
//! each window adds what the catalogue leaves to the run (which nodes, how long, how much).
//!
//! Faults come one at a time, each a window `[start_ms, end_ms)` of virtual time, with quiet gaps
//! between them, so every fault strikes a cluster that had a chance to recover from the last:
//!
//! - partition: a minority of nodes is cut off from the rest. Turmoil *holds* the segments of the
//!   cut links and delivers them when the partition heals: that is what TCP does through a
//!   partition shorter than its retransmission timeout, so connections survive it, late. Clients
//!   still reach every node, so a cut-off master is asked for reads and writes.
//! - crash: a node's runtime is dropped (tasks, sockets, store handle; peers see its connections
//!   close) and its software is started again at the window's end: the real start-up validates
//!   its TLog, opens the store and replays.
//! - latency: every link's largest delay rises (up to hundreds of ms) for the window.
//! - loss (opt-in): one node pair's link fails at random. Turmoil drops TCP segments for good
//!   (it does not retransmit), so a connection that lost one stalls for ever without an error:
//!   this models a half-open connection that only a timeout can detect.

use arakoon_chaos::drill::Millis;
use arakoon_chaos::faults::{Fault as CatalogueFault, Target};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Which fault families a run may draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultSet {
    pub partitions: bool,
    pub crashes: bool,
    pub latency: bool,
    pub loss: bool,
}

impl FaultSet {
    pub const NONE: FaultSet =
        FaultSet { partitions: false, crashes: false, latency: false, loss: false };
    /// Everything that a healthy cluster must ride out.
    pub const DEFAULT: FaultSet =
        FaultSet { partitions: true, crashes: true, latency: true, loss: false };
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// These nodes are cut off from the others.
    Partition {
        minority: Vec<usize>,
    },
    Crash {
        node: usize,
    },
    /// The largest delay of every link, in ms.
    Latency {
        max_ms: u64,
    },
    /// The link between two nodes fails with this probability per message (in percent).
    Loss {
        a: usize,
        b: usize,
        percent: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub start_ms: u64,
    pub end_ms: u64,
    pub kind: FaultKind,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{} ms: ", self.start_ms, self.end_ms)?;
        match &self.kind {
            FaultKind::Partition { minority } => {
                let names: Vec<String> = minority.iter().map(|k| format!("n{k}")).collect();
                write!(f, "partition {{{}}} from the rest", names.join(", "))
            }
            FaultKind::Crash { node } => write!(f, "crash n{node}, restart at the end"),
            FaultKind::Latency { max_ms } => write!(f, "latency up to {max_ms} ms"),
            FaultKind::Loss { a, b, percent } => write!(f, "loss {percent}% on n{a}-n{b}"),
        }
    }
}

/// Draws the schedule: faults between `from_ms` and `until_ms`, one at a time.
pub fn schedule(seed: u64, nodes: usize, set: FaultSet, from_ms: u64, until_ms: u64) -> Vec<Fault> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6E65_6D65_7369_7321);
    // The families are faults of the catalogue; what a window adds (its nodes, its length) is
    // drawn below.
    let mut kinds: Vec<CatalogueFault> = Vec::new();
    if set.partitions && nodes > 1 {
        kinds.push(CatalogueFault::Partition(Vec::new()));
    }
    if set.crashes {
        kinds.push(CatalogueFault::Kill(Target::Random));
    }
    if set.latency {
        kinds.push(CatalogueFault::Delay(Millis(0)));
    }
    if set.loss && nodes > 1 {
        kinds.push(CatalogueFault::Loss(0.0));
    }
    let mut faults = Vec::new();
    if kinds.is_empty() {
        return faults;
    }
    let mut t = from_ms;
    loop {
        let length_ms = rng.gen_range(500..4_000);
        if t + length_ms > until_ms {
            break;
        }
        let kind = match kinds[rng.gen_range(0..kinds.len())] {
            CatalogueFault::Partition(_) => {
                let size = rng.gen_range(1..=(nodes - 1) / 2).max(1);
                let mut all: Vec<usize> = (0..nodes).collect();
                let mut minority = Vec::new();
                for _ in 0..size {
                    minority.push(all.remove(rng.gen_range(0..all.len())));
                }
                minority.sort_unstable();
                FaultKind::Partition { minority }
            }
            CatalogueFault::Kill(_) => FaultKind::Crash { node: rng.gen_range(0..nodes) },
            CatalogueFault::Delay(_) => FaultKind::Latency { max_ms: rng.gen_range(50..500) },
            _ => {
                let a = rng.gen_range(0..nodes);
                let b = (a + rng.gen_range(1..nodes)) % nodes;
                FaultKind::Loss { a: a.min(b), b: a.max(b), percent: rng.gen_range(1..20) }
            }
        };
        faults.push(Fault { start_ms: t, end_ms: t + length_ms, kind });
        t += length_ms + rng.gen_range(500..3_000);
    }
    faults
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_is_a_function_of_its_seed_and_faults_do_not_overlap() {
        let a = schedule(7, 5, FaultSet::DEFAULT, 3_000, 60_000);
        assert_eq!(a, schedule(7, 5, FaultSet::DEFAULT, 3_000, 60_000));
        assert!(!a.is_empty());
        for w in a.windows(2) {
            assert!(w[0].end_ms < w[1].start_ms);
        }
        for f in &a {
            if let FaultKind::Partition { minority } = &f.kind {
                assert!(!minority.is_empty() && minority.len() <= 2, "{f}");
            }
        }
        assert!(schedule(7, 3, FaultSet::NONE, 0, 60_000).is_empty());
    }
}
