//! One run: a seed, a cluster, clients, faults, and the checks at the end.

use super::aimed::{Aimed, AimedState};
use super::catchup::Fetch;
use super::checks::{self, Violation};
use super::clock::SimClock;
use super::faults::FaultMix;
use super::keyed::{Draw, KeyedDraws};
use super::net::{NetFaults, SimNet};
use super::node::{Effect, Effects, SimNode, StartRefused};
use super::persister::PersistQueue;
use super::queue::Agenda;
use super::rules::CrashPoint;
use super::script::ScriptState;
use super::workload::{self, MultiWeights, OpKind};
use arakoon_chaos::drill::KeyDistribution;
use arakoon_chaos::history::{Linearizability, Recorder};
use arakoon_node::config::{ClusterConfig, ConfigError};
use arakoon_node::consensus::{ClockBound, Config, Input, Msg, NodeIdx};
use arakoon_node::head::Pins;
use arakoon_node::protocol::client::{Payload, Reply};
use arakoon_node::rc::Rc;
use arakoon_node::server::startup::StartError;
use arakoon_node::shell::{ShellConfig, ShellError};
use arakoon_node::tlog::Trip;
use arakoon_node::value::Value;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub nodes: usize,
    pub clients: usize,
    pub duration_ms: u64,
    pub lease_ms: u64,
    /// Keys of single-key operations (`k0`..): checked per key.
    pub keys: usize,
    /// Keys of the multi-key operations (`a0`..): checked as one map ([`super::workload`]).
    pub multi_keys: usize,
    /// Relative weights of get, set, delete, test_and_set, a multi-key update ("sequence"),
    /// a multi-key read ("range").
    pub op_weights: [u32; 6],
    /// How the multi-key updates and reads split among their kinds.
    pub multi_weights: MultiWeights,
    /// A client's pause between an answer and its next call, µs (drawn uniformly). The default,
    /// 10-100 ms, is a Jepsen-like pace (about 90 calls a second from five clients); 0-5 ms is
    /// a heavy load (about 1,000 a second). `benches/hunt.rs` measured the planted bugs found
    /// sooner per CPU second at the default pace (13 s for all eight against 30 s), though
    /// after more seeds.
    pub think_us: (u64, u64),
    pub op_timeout_ms: u64,
    /// `None`: swarm mode, drawn from the seed.
    pub faults: Option<FaultMix>,
    /// Keep the text trace (for `--trace`); the trace hash is always computed.
    pub keep_trace: bool,
    /// Keep the clients' histories as JSON lines in the report (for `--history`).
    pub keep_history: bool,
    /// A drill's steps; when there are any, they replace the random nemesis.
    pub script: Vec<arakoon_chaos::drill::Step>,
    /// Time for the linearizability check of one run; past it the verdict is "unknown".
    pub check_time_limit_ms: u64,
    /// How single-key operations pick their key.
    pub key_distribution: KeyDistribution,
    /// `[global]` settings the nodes run with (a drill's `config:`): those of the consensus
    /// and the TLog ([`arakoon_chaos::drill::SIM_CONFIG_KEYS`]); checked as a node checks its
    /// file. The TLog's files are otherwise small (64 entries) so that rollover happens often.
    pub overrides: Vec<(String, String)>,
    /// Swarm mode only (no fixed fault mix, no script): each seed draws its deployment's shape
    /// from its own RNG instead of running `nodes`: 1 to 5 nodes and, sometimes, a `quorum`
    /// override at or above the majority (an override below it gives up safety by design, so
    /// it is never drawn). See [`Shape`].
    pub draw_shape: bool,
    /// What a shrunk run leaves out ([`crate::shrink`]); nothing by default.
    pub reduce: Reduction,
}

/// A run reduced by shrinking: fewer faults, fewer operations, no liveness check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reduction {
    /// The nemesis' strikes (numbered from 0 in the order drawn) that are drawn but not applied.
    pub skip_faults: BTreeSet<u32>,
    /// Each client calls at most this many operations during the run (after it, while the
    /// liveness check waits for a write, clients call freely).
    pub ops_max: Option<u64>,
    /// Calls (client, operation number) that are drawn but not made: the client thinks and
    /// draws its next one.
    pub skip_calls: BTreeSet<(usize, u64)>,
    /// No liveness check after the heal (clients stop at the run's end).
    pub no_liveness: bool,
    /// After the run's end only client 0 calls, and each of its calls is a write (a `set` of
    /// `k0`), one a lease apart: the liveness check's probe, instead of every client's
    /// workload at the default pace. A shrunk liveness failure then lists a handful of probes
    /// rather than a hundred calls made while the cluster stayed unavailable.
    pub probe: bool,
    /// Clients make their first call at this time (ms) instead of 2 s into the run: the
    /// calls before it are not made at all.
    pub calls_from_ms: Option<u64>,
    /// The nodes' TLog files hold at most this many entries instead of the world's 64
    /// (`tlog_max_entries`): a bug that needs a rollover, a sealed file or a collapse then
    /// needs fewer writes before it.
    pub tlog_entries: Option<u64>,
    /// Calls (client, operation number) that are drawn but not made, the client waiting until
    /// the given time (µs) as if answered then: when the call returned in the run it was taken
    /// from. Unlike [`Reduction::skip_calls`], the client's later calls keep their times, and
    /// it draws what the call would have (its request's delay), so that they keep what they
    /// drew too (unless the answer made it draw another node to ask).
    pub hold_calls: BTreeMap<(usize, u64), Held>,
}

/// How a call ended, as far as its client goes on from it: a call a reduction holds
/// (`Reduction::hold_calls`) ends the same way without being made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Held {
    /// When it returned (µs), or when it would have timed out if it had not by the end.
    pub until_us: u64,
    /// Which node the client asks next.
    pub redirect: Redirect,
    /// When a node answered it (µs), if one did. Shown in the spec; the answer's delay is a
    /// keyed draw (world/keyed.rs), so a held call need not draw it to keep the others' draws.
    pub answered_us: Option<u64>,
}

/// Which node a client asks after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Redirect {
    /// The same one.
    Stay,
    /// This one (the answer named the master, or the node refused and the client tries the
    /// next).
    To(usize),
    /// One drawn from the client's stream (the call timed out, or the answer named no node).
    Drawn,
}

/// A deployment's shape: its size and its quorum override, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub nodes: usize,
    pub quorum: Option<usize>,
}

impl Shape {
    /// The largest cluster drawn: Arakoon's deployments run 1 to 5 nodes.
    pub const MAX_NODES: usize = 5;

    /// Draws a shape: sizes 1 to 5 equally often (even sizes are where a quorum's rounding
    /// shows), and for one seed in four a quorum override between the majority and the size.
    pub fn draw(rng: &mut ChaCha8Rng) -> Shape {
        let nodes = rng.gen_range(1..=Shape::MAX_NODES);
        let majority = nodes / 2 + 1;
        let quorum =
            (majority < nodes && rng.gen_bool(0.25)).then(|| rng.gen_range(majority..=nodes));
        Shape { nodes, quorum }
    }

