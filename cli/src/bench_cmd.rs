//! `arakoon-admin bench`: closed-loop load on a running cluster, reported per client count.
//!
//! Each client is its own connection (with master discovery) that sends its next request as
//! soon as the last one is answered, for the given duration; then the next client count runs.
//! Sets write values of `--value-size` bytes over a key space of `--keys` keys; gets read keys
//! written before the first run. A failed request is counted, not fatal: a fail-over during a
//! run shows in the error column. Latencies are exact (every request is kept) and reported as
//! p50, p99 and max.

use crate::connect::{learn_names, parse_duration_ms, ConnectArgs};
use crate::output::Failure;
use arakoon_node::client::{Client, ClientConfig};
use arakoon_node::value::Update;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mix {
    /// Only sets.
    Set,
    /// Only consistent gets.
    Get,
    /// Half sets, half consistent gets.
    Mixed,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  arakoon-admin bench -c cluster.ini --clients 1,16,64 --duration 20s \
                        --value-size 100 --mix set\n\n\
                        Exit codes: 0 done (failed requests are counted in the table); 2 bad \
                        command line; 3 bad configuration; 5 the cluster is not reachable."
)]
pub struct BenchArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Client counts to run, one after the other.
    #[arg(long, default_value = "1,16,64", value_delimiter = ',', value_name = "N,N,...")]
    clients: Vec<usize>,
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

/// Clients per run at most: each is a connection, and the server's default limit is 1024.
const CLIENTS_MAX: usize = 1000;
/// Keys written per sequence while preparing the gets.
const PRELOAD_BATCH_KEYS: u64 = 100;

/// The outcome of one run.
struct RunResult {
    clients: usize,
    ops: u64,
    errors: u64,
    seconds: f64,
    /// Every successful request's latency, sorted.
    latencies_us: Vec<u64>,
    first_error: Option<String>,
}

impl RunResult {
    fn percentile_us(&self, q: f64) -> u64 {
        let n = self.latencies_us.len();
        if n == 0 {
            return 0;
        }
        self.latencies_us[((n as f64 * q) as usize).min(n - 1)]
    }

    fn ops_per_second(&self) -> f64 {
        self.ops as f64 / self.seconds.max(1e-9)
    }
}

pub fn run(args: BenchArgs) -> Result<i32, Failure> {
    let config = args.connect.client_config()?;
    let duration = Duration::from_millis(parse_duration_ms("--duration", &args.duration)?);
    if args.clients.is_empty() || args.clients.iter().any(|&n| n == 0 || n > CLIENTS_MAX) {
        return Err(Failure::new(2, format!("--clients: give counts from 1 to {CLIENTS_MAX}")));
    }
    if args.keys == 0 {
        return Err(Failure::new(2, "--keys: at least 1"));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(1, format!("cannot start the runtime: {e}")))?;
    let results = runtime.block_on(async {
        let config = learn_names(config).await;
        let mut check = Client::new(config.clone());
        check.who_master().await.map_err(|e| {
            Failure::new(5, format!("the cluster is not reachable: {e}; is it running?"))
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

fn key(k: u64) -> Vec<u8> {
    format!("bench/{k:08}").into_bytes()
}

/// Writes every key once, so that gets find them.
async fn preload(client: &mut Client, keys: u64, value_size: usize) -> Result<(), Failure> {
    let value = vec![b'v'; value_size];
    let mut k = 0;
    while k < keys {
        let end = (k + PRELOAD_BATCH_KEYS).min(keys);
        let updates = (k..end).map(|k| Update::Set { key: key(k), value: value.clone() }).collect();
        client
            .sequence(updates, false)
            .await
            .map_err(|e| Failure::new(5, format!("writing the keys to read: {e}")))?;
        k = end;
    }
    Ok(())
}

/// A live bar (on a terminal only): time elapsed, operations so far and their rate.
fn live_bar(clients: usize, duration: Duration) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(duration.as_millis() as u64),
        ProgressDrawTarget::stderr(),
    );
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{prefix:>4} clients [{bar:30}] {elapsed} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(clients.to_string());
    bar
}

async fn run_clients(
    config: &ClientConfig,
    clients: usize,
    duration: Duration,
    args: &BenchArgs,
) -> RunResult {
    let ops = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let mut client = Client::new(config.clone());
        let ops = ops.clone();
        let (mix, keys, value) = (args.mix, args.keys, vec![b'v'; args.value_size]);
        tasks.push(tokio::spawn(async move {
            // xorshift: a cheap, per-client key sequence.
            let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (c as u64 + 1);
            let mut latencies = Vec::new();
            let (mut errors, mut first_error) = (0u64, None);
            while Instant::now() < deadline {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let k = key(x % keys);
                let set = match mix {
                    Mix::Set => true,
                    Mix::Get => false,
                    Mix::Mixed => x & (1 << 40) != 0,
                };
                let t = Instant::now();
                let result =
                    if set { client.set(&k, &value).await } else { client.get(&k).await.map(drop) };
                match result {
                    Ok(()) => {
                        latencies.push(t.elapsed().as_micros() as u64);
                        ops.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            (latencies, errors, first_error)
        }));
    }
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
    let mut result = RunResult {
        clients,
        ops: 0,
        errors: 0,
        seconds: 0.0,
        latencies_us: Vec::new(),
        first_error: None,
    };
    for task in tasks {
        match task.await {
            Ok((latencies, errors, first_error)) => {
                result.latencies_us.extend(latencies);
                result.errors += errors;
                if result.first_error.is_none() {
                    result.first_error = first_error;
                }
            }
            Err(e) => {
                result.errors += 1;
                result.first_error.get_or_insert_with(|| format!("a client task failed: {e}"));
            }
        }
    }
    ticker.abort();
    bar.finish_and_clear();
    result.seconds = started.elapsed().as_secs_f64();
    result.ops = result.latencies_us.len() as u64;
    result.latencies_us.sort_unstable();
    result
}
