//! The fault schedule of a tier-B run, drawn from the seed before the run starts. Its families
//! are faults of the catalogue (`arakoon_chaos::faults::Fault`: partition, kill, delay, loss,
//! fsync_fail, power_loss);
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
//! - collapse (opt-in): a node is asked, as `arakoon-admin collapse` asks it, to collapse its
//!   TLog keeping a number of sealed files (`collapse_tlogs`); the real server folds the older
//!   files into its head and removes them. Not a window but an instant: collapses are drawn from
//!   their own stream of the seed (so turning them on moves none of the other faults' draws)
//!   and may come during another fault. A node that lags behind then finds the slots it needs
//!   collapsed away at its peer, and catches up by fetching and adopting the peer's head.
//! - disk (opt-in): a node's next fsync fails (the catalogue's fsync_fail): the real server
//!   stops, as it must, what the fsync covered still volatile; at the window's end it is started
//!   again, half the time after a power loss of its machine (what was not synced is lost). Or
//!   every node loses power at once (power_loss): each one's runtime and unsynced bytes go, and
//!   all start again at the window's end.
//! - damage (opt-in): a node's power is cut as it syncs a TLog write and the crash keeps a torn
//!   part of the write (the catalogue's torn_tail), or a bit of its TLog flips while it is
//!   stopped (bitflip); at the window's end it starts again, must see the damage, and gets the
//!   operator's repair (cluster.rs, "Damage and the operator's repair").

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
    pub collapses: bool,
    /// Failed fsyncs and power losses of the whole cluster.
    pub disk: bool,
    /// Torn TLog writes and bits flipped at rest, with the operator's repair.
    pub damage: bool,
}

impl FaultSet {
    pub const NONE: FaultSet = FaultSet {
        partitions: false,
        crashes: false,
        latency: false,
        loss: false,
        collapses: false,
        disk: false,
        damage: false,
    };
    /// Everything that a healthy cluster must ride out.
    pub const DEFAULT: FaultSet = FaultSet {
        partitions: true,
        crashes: true,
        latency: true,
        loss: false,
        collapses: false,
        disk: false,
        damage: false,
    };
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
    /// The node is asked to collapse its TLog keeping this many sealed files (the admin
    /// `collapse` call, `collapse_tlogs`); an instant, `start_ms == end_ms`.
    Collapse {
        node: usize,
        keep: u32,
    },
    /// The node's next fsync fails: it stops; at the window's end it starts again, after a
    /// power loss of its machine if `power_loss`.
    FsyncFails {
        node: usize,
        power_loss: bool,
    },
    /// Every node loses power at once; all start again at the window's end.
    PowerLoss,
    /// The node's power is cut as it syncs a TLog write; the crash keeps this many thousandths
    /// of the write. It starts again at the window's end (a torn tail is truncated, as the
    /// refusal tells the operator).
    TornTail {
        node: usize,
        keep_permille: u32,
    },
    /// The node stops cleanly, a bit of its TLog flips (`pick` chooses the file, byte and
    /// bit), and at the window's end it starts again: it must refuse, and is rebuilt from a
    /// peer.
    Bitflip {
        node: usize,
        pick: u64,
    },
}

impl FaultKind {
    /// Whether this fault is an instant (a request made once) rather than a window.
    pub fn is_instant(&self) -> bool {
        matches!(self, FaultKind::Collapse { .. })
    }
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
            FaultKind::Collapse { node, keep } => {
                write!(f, "collapse n{node}'s TLog, keeping {keep} sealed file(s)")
            }
            FaultKind::FsyncFails { node, power_loss } => {
                let then = if *power_loss { ", a power loss," } else { "" };
                write!(f, "n{node}'s next fsync fails{then} restart at the end")
            }
            FaultKind::PowerLoss => write!(f, "every node loses power, restart at the end"),
            FaultKind::TornTail { node, keep_permille } => write!(
                f,
                "n{node}'s power is cut as it syncs, {keep_permille}\u{2030} of the write kept; \
                 restart at the end"
            ),
            FaultKind::Bitflip { node, pick } => {
                write!(
                    f,
                    "n{node} stops, a bit of its TLog flips (pick {pick}); restart at the end"
                )
            }
        }
    }
}

