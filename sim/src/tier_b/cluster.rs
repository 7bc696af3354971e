//! The nodes of a tier-B run, and what the harness does to them between two steps of the
//! simulation: crash, stop, restart, cut links, slow the network.
//!
//! Every node is a turmoil host running [`serve`] with [`Storage::Memory`]: its TLog on a
//! [`MemDir`] that this module keeps across crashes, written inline on the node's task; its
//! store in memory, rebuilt from the log at each start. A crash drops the host's runtime (tasks,
//! sockets, store) and whatever the disk had not synced; a stop asks the node to shut down
//! cleanly (pending clients hear going_down, the TLog gets its closed marker), and once it has,
//! its runtime is dropped as a process exits; a restart runs the node's software again, which
//! validates its TLog and replays it.
//!
//! Dropping a runtime closes the node's sockets in the order tokio drops its tasks, which
//! follows process-wide task ids (the same seed would close them in another order on a second
//! run). So while a node's runtime is dropped, all its links are cut (turmoil drops, and draws no
//! random delay for, the segments that closing sockets send), then made whole again: the other
//! hosts see the node's connections go silent, as after a power loss, and the next segment one
//! of them sends is answered with a reset (the node's sockets are gone), which breaks the
//! connection there. A client waiting for an answer from a crashed node waits for its timeout.
//!
//! # Damage and the operator's repair
//!
//! Two faults damage a node's disk ([`Cluster::tear_tail`], [`Cluster::flip_at_rest`]): its
//! power is cut as it syncs a TLog write, and the crash keeps a torn part of the write; or a bit
//! of a TLog file flips while the node is stopped. The node is then started again, and its
//! start-up must see the damage: a torn tail is refused with exit 48, a flipped bit with 48, 49
//! or 50, naming the file (a flipped TLog that the node serves over fails the run). Then the
//! harness does what the refusal tells the operator: `arakoon-admin tlog truncate` (the same
//! `truncate_torn_tail`) for a torn tail; for a flipped bit the node's disk is wiped and the node
//! is caught up from its most advanced peer by the server's own `-catchup-only` code
//! ([`catch_up_stopped_node_on`]; it leaves the node a learner) before it serves again.
//!
//! Links between nodes are cut by *holding* them: turmoil keeps the TCP segments and delivers
//! them when the cut heals, as TCP's retransmission does through a partition shorter than its
//! timeout, so connections survive it, late. Clients are never cut off from nodes (the sandbox
//! cuts peer links only, too). Turmoil has no way to cut one direction without losing segments
//! for good (it does not retransmit): such a connection would stall for ever, which no real TCP
//! connection does, so one-way cuts and random loss are not faults of this tier.

use super::net::TurmoilNet;
use super::TierBError;
use arakoon_node::config::ClusterConfig;
use arakoon_node::exit::NodeExit;
use arakoon_node::server::core::{serve, ServerOptions};
use arakoon_node::server::env::TokioClock;
use arakoon_node::server::rebuild::catch_up_stopped_node_on;
use arakoon_node::server::storage::Storage;
use arakoon_node::tlog;
use arakoon_node::tlog::{MemDir, Trip};
use arakoon_node::value::Value;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::watch;

/// The shape of the cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub nodes: usize,
    pub lease_ms: u64,
    /// The nodes' election jitter is drawn from this (plus the node's index).
    pub seed: u64,
    /// The largest delay of a link outside latency faults.
    pub latency_max_ms: u64,
    /// `[global]` settings of the nodes' configuration (a drill's `cluster.config`).
    pub overrides: Vec<(String, String)>,
}

/// What a node's host tells the harness, and what the harness tells the host before it starts.
#[derive(Debug, Default)]
struct HostState {
    /// Why the node stopped by itself after a failed fsync or a power cut, until it is started
    /// again.
    fallen: Option<String>,
    /// The exit codes a start-up may refuse with now (the harness damaged the disk).
    may_refuse: &'static [i32],
    /// The start-up refused the disk: its exit code and message.
    refused: Option<(i32, String)>,
    /// Catch up from a peer before serving (the operator's repair of a wiped disk).
    catch_up_first: bool,
    /// What each such catch-up reported.
    caught_up: Vec<String>,
}

