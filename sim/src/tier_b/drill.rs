//! Drills on tier B (`arakoon-admin drill run FILE --tier turmoil`): the real server and client
//! over turmoil, the drill's steps applied at their times, the history checked like the other
//! tiers'.
//!
//! One seed runs like this. The nodes start in memory ([`super::cluster`]); the drill's clients
//! (turmoil client hosts) issue its mix of operations with the real client until the drill's
//! duration is over, recording every call and answer in virtual time. A *director* host plays
//! the steps through the one drill engine (`arakoon_chaos::director`): the engine says when each
//! step is due and resolves its targets from the seed and the cluster as the nodes show it
//! (who runs, who is master); this tier's backend hands the fault to the harness, which applies
//! it between two
//! steps of the simulation (crash, stop, restart, cut or heal links, raise the latency);
//! `wait_until` conditions are polled over the network every 50 ms. After the last step it
//! measures how long until a master answers (`master_within`). When the duration is over, the
//! harness heals the links and restarts every node that is down; once every node has applied
//! what was committed, the director reads every key once more (so that a lost acknowledged
//! write shows in the history), and the history is checked per key and as one map for the
//! sequences.
//!
//! Everything comes from the seed and the simulation is deterministic, so a seed replays a run
//! exactly. The faults this tier applies are declared in `arakoon_chaos::faults`; a drill that
//! asks for others is refused when it is read.

