//! Drills on the sandbox tier: real `arakoon` processes on loopback, real clients, the drill's
//! faults applied through the sandbox supervisor, the history checked like the simulator's.
//!
//! One seed runs like this: a sandbox is brought up ([`crate::sandbox_up::up`], its supervisor
//! tied to this process) with the nodes behind the peer-link proxies; client tasks issue the
//! drill's mix of operations and record every call and answer with wall-clock times
//! ([`crate::real_client`], [`crate::history`]); the one drill engine ([`crate::director`])
//! resolves the steps' targets as on every tier and decides when each fires, and
//! [`backend::SandboxBackend`] applies them. When the drill's duration is over the clients stop,
//! the network heals, stopped nodes restart, and once every node has caught up each key is read
//! once more, so that a lost acknowledged write shows in the history. The history is then
//! checked (per key, and the sequences as one map), and the sandbox is taken down whatever
//! happened: its supervisor is told to shut down, every process of the sandbox is killed by PID
//! and the supervisor reaped.
//!
//! While it runs, an observer ([`observe`]) polls the nodes to draw the node lanes of the
//! report's timeline and keeps the [`Watch`] current.
//!
//! The seed draws the clients' operations and the random targets; the timing of real processes
//! is not reproducible, so a seed names a schedule, not a run.
//!
//! Where things go: a new fault is a match arm of [`backend`]'s `apply` (the catalogue, the
//! resolution and the judge are the director's); a new way to report is a [`Watch`].

pub(crate) mod backend;
mod collapse;
mod observe;

pub use backend::StepError;

use crate::director::Director;
use crate::drill::{Drill, WorkloadSpec};
use crate::history::{Linearizability, OpSummary, Recorder, Space};
use crate::real_client::{self, Journal};
use crate::sandbox::{self, SandboxState};
use crate::sandbox_control::{self, Request as Control};
use crate::sandbox_up::{self, UpError, UpPlan};
use crate::watch::Watch;
use arakoon_checker::import::RawCall;
use arakoon_checker::{Outcome, Value as HValue};
use arakoon_node::client::{Client, ClientConfig};
use backend::{Background, FaultLog, SandboxBackend};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one seed on the sandbox found.
#[derive(Debug)]
pub struct SandboxRun {
    pub passed: bool,
    pub verdict: String,
    pub ops_ok: u64,
    pub ops_failed: u64,
    pub ops_unknown: u64,
    pub fault_log: Vec<(u64, String)>,
    /// "linearizable", or why there is no verdict.
    pub linearizability: String,
    pub master_after_last_step_ms: Option<u64>,
    /// Wall-clock ms from the clients' start to the end of the final reads.
    pub end_ms: u64,
    /// The single-key and the sequence history, JSON lines.
    pub histories: (String, String),
    pub ops: Vec<OpSummary>,
    /// History processes per lane: the clients and the final reader.
    pub client_lanes: usize,
    /// Role changes seen by the observer: time (ms), node, role.
    pub roles: Vec<(u64, usize, String)>,
    /// New processes of a node seen by the observer: time (ms), node.
    pub restarts: Vec<(u64, usize)>,
    /// The nodes' and the supervisor's logs (file name, the last `LOG_BYTES_MAX` of it), read
    /// before the sandbox is removed, when asked for.
    pub logs: Vec<(String, String)>,
}

impl SandboxRun {
    /// The run as the one outcome type; `replay` is the command that runs it again.
    pub fn outcome(self, d: &Drill, seed: u64, replay: String) -> crate::outcome::DrillOutcome {
        let mut extra = serde_json::Map::new();
        extra.insert("wall_clock_ms".into(), self.end_ms.into());
        crate::outcome::DrillOutcome {
            drill: d.clone(),
            tier: crate::faults::Tier::Sandbox,
            seed,
            passed: self.passed,
            verdict: self.verdict,
            replay,
            ops_ok: self.ops_ok,
            ops_failed: self.ops_failed,
            ops_unknown: self.ops_unknown,
            linearizability: self.linearizability,
            master_after_last_step_ms: self.master_after_last_step_ms,
            end_ms: self.end_ms,
            histories: Some(self.histories),
            fault_log: self.fault_log,
            roles: self.roles,
            restarts: self.restarts,
            ops: self.ops,
            client_lanes: self.client_lanes,
            extra,
            trace: Vec::new(),
            logs: self.logs,
        }
    }
}