/// A disk fault in progress on one node (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Damage {
    /// The power is cut at the node's next TLog sync (the trip is armed); the crash keeps this
    /// much of the unsynced bytes, in thousandths.
    TearAtSync { keep_permille: u32 },
    /// Stopping cleanly; once stopped, a bit of its TLog flips (`pick` says where).
    FlipWhenStopped { pick: u64 },
    /// Down with its disk damaged (or maybe damaged), to be started when due.
    Damaged(Hurt),
    /// Started over a damaged disk; the next reap sees whether it refused.
    Starting(Hurt),
}

/// What a damaged disk holds, and so what its start-up must do and the repair that follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hurt {
    /// A torn write, unless the crash kept nothing or whole entries: a refusal with exit 48
    /// gets the torn tail truncated; a start is fine too.
    MaybeTorn,
    /// A partial entry after the last one: refused with exit 48, then truncated.
    Torn,
    /// A flipped bit: refused with 48, 49 or 50; the disk is wiped and the node caught up from
    /// a peer.
    Flipped,
}

impl Hurt {
    fn refusals(self) -> &'static [i32] {
        match self {
            Hurt::MaybeTorn | Hurt::Torn => &[NodeExit::TornTail as i32],
            Hurt::Flipped => &[
                NodeExit::TornTail as i32,
                NodeExit::CorruptTlog as i32,
                NodeExit::MissingTlog as i32,
            ],
        }
    }
}

/// How many times a node whose disk was wiped tries its catch-up, half a second apart, before
/// the run fails: peers may be partitioned away or restarting meanwhile.
const CATCH_UP_ATTEMPTS: u32 = 120;

/// What the harness did about damaged disks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairTally {
    /// Torn tails cut on a refusal (exit 48) with `truncate_torn_tail`.
    pub tails_truncated: u32,
    /// Torn writes the node started over without a refusal (the kept part ended on an entry's
    /// end, or nothing was kept).
    pub tears_accepted: u32,
    /// Flipped TLogs refused, wiped and caught up from a peer.
    pub flips_repaired: u32,
    /// Of those catch-ups, the ones that installed a peer's head (the peer had collapsed the
    /// slots).
    pub rebuilt_from_heads: u32,
    /// What each repair was, in order: `n1: exit 49 (...), wiped, caught up: ...`.
    pub log: Vec<String>,
}

/// The running nodes, as the harness sees them.
pub struct Cluster {
    pub config: ClusterConfig,
    pub ips: Vec<IpAddr>,
    disks: Vec<MemDir>,
    stops: Vec<watch::Sender<bool>>,
    up: Vec<bool>,
    /// Nodes asked to stop whose runtime is still to be dropped.
    stopping: BTreeSet<usize>,
    /// The hosts that are not nodes (clients), whose links to a node are cut while its runtime
    /// is dropped.
    others: Vec<IpAddr>,
    /// Node pairs (a < b) whose link is held.
    held: BTreeSet<(usize, usize)>,
    latency_max_ms: u64,
    /// What each node's host reports (a stop after a failed fsync, a refusal) and is told;
    /// shared with the hosts.
    hosts: Rc<RefCell<Vec<HostState>>>,
    /// The nodes that stopped by themselves after a failed fsync (the server must) or a power
    /// cut, in order: `(node, why)`.
    pub falls: Vec<(usize, String)>,
    damage: Vec<Option<Damage>>,
    /// The damage window of the node ended: it starts as soon as it is down with its disk
    /// damaged.
    start_due: Vec<bool>,
    repairs: RepairTally,
    /// The lines of `repairs.log` already handed out ([`Cluster::new_repair_lines`]).
    repair_lines_seen: usize,
}

/// Turmoil's settings for a run of `seed`: seeded, hosts stepped in a seeded random order, 1 ms
/// ticks, a fixed epoch (nothing depends on the real date).
pub fn builder(seed: u64, latency_max_ms: u64, duration_ms: u64) -> turmoil::Builder {
    let mut b = turmoil::Builder::new();
    b.rng_seed(seed)
        .enable_random_order()
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(0))
        .max_message_latency(Duration::from_millis(latency_max_ms))
        .simulation_duration(Duration::from_millis(duration_ms))
        .epoch(std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    b
}