use super::admin::{ask_collapse, CollapseTally};
use super::cluster::{builder, Cluster, ClusterSpec};
use super::net::TurmoilNet;
use super::workload::now_us;
use super::TierBError;
use arakoon_chaos::director::{
    bridge_link, bridge_node, drive, link_matrix, ring_link, Backend, BackendError, ClusterView,
    Director, Resolved, Strikes,
};
use arakoon_chaos::drill::{Condition, Drill, WorkloadSpec};
use arakoon_chaos::faults::Fault;
use arakoon_chaos::history::{Linearizability, OpSummary, Recorder, Space};
use arakoon_chaos::real_client::{self, Journal};
use arakoon_checker::import::RawCall;
use arakoon_checker::{Outcome, Value};
use arakoon_node::client::{Client, ClientConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often a condition is looked at, virtual ms.
const POLL_MS: u64 = 50;
/// How long the healed cluster may take to catch up before the final reads, virtual ms.
const SETTLE_MS: u64 = 30_000;
/// How long after the last step a master is looked for (`master_within`), virtual ms.
const MASTER_WAIT_MS: u64 = 30_000;
/// The checker's budget, real time.
const CHECK_LIMIT: Duration = Duration::from_secs(60);

/// What one seed of a drill found on tier B.
#[derive(Debug, Clone)]
pub struct TurmoilDrillRun {
    pub seed: u64,
    /// Whether the drill's expectation was met (for `expect: violation`, that a check broke).
    pub passed: bool,
    /// What broke, or that every check held.
    pub verdict: String,
    pub ops_ok: u64,
    pub ops_failed: u64,
    pub ops_unknown: u64,
    /// What the steps did, at which virtual ms.
    pub fault_log: Vec<(u64, String)>,
    /// Every fault applied, in order, with its step's index (targets resolved).
    pub resolved: Vec<(usize, Resolved)>,
    /// The history as JSON lines: single-key operations, then sequences and ranges.
    pub history: (String, String),
    /// Every client operation, by call time (for a report's timeline).
    pub ops: Vec<OpSummary>,
    /// "linearizable", or why there is no verdict, or what broke.
    pub linearizability: String,
    /// When nodes went down ("down") and were started again ("starting"): virtual ms, node.
    pub roles: Vec<(u64, usize, String)>,
    /// The first master after the last step, ms after it.
    pub master_after_ms: Option<u64>,
    /// What the drill's collapse steps did.
    pub collapses: CollapseTally,
    /// How many times a node put a peer's fetched head in place of its own.
    pub adoptions: u64,
    pub virtual_ms: u64,
    pub wall: Duration,
}

impl TurmoilDrillRun {
    /// The run as the one outcome type; `replay` is the command that runs it again.
    pub fn outcome(self, d: &Drill, replay: String) -> arakoon_chaos::outcome::DrillOutcome {
        let mut extra = serde_json::Map::new();
        extra.insert("virtual_ms".into(), self.virtual_ms.into());
        extra.insert("wall_clock_ms".into(), (self.wall.as_millis() as u64).into());
        extra.insert("x_real_time".into(), (self.speed().round() as u64).into());
        arakoon_chaos::outcome::DrillOutcome {
            drill: d.clone(),
            tier: arakoon_chaos::faults::Tier::Turmoil,
            seed: self.seed,
            passed: self.passed,
            verdict: self.verdict,
            replay,
            ops_ok: self.ops_ok,
            ops_failed: self.ops_failed,
            ops_unknown: self.ops_unknown,
            linearizability: self.linearizability,
            master_after_last_step_ms: self.master_after_ms,
            end_ms: self.virtual_ms,
            histories: Some(self.history),
            restarts: arakoon_chaos::outcome::restarts_from_roles(&self.roles),
            roles: self.roles,
            fault_log: self.fault_log,
            ops: self.ops,
            client_lanes: d.workload.clients.max(1),
            extra,
            trace: Vec::new(),
            logs: Vec::new(),
        }
    }

    /// Virtual seconds per real second.
    pub fn speed(&self) -> f64 {
        self.virtual_ms as f64 / 1000.0 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// How often a collapse step with a duration (`for: 3s`) asks again, virtual ms (the sandbox's
/// pace).
const COLLAPSE_EVERY_MS: u64 = 100;

/// What the director asks the harness to do between two steps.
#[derive(Debug, Clone)]
enum Command {
    Crash(Vec<usize>),
    /// The nodes' next fsync fails: each stops (and starts again later, [`FallRestarts`]).
    FailFsync(Vec<usize>),
    Stop(Vec<usize>),
    Restart(Vec<usize>),
    /// Which node pairs may talk (`reach[a][b]`); the others are cut.
    Links(Vec<Vec<bool>>),
    Latency(u64),
    Heal,
    /// Heal and restart every node that is down.
    Settle,
    /// The nodes' disks are lost (the next start rebuilds them from a peer).
    Wipe(Vec<usize>),
    /// A bit of each node's TLog flips while it is down (`pick` says where).
    Bitflip(Vec<usize>, u64),
    /// A partial entry after the end of each node's last TLog file.
    TornTail(Vec<usize>),
}

/// What the director and the harness share (both run on this thread).
#[derive(Default)]
struct Board {
    commands: Vec<Command>,
    /// Which nodes run, as the harness last left them.
    up: Vec<bool>,
    log: Vec<(u64, String)>,
    roles: Vec<(u64, usize, String)>,
    broke: Option<String>,
    master_after_ms: Option<u64>,
    /// Every fault the director applied, in order, with its step's index.
    resolved: Vec<(usize, Resolved)>,
    recorder: Recorder,
    ok: u64,
    failed: u64,
    unknown: u64,
    /// What the drill's collapse steps did.
    collapses: CollapseTally,
    /// Heads the nodes adopted, counted on their disks at the end.
    adoptions: u64,
}

type Shared = Rc<RefCell<Board>>;

fn now_ms() -> u64 {
    now_us() / 1000
}

async fn sleep_until_ms(ms: u64) {
    let now = now_ms();
    if ms > now {
        tokio::time::sleep(Duration::from_millis(ms - now)).await;
    }
}

/// Lets the harness carry out the commands handed to it (it does between two steps).
async fn next_tick() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Runs `seed` of `drill` on tier B and judges it. Prints nothing.
pub fn run_drill(drill: &Drill, seed: u64) -> TurmoilDrillRun {
    let started = Instant::now();
    let board: Shared = Rc::new(RefCell::new(Board {
        // One process more than clients: the director's final reads.
        recorder: Recorder::new(drill.workload.clients + 1),
        up: vec![true; drill.cluster.nodes],
        ..Board::default()
    }));
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| simulate(drill, seed, &board)))
            .unwrap_or_else(|panic| Err(TierBError::from_panic(panic.as_ref())));
    let mut b = board.borrow_mut();
    let virtual_ms = *outcome.as_ref().unwrap_or(&0);
    let mut broke = match outcome {
        Err(e) => Some(e.to_string()),
        Ok(_) => b.broke.take(),
    };
    let recorder = std::mem::take(&mut b.recorder);
    let history = recorder.to_jsonl();
    let ops = recorder.summaries();
    let linearizability = if broke.is_none() {
        match recorder.check(CHECK_LIMIT) {
            Linearizability::Linearizable => "linearizable".to_string(),
            Linearizability::Unknown(why) => format!("unknown: {why}"),
            Linearizability::Violated(detail) => {
                broke = Some(format!("linearizable: {detail}"));
                format!("violated: {detail}")
            }
        }
    } else {
        "not checked: the run broke first".to_string()
    };
    let (passed, verdict) = real_client::judge(drill, broke, b.master_after_ms);
    TurmoilDrillRun {
        seed,
        passed,
        verdict,
        ops_ok: b.ok,
        ops_failed: b.failed,
        ops_unknown: b.unknown,
        fault_log: std::mem::take(&mut b.log),
        resolved: std::mem::take(&mut b.resolved),
        history,
        ops,
        linearizability,
        roles: std::mem::take(&mut b.roles),
        master_after_ms: b.master_after_ms,
        collapses: std::mem::take(&mut b.collapses),
        adoptions: b.adoptions,
        virtual_ms,
        wall: started.elapsed(),
    }
}

/// Builds and runs the simulation; returns the virtual ms it took.
fn simulate(drill: &Drill, seed: u64, board: &Shared) -> Result<u64, TierBError> {
    let duration_ms = drill.duration.0;
    // Room for the steps, the settling and the final reads; a run that needs more is stuck.
    let limit_ms = duration_ms + SETTLE_MS + MASTER_WAIT_MS + 60_000;
    let latency_max_ms = 5;
    let mut sim = builder(seed, latency_max_ms, limit_ms).build();
    let spec = ClusterSpec {
        nodes: drill.cluster.nodes,
        lease_ms: drill.cluster.lease.0,
        seed,
        latency_max_ms,
        overrides: drill.cluster.config.clone(),
    };
    let mut cluster = Cluster::start(&mut sim, &spec)?;
    let mut cfg = ClientConfig::from_cluster(&cluster.config);
    cfg.request_timeout = Duration::from_millis(drill.workload.op_timeout.0.max(1));
    cfg.connect_timeout = Duration::from_millis(500);
    cfg.attempts = 3;
    cfg.backoff = Duration::from_millis(50);
    for c in 0..drill.workload.clients {
        let client_seed = seed.wrapping_mul(0x9e37_79b9).wrapping_add(c as u64);
        let fut = client_loop(
            c,
            cfg.clone(),
            drill.workload.clone(),
            client_seed,
            duration_ms,
            board.clone(),
        );
        sim.client(format!("client{c}"), fut);
    }
    sim.client("director", direct(drill.clone(), seed, cfg, board.clone()));
    let mut others: Vec<String> =
        (0..drill.workload.clients).map(|c| format!("client{c}")).collect();
    others.push("director".into());
    cluster.set_other_hosts(others.iter().map(|h| sim.lookup(h.as_str())).collect());
    // A node that stopped after a failed fsync starts again 0.2 to 3 s later, half the time
    // after a power loss of its machine, as the simulation tier's world restarts it.
    let mut restarts = FallRestarts::new(seed);
    loop {
        cluster.reap(&mut sim).map_err(TierBError::Stopped)?;
        let repaired = cluster.new_repair_lines();
        if !repaired.is_empty() {
            let now_ms = sim.elapsed().as_millis() as u64;
            board.borrow_mut().log.extend(repaired.into_iter().map(|l| (now_ms, l)));
        }
        restarts.carry_out(&mut sim, &mut cluster, board);
        let commands = std::mem::take(&mut board.borrow_mut().commands);
        for command in commands {
            carry_out(&mut sim, &mut cluster, command).map_err(TierBError::Stopped)?;
        }
        let up: Vec<bool> = (0..cluster.nodes()).map(|k| cluster.is_up(k)).collect();
        let now_ms = sim.elapsed().as_millis() as u64;
        let mut b = board.borrow_mut();
        for (k, &is_up) in up.iter().enumerate() {
            if b.up[k] != is_up {
                b.roles.push((now_ms, k, if is_up { "starting" } else { "down" }.to_string()));
            }
        }
        b.up = up;
        drop(b);
        let finished = sim.step().map_err(|e| TierBError::Stopped(e.to_string()))?;
        if finished {
            board.borrow_mut().adoptions = cluster.heads_taken();
            return Ok(sim.elapsed().as_millis() as u64);
        }
    }
}

/// The restarts of nodes that stopped after a failed fsync: when, and after a power loss or not,
/// drawn from the seed.
struct FallRestarts {
    rng: ChaCha8Rng,
    /// The falls of [`Cluster::falls`] already scheduled.
    seen: usize,
    /// `(due_ms, node, power_loss)`.
    due: Vec<(u64, usize, bool)>,
}

impl FallRestarts {
    fn new(seed: u64) -> FallRestarts {
        FallRestarts {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6673_796E_635F_6661),
            seen: 0,
            due: Vec::new(),
        }
    }

    fn carry_out(&mut self, sim: &mut turmoil::Sim<'_>, cluster: &mut Cluster, board: &Shared) {
        let now_ms = sim.elapsed().as_millis() as u64;
        for (k, why) in &cluster.falls[self.seen..] {
            let in_ms = self.rng.gen_range(200..3_000);
            let power_loss = self.rng.gen_bool(0.5);
            let then = if power_loss { " after a power loss" } else { "" };
            let note = format!("{why}; it starts again in {in_ms} ms{then}");
            board.borrow_mut().log.push((now_ms, note));
            self.due.push((now_ms + in_ms, *k, power_loss));
        }
        self.seen = cluster.falls.len();
        let (ready, later): (Vec<_>, Vec<_>) = self.due.iter().partition(|(at, ..)| *at <= now_ms);
        self.due = later;
        for (_, k, power_loss) in ready {
            cluster.restart_after_fall(sim, k, power_loss);
        }
    }
}

