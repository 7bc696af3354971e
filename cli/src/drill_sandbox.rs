//! Drills on the sandbox tier: real `arakoon` processes on loopback, real clients, the drill's
//! faults applied through the sandbox supervisor, the history checked like the simulator's.
//!
//! One seed runs like this: `arakoon-admin sandbox up` (this same binary, tied to this process)
//! starts the nodes behind the peer-link proxies; client tasks issue the drill's mix of
//! operations and record every call and answer with wall-clock times; a scheduler applies the
//! steps at their times (targets such as `master` are resolved when a step fires, by asking the
//! nodes). When the drill's duration is over the clients stop, the network heals, stopped nodes
//! restart, and once every node has caught up each key is read once more, so that a lost
//! acknowledged write shows in the history. The history is then checked (per key, and the
//! sequences as one map), and the sandbox is taken down whatever happened. The steps are played
//! by the one drill engine (`arakoon_chaos::director`), which resolves targets as on every
//! tier; [`SandboxBackend`] applies them.
//!
//! While it runs, an observer polls the nodes (the supervisor's state for processes, each node's
//! typed `node_state` for its role) to draw the node lanes of the report's timeline (roles, master
//! changes, restarts) and to keep the live display current.
//!
//! The seed draws the clients' operations and the random targets; the timing of real processes
//! is not reproducible, so a seed names a schedule, not a run.

