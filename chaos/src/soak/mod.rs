//! A soak: a sandbox of real `arakoon` processes under a long mixed load and a seeded schedule
//! of faults, with each node's resident memory and open descriptors sampled throughout and
//! judged against the bounds its configuration gives (README "Memory"), and every acknowledged
//! write read back at the end. `arakoon-admin soak` parses its arguments, calls [`run`] and
//! prints the [`SoakReport`].
//!
//! One run:
//!
//! ```text
//! sandbox up (sandbox_up::up, tied to this process)    sample every node: the count before load
//!   ├── clients: one connection each, the mix of workload.rs, until the duration ends
//!   ├── sampler: every `sample_every`, /proc/PID/statm and /proc/PID/fd of each node's process
//!   └── director: the seed's schedule (schedule.rs) applied by the sandbox backend of the drills
//! duration over: clients stop; heal, resume, restart, wait until all caught up (settle)
//! read back every client's keys; sample the descriptors once the load is gone; judge (report.rs)
//! sandbox down: supervisor shut down, every process killed by PID, the directory removed
//! ```
//!
//! Faults are the catalogue's ([`crate::faults::Fault`]), resolved and timed by the one drill
//! engine ([`crate::director`]) and applied with the sandbox's primitives, as `drill run --tier
//! sandbox` does. The schedule and the clients' operations come from the seed; the timing of
//! real processes does not, so a seed names a schedule, not a run.

mod report;
mod sample;
mod schedule;
mod workload;

pub use report::{descriptors_slack, judge, Finding, NodeReport, Observed, SoakReport};
pub use sample::{descriptors, rss_bytes, Sample, Series, Summary};
pub use schedule::{describe, schedule, Family};
pub use workload::{OpCount, OpKind, Violations, WorkloadSpec, VALUE_BYTES_MIN};

use crate::director::{drive, Director};
use crate::sandbox::SandboxState;
use crate::sandbox_drill::backend::{self, Background, FaultLog, SandboxBackend};
use crate::sandbox_drill::Guard;
use crate::sandbox_up::{self, UpError, UpPlan};
use arakoon_node::client::{Client, ClientConfig};
use arakoon_node::config::{ClusterConfig, ConfigError};
use arakoon_node::server::{fdlimit, limits};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most clients: each is a connection, and a sandbox serves 1024.
pub const CLIENTS_MAX: usize = 1000;
/// How long the descriptors may take to come back once the load is gone.
const DESCRIPTORS_BACK_WITHIN: Duration = Duration::from_secs(5);

/// What to soak, and how.
#[derive(Debug, Clone)]
pub struct SoakPlan {
    /// The sandbox's directory: new or empty.
    pub dir: PathBuf,
    /// Keep the directory (logs, TLogs, stores) afterwards.
    pub keep: bool,
    pub nodes: usize,
    pub lease_ms: u64,
    /// `[global]` settings of the configuration, as `sandbox up --set` takes them.
    pub settings: Vec<(String, String)>,
    /// The `arakoon` binary the nodes run.
    pub arakoon: PathBuf,
    /// The program and arguments that run the sandbox supervisor; the runner adds `--dir DIR`.
    pub supervisor: (PathBuf, Vec<String>),
    /// How long the sandbox may take to elect its first master.
    pub up_within: Duration,
    pub seed: u64,
    pub duration: Duration,
    /// About how often a fault strikes (see [`schedule`]).
    pub fault_every: Duration,
    pub sample_every: Duration,
    pub workload: WorkloadSpec,
}

/// A plan that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("--clients {0}: give 1 to {CLIENTS_MAX}")]
    Clients(usize),
    #[error("--value-bytes-max {0}: at least {VALUE_BYTES_MIN}")]
    ValueTooSmall(usize),
    #[error(
        "--value-bytes-max {value}: the cluster refuses values of max_value_size ({limit}) bytes \
         or more; write less, or raise it with --set max_value_size=N"
    )]
    ValueTooLarge { value: usize, limit: u32 },
    #[error("--sample {0:?}: at least 10ms")]
    Sample(Duration),
    #[error("--fault-every {0:?}: at least 1s")]
    FaultEvery(Duration),
    #[error("--duration {0:?}: at least 1s")]
    Duration(Duration),
}

