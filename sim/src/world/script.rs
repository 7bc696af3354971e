//! Drills in the simulator: the steps of a drill applied to the world at their times, instead of
//! the random nemesis; conditions polled; targets resolved when a step fires.

use super::run::{Event, World};
use arakoon_chaos::drill::{Action, Condition, Step, When};
use arakoon_chaos::faults::{Fault, Target};
use arakoon_node::consensus::{ClientReqId, Input, NodeIdx};
use arakoon_node::store::Store;
use arakoon_node::tlog::LogDir;
use rand::Rng;

/// How often a `wait_until` condition is looked at, µs.
const POLL_US: u64 = 50_000;

/// Where the script is.
#[derive(Debug, Default)]
pub struct ScriptState {
    pub steps: Vec<Step>,
    pub next: usize,
    /// When the previous step finished, µs.
    pub previous_done_us: u64,
    /// When the current `wait_until` started, µs.
    pub waiting_since_us: Option<u64>,
    /// For `all_in_sync`: the last slot committed anywhere when the wait started; every node
    /// must have applied it.
    pub sync_target: Option<u64>,
    /// When the last step finished (for `master_within`).
    pub finished_us: Option<u64>,
    /// The first time after that a node held a valid lease.
    pub master_after_finish_us: Option<u64>,
}

impl ScriptState {
    pub fn new(steps: Vec<Step>) -> ScriptState {
        ScriptState { steps, ..ScriptState::default() }
    }
}

impl World {
    /// Schedules the next step of the script, if any.
    pub(super) fn schedule_next_step(&mut self) {
        let Some(step) = self.script.steps.get(self.script.next) else {
            if self.script.finished_us.is_none() && !self.script.steps.is_empty() {
                self.script.finished_us = Some(self.now_us);
            }
            return;
        };
        let due = match step.when {
            When::At(t) => (t.0 * 1000).max(self.now_us),
            When::After(d) => (self.script.previous_done_us + d.0 * 1000).max(self.now_us),
        };
        self.agenda.push(due, Event::Script);
    }

    pub(super) fn run_step(&mut self) {
        let Some(step) = self.script.steps.get(self.script.next).cloned() else { return };
        if let Action::WaitUntil { condition: Condition::AllInSync, .. } = &step.action {
            if self.script.sync_target.is_none() {
                self.script.sync_target = self.committed_anywhere();
            }
        }
        match &step.action {
            Action::Fault(fault) => {
                let what = self.apply_fault(fault);
                self.log_fault(format!("{fault}{what}"));
                self.step_done(self.now_us);
            }
            Action::Wait(d) => {
                self.step_done(self.now_us + d.0 * 1000);
            }
            Action::WaitUntil { condition, timeout } => {
                let since = *self.script.waiting_since_us.get_or_insert(self.now_us);
                if self.holds(*condition) {
                    self.script.waiting_since_us = None;
                    self.script.sync_target = None;
                    let waited = (self.now_us - since) / 1000;
                    self.log_fault(format!("{condition:?} after {waited}ms"));
                    self.step_done(self.now_us);
                } else if self.now_us >= since + timeout.0 * 1000 {
                    self.script.waiting_since_us = None;
                    self.script.sync_target = None;
                    let line = step.line;
                    self.fail(
                        "wait_until",
                        format!(
                            "{condition:?} did not hold within {timeout} (step at line {line})"
                        ),
                    );
                } else {
                    self.agenda.push(self.now_us + POLL_US, Event::Script);
                }
            }
        }
    }

    fn step_done(&mut self, at_us: u64) {
        self.script.previous_done_us = at_us;
        self.script.next += 1;
        if at_us > self.now_us {
            // A plain wait: the next step is scheduled from its end.
            let next = self.script.steps.get(self.script.next).map(|s| s.when);
            let due = match next {
                Some(When::At(t)) => (t.0 * 1000).max(at_us),
                Some(When::After(d)) => at_us + d.0 * 1000,
                None => {
                    self.script.finished_us = Some(at_us);
                    return;
                }
            };
            self.agenda.push(due, Event::Script);
        } else {
            self.schedule_next_step();
        }
    }

    fn log_fault(&mut self, line: String) {
        let at = self.now_us / 1000;
        self.trace(|| format!("drill: {line}"), 17);
        self.report.fault_log.push((at, line));
    }

