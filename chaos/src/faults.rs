//! The fault catalogue: every fault a drill can ask for, and the tiers that can apply it. The
//! drills and the tier-A random nemesis draw from it; adding a fault means this catalogue plus
//! one primitive per backend (the list is in [`crate::director`]).
//!
//! | family | faults | sim | turmoil | sandbox |
//! |---|---|---|---|---|
//! | network | partition, isolate, ring, bridge, heal, delay | yes | yes | through the peer-link proxies |
//! | network | one_way | yes | no (see below) | through the peer-link proxies |
//! | network | loss (at random) | yes | no (see below) | no (the proxies drop whole links, not single messages) |
//! | process | kill, stop, pause, resume, restart, wipe | yes | kill, stop, restart | yes |
//! | whole cluster | power_loss | yes | yes (every node's runtime and unsynced bytes) | no (it would need a real power cut) |
//! | disk | bitflip, truncate, torn_tail, delete_tlog | TLog files | no | TLog and store files |
//! | disk | disk_full (`for: 3s`) | yes | no | no (needs a small filesystem per node) |
//! | disk | fsync_fail (the next fsync fails; the node stops) | yes | yes (its disk in memory) | no (needs a failing device) |
//! | clock | clock_offset, clock_drift | yes | no | no (a process cannot be given its own clock) |
//! | operator | drop_master | yes | yes | yes |
//! | operator | collapse (`keep: N`, `for: 3s` to repeat) | the node crate's collapse over the simulated disk | `collapse_tlogs` to the running node (its head a file in memory) | `collapse_tlogs` to the running node |
//!
//! The turmoil tier cuts a link by holding its TCP segments until the cut heals, as TCP's
//! retransmission carries a connection through a partition. Turmoil cannot hold one direction
//! only, and what it drops (a one-way cut, random loss) it never retransmits, so the connection
//! would stall for ever, which no real TCP connection does: one_way and loss are not faults of
//! that tier. It cannot freeze a host's runtime (pause), and its nodes keep their files in memory
//! with no operator's repair (wipe, disk faults).
//!
//! A collapse folds a running node's old TLog files into its head and removes them, as an
//! operator does with `arakoon-admin client collapse-tlogs`. The sandbox asks real processes; the
//! simulator runs the node crate's collapse over a node's simulated disk, its head a file there
//! (sim/src/world/collapse.rs); turmoil asks the real server, whose nodes keep their head as a
//! file on their disk in memory and adopt a peer's head there (sim/src/tier_b/mod.rs).

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;

/// Where a drill runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// The deterministic simulator: the consensus core with simulated disks, network, clocks.
    Sim,
    /// The real server code over turmoil's simulated network.
    Turmoil,
    /// Real `arakoon` processes on loopback.
    Sandbox,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Sim, Tier::Turmoil, Tier::Sandbox];

    pub fn name(self) -> &'static str {
        match self {
            Tier::Sim => "sim",
            Tier::Turmoil => "turmoil",
            Tier::Sandbox => "sandbox",
        }
    }
}

/// Which node(s) a fault strikes, resolved when it is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `n0`, `n1`, ...
    Node(usize),
    /// The node holding the lease.
    Master,
    /// One node that is not the master.
    Slave,
    /// One node at random.
    Random,
    /// A minority of the nodes (as many as can fail), the master among them if there is one.
    Minority,
    /// A majority of the nodes.
    Majority,
    /// Every node.
    All,
    /// Every node that is not running (for restart).
    Down,
}

