//! arakoon-bench: arakoon-rs and etcd side by side on one machine, under one load generator.
//!
//! [`load`] is the plain bench of one running arakoon cluster (`arakoon-admin bench`):
//! closed-loop clients per client count, exact percentiles.
//!
//! A comparison ([`compare`]) starts a 3-node arakoon cluster and a 3-member etcd cluster
//! ([`cluster`]) and runs the same steps against each, one after the other: for each operation
//! (sets, or consistent gets), value size and client count, closed-loop clients, each with its
//! own connection to the master (arakoon's client finds it; for etcd, the leader's address),
//! send their next request as soon as the last is answered. Sets write fresh keys, never
//! overwriting; gets read keys written before the step. Every latency is kept (p50, p99 and max
//! are exact), failed requests are counted, and the CPU time the three server processes spent
//! during the step is read from /proc and divided by the acknowledged operations.
//!
//! What this measures is what a user gets: acknowledged operations through the public client
//! protocol of each system, with fsync on and the generator sharing the machine with the
//! servers (on a 2-core machine the generator's CPU is part of the picture, the same for both).

pub mod cluster;
pub mod etcd;
pub mod load;
pub mod summary;

use arakoon_node::client::{Client, ClientConfig};
use arakoon_node::spans;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use thiserror::Error;

/// What the clients send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Writes of fresh keys.
    Set,
    /// Consistent (linearizable) reads of keys written before.
    Get,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::Set => "set",
            Op::Get => "get",
        })
    }
}

/// The systems compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    Arakoon,
    Etcd,
}

impl std::fmt::Display for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            System::Arakoon => "arakoon",
            System::Etcd => "etcd",
        })
    }
}

/// How long after a step the spans files are read: the nodes rewrite them every second.
const SPANS_SETTLE: Duration = Duration::from_millis(1_100);

/// One step's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepResult {
    pub system: System,
    pub op: Op,
    pub value_size: usize,
    pub clients: usize,
    /// Which run of the step this is, from 1 (`CompareOptions::runs`).
    pub run: usize,
    pub ops: u64,
    pub errors: u64,
    pub seconds: f64,
    pub ops_per_second: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// CPU time of the three servers per acknowledged operation.
    pub server_cpu_us_per_op: f64,
    /// CPU time of this process (the load generator: every client of the step) per
    /// acknowledged operation: what the servers could not use of the machine's cores.
    pub load_cpu_us_per_op: f64,
    pub first_error: Option<String>,
    /// Where arakoon's time went in this step: each stage's durations over the three nodes
    /// (node/src/spans.rs); empty for etcd.
    pub stages: Vec<Stage>,
}

/// One stage of the nodes' work in a step: how often it ran and how long it took, as the tops
/// of histogram buckets (about 19% wide).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stage {
    pub name: String,
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// Every stage's counts so far, summed over the nodes' spans files in `dir`.
fn read_spans(dir: &std::path::Path) -> Vec<(String, spans::Counts)> {
    let mut sums: Vec<(String, spans::Counts)> = Vec::new();
    let files = std::fs::read_dir(dir).into_iter().flatten().flatten();
    for file in files.filter(|f| f.path().extension().is_some_and(|e| e == "spans")) {
        for (name, counts) in spans::read(&file.path()).unwrap_or_default() {
            match sums.iter_mut().find(|(n, _)| *n == name) {
                Some((_, sum)) => sum.add(&counts),
                None => sums.push((name, counts)),
            }
        }
    }
    sums
}

/// The stages of a step: what the spans files gained between two readings.
fn stages_between(
    before: &[(String, spans::Counts)],
    after: &[(String, spans::Counts)],
) -> Vec<Stage> {
    after
        .iter()
        .map(|(name, counts)| {
            let empty = spans::Counts::default();
            let old = before.iter().find(|(n, _)| n == name).map_or(&empty, |(_, c)| c);
            let step = counts.since(old);
            let top = step.0.iter().rposition(|c| *c > 0).map_or(0, spans::bucket_top);
            Stage {
                name: name.clone(),
                count: step.total(),
                p50_us: step.quantile(0.5).unwrap_or(0),
                p99_us: step.quantile(0.99).unwrap_or(0),
                max_us: top,
            }
        })
        .collect()
}

