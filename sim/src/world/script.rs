//! Drills in the simulator: the tier-A [`Backend`] of the one drill engine. The
//! [`Director`] of `arakoon_chaos` decides which fault strikes which nodes and when; the world
//! applies each resolved fault with its own primitives (crash a node, cut links, flip a bit on
//! a simulated disk), shows the director the cluster and answers its conditions, all at once
//! (the backend's futures never wait).

use super::run::{Event, World};
use arakoon_chaos::director::{
    now_or_never, Backend, BackendError, ClusterView, Command, Director, Input, Resolved, Strikes,
};
use arakoon_chaos::drill::{Condition, Step};
use arakoon_chaos::faults::Fault;
use arakoon_node::consensus::{ClientReqId, Input as CoreInput, NodeIdx};
use arakoon_node::head::HEAD_FILE;
use arakoon_node::store::Store;
use arakoon_node::tlog::{LogDir, Trip};
use rand::Rng;

pub use arakoon_chaos::director::{bridge_link, bridge_node, link_matrix, ring_link};

/// How often a collapse with `for:` collapses each target again (the sandbox's period).
pub const COLLAPSE_EVERY_MS: u64 = 100;

/// Where the script is.
#[derive(Debug, Default)]
pub struct ScriptState {
    pub steps: Vec<Step>,
    /// Made when the first step is scheduled (it needs the run's seed and size).
    director: Option<Director>,
    /// For `all_in_sync`: the last slot committed anywhere when the wait started; every node
    /// must have applied it.
    sync_target: Option<u64>,
    /// When the last step finished (for `master_within`).
    pub finished_us: Option<u64>,
    /// The first time after that a node held a valid lease.
    pub master_after_finish_us: Option<u64>,
}

impl ScriptState {
    pub fn new(steps: Vec<Step>) -> ScriptState {
        ScriptState { steps, ..ScriptState::default() }
    }

    /// Every fault the script applied, in order, with its step's index.
    pub fn resolved(&self) -> Vec<(usize, Resolved)> {
        self.director.as_ref().map(|d| d.resolved().to_vec()).unwrap_or_default()
    }
}

impl World {
    /// Starts the script: its first step is scheduled.
    pub(super) fn schedule_next_step(&mut self) {
        if self.script.director.is_none() && !self.script.steps.is_empty() {
            let steps = self.script.steps.clone();
            self.script.director = Some(Director::new(steps, self.cfg.nodes, self.report.seed));
            self.agenda.push(self.now_us, Event::Script);
        }
    }

    /// Hands the director the time and the world's answers until it waits or is done.
    pub(super) fn run_step(&mut self) {
        let Some(mut director) = self.script.director.take() else { return };
        let mut input = Input::Tick;
        loop {
            let command = director.handle(self.now_us / 1000, input);
            for (at, line) in director.new_lines().to_vec() {
                self.trace(|| format!("drill: {line}"), 17);
                self.report.fault_log.push((at, line));
            }
            input = match command {
                Command::WaitUntil(ms) => {
                    self.agenda.push((ms * 1000).max(self.now_us + 1), Event::Script);
                    break;
                }
                Command::Done => {
                    if let Some(b) = director.broke() {
                        self.fail(b.check, b.detail.clone());
                    } else if let Some(ms) = director.finished_ms() {
                        self.script.finished_us.get_or_insert(ms * 1000);
                    }
                    break;
                }
                Command::Observe => Input::View(ready(self.view())),
                Command::Apply(fault) => Input::Applied(ready(self.apply(&fault))),
                Command::Check { condition, begin } => {
                    Input::Holds(ready(self.holds(condition, begin)))
                }
            };
        }
        self.script.director = Some(director);
    }

    fn committed_anywhere(&self) -> Option<u64> {
        (0..self.cfg.nodes)
            .filter_map(|k| self.nodes[k].state.as_ref())
            .filter_map(|s| s.machine.committed_i())
            .max()
    }

    pub(super) fn lease_holder(&self) -> Option<NodeIdx> {
        (0..self.cfg.nodes).find(|k| {
            let now = self.node_now_ms(*k);
            self.nodes[*k].state.as_ref().is_some_and(|s| s.machine.lease_valid(now))
        })
    }

