//! One tier-B run: build the turmoil simulation, run the cluster, the clients and the fault
//! schedule, heal, settle, and check what the clients saw.

use super::admin::{operator, CollapseRequest, CollapseTally};
use super::cluster::{builder, Cluster, ClusterSpec, RepairTally};
use super::nemesis::{schedule, Fault, FaultKind, FaultSet};
use super::workload::{run_client, ClientTally, Workload};
use super::TierBError;
use arakoon_chaos::history::{str_value, Linearizability, Recorder, Space, Violated};
use arakoon_checker::import::RawCall;
use arakoon_checker::{Outcome, Value};
use arakoon_node::client::ClientConfig;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The entries of a TLog file when collapses are among the faults (Arakoon's default is
/// 50,000, more than a run writes): small enough that a run seals many files, so that a
/// collapse finds some to fold and a node that lags behind finds its slots collapsed away.
const COLLAPSE_TLOG_ENTRIES: &str = "20";

/// The shape of a run; everything random in it comes from the seed.
#[derive(Debug, Clone)]
pub struct TierBConfig {
    pub nodes: usize,
    pub clients: usize,
    pub keys: usize,
    pub lease_ms: u64,
    /// Virtual time of the random workload; faults strike within it.
    pub workload_ms: u64,
    /// Virtual time after the heal before the final reads.
    pub settle_ms: u64,
    /// How long the final reads may take, virtual.
    pub final_reads_ms: u64,
    /// No fault before this (a master is elected meanwhile).
    pub quiet_start_ms: u64,
    pub faults: FaultSet,
    /// The largest delay of a link outside latency faults.
    pub latency_max_ms: u64,
    pub think_max_ms: u64,
    /// The checker's budget.
    pub check_time_limit: Duration,
    /// Plants a stale read in the history before the check, to show that the check is not
    /// vacuous: the run must then be reported as a violation.
    pub plant_stale_read: bool,
    /// The faults to apply instead of those drawn from the seed (a scripted run); the
    /// workload and the network still come from the seed.
    pub schedule: Option<Vec<Fault>>,
}

impl TierBConfig {
    pub fn new(nodes: usize) -> TierBConfig {
        TierBConfig {
            nodes,
            clients: 3,
            keys: 4,
            lease_ms: 1_000,
            workload_ms: 20_000,
            settle_ms: 5_000,
            final_reads_ms: 10_000,
            quiet_start_ms: 3_000,
            faults: FaultSet::DEFAULT,
            latency_max_ms: 5,
            think_max_ms: 20,
            check_time_limit: Duration::from_secs(20),
            plant_stale_read: false,
            schedule: None,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Linearizable, and every key was read at the end.
    Pass,
    /// The checker found no linearization (or refused the recorded history).
    Violation(Violated),
    /// Acknowledged writes were not readable: the healed cluster answered no read of `keys`
    /// within `within_ms`.
    Unread { keys: Vec<String>, within_ms: u64 },
    /// Two nodes' TLogs hold different values for a slot both hold as committed.
    LogsDisagree(String),
    /// The checker ran out of budget: what it says of each history.
    Unknown(String),
    /// The run itself failed: a node stopped with an error, the simulation broke, a home could
    /// not be made.
    Error(TierBError),
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Pass => write!(f, "pass"),
            Verdict::Violation(v) => write!(f, "VIOLATION: {v}"),
            Verdict::Unread { keys, within_ms } => write!(
                f,
                "VIOLATION: the healed cluster answered no read of {} within {within_ms} ms",
                keys.join(", ")
            ),
            Verdict::LogsDisagree(d) => write!(f, "VIOLATION: the nodes' TLogs disagree: {d}"),
            Verdict::Unknown(u) => write!(f, "unknown: {u}"),
            Verdict::Error(e) => write!(f, "ERROR: {e}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TierBReport {
    pub seed: u64,
    pub nodes: usize,
    pub verdict: Verdict,
    pub faults: Vec<Fault>,
    pub tally: ClientTally,
    /// Operations recorded.
    pub ops: usize,
    /// A digest of the recorded history (times, operations, outcomes, answers): equal digests,
    /// equal histories.
    pub history_digest: u64,
    /// The recorded history as JSON lines (single-key operations, then sequences and ranges),
    /// as `arakoon-admin check` reads it; byte for byte the same for the same seed.
    pub history: (String, String),
    pub virtual_ms: u64,
    pub wall: Duration,
    /// The stale read planted, if asked for and possible.
    pub planted: Option<String>,
    /// What the schedule's collapses did.
    pub collapses: CollapseTally,
    /// How many times a node put a peer's fetched head in place of its own (the first step of
    /// an adoption, counted on the nodes' disks).
    pub adoptions: u64,
    /// The slots that two nodes' TLogs or more hold as committed at the end (all agree), or
    /// where two disagree.
    pub logs_agree: Result<u64, String>,
    /// Each node's last committed slot in its TLog at the end.
    pub committed_ends: Vec<Option<u64>>,
    /// The nodes that stopped by themselves after a failed fsync or a power cut, and why.
    pub fsync_stops: Vec<(usize, String)>,
    /// What the operator did about damaged disks (torn tails, flipped bits).
    pub repairs: RepairTally,
    /// The nodes whose ballot record still says learner at the end: rebuilt from a peer, and
    /// never caught up by a master since (they do not vote).
    pub learners: Vec<usize>,
    /// The fault families the run drew from (its replay command names them).
    pub fault_set: FaultSet,
}

impl TierBReport {
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }

    /// Virtual seconds per real second.
    pub fn speed(&self) -> f64 {
        self.virtual_ms as f64 / 1000.0 / self.wall.as_secs_f64().max(1e-9)
    }

    /// The command that runs this seed again.
    pub fn replay_command(&self) -> String {
        let set = &self.fault_set;
        let flags: String = [
            (set.loss, "LOSS"),
            (set.collapses, "COLLAPSE"),
            (set.disk, "DISK"),
            (set.damage, "DAMAGE"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| format!("TIER_B_{name}=1 "))
        .collect();
        format!(
            "TIER_B_SEED={} TIER_B_NODES={} {flags}cargo test -p arakoon-sim --test tier_b replay -- --ignored --nocapture",
            self.seed, self.nodes
        )
    }

    pub fn summary(&self) -> String {
        let verdict = &self.verdict;
        format!(
            "tier B seed {} ({} nodes): {verdict}; {} ops ({} ok, {} fail, {} unknown), {} faults, \
             {} final reads; {} collapses asked ({} done, {} with nothing to do), {} heads \
             adopted; {} torn tails truncated, {} torn writes accepted, {} flipped TLogs \
             repaired ({} from a head); logs agree: {}; {:.1} virtual s in {:.2} s ({:.0}x); history digest \
             {:016x}",
            self.seed,
            self.nodes,
            self.ops,
            self.tally.ok,
            self.tally.fail,
            self.tally.unknown,
            self.faults.len(),
            self.tally.final_reads.len(),
            self.collapses.requested,
            self.collapses.collapsed,
            self.collapses.nothing,
            self.adoptions,
            self.repairs.tails_truncated,
            self.repairs.tears_accepted,
            self.repairs.flips_repaired,
            self.repairs.rebuilt_from_heads,
            match &self.logs_agree {
                Ok(n) => format!("{n} shared slots"),
                Err(e) => e.clone(),
            },
            self.virtual_ms as f64 / 1000.0,
            self.wall.as_secs_f64(),
            self.speed(),
            self.history_digest
        )
    }
}

/// Runs one seed. Prints nothing; see [`TierBReport::summary`].
pub fn run_tier_b(seed: u64, cfg: &TierBConfig) -> TierBReport {
    let started = Instant::now();
    let mut report = TierBReport {
        seed,
        nodes: cfg.nodes,
        verdict: Verdict::Pass,
        faults: Vec::new(),
        tally: ClientTally::default(),
        ops: 0,
        history_digest: 0,
        history: (String::new(), String::new()),
        virtual_ms: 0,
        wall: Duration::ZERO,
        planted: None,
        collapses: CollapseTally::default(),
        adoptions: 0,
        logs_agree: Ok(0),
        committed_ends: Vec::new(),
        fsync_stops: Vec::new(),
        repairs: RepairTally::default(),
        learners: Vec::new(),
        fault_set: cfg.faults,
    };
    let history = Rc::new(RefCell::new(Recorder::new(cfg.clients)));
    let tally = Rc::new(RefCell::new(ClientTally::default()));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        simulate(seed, cfg, &history, &tally, &mut report)
    }));
    let outcome = outcome.unwrap_or_else(|panic| Err(TierBError::from_panic(panic.as_ref())));
    report.tally = tally.borrow().clone();
    let mut history = std::mem::take(&mut *history.borrow_mut());
    report.ops = history.len();
    report.history = history.to_jsonl();
    report.history_digest = digest(&report.history);
    if cfg.plant_stale_read {
        report.planted = plant_stale_read(&mut history, &report.tally, report.virtual_ms);
    }
    report.verdict = match outcome {
        Err(e) => Verdict::Error(e),
        Ok(()) if report.logs_agree.is_err() => {
            Verdict::LogsDisagree(report.logs_agree.clone().err().unwrap_or_default())
        }
        Ok(()) if !report.tally.unread.is_empty() => {
            Verdict::Unread { keys: report.tally.unread.clone(), within_ms: cfg.final_reads_ms }
        }
        Ok(()) => match history.check(cfg.check_time_limit) {
            Linearizability::Linearizable => Verdict::Pass,
            Linearizability::Violated(v) => Verdict::Violation(v),
            Linearizability::Unknown(u) => Verdict::Unknown(u),
        },
    };
    report.wall = started.elapsed();
    report
}

/// Adds to `history` a read, after everything else, of a value that an acknowledged set wrote
/// before a final read saw a newer one. Values are unique, so no linearization explains it.
fn plant_stale_read(history: &mut Recorder, tally: &ClientTally, end_ms: u64) -> Option<String> {
    for (key, (last, final_call_us)) in &tally.final_reads {
        let stale = tally.acked_sets.iter().find(|(k, v, ret_us)| {
            k == key && ret_us < final_call_us && last.as_deref() != Some(v.as_str())
        });
        if let Some((_, value, _)) = stale {
            let at_us = end_ms * 1000 + 1;
            let call = RawCall {
                f: "get".into(),
                key: Some(str_value(key.as_bytes())),
                value: Value::Nil,
            };
            history.call(0, u64::MAX, at_us, Space::Kv, call);
            history.done(0, u64::MAX, at_us + 1, Outcome::Ok, Some(str_value(value.as_bytes())));
            return Some(format!("get({key}) -> {value} after the final read saw {last:?}"));
        }
    }
    None
}

fn digest((kv, multi): &(String, String)) -> u64 {
    // FNV-1a: stable across runs and platforms, unlike the std hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in kv.bytes().chain(multi.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn simulate(
    seed: u64,
    cfg: &TierBConfig,
    history: &Rc<RefCell<Recorder>>,
    tally: &Rc<RefCell<ClientTally>>,
    report: &mut TierBReport,
) -> Result<(), TierBError> {
    let heal_ms = cfg.workload_ms;
    let final_reads_ms = heal_ms + cfg.settle_ms;
    let final_reads_end_ms = final_reads_ms + cfg.final_reads_ms;
    let mut sim = builder(seed, cfg.latency_max_ms, final_reads_end_ms + 60_000).build();
    let faults = match &cfg.schedule {
        Some(faults) => faults.clone(),
        None => schedule(seed, cfg.nodes, cfg.faults, cfg.quiet_start_ms, heal_ms),
    };
    report.faults = faults.clone();
    let (instants, windows): (Vec<Fault>, Vec<Fault>) =
        faults.into_iter().partition(|f| f.kind.is_instant());
    // Only a run with collapses has the operator host and short TLog files: the others' hosts,
    // and so their seeds' runs, stay as they were.
    let overrides = if instants.is_empty() {
        Vec::new()
    } else {
        vec![("tlog_max_entries".to_string(), COLLAPSE_TLOG_ENTRIES.to_string())]
    };
    let spec = ClusterSpec {
        nodes: cfg.nodes,
        lease_ms: cfg.lease_ms,
        seed,
        latency_max_ms: cfg.latency_max_ms,
        overrides,
    };
    let cluster = Cluster::start(&mut sim, &spec)?;
    let mut client_config = ClientConfig::from_cluster(&cluster.config);
    client_config.connect_timeout = Duration::from_millis(1_000);
    client_config.request_timeout = Duration::from_millis(3_000);
    client_config.attempts = 10;
    for c in 0..cfg.clients {
        let w = Workload {
            client: c,
            clients: cfg.clients,
            keys: cfg.keys,
            seed,
            workload_end_ms: cfg.workload_ms,
            final_reads_ms,
            final_reads_end_ms,
            think_max_ms: cfg.think_max_ms,
        };
        let fut = run_client(w, client_config.clone(), history.clone(), tally.clone());
        sim.client(format!("client{c}"), fut);
    }

    let mut others: Vec<_> = (0..cfg.clients).map(|c| sim.lookup(format!("client{c}"))).collect();
    let collapse_tally = Rc::new(RefCell::new(CollapseTally::default()));
    let admin = (!instants.is_empty()).then(|| {
        let (tx, rx) = mpsc::unbounded_channel();
        let (config, tally) = (cluster.config.clone(), collapse_tally.clone());
        sim.client("operator", operator(config, rx, tally));
        others.push(sim.lookup("operator"));
        tx
    });
    let mut cluster = cluster;
    cluster.set_other_hosts(others);
    let mut nemesis = Nemesis {
        faults: windows,
        next: 0,
        active: None,
        instants,
        next_instant: 0,
        admin,
        cluster,
    };
    let result = loop {
        let elapsed_ms = sim.elapsed().as_millis() as u64;
        if let Err(e) = nemesis.cluster.reap(&mut sim) {
            break Err(TierBError::Stopped(e));
        }
        nemesis.act(&mut sim, elapsed_ms);
        let finished = sim.step().map_err(|e| TierBError::Stopped(e.to_string()));
        report.virtual_ms = sim.elapsed().as_millis() as u64;
        match finished {
            Ok(false) => {}
            Ok(true) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    report.collapses = collapse_tally.borrow().clone();
    report.adoptions = nemesis.cluster.heads_taken();
    report.logs_agree = nemesis.cluster.logs_agree();
    report.committed_ends = nemesis.cluster.committed_ends();
    report.fsync_stops = std::mem::take(&mut nemesis.cluster.falls);
    report.repairs = nemesis.cluster.take_repairs();
    let ballots = nemesis.cluster.ballots();
    report.learners =
        (0..ballots.len()).filter(|k| ballots[*k].is_some_and(|b| b.learner)).collect();
    result
}

/// Carries out the schedule between steps of the simulation.
struct Nemesis {
    /// The windows, one at a time.
    faults: Vec<Fault>,
    next: usize,
    active: Option<Fault>,
    /// The collapses, handed to the operator host as they fall due, windows or not.
    instants: Vec<Fault>,
    next_instant: usize,
    /// The operator's requests; dropped once every collapse was handed over, so that it ends.
    admin: Option<mpsc::UnboundedSender<CollapseRequest>>,
    cluster: Cluster,
}

impl Nemesis {
    fn act(&mut self, sim: &mut turmoil::Sim<'_>, now_ms: u64) {
        while let Some(f) = self.instants.get(self.next_instant) {
            if now_ms < f.start_ms {
                break;
            }
            if let (FaultKind::Collapse { node, keep }, Some(admin)) = (&f.kind, &self.admin) {
                // The operator runs until this sender goes: it is there to hear.
                let _ = admin.send((*node, *keep));
            }
            self.next_instant += 1;
        }
        if self.next_instant == self.instants.len() {
            self.admin = None;
        }
        self.windows(sim, now_ms);
    }

    fn windows(&mut self, sim: &mut turmoil::Sim<'_>, now_ms: u64) {
        if let Some(f) = self.active.take() {
            if now_ms < f.end_ms {
                self.active = Some(f);
                return;
            }
            self.end(sim, &f);
        }
        if let Some(f) = self.faults.get(self.next).cloned() {
            if now_ms >= f.start_ms {
                self.next += 1;
                self.start(sim, &f);
                self.active = Some(f);
            }
        }
    }

    fn start(&mut self, sim: &mut turmoil::Sim<'_>, f: &Fault) {
        let c = &mut self.cluster;
        match &f.kind {
            FaultKind::Partition { minority } => {
                c.set_links(sim, |a, b| minority.contains(&a) == minority.contains(&b));
            }
            FaultKind::Crash { node } => c.crash(sim, *node),
            FaultKind::Latency { max_ms } => c.set_latency_max(sim, *max_ms),
            FaultKind::Loss { a, b, percent } => {
                let (a, b) = (c.ips[*a], c.ips[*b]);
                sim.set_link_fail_rate(a, b, f64::from(*percent) / 100.0);
            }
            // Instants are not windows: `act` hands them to the operator.
            FaultKind::Collapse { .. } => {}
            FaultKind::FsyncFails { node, .. } => c.fail_next_fsync(*node),
            FaultKind::PowerLoss => (0..c.nodes()).for_each(|k| c.crash(sim, k)),
            FaultKind::TornTail { node, keep_permille } => c.tear_tail(*node, *keep_permille),
            FaultKind::Bitflip { node, pick } => c.flip_at_rest(*node, *pick),
        }
    }

    fn end(&mut self, sim: &mut turmoil::Sim<'_>, f: &Fault) {
        let c = &mut self.cluster;
        match &f.kind {
            FaultKind::Partition { .. } | FaultKind::Latency { .. } => c.heal(sim),
            FaultKind::Crash { node } => c.restart(sim, *node),
            FaultKind::Loss { a, b, .. } => {
                let (a, b) = (c.ips[*a], c.ips[*b]);
                sim.set_link_fail_rate(a, b, 0.0);
                sim.repair(a, b);
            }
            FaultKind::Collapse { .. } => {}
            FaultKind::FsyncFails { node, power_loss } => {
                c.end_fsync_fault(sim, *node, *power_loss)
            }
            FaultKind::PowerLoss => (0..c.nodes()).for_each(|k| c.restart(sim, k)),
            FaultKind::TornTail { node, .. } | FaultKind::Bitflip { node, .. } => {
                c.end_damage(sim, *node)
            }
        }
    }
}