use crate::drill_live::{Live, Status};
use arakoon_chaos::director::{
    bridge_link, bridge_node, ring_link, Backend, BackendError, ClusterView, Command, Director,
    Input, Resolved, Strikes,
};
use arakoon_chaos::drill::{Condition, Drill};
use arakoon_chaos::faults::Fault;
use arakoon_chaos::history::{Linearizability, OpSummary, Recorder, Space};
use arakoon_chaos::proxy::{LinkMode, LinkState};
use arakoon_chaos::real_client::{self, Journal};
use arakoon_chaos::sandbox::{self, NetState, SandboxState};
use arakoon_chaos::sandbox_control::{self, CorruptHow, CorruptTarget, Request as Control};
use arakoon_checker::import::RawCall;
use arakoon_checker::{Outcome, Value as HValue};
use arakoon_node::client::{Client, ClientConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one seed on the sandbox found.
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

/// How much of each log a report keeps (the end of it).
const LOG_BYTES_MAX: usize = 4 << 20;

/// How often the observer polls the nodes; a role held for less may not be seen.
const OBSERVE_EVERY_MS: u64 = 150;
/// How long the observer waits for a node's answer before calling it "starting".
const OBSERVE_TIMEOUT_MS: u64 = 300;

/// Stops the sandbox when dropped, whatever happened.
struct Sandbox {
    dir: PathBuf,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = sandbox_control::send(&self.dir, &Control::Shutdown);
        for pid in sandbox::processes_of(&self.dir) {
            // SAFETY: a plain kill of a process of this sandbox.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Shared {
    recorder: Mutex<Recorder>,
    started: Instant,
    stop: std::sync::atomic::AtomicBool,
    ok: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
    unknown: std::sync::atomic::AtomicU64,
    /// What the steps did: time (ms), what.
    faults: Mutex<Vec<(u64, String)>>,
    /// Set once the final reads are over: the observer stops.
    observed_enough: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// Logs what a step did, and shows it.
    fn fault(&self, live: &Live, at_ms: u64, what: String) {
        live.fault(at_ms, &what);
        self.faults.lock().expect("fault log").push((at_ms, what));
    }
}

/// Runs one seed of `drill` on real processes under a fresh directory in `base`; with
/// `keep_logs`, the processes' logs are read before the directory goes.
pub fn run(
    drill: &Drill,
    seed: u64,
    base: &Path,
    live: &Live,
    keep_logs: bool,
) -> Result<SandboxRun, String> {
    let dir = base.join(format!("sandbox-{}-{seed}-{}", drill.name, std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let exe = std::env::current_exe().map_err(|e| format!("cannot find arakoon-admin: {e}"))?;
    let lease_ms = drill.cluster.lease.0.max(1);
    let up = std::process::Command::new(&exe)
        .args(["sandbox", "up", "--nodes", &drill.cluster.nodes.to_string(), "--lease-ms"])
        .arg(lease_ms.to_string())
        .args(
            drill
                .cluster
                .config
                .iter()
                .flat_map(|(k, v)| ["--set".to_string(), format!("{k}={v}")]),
        )
        .arg("--dir")
        .arg(&dir)
        .arg("--exit-with-pid")
        .arg(std::process::id().to_string())
        .output()
        .map_err(|e| format!("cannot run `arakoon-admin sandbox up`: {e}"))?;
    let guard = Sandbox { dir: dir.clone() };
    if !up.status.success() {
        return Err(format!(
            "sandbox up failed: {}{}",
            String::from_utf8_lossy(&up.stdout),
            String::from_utf8_lossy(&up.stderr)
        ));
    }
    // The steps talk to the supervisor with blocking calls on this thread (a restart waits for
    // the node); the clients and the observer run on the workers and go on meanwhile.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let mut result = runtime.block_on(run_inside(drill, seed, &guard.dir, live));
    if let (Ok(run), true) = (&mut result, keep_logs) {
        run.logs = logs(&guard.dir);
    }
    drop(guard);
    result
}

/// Each node's log and the supervisor's, the end of each.
fn logs(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, PathBuf)> = state(dir)
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

fn state(dir: &Path) -> Result<SandboxState, String> {
    SandboxState::load(dir).map_err(|e| format!("{}: {e}", dir.display()))
}

fn client_config(dir: &Path) -> Result<ClientConfig, String> {
    let s = state(dir)?;
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
    live: &Live,
) -> Result<SandboxRun, String> {
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
    });
    let observer = {
        let (dir, cfg, shared, live) =
            (dir.to_path_buf(), cfg.clone(), shared.clone(), live.clone());
        let label = (drill.name.clone(), seed);
        tokio::spawn(async move { observe(dir, cfg, shared, live, label).await })
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
    let background = Background { shared: shared.clone(), live: live.clone(), tasks: Vec::new() };
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
    let mut input = Input::Tick;
    loop {
        let command = director.handle(started.elapsed().as_millis() as u64, input);
        for (at, line) in director.new_lines().to_vec() {
            shared.fault(live, at, line);
        }
        input = match command {
            Command::WaitUntil(ms) => {
                let due = started + Duration::from_millis(ms);
                tokio::time::sleep_until(due.max(Instant::now()).into()).await;
                Input::Tick
            }
            Command::Observe => Input::View(backend.view().await),
            Command::Apply(fault) => Input::Applied(backend.apply(&fault).await),
            Command::Check { condition, begin } => {
                Input::Holds(backend.holds(condition, begin).await)
            }
            Command::Done => break,
        };
    }
    let mut broke = director.broke().map(|b| b.to_string());
    let finished = director.finished_ms().map(|ms| started + Duration::from_millis(ms));
    let background = backend.background;
    // master_within: measured from the last step.
    let mut master_after: Option<u64> = None;
    if let Some(done) = finished {
        let mut probe = Client::new(cfg.clone());
        while done.elapsed() < Duration::from_secs(30) {
            if probe.find_master().await.is_ok() {
                master_after = Some(done.elapsed().as_millis() as u64);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let end = started + Duration::from_millis(drill.duration.0);
    tokio::time::sleep_until(end.max(Instant::now()).into()).await;
    shared.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for c in clients {
        let _ = c.await;
    }
    for task in background.tasks {
        let _ = task.await;
    }
    // Heal and settle: every node up and caught up, then a final read of every key.
    let settle = settle(dir, &cfg).await;
    if broke.is_none() {
        if let Err(e) = settle {
            broke = Some(format!("in_sync: {e}"));
        }
    }
    // One process more than clients: the final reads.
    let reader = Client::new(cfg.clone());
    real_client::final_reads(drill.workload.clients, drill.workload.keys, reader, &*shared).await;
    let end_ms = shared.now_us() / 1000;
    shared.observed_enough.store(true, std::sync::atomic::Ordering::SeqCst);
    let (roles, restarts) = observer.await.map_err(|e| format!("the observer failed: {e}"))?;
    let recorder = std::mem::take(&mut *shared.recorder.lock().expect("recorder"));
    let (histories, ops) = (recorder.to_jsonl(), recorder.summaries());
    let mut linearizability = "not checked: a step failed".to_string();
    if broke.is_none() {
        match recorder.check(Duration::from_secs(60)) {
            Linearizability::Linearizable => linearizability = "linearizable".into(),
            Linearizability::Unknown(why) => {
                linearizability = format!("unknown: {why}");
                shared.fault(live, 0, format!("linearizability unknown: {why}"));
            }
            Linearizability::Violated(detail) => {
                linearizability = "violated".into();
                broke = Some(format!("linearizable: {detail}"));
            }
        }
    }
    let (passed, verdict) = real_client::judge(drill, broke, master_after);
    let count = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::SeqCst);
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

/// Polls the nodes until the run is over: records role changes and new processes for the
/// timeline, and shows the run's status on the live display.
async fn observe(
    dir: PathBuf,
    cfg: ClientConfig,
    shared: Arc<Shared>,
    live: Live,
    (drill, seed): (String, u64),
) -> (Vec<(u64, usize, String)>, Vec<(u64, usize)>) {
    use std::sync::atomic::Ordering::SeqCst;
    let mut probe_cfg = cfg;
    probe_cfg.request_timeout = Duration::from_millis(OBSERVE_TIMEOUT_MS);
    probe_cfg.connect_timeout = Duration::from_millis(OBSERVE_TIMEOUT_MS);
    probe_cfg.attempts = 1;
    let probe = Client::new(probe_cfg);
    let mut roles: Vec<(u64, usize, String)> = Vec::new();
    let mut restarts: Vec<(u64, usize)> = Vec::new();
    let mut last_role: Vec<Option<String>> = Vec::new();
    let mut last_pid: Vec<Option<u32>> = Vec::new();
    let mut master: Option<String> = None;
    let mut first_poll = true;
    // Bounded by the run: the runner sets `observed_enough` once the final reads are over.
    while !shared.observed_enough.load(SeqCst) {
        let at = shared.now_us() / 1000;
        if let Ok(s) = SandboxState::load(&dir) {
            last_role.resize(s.nodes.len(), None);
            last_pid.resize(s.nodes.len(), None);
            let mut masters = Vec::new();
            for (k, n) in s.nodes.iter().enumerate() {
                let role = match n.pid {
                    None => "down".to_string(),
                    Some(_) if n.paused => "paused".to_string(),
                    Some(_) => match arakoon_chaos::sandbox_view::ask_state(&probe, k).await {
                        Ok(view) => {
                            if view.role.as_deref() == Some("master")
                                && view.lease_valid == Some(true)
                            {
                                masters.push(n.name.clone());
                            }
                            view.role.unwrap_or_else(|| "starting".into())
                        }
                        Err(_) => "starting".to_string(),
                    },
                };
                if last_role[k].as_deref() != Some(role.as_str()) {
                    roles.push((at, k, role.clone()));
                    last_role[k] = Some(role);
                }
                // A pid it did not have at the last poll: the node's process started again.
                if !first_poll && n.pid.is_some() && n.pid != last_pid[k] {
                    restarts.push((at, k));
                }
                last_pid[k] = n.pid;
            }
            // Polls are not simultaneous: with two claims, the display names neither.
            master = if masters.len() == 1 { masters.pop() } else { None };
            first_poll = false;
        }
        let (faults, latest_fault) = {
            let log = shared.faults.lock().expect("fault log");
            (log.len(), log.last().map(|(_, what)| what.clone()))
        };
        live.status(&Status {
            drill: drill.clone(),
            seed,
            elapsed_ms: at,
            ops_ok: shared.ok.load(SeqCst),
            ops_failed: shared.failed.load(SeqCst),
            ops_unknown: shared.unknown.load(SeqCst),
            faults,
            latest_fault,
            master: master.clone(),
            done: false,
        });
        tokio::time::sleep(Duration::from_millis(OBSERVE_EVERY_MS)).await;
    }
    (roles, restarts)
}

/// One client: draws operations by the drill's weights until the run stops, records each in
/// the history.
async fn client_loop(
    c: usize,
    cfg: ClientConfig,
    workload: arakoon_chaos::drill::WorkloadSpec,
    seed: u64,
    shared: Arc<Shared>,
) {
    // Real processes answer in milliseconds: without a rate, a 0-20 ms pause keeps the load
    // heavy without starving the nodes of the machine's cores.
    let pause_us = match workload.rate {
        Some(_) => workload.pause_us(),
        None => (0, 20_000),
    };
    let go_on = || !shared.stop.load(std::sync::atomic::Ordering::SeqCst);
    real_client::run_client(c, Client::new(cfg), &workload, seed, pause_us, &*shared, go_on).await;
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
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.recorder.lock().expect("recorder").done(c, op, self.now_us(), outcome, output);
    }
}

fn send(dir: &Path, request: Control) -> Result<String, String> {
    let answer = sandbox_control::send(dir, &request).map_err(|e| e.to_string())?;
    if answer.ok {
        Ok(answer.message)
    } else {
        Err(answer.message)
    }
}

fn links(dir: &Path, up: impl Fn(usize, usize) -> bool) -> Result<NetState, String> {
    let s = state(dir)?;
    let idx = |name: &str| s.names().iter().position(|n| n == name).unwrap_or(0);
    let mut net = NetState::new();
    for l in &s.links {
        if !up(idx(&l.from), idx(&l.to)) {
            net.insert(
                sandbox::link_name(&l.from, &l.to),
                LinkState { mode: LinkMode::Drop, delay_ms: 0 },
            );
        }
    }
    Ok(net)
}

/// Faults that go on while the next steps run (a collapse with `for:`): each logs what it did
/// when it ends; the run waits for them before it settles.
struct Background {
    shared: Arc<Shared>,
    live: Live,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The sandbox's primitives for the director: the view comes from the supervisor's state and
/// the nodes' answers; a fault is applied with the supervisor's control requests, the proxies'
/// link states, files changed on disk and `collapse_tlogs` requests.
struct SandboxBackend {
    dir: PathBuf,
    cfg: ClientConfig,
    /// Draws which file a disk fault strikes.
    rng: ChaCha8Rng,
    background: Background,
    /// What was committed anywhere when the current `all_in_sync` wait began.
    sync_target: Option<u64>,
}

impl Backend for SandboxBackend {
    async fn view(&mut self) -> ClusterView {
        let n = self.cfg.nodes.len();
        let (up, paused) = match state(&self.dir) {
            Ok(s) => (
                s.nodes.iter().map(|x| x.pid.is_some()).collect(),
                s.nodes.iter().map(|x| x.paused).collect(),
            ),
            // No state to read: no node is known to run.
            Err(_) => (vec![false; n], vec![false; n]),
        };
        let master = Client::new(self.cfg.clone()).find_master().await.ok();
        ClusterView { up, paused, master }
    }

    async fn holds(&mut self, condition: Condition, begin: bool) -> bool {
        if begin {
            self.sync_target = committed_anywhere(&self.cfg).await;
        }
        holds(&self.dir, &self.cfg, condition, self.sync_target).await
    }

    async fn apply(&mut self, r: &Resolved) -> Result<String, BackendError> {
        apply(self, r).await.map_err(BackendError::Failed)
    }
}

/// Applies one resolved fault; returns a note beyond its targets.
async fn apply(b: &mut SandboxBackend, r: &Resolved) -> Result<String, String> {
    let dir = b.dir.clone();
    let dir = dir.as_path();
    let s = state(dir)?;
    let all = s.names();
    let n = all.len();
    let name = |k: &usize| all.get(*k).cloned().ok_or(format!("no node n{k} in the sandbox"));
    let ns: Vec<String> = r.strikes.nodes().iter().map(name).collect::<Result<_, _>>()?;
    let named = |ks: &[usize]| ks.iter().map(name).collect::<Result<Vec<String>, String>>();
    let each = |make: &dyn Fn(String) -> Control| -> Result<(), String> {
        for node in &ns {
            send(dir, make(node.clone()))?;
        }
        Ok(())
    };
    Ok(match (&r.fault, &r.strikes) {
        (Fault::Kill(_), _) => {
            each(&|node| Control::Kill { node })?;
            String::new()
        }
        (Fault::Stop(_), _) => {
            each(&|node| Control::Stop { node })?;
            String::new()
        }
        (Fault::Pause { duration, .. }, _) => {
            each(&|node| Control::Pause { node })?;
            if let Some(d) = duration {
                let (dir, ns, d) = (dir.to_path_buf(), ns.clone(), d.0);
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(d)).await;
                    for node in ns {
                        let _ = send(&dir, Control::Resume { node });
                    }
                });
            }
            String::new()
        }
        (Fault::Resume(_), _) => {
            each(&|node| Control::Resume { node })?;
            String::new()
        }
        (Fault::Restart(_), _) => {
            for node in &ns {
                // A node that refuses to start (damaged files) is rebuilt from a peer, as an
                // operator would.
                if let Err(e) = send(dir, Control::Restart { node: node.clone() }) {
                    send(dir, Control::Wipe { node: node.clone() }).map_err(|w| {
                        format!("{node} refused to start ({e}) and could not be rebuilt: {w}")
                    })?;
                }
            }
            String::new()
        }
        (Fault::Wipe(_), _) => {
            each(&|node| Control::Wipe { node })?;
            String::new()
        }
        (Fault::Bitflip { store, .. } | Fault::Truncate { store, .. }, _) => {
            let how = if matches!(r.fault, Fault::Bitflip { .. }) {
                CorruptHow::Bitflip
            } else {
                CorruptHow::Truncate
            };
            let target = if *store { CorruptTarget::Store } else { CorruptTarget::Tlog };
            for node in &ns {
                send(dir, Control::Corrupt { node: node.clone(), target, how })?;
            }
            String::new()
        }
        (Fault::TornTail(_) | Fault::DeleteTlog(_), _) => {
            let mut notes = Vec::new();
            for node in &ns {
                let tlogs = sandbox::node_tlog_dir(dir, node);
                let mut files: Vec<PathBuf> = std::fs::read_dir(&tlogs)
                    .map_err(|e| format!("{}: {e}", tlogs.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "tlog"))
                    .collect();
                files.sort();
                if matches!(r.fault, Fault::TornTail(_)) {
                    let last = files.last().ok_or(format!("{node} has no TLog file"))?;
                    let mut bytes = std::fs::read(last).map_err(|e| e.to_string())?;
                    bytes.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0]);
                    std::fs::write(last, bytes).map_err(|e| e.to_string())?;
                } else if files.len() > 1 {
                    let f = &files[b.rng.gen_range(0..files.len() - 1)];
                    std::fs::remove_file(f).map_err(|e| e.to_string())?;
                    notes.push(format!("{node}:{}", f.display()));
                }
            }
            notes.join("; ")
        }
        (Fault::Partition(_) | Fault::Isolate(_), Strikes::Groups(groups)) => {
            let groups: Vec<Vec<String>> =
                groups.iter().map(|g| named(g)).collect::<Result<_, _>>()?;
            let net = sandbox::partition(&s, &groups).map_err(|e| e.to_string())?;
            send(dir, Control::Net { links: net })?;
            String::new()
        }
        (Fault::OneWay { .. }, Strikes::OneWay { from, to }) => {
            let net =
                sandbox::one_way(&s, &named(from)?, &named(to)?).map_err(|e| e.to_string())?;
            send(dir, Control::Net { links: net })?;
            String::new()
        }
        (Fault::Ring, _) => {
            let net = links(dir, |i, j| ring_link(n, i, j))?;
            send(dir, Control::Net { links: net })?;
            String::new()
        }
        (Fault::Bridge, _) => {
            let net = links(dir, |i, j| bridge_link(n, i, j))?;
            send(dir, Control::Net { links: net })?;
            format!("bridge n{}", bridge_node(n))
        }
        (Fault::Heal, _) => {
            send(dir, Control::Net { links: NetState::new() })?;
            String::new()
        }
        (Fault::Delay(d), _) => {
            let net: NetState = s
                .links
                .iter()
                .map(|l| {
                    (
                        sandbox::link_name(&l.from, &l.to),
                        LinkState { mode: LinkMode::Pass, delay_ms: d.0 },
                    )
                })
                .collect();
            send(dir, Control::Net { links: net })?;
            String::new()
        }
        (Fault::DropMaster, Strikes::Master(m)) => {
            // The client finds the master itself; the note says if it was another by now.
            let mut c = Client::new(b.cfg.clone());
            match c.drop_master().await {
                Ok(()) => String::new(),
                Err(e) => format!("n{m} did not step down: {e}"),
            }
        }
        (Fault::Collapse { keep, duration: None, .. }, _) => {
            let notes: Vec<String> = collapse_once(dir, &b.cfg, &ns, *keep)
                .await?
                .into_iter()
                .zip(&ns)
                .map(|(c, name)| {
                    let mut tally = CollapseTally::default();
                    tally.add(c);
                    tally.note(name, *keep)
                })
                .collect();
            notes.join("; ")
        }
        (Fault::Collapse { keep, duration: Some(d), .. }, _) => {
            let series = collapse_series(dir.to_path_buf(), b.cfg.clone(), ns.clone(), *keep, d.0);
            let bg = &mut b.background;
            let (shared, live, what, keep) =
                (bg.shared.clone(), bg.live.clone(), r.fault.to_string(), *keep);
            let struck = ns.clone();
            bg.tasks.push(tokio::spawn(async move {
                while !series.is_finished() {
                    tokio::time::sleep(Duration::from_millis(COLLAPSE_EVERY_MS)).await;
                }
                let note = match series.join() {
                    Ok(Ok(tallies)) => {
                        let notes: Vec<String> = tallies
                            .iter()
                            .zip(&struck)
                            .map(|(t, name)| t.note(name, keep))
                            .collect();
                        notes.join("; ")
                    }
                    Ok(Err(e)) => format!("stopped: {e}"),
                    Err(_) => "the collapse thread panicked".to_string(),
                };
                shared.fault(&live, shared.now_us() / 1000, format!("{what}, ended ({note})"));
            }));
            "in the background".to_string()
        }
        (other, _) => {
            return Err(
                BackendError::Unsupported { tier: "sandbox", fault: other.name() }.to_string()
            )
        }
    })
}

/// The highest slot any node has applied.
async fn committed_anywhere(cfg: &ClientConfig) -> Option<u64> {
    real_client::committed_anywhere(&Client::new(cfg.clone())).await
}

async fn holds(dir: &Path, cfg: &ClientConfig, condition: Condition, target: Option<u64>) -> bool {
    match condition {
        Condition::MasterElected => Client::new(cfg.clone()).find_master().await.is_ok(),
        Condition::AllUp | Condition::AllInSync => {
            let Ok(s) = state(dir) else { return false };
            if s.nodes.iter().any(|n| n.pid.is_none() || n.paused) {
                return false;
            }
            real_client::nodes_answer(&Client::new(cfg.clone()), condition, target).await
        }
    }
}

/// After the run: heal, resume and restart every node, and wait until all caught up.
async fn settle(dir: &Path, cfg: &ClientConfig) -> Result<(), String> {
    send(dir, Control::Net { links: NetState::new() })?;
    for n in state(dir)?.nodes {
        if n.paused {
            send(dir, Control::Resume { node: n.name.clone() })?;
        }
        if n.pid.is_none() {
            if let Err(e) = send(dir, Control::Restart { node: n.name.clone() }) {
                send(dir, Control::Wipe { node: n.name.clone() }).map_err(|w| {
                    format!("{} refused to start ({e}); rebuilding it failed: {w}", n.name)
                })?;
            }
        }
    }
    let begin = Instant::now();
    let target = committed_anywhere(cfg).await;
    while begin.elapsed() < Duration::from_secs(30) {
        if holds(dir, cfg, Condition::AllInSync, target).await
            && Client::new(cfg.clone()).find_master().await.is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("the nodes did not all catch up within 30 s of the heal".into())
}

/// How often a collapse with `for:` asks each node again.
const COLLAPSE_EVERY_MS: u64 = 100;

/// What one node's `collapse_tlogs` came to.
enum Collapsed {
    /// Not asked: "not running" or "paused" (it would not answer before the request timed out).
    NotAsked(&'static str),
    /// The messages of its steps, and its step count or why it failed.
    Answered(Vec<String>, Result<usize, String>),
}

/// `collapse_tlogs` sent to each of `nodes` at once, as an operator would. A node that cannot
/// collapse does not fail the step: the drill is about what the others do meanwhile.
async fn collapse_once(
    dir: &Path,
    cfg: &ClientConfig,
    nodes: &[String],
    keep: u32,
) -> Result<Vec<Collapsed>, String> {
    let s = state(dir)?;
    let mut asked = Vec::new();
    for name in nodes {
        let node = s.nodes.iter().find(|n| &n.name == name).ok_or(format!("no node {name}"))?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], node.client_port));
        let why_not = match (node.pid, node.paused) {
            (None, _) => Some("not running"),
            (Some(_), true) => Some("paused"),
            (Some(_), false) => None,
        };
        asked.push(async move {
            if let Some(why) = why_not {
                return Collapsed::NotAsked(why);
            }
            // Arakoon's steps carry an int64 only: the files removed are seen in the node's
            // TLog directory, before and after.
            let tlogs = sandbox::node_tlog_dir(dir, name);
            let list = || -> std::collections::BTreeSet<String> {
                std::fs::read_dir(&tlogs)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|f| f.ends_with(".tlog"))
                    .collect()
            };
            let before = list();
            let result = arakoon_node::client::head::request_collapse(
                &arakoon_node::server::env::TokioNet,
                addr,
                &cfg.cluster_id,
                i32::try_from(keep).unwrap_or(i32::MAX),
                false,
                &mut |_, _| {},
            )
            .await
            .map_err(|e| e.to_string());
            let after = list();
            let steps = before.difference(&after).map(|f| format!("removed {f}")).collect();
            Collapsed::Answered(steps, result)
        });
    }
    Ok(join_all(asked).await)
}

