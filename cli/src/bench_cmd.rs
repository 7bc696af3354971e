//! `arakoon-admin bench`: closed-loop load on a running cluster, reported per client count
//! (the load itself is `arakoon_bench::load`; this parses the arguments and prints).
//!
//! Each client is its own connection (with master discovery) that sends its next request as
//! soon as the last one is answered, for the given duration; then the next client count runs.
//! Sets write values of `--value-size` bytes over a key space of `--keys` keys; gets read keys
//! written before the first run. A failed request is counted, not fatal: a fail-over during a
//! run shows in the error column. Latencies are exact (every request is kept) and reported as
//! p50, p99 and max.

use crate::connect::{learn_names, parse_duration_ms, ConnectArgs};
use crate::exit::Exit;
use crate::output::Failure;
use arakoon_bench::load::{self, LoadSpec, RunResult};
use arakoon_bench::{CompareOptions, Op, StepResult, System};
use arakoon_node::client::{Client, ClientConfig};
use clap::{Args, ValueEnum};
use indicatif::ProgressBar;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::SignalKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mix {
    /// Only sets.
    Set,
    /// Only consistent gets.
    Get,
    /// Half sets, half consistent gets.
    Mixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompareWith {
    /// etcd 3.x, three members on loopback.
    Etcd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompareOp {
    /// Sets of fresh keys.
    Set,
    /// Consistent gets.
    Get,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  arakoon-admin bench -c cluster.ini --clients 1,16,64 --duration 20s \
                        --value-size 100 --mix set\n  \
                        arakoon-admin bench --compare etcd --duration 10s --value-sizes \
                        100,4096,1048576 --ops set\n  \
                        arakoon-admin bench --compare etcd --ops set --clients 1,64 --runs 3\n\n\
                        Exit codes: 0 done (failed requests are counted in the table); 2 bad \
                        command line; 3 bad configuration; 5 the cluster is not reachable."
)]
pub struct BenchArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Client counts to run, one after the other (default 1,16,64; with --compare
    /// 1,16,64,256).
    #[arg(long, value_delimiter = ',', value_name = "N,N,...")]
    clients: Vec<usize>,
    /// Start a 3-node arakoon cluster (the `arakoon` binary beside this one) and a 3-member
    /// etcd (Debian's etcd-server) on this machine and run the same load on both, step by
    /// step: fresh keys per set, one connection per client to the master or leader; prints
    /// ops/s, p50, p99, max, errors and the servers' CPU per acknowledged operation, with the
    /// ratio to etcd. Ignores the connection options.
    #[arg(long, value_enum, value_name = "SYSTEM")]
    compare: Option<CompareWith>,
    /// With --compare: the operations to run.
    #[arg(long, value_delimiter = ',', default_value = "set,get", value_name = "set,get")]
    ops: Vec<CompareOp>,
    /// With --compare: the value sizes to run, in bytes.
    #[arg(long, value_delimiter = ',', default_value = "100", value_name = "BYTES,...")]
    value_sizes: Vec<usize>,
    /// With --compare: the etcd binary (default: `etcd` on the PATH).
    #[arg(long, value_name = "PATH")]
    etcd_bin: Option<std::path::PathBuf>,
    /// With --compare: install Debian's etcd-server with apt-get when etcd is not found.
    #[arg(long)]
    install_etcd: bool,
    /// With --compare: where the two clusters keep their files (default: a temporary
    /// directory; both are removed afterwards).
    #[arg(long, value_name = "DIR")]
    dir: Option<std::path::PathBuf>,
    /// With --compare: how many times each step runs, 1 to 9. The runs alternate between the
    /// systems; a table of medians follows, each ratio the median of the ratios within a run.
    /// One run on a small machine moves by 10% or more from the next: quote medians of 3.
    #[arg(long, default_value_t = 1, value_name = "N")]
    runs: usize,
    /// How long each client count runs, e.g. 20s.
    #[arg(long, default_value = "20s", value_name = "DURATION")]
    duration: String,
    /// Bytes of each value written.
    #[arg(long, default_value_t = 100, value_name = "BYTES")]
    value_size: usize,
    /// What the clients send.
    #[arg(long, value_enum, default_value_t = Mix::Set)]
    mix: Mix,
    /// How many distinct keys the clients use.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    keys: u64,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs of each compared step at most.
const RUNS_MAX: usize = 9;

/// Clients per run at most: each is a connection, and the server's default limit is 1024.
const CLIENTS_MAX: usize = 1000;
pub fn run(mut args: BenchArgs) -> Result<i32, Failure> {
    let duration = Duration::from_millis(parse_duration_ms("--duration", &args.duration)?);
    if args.clients.is_empty() {
        args.clients = if args.compare.is_some() { vec![1, 16, 64, 256] } else { vec![1, 16, 64] };
    }
    if args.clients.iter().any(|&n| n == 0 || n > CLIENTS_MAX) {
        return Err(Failure::new(
            Exit::Usage,
            format!("--clients: give counts from 1 to {CLIENTS_MAX}"),
        ));
    }
    if args.compare.is_some() {
        return compare(&args, duration);
    }
    let config = args.connect.client_config()?;
    if args.clients.iter().any(|&n| n == 0 || n > CLIENTS_MAX) {
        return Err(Failure::new(
            Exit::Usage,
            format!("--clients: give counts from 1 to {CLIENTS_MAX}"),
        ));
    }
    if args.keys == 0 {
        return Err(Failure::new(Exit::Usage, "--keys: at least 1"));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(Exit::Declined, format!("cannot start the runtime: {e}")))?;
    let results = runtime.block_on(async {
        let config = learn_names(config).await;
        let mut check = Client::new(config.clone());
        check.who_master().await.map_err(|e| {
            Failure::new(
                Exit::Unreachable,
                format!("the cluster is not reachable: {e}; is it running?"),
            )
        })?;
        if args.mix != Mix::Set {
            preload(&mut check, args.keys, args.value_size).await?;
        }
        let mut results = Vec::new();
        for &clients in &args.clients {
            results.push(run_clients(&config, clients, duration, &args).await);
        }
        Ok::<_, Failure>(results)
    })?;
    if args.json {
        let runs: Vec<_> = results
            .iter()
            .map(|r| {
                json!({
                    "clients": r.clients, "ops": r.ops, "errors": r.errors, "seconds": r.seconds,
                    "ops_per_second": r.ops_per_second(), "p50_us": r.percentile_us(0.5),
                    "p99_us": r.percentile_us(0.99), "max_us": r.latencies_us.last(),
                    "first_error": r.first_error,
                })
            })
            .collect();
        println!(
            "{}",
            json!({"mix": format!("{:?}", args.mix).to_lowercase(), "value_size": args.value_size,
                   "keys": args.keys, "runs": runs})
        );
        return Ok(0);
    }
    println!(
        "{:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>7}",
        "clients", "ops", "ops/s", "p50 ms", "p99 ms", "max ms", "errors"
    );
    let ms = |us: u64| us as f64 / 1000.0;
    for r in &results {
        println!(
            "{:>7} {:>10} {:>10.0} {:>10.2} {:>10.2} {:>10.2} {:>7}",
            r.clients,
            r.ops,
            r.ops_per_second(),
            ms(r.percentile_us(0.5)),
            ms(r.percentile_us(0.99)),
            ms(r.latencies_us.last().copied().unwrap_or(0)),
            r.errors
        );
    }
    for r in results.iter().filter(|r| r.first_error.is_some()) {
        eprintln!(
            "{} clients: first error: {}",
            r.clients,
            r.first_error.as_deref().unwrap_or_default()
        );
    }
    Ok(0)
}

/// `--compare etcd`: both clusters on this machine, the same steps on each.
fn compare(args: &BenchArgs, duration: Duration) -> Result<i32, Failure> {
    if args.value_sizes.is_empty() || args.value_sizes.iter().any(|&v| v == 0 || v > 8 << 20) {
        return Err(Failure::new(Exit::Usage, "--value-sizes: give sizes from 1 byte to 8 MiB"));
    }
    if !(1..=RUNS_MAX).contains(&args.runs) {
        return Err(Failure::new(Exit::Usage, format!("--runs: give 1 to {RUNS_MAX}")));
    }
    let opts = CompareOptions {
        ops: args
            .ops
            .iter()
            .map(|o| match o {
                CompareOp::Set => Op::Set,
                CompareOp::Get => Op::Get,
            })
            .collect(),
        value_sizes: args.value_sizes.clone(),
        clients: args.clients.clone(),
        duration,
        etcd_bin: args.etcd_bin.clone(),
        install_etcd: args.install_etcd,
        dir: args.dir.clone(),
        runs: args.runs,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(Exit::Declined, format!("cannot start the runtime: {e}")))?;
    if !args.json {
        println!(
            "{:<4} {:>8} {:>7} {:<8} {:>9} {:>8} {:>8} {:>8} {:>6} {:>9} {:>10} {:>9}",
            "op",
            "value",
            "clients",
            "system",
            "ops/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "errors",
            "cpu µs/op",
            "load µs/op",
            "vs etcd"
        );
    }
    let mut results: Vec<StepResult> = Vec::new();
    // Ctrl-C or SIGTERM ends the comparison by dropping it: its six servers are killed and its
    // directory removed (killed outright, a run once left 45 GB of etcd data in /tmp).
    let interrupted = async {
        let Ok(mut term) = tokio::signal::unix::signal(SignalKind::terminate()) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        }
    };
    let comparison = arakoon_bench::compare(
        &opts,
        |line| eprintln!("{line}"),
        |r| {
            results.push(r.clone());
            if r.system == System::Etcd && !args.json {
                let ours = results.iter().rev().find(|a| {
                    a.system == System::Arakoon
                        && (a.op, a.value_size, a.clients) == (r.op, r.value_size, r.clients)
                });
                for row in ours.into_iter().chain([r]) {
                    println!("{}", compare_row(row, ours.filter(|_| row.system != r.system), r));
                }
            }
        },
    );
    let done = runtime.block_on(async {
        tokio::select! {
            done = comparison => Ok(done),
            signal = interrupted => Err(signal),
        }
    });
    let done = match done {
        Ok(done) => done,
        Err(signal) => {
            return Err(Failure::new(
                Exit::Interrupted,
                format!(
                    "interrupted by {signal} after {} step(s): both clusters were stopped and \
                     their files removed",
                    results.len()
                ),
            ))
        }
    };
    if let Err(e) = done {
        return Err(Failure::new(Exit::Unreachable, e.to_string()));
    }
    let medians = arakoon_bench::summary::medians(&results);
    if args.json {
        println!("{}", json!({ "compare": "etcd", "steps": results, "medians": medians }));
    } else {
        for r in results.iter().filter(|r| r.first_error.is_some()) {
            eprintln!(
                "{} {} {} B, {} clients: first error: {}",
                r.system,
                r.op,
                r.value_size,
                r.clients,
                r.first_error.as_deref().unwrap_or_default()
            );
        }
        println!(
            "vs etcd: arakoon's ops/s over etcd's, and (p99) etcd's p99 over arakoon's: above 1x \
             arakoon is ahead. Both clusters run side by side; steps alternate between them. \
             cpu µs/op: the three servers' CPU per acknowledged operation; load µs/op: this \
             program's (every client's), which runs on the same cores."
        );
        if args.runs > 1 {
            print_medians(&medians);
        }
        print_stages(&results);
    }
    Ok(0)
}

/// The medians of every step over its runs, with the ratios taken within each run.
fn print_medians(medians: &[arakoon_bench::summary::StepMedians]) {
    println!();
    println!("medians over the runs (ratio: the median of the runs' ratios, lowest..highest):");
    println!(
        "{:<4} {:>8} {:>7} {:>5} {:>12} {:>10} {:>19} {:>11} {:>9} {:>11} {:>9} {:>10}",
        "op",
        "value",
        "clients",
        "runs",
        "arakoon op/s",
        "etcd op/s",
        "vs etcd",
        "arakoon p99",
        "etcd p99",
        "arakoon max",
        "etcd max",
        "errors"
    );
    let ms = |us: u64| format!("{:.2} ms", us as f64 / 1000.0);
    for m in medians {
        println!(
            "{:<4} {:>8} {:>7} {:>5} {:>12.0} {:>10.0} {:>19} {:>11} {:>9} {:>11} {:>9} {:>10}",
            m.op.to_string(),
            size_label(m.value_size),
            m.clients,
            m.runs,
            m.arakoon_ops_per_second,
            m.etcd_ops_per_second,
            format!("{:.2}x ({:.2}..{:.2})", m.ratio, m.ratio_min, m.ratio_max),
            ms(m.arakoon_p99_us),
            ms(m.etcd_p99_us),
            ms(m.arakoon_max_us),
            ms(m.etcd_max_us),
            format!("{}/{}", m.arakoon_errors, m.etcd_errors)
        );
    }
}

/// Where arakoon's time went in each step: every stage's count and durations over the three
/// nodes, from the spans the nodes wrote (node/src/spans.rs).
fn print_stages(results: &[StepResult]) {
    let steps: Vec<&StepResult> = results.iter().filter(|r| !r.stages.is_empty()).collect();
    if steps.is_empty() {
        return;
    }
    println!();
    println!("arakoon's stages per step (three nodes together; durations are bucket tops, ±19%):");
    println!(
        "{:<4} {:>8} {:>7} {:<14} {:>9} {:>9} {:>9} {:>9}",
        "op", "value", "clients", "stage", "count", "p50 ms", "p99 ms", "max ms"
    );
    let ms = |us: u64| us as f64 / 1000.0;
    for r in steps {
        for s in &r.stages {
            println!(
                "{:<4} {:>8} {:>7} {:<14} {:>9} {:>9.3} {:>9.3} {:>9.3}",
                r.op.to_string(),
                size_label(r.value_size),
                r.clients,
                s.name,
                s.count,
                ms(s.p50_us),
                ms(s.p99_us),
                ms(s.max_us)
            );
        }
    }
    println!(
        "core.event: the core busy with one event (applies included); store.apply: one slot into \
         sled; persist.wait: a TLog group's first job, from hand-over to the persister thread \
         taking it; persist.group: one TLog group, fsync included; store.flush: one sled flush; \
         client.wait: a request's wait for the core's answer."
    );
}

/// A value size as people write it: 100 B, 4 KiB, 1 MiB.
fn size_label(size: usize) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

/// One line of the comparison table; `ours` is set on the arakoon line (with `etcd` its pair).
fn compare_row(r: &StepResult, ours: Option<&StepResult>, etcd: &StepResult) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    let ratio = match ours {
        Some(a) => format!(
            "{:.2}x ({:.2}x)",
            a.ops_per_second / etcd.ops_per_second.max(1e-9),
            etcd.p99_us as f64 / (a.p99_us as f64).max(1.0)
        ),
        None => String::new(),
    };
    let size = size_label(r.value_size);
    format!(
        "{:<4} {:>8} {:>7} {:<8} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>6} {:>9.1} {:>10.1} {:>9}",
        r.op.to_string(),
        size,
        r.clients,
        r.system.to_string(),
        r.ops_per_second,
        ms(r.p50_us),
        ms(r.p99_us),
        ms(r.max_us),
        r.errors,
        r.server_cpu_us_per_op,
        r.load_cpu_us_per_op,
        ratio
    )
}