    /// The `.tlog` files of stopped node `k`, in order; `Err` says why a disk fault at rest
    /// cannot strike it.
    fn tlogs_at_rest(&self, k: NodeIdx) -> Result<Vec<String>, NotAtRest> {
        if self.nodes[k].is_up() {
            return Err(NotAtRest { k });
        }
        let mut files: Vec<String> = self.nodes[k]
            .disk
            .list()
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f.ends_with(".tlog"))
            .collect();
        files.sort();
        Ok(files)
    }

    /// Crashes node `k` (kill -9: what it did not fsync is lost) if it runs.
    pub(super) fn crash_node(&mut self, k: NodeIdx) {
        if self.nodes[k].is_up() {
            self.nodes[k].crash(|_| 0);
            self.persists[k].clear();
        }
    }

    /// A disk fault at rest on each of `ks`: `strike` damages one node's sealed files and says
    /// how; a node that runs or has nothing to damage is a note.
    fn at_rest(
        &mut self,
        ks: &[NodeIdx],
        strike: impl Fn(&mut World, NodeIdx, &[String]) -> Option<String>,
    ) -> String {
        let mut notes = Vec::new();
        for &k in ks {
            match self.tlogs_at_rest(k) {
                Ok(files) => notes.extend(strike(self, k, &files)),
                Err(e) => notes.push(e.to_string()),
            }
        }
        notes.join("; ")
    }
}

/// A disk fault at rest aimed at a running node: the step's note says so, and nothing is struck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("n{k} is running: a disk fault at rest needs it stopped")]
struct NotAtRest {
    k: NodeIdx,
}

/// The value of a future that never waits (every future of the world's backend).
fn ready<T>(future: impl std::future::Future<Output = T>) -> T {
    now_or_never(future).expect("the simulator's backend never waits")
}

impl Backend for World {
    async fn view(&mut self) -> ClusterView {
        let n = self.cfg.nodes;
        ClusterView {
            up: (0..n).map(|k| self.nodes[k].is_up()).collect(),
            paused: (0..n).map(|k| self.nodes[k].paused).collect(),
            master: self.lease_holder(),
        }
    }

    async fn holds(&mut self, condition: Condition, begin: bool) -> bool {
        let n = self.cfg.nodes;
        if begin {
            self.script.sync_target = self.committed_anywhere();
        }
        match condition {
            Condition::MasterElected => self.lease_holder().is_some(),
            Condition::AllUp => (0..n).all(|k| self.nodes[k].is_up()),
            Condition::AllInSync => {
                // Caught up: every node runs and has applied what was committed anywhere when
                // the wait began (the clients keep writing, so "equal" would be a race).
                let target = self.script.sync_target;
                (0..n).all(|k| {
                    self.nodes[k].state.as_ref().is_some_and(|s| s.store.applied() >= target)
                        && !self.nodes[k].paused
                })
            }
        }
    }