fn carry_out(
    sim: &mut turmoil::Sim<'_>,
    cluster: &mut Cluster,
    command: Command,
) -> Result<(), String> {
    match command {
        Command::Crash(ks) => ks.into_iter().for_each(|k| cluster.crash(sim, k)),
        Command::FailFsync(ks) => ks.into_iter().for_each(|k| cluster.fail_next_fsync(k)),
        Command::Stop(ks) => ks.into_iter().for_each(|k| cluster.stop(k)),
        Command::Restart(ks) => ks.into_iter().for_each(|k| cluster.restart(sim, k)),
        Command::Links(reach) => cluster.set_links(sim, |a, b| reach[a][b]),
        Command::Latency(ms) => cluster.set_latency_max(sim, ms),
        Command::Heal => cluster.heal(sim),
        Command::Settle => {
            cluster.heal(sim);
            for k in 0..cluster.nodes() {
                cluster.restart(sim, k);
            }
        }
        Command::Wipe(ks) => ks.into_iter().for_each(|k| cluster.wipe(sim, k)),
        Command::Bitflip(ks, pick) => {
            for k in ks {
                cluster.flip_down(k, pick)?;
            }
        }
        Command::TornTail(ks) => {
            for k in ks {
                cluster.tear_down(sim, k)?;
            }
        }
    }
    Ok(())
}