const TARGET_WORDS: &str = "n0, n1, ..., master, slave, random, minority, majority, all, down";

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Target, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Target;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a target: {TARGET_WORDS}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Target, E> {
                let nodes = crate::drill::parse_nodes();
                Ok(match v {
                    "master" => Target::Master,
                    "slave" => Target::Slave,
                    "random" => Target::Random,
                    "minority" => Target::Minority,
                    "majority" => Target::Majority,
                    "all" => Target::All,
                    "down" => Target::Down,
                    other => {
                        let k = other.strip_prefix('n').and_then(|k| k.parse::<usize>().ok());
                        match k {
                            Some(k) if k < nodes => Target::Node(k),
                            _ => {
                                let names: Vec<String> =
                                    (0..nodes).map(|k| format!("n{k}")).collect();
                                return Err(E::custom(format!(
                                    "no node {other:?} in this cluster ({}); or one of master, slave, random, minority, majority, all, down",
                                    names.join(", ")
                                )));
                            }
                        }
                    }
                })
            }
        }
        d.deserialize_str(V)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node(k) => write!(f, "n{k}"),
            Target::Master => write!(f, "master"),
            Target::Slave => write!(f, "slave"),
            Target::Random => write!(f, "random"),
            Target::Minority => write!(f, "minority"),
            Target::Majority => write!(f, "majority"),
            Target::All => write!(f, "all"),
            Target::Down => write!(f, "down"),
        }
    }
}

/// One fault of the catalogue.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// kill -9: volatile state and un-fsynced bytes are lost.
    Kill(Target),
    /// SIGTERM: a clean stop.
    Stop(Target),
    /// SIGSTOP, and SIGCONT after `duration` if given.
    Pause {
        target: Target,
        duration: Option<crate::drill::Millis>,
    },
    Resume(Target),
    Restart(Target),
    /// The disk is lost; the node is rebuilt from a peer (the operator's procedure) and restarted.
    Wipe(Target),
    /// Every node loses power at once.
    PowerLoss,
    /// Groups that can talk within, not across.
    Partition(Vec<Vec<Target>>),
    /// One node cut off from every other.
    Isolate(Target),
    /// Messages from `from` to `to` are lost; the other way works.
    OneWay {
        from: Target,
        to: Target,
    },
    /// Each node reaches only its neighbours on a ring: every node sees a majority, no two the
    /// same one (5 nodes).
    Ring,
    /// Two halves joined by one node that sees both.
    Bridge,
    Heal,
    /// Each message is lost with this probability.
    Loss(f64),
    /// Messages take up to this long.
    Delay(crate::drill::Millis),
    /// A bit flipped in a sealed TLog file (or the store) of a stopped node.
    Bitflip {
        target: Target,
        store: bool,
    },
    /// A sealed TLog file (or the store) cut short on a stopped node.
    Truncate {
        target: Target,
        store: bool,
    },
    /// A partial last entry, as a crash in the middle of a write leaves.
    TornTail(Target),
    /// A sealed TLog file deleted from a stopped node.
    DeleteTlog(Target),
    /// Every write to the target's disk fails as on a full disk, for `duration` (or until the
    /// run ends): the node stops on its first failed write, and is started again once space is
    /// freed.
    DiskFull {
        target: Target,
        duration: Option<crate::drill::Millis>,
    },
    /// The target's next fsync fails (EIO) and what it should have made durable stays
    /// volatile: the node stops at once, as Arakoon does, and is started again later; it never
    /// acknowledges what that fsync covered.
    FsyncFail(Target),
    ClockOffset {
        target: Target,
        ms: i64,
    },
    ClockDrift {
        target: Target,
        ppm: i64,
    },
    /// The master is asked to step down.
    DropMaster,
    /// The target's TLog is collapsed online (`collapse_tlogs`): every sealed file but the last
    /// `keep` is folded into its head and removed. With a `duration`, again and again for that
    /// long, while the next steps go on.
    Collapse {
        target: Target,
        keep: u32,
        duration: Option<crate::drill::Millis>,
    },
}