/// `collapse_tlogs` to each of `nodes` every [`COLLAPSE_EVERY_MS`] for `duration_ms`, on a
/// thread of its own (the step callback of a collapse is not `Send`), while the drill goes on;
/// what each node did is logged when the series ends.
fn collapse_series(
    dir: PathBuf,
    cfg: ClientConfig,
    nodes: Vec<String>,
    keep: u32,
    duration_ms: u64,
) -> std::thread::JoinHandle<Result<Vec<CollapseTally>, String>> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the collapse's runtime: {e}"))?;
        runtime.block_on(async {
            let end = Instant::now() + Duration::from_millis(duration_ms);
            let mut tallies: Vec<CollapseTally> =
                nodes.iter().map(|_| CollapseTally::default()).collect();
            while Instant::now() < end {
                for (t, c) in tallies.iter_mut().zip(collapse_once(&dir, &cfg, &nodes, keep).await?)
                {
                    t.add(c);
                }
                tokio::time::sleep(Duration::from_millis(COLLAPSE_EVERY_MS)).await;
            }
            Ok(tallies)
        })
    })
}

/// Every future's output, in order, the futures polled together on this task (the step
/// callback of a collapse is not `Send`, so they cannot be spawned).
async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (f, out) in pending.iter_mut().zip(done.iter_mut()) {
            if out.is_none() {
                if let std::task::Poll::Ready(v) = f.as_mut().poll(cx) {
                    *out = Some(v);
                }
            }
        }
        if done.iter().all(Option::is_some) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    done.into_iter().map(|o| o.expect("every future ended")).collect()
}