/// Where and with what a seed runs.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// Each seed's sandbox is a fresh directory in here, removed after the seed.
    pub base: PathBuf,
    /// The `arakoon` binary the nodes run.
    pub arakoon: PathBuf,
    /// The program and arguments that run [`crate::sandbox_supervisor::run`]; the runner adds
    /// `--dir DIR` (`arakoon-admin` passes itself with `sandbox supervise`).
    pub supervisor: (PathBuf, Vec<String>),
    /// Read the processes' logs into [`SandboxRun::logs`] before the directory goes.
    pub keep_logs: bool,
    /// How long the sandbox may take to elect its first master.
    pub up_within: Duration,
}

/// Why a seed could not be run at all (a run that finds a bug is a [`SandboxRun`] that did not
/// pass, not an error).
#[derive(Debug, thiserror::Error)]
pub enum SandboxDrillError {
    #[error("cannot bring the sandbox up in {}: {source}", dir.display())]
    Up { dir: PathBuf, source: UpError },
    #[error("cannot start the drill's runtime: {0}")]
    Runtime(io::Error),
    /// The sandbox's state file went missing or bad under the run.
    #[error(
        "{}: cannot read the sandbox's state: {source} (the supervisor's log, supervisor.log \
         there, says why)", dir.display()
    )]
    State { dir: PathBuf, source: crate::sandbox::SandboxError },
    #[error("the observer of the nodes failed: {0}")]
    Observer(tokio::task::JoinError),
}

/// How much of each log a report keeps (the end of it).
const LOG_BYTES_MAX: usize = 4 << 20;
/// How long after the drill's last step a master may take before the run stops looking.
const MASTER_AFTER_MAX: Duration = Duration::from_secs(30);
/// How long the supervisor may take to exit once shut down and killed before it is left to
/// init.
const REAP_WITHIN: Duration = Duration::from_secs(5);