#[derive(Debug, Error)]
pub enum BenchError {
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error("{system}: {what}")]
    Load { system: System, what: LoadError },
    #[error("cannot make the scratch directory: {0}")]
    Scratch(std::io::Error),
}

/// Why one request of the load failed.
#[derive(Debug, Error)]
pub enum CallError {
    #[error(transparent)]
    Arakoon(#[from] arakoon_node::client::ClientError),
    #[error(transparent)]
    Etcd(#[from] etcd::EtcdError),
    #[error("key {} not found", String::from_utf8_lossy(.0))]
    EtcdKeyMissing(Vec<u8>),
}

/// Why a step's load could not run.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("connecting a client: {0}")]
    Connect(CallError),
    #[error("writing {key} for the gets: {source}")]
    Preload { key: String, source: CallError },
    #[error("no master within {seconds} s: {source}")]
    NotReady { seconds: u64, source: CallError },
    #[error("a client task failed: {0}")]
    Client(#[from] tokio::task::JoinError),
}

/// A comparison to run.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    pub ops: Vec<Op>,
    pub value_sizes: Vec<usize>,
    pub clients: Vec<usize>,
    pub duration: Duration,
    pub etcd_bin: Option<PathBuf>,
    pub install_etcd: bool,
    /// Where the clusters keep their files (default: a temporary directory, removed after).
    pub dir: Option<PathBuf>,
    /// How many times each step runs (at least 1); the runs alternate between the systems, a
    /// step's runs one after the other, on the same clusters below
    /// `FRESH_CLUSTERS_PER_STEP_FROM` and on a fresh pair each from it ([`summary`]).
    pub runs: usize,
}

/// Keys the gets of one value size read (written before the first get step), bounded to about
/// 64 MiB of values.
fn get_keys(value_size: usize) -> u64 {
    ((64usize << 20) / value_size.max(1)).clamp(16, 1000) as u64
}

/// One client connection of either system.
enum Conn {
    Arakoon(Box<Client>),
    Etcd(etcd::EtcdConn, SocketAddr),
}

impl Conn {
    async fn open(target: &Target) -> Result<Conn, CallError> {
        match target {
            Target::Arakoon(config) => {
                let mut c = Client::new(config.clone());
                c.who_master().await?;
                Ok(Conn::Arakoon(Box::new(c)))
            }
            Target::Etcd(addr) => Ok(Conn::Etcd(etcd::EtcdConn::connect(*addr).await?, *addr)),
        }
    }