/// The director's host: plays the drill's steps through the one drill engine
/// ([`Director`]) with this tier's [`Backend`], measures `master_within`, settles the cluster and
/// reads every key at the end.
async fn direct(drill: Drill, seed: u64, cfg: ClientConfig, board: Shared) -> turmoil::Result {
    let mut director = Director::new(drill.steps.clone(), drill.cluster.nodes, seed);
    let mut backend = TurmoilBackend {
        cfg: cfg.clone(),
        board: board.clone(),
        sync_target: None,
        rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6469_736B_5F64_6D67),
    };
    let log = |lines: &[(u64, String)]| board.borrow_mut().log.extend_from_slice(lines);
    drive(&mut director, &mut backend, now_ms, sleep_until_ms, log).await;
    if let Some(b) = director.broke() {
        board.borrow_mut().broke = Some(b.to_string());
    }
    board.borrow_mut().resolved = director.resolved().to_vec();
    if let Some(done) = director.finished_ms() {
        let mut probe = Client::with_network(cfg.clone(), TurmoilNet);
        while now_ms() < done + MASTER_WAIT_MS {
            if probe.find_master().await.is_ok() {
                board.borrow_mut().master_after_ms = Some(now_ms() - done);
                break;
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }
    sleep_until_ms(drill.duration.0).await;
    // Heal, restart what is down, wait until every node applied what was committed.
    board.borrow_mut().commands.push(Command::Settle);
    next_tick().await;
    let begin = now_ms();
    let target = committed_anywhere(&cfg).await;
    let mut settled = false;
    while now_ms() < begin + SETTLE_MS {
        if holds(&cfg, &board, Condition::AllInSync, target).await
            && Client::with_network(cfg.clone(), TurmoilNet).find_master().await.is_ok()
        {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !settled && board.borrow().broke.is_none() {
        board.borrow_mut().broke = Some(format!(
            "in_sync: the nodes did not all catch up within {SETTLE_MS} ms of the heal"
        ));
    }
    // One process more than clients: the director reads every key once more.
    let client = Client::with_network(cfg.clone(), TurmoilNet);
    real_client::final_reads(
        drill.workload.clients,
        drill.workload.keys,
        client,
        &Journaled(&board),
    )
    .await;
    Ok(())
}

/// The last slot any node applied.
async fn committed_anywhere(cfg: &ClientConfig) -> Option<u64> {
    real_client::committed_anywhere(&Client::with_network(cfg.clone(), TurmoilNet)).await
}

async fn holds(
    cfg: &ClientConfig,
    board: &Shared,
    condition: Condition,
    target: Option<u64>,
) -> bool {
    match condition {
        Condition::MasterElected => {
            Client::with_network(cfg.clone(), TurmoilNet).find_master().await.is_ok()
        }
        Condition::AllUp | Condition::AllInSync => {
            if board.borrow().up.iter().any(|up| !up) {
                return false;
            }
            real_client::nodes_answer(
                &Client::with_network(cfg.clone(), TurmoilNet),
                condition,
                target,
            )
            .await
        }
    }
}

/// Turmoil's primitives for the director: the view and the conditions are asked of the nodes
/// over the simulated network; a fault is handed to the harness, which applies it between two
/// steps of the simulation.
struct TurmoilBackend {
    cfg: ClientConfig,
    board: Shared,
    /// What was committed anywhere when the current `all_in_sync` wait began.
    sync_target: Option<u64>,
    /// Where a bitflip strikes.
    rng: ChaCha8Rng,
}

impl Backend for TurmoilBackend {
    async fn view(&mut self) -> ClusterView {
        let up = self.board.borrow().up.clone();
        let paused = vec![false; up.len()];
        let master = Client::with_network(self.cfg.clone(), TurmoilNet).find_master().await.ok();
        ClusterView { up, paused, master }
    }

    async fn holds(&mut self, condition: Condition, begin: bool) -> bool {
        if begin {
            self.sync_target = committed_anywhere(&self.cfg).await;
        }
        holds(&self.cfg, &self.board, condition, self.sync_target).await
    }

    async fn apply(&mut self, r: &Resolved) -> Result<String, BackendError> {
        let n = self.cfg.nodes.len();
        let ks = r.strikes.nodes().to_vec();
        let command = match (&r.fault, &r.strikes) {
            (Fault::Kill(_), _) => Command::Crash(ks),
            // Every node's runtime and what its disk had not synced.
            (Fault::PowerLoss, _) => Command::Crash((0..n).collect()),
            (Fault::FsyncFail(_), _) => Command::FailFsync(ks),
            (Fault::Stop(_), _) => Command::Stop(ks),
            (Fault::Restart(_), _) => Command::Restart(ks),
            (Fault::Wipe(_), _) => Command::Wipe(ks),
            (Fault::Bitflip { store: false, .. }, _) => Command::Bitflip(ks, self.rng.gen()),
            (Fault::TornTail(_), _) => Command::TornTail(ks),
            (Fault::Partition(_) | Fault::Isolate(_), Strikes::Groups(groups)) => {
                let mut side = vec![usize::MAX; n];
                for (g, nodes) in groups.iter().enumerate() {
                    nodes.iter().for_each(|&k| side[k] = g);
                }
                Command::Links(link_matrix(n, |a, b| side[a] == side[b]))
            }
            (Fault::Ring, _) => Command::Links(link_matrix(n, |i, j| ring_link(n, i, j))),
            (Fault::Bridge, _) => Command::Links(link_matrix(n, |i, j| bridge_link(n, i, j))),
            (Fault::Heal, _) => Command::Heal,
            (Fault::Delay(d), _) => Command::Latency(d.0),
            (Fault::DropMaster, Strikes::Master(m)) => {
                // The client finds the master itself; the note says if it was another by now.
                let mut client = Client::with_network(self.cfg.clone(), TurmoilNet);
                return Ok(match client.drop_master().await {
                    Ok(()) => String::new(),
                    Err(e) => format!("n{m} did not step down: {e}"),
                });
            }
            (Fault::Collapse { keep, duration, .. }, _) => {
                let targets: Vec<(usize, SocketAddr)> =
                    ks.iter().map(|&k| (k, self.cfg.nodes[k].1)).collect();
                let (id, keep) = (self.cfg.cluster_id.clone(), *keep);
                let Some(d) = duration else {
                    let mut tally = CollapseTally::default();
                    for &(k, addr) in &targets {
                        tally.add(k, ask_collapse(&id, addr, keep).await);
                    }
                    self.board.borrow_mut().collapses.merge(&tally);
                    return Ok(tally.note());
                };
                // Again and again until the duration is over, while the next steps go on.
                let (until_ms, board, what) =
                    (now_ms() + d.0, self.board.clone(), r.fault.to_string());
                tokio::task::spawn_local(async move {
                    let mut tally = CollapseTally::default();
                    while now_ms() < until_ms {
                        for &(k, addr) in &targets {
                            tally.add(k, ask_collapse(&id, addr, keep).await);
                        }
                        tokio::time::sleep(Duration::from_millis(COLLAPSE_EVERY_MS)).await;
                    }
                    let mut b = board.borrow_mut();
                    b.collapses.merge(&tally);
                    b.log.push((now_ms(), format!("{what}, ended ({})", tally.note())));
                });
                return Ok("in the background".to_string());
            }
            (other, _) => {
                return Err(BackendError::Unsupported { tier: "turmoil", fault: other.name() })
            }
        };
        let note = match r.fault {
            Fault::Bridge => format!("bridge n{}", bridge_node(n)),
            _ => String::new(),
        };
        self.board.borrow_mut().commands.push(command);
        // Let the harness carry it out before the next step.
        next_tick().await;
        Ok(note)
    }
}

/// One client: draws operations by the drill's weights and pace until the drill's duration is
/// over, records each in the history.
async fn client_loop(
    c: usize,
    cfg: ClientConfig,
    workload: WorkloadSpec,
    seed: u64,
    end_ms: u64,
    board: Shared,
) -> turmoil::Result {
    let client = Client::with_network(cfg, TurmoilNet);
    let (pause_min_us, pause_max_us) = workload.pause_us();
    let pause_us = (pause_min_us, pause_max_us.max(pause_min_us));
    real_client::run_client(c, client, &workload, seed, pause_us, &Journaled(&board), || {
        now_ms() < end_ms
    })
    .await;
    Ok(())
}

/// The board as the run's journal (a type of this crate: the trait is chaos's).
struct Journaled<'a>(&'a RefCell<Board>);

/// The board keeps the history: each event stamped in virtual time, and counted.
impl Journal for Journaled<'_> {
    fn call(&self, c: usize, op: u64, space: Space, raw: RawCall) {
        self.0.borrow_mut().recorder.call(c, op, now_us(), space, raw);
    }

    fn done(&self, c: usize, op: u64, outcome: Outcome, output: Option<Value>) {
        let mut b = self.0.borrow_mut();
        match outcome {
            Outcome::Ok => b.ok += 1,
            Outcome::Fail => b.failed += 1,
            Outcome::Unknown => b.unknown += 1,
        }
        b.recorder.done(c, op, now_us(), outcome, output);
    }
}