/// Stops the sandbox when dropped, whatever happened: the supervisor is told to shut down,
/// every process of the sandbox is killed by PID, the supervisor (our child) is reaped and the
/// directory removed (unless `keep_dir`: a soak's `--keep`).
pub(crate) struct Guard {
    pub(crate) dir: PathBuf,
    pub(crate) supervisor_pid: Option<u32>,
    pub(crate) keep_dir: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = sandbox_control::send(&self.dir, &Control::Shutdown);
        for pid in sandbox::processes_of(&self.dir) {
            // SAFETY: kill(2) has no memory-safety preconditions; pid runs in this sandbox.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
        if let Some(pid) = self.supervisor_pid {
            reap(pid, REAP_WITHIN);
        }
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Waits (polling, at most `within`) for our child `pid` to exit, so that it leaves no zombie.
fn reap(pid: u32, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let mut status = 0;
        // SAFETY: waitpid(2) on our own child, with a valid pointer to a local int.
        let rc = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
        if rc != 0 {
            return; // reaped, or not ours to reap (-1)
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What the run's tasks share: the history, the counters, the fault log and the watcher.
struct Shared {
    recorder: Mutex<Recorder>,
    started: Instant,
    stop: AtomicBool,
    ok: AtomicU64,
    failed: AtomicU64,
    unknown: AtomicU64,
    /// What the steps did: time (ms), what.
    faults: Mutex<Vec<(u64, String)>>,
    /// Set once the final reads are over: the observer stops.
    observed_enough: AtomicBool,
    watch: Arc<dyn Watch>,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// Logs what a step did, and shows it.
    fn fault(&self, at_ms: u64, what: String) {
        self.watch.fault(at_ms, &what);
        self.faults.lock().expect("fault log").push((at_ms, what));
    }
}

/// Runs one seed of `drill` on real processes under a fresh directory in `plan.base`, and
/// takes them down again whatever happens.
pub fn run(
    drill: &Drill,
    seed: u64,
    plan: &RunPlan,
    watch: Arc<dyn Watch>,
) -> Result<SandboxRun, SandboxDrillError> {
    let dir = plan.base.join(format!("sandbox-{}-{seed}-{}", drill.name, std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (program, mut args) = plan.supervisor.clone();
    args.extend(["--dir".to_string(), dir.display().to_string()]);
    let up_plan = UpPlan {
        dir: dir.clone(),
        nodes: drill.cluster.nodes,
        lease_ms: drill.cluster.lease.0.max(1),
        settings: drill.cluster.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        arakoon: plan.arakoon.clone(),
        // Should this process die, the supervisor follows, and with it every node.
        owner_pid: Some(std::process::id()),
        supervisor: (program, args),
        timeout: plan.up_within,
        // Ctrl-C keeps ending the drill (the supervisor follows); see `UpPlan::interruptible`.
        interruptible: false,
    };
    let mut guard = Guard { dir: dir.clone(), supervisor_pid: None, keep_dir: false };
    let up = sandbox_up::up(&up_plan)
        .map_err(|source| SandboxDrillError::Up { dir: dir.clone(), source })?;
    guard.supervisor_pid = Some(up.supervisor_pid);
    // The steps talk to the supervisor with blocking calls on this thread (a restart waits for
    // the node); the clients and the observer run on the workers and go on meanwhile.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(SandboxDrillError::Runtime)?;
    let mut result = runtime.block_on(run_inside(drill, seed, &guard.dir, watch));
    if let (Ok(run), true) = (&mut result, plan.keep_logs) {
        run.logs = logs(&guard.dir);
    }
    drop(runtime);
    drop(guard);
    result
}

/// Each node's log and the supervisor's, the end of each.
fn logs(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, PathBuf)> = SandboxState::load(dir)
        .map(|s| s.names())
        .unwrap_or_default()
        .into_iter()
        .map(|n| (format!("{n}.log"), sandbox::node_log(dir, &n)))
        .collect();
    files.push(("supervisor.log".into(), dir.join("supervisor.log")));
    files
        .into_iter()
        .filter_map(|(name, path)| {
            let bytes = std::fs::read(path).ok()?;
            let tail = &bytes[bytes.len().saturating_sub(LOG_BYTES_MAX)..];
            Some((name, String::from_utf8_lossy(tail).into_owned()))
        })
        .collect()
}

/// The drill's clients' settings: a few short attempts, so that a call into a fault ends (and
/// is recorded) quickly.
fn client_config(dir: &Path) -> Result<ClientConfig, SandboxDrillError> {
    let s = SandboxState::load(dir)
        .map_err(|source| SandboxDrillError::State { dir: dir.to_path_buf(), source })?;
    let nodes = s
        .nodes
        .iter()
        .map(|n| (n.name.clone(), std::net::SocketAddr::from(([127, 0, 0, 1], n.client_port))))
        .collect();
    let mut c = ClientConfig::new(&s.cluster_id, nodes);
    c.request_timeout = Duration::from_secs(2);
    c.connect_timeout = Duration::from_millis(500);
    c.attempts = 3;
    c.backoff = Duration::from_millis(50);
    Ok(c)
}

async fn run_inside(
    drill: &Drill,
    seed: u64,
    dir: &Path,
    watch: Arc<dyn Watch>,
) -> Result<SandboxRun, SandboxDrillError> {
    let cfg = client_config(dir)?;
    let shared = Arc::new(Shared {
        // One more process than clients: the final reads.
        recorder: Mutex::new(Recorder::new(drill.workload.clients + 1)),
        started: Instant::now(),
        stop: false.into(),
        ok: 0.into(),
        failed: 0.into(),
        unknown: 0.into(),
        faults: Mutex::new(Vec::new()),
        observed_enough: false.into(),
        watch,
    });
    let observer = {
        let (dir, cfg, shared) = (dir.to_path_buf(), cfg.clone(), shared.clone());
        let label = (drill.name.clone(), seed);
        tokio::spawn(async move { observe::observe(dir, cfg, shared, label).await })
    };
    let mut clients = Vec::new();
    for c in 0..drill.workload.clients {
        let (cfg, shared) = (cfg.clone(), shared.clone());
        let workload = drill.workload.clone();
        let client_seed = seed.wrapping_mul(0x9e37_79b9).wrapping_add(c as u64);
        clients.push(tokio::spawn(async move {
            client_loop(c, cfg, workload, client_seed, shared).await;
        }));
    }
    let background = Background { log: shared.clone(), tasks: Vec::new() };
    let mut backend = SandboxBackend {
        dir: dir.to_path_buf(),
        cfg: cfg.clone(),
        rng: ChaCha8Rng::seed_from_u64(seed),
        background,
        sync_target: None,
    };
    // The one drill engine decides what strikes whom and when; this tier applies it.
    let mut director = Director::new(drill.steps.clone(), drill.cluster.nodes, seed);
    let started = shared.started;
    crate::director::drive(
        &mut director,
        &mut backend,
        || started.elapsed().as_millis() as u64,
        |ms| {
            let due = started + Duration::from_millis(ms);
            tokio::time::sleep_until(due.max(Instant::now()).into())
        },
        |lines| {
            for (at, line) in lines {
                shared.fault(*at, line.clone());
            }
        },
    )
    .await;
    let mut broke = director.broke().map(|b| b.to_string());
    let finished = director.finished_ms().map(|ms| started + Duration::from_millis(ms));
    let background = backend.background;
    // master_within: measured from the last step.
    let mut master_after: Option<u64> = None;
    if let Some(done) = finished {
        let mut probe = Client::new(cfg.clone());
        while done.elapsed() < MASTER_AFTER_MAX {
            if probe.find_master().await.is_ok() {
                master_after = Some(done.elapsed().as_millis() as u64);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let end = started + Duration::from_millis(drill.duration.0);
    tokio::time::sleep_until(end.max(Instant::now()).into()).await;
    shared.stop.store(true, SeqCst);
    for c in clients {
        let _ = c.await;
    }
    for task in background.tasks {
        let _ = task.await;
    }
    // Heal and settle: every node up and caught up, then a final read of every key.
    let settle = backend::settle(dir, &cfg).await;
    if broke.is_none() {
        if let Err(e) = settle {
            broke = Some(format!("in_sync: {e}"));
        }
    }
    // One process more than clients: the final reads.
    let reader = Client::new(cfg.clone());
    real_client::final_reads(drill.workload.clients, drill.workload.keys, reader, &*shared).await;
    let end_ms = shared.now_us() / 1000;
    shared.observed_enough.store(true, SeqCst);
    let (roles, restarts) = observer.await.map_err(SandboxDrillError::Observer)?;
    let recorder = std::mem::take(&mut *shared.recorder.lock().expect("recorder"));
    let (histories, ops) = (recorder.to_jsonl(), recorder.summaries());
    let mut linearizability = "not checked: a step failed".to_string();
    if broke.is_none() {
        match recorder.check(Duration::from_secs(60)) {
            Linearizability::Linearizable => linearizability = "linearizable".into(),
            Linearizability::Unknown(why) => {
                linearizability = format!("unknown: {why}");
                shared.fault(0, format!("linearizability unknown: {why}"));
            }
            Linearizability::Violated(detail) => {
                linearizability = "violated".into();
                broke = Some(format!("linearizable: {detail}"));
            }
        }
    }
    let (passed, verdict) = real_client::judge(drill, broke, master_after);
    let count = |a: &AtomicU64| a.load(SeqCst);
    let fault_log = std::mem::take(&mut *shared.faults.lock().expect("fault log"));
    Ok(SandboxRun {
        passed,
        verdict,
        ops_ok: count(&shared.ok),
        ops_failed: count(&shared.failed),
        ops_unknown: count(&shared.unknown),
        fault_log,
        linearizability,
        master_after_last_step_ms: master_after,
        end_ms,
        histories,
        ops,
        client_lanes: drill.workload.clients + 1,
        roles,
        restarts,
        logs: Vec::new(),
    })
}

/// One client: draws operations by the drill's weights until the run stops, records each in
/// the history.
async fn client_loop(
    c: usize,
    cfg: ClientConfig,
    workload: WorkloadSpec,
    seed: u64,
    shared: Arc<Shared>,
) {
    // Real processes answer in milliseconds: without a rate, a 0-20 ms pause keeps the load
    // heavy without starving the nodes of the machine's cores.
    let pause_us = match workload.rate {
        Some(_) => workload.pause_us(),
        None => (0, 20_000),
    };
    let go_on = || !shared.stop.load(SeqCst);
    real_client::run_client(c, Client::new(cfg), &workload, seed, pause_us, &*shared, go_on).await;
}

impl FaultLog for Shared {
    fn now_ms(&self) -> u64 {
        self.now_us() / 1000
    }

    fn fault(&self, at_ms: u64, what: String) {
        Shared::fault(self, at_ms, what);
    }
}

/// The run's history: each event stamped in µs since the start, and counted.
impl Journal for Shared {
    fn call(&self, c: usize, op: u64, space: Space, raw: RawCall) {
        self.recorder.lock().expect("recorder").call(c, op, self.now_us(), space, raw);
    }

    fn done(&self, c: usize, op: u64, outcome: Outcome, output: Option<HValue>) {
        let counter = match outcome {
            Outcome::Ok => &self.ok,
            Outcome::Fail => &self.failed,
            Outcome::Unknown => &self.unknown,
        };
        counter.fetch_add(1, SeqCst);
        self.recorder.lock().expect("recorder").done(c, op, self.now_us(), outcome, output);
    }
}