    async fn call(&mut self, op: Op, key: &[u8], value: &[u8]) -> Result<(), CallError> {
        let result = match self {
            Conn::Arakoon(c) => match op {
                Op::Set => c.set(key, value).await.map_err(CallError::from),
                Op::Get => c.get(key).await.map(drop).map_err(CallError::from),
            },
            Conn::Etcd(c, _) => match op {
                Op::Set => c.put(key, value).await.map_err(CallError::from),
                Op::Get => match c.get(key).await {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err(CallError::EtcdKeyMissing(key.to_vec())),
                    Err(e) => Err(e.into()),
                },
            },
        };
        if let (Err(_), Conn::Etcd(c, addr)) = (&result, &mut *self) {
            // A broken HTTP/2 connection stays broken: open a new one for the next request.
            if let Ok(fresh) = etcd::EtcdConn::connect(*addr).await {
                *c = fresh;
            }
        }
        result
    }
}

/// Where a step's clients connect.
#[derive(Clone)]
enum Target {
    Arakoon(ClientConfig),
    Etcd(SocketAddr),
}

/// Writes the keys the gets of `value_size` read.
async fn preload(target: &Target, system: System, value_size: usize) -> Result<(), BenchError> {
    let load = |what: LoadError| BenchError::Load { system, what };
    let mut conn = Conn::open(target).await.map_err(|e| load(LoadError::Connect(e)))?;
    let value = vec![b'g'; value_size];
    for i in 0..get_keys(value_size) {
        let key = format!("g{value_size}-{i:05}");
        conn.call(Op::Set, key.as_bytes(), &value)
            .await
            .map_err(|source| load(LoadError::Preload { key: key.clone(), source }))?;
    }
    Ok(())
}

/// One step: `clients` closed-loop clients for `duration`; `run` is which run of the step it is
/// (`step` counts every step of the comparison, for fresh keys).
#[allow(clippy::too_many_arguments)]
async fn run_step(
    target: &Target,
    system: System,
    servers: &cluster::Servers,
    spans_dir: Option<&std::path::Path>,
    op: Op,
    value_size: usize,
    clients: usize,
    duration: Duration,
    step: usize,
    run: usize,
) -> Result<StepResult, BenchError> {
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        let conn = Conn::open(target).await;
        let what = |e| BenchError::Load { system, what: LoadError::Connect(e) };
        conns.push(conn.map_err(what)?);
    }
    // The nodes rewrite their spans files every second: a reading a second after the last
    // request holds everything before it.
    let spans_before = match spans_dir {
        Some(dir) => {
            tokio::time::sleep(SPANS_SETTLE).await;
            read_spans(dir)
        }
        None => Vec::new(),
    };
    let cpu_before = servers.cpu();
    let load_cpu_before = cluster::own_cpu();
    let started = Instant::now();
    let deadline = started + duration;
    let keys = get_keys(value_size);
    let mut tasks = Vec::with_capacity(clients);
    for (c, mut conn) in conns.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let value = vec![b'v'; value_size];
            let (mut latencies, mut errors, mut first_error) = (Vec::new(), 0u64, None);
            let mut n = 0u64;
            while Instant::now() < deadline {
                let key = match op {
                    Op::Set => format!("s{step}-c{c}-{n}"),
                    // Each client walks the keys from its own offset.
                    Op::Get => format!("g{value_size}-{:05}", (c as u64 * 7919 + n) % keys),
                };
                let t = Instant::now();
                match conn.call(op, key.as_bytes(), &value).await {
                    Ok(()) => latencies.push(t.elapsed().as_micros() as u64),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                }
                n += 1;
            }
            (latencies, errors, first_error)
        }));
    }
    let (mut latencies, mut errors, mut first_error) = (Vec::new(), 0u64, None);
    for t in tasks {
        let (l, e, f) = t.await.map_err(|e| BenchError::Load { system, what: e.into() })?;
        latencies.extend(l);
        errors += e;
        first_error = first_error.or(f);
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = servers.cpu().saturating_sub(cpu_before);
    let load_cpu = cluster::own_cpu().saturating_sub(load_cpu_before);
    let stages = match spans_dir {
        Some(dir) => {
            tokio::time::sleep(SPANS_SETTLE).await;
            stages_between(&spans_before, &read_spans(dir))
        }
        None => Vec::new(),
    };
    latencies.sort_unstable();
    let pct = |q: f64| load::percentile_us(&latencies, q);
    let ops = latencies.len() as u64;
    Ok(StepResult {
        system,
        op,
        value_size,
        clients,
        run,
        ops,
        errors,
        seconds,
        ops_per_second: ops as f64 / seconds.max(1e-9),
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        max_us: latencies.last().copied().unwrap_or(0),
        server_cpu_us_per_op: cpu.as_micros() as f64 / ops.max(1) as f64,
        load_cpu_us_per_op: load_cpu.as_micros() as f64 / ops.max(1) as f64,
        first_error,
        stages,
    })
}

/// Values of this size and more get a fresh pair of clusters for every step, not only for every
/// operation and value size: a step of 256 clients writing 1 MiB values adds gigabytes to each
/// member, and etcd keeps its recent raft log in memory (its default `--snapshot-count` is
/// 100,000 entries), so the steps of the full table, run on one pair, once took each etcd member
/// past 6 GB resident and a 24 GiB machine into swap.
pub const FRESH_CLUSTERS_PER_STEP_FROM: usize = 64 << 10;

/// A 3-node arakoon cluster and a 3-member etcd, started together under `dir`.
struct Pair {
    arakoon: cluster::ArakoonCluster,
    etcd: cluster::EtcdCluster,
}