    async fn apply(&mut self, r: &Resolved) -> Result<String, BackendError> {
        let n = self.cfg.nodes;
        let ks = r.strikes.nodes().to_vec();
        Ok(match &r.fault {
            Fault::Kill(_) | Fault::Stop(_) => {
                ks.iter().for_each(|&k| self.crash_node(k));
                String::new()
            }
            Fault::Pause { duration, .. } => {
                for &k in &ks {
                    self.nodes[k].paused = true;
                    if let Some(d) = duration {
                        self.agenda.push(self.now_us + d.0 * 1000, Event::Resume { node: k });
                    }
                }
                String::new()
            }
            Fault::Resume(_) => {
                ks.iter().for_each(|&k| self.resume(k));
                String::new()
            }
            Fault::Restart(_) => {
                ks.iter().for_each(|&k| self.restart(k));
                String::new()
            }
            Fault::Wipe(_) => {
                for &k in &ks {
                    self.nodes[k].wipe();
                    self.nodes[k].wiped = true;
                    self.persists[k].clear();
                }
                String::new()
            }
            Fault::PowerLoss => {
                (0..n).for_each(|k| self.crash_node(k));
                String::new()
            }
            Fault::Partition(_) | Fault::Isolate(_) => {
                if let Strikes::Groups(groups) = &r.strikes {
                    self.net.partition(groups);
                }
                String::new()
            }
            Fault::OneWay { .. } => {
                if let Strikes::OneWay { from, to } = &r.strikes {
                    for &x in from {
                        for &y in to {
                            self.net.set_link(x, y, false);
                        }
                    }
                }
                String::new()
            }
            Fault::Ring => {
                self.net.set_matrix(&link_matrix(n, |i, j| ring_link(n, i, j)));
                String::new()
            }
            Fault::Bridge => {
                self.net.set_matrix(&link_matrix(n, |i, j| bridge_link(n, i, j)));
                format!("bridge n{}", bridge_node(n))
            }
            Fault::Heal => {
                self.net.heal();
                self.mix.loss = 0.0;
                self.mix.delay_max_us = self.mix.delay_min_us.max(400);
                String::new()
            }
            Fault::Loss(rate) => {
                self.mix.loss = *rate;
                String::new()
            }
            Fault::Delay(d) => {
                self.mix.delay_max_us = (d.0 * 1000).max(self.mix.delay_min_us);
                String::new()
            }
            Fault::Bitflip { .. } | Fault::Truncate { .. } => {
                let flip = matches!(r.fault, Fault::Bitflip { .. });
                self.at_rest(&ks, |w, k, sealed| {
                    if sealed.len() < 2 {
                        return Some(format!("n{k} has no sealed TLog file"));
                    }
                    // The sealed files, and the head when a collapse made one: damage to it
                    // must be caught at the next start too (its CRC), never served.
                    let mut files = sealed[..sealed.len() - 1].to_vec();
                    if w.nodes[k].disk.exists(HEAD_FILE).unwrap_or(false) {
                        files.push(HEAD_FILE.to_string());
                    }
                    let f = files[w.rng.gen_range(0..files.len())].clone();
                    let len = w.nodes[k].disk.contents(&f).map_or(0, |c| c.len());
                    if len == 0 {
                        return None;
                    }
                    let at = w.rng.gen_range(0..len);
                    w.nodes[k].damaged = true;
                    if flip {
                        let bit = w.rng.gen_range(0..8);
                        w.nodes[k].disk.flip_bit(&f, at, bit);
                        Some(format!("n{k}:{f}@{at} bit {bit}"))
                    } else {
                        w.nodes[k].disk.cut(&f, at);
                        Some(format!("n{k}:{f} cut at {at}"))
                    }
                })
            }
            Fault::TornTail(_) => self.at_rest(&ks, |w, k, sealed| {
                let last = sealed.last()?;
                let mut bytes = w.nodes[k].disk.contents(last).unwrap_or_default();
                bytes.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0]);
                w.nodes[k].disk.put(last, &bytes);
                Some(format!("n{k}:{last}"))
            }),
            Fault::DeleteTlog(_) => self.at_rest(&ks, |w, k, sealed| {
                if sealed.len() < 2 {
                    return None;
                }
                let f = sealed[w.rng.gen_range(0..sealed.len() - 1)].clone();
                w.nodes[k].damaged = true;
                let disk = &w.nodes[k].disk;
                let _ = disk.remove(&f);
                let _ = disk.sync_dir();
                Some(format!("n{k}:{f}"))
            }),
            Fault::ClockOffset { ms, .. } => {
                for &k in &ks {
                    let now = self.now_us;
                    let clock = &mut self.nodes[k].clock;
                    let before = clock.now_ms(now);
                    clock.offset_us = ms * 1000;
                    // Never step a clock backwards: the core relies on monotonic time.
                    let after = clock.now_ms(now);
                    if after < before {
                        clock.offset_us += ((before - after) * 1000) as i64;
                    }
                }
                String::new()
            }
            Fault::ClockDrift { ppm, .. } => {
                for &k in &ks {
                    let now = self.now_us;
                    self.nodes[k].clock.set_drift(now, *ppm);
                }
                String::new()
            }
            Fault::DropMaster => {
                if let Strikes::Master(m) = r.strikes {
                    self.feed(m, CoreInput::DropMaster { id: ClientReqId(u64::MAX) });
                }
                String::new()
            }
            Fault::FsyncFail(_) => {
                // Armed on a running node's disk: it strikes at the node's next sync.
                for &k in &ks {
                    if self.nodes[k].is_up() {
                        self.nodes[k].disk.arm(Some(Trip::FailNextSync));
                    }
                }
                String::new()
            }
            Fault::DiskFull { duration, .. } => {
                for &k in &ks {
                    self.nodes[k].fill_disk(true);
                    if let Some(d) = duration {
                        self.agenda.push(self.now_us + d.0 * 1000, Event::DiskFreed { node: k });
                    }
                }
                String::new()
            }
            // Folded into each target's head on its simulated disk (super::collapse); with a
            // duration, again every COLLAPSE_EVERY_MS while the next steps go on, as the
            // sandbox asks its nodes.
            Fault::Collapse { keep, duration, .. } => {
                let keep = u64::from(*keep);
                if let Some(d) = duration {
                    let until_us = self.now_us + d.0 * 1000;
                    let at = self.now_us + COLLAPSE_EVERY_MS * 1000;
                    self.agenda.push(at, Event::Collapse { nodes: ks.clone(), keep, until_us });
                }
                let notes: Vec<String> =
                    ks.iter().map(|&k| format!("n{k}: {}", self.collapse(k, keep, None))).collect();
                notes.join("; ")
            }
        })
    }
}