    /// "4 nodes", "3 nodes, quorum 3": how reports name it.
    pub fn describe(&self) -> String {
        match self.quorum {
            Some(q) => format!("{} nodes, quorum {q}", self.nodes),
            None => format!("{} nodes", self.nodes),
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 3,
            clients: 5,
            duration_ms: 60_000,
            lease_ms: 1_000,
            keys: 8,
            multi_keys: 6,
            op_weights: [3, 4, 1, 2, 1, 1],
            multi_weights: MultiWeights::default(),
            think_us: DEFAULT_THINK_US,
            op_timeout_ms: 2_000,
            faults: None,
            keep_trace: false,
            keep_history: false,
            script: Vec::new(),
            check_time_limit_ms: 30_000,
            key_distribution: KeyDistribution::Uniform,
            overrides: Vec::new(),
            draw_shape: false,
            reduce: Reduction::default(),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Violation(Violation),
}

/// What a run did and found.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub seed: u64,
    pub outcome: Outcome,
    pub faults: String,
    pub simulated_ms: u64,
    /// Lines of the trace (kept or not): what the run did that a trace shows.
    pub events: u64,
    /// Events the world's agenda handled (deliveries, ticks, clients' steps, faults): the
    /// simulator's own work.
    pub agenda_events: u64,
    pub ops_ok: u64,
    pub ops_failed: u64,
    pub ops_unknown: u64,
    pub committed_slots: u64,
    pub trace_hash: u64,
    pub trace: Vec<String>,
    /// Operations in the clients' histories.
    pub history_ops: usize,
    /// "linearizable", or why there is no verdict.
    pub linearizability: String,
    /// The single-key and the sequence history as JSON lines, when asked for.
    pub histories: Option<(String, String)>,
    /// What a drill's steps did, with the time (ms).
    pub fault_log: Vec<(u64, String)>,
    /// The random nemesis' strikes: time (ms), number, what and where (skipped ones left out).
    pub strikes: Vec<(u64, u32, String)>,
    /// The calls made during the run, those a reduction may leave out: (client, operation
    /// number). The calls after it, while the liveness check waits for a write, are not listed.
    pub calls: Vec<(usize, u64)>,
    /// How each of those calls ended (when, and which node the client asked next): what a
    /// reduction holding it (`Reduction::hold_calls`) does instead. A call not answered by the
    /// end would time out.
    pub returns: BTreeMap<(usize, u64), Held>,
    /// Role changes: time (ms), node, role ("master", "slave", "candidate", "catching_up",
    /// "down", "paused").
    pub roles: Vec<(u64, usize, String)>,
    /// Every client operation: process, call and return (ms), label, outcome.
    pub ops: Vec<arakoon_chaos::history::OpSummary>,
    /// For a drill: how long after its last step a node held a valid lease (ms).
    pub master_after_script_ms: Option<u64>,
    /// The deployment's shape the run had ("4 nodes", "3 nodes, quorum 3"): drawn or fixed.
    pub shape: String,
    /// Without a drill: how long after the last fault healed the first write was acknowledged
    /// (ms); `None` if none was within the liveness bound.
    pub write_after_heal_ms: Option<u64>,
    /// The seed drew clock faults beyond the bound the configuration promises: what they were
    /// and the bound (see [`FaultMix::beyond_bound`]).
    pub beyond_bound: Option<String>,
    /// How often each named check kept where its rule is kept (`super::rules`), and each crash
    /// point, was exercised.
    pub exercised: BTreeMap<String, u64>,
    /// In such a seed, the clock-dependent check that broke (the lease, linearizability): what
    /// the clocks broke, expected beyond the bound, so not a failure of the run.
    pub broke_beyond_bound: Option<Violation>,
}

/// A request's or a reply's trip between a client and a node (µs). A held call
/// (`Reduction::hold_calls`) draws from this range where the call it stands for drew, so that
/// the later draws stay as they were.
const CLIENT_HOP_US: std::ops::Range<u64> = 100..1_000;

#[derive(Debug)]
pub(super) enum Event {
    Deliver {
        to: NodeIdx,
        epoch: u64,
        from: NodeIdx,
        msg: Msg,
    },
    Tick {
        node: NodeIdx,
        epoch: u64,
    },
    /// The node's persister wakes up and takes the jobs waiting as one group.
    PersistStart {
        node: NodeIdx,
        epoch: u64,
    },
    /// The disk completes the group being written.
    PersistDone {
        node: NodeIdx,
        epoch: u64,
    },
    /// The next step of a node's catch-up stream ([`super::catchup`]).
    CatchUpStep {
        node: NodeIdx,
        epoch: u64,
        /// The shell's number for this catch-up.
        job: u64,
    },
    ClientRequest {
        node: NodeIdx,
        client: usize,
        op: u64,
    },
    ClientReply {
        client: usize,
        op: u64,
        result: OpResult,
    },
    ClientNext {
        client: usize,
    },
    /// A client's armed timeout (one at most a client, [`Client::timeout_at_us`]): it ends
    /// the pending call if that call's deadline is now, and is armed again for a later one.
    ClientTimeout {
        client: usize,
    },
    Nemesis,
    /// A drill's collapse with a duration: each of `nodes` is collapsed again, until then.
    Collapse {
        nodes: Vec<NodeIdx>,
        keep: u64,
        until_us: u64,
    },
    /// Space is freed on a full disk; the node is started again if it stopped.
    DiskFreed {
        node: NodeIdx,
    },
    Restart {
        node: NodeIdx,
    },
    Resume {
        node: NodeIdx,
    },
    /// The next step of a drill's script.
    Script,
    /// The next aimed strike (`super::aimed`).
    Aimed,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum OpResult {
    Ok(Payload),
    Fail(Rc, String),
    Unknown,
    /// The node's process is not running: the connection is refused at once and the request
    /// never reached a node (a client then tries the next node of its configuration).
    Refused(NodeIdx),
}

#[derive(Debug, Clone)]
struct PendingOp {
    op: u64,
    kind: OpKind,
    key: Vec<u8>,
    /// When the client gives up on it (true µs).
    deadline_us: u64,
}

pub(super) struct Client {
    target: NodeIdx,
    pending: Option<PendingOp>,
    /// The client's own random stream: what it calls, on which key, how long it pauses, and
    /// where it sends a request. Apart from the world's, so that a call left out by shrinking
    /// does not redraw every other client's calls (nor this client's later ones): shrinking
    /// by calls then converges instead of reshuffling the workload at each try.
    pub(super) rng: ChaCha8Rng,
    /// When its one armed timeout event fires, if any. A call does not push a timeout of its
    /// own: most calls are answered long before, and thousands of stale timeouts in the agenda
    /// (at a heavy load, a call a millisecond and a 2 s timeout) made every push and pop of
    /// every event dearer. The one event fires at the earliest deadline armed, and re-arms for
    /// the pending call's: each call still times out at its own deadline.
    timeout_at_us: Option<u64>,
    /// When its next call is due (the one `ClientNext` event that counts): an event for
    /// another instant is stale, left by a call brought forward (the liveness probe's).
    next_at_us: Option<u64>,
    next_op: u64,
    /// How this client's calls of the run ended, in call order (ops increase): the report's
    /// `returns`, gathered at the end. Kept per client and looked up from the back, where the
    /// call answered almost always is, instead of in one map of every call of the run.
    returns: Vec<(u64, Held)>,
    /// The value this client last saw for each key: what its test_and_set expects.
    seen: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Client {
    /// How call `op` of the run is ending, if it is one of the run's calls.
    fn held_mut(&mut self, op: u64) -> Option<&mut Held> {
        held_in(&mut self.returns, op)
    }
}

/// Call `op`'s entry in `returns` (in call order), searched from the newest call: a reply
/// almost always answers the call just made, a late one an earlier call.
fn held_in(returns: &mut [(u64, Held)], op: u64) -> Option<&mut Held> {
    let at = returns.iter().rposition(|(o, _)| *o <= op)?;
    let (o, held) = &mut returns[at];
    (*o == op).then_some(held)
}

pub(super) struct World {
    pub(super) cfg: SimConfig,
    /// The nodes' configuration: defaults, the simulator's small TLog files, the overrides.
    pub(super) cluster: ClusterConfig,
    pub(super) mix: FaultMix,
    pub(super) rng: ChaCha8Rng,
    pub(super) now_us: u64,
    pub(super) agenda: Agenda<Event>,
    /// The first value any node applied at each slot, shared by the nodes' `applied` maps
    /// wherever theirs is equal (the checks compare values, never pointers).
    pub(super) slot_values: BTreeMap<u64, Arc<Value>>,
    /// How often each rule check ran ([`World::exercised`]), by name, in the order first run:
    /// counted here (a few names, scanned) and added into `report.exercised` at the run's end,
    /// as some checks run at every event.
    pub(super) exercised_counts: Vec<(&'static str, u64)>,
    pub(super) net: SimNet,
    pub(super) nodes: Vec<SimNode>,
    /// Each node's persister: the jobs waiting and the group being written.
    pub(super) persists: Vec<PersistQueue>,
    pub(super) clients: Vec<Client>,
    pub(super) acknowledged: BTreeSet<Vec<u8>>,
    pub(super) history: Recorder,
    pub(super) report: RunReport,
    pub(super) script: ScriptState,
    /// Per node: persist jobs written while the process was paused, not yet reported to it.
    pub(super) unnotified: Vec<Vec<(u64, u64)>>,
    /// Per node: messages that reached it while its process was paused, in the order they
    /// arrived (with the incarnation they were sent to), read when it resumes. They used to
    /// wait in the agenda, each tried again every millisecond: a pause of two seconds under a
    /// heavy load cost millions of events for nothing.
    held: Vec<Vec<(u64, NodeIdx, Msg)>>,
    /// Each node's role at its last change (for the drill report's node lanes).
    last_role: Vec<&'static str>,
    pub(super) violation: Option<Violation>,
    pub(super) liveness: super::liveness::Liveness,
    /// How many strikes the nemesis drew so far.
    strikes_drawn: u32,
    /// The nemesis' own stream: when it strikes next, which fault, on which node. Apart from
    /// the world's, so that a run with fewer calls (shrinking) has the same strikes.
    nemesis_rng: ChaCha8Rng,
    /// Whether a catch-up's chunk waits for a busy persister (world/catchup.rs): a stream of its
    /// own, so that a draw made or not made there moves none of the world's other draws.
    pub(super) chunk_rng: ChaCha8Rng,
    /// The draws keyed by what they are for and when (messages, disks, replies): a call
    /// left out moves none of the others' (world/keyed.rs).
    pub(super) keyed: KeyedDraws,
    /// The clock error the nodes' configuration promises to survive (the lease margin).
    pub(super) clock_bound: ClockBound,
    /// Per node, the last lease it held as master, in true time (see [`LeaseSpan`]).
    lease_spans: Vec<Option<LeaseSpan>>,
    /// The nodes holding a valid lease at the last check (a buffer kept between checks).
    lease_holders: Vec<NodeIdx>,
    /// Per node, the crash point the nemesis armed on it, if any (`super::rules`).
    pub(super) armed: Vec<Option<CrashPoint>>,
    /// Per node, the catch-up readers' pins on its TLog files, as its process holds them (a
    /// new set at each start): its collapse keeps what they pin ([`super::catchup`]).
    pub(super) pins: Vec<Arc<Pins>>,
    /// Per node, its catch-up stream in progress ([`super::catchup`]).
    pub(super) fetches: Vec<Option<Fetch>>,
    /// The aimed faults' generator and the strike under way.
    pub(super) aimed: AimedState,
    /// Per node, the last ballot it promised or accepted for another node, and that node, as
    /// its Promise and Accepted messages say (the check [`super::rules::HOLD_ANSWERED`]).
    pub(super) promised_to: Vec<Option<(u64, NodeIdx)>>,
    /// A Held the node being fed owes: (slave, master, n, t).
    pub(super) hold_due: Option<(NodeIdx, NodeIdx, u64, u64)>,
}

/// A master's lease in the world's true time: from the first instant it was valid to the
/// instant its clock reaches the lease's end (or it stopped being master, or crashed).
#[derive(Debug, Clone, Copy)]
struct LeaseSpan {
    from_us: u64,
    until_us: u64,
    /// Still valid at the last check: `until_us` is where its clock will end it.
    ongoing: bool,
    /// The lease's end on the node's clock, and that clock, when `until_us` was placed: while
    /// neither changes and `until_us` is still ahead, placing it again gives the same instant
    /// (the first instant from an earlier time on that reads the end, and no instant between
    /// then and now read it), so the check runs at every event without solving for it again.
    placed: (u64, SimClock),
}

/// The name under which the report counts a node stopped by a failed fsync.
pub const FSYNC_FAILED_NODE_STOPPED: &str = "fsync failed: node stopped";
/// The name under which the report counts a failed fsync followed by a power loss.
pub const FSYNC_FAILED_THEN_POWER_LOSS: &str = "fsync failed: then a power loss";

/// The name under which the report counts a disk damage the world spared because another
/// stopped node's damaged log may cost its vote already.
pub const VOTE_GUARD_DAMAGED: &str = "vote guard: a damaged log costs its vote";

/// The name under which the report counts a message that reached a paused process and waited
/// for it to resume.
pub const HELD_WHILE_PAUSED: &str = "paused: a message waits for the resume";

/// Checks whose verdict depends on the clocks keeping their bound: beyond it, they may break
/// without a bug in the node.
const CLOCK_CHECKS: [&str; 2] = ["at most one valid lease", "linearizable"];

const TICK_MS: u64 = 10;

/// The seed of stream `stream` of the family `salt` names in run `seed`: streams apart from the
/// world's, so that what one draws does not move another's draws.
fn derived_seed(seed: u64, salt: u64, stream: u64) -> u64 {
    (seed ^ salt).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ stream
}

/// The seed of client `c`'s own stream in run `seed`.
fn client_seed(seed: u64, c: usize) -> u64 {
    derived_seed(seed, 0xc11e_4757_0000_0000, c as u64 + 1)
}

/// The stream of run `seed` from which the liveness check draws the nodes it holds down.
pub(super) const LIVENESS_STREAM: u64 = u64::MAX;

/// The stream of [`World::chunk_rng`].
const CHUNK_STREAM: u64 = 1 << 40;

/// The seed of one of run `seed`'s streams apart from the world's and the clients': 0 the
/// nemesis' schedule (when it strikes, which fault, on which node), `1 + n` what strike `n`
/// draws (the nemesis' or an aimed one), [`CHUNK_STREAM`] whether a catch-up's chunk waits for
/// a busy persister, [`LIVENESS_STREAM`] the nodes the liveness check holds down.
pub(super) fn stream_seed(seed: u64, stream: u64) -> u64 {
    derived_seed(seed, 0x4e3e_5150_0000_0000, stream)
}

/// A client's pause between calls unless told otherwise: 10 to 100 ms (µs).
pub(super) const DEFAULT_THINK_US: (u64, u64) = (10_000, 100_000);

thread_local! {
    /// The text trace of the run in progress (kept only with `keep_trace`): outside the world,
    /// so that a run ended by an assertion still leaves its trace.
    static TRACE_SO_FAR: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

pub(super) const CLUSTER_ID: &str = "sim";

fn names(n: usize) -> Vec<String> {
    (0..n).map(|k| format!("n{k}")).collect()
}

impl World {
    pub(super) fn trace(&mut self, line: impl FnOnce() -> String, tag: u64) {
        // FNV-1a over (time, tag): cheap enough to run always, so every run has a hash.
        let mut h = self.report.trace_hash;
        for b in self.now_us.to_le_bytes().into_iter().chain(tag.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.report.trace_hash = h;
        self.report.events += 1;
        if self.cfg.keep_trace {
            let l = format!("{:>12}µs {}", self.now_us, line());
            TRACE_SO_FAR.with(|t| t.borrow_mut().push(l));
        }
    }

    pub(super) fn node_now_ms(&self, k: NodeIdx) -> u64 {
        self.nodes[k].clock.now_ms(self.now_us)
    }

    fn consensus_config(&self, k: NodeIdx) -> Config {
        self.cluster.consensus(k)
    }

    fn net_faults(&self) -> NetFaults {
        NetFaults {
            loss: self.mix.loss,
            duplicate: self.mix.duplicate,
            delay_min_us: self.mix.delay_min_us,
            delay_max_us: self.mix.delay_max_us,
        }
    }

    pub(super) fn start_node(&mut self, k: NodeIdx) {
        let now = self.node_now_ms(k);
        let seed = self.keyed.rng(self.now_us, Draw::NodeStart, k as u64).gen();
        let cfg = self.consensus_config(k);
        let shell = ShellConfig::new(&self.cluster, k);
        let tlog = self.cluster.tlog();
        match self.nodes[k].start(cfg.clone(), shell.clone(), tlog, CLUSTER_ID, now, seed) {
            Ok(repair) => {
                if let Some(r) = repair {
                    self.trace(|| format!("n{k} repair: {r}"), 1);
                }
            }
            Err(e) => {
                // Only damage at rest may make a node refuse its own files: what it wrote
                // through crashes, torn writes, failed fsyncs and cut power (in a rollover, a
                // ballot record's replacement, a collapse) must start again. A refusal of files
                // nothing damaged is a durability bug (a collapse that removed files its head
                // did not yet cover, say), whatever the restore below repairs.
                if matches!(e, StartRefused::Start(StartError::Head(_))) {
                    self.exercised(super::collapse::DAMAGED_HEAD_REFUSED);
                }
                if !self.nodes[k].damaged {
                    self.fail(
                        "restart",
                        format!("n{k} refused its own files, which nothing damaged at rest: {e}"),
                    );
                }
                // The node refuses to start, as it must: the operator wipes it and restores it
                // from the most advanced peer before starting it again.
                self.trace(|| format!("n{k} refused to start: {e}; wiped and restored"), 2);
                self.nodes[k].wipe();
                if !self.restore_from_best_peer(k) {
                    // No peer to restore from yet: the operator waits for one.
                    self.nodes[k].wiped = true;
                    self.agenda.push(self.now_us + 500_000, Event::Restart { node: k });
                    return;
                }
                if let Err(e) = self.nodes[k].start(cfg, shell, tlog, CLUSTER_ID, now, seed) {
                    self.fail("restart", format!("n{k} cannot start even when wiped: {e}"));
                    return;
                }
            }
        }
        self.nodes[k].flushed_at_us = self.now_us;
        if self.nodes[k].started_from_flushed {
            self.exercised(super::rules::START_FROM_FLUSHED);
        }
        self.persists[k].clear();
        // A new process: no stream reads its files yet.
        self.pins[k] = Arc::default();
        let epoch = self.nodes[k].epoch;
        self.agenda.push(self.now_us + 1_000, Event::Tick { node: k, epoch });
    }

    /// The operator's procedure for a node whose disk was lost: copy the committed log of the
    /// most advanced running peer onto it (`arakoon-admin catchup` on a stopped node). False
    /// when no peer is running: the node must not start empty (it forgot what it promised).
    fn restore_from_best_peer(&mut self, k: NodeIdx) -> bool {
        let best = (0..self.cfg.nodes)
            .filter(|p| *p != k && self.nodes[*p].is_up())
            .max_by_key(|p| arakoon_node::tlog::last_i(&self.nodes[*p].disk).ok().flatten());
        let Some(p) = best else { return false };
        // It forgot what it promised and accepted: it may not vote until a master caught it up.
        let learner = arakoon_node::tlog::BallotRecord { learner: true, ..Default::default() };
        self.restore_from(k, p, learner)
    }

    /// Starts a stopped node; a node whose disk was lost is first restored from a peer, or, with
    /// no peer running, tried again later.
    pub(super) fn restart(&mut self, k: NodeIdx) {
        if self.liveness.holds(k) {
            // Kept down by the liveness check until it is released.
            return;
        }
        if self.nodes[k].is_up() || self.nodes[k].disk_full {
            // A node on a full disk is started once space is freed (Event::DiskFreed).
            return;
        }
        if self.nodes[k].wiped {
            if !self.restore_from_best_peer(k) {
                self.agenda.push(self.now_us + 500_000, Event::Restart { node: k });
                return;
            }
            self.nodes[k].wiped = false;
        }
        self.start_node(k);
    }

    /// A voter, now or once restarted: neither a lost disk, nor a stopped node whose log was
    /// damaged at rest (its start may refuse the log and rebuild it as a learner), nor a
    /// learner rebuilt after one.
    fn voter(&self, k: NodeIdx) -> bool {
        let node = &self.nodes[k];
        match &node.state {
            _ if node.wiped || node.damaged => false,
            Some(s) => !s.machine.is_learner(),
            None => arakoon_node::tlog::BallotRecord::load(&node.disk).map_or(true, |b| !b.learner),
        }
    }

    /// Whether node `k` may lose its vote (its disk lost, or damaged past repair, so that it is
    /// rebuilt as a learner): only while the other voters still make a quorum, or the cluster
    /// could never elect the master that turns it back into a voter. Losing more is beyond
    /// what any consensus protocol survives, and a single node's disk is all of them.
    fn may_lose_vote(&self, k: NodeIdx) -> bool {
        let others = (0..self.cfg.nodes).filter(|p| *p != k && self.voter(*p)).count();
        others >= self.cluster.quorum()
    }

    /// Up, and a voter (not a learner rebuilt after a lost disk).
    pub(super) fn healthy(&self, k: NodeIdx) -> bool {
        self.nodes[k].state.as_ref().is_some_and(|s| !s.machine.is_learner())
    }

    pub(super) fn fail(&mut self, check: &'static str, detail: String) {
        let clock_dependent =
            CLOCK_CHECKS.contains(&check) || (check == "liveness" && self.liveness_beyond_bound());
        if self.mix.beyond_bound && clock_dependent {
            // Expected with clocks beyond the bound: reported, and the run goes on to see
            // what else breaks (a check that does not depend on clocks still fails it).
            if self.report.broke_beyond_bound.is_none() {
                self.trace(|| format!("expected beyond the clock bound: {check}"), 62);
                self.report.broke_beyond_bound = Some(Violation { check, detail });
            }
            return;
        }
        if self.violation.is_none() {
            self.violation = Some(Violation { check, detail });
        }
    }

    /// Hands node `k`'s shell one input and carries out what it asked for.
    pub(super) fn feed(&mut self, k: NodeIdx, input: Input) {
        let now = self.node_now_ms(k);
        let Some(state) = self.nodes[k].state.as_mut() else { return };
        let mut fx = Effects::new(&self.slot_values);
        let result = state.shell.feed(now, input, &mut fx);
        self.carry_out(k, fx.fx, result);
    }

    /// Carries out a node shell's effects with the world's network, disk and clients, in the
    /// order the shell produced them; a shell that stopped is a violation.
    pub(super) fn carry_out(
        &mut self,
        k: NodeIdx,
        fx: Vec<Effect>,
        result: Result<(), ShellError>,
    ) {
        let epoch = self.nodes[k].epoch;
        // The last slot applied in this batch: what a write's acknowledgement stands for.
        let mut applied_max = None;
        for effect in fx {
            if self.nodes[k].epoch != epoch {
                // Crashed at an armed crash point: the rest of the batch is lost with it.
                return;
            }
            match effect {
                Effect::Send { to, msg } => {
                    self.check_send(k, to, &msg);
                    let msg = self.aimed_on_send(k, to, &msg).unwrap_or(msg);
                    let faults = self.net_faults();
                    // A slow link carries a value's bytes on the bulk path.
                    let value_bytes = match &msg {
                        Msg::Accept { value, .. }
                        | Msg::Promise { last: Some((_, _, value)), .. } => {
                            Some(value.encoded_len())
                        }
                        _ => None,
                    };
                    let ship_us = match (value_bytes, self.mix.slow_link) {
                        (Some(bytes), Some(l)) => {
                            self.note_shipped(bytes);
                            l.ship_us(bytes)
                        }
                        _ => 0,
                    };
                    let mut rng = self.keyed.rng(self.now_us, Draw::Message, (k * 256 + to) as u64);
                    for delay in self.net.deliveries(k, to, &faults, &mut rng) {
                        let delay = delay + ship_us;
                        let epoch = self.nodes[to].epoch;
                        self.agenda.push(
                            self.now_us + delay,
                            Event::Deliver { to, epoch, from: k, msg: msg.clone() },
                        );
                    }
                    self.aimed_after_send(k, &msg);
                }
                Effect::Persist(job) => self.persist_job(k, job),
                Effect::Applied { i, value } => {
                    self.check_apply(k, i);
                    self.applied(k, i, value);
                    self.aimed_on_applied(k, i);
                    applied_max = applied_max.max(Some(i));
                    if self.crash_point(k, CrashPoint::AfterApplyBeforeReply) {
                        self.crash_at_point(k, false);
                    }
                }
                Effect::Reply { waiter: (client, op), reply } => {
                    let write = self.clients[client]
                        .pending
                        .as_ref()
                        .is_some_and(|p| p.op == op && !p.kind.is_read());
                    if let (true, Reply::Ok(_), Some(i)) = (write, &reply, applied_max) {
                        self.check_ack(k, client, i);
                    }
                    let result = self.op_result(reply);
                    self.reply(client, op, result);
                }
                Effect::CatchUp(job) => {
                    self.start_catch_up(k, job.from, job.from_i, job.to_i, job.epoch);
                }
            }
        }
        if let Err(e) = result {
            self.fail("store", format!("n{k}: {e}"));
        }
    }

    /// Node `k` applies slot `i`: across restarts it must always be the same value.
    fn applied(&mut self, k: NodeIdx, i: u64, value: Arc<Value>) {
        let node = &mut self.nodes[k];
        if let Some(old) = node.applied.get(&i) {
            if !Arc::ptr_eq(old, &value) && **old != *value {
                let detail = format!("{} applied slot {i} twice with different values", node.name);
                self.fail("agreement", detail);
                return;
            }
        }
        self.slot_values.entry(i).or_insert_with(|| Arc::clone(&value));
        // The value's hash is worked out only for a trace that is kept.
        let hash = || arakoon_node::consensus::value_hash(&value);
        self.trace(|| format!("n{k} apply {i} #{:x}", hash() & 0xffff), 40);
        self.nodes[k].applied.insert(i, value);
        self.nodes[k].flush(self.now_us);
    }

    /// What client `c` learns from a node's reply: a `no_longer_master` leaves an update's
    /// outcome unknown; what the rest means is the workload's to say ([`workload::outcome`]).
    fn op_result(&self, reply: Reply) -> OpResult {
        match reply {
            Reply::Ok(payload) => OpResult::Ok(payload),
            Reply::Failed { rc: Rc::NoLongerMaster, .. } => OpResult::Unknown,
            Reply::Failed { rc, message } => {
                OpResult::Fail(rc, String::from_utf8_lossy(&message).into_owned())
            }
        }
    }

    fn reply(&mut self, client: usize, op: u64, result: OpResult) {
        if let Some(held) = self.clients[client].held_mut(op) {
            held.answered_us = held.answered_us.or(Some(self.now_us));
        }
        let delay =
            self.keyed.rng(self.now_us, Draw::ReplyHop, client as u64).gen_range(CLIENT_HOP_US);
        self.agenda.push(self.now_us + delay, Event::ClientReply { client, op, result });
    }

    /// Node `k` crashes at an armed crash point (`torn`: part of what it did not sync
    /// survives) and comes back later, as after a kill.
    pub(super) fn crash_at_point(&mut self, k: NodeIdx, torn: bool) {
        let mut rng = self.keyed.rng(self.now_us, Draw::CrashRecovery, k as u64);
        let keep: u64 = rng.gen();
        self.nodes[k]
            .crash(|unsynced| if torn && unsynced > 0 { keep as usize % unsynced } else { 0 });
        self.persists[k].clear();
        let back = rng.gen_range(200..3_000);
        self.agenda.push(self.now_us + back * 1000, Event::Restart { node: k });
    }

    /// A write to `k`'s disk failed. On a full disk or a failed fsync the server stops, as it
    /// must (it cannot keep a promise it cannot write down, and what a failed fsync covered is
    /// not durable); a power cut armed at a crash point crashes the node; anything else is a
    /// fault of the simulator.
    pub(super) fn write_failed(&mut self, k: NodeIdx, error: &dyn std::fmt::Display) {
        match self.nodes[k].disk.take_struck() {
            Some(Trip::FailNextSync) => {
                self.exercised(FSYNC_FAILED_NODE_STOPPED);
                // Half the time the machine then loses power too: what the failed fsync left
                // volatile is lost (torn, with torn writes on), not only the process.
                let mut rng = self.keyed.rng(self.now_us, Draw::FsyncFall, k as u64);
                let power_loss = rng.gen_bool(0.5);
                let keep: u64 = rng.gen();
                let back = rng.gen_range(200..3_000);
                let torn = self.mix.torn_writes;
                self.trace(
                    || {
                        let then = if power_loss { ", then a power loss" } else { "" };
                        format!("n{k} stopped: an fsync failed: {error}{then}")
                    },
                    7,
                );
                if power_loss {
                    self.exercised(FSYNC_FAILED_THEN_POWER_LOSS);
                    self.nodes[k].crash(|unsynced| {
                        if torn && unsynced > 0 {
                            keep as usize % unsynced
                        } else {
                            0
                        }
                    });
                } else {
                    self.nodes[k].stop();
                }
                self.persists[k].clear();
                self.agenda.push(self.now_us + back * 1000, Event::Restart { node: k });
                return;
            }
            Some(trip) => {
                let point = CrashPoint::of_trip(trip).expect("every power cut is a crash point");
                self.exercised(point.name());
                self.trace(|| format!("crash n{k} at {}", point.name()), 17);
                let torn = self.mix.torn_writes;
                return self.crash_at_point(k, torn);
            }
            None => {}
        }
        if self.nodes[k].disk_full {
            self.trace(|| format!("n{k} stopped: a write failed: {error}"), 6);
            self.nodes[k].crash(|_| 0);
            self.persists[k].clear();
        } else {
            self.fail("tlog", format!("n{k}: {error}"));
        }
    }

    /// A paused process wakes up: it learns, in order, of the writes that completed meanwhile.
    pub(super) fn resume(&mut self, k: NodeIdx) {
        self.nodes[k].paused = false;
        let epoch = self.nodes[k].epoch;
        for (e, token) in std::mem::take(&mut self.unnotified[k]) {
            if e == epoch && self.nodes[k].epoch == epoch {
                self.feed(k, Input::Persisted { token });
            }
        }
        self.wake_persister(k);
        // Then it reads its sockets: what reached it meanwhile, in the order it arrived.
        for (epoch, from, msg) in std::mem::take(&mut self.held[k]) {
            self.agenda.push(self.now_us, Event::Deliver { to: k, epoch, from, msg });
        }
    }

    fn client_next(&mut self, c: usize) {
        if self.clients[c].pending.is_some() {
            return;
        }
        let op = self.clients[c].next_op;
        // A reduction leaves out calls of the run only: those after it probe liveness.
        let in_run = self.now_us < self.cfg.duration_ms * 1000;
        if in_run && self.cfg.reduce.ops_max.is_some_and(|m| op >= m) {
            // Back at the run's end, in case the liveness check then wants a write.
            let end = self.cfg.duration_ms * 1000;
            self.schedule_call(c, end);
            return;
        }
        let probing = !in_run && self.cfg.reduce.probe;
        if probing && c != 0 {
            return; // only client 0 probes
        }
        self.clients[c].next_op += 1;
        let client = &mut self.clients[c];
        let drawn = if probing {
            workload::probe(c, op)
        } else {
            workload::draw(&mut client.rng, &self.cfg, c, op, &client.seen)
        };
        if in_run && self.cfg.reduce.skip_calls.contains(&(c, op)) {
            // Left out by shrinking: the client goes on as if it had been answered at once.
            let think = self.think_us(c);
            self.schedule_call(c, self.now_us + think);
            return;
        }
        if let Some(held) = self.cfg.reduce.hold_calls.get(&(c, op)).filter(|_| in_run) {
            // Left out by shrinking: the client goes on as the call's answer made it go on.
            let held = *held;
            let _delay: u64 = self.clients[c].rng.gen_range(CLIENT_HOP_US);
            match held.redirect {
                Redirect::Stay => {}
                Redirect::To(k) => self.clients[c].target = k.min(self.cfg.nodes - 1),
                Redirect::Drawn => {
                    self.clients[c].target = self.clients[c].rng.gen_range(0..self.cfg.nodes)
                }
            }
            let think = self.think_us(c);
            self.schedule_call(c, held.until_us.max(self.now_us) + think);
            return;
        }
        if in_run {
            self.report.calls.push((c, op));
        }
        self.history.call(c, op, self.now_us, drawn.space, drawn.call);
        let deadline_us = self.now_us + self.cfg.op_timeout_ms * 1000;
        if in_run {
            let held = Held { until_us: deadline_us, redirect: Redirect::Drawn, answered_us: None };
            self.clients[c].returns.push((op, held));
        }
        self.clients[c].pending =
            Some(PendingOp { op, kind: drawn.kind, key: drawn.key, deadline_us });
        let target = self.clients[c].target;
        let delay = self.clients[c].rng.gen_range(CLIENT_HOP_US);
        self.agenda.push(self.now_us + delay, Event::ClientRequest { node: target, client: c, op });
        if self.clients[c].timeout_at_us.is_none() {
            self.clients[c].timeout_at_us = Some(deadline_us);
            self.agenda.push(deadline_us, Event::ClientTimeout { client: c });
        }
    }

    /// Client `c`'s armed timeout fired: the pending call times out if its deadline is now;
    /// a later deadline arms the timeout again.
    fn client_timeout(&mut self, c: usize) {
        self.clients[c].timeout_at_us = None;
        let Some(p) = &self.clients[c].pending else { return };
        let (op, deadline_us) = (p.op, p.deadline_us);
        if deadline_us <= self.now_us {
            self.client_done(c, op, OpResult::Unknown);
        } else {
            self.clients[c].timeout_at_us = Some(deadline_us);
            self.agenda.push(deadline_us, Event::ClientTimeout { client: c });
        }
    }

    fn client_request(&mut self, k: NodeIdx, c: usize, op: u64) {
        if self.clients[c].pending.as_ref().is_none_or(|p| p.op != op) {
            return;
        }
        if !self.nodes[k].is_up() {
            // A stopped process's port refuses the connection: the client learns it at once
            // (a paused one accepts and never answers: the client times out).
            self.client_done(c, op, OpResult::Refused(k));
            return;
        }
        if self.nodes[k].paused {
            return; // the client times out
        }
        let now = self.node_now_ms(k);
        let p = self.clients[c].pending.as_ref().expect("checked above");
        let request = p.kind.request(&p.key);
        let state = self.nodes[k].state.as_mut().expect("up");
        let mut fx = Effects::new(&self.slot_values);
        let result = state.shell.request(now, request, (c, op), &mut fx);
        self.carry_out(k, fx.fx, result);
    }

    /// Records what the client learnt in its history; returns the outcome recorded.
    fn record(&mut self, c: usize, p: &PendingOp, result: &OpResult) -> arakoon_checker::Outcome {
        let (outcome, output) = workload::outcome(&p.kind, result);
        workload::learn(&mut self.clients[c].seen, &p.kind, &p.key, outcome, output.as_ref());
        self.history.done(c, p.op, self.now_us, outcome, output);
        outcome
    }

    fn client_done(&mut self, c: usize, op: u64, result: OpResult) {
        if self.clients[c].pending.as_ref().is_none_or(|p| p.op != op) {
            return;
        }
        let p = self.clients[c].pending.take().expect("checked above");
        let (target, word) = (self.clients[c].target, self.clients[c].rng.get_word_pos());
        let outcome = self.record(c, &p, &result);
        match &result {
            // An answer, or a refusal that answers the question (a get's not_found).
            _ if outcome == arakoon_checker::Outcome::Ok => {
                self.report.ops_ok += 1;
                if let OpKind::Set(v) = &p.kind {
                    self.acknowledged.insert(v.clone());
                }
                if !p.kind.is_read() {
                    self.note_write_acknowledged();
                }
            }
            OpResult::Fail(Rc::NotMaster, m) => {
                self.report.ops_failed += 1;
                let m2 = m.clone();
                self.trace(|| format!("client {c} op {op}: not master, try {m2}"), 51);
                let n = self.cfg.nodes;
                self.clients[c].target = m
                    .strip_prefix('n')
                    .and_then(|x| x.parse::<usize>().ok())
                    .filter(|x| *x < n)
                    .unwrap_or_else(|| self.clients[c].rng.gen_range(0..n));
            }
            OpResult::Fail(rc, m) => {
                self.report.ops_failed += 1;
                let (rc, m) = (*rc, m.clone());
                self.trace(|| format!("client {c} op {op} failed: {rc} {m}"), 50);
            }
            OpResult::Refused(k) => {
                self.report.ops_failed += 1;
                let k = *k;
                self.trace(|| format!("client {c} op {op}: n{k} refused the connection"), 52);
                self.clients[c].target = (k + 1) % self.cfg.nodes;
            }
            OpResult::Ok(_) | OpResult::Unknown => {
                self.report.ops_unknown += 1;
                self.clients[c].target = self.clients[c].rng.gen_range(0..self.cfg.nodes);
            }
        }
        let client = &mut self.clients[c];
        let redirect = if client.rng.get_word_pos() != word {
            Redirect::Drawn
        } else if client.target != target {
            Redirect::To(client.target)
        } else {
            Redirect::Stay
        };
        if let Some(held) = client.held_mut(op) {
            held.until_us = self.now_us;
            held.redirect = redirect;
        }
        let think = self.think_us(c);
        self.schedule_call(c, self.now_us + think);
    }

    /// Client `c` makes its next call at `at_us` (any call scheduled before is dropped).
    pub(super) fn schedule_call(&mut self, c: usize, at_us: u64) {
        self.clients[c].next_at_us = Some(at_us);
        self.agenda.push(at_us, Event::ClientNext { client: c });
    }

    /// Whether client `c` waits between calls (no call pending).
    pub(super) fn client_idle(&self, c: usize) -> bool {
        self.clients[c].pending.is_none()
    }

    /// The random nemesis: draws a fault of the catalogue (`arakoon_chaos::faults::Fault`) among
    /// those the run's mix allows and applies it through the world's drill backend; what the
    /// catalogue does not say (torn writes on a crash, when a crashed node comes back) is drawn
    /// here. The draws are made in a fixed order from the world's RNG.
    fn nemesis(&mut self) {
        use arakoon_chaos::faults::{Fault, Target};
        let mut kinds: Vec<Fault> = Vec::new();
        if self.mix.partitions {
            kinds.extend([Fault::Partition(Vec::new()), Fault::Heal]);
        }
        if self.mix.crashes {
            kinds.extend([
                Fault::Kill(Target::Random),
                Fault::Kill(Target::Random),
                Fault::PowerLoss,
            ]);
        }
        if self.mix.wipes {
            kinds.push(Fault::Wipe(Target::Random));
        }
        if self.mix.pauses {
            kinds.push(Fault::Pause { target: Target::Random, duration: None });
        }
        if self.mix.disk_corruption {
            kinds.push(Fault::Bitflip { target: Target::Random, store: false });
        }
        if self.mix.fsync_failures {
            kinds.push(Fault::FsyncFail(Target::Random));
        }
        if self.mix.clock_offset_ms > 0 || self.mix.clock_drift_ppm > 0 {
            kinds.push(Fault::ClockOffset { target: Target::Random, ms: 0 });
        }
        if self.mix.collapses {
            kinds.push(Fault::Collapse { target: Target::Random, keep: 1, duration: None });
        }
        let interval = self.mix.fault_interval_ms / 2..=self.mix.fault_interval_ms * 3 / 2;
        let next = self.nemesis_rng.gen_range(interval);
        self.agenda.push(self.now_us + next * 1000, Event::Nemesis);
        if kinds.is_empty() {
            return;
        }
        let n = self.cfg.nodes;
        let mut kind = kinds[self.nemesis_rng.gen_range(0..kinds.len())].clone();
        // Power loss is the rarest: a cluster that loses power every few seconds is never up.
        if kind == Fault::PowerLoss && !self.nemesis_rng.gen_bool(0.3) {
            kind = Fault::Kill(Target::Random);
        }
        let victim = self.nemesis_rng.gen_range(0..n);
        // Shrinking leaves strikes out after their draws, so the ones kept draw the same.
        let strike = self.next_strike();
        if self.cfg.reduce.skip_faults.contains(&strike) {
            return;
        }
        // What the strike draws (a partition's sides, a crash's point, when the node comes
        // back, a clock's step), and whatever the world draws while it strikes, comes from a
        // stream of the strike's own: a call or a strike left out by shrinking changes neither
        // when the strikes come, nor what they are, nor how they fall.
        let strike_rng =
            ChaCha8Rng::seed_from_u64(stream_seed(self.report.seed, 1 + strike as u64));
        let world_rng = std::mem::replace(&mut self.rng, strike_rng);
        self.strike(kind, victim, strike);
        self.rng = world_rng;
    }

    /// Applies the nemesis' strike number `strike`: `kind` on `victim` (drawn by the nemesis).
    fn strike(&mut self, kind: arakoon_chaos::faults::Fault, victim: NodeIdx, strike: u32) {
        use arakoon_chaos::director::{now_or_never, Backend, Resolved, Strikes};
        use arakoon_chaos::drill::Millis;
        use arakoon_chaos::faults::{Fault, Target};
        let n = self.cfg.nodes;
        let label = format!("{} n{victim}", kind.name());
        self.report.strikes.push((self.now_us / 1000, strike, label));
        let on_victim = |fault: Fault| Resolved { fault, strikes: Strikes::Nodes(vec![victim]) };
        let apply = |w: &mut World, r: Resolved| {
            now_or_never(Backend::apply(w, &r)).and_then(Result::ok).unwrap_or_default()
        };
        match kind {
            Fault::Partition(_) => {
                let mut order: Vec<usize> = (0..n).collect();
                for i in (1..n).rev() {
                    order.swap(i, self.rng.gen_range(0..=i));
                }
                let split = self.rng.gen_range(1..n.max(2));
                let groups = vec![order[..split.min(n)].to_vec(), order[split.min(n)..].to_vec()];
                self.trace(|| format!("partition {groups:?}"), 10);
                let targets =
                    groups.iter().map(|g| g.iter().map(|k| Target::Node(*k)).collect()).collect();
                let fault = Fault::Partition(targets);
                apply(self, Resolved { fault, strikes: Strikes::Groups(groups) });
            }
            Fault::Heal => {
                self.trace(|| "heal".into(), 11);
                // The drill's heal also ends the loss and delay a drill set; the nemesis's mix
                // keeps its own for the whole run.
                let (loss, delay_max_us) = (self.mix.loss, self.mix.delay_max_us);
                apply(self, Resolved { fault: Fault::Heal, strikes: Strikes::Cluster });
                (self.mix.loss, self.mix.delay_max_us) = (loss, delay_max_us);
            }
            // A disk is lost only while every other node is up, and its vote can be spared.
            Fault::Wipe(_)
                if !self.may_lose_vote(victim)
                    || !(0..n).all(|k| k == victim || self.healthy(k)) => {}
            // One kill in three waits for a point where a crash matters (`super::rules`).
            Fault::Kill(_) if self.nodes[victim].is_up() && self.rng.gen_bool(1.0 / 3.0) => {
                let point = CrashPoint::ALL[self.rng.gen_range(0..CrashPoint::ALL.len())];
                match point.trip() {
                    // Inside the node's own writes: armed on its disk.
                    Some(trip) => self.nodes[victim].disk.arm(Some(trip)),
                    None => self.armed[victim] = Some(point),
                }
                self.trace(|| format!("arm n{victim}: crash at {}", point.name()), 18);
            }
            Fault::Kill(_) | Fault::Wipe(_) if self.nodes[victim].is_up() => {
                let torn = self.mix.torn_writes && self.rng.gen_bool(0.5);
                let keep: u64 = self.rng.gen();
                if let Fault::Wipe(_) = kind {
                    apply(self, on_victim(Fault::Wipe(Target::Node(victim))));
                } else if torn {
                    // A crash in the middle of writes: part of what was not fsynced survives.
                    self.nodes[victim].crash(|unsynced| {
                        if unsynced > 0 {
                            (keep as usize) % unsynced
                        } else {
                            0
                        }
                    });
                    self.persists[victim].clear();
                } else {
                    apply(self, on_victim(Fault::Kill(Target::Node(victim))));
                }
                let name = kind.name();
                self.trace(|| format!("{name} n{victim}{}", if torn { " (torn)" } else { "" }), 12);
                let back = self.rng.gen_range(200..3_000);
                self.agenda.push(self.now_us + back * 1000, Event::Restart { node: victim });
            }
            // Every node loses power at once: only what each fsynced survives.
            Fault::PowerLoss => {
                for k in 0..n {
                    if !self.nodes[k].is_up() {
                        continue;
                    }
                    let torn = self.mix.torn_writes && self.rng.gen_bool(0.5);
                    let keep: u64 = self.rng.gen();
                    self.nodes[k].crash(|unsynced| {
                        if torn && unsynced > 0 {
                            (keep as usize) % unsynced
                        } else {
                            0
                        }
                    });
                    self.persists[k].clear();
                    let back = self.rng.gen_range(200..3_000);
                    self.agenda.push(self.now_us + back * 1000, Event::Restart { node: k });
                }
                self.trace(|| "power loss: every node crashed".into(), 16);
            }
            Fault::Pause { .. } if self.nodes[victim].is_up() && !self.nodes[victim].paused => {
                let back = self.rng.gen_range(100..2 * self.cfg.lease_ms);
                self.trace(|| format!("pause n{victim} for {back}ms"), 13);
                let duration = Some(Millis(back));
                apply(self, on_victim(Fault::Pause { target: Target::Node(victim), duration }));
            }
            // Damage at rest on a stopped node's sealed TLog file: must be caught at restart.
            Fault::Bitflip { .. } if !self.nodes[victim].is_up() && self.may_lose_vote(victim) => {
                let fault = Fault::Bitflip { target: Target::Node(victim), store: false };
                let note = apply(self, on_victim(fault));
                if !note.is_empty() {
                    self.trace(|| format!("bitflip {note}"), 14);
                }
            }
            // Spared because another stopped node's log is damaged already: counted, as the
            // guard that keeps a quorum of voters (the liveness finding of seed 45).
            Fault::Bitflip { .. }
                if !self.nodes[victim].is_up()
                    && (0..n).any(|j| j != victim && self.nodes[j].damaged) =>
            {
                self.exercised(VOTE_GUARD_DAMAGED);
            }
            // Keeping one or two sealed files; one collapse in three with a crash inside it.
            Fault::Collapse { .. } => {
                let keep = self.rng.gen_range(1..=2);
                let point = self.rng.gen_bool(1.0 / 3.0).then(|| {
                    CrashPoint::COLLAPSE[self.rng.gen_range(0..CrashPoint::COLLAPSE.len())]
                });
                let note = self.collapse(victim, keep, point);
                self.trace(|| format!("collapse n{victim} keep {keep}: {note}"), 63);
            }
            Fault::FsyncFail(_) if self.nodes[victim].is_up() => {
                self.trace(|| format!("arm n{victim}: its next fsync fails"), 19);
                apply(self, on_victim(Fault::FsyncFail(Target::Node(victim))));
            }
            Fault::ClockOffset { .. } => {
                let (offset_us, ppm) = self.draw_clock(victim);
                // An offset is applied to a node whose clock is read only for durations: the
                // step itself is what a bad NTP correction does. The backend never steps a
                // clock backwards.
                let target = Target::Node(victim);
                apply(self, on_victim(Fault::ClockOffset { target, ms: offset_us / 1000 }));
                apply(self, on_victim(Fault::ClockDrift { target: Target::Node(victim), ppm }));
                self.trace(|| format!("clock n{victim}: offset {offset_us}µs drift {ppm}ppm"), 15);
            }
            _ => {}
        }
    }

    /// The number of the next strike drawn (the nemesis' and the aimed ones').
    pub(super) fn next_strike(&mut self) -> u32 {
        self.strikes_drawn += 1;
        self.strikes_drawn - 1
    }

    /// The largest step forward a clock may take within the clock bound: nodes read whole
    /// milliseconds, and an offset is set in whole milliseconds, so 2 ms of the bound's step are
    /// kept for that rounding.
    pub(super) fn step_room_ms(&self) -> i64 {
        self.clock_bound.step_ms as i64 - 2
    }

    /// A clock fault for node `k`: its new offset (µs, whole ms) and rate (ppm). Within the
    /// clock bound the offset moves forward by at most the bound's step, at most once a lease,
    /// and the rate stays within the bound's; beyond it, both are drawn from the mix's ranges.
    fn draw_clock(&mut self, k: NodeIdx) -> (i64, i64) {
        let off = self.mix.clock_offset_ms;
        let drift = self.mix.clock_drift_ppm;
        let clock = self.nodes[k].clock;
        if self.mix.beyond_bound {
            let offset_us = if off > 0 { self.rng.gen_range(-off..=off) * 1000 } else { 0 };
            let ppm = if drift > 0 { self.rng.gen_range(-drift..=drift) } else { 0 };
            return (offset_us, ppm);
        }
        // 2 ms a second (2,000 ppm) of the rate are kept for whole-millisecond rounding, as
        // 2 ms of the step are (`step_room_ms`).
        let max_step = off.min(self.step_room_ms());
        let may_step = clock.may_step(self.now_us, self.cfg.lease_ms * 1000);
        let step_ms = if max_step > 0 && may_step { self.rng.gen_range(0..=max_step) } else { 0 };
        let drift = drift.min(self.clock_bound.drift_ppm as i64 - 2_000);
        let ppm = if drift > 0 { self.rng.gen_range(-drift..=drift) } else { 0 };
        // The offset in whole ms, as the fault carries it.
        let offset_ms = clock.offset_us.div_euclid(1000) + step_ms;
        if step_ms > 0 {
            self.nodes[k].clock.last_step_us = Some(self.now_us);
        }
        (offset_ms * 1000, ppm)
    }

    /// Node `k`'s role as reports name it.
    pub(super) fn role_name(&self, k: NodeIdx) -> &'static str {
        use arakoon_node::consensus::RoleName;
        match &self.nodes[k].state {
            None => "down",
            Some(_) if self.nodes[k].paused => "paused",
            Some(s) => match s.machine.role() {
                RoleName::Master => "master",
                RoleName::Slave => "slave",
                RoleName::Candidate => "candidate",
                RoleName::CatchingUp => "catching_up",
            },
        }
    }

    /// Records each node's role when it changes (for a drill report's node lanes).
    fn note_roles(&mut self) {
        for k in 0..self.cfg.nodes {
            let role = self.role_name(k);
            if self.last_role[k] != role {
                self.report.roles.push((self.now_us / 1000, k, role.to_string()));
                self.last_role[k] = role;
            }
        }
    }

    /// At most one valid lease, in the world's true time: each master's lease is placed on the
    /// world's time line from the first instant it is valid to the instant its own clock ends
    /// it (or it stops being master); two leases that overlap there break the check, even if
    /// no event fell inside the overlap.
    fn check_leases(&mut self) {
        let now = self.now_us;
        // The buffer of the last check, reused: this runs after every event.
        let mut holders = std::mem::take(&mut self.lease_holders);
        holders.clear();
        for k in 0..self.cfg.nodes {
            let local = self.node_now_ms(k);
            let until_ms = self.nodes[k]
                .state
                .as_ref()
                .filter(|s| s.machine.lease_valid(local))
                .and_then(|s| s.machine.lease_until_ms());
            let clock = self.nodes[k].clock;
            let span = &mut self.lease_spans[k];
            match (until_ms, span.as_mut()) {
                (Some(until), Some(sp)) if sp.ongoing => {
                    if sp.placed != (until, clock) || sp.until_us <= now {
                        sp.until_us = clock.true_us_when(now, until);
                        sp.placed = (until, clock);
                    }
                    holders.push(k);
                }
                (Some(until), _) => {
                    let until_us = clock.true_us_when(now, until);
                    let placed = (until, clock);
                    *span = Some(LeaseSpan { from_us: now, until_us, ongoing: true, placed });
                    holders.push(k);
                }
                (None, Some(sp)) if sp.ongoing => {
                    sp.until_us = sp.until_us.min(now);
                    sp.ongoing = false;
                }
                (None, _) => {}
            }
        }
        if !holders.is_empty() {
            self.exercised("at most one valid lease");
        }
        if let (Some(done), None, false) =
            (self.script.finished_us, self.script.master_after_finish_us, holders.is_empty())
        {
            self.script.master_after_finish_us = Some(self.now_us);
            self.report.master_after_script_ms = Some((self.now_us - done) / 1000);
        }
        for &k in &holders {
            let Some(mine) = self.lease_spans[k] else { continue };
            let overlap = (0..self.cfg.nodes).filter(|j| *j != k).find_map(|j| {
                let other = self.lease_spans[j]?;
                (other.from_us < mine.until_us && mine.from_us < other.until_us)
                    .then_some((j, other))
            });
            if let Some((j, other)) = overlap {
                self.fail(
                    "at most one valid lease",
                    format!(
                        "in true time, n{k}'s lease [{}µs, {}µs) overlaps n{j}'s [{}µs, {}µs) (clock bound: drift ±{}ppm, steps up to {} ms a lease)",
                        mine.from_us, mine.until_us, other.from_us, other.until_us,
                        self.clock_bound.drift_ppm, self.clock_bound.step_ms
                    ),
                );
                // Reported once per pair of leases: a run beyond the bound goes on.
                self.lease_spans[j] = None;
            }
        }
        self.lease_holders = holders;
    }

    fn step(&mut self, event: Event) {
        match event {
            Event::Deliver { to, epoch, from, msg } => {
                if self.nodes[to].epoch != epoch || !self.nodes[to].is_up() {
                    return;
                }
                if self.nodes[to].paused {
                    // A paused process reads its socket when it resumes: the message waits.
                    self.held[to].push((epoch, from, msg));
                    self.exercised(HELD_WHILE_PAUSED);
                    return;
                }
                self.trace(|| format!("n{from}->n{to} {msg:.120?}"), 20 + msg.ballot());
                self.expect_held(to, from, &msg);
                self.feed(to, Input::Message { from, msg });
                self.hold_answered(to);
            }
            Event::Tick { node, epoch } => {
                if self.nodes[node].epoch != epoch || !self.nodes[node].is_up() {
                    return;
                }
                if !self.nodes[node].paused {
                    self.feed(node, Input::Tick);
                }
                self.agenda.push(self.now_us + TICK_MS * 1000, Event::Tick { node, epoch });
            }
            Event::PersistStart { node, epoch } => {
                if self.nodes[node].epoch == epoch && self.nodes[node].is_up() {
                    self.persist_start(node);
                }
            }
            Event::PersistDone { node, epoch } => {
                if self.nodes[node].epoch == epoch && self.nodes[node].is_up() {
                    self.persist_done(node);
                }
            }
            Event::CatchUpStep { node, epoch, job } => self.catch_up_step(node, epoch, job),
            Event::ClientRequest { node, client, op } => self.client_request(node, client, op),
            Event::ClientReply { client, op, result } => self.client_done(client, op, result),
            Event::ClientNext { client }
                if self.clients[client].next_at_us != Some(self.now_us) =>
            {
                // Stale: the call was scheduled again (brought forward).
            }
            Event::ClientNext { client } => {
                // Clients stop at the run's end, or once the liveness check saw its write.
                let checking =
                    self.liveness.healed_at_us.is_some() && self.liveness.write_at_us.is_none();
                if self.now_us < self.cfg.duration_ms * 1000 || checking {
                    self.client_next(client);
                }
            }
            Event::ClientTimeout { client } => self.client_timeout(client),
            Event::Nemesis => {
                if self.now_us < self.cfg.duration_ms * 1000 {
                    self.nemesis();
                }
            }
            Event::Collapse { nodes, keep, until_us } => {
                for &k in &nodes {
                    let note = self.collapse(k, keep, None);
                    self.trace(|| format!("collapse n{k} keep {keep}: {note}"), 63);
                }
                let next = self.now_us + super::script::COLLAPSE_EVERY_MS * 1000;
                if next <= until_us {
                    self.agenda.push(next, Event::Collapse { nodes, keep, until_us });
                }
            }
            Event::Restart { node } => {
                if !self.nodes[node].is_up() {
                    self.trace(|| format!("restart n{node}"), 30);
                    self.restart(node);
                }
            }
            Event::DiskFreed { node } => {
                if self.nodes[node].disk_full {
                    self.nodes[node].fill_disk(false);
                    self.trace(|| format!("space freed on n{node}"), 32);
                    self.restart(node);
                }
            }
            Event::Resume { node } => {
                self.resume(node);
                self.trace(|| format!("resume n{node}"), 31);
            }
            Event::Script => self.run_step(),
            Event::Aimed => {
                if self.now_us < self.cfg.duration_ms * 1000 {
                    self.aimed_strike();
                }
            }
        }
        self.check_leases();
        if !self.script.steps.is_empty() {
            self.note_roles();
        }
    }
}

/// Runs one seed to the end and checks it. A safety assertion that fires inside the node's code
/// (the core asserts its invariants) ends the run as a violation of that assertion.
pub fn run_seed(seed: u64, cfg: &SimConfig) -> RunReport {
    TRACE_SO_FAR.with(|t| t.borrow_mut().clear());
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_seed_inner(seed, cfg)));
    let trace = TRACE_SO_FAR.with(|t| std::mem::take(&mut *t.borrow_mut()));
    match run {
        Ok(report) => RunReport { trace, ..report },
        // The trace up to the assertion, so that `--trace` shows how it came to it.
        Err(panic) => RunReport {
            outcome: Outcome::Violation(Violation {
                check: "assertion",
                detail: panic_text(&*panic),
            }),
            trace,
            ..RunReport::new(seed, String::new())
        },
    }
}

/// What a panic said.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}

fn run_seed_inner(seed: u64, cfg: &SimConfig) -> RunReport {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // The lease and its margin do not depend on the shape drawn below.
    let bound = cluster_config(cfg).map_or_else(
        |_| Config::new(names(1), 0, cfg.lease_ms).clock_bound(),
        |c| c.consensus(0).clock_bound(),
    );
    let mix = match (&cfg.faults, cfg.script.is_empty()) {
        (Some(m), _) => m.clone(),
        // A drill says which faults strike; the rest of the world is quiet.
        (None, false) => FaultMix::none(),
        (None, true) => FaultMix {
            slow_link: super::faults::SlowLink::draw(seed),
            aimed: Aimed::draw(seed),
            collapses: super::faults::draw_collapses(seed),
            ..FaultMix::swarm(&mut rng, bound)
        },
    };
    // The shape is drawn after the mix, so that a seed's mix is the same with and without it.
    let drawn = (cfg.draw_shape && cfg.faults.is_none() && cfg.script.is_empty())
        .then(|| Shape::draw(&mut rng));
    let mut cfg = cfg.clone();
    if let Some(shape) = drawn {
        cfg.nodes = shape.nodes;
        cfg.overrides.retain(|(k, _)| k != "quorum");
        if let Some(q) = shape.quorum {
            cfg.overrides.push(("quorum".into(), q.to_string()));
        }
    }
    let cfg = &cfg;
    let shape = Shape {
        nodes: cfg.nodes,
        quorum: cfg
            .overrides
            .iter()
            .rev()
            .find(|(k, _)| k == "quorum")
            .and_then(|(_, v)| v.parse().ok()),
    }
    .describe();
    let nodes: Vec<SimNode> =
        names(cfg.nodes).into_iter().map(|n| SimNode::new(n, SimClock::default())).collect();
    let cluster = match cluster_config(cfg) {
        Ok(mut c) => {
            if let Some(l) = mix.slow_link {
                c.limits.link_bytes_per_s = l.configured_bytes_per_s;
            }
            c
        }
        Err(e) => {
            let mut report = RunReport { shape, ..RunReport::new(seed, mix.describe()) };
            let detail = format!("{e}");
            report.outcome = Outcome::Violation(Violation { check: "configuration", detail });
            return report;
        }
    };
    let mut w = World {
        cfg: cfg.clone(),
        cluster,
        rng,
        now_us: 0,
        agenda: Agenda::default(),
        slot_values: BTreeMap::new(),
        exercised_counts: Vec::new(),
        net: SimNet::new(cfg.nodes),
        persists: (0..cfg.nodes).map(|_| PersistQueue::default()).collect(),
        nodes,
        clients: (0..cfg.clients)
            .map(|c| Client {
                target: c % cfg.nodes,
                rng: ChaCha8Rng::seed_from_u64(client_seed(seed, c)),
                pending: None,
                timeout_at_us: None,
                next_at_us: None,
                next_op: 0,
                returns: Vec::new(),
                seen: BTreeMap::new(),
            })
            .collect(),
        acknowledged: BTreeSet::new(),
        history: Recorder::new(cfg.clients),
        script: ScriptState::new(cfg.script.clone()),
        unnotified: vec![Vec::new(); cfg.nodes],
        held: vec![Vec::new(); cfg.nodes],
        last_role: vec![""; cfg.nodes],
        report: RunReport { shape, ..RunReport::new(seed, mix.describe()) },
        violation: None,
        liveness: Default::default(),
        strikes_drawn: 0,
        nemesis_rng: ChaCha8Rng::seed_from_u64(stream_seed(seed, 0)),
        chunk_rng: ChaCha8Rng::seed_from_u64(stream_seed(seed, CHUNK_STREAM)),
        keyed: KeyedDraws::new(seed),
        clock_bound: bound,
        lease_spans: vec![None; cfg.nodes],
        lease_holders: Vec::with_capacity(cfg.nodes),
        armed: vec![None; cfg.nodes],
        pins: (0..cfg.nodes).map(|_| Arc::default()).collect(),
        fetches: (0..cfg.nodes).map(|_| None).collect(),
        aimed: AimedState::new(seed),
        promised_to: vec![None; cfg.nodes],
        hold_due: None,
        mix,
    };
    if w.mix.beyond_bound {
        w.report.beyond_bound = Some(format!(
            "clock offsets up to ±{} ms, drift up to ±{} ppm; the bound: forward steps up to {} ms a lease, drift ±{} ppm",
            w.mix.clock_offset_ms, w.mix.clock_drift_ppm, bound.step_ms, bound.drift_ppm
        ));
    }
    for k in 0..cfg.nodes {
        w.start_node(k);
    }
    let first_call_us = cfg.reduce.calls_from_ms.map_or(2_000_000, |ms| (ms * 1000).max(2_000_000));
    for c in 0..cfg.clients {
        w.schedule_call(c, first_call_us + c as u64 * 1_000);
    }
    if cfg.script.is_empty() {
        w.agenda.push(w.mix.fault_interval_ms * 1000, Event::Nemesis);
        w.aimed_start();
    } else {
        w.schedule_next_step();
    }
    // The run, then a quiet period: faults stop, everything heals and restarts, so the end state
    // can be compared.
    let end_us = cfg.duration_ms * 1000;
    // Without a drill, the liveness check runs first (`super::liveness`), then the end state
    // settles for as long as it did before the check was added.
    let check_us = if cfg.script.is_empty() {
        super::liveness::LIVENESS_LEASES * cfg.lease_ms * 1000
    } else {
        0
    };
    let quiet_us = 10 * cfg.lease_ms * 1000;
    let settle_us = end_us + check_us + quiet_us;
    // An assertion in the node's code ends the run as a violation of it; the report keeps what
    // the run did until then (its strikes and calls: what shrinking counts).
    let events = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_events(&mut w, end_us, settle_us, quiet_us)
    }));
    if let Err(panic) = events {
        w.violation = Some(Violation { check: "assertion", detail: panic_text(&*panic) });
    }
    w.report.simulated_ms = w.now_us / 1000;
    w.report.history_ops = w.history.len();
    for (c, client) in w.clients.iter_mut().enumerate() {
        let returns = std::mem::take(&mut client.returns);
        w.report.returns.extend(returns.into_iter().map(|(op, held)| ((c, op), held)));
    }
    if cfg.keep_history {
        w.report.ops = w.history.summaries();
    }
    if cfg.keep_history {
        w.report.histories = Some(w.history.to_jsonl());
    }
    let verdict = match w.violation.take() {
        Some(v) => Err(v),
        None => final_checks(&mut w),
    };
    if let Ok(slots) = &verdict {
        w.report.committed_slots = *slots;
    }
    if let Err(v) = verdict {
        w.report.outcome = Outcome::Violation(v);
    }
    for (check, n) in std::mem::take(&mut w.exercised_counts) {
        *w.report.exercised.entry(check.to_string()).or_default() += n;
    }
    w.report
}