impl SoakPlan {
    /// What can be checked before anything starts.
    pub fn check(&self) -> Result<(), PlanError> {
        let w = &self.workload;
        if !(1..=CLIENTS_MAX).contains(&w.clients) {
            return Err(PlanError::Clients(w.clients));
        }
        if w.value_bytes_max < VALUE_BYTES_MIN {
            return Err(PlanError::ValueTooSmall(w.value_bytes_max));
        }
        if self.sample_every < Duration::from_millis(10) {
            return Err(PlanError::Sample(self.sample_every));
        }
        if self.fault_every < Duration::from_secs(1) {
            return Err(PlanError::FaultEvery(self.fault_every));
        }
        if self.duration < Duration::from_secs(1) {
            return Err(PlanError::Duration(self.duration));
        }
        Ok(())
    }

    /// The schedule this plan's seed draws.
    pub fn schedule(&self) -> Vec<crate::drill::Step> {
        schedule(self.seed, ms(self.duration), ms(self.fault_every))
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Why a soak could not run (a run that finds a problem is a report with findings).
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("cannot bring the sandbox up in {}: {source}", dir.display())]
    Up { dir: PathBuf, source: UpError },
    #[error("cannot create {}: {source}", dir.display())]
    Dir { dir: PathBuf, source: io::Error },
    #[error("cannot start the soak's runtime: {0}")]
    Runtime(io::Error),
    #[error("cannot read the sandbox's state: {0}")]
    State(crate::sandbox::SandboxError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("a soak client stopped: {0}")]
    Client(tokio::task::JoinError),
}