/// What one node's collapses came to, over one or a series of them.
#[derive(Default)]
struct CollapseTally {
    asked: u32,
    /// Times it was not asked, and the last reason.
    not_asked: (u32, &'static str),
    failed: u32,
    first_error: Option<String>,
    removed: Vec<String>,
    /// Files kept because a catch-up was reading them (or a file before them).
    kept: std::collections::BTreeSet<String>,
    /// "i=1234": where the head ended after the last fold.
    head: Option<String>,
}

impl CollapseTally {
    fn add(&mut self, c: Collapsed) {
        let (steps, result) = match c {
            Collapsed::NotAsked(why) => {
                self.not_asked = (self.not_asked.0 + 1, why);
                return;
            }
            Collapsed::Answered(steps, result) => (steps, result),
        };
        self.asked += 1;
        if let Err(e) = result {
            self.failed += 1;
            self.first_error.get_or_insert(e);
        }
        for s in steps {
            if let Some(name) = s.strip_prefix("removed ") {
                self.removed.push(name.to_string());
            } else if let Some(kept) = s.strip_prefix("kept ") {
                // "kept 011.tlog: a catch-up is reading it or a file before it"
                self.kept.insert(kept.split(':').next().unwrap_or(kept).to_string());
            } else if let Some((_, i)) = s.rsplit_once("up to ") {
                // "folded N slots into the head, which covers every slot up to i=H"
                self.head = Some(i.to_string());
            }
        }
    }