/// Draws the schedule: faults between `from_ms` and `until_ms`, one window at a time, and the
/// collapses (instants, from their own stream) among them; ordered by start.
pub fn schedule(seed: u64, nodes: usize, set: FaultSet, from_ms: u64, until_ms: u64) -> Vec<Fault> {
    let mut faults = windows(seed, nodes, set, from_ms, until_ms);
    if set.collapses {
        faults.extend(collapses(seed, nodes, from_ms, until_ms));
        // Stable: a window and a collapse at the same ms keep this order.
        faults.sort_by_key(|f| f.start_ms);
    }
    faults
}

/// The collapses of a schedule: each names a node and the sealed files to keep (1 or 2, as an
/// operator would), a few seconds apart. Their own RNG stream: the windows' draws do not move.
fn collapses(seed: u64, nodes: usize, from_ms: u64, until_ms: u64) -> Vec<Fault> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x636F_6C6C_6170_7365);
    let mut out = Vec::new();
    let mut t = from_ms + rng.gen_range(1_000..4_000);
    while t < until_ms {
        let kind =
            FaultKind::Collapse { node: rng.gen_range(0..nodes), keep: rng.gen_range(1..=2) };
        out.push(Fault { start_ms: t, end_ms: t, kind });
        t += rng.gen_range(2_000..5_000);
    }
    out
}

/// The windows of a schedule (every family but collapse), one at a time.
fn windows(seed: u64, nodes: usize, set: FaultSet, from_ms: u64, until_ms: u64) -> Vec<Fault> {
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
    if set.disk {
        kinds.push(CatalogueFault::FsyncFail(Target::Random));
        kinds.push(CatalogueFault::PowerLoss);
    }
    if set.damage {
        kinds.push(CatalogueFault::TornTail(Target::Random));
        kinds.push(CatalogueFault::Bitflip { target: Target::Random, store: false });
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
            CatalogueFault::FsyncFail(_) => {
                FaultKind::FsyncFails { node: rng.gen_range(0..nodes), power_loss: rng.gen() }
            }
            CatalogueFault::PowerLoss => FaultKind::PowerLoss,
            CatalogueFault::TornTail(_) => FaultKind::TornTail {
                node: rng.gen_range(0..nodes),
                keep_permille: rng.gen_range(0..1_000),
            },
            CatalogueFault::Bitflip { .. } => {
                FaultKind::Bitflip { node: rng.gen_range(0..nodes), pick: rng.gen() }
            }
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

    /// Collapses are drawn from their own stream: turning them on adds instants and moves none
    /// of the windows a seed draws; they name a node and keep at least one sealed file.
    #[test]
    fn collapses_leave_the_windows_of_a_seed_where_they_were() {
        for seed in 0..20 {
            let plain = schedule(seed, 3, FaultSet::DEFAULT, 3_000, 60_000);
            let set = FaultSet { collapses: true, ..FaultSet::DEFAULT };
            let with = schedule(seed, 3, set, 3_000, 60_000);
            let windows: Vec<Fault> =
                with.iter().filter(|f| !f.kind.is_instant()).cloned().collect();
            assert_eq!(windows, plain, "seed {seed}");
            let instants: Vec<&Fault> = with.iter().filter(|f| f.kind.is_instant()).collect();
            assert!(instants.len() >= 5, "seed {seed}: {} collapses", instants.len());
            for f in instants {
                let FaultKind::Collapse { node, keep } = f.kind else { unreachable!() };
                assert!(node < 3 && (1..=2).contains(&keep) && f.start_ms == f.end_ms, "{f}");
            }
            assert!(with.windows(2).all(|w| w[0].start_ms <= w[1].start_ms));
        }
    }
}