/// The cluster configuration, with the addresses turmoil gave the hosts. The homes are never
/// touched: the nodes keep their files in memory.
fn cluster_config(spec: &ClusterSpec, ips: &[IpAddr]) -> Result<ClusterConfig, TierBError> {
    let names: Vec<String> = (0..spec.nodes).map(|k| format!("n{k}")).collect();
    let mut ini = format!(
        "[global]\ncluster = {}\ncluster_id = tierb\nlease_period_ms = {}\n",
        names.join(", "),
        spec.lease_ms
    );
    for (name, ip) in names.iter().zip(ips) {
        ini += &format!(
            "\n[{name}]\nip = {ip}\nclient_port = 4000\nmessaging_port = 4010\n\
             home = /arakoon-tier-b-in-memory/{name}\n"
        );
    }
    let config = ClusterConfig::parse(&ini, "tier-b.ini").map_err(TierBError::Config)?;
    if spec.overrides.is_empty() {
        return Ok(config);
    }
    config.with_overrides(&spec.overrides, "tier-b.ini").map_err(TierBError::Config)
}

impl Cluster {
    /// Adds the nodes to `sim` as hosts n0, n1, ...
    pub fn start(sim: &mut turmoil::Sim<'_>, spec: &ClusterSpec) -> Result<Cluster, TierBError> {
        let names: Vec<String> = (0..spec.nodes).map(|k| format!("n{k}")).collect();
        let ips: Vec<IpAddr> = names.iter().map(|n| sim.lookup(n.as_str())).collect();
        let config = cluster_config(spec, &ips)?;
        let mut disks = Vec::new();
        let mut stops = Vec::new();
        let hosts: Vec<HostState> = (0..spec.nodes).map(|_| HostState::default()).collect();
        let hosts = Rc::new(RefCell::new(hosts));
        for (k, name) in names.iter().enumerate() {
            let disk = MemDir::new(name.clone());
            let (stop_tx, stop_rx) = watch::channel(false);
            let options = ServerOptions {
                seed: spec.seed.wrapping_add(k as u64),
                storage: Storage::Memory(disk.clone()),
                ..ServerOptions::default()
            };
            let config = config.clone();
            let (seen, shared) = (disk.clone(), hosts.clone());
            sim.host(name.as_str(), move || {
                let (config, options) = (config.clone(), options.clone());
                let mut stop = stop_rx.clone();
                let (seen, shared) = (seen.clone(), shared.clone());
                async move {
                    if shared.borrow()[k].catch_up_first {
                        let report = catch_up(&config, k, &options.storage).await?;
                        let mut hosts = shared.borrow_mut();
                        hosts[k].catch_up_first = false;
                        hosts[k].caught_up.push(report);
                    }
                    let clock = TokioClock::new();
                    let shutdown = async move {
                        let _ = stop.wait_for(|s| *s).await;
                    };
                    let Err(e) = serve(config, k, TurmoilNet, clock, options, shutdown).await
                    else {
                        return Ok(());
                    };
                    let code = e.exit_code();
                    let why = format!("n{k} stopped: {e} (exit code {code})");
                    let mut hosts = shared.borrow_mut();
                    // A failed fsync or a power cut stops the server, as it must: the harness
                    // sees the node down ([`Cluster::reap`]). So does a start-up that refuses a
                    // disk the harness damaged. Any other stop fails the run.
                    if matches!(seen.struck(), Some(Trip::FailNextSync | Trip::CutBeforeTlogSync)) {
                        hosts[k].fallen = Some(why);
                    } else if hosts[k].may_refuse.contains(&code) {
                        hosts[k].refused = Some((code, why));
                    } else {
                        return Err(why.into());
                    }
                    Ok(())
                }
            });
            disks.push(disk);
            stops.push(stop_tx);
        }
        Ok(Cluster {
            config,
            ips,
            disks,
            stops,
            up: vec![true; spec.nodes],
            stopping: BTreeSet::new(),
            others: Vec::new(),
            held: BTreeSet::new(),
            latency_max_ms: spec.latency_max_ms,
            hosts,
            falls: Vec::new(),
            damage: vec![None; spec.nodes],
            start_due: vec![false; spec.nodes],
            repairs: RepairTally::default(),
            repair_lines_seen: 0,
        })
    }