impl Fault {
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Kill(_) => "kill",
            Fault::Stop(_) => "stop",
            Fault::Pause { .. } => "pause",
            Fault::Resume(_) => "resume",
            Fault::Restart(_) => "restart",
            Fault::Wipe(_) => "wipe",
            Fault::PowerLoss => "power_loss",
            Fault::Partition(_) => "partition",
            Fault::Isolate(_) => "isolate",
            Fault::OneWay { .. } => "one_way",
            Fault::Ring => "ring",
            Fault::Bridge => "bridge",
            Fault::Heal => "heal",
            Fault::Loss(_) => "loss",
            Fault::Delay(_) => "delay",
            Fault::Bitflip { .. } => "bitflip",
            Fault::Truncate { .. } => "truncate",
            Fault::TornTail(_) => "torn_tail",
            Fault::DeleteTlog(_) => "delete_tlog",
            Fault::DiskFull { .. } => "disk_full",
            Fault::FsyncFail(_) => "fsync_fail",
            Fault::ClockOffset { .. } => "clock_offset",
            Fault::ClockDrift { .. } => "clock_drift",
            Fault::DropMaster => "drop_master",
            Fault::Collapse { .. } => "collapse",
        }
    }

    /// The tiers that can apply this fault.
    pub fn tiers(&self) -> &'static [Tier] {
        use Tier::*;
        match self {
            Fault::Partition(_)
            | Fault::Isolate(_)
            | Fault::Ring
            | Fault::Bridge
            | Fault::Heal
            | Fault::Delay(_)
            | Fault::DropMaster => &[Sim, Turmoil, Sandbox],
            // Turmoil drops what it does not hold, for good (see the module documentation).
            Fault::OneWay { .. } => &[Sim, Sandbox],
            // The sandbox's proxies pass, delay, drop or reset a link; they lose nothing at random.
            Fault::Loss(_) => &[Sim],
            Fault::Kill(_) | Fault::Stop(_) | Fault::Restart(_) => &[Sim, Turmoil, Sandbox],
            Fault::Pause { .. } | Fault::Resume(_) => &[Sim, Sandbox],
            // Turmoil's operator rebuilds a node with the server's own catch-up of a stopped
            // node, over its disk in memory.
            Fault::Wipe(_) | Fault::Bitflip { store: false, .. } | Fault::TornTail(_) => {
                &[Sim, Turmoil, Sandbox]
            }
            Fault::Truncate { store: false, .. } | Fault::DeleteTlog(_) => &[Sim, Sandbox],
            Fault::Bitflip { store: true, .. } | Fault::Truncate { store: true, .. } => &[Sandbox],
            // Turmoil's nodes keep their files on disks in memory that lose what was not synced.
            Fault::PowerLoss => &[Sim, Turmoil],
            Fault::ClockOffset { .. } | Fault::ClockDrift { .. } => &[Sim],
            // The sandbox and turmoil would need a small filesystem per node.
            Fault::DiskFull { .. } => &[Sim],
            // A real device that fails one fsync on demand is beyond the sandbox.
            Fault::FsyncFail(_) => &[Sim, Turmoil],
            Fault::Collapse { .. } => &[Sim, Turmoil, Sandbox],
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Kill(t)
            | Fault::Stop(t)
            | Fault::Resume(t)
            | Fault::Restart(t)
            | Fault::Wipe(t)
            | Fault::Isolate(t)
            | Fault::TornTail(t)
            | Fault::DeleteTlog(t)
            | Fault::FsyncFail(t) => {
                write!(f, "{} {t}", self.name())
            }
            Fault::Pause { target, duration } => match duration {
                Some(d) => write!(f, "pause {target} for {d}"),
                None => write!(f, "pause {target}"),
            },
            Fault::Partition(groups) => {
                let g: Vec<String> = groups
                    .iter()
                    .map(|g| g.iter().map(Target::to_string).collect::<Vec<_>>().join(","))
                    .collect();
                write!(f, "partition {}", g.join(" | "))
            }
            Fault::OneWay { from, to } => write!(f, "one_way {from} -> {to}"),
            Fault::Loss(r) => write!(f, "loss {r}"),
            Fault::Delay(d) => write!(f, "delay {d}"),
            Fault::Bitflip { target, store } | Fault::Truncate { target, store } => {
                write!(f, "{} {target} {}", self.name(), if *store { "store" } else { "tlog" })
            }
            Fault::DiskFull { target, duration } => match duration {
                Some(d) => write!(f, "disk_full {target} for {d}"),
                None => write!(f, "disk_full {target}"),
            },
            Fault::ClockOffset { target, ms } => write!(f, "clock_offset {target} {ms}ms"),
            Fault::ClockDrift { target, ppm } => write!(f, "clock_drift {target} {ppm}ppm"),
            Fault::Collapse { target, keep, duration } => match duration {
                Some(d) => write!(f, "collapse {target} keep {keep} for {d}"),
                None => write!(f, "collapse {target} keep {keep}"),
            },
            _ => write!(f, "{}", self.name()),
        }
    }
}