impl Pair {
    async fn start(etcd_bin: &std::path::Path, dir: &std::path::Path) -> Result<Pair, BenchError> {
        let (a_dir, e_dir) = (dir.join("arakoon"), dir.join("etcd"));
        for d in [&a_dir, &e_dir] {
            std::fs::create_dir_all(d).map_err(BenchError::Scratch)?;
        }
        let arakoon = cluster::start_arakoon(&a_dir)?;
        let etcd = cluster::start_etcd(etcd_bin, &e_dir, Duration::from_secs(30)).await?;
        let pair = Pair { arakoon, etcd };
        // The arakoon cluster serves once a master is elected; the first open waits for it.
        wait_ready(&pair.targets()[0].1, System::Arakoon, Duration::from_secs(30)).await?;
        Ok(pair)
    }

    fn targets(&self) -> [(System, Target, &cluster::Servers, Option<&std::path::Path>); 2] {
        [
            (
                System::Arakoon,
                Target::Arakoon(self.arakoon.client.clone()),
                &self.arakoon.servers,
                Some(self.arakoon.spans.as_path()),
            ),
            (System::Etcd, Target::Etcd(self.etcd.leader), &self.etcd.servers, None),
        ]
    }
}

/// Runs every step on arakoon, then the same step on etcd, and hands each result to `report`
/// as it comes (`note` gets progress lines). Each operation and value size starts on a fresh
/// pair of clusters (and each step, for values of [`FRESH_CLUSTERS_PER_STEP_FROM`] bytes and
/// more); the pair before is stopped and its files removed first.
pub async fn compare(
    opts: &CompareOptions,
    mut note: impl FnMut(&str),
    mut report: impl FnMut(&StepResult),
) -> Result<(), BenchError> {
    let etcd_bin = cluster::find_etcd(opts.etcd_bin.as_deref(), opts.install_etcd)?;
    let scratch = match &opts.dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(BenchError::Scratch)?;
            tempfile::tempdir_in(d)
        }
        None => tempfile::tempdir(),
    }
    .map_err(BenchError::Scratch)?;
    let mut step = 0;
    let mut generation = 0;
    for &op in &opts.ops {
        for &size in &opts.value_sizes {
            let mut pair: Option<(Pair, PathBuf)> = None;
            let runs = opts.runs.max(1);
            for &clients in &opts.clients {
                for run in 1..=runs {
                    // Large values: a fresh pair for every run of every step, as the data of
                    // each is gigabytes at many clients.
                    if pair.is_none() || size >= FRESH_CLUSTERS_PER_STEP_FROM {
                        if let Some((old, dir)) = pair.take() {
                            drop(old);
                            let _ = std::fs::remove_dir_all(dir);
                        }
                        generation += 1;
                        let dir = scratch.path().join(format!("pair{generation}"));
                        let fresh = start_pair(&etcd_bin, &dir, op, size, &mut note).await?;
                        pair = Some((fresh, dir));
                    }
                    let (p, _) = pair.as_ref().expect("started above");
                    for (system, target, servers, spans) in &p.targets() {
                        let of =
                            if runs > 1 { format!(", run {run} of {runs}") } else { String::new() };
                        note(&format!("{system}: {op} {size} B, {clients} client(s){of}"));
                        step += 1;
                        let (d, s) = (opts.duration, *spans);
                        let r =
                            run_step(target, *system, servers, s, op, size, clients, d, step, run)
                                .await?;
                        report(&r);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Starts a pair of clusters in `dir`, loaded with the keys a step of `op` reads.
async fn start_pair(
    etcd_bin: &Path,
    dir: &Path,
    op: Op,
    size: usize,
    note: &mut impl FnMut(&str),
) -> Result<Pair, BenchError> {
    let (etcd, shown) = (etcd_bin.display(), dir.display());
    note(&format!("starting 3 arakoon nodes and 3 etcd members ({etcd}) in {shown}"));
    let pair = Pair::start(etcd_bin, dir).await?;
    if op == Op::Get {
        note(&format!("writing {} keys of {size} B for the gets", get_keys(size)));
        for (system, target, _, _) in &pair.targets() {
            preload(target, *system, size).await?;
        }
    }
    Ok(pair)
}

async fn wait_ready(target: &Target, system: System, within: Duration) -> Result<(), BenchError> {
    let deadline = Instant::now() + within;
    loop {
        match Conn::open(target).await {
            Ok(_) => return Ok(()),
            Err(source) if Instant::now() >= deadline => {
                let what = LoadError::NotReady { seconds: within.as_secs(), source };
                return Err(BenchError::Load { system, what });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