impl SoakError {
    /// The sandbox's own error, when it did not come up (its exit code is the CLI's to say).
    pub fn up_error(&self) -> Option<&UpError> {
        match self {
            SoakError::Up { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Where a running soak reports; called from its tasks.
pub trait SoakWatch: Send + Sync {
    /// The load and the samples so far (once a sample).
    fn progress(&self, progress: &Progress);
    /// A step of the schedule did something at `at_ms`.
    fn fault(&self, at_ms: u64, what: &str);
    /// The run moved on: the sandbox is up, the clients stopped, the keys are read back.
    fn phase(&self, what: &str);
}

/// A soak in progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub elapsed_ms: u64,
    pub duration_ms: u64,
    pub ops_ok: u64,
    pub ops_failed: u64,
    pub ops_unknown: u64,
    pub faults: usize,
    /// The largest resident size and descriptor count of any node at the last sample.
    pub rss_now_bytes: u64,
    pub descriptors_now: u32,
}

/// What the run's tasks share.
struct Shared {
    started: Instant,
    duration_ms: u64,
    stop_clients: AtomicBool,
    stop_sampler: AtomicBool,
    tally: workload::Tally,
    faults: Mutex<Vec<(u64, String)>>,
    /// Per node, in the sandbox's order.
    series: Mutex<Vec<Series>>,
    watch: Arc<dyn SoakWatch>,
}

impl FaultLog for Shared {
    fn now_ms(&self) -> u64 {
        ms(self.started.elapsed())
    }

    fn fault(&self, at_ms: u64, what: String) {
        self.watch.fault(at_ms, &what);
        self.faults.lock().expect("fault log").push((at_ms, what));
    }
}

/// Runs the soak of `plan` and takes its sandbox down again whatever happens.
pub fn run(plan: &SoakPlan, watch: Arc<dyn SoakWatch>) -> Result<SoakReport, SoakError> {
    plan.check()?;
    // Canonical before the supervisor is named with it: the sandbox's processes are found by
    // the directory in their arguments.
    std::fs::create_dir_all(&plan.dir)
        .map_err(|source| SoakError::Dir { dir: plan.dir.clone(), source })?;
    let dir = plan
        .dir
        .canonicalize()
        .map_err(|source| SoakError::Dir { dir: plan.dir.clone(), source })?;
    let (program, mut args) = plan.supervisor.clone();
    args.extend(["--dir".to_string(), dir.display().to_string()]);
    let up_plan = UpPlan {
        dir: dir.clone(),
        nodes: plan.nodes,
        lease_ms: plan.lease_ms,
        settings: plan.settings.clone(),
        arakoon: plan.arakoon.clone(),
        // Should this process die, the supervisor follows, and with it every node.
        owner_pid: Some(std::process::id()),
        supervisor: (program, args),
        timeout: plan.up_within,
        interruptible: false,
    };
    let mut guard = Guard { dir: dir.clone(), supervisor_pid: None, keep_dir: plan.keep };
    let up =
        sandbox_up::up(&up_plan).map_err(|source| SoakError::Up { dir: dir.clone(), source })?;
    guard.supervisor_pid = Some(up.supervisor_pid);
    watch.phase(&format!(
        "sandbox up in {}: {} nodes, master {} after {:.1} s",
        dir.display(),
        plan.nodes,
        up.master,
        up.took.as_secs_f64()
    ));
    // The steps talk to the supervisor with blocking calls on this thread; the clients and the
    // sampler run on the workers meanwhile.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(SoakError::Runtime)?;
    let result = runtime.block_on(soak(plan, &dir, watch));
    drop(runtime);
    drop(guard);
    result
}

/// The clients' settings: short timeouts and few attempts, so that a call into a fault ends
/// quickly and the client goes on.
fn client_config(config: &ClusterConfig) -> ClientConfig {
    let mut c = ClientConfig::from_cluster(config);
    c.request_timeout = Duration::from_secs(2);
    c.connect_timeout = Duration::from_millis(500);
    c.attempts = 3;
    c.backoff = Duration::from_millis(50);
    c
}

/// The final reader's settings: patient, the cluster has settled.
fn reader_config(config: &ClusterConfig) -> ClientConfig {
    let mut c = ClientConfig::from_cluster(config);
    c.request_timeout = Duration::from_secs(10);
    c
}

fn load_state(dir: &Path) -> Result<SandboxState, SoakError> {
    SandboxState::load(dir).map_err(SoakError::State)
}

/// One sample of every node now: per node, its process's, or none (no process).
fn sample_nodes(dir: &Path, nodes: usize) -> Vec<Option<Sample>> {
    let pids: Vec<Option<u32>> = match SandboxState::load(dir) {
        Ok(s) => s.nodes.iter().map(|n| n.pid).collect(),
        Err(_) => vec![None; nodes],
    };
    pids.into_iter().map(|p| p.and_then(sample::sample)).collect()
}

async fn soak(
    plan: &SoakPlan,
    dir: &Path,
    watch: Arc<dyn SoakWatch>,
) -> Result<SoakReport, SoakError> {
    let config = ClusterConfig::load(&dir.join("cluster.ini"))?;
    if plan.workload.value_bytes_max >= config.max_value_size as usize {
        return Err(PlanError::ValueTooLarge {
            value: plan.workload.value_bytes_max,
            limit: config.max_value_size,
        }
        .into());
    }
    let names = load_state(dir)?.names();
    let n = names.len();
    let memory_bound = limits::memory_bound_bytes(&config);
    let descriptors_bound = config.max_connections as u64 + fdlimit::reserve(&config);
    let duration_ms = ms(plan.duration);
    let shared = Arc::new(Shared {
        started: Instant::now(),
        duration_ms,
        stop_clients: false.into(),
        stop_sampler: false.into(),
        tally: workload::Tally::default(),
        faults: Mutex::new(Vec::new()),
        series: Mutex::new(vec![Series::default(); n]),
        watch: watch.clone(),
    });
    let start = sample_nodes(dir, n);
    record(&shared, &start);
    let sampler = {
        let (dir, shared, every) = (dir.to_path_buf(), shared.clone(), plan.sample_every);
        tokio::spawn(async move { sample_loop(&dir, n, &shared, every).await })
    };
    let cfg = client_config(&config);
    let mut clients = Vec::new();
    for c in 0..plan.workload.clients {
        let (cfg, spec, shared) = (cfg.clone(), plan.workload.clone(), shared.clone());
        let seed = client_seed(plan.seed, c);
        clients.push(tokio::spawn(async move {
            workload::client_loop(c, cfg, spec, seed, &shared.tally, &shared.stop_clients).await
        }));
    }
    let mut backend = SandboxBackend {
        dir: dir.to_path_buf(),
        cfg: cfg.clone(),
        rng: ChaCha8Rng::seed_from_u64(plan.seed),
        background: Background { log: shared.clone(), tasks: Vec::new() },
        sync_target: None,
    };
    let steps = plan.schedule();
    let mut director = Director::new(steps.clone(), n, plan.seed);
    let started = shared.started;
    drive(
        &mut director,
        &mut backend,
        || ms(started.elapsed()),
        |at| tokio::time::sleep_until((started + Duration::from_millis(at)).into()),
        |lines| {
            for (at, line) in lines {
                FaultLog::fault(&*shared, *at, line.clone());
            }
        },
    )
    .await;
    let broke = director.broke().map(|b| b.to_string());
    tokio::time::sleep_until((started + plan.duration).into()).await;
    shared.stop_clients.store(true, SeqCst);
    watch
        .phase("the load stopped; healing, resuming and restarting every node until all caught up");
    let mut ledgers = Vec::new();
    for c in clients {
        ledgers.push(c.await.map_err(SoakError::Client)?);
    }
    for task in std::mem::take(&mut backend.background.tasks) {
        let _ = task.await;
    }
    let not_settled = backend::settle(dir, &cfg).await.err().map(|e| e.to_string());
    let keys_tracked: u64 = ledgers.iter().map(|l| l.keys() as u64).sum();
    watch.phase(&format!("reading back the {keys_tracked} keys the clients wrote"));
    let mut observed = Observed { broke, not_settled, ..Observed::default() };
    let mut reader = Client::new(reader_config(&config));
    let mut keys_read_back = 0;
    for ledger in &mut ledgers {
        match workload::read_back(&mut reader, ledger, plan.workload.entries_max()).await {
            Ok(r) => keys_read_back += r.keys_read,
            Err(e) => {
                observed.unverified = Some(e.to_string());
                break;
            }
        }
    }
    drop(reader);
    for ledger in &mut ledgers {
        observed.violations.merge(std::mem::take(&mut ledger.violations));
    }
    let end = descriptors_after_load(dir, &start, n).await;
    shared.stop_sampler.store(true, SeqCst);
    let _ = sampler.await;
    let series = shared.series.lock().expect("series").clone();
    let nodes: Vec<NodeReport> = names
        .iter()
        .enumerate()
        .map(|(k, name)| NodeReport {
            name: name.clone(),
            summary: series[k].summary(),
            down_samples: series[k].down,
            memory_bound_bytes: memory_bound,
            descriptors_bound,
            descriptors_start: start[k].map(|s| s.descriptors),
            descriptors_end: end[k],
        })
        .collect();
    let findings = judge(&nodes, &observed);
    let faults = shared.faults.lock().expect("fault log").clone();
    Ok(SoakReport {
        seed: plan.seed,
        duration_ms,
        clients: plan.workload.clients,
        value_bytes_max: plan.workload.value_bytes_max,
        schedule: describe(&steps),
        faults,
        nodes,
        ops: shared.tally.counts(),
        keys_tracked,
        keys_read_back,
        keys_untracked: ledgers.iter().map(|l| l.untracked).sum(),
        passed: findings.is_empty(),
        findings,
    })
}

/// Client `c`'s own stream of draws.
fn client_seed(seed: u64, c: usize) -> u64 {
    seed.wrapping_mul(0x9e37_79b9).wrapping_add(c as u64) ^ 0x636c_6965_6e74_7321
}

fn record(shared: &Shared, samples: &[Option<Sample>]) {
    let mut series = shared.series.lock().expect("series");
    for (s, sample) in series.iter_mut().zip(samples) {
        match sample {
            Some(x) => s.add(*x),
            None => s.down += 1,
        }
    }
}

/// Samples every node each `every` until told to stop; reports the progress each time.
async fn sample_loop(dir: &Path, n: usize, shared: &Shared, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is at once: the start was sampled already
    while !shared.stop_sampler.load(SeqCst) {
        ticks.tick().await;
        let samples = sample_nodes(dir, n);
        record(shared, &samples);
        let (ok, failed, unknown) = shared.tally.totals();
        shared.watch.progress(&Progress {
            elapsed_ms: ms(shared.started.elapsed()),
            duration_ms: shared.duration_ms,
            ops_ok: ok,
            ops_failed: failed,
            ops_unknown: unknown,
            faults: shared.faults.lock().expect("fault log").len(),
            rss_now_bytes: samples.iter().flatten().map(|s| s.rss_bytes).max().unwrap_or(0),
            descriptors_now: samples.iter().flatten().map(|s| s.descriptors).max().unwrap_or(0),
        });
    }
}

/// Each node's descriptors once the load is gone: sampled until every node is back within the
/// slack of its count before the load, for at most [`DESCRIPTORS_BACK_WITHIN`] (a closed
/// connection takes the node a moment to notice); the last count of each.
async fn descriptors_after_load(
    dir: &Path,
    start: &[Option<Sample>],
    n: usize,
) -> Vec<Option<u32>> {
    let slack = descriptors_slack(n);
    let began = Instant::now();
    loop {
        let now: Vec<Option<u32>> =
            sample_nodes(dir, n).iter().map(|s| s.map(|s| s.descriptors)).collect();
        let back = now.iter().zip(start).all(|(end, start)| match (end, start) {
            (Some(end), Some(start)) => *end <= start.descriptors.saturating_add(slack),
            _ => true,
        });
        if back || began.elapsed() >= DESCRIPTORS_BACK_WITHIN {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> SoakPlan {
        SoakPlan {
            dir: PathBuf::from("/nonexistent/soak"),
            keep: false,
            nodes: 3,
            lease_ms: 1000,
            settings: Vec::new(),
            arakoon: PathBuf::from("/nonexistent/arakoon"),
            supervisor: (PathBuf::from("/bin/false"), Vec::new()),
            up_within: Duration::from_secs(5),
            seed: 1,
            duration: Duration::from_secs(60),
            fault_every: Duration::from_secs(10),
            sample_every: Duration::from_secs(1),
            workload: WorkloadSpec { clients: 4, value_bytes_max: 4096, pause_us_max: 1000 },
        }
    }

    #[test]
    fn a_plan_out_of_bounds_is_refused_before_anything_starts() {
        assert_eq!(plan().check(), Ok(()));
        let with = |f: &dyn Fn(&mut SoakPlan)| {
            let mut p = plan();
            f(&mut p);
            p.check().unwrap_err()
        };
        assert_eq!(with(&|p| p.workload.clients = 0), PlanError::Clients(0));
        assert_eq!(with(&|p| p.workload.clients = 1001), PlanError::Clients(1001));
        assert_eq!(with(&|p| p.workload.value_bytes_max = 15), PlanError::ValueTooSmall(15));
        assert!(matches!(with(&|p| p.sample_every = Duration::ZERO), PlanError::Sample(_)));
        assert!(matches!(with(&|p| p.fault_every = Duration::ZERO), PlanError::FaultEvery(_)));
        assert!(matches!(with(&|p| p.duration = Duration::ZERO), PlanError::Duration(_)));
        // Refused by `run` too, before any directory is made.
        let mut p = plan();
        p.workload.clients = 0;
        let e = run(&p, Arc::new(Quiet)).unwrap_err();
        assert!(matches!(e, SoakError::Plan(PlanError::Clients(0))), "{e}");
    }

    struct Quiet;
    impl SoakWatch for Quiet {
        fn progress(&self, _: &Progress) {}
        fn fault(&self, _: u64, _: &str) {}
        fn phase(&self, _: &str) {}
    }

    #[test]
    fn the_schedule_is_the_seeds() {
        assert_eq!(plan().schedule(), plan().schedule());
        let mut other = plan();
        other.seed = 2;
        assert_ne!(plan().schedule(), other.schedule());
        assert_ne!(client_seed(1, 0), client_seed(1, 1));
    }

    #[test]
    fn a_sandbox_that_does_not_come_up_is_an_error_and_leaves_no_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let mut p = plan();
        p.dir = tmp.path().join("soak");
        let e = run(&p, Arc::new(Quiet)).unwrap_err();
        assert!(matches!(e, SoakError::Up { .. }), "{e}");
        assert!(e.up_error().is_some());
        assert!(!p.dir.exists(), "the directory was left");
    }
}
