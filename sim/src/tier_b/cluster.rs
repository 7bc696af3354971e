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
//! Links between nodes are cut by *holding* them: turmoil keeps the TCP segments and delivers
//! them when the cut heals, as TCP's retransmission does through a partition shorter than its
//! timeout, so connections survive it, late. Clients are never cut off from nodes (the sandbox
//! cuts peer links only, too). Turmoil has no way to cut one direction without losing segments
//! for good (it does not retransmit): such a connection would stall for ever, which no real TCP
//! connection does, so one-way cuts and random loss are not faults of this tier.

use super::net::TurmoilNet;
use super::TierBError;
use arakoon_node::config::ClusterConfig;
use arakoon_node::server::core::{serve, ServerOptions};
use arakoon_node::server::env::TokioClock;
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
    /// Why each node stopped by itself after a failed fsync (the server must), until it is
    /// started again; written by the node's host.
    fallen: Rc<RefCell<Vec<Option<String>>>>,
    /// The nodes that stopped so, in order: `(node, why)`.
    pub falls: Vec<(usize, String)>,
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
        let fallen = Rc::new(RefCell::new(vec![None; spec.nodes]));
        for (k, name) in names.iter().enumerate() {
            let disk = MemDir::new(name.clone());
            let (stop_tx, stop_rx) = watch::channel(false);
            let options = ServerOptions {
                seed: spec.seed.wrapping_add(k as u64),
                storage: Storage::Memory(disk.clone()),
                ..ServerOptions::default()
            };
            let config = config.clone();
            let (seen, fell) = (disk.clone(), fallen.clone());
            sim.host(name.as_str(), move || {
                let (config, options) = (config.clone(), options.clone());
                let mut stop = stop_rx.clone();
                let (seen, fell) = (seen.clone(), fell.clone());
                async move {
                    let clock = TokioClock::new();
                    let shutdown = async move {
                        let _ = stop.wait_for(|s| *s).await;
                    };
                    let Err(e) = serve(config, k, TurmoilNet, clock, options, shutdown).await
                    else {
                        return Ok(());
                    };
                    let why = format!("n{k} stopped: {e} (exit code {})", e.exit_code());
                    // A failed fsync stops the server, as it must: the harness sees the node
                    // down ([`Cluster::reap`]). Any other stop fails the run.
                    if seen.struck() != Some(Trip::FailNextSync) {
                        return Err(why.into());
                    }
                    fell.borrow_mut()[k] = Some(why);
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
            fallen,
            falls: Vec::new(),
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
    /// those asked to stop and those that stopped by themselves after a failed fsync (marked
    /// down, and counted in [`Cluster::falls`]). Call between two steps.
    pub fn reap(&mut self, sim: &mut turmoil::Sim<'_>) {
        let ended: Vec<usize> =
            self.stopping.iter().copied().filter(|k| !sim.is_host_running(self.ips[*k])).collect();
        for k in ended {
            self.stopping.remove(&k);
            self.with_links_cut(sim, k, |sim, ip| sim.crash(ip));
        }
        for k in 0..self.nodes() {
            if !self.up[k] || sim.is_host_running(self.ips[k]) {
                continue;
            }
            let Some(why) = self.fallen.borrow_mut()[k].take() else { continue };
            self.up[k] = false;
            self.with_links_cut(sim, k, |sim, ip| sim.crash(ip));
            self.falls.push((k, why));
        }
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
        self.reap(sim);
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

    /// Starts a node that is down (a running one is left alone).
    pub fn restart(&mut self, sim: &mut turmoil::Sim<'_>, k: usize) {
        if !self.up[k] {
            self.stopping.remove(&k);
            self.fallen.borrow_mut()[k] = None;
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

    /// The node pairs cut now.
    pub fn cut_pairs(&self) -> Vec<(usize, usize)> {
        self.held.iter().copied().collect()
    }
}