    /// Whether a condition holds now.
    fn holds(&self, condition: Condition) -> bool {
        let n = self.cfg.nodes;
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

    /// The nodes a target names now.
    fn resolve(&mut self, target: &Target) -> Vec<NodeIdx> {
        let n = self.cfg.nodes;
        let master = self.lease_holder();
        let up: Vec<NodeIdx> = (0..n).filter(|k| self.nodes[*k].is_up()).collect();
        let pick = |w: &mut World, from: &[NodeIdx]| -> Vec<NodeIdx> {
            if from.is_empty() {
                Vec::new()
            } else {
                vec![from[w.rng.gen_range(0..from.len())]]
            }
        };
        match target {
            Target::Node(k) => vec![*k],
            Target::Master => match master {
                Some(m) => vec![m],
                None => pick(self, &up),
            },
            Target::Slave => {
                let slaves: Vec<NodeIdx> =
                    up.iter().copied().filter(|k| Some(*k) != master).collect();
                pick(self, &slaves)
            }
            Target::Random => pick(self, &up),
            Target::All => (0..n).collect(),
            Target::Down => (0..n).filter(|k| !self.nodes[*k].is_up()).collect(),
            Target::Minority | Target::Majority => {
                // The master first, then the others in a seeded order.
                let mut order: Vec<NodeIdx> = master.into_iter().collect();
                let mut rest: Vec<NodeIdx> = (0..n).filter(|k| Some(*k) != master).collect();
                for i in (1..rest.len()).rev() {
                    rest.swap(i, self.rng.gen_range(0..=i));
                }
                order.extend(rest);
                let size = if *target == Target::Minority { (n - 1) / 2 } else { n / 2 + 1 };
                order.truncate(size.max(1));
                order
            }
        }
    }

    /// The `.tlog` files of stopped node `k`, in order; `Err` says why a disk fault at rest
    /// cannot strike it.
    fn tlogs_at_rest(&self, k: NodeIdx) -> Result<Vec<String>, String> {
        if self.nodes[k].is_up() {
            return Err(format!("n{k} is running: a disk fault at rest needs it stopped"));
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

    /// Applies one fault now; returns a note on what it struck.
    fn apply_fault(&mut self, fault: &Fault) -> String {
        let n = self.cfg.nodes;
        let names = |ks: &[NodeIdx]| {
            let v: Vec<String> = ks.iter().map(|k| format!("n{k}")).collect();
            format!(" ({})", v.join(","))
        };
        match fault {
            Fault::Kill(t) | Fault::Stop(t) => {
                let ks = self.resolve(t);
                for &k in &ks {
                    if self.nodes[k].is_up() {
                        self.nodes[k].crash(|_| 0);
                        self.persists[k].clear();
                    }
                }
                names(&ks)
            }
            Fault::Pause { target, duration } => {
                let ks = self.resolve(target);
                for &k in &ks {
                    self.nodes[k].paused = true;
                    if let Some(d) = duration {
                        self.agenda.push(self.now_us + d.0 * 1000, Event::Resume { node: k });
                    }
                }
                names(&ks)
            }
            Fault::Resume(t) => {
                let ks = self.resolve(t);
                for &k in &ks {
                    self.resume(k);
                }
                names(&ks)
            }
            Fault::Restart(t) => {
                let ks = self.resolve(t);
                for &k in &ks {
                    self.restart(k);
                }
                names(&ks)
            }
            Fault::Wipe(t) => {
                let ks = self.resolve(t);
                for &k in &ks {
                    self.nodes[k].wipe();
                    self.nodes[k].wiped = true;
                    self.persists[k].clear();
                }
                names(&ks)
            }
            Fault::PowerLoss => {
                for k in 0..n {
                    if self.nodes[k].is_up() {
                        self.nodes[k].crash(|_| 0);
                        self.persists[k].clear();
                    }
                }
                String::new()
            }
            Fault::Partition(groups) => {
                let mut seen = vec![false; n];
                let mut resolved: Vec<Vec<NodeIdx>> = Vec::new();
                for g in groups {
                    let mut nodes = Vec::new();
                    for t in g {
                        for k in self.resolve(t) {
                            if !seen[k] {
                                seen[k] = true;
                                nodes.push(k);
                            }
                        }
                    }
                    resolved.push(nodes);
                }
                let rest: Vec<NodeIdx> = (0..n).filter(|k| !seen[*k]).collect();
                if !rest.is_empty() {
                    resolved.push(rest);
                }
                self.net.partition(&resolved);
                format!(" {resolved:?}")
            }
            Fault::Isolate(t) => {
                let ks = self.resolve(t);
                let rest: Vec<NodeIdx> = (0..n).filter(|k| !ks.contains(k)).collect();
                self.net.partition(&[ks.clone(), rest]);
                names(&ks)
            }
            Fault::OneWay { from, to } => {
                let (a, b) = (self.resolve(from), self.resolve(to));
                for &x in &a {
                    for &y in &b {
                        self.net.set_link(x, y, false);
                    }
                }
                format!("{} -> {}", names(&a), names(&b))
            }
            Fault::Ring => {
                self.net.set_matrix(&link_matrix(n, |i, j| ring_link(n, i, j)));
                String::new()
            }
            Fault::Bridge => {
                self.net.set_matrix(&link_matrix(n, |i, j| bridge_link(n, i, j)));
                format!(" (bridge n{})", bridge_node(n))
            }
            Fault::Heal => {
                self.net.heal();
                self.mix.loss = 0.0;
                self.mix.delay_max_us = self.mix.delay_min_us.max(400);
                String::new()
            }
            Fault::Loss(r) => {
                self.mix.loss = *r;
                String::new()
            }
            Fault::Delay(d) => {
                self.mix.delay_max_us = (d.0 * 1000).max(self.mix.delay_min_us);
                String::new()
            }
            Fault::Bitflip { target, .. } | Fault::Truncate { target, .. } => {
                let ks = self.resolve(target);
                let mut notes = Vec::new();
                for &k in &ks {
                    let sealed = match self.tlogs_at_rest(k) {
                        Ok(files) => files,
                        Err(note) => {
                            notes.push(note);
                            continue;
                        }
                    };
                    if sealed.len() < 2 {
                        notes.push(format!("n{k} has no sealed TLog file"));
                        continue;
                    }
                    let f = sealed[self.rng.gen_range(0..sealed.len() - 1)].clone();
                    let len = self.nodes[k].disk.contents(&f).map_or(0, |c| c.len());
                    if len == 0 {
                        continue;
                    }
                    if matches!(fault, Fault::Bitflip { .. }) {
                        let at = self.rng.gen_range(0..len);
                        let bit = self.rng.gen_range(0..8);
                        self.nodes[k].disk.flip_bit(&f, at, bit);
                        notes.push(format!("n{k}:{f}@{at} bit {bit}"));
                    } else {
                        let at = self.rng.gen_range(0..len);
                        self.nodes[k].disk.cut(&f, at);
                        notes.push(format!("n{k}:{f} cut at {at}"));
                    }
                }
                format!(" [{}]", notes.join("; "))
            }
            Fault::TornTail(t) => {
                let ks = self.resolve(t);
                let mut notes = Vec::new();
                for &k in &ks {
                    let sealed = match self.tlogs_at_rest(k) {
                        Ok(files) => files,
                        Err(note) => {
                            notes.push(note);
                            continue;
                        }
                    };
                    if let Some(last) = sealed.last() {
                        let mut bytes = self.nodes[k].disk.contents(last).unwrap_or_default();
                        bytes.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0]);
                        self.nodes[k].disk.put(last, &bytes);
                        notes.push(format!("n{k}:{last}"));
                    }
                }
                format!(" [{}]", notes.join("; "))
            }
            Fault::DeleteTlog(t) => {
                let ks = self.resolve(t);
                let mut notes = Vec::new();
                for &k in &ks {
                    let sealed = match self.tlogs_at_rest(k) {
                        Ok(files) => files,
                        Err(note) => {
                            notes.push(note);
                            continue;
                        }
                    };
                    if sealed.len() > 1 {
                        let f = sealed[self.rng.gen_range(0..sealed.len() - 1)].clone();
                        let disk = &self.nodes[k].disk;
                        let _ = disk.remove(&f);
                        let _ = disk.sync_dir();
                        notes.push(format!("n{k}:{f}"));
                    }
                }
                format!(" [{}]", notes.join("; "))
            }
            Fault::ClockOffset { target, ms } => {
                let ks = self.resolve(target);
                for &k in &ks {
                    let now = self.now_us;
                    let clock = &mut self.nodes[k].clock;
                    let before = clock.now_ms(now);
                    clock.offset_us = ms * 1000;
                    let after = clock.now_ms(now);
                    if after < before {
                        clock.offset_us += ((before - after) * 1000) as i64;
                    }
                }
                names(&ks)
            }
            Fault::ClockDrift { target, ppm } => {
                let ks = self.resolve(target);
                for &k in &ks {
                    let now = self.now_us;
                    self.nodes[k].clock.set_drift(now, *ppm);
                }
                names(&ks)
            }
            Fault::DropMaster => match self.lease_holder() {
                Some(m) => {
                    self.feed(m, Input::DropMaster { id: ClientReqId(u64::MAX) });
                    format!(" (n{m})")
                }
                None => " (no master)".into(),
            },
            Fault::DiskFull { target, duration } => {
                let ks = self.resolve(target);
                for &k in &ks {
                    self.nodes[k].fill_disk(true);
                    if let Some(d) = duration {
                        self.agenda.push(self.now_us + d.0 * 1000, Event::DiskFreed { node: k });
                    }
                }
                names(&ks)
            }
            // Refused when a drill is read for this tier; only a drill read for no tier gets
            // here, and the log says that nothing happened.
            Fault::Collapse { .. } => " (not applied: the simulator keeps no head)".into(),
        }
    }
}

/// Whether `i` and `j` talk in a `ring` of `n` nodes: each reaches only its two neighbours.
/// The same shape on every tier.
pub fn ring_link(n: usize, i: usize, j: usize) -> bool {
    let d = (i + n - j) % n;
    d.min(n - d) <= 1
}

/// The node a `bridge` of `n` nodes leaves in both halves: the middle one.
pub fn bridge_node(n: usize) -> usize {
    n / 2
}

/// Whether `i` and `j` talk in a `bridge` of `n` nodes: the nodes below the bridge node and
/// those above it reach each other only through it. The same shape on every tier.
pub fn bridge_link(n: usize, i: usize, j: usize) -> bool {
    let b = bridge_node(n);
    let below = |k: usize| k < b;
    i == b || j == b || below(i) == below(j)
}

/// The `n` by `n` matrix of which node pairs talk (`[from][to]`).
pub fn link_matrix(n: usize, link: impl Fn(usize, usize) -> bool) -> Vec<Vec<bool>> {
    (0..n).map(|i| (0..n).map(|j| link(i, j)).collect()).collect()
}