/// The run's events, in order, until the end (or a violation): at the run's end the faults
/// stop, everything heals and restarts, and the liveness check starts.
fn run_events(w: &mut World, end_us: u64, settle_us: u64, quiet_us: u64) {
    let nodes = w.cfg.nodes;
    let liveness = w.cfg.script.is_empty() && !w.cfg.reduce.no_liveness;
    let mut healed = false;
    while let Some((at, event)) = w.agenda.pop() {
        // A liveness bound longer than five leases (a slow link, slow clocks) keeps the run
        // going until its verdict, and the quiet period after it.
        let settle_us = settle_us.max(w.liveness_settle_until_us(quiet_us).unwrap_or(0));
        if at > settle_us || w.violation.is_some() {
            break;
        }
        w.now_us = at;
        if !healed && at >= end_us {
            healed = true;
            w.aimed_heal();
            w.net.heal();
            w.armed = vec![None; nodes];
            for node in &w.nodes {
                node.disk.arm(None);
            }
            w.mix.loss = 0.0;
            w.mix.duplicate = 0.0;
            for k in 0..nodes {
                w.resume(k);
                w.nodes[k].fill_disk(false);
            }
            // Nodes with their disks first, so that lost disks have a peer to restore from.
            let (lost, kept): (Vec<usize>, Vec<usize>) =
                (0..nodes).partition(|k| w.nodes[*k].wiped);
            for k in kept.into_iter().chain(lost) {
                w.restart(k);
            }
            if liveness {
                let quorum = w.cluster.quorum();
                w.start_liveness(quorum);
            }
        }
        w.report.agenda_events += 1;
        w.step(event);
        w.check_liveness();
    }
}