/// Writes every key once, so that gets find them.
async fn preload(client: &mut Client, keys: u64, value_size: usize) -> Result<(), Failure> {
    load::preload(client, keys, value_size)
        .await
        .map_err(|e| Failure::new(Exit::Unreachable, format!("writing the keys to read: {e}")))
}

/// A live bar (on a terminal only): time elapsed, operations so far and their rate.
fn live_bar(clients: usize, duration: Duration) -> ProgressBar {
    let bar = crate::output::timed_bar(duration, "{prefix:>4} clients [{bar:30}] {elapsed} {msg}");
    bar.set_prefix(clients.to_string());
    bar
}

/// One run of `clients` clients, with a live bar of the operations so far.
async fn run_clients(
    config: &ClientConfig,
    clients: usize,
    duration: Duration,
    args: &BenchArgs,
) -> RunResult {
    let ops = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let bar = live_bar(clients, duration);
    let ticker = {
        let (bar, ops) = (bar.clone(), ops.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let elapsed = started.elapsed();
                let n = ops.load(Ordering::Relaxed);
                bar.set_position(elapsed.as_millis() as u64);
                bar.set_message(format!(
                    "{n} ops, {:.0} ops/s",
                    n as f64 / elapsed.as_secs_f64().max(1e-9)
                ));
            }
        })
    };
    let mix = match args.mix {
        Mix::Set => load::Mix::Set,
        Mix::Get => load::Mix::Get,
        Mix::Mixed => load::Mix::Mixed,
    };
    let spec = LoadSpec { mix, keys: args.keys, value_size: args.value_size };
    let result = load::run_clients(config, clients, duration, spec, ops).await;
    ticker.abort();
    bar.finish_and_clear();
    result
}