    pub fn nodes(&self) -> usize {
        self.ips.len()
    }

    pub fn is_up(&self, k: usize) -> bool {
        self.up[k]
    }

    /// Names the hosts that are not nodes (call once every host is added).
    pub fn set_other_hosts(&mut self, others: Vec<IpAddr>) {
        self.others = others;
    }

    /// Runs `drop_runtime` (a crash or a bounce of node `k`) with every link of `k` cut: see the
    /// module documentation. The cuts the run asked for stand afterwards.
    fn with_links_cut(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        k: usize,
        drop_runtime: impl FnOnce(&mut turmoil::Sim<'_>, IpAddr),
    ) {
        let ip = self.ips[k];
        let all: Vec<IpAddr> =
            self.ips.iter().chain(&self.others).copied().filter(|x| *x != ip).collect();
        for &other in &all {
            sim.partition(ip, other);
        }
        drop_runtime(sim, ip);
        for &other in &all {
            sim.repair(ip, other);
        }
        for &(a, b) in &self.held {
            if a == k || b == k {
                sim.hold(self.ips[a], self.ips[b]);
            }
        }
    }

    /// kill -9: the runtime goes, and what the disk had not synced.
    pub fn crash(&mut self, sim: &mut turmoil::Sim<'_>, k: usize) {
        if self.up[k] {
            self.with_links_cut(sim, k, |sim, ip| sim.crash(ip));
            self.disks[k].crash(|_| 0);
            self.up[k] = false;
        }
    }

    /// A clean stop: the node finishes what it can, closes its TLog and ends; [`Cluster::reap`]
    /// then drops what is left of it.
    pub fn stop(&mut self, k: usize) {
        if self.up[k] {
            self.stops[k].send_replace(true);
            self.up[k] = false;
            self.stopping.insert(k);
        }
    }

    /// Drops the runtime of every stopped node whose software has ended, as a process exits,
    /// those asked to stop and those that stopped by themselves after a failed fsync or a power
    /// cut (marked down, and counted in [`Cluster::falls`]); carries a damaged disk's fault and
    /// repair a step further. Call between two steps; an error fails the run.
    pub fn reap(&mut self, sim: &mut turmoil::Sim<'_>) -> Result<(), String> {
        let ended: Vec<usize> =
            self.stopping.iter().copied().filter(|k| !sim.is_host_running(self.ips[*k])).collect();
        for k in ended {
            self.stopping.remove(&k);
            self.with_links_cut(sim, k, |sim, ip| sim.crash(ip));
            if let Some(Damage::FlipWhenStopped { pick }) = self.damage[k] {
                self.flip(k, pick)?;
                self.start_if_due(sim, k);
            }
        }
        for k in 0..self.nodes() {
            if self.up[k] && !sim.is_host_running(self.ips[k]) {
                let fell = self.hosts.borrow_mut()[k].fallen.take();
                if let Some(why) = fell {
                    self.up[k] = false;
                    self.with_links_cut(sim, k, |sim, ip| sim.crash(ip));
                    self.falls.push((k, why));
                    if let Some(Damage::TearAtSync { keep_permille }) = self.damage[k] {
                        let keep = |unsynced: usize| unsynced * keep_permille as usize / 1000;
                        self.disks[k].crash(keep);
                        self.damage[k] = Some(Damage::Damaged(Hurt::MaybeTorn));
                        self.start_if_due(sim, k);
                    }
                }
            }
            if let Some(Damage::Starting(hurt)) = self.damage[k] {
                self.started_over_damage(sim, k, hurt)?;
            }
        }
        Ok(())
    }

    /// Node `k` was started over a damaged disk one step ago: a refusal gets the operator's
    /// repair and a start; serving over a flipped TLog fails the run.
    fn started_over_damage(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        k: usize,
        hurt: Hurt,
    ) -> Result<(), String> {
        self.damage[k] = None;
        let refused = {
            let mut hosts = self.hosts.borrow_mut();
            hosts[k].may_refuse = &[];
            hosts[k].refused.take()
        };
        let Some((_, why)) = refused else {
            if !sim.is_host_running(self.ips[k]) {
                return Ok(()); // it fell again meanwhile: a fall of its own
            }
            match hurt {
                Hurt::Flipped => return Err(format!("n{k} serves over a flipped TLog")),
                Hurt::Torn => return Err(format!("n{k} serves over a torn TLog tail")),
                Hurt::MaybeTorn => {}
            }
            self.repairs.tears_accepted += 1;
            return Ok(());
        };
        // The host ended: its runtime goes as a process's does.
        self.up[k] = false;
        self.with_links_cut(sim, k, |sim, ip| sim.crash(ip));
        if hurt != Hurt::Flipped {
            let cut = arakoon_node::tlog::truncate_torn_tail(&self.disks[k])
                .map_err(|e| format!("{why}; the torn tail's repair failed: {e}"))?;
            self.repairs.tails_truncated += 1;
            self.repairs.log.push(format!("{why}; truncated: {cut:?}"));
        } else {
            self.disks[k].wipe();
            self.hosts.borrow_mut()[k].catch_up_first = true;
            self.repairs.flips_repaired += 1;
            self.repairs.log.push(format!("{why}; wiped, caught up from a peer"));
        }
        self.start_node(sim, k);
        Ok(())
    }

    /// Flips one bit of one of node `k`'s TLog files, chosen by `pick`, and leaves the node
    /// down with its disk damaged.
    fn flip(&mut self, k: usize, pick: u64) -> Result<(), String> {
        use arakoon_node::tlog::LogDir;
        let disk = &self.disks[k];
        let names = disk.list().map_err(|e| format!("listing n{k}'s disk: {e}"))?;
        let files: Vec<(String, u64)> = names
            .into_iter()
            .filter(|n| n.ends_with(".tlog"))
            .map(|n| {
                let len = disk.file_len(&n).unwrap_or(0);
                (n, len)
            })
            .filter(|(_, len)| *len > 0)
            .collect();
        let total: u64 = files.iter().map(|(_, len)| len).sum();
        if total == 0 {
            self.repairs.log.push(format!("n{k}: no TLog byte to flip"));
            self.damage[k] = None;
            return Ok(());
        }
        let mut at = pick % total;
        for (name, len) in files {
            if at < len {
                let bit = (pick / total % 8) as u8;
                disk.flip_bit(&name, at as usize, bit);
                self.repairs.log.push(format!("n{k}: bit {bit} of byte {at} of {name} flipped"));
                break;
            }
            at -= len;
        }
        self.damage[k] = Some(Damage::Damaged(Hurt::Flipped));
        Ok(())
    }

    /// Cuts node `k`'s power as it next syncs a TLog write; the crash keeps `keep_permille`
    /// thousandths of what the write put down. It is started again by
    /// [`Cluster::end_damage`].
    pub fn tear_tail(&mut self, k: usize, keep_permille: u32) {
        if self.up[k] && self.damage[k].is_none() {
            self.disks[k].arm(Some(Trip::CutBeforeTlogSync));
            self.damage[k] = Some(Damage::TearAtSync { keep_permille });
        }
    }

    /// Stops node `k` cleanly and flips a bit of its TLog once it stopped (`pick` says where).
    /// It is started again by [`Cluster::end_damage`]. Not while the other voters would not
    /// make a quorum: rebuilt, the node is a learner until a master caught it up, and without
    /// a quorum of voters no master is ever elected (two disks lost of three is beyond what
    /// the cluster promises to survive; the tier-A world draws the same way).
    pub fn flip_at_rest(&mut self, k: usize, pick: u64) {
        if !self.may_lose_vote(k) {
            self.repairs.log.push(format!(
                "n{k}: no flip: the other voters would not make a quorum while it is rebuilt"
            ));
            return;
        }
        if self.up[k] && self.damage[k].is_none() {
            self.stop(k);
            self.damage[k] = Some(Damage::FlipWhenStopped { pick });
        }
    }

    /// Whether node `k` may lose its vote (a rebuild makes it a learner): only while the other
    /// voters still make a quorum.
    fn may_lose_vote(&self, k: usize) -> bool {
        let others = (0..self.nodes()).filter(|p| *p != k && self.voter(*p)).count();
        others >= self.config.quorum()
    }

    /// Whether node `p` votes: no damage pending on its disk, no rebuild to come, and its
    /// ballot record not a learner's.
    fn voter(&self, p: usize) -> bool {
        if self.damage[p].is_some() || self.hosts.borrow()[p].catch_up_first {
            return false;
        }
        arakoon_node::tlog::BallotRecord::load(&self.disks[p]).map_or(true, |b| !b.learner)
    }

    /// The end of a damage window: a node down with a damaged disk starts again (now, or once
    /// it is down and damaged), and must see the damage ([`Cluster::reap`] repairs a refusal); a
    /// power cut that never struck is disarmed.
    pub fn end_damage(&mut self, sim: &mut turmoil::Sim<'_>, k: usize) {
        if let Some(Damage::TearAtSync { .. }) = self.damage[k] {
            if self.disks[k].armed() == Some(Trip::CutBeforeTlogSync) {
                self.disks[k].arm(None);
                self.damage[k] = None;
                return;
            }
        }
        if self.damage[k].is_some() {
            self.start_due[k] = true;
            self.start_if_due(sim, k);
        }
    }

    /// Starts node `k` over its damaged disk if its window ended.
    fn start_if_due(&mut self, sim: &mut turmoil::Sim<'_>, k: usize) {
        let Some(Damage::Damaged(hurt)) = self.damage[k] else { return };
        if !self.start_due[k] || self.up[k] {
            return;
        }
        self.start_due[k] = false;
        self.hosts.borrow_mut()[k].may_refuse = hurt.refusals();
        self.start_node(sim, k);
        self.damage[k] = Some(Damage::Starting(hurt));
    }

    /// A drill's bitflip: a bit of node `k`'s TLog flips (`pick` says where) while it is down,
    /// or once it stopped if it is stopping (one that runs is stopped first). Its next start
    /// ([`Cluster::restart`]) must refuse, and gets the operator's repair.
    pub fn flip_down(&mut self, k: usize, pick: u64) -> Result<(), String> {
        if self.up[k] {
            self.stop(k);
        }
        if self.stopping.contains(&k) {
            self.damage[k] = Some(Damage::FlipWhenStopped { pick });
            return Ok(());
        }
        self.flip(k, pick)
    }

    /// A drill's torn_tail: a partial entry after the last entry of node `k`'s last TLog file,
    /// as a crash in the middle of a write leaves it (a node that runs is crashed first). Its
    /// next start must refuse it, and the tail is truncated.
    pub fn tear_down(&mut self, sim: &mut turmoil::Sim<'_>, k: usize) -> Result<(), String> {
        use arakoon_node::tlog::LogDir;
        self.crash(sim, k);
        let disk = &self.disks[k];
        let names = disk.list().map_err(|e| format!("listing n{k}'s disk: {e}"))?;
        let Some(last) = names.iter().filter(|n| n.ends_with(".tlog")).max() else {
            return Err(format!("n{k} has no TLog file to tear"));
        };
        let mut bytes = disk.contents(last).unwrap_or_default();
        // The first bytes of an entry's header, no more: the file ends inside it.
        bytes.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0]);
        disk.put(last, &bytes);
        self.repairs.log.push(format!("n{k}: a partial entry after the end of {last}"));
        self.damage[k] = Some(Damage::Damaged(Hurt::Torn));
        Ok(())
    }

    /// A drill's wipe: node `k` loses its disk (one that runs is crashed first); its next start
    /// is the operator's rebuild, a catch-up from a peer first.
    pub fn wipe(&mut self, sim: &mut turmoil::Sim<'_>, k: usize) {
        self.crash(sim, k);
        self.disks[k].wipe();
        self.damage[k] = None;
        self.hosts.borrow_mut()[k].catch_up_first = true;
        self.repairs.log.push(format!("n{k}: its disk is lost"));
    }

    /// The next fsync of node `k`'s disk fails (EIO), and what it should have made durable
    /// stays volatile: the node stops ([`Cluster::reap`] sees it).
    pub fn fail_next_fsync(&mut self, k: usize) {
        if self.up[k] {
            self.disks[k].arm(Some(Trip::FailNextSync));
        }
    }

    /// The end of a failed-fsync window: a node that stopped is started again (after a power
    /// loss of its machine if `power_loss`: what was not synced is lost); one whose disk never
    /// synced meanwhile is disarmed and goes on.
    pub fn end_fsync_fault(&mut self, sim: &mut turmoil::Sim<'_>, k: usize, power_loss: bool) {
        if self.up[k] {
            self.disks[k].arm(None);
            self.disks[k].take_struck();
            return;
        }
        self.restart_after_fall(sim, k, power_loss);
    }

    /// Starts node `k` again if it is down (after a power loss of its machine if `power_loss`:
    /// what was not synced is lost); a node that runs is left alone.
    pub fn restart_after_fall(&mut self, sim: &mut turmoil::Sim<'_>, k: usize, power_loss: bool) {
        if self.up[k] {
            return;
        }
        if power_loss {
            self.disks[k].crash(|_| 0);
        }
        self.restart(sim, k);
    }

    /// Starts a node that is down (a running one is left alone); one whose disk the harness
    /// damaged must see the damage and gets the operator's repair ([`Cluster::reap`]).
    pub fn restart(&mut self, sim: &mut turmoil::Sim<'_>, k: usize) {
        if let Some(Damage::Damaged(_) | Damage::FlipWhenStopped { .. }) = self.damage[k] {
            // Started once it is down and damaged (the flip waits for the stop to end).
            self.start_due[k] = true;
            self.start_if_due(sim, k);
            return;
        }
        self.start_node(sim, k);
    }

    /// Runs node `k`'s software again if it is down.
    fn start_node(&mut self, sim: &mut turmoil::Sim<'_>, k: usize) {
        if !self.up[k] {
            self.stopping.remove(&k);
            self.hosts.borrow_mut()[k].fallen = None;
            self.disks[k].take_struck();
            self.stops[k].send_replace(false);
            self.with_links_cut(sim, k, |sim, ip| sim.bounce(ip));
            self.up[k] = true;
        }
    }

    /// Cuts exactly the links between nodes in different groups (`side[k]`); `reach(a, b)` says
    /// whether a and b may talk. Links that were cut and now may talk are released.
    pub fn set_links(&mut self, sim: &turmoil::Sim<'_>, reach: impl Fn(usize, usize) -> bool) {
        let n = self.nodes();
        let mut wanted = BTreeSet::new();
        for a in 0..n {
            for b in a + 1..n {
                if !(reach(a, b) && reach(b, a)) {
                    wanted.insert((a, b));
                }
            }
        }
        for &(a, b) in self.held.difference(&wanted) {
            sim.release(self.ips[a], self.ips[b]);
        }
        for &(a, b) in wanted.difference(&self.held) {
            sim.hold(self.ips[a], self.ips[b]);
        }
        self.held = wanted;
    }

    /// The largest delay of every link, until [`Cluster::heal`].
    pub fn set_latency_max(&self, sim: &turmoil::Sim<'_>, ms: u64) {
        sim.set_max_message_latency(Duration::from_millis(ms));
    }

    /// Every link whole again, latency back to normal.
    pub fn heal(&mut self, sim: &turmoil::Sim<'_>) {
        self.set_links(sim, |_, _| true);
        self.set_latency_max(sim, self.latency_max_ms);
    }

    /// How many times the nodes put a peer's fetched head in place of their own (the first
    /// step of an adoption), all nodes together, counted on their disks.
    pub fn heads_taken(&self) -> u64 {
        self.disks.iter().map(MemDir::heads_taken).sum()
    }

    /// Whether the nodes' TLogs agree: every slot that two nodes' logs hold as committed (a
    /// later slot follows it) holds the same value in both. Logs may start at different slots
    /// (a collapse removed files, an adoption restarted a log) and end at different ones.
    /// Returns the number of slots held by two nodes or more, or the first disagreement.
    pub fn logs_agree(&self) -> Result<u64, String> {
        self.walk_logs().map(|(shared, _)| shared)
    }

    /// The last committed slot of each node's TLog (a later slot follows it), `None` for a log
    /// that holds none: how far each node got. Unreadable logs are `None` too.
    pub fn committed_ends(&self) -> Vec<Option<u64>> {
        self.walk_logs().map(|(_, ends)| ends).unwrap_or_else(|_| vec![None; self.disks.len()])
    }

    fn walk_logs(&self) -> Result<(u64, Vec<Option<u64>>), String> {
        let mut ends = vec![None; self.disks.len()];
        let mut seen: BTreeMap<u64, (usize, Value)> = BTreeMap::new();
        let mut shared = 0u64;
        for (k, disk) in self.disks.iter().enumerate() {
            let mut disagree = None;
            let end = &mut ends[k];
            let walked = tlog::for_each_committed(disk, 0, false, &mut |e| {
                *end = Some(e.i);
                match seen.get(&e.i) {
                    Some((_, v)) if *v == e.value => shared += 1,
                    Some((j, v)) => {
                        disagree = Some(format!(
                            "slot {}: n{j} holds {v:?}, n{k} holds {:?}",
                            e.i, e.value
                        ));
                        return Err(());
                    }
                    None => {
                        seen.insert(e.i, (k, e.value));
                    }
                }
                Ok(())
            });
            match walked {
                Err(e) => return Err(format!("reading n{k}'s TLog: {e}")),
                Ok(Err(())) => return Err(disagree.unwrap_or_default()),
                Ok(Ok(())) => {}
            }
        }
        Ok((shared, ends))
    }

    /// What the harness did about damaged disks, the catch-ups' own reports included.
    pub fn take_repairs(&mut self) -> RepairTally {
        self.collect_catch_ups();
        std::mem::take(&mut self.repairs)
    }

    /// The lines of the repair log written since the last call (a drill logs them as they
    /// come).
    pub fn new_repair_lines(&mut self) -> Vec<String> {
        self.collect_catch_ups();
        let lines = self.repairs.log[self.repair_lines_seen..].to_vec();
        self.repair_lines_seen = self.repairs.log.len();
        lines
    }

    /// Moves the rebuilds' reports from the hosts into the repair log.
    fn collect_catch_ups(&mut self) {
        for host in self.hosts.borrow_mut().iter_mut() {
            for report in host.caught_up.drain(..) {
                self.repairs.rebuilt_from_heads += u32::from(report.contains("after its head"));
                self.repairs.log.push(format!("catch-up: {report}"));
            }
        }
    }

    /// Each node's ballot record as its disk holds it now (`None` if it cannot be read): who
    /// is still a learner, what each promised.
    pub fn ballots(&self) -> Vec<Option<arakoon_node::tlog::BallotRecord>> {
        self.disks.iter().map(|d| arakoon_node::tlog::BallotRecord::load(d).ok()).collect()
    }

    /// The node pairs cut now.
    pub fn cut_pairs(&self) -> Vec<(usize, usize)> {
        self.held.iter().copied().collect()
    }
}

/// The operator's catch-up of node `k` from its most advanced peer, on the node's own host
/// (`arakoon -catchup-only`), tried again half a second later while no peer answers.
async fn catch_up(config: &ClusterConfig, k: usize, storage: &Storage) -> Result<String, String> {
    let mut last = String::new();
    for _ in 0..CATCH_UP_ATTEMPTS {
        match catch_up_stopped_node_on(config, k, (&TurmoilNet, storage), &mut |_| {}).await {
            Ok(report) => return Ok(report),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(format!("n{k}'s catch-up gave up after {CATCH_UP_ATTEMPTS} attempts: {last}"))
}