/// The nodes' configuration: the defaults of a real node, except the lease and the small TLog
/// files of the simulator, then the overrides.
fn cluster_config(cfg: &SimConfig) -> Result<ClusterConfig, ConfigError> {
    let mut c = arakoon_chaos::drill::sample_config(cfg.nodes);
    c.cluster_id = CLUSTER_ID.into();
    c.lease_ms = cfg.lease_ms;
    let small = super::node::tlog_config();
    c.tlog_max_entries = small.entries_per_file_max;
    c.tlog_max_size = small.file_bytes_max;
    let mut c = c.with_overrides(&cfg.overrides, "the simulator's configuration")?;
    if let Some(n) = cfg.reduce.tlog_entries {
        c.tlog_max_entries = n.max(1);
    }
    Ok(c)
}

/// The checks at the end of a run; returns how many slots were chosen.
fn final_checks(w: &mut World) -> Result<u64, Violation> {
    let chosen = checks::agreement(&w.nodes)?;
    checks::applied_prefixes(&w.nodes)?;
    checks::no_acknowledged_write_lost(&chosen, &w.acknowledged)?;
    let slots = chosen.len() as u64;
    drop(chosen);
    let limit = std::time::Duration::from_millis(w.cfg.check_time_limit_ms);
    match std::mem::take(&mut w.history).check(limit) {
        Linearizability::Linearizable => w.report.linearizability = "linearizable".into(),
        Linearizability::Unknown(why) => w.report.linearizability = format!("unknown: {why}"),
        Linearizability::Violated(detail) if w.mix.beyond_bound => {
            w.fail("linearizable", detail.to_string());
            w.report.linearizability = "violated, as clocks beyond the bound allow".into();
        }
        Linearizability::Violated(detail) => {
            return Err(Violation { check: "linearizable", detail: detail.to_string() });
        }
    }
    Ok(slots)
}