    /// One line: `n0: removed 12 TLog file(s) (000.tlog..011.tlog), head up to i=1234`, with
    /// the collapses asked for when more than one, the files kept for a catch-up, why it could
    /// not collapse.
    fn note(&self, name: &str, keep: u32) -> String {
        if self.asked == 0 {
            return format!("{name}: {}, not collapsed", self.not_asked.1);
        }
        let mut parts = Vec::new();
        if self.asked > 1 {
            parts.push(format!("{} collapses", self.asked));
        }
        if self.not_asked.0 > 0 {
            parts.push(format!("not asked {} time(s) ({})", self.not_asked.0, self.not_asked.1));
        }
        if let Some(e) = &self.first_error {
            parts.push(match self.asked {
                1 => format!("could not collapse: {e}"),
                _ => format!("{} could not (the first: {e})", self.failed),
            });
        }
        match &self.removed[..] {
            [] => {}
            [only] => parts.push(format!("removed 1 TLog file(s) ({only})")),
            [first, .., last] => {
                parts.push(format!("removed {} TLog file(s) ({first}..{last})", self.removed.len()))
            }
        }
        match (self.kept.first(), self.kept.last()) {
            (Some(first), Some(last)) if first != last => parts
                .push(format!("kept {} a catch-up was reading ({first}..{last})", self.kept.len())),
            (Some(only), _) => parts.push(format!("kept 1 a catch-up was reading ({only})")),
            _ => {}
        }
        if let Some(h) = &self.head {
            parts.push(format!("head up to {h}"));
        }
        if parts.is_empty() {
            parts.push(format!("nothing to collapse (at most {keep} sealed TLog files)"));
        }
        format!("{name}: {}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::{CollapseTally, Collapsed};

    fn tally(answers: Vec<Collapsed>) -> CollapseTally {
        let mut t = CollapseTally::default();
        for a in answers {
            t.add(a);
        }
        t
    }

    fn answered(steps: &[&str], result: Result<usize, String>) -> Collapsed {
        Collapsed::Answered(steps.iter().map(|s| s.to_string()).collect(), result)
    }

    const FOLDED: &str = "folded 300 slots into the head, which covers every slot up to i=299";

    #[test]
    fn a_collapse_note_names_the_files_removed_kept_and_the_head_or_why_not() {
        let all =
            answered(&[FOLDED, "removed 000.tlog", "removed 001.tlog", "removed 002.tlog"], Ok(4));
        assert_eq!(
            tally(vec![all]).note("n0", 1),
            "n0: removed 3 TLog file(s) (000.tlog..002.tlog), head up to i=299"
        );
        let pinned = answered(
            &[
                FOLDED,
                "removed 000.tlog",
                "kept 001.tlog: a catch-up is reading it or a file before it",
            ],
            Ok(3),
        );
        assert_eq!(
            tally(vec![pinned]).note("n1", 1),
            "n1: removed 1 TLog file(s) (000.tlog), kept 1 a catch-up was reading (001.tlog), \
             head up to i=299"
        );
        assert_eq!(
            tally(vec![answered(&[], Ok(0))]).note("n2", 1),
            "n2: nothing to collapse (at most 1 sealed TLog files)"
        );
        let busy = || answered(&[], Err("127.0.0.1:4000: a collapse is running".into()));
        assert_eq!(
            tally(vec![busy()]).note("n2", 1),
            "n2: could not collapse: 127.0.0.1:4000: a collapse is running"
        );
        assert_eq!(
            tally(vec![Collapsed::NotAsked("not running")]).note("n2", 1),
            "n2: not running, not collapsed"
        );
    }

    #[test]
    fn a_series_of_collapses_adds_up_what_each_did() {
        let later = "folded 100 slots into the head, which covers every slot up to i=399";
        let t = tally(vec![
            Collapsed::NotAsked("not running"),
            answered(&[FOLDED, "removed 000.tlog", "removed 001.tlog"], Ok(3)),
            answered(&[], Err("busy".into())),
            answered(&[], Ok(0)),
            answered(
                &[later, "removed 002.tlog", "kept 003.tlog: a catch-up is reading it"],
                Ok(3),
            ),
            answered(&["kept 003.tlog: reading", "kept 004.tlog: reading"], Ok(2)),
        ]);
        assert_eq!(
            t.note("n1", 1),
            "n1: 5 collapses, not asked 1 time(s) (not running), 1 could not (the first: busy), \
             removed 3 TLog file(s) (000.tlog..002.tlog), kept 2 a catch-up was reading \
             (003.tlog..004.tlog), head up to i=399"
        );
    }
}