impl RunReport {
    fn new(seed: u64, faults: String) -> RunReport {
        RunReport {
            seed,
            outcome: Outcome::Pass,
            faults,
            simulated_ms: 0,
            agenda_events: 0,
            events: 0,
            ops_ok: 0,
            ops_failed: 0,
            ops_unknown: 0,
            committed_slots: 0,
            trace_hash: 0xcbf2_9ce4_8422_2325,
            trace: Vec::new(),
            history_ops: 0,
            linearizability: String::new(),
            histories: None,
            fault_log: Vec::new(),
            strikes: Vec::new(),
            calls: Vec::new(),
            returns: BTreeMap::new(),
            roles: Vec::new(),
            ops: Vec::new(),
            master_after_script_ms: None,
            shape: String::new(),
            write_after_heal_ms: None,
            beyond_bound: None,
            exercised: BTreeMap::new(),
            broke_beyond_bound: None,
        }
    }

    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_found_among_its_clients_returns_and_a_call_left_out_is_not() {
        let held = |until_us| Held { until_us, redirect: Redirect::Stay, answered_us: None };
        // Calls 1 and 3 were left out by a reduction (or made after the run).
        let mut returns = vec![(0, held(10)), (2, held(20)), (4, held(40))];
        for (op, until) in [(0, 10), (2, 20), (4, 40)] {
            assert_eq!(held_in(&mut returns, op).map(|h| h.until_us), Some(until), "op {op}");
        }
        for op in [1, 3, 5] {
            assert!(held_in(&mut returns, op).is_none(), "op {op}");
        }
        // A late answer to an earlier call marks that call, not the newest.
        held_in(&mut returns, 2).unwrap().answered_us = Some(25);
        assert_eq!(returns[1].1.answered_us, Some(25));
        assert_eq!(returns[2].1.answered_us, None);
        assert!(held_in(&mut [], 0).is_none());
    }
}
