//! Closed-loop load on a running arakoon cluster, one client count at a time
//! (`arakoon-admin bench`): each client is its own connection (with master discovery) that
//! sends its next request as soon as the last one is answered, until the deadline. Sets write
//! values of a given size over a key space; gets read keys written before ([`preload`]). A
//! failed request is counted, not fatal: a fail-over during a run shows as errors. Every
//! latency is kept, so the percentiles are exact.

use arakoon_node::client::{Client, ClientConfig, ClientError};
use arakoon_node::value::Update;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Keys written per sequence while preparing the gets.
pub const PRELOAD_BATCH_KEYS: u64 = 100;

/// What the clients send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Only sets.
    Set,
    /// Only consistent gets.
    Get,
    /// Half sets, half consistent gets.
    Mixed,
}

/// The load of one run.
#[derive(Debug, Clone, Copy)]
pub struct LoadSpec {
    pub mix: Mix,
    /// Distinct keys the clients use.
    pub keys: u64,
    /// Bytes of each value written.
    pub value_size: usize,
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub clients: usize,
    pub ops: u64,
    pub errors: u64,
    pub seconds: f64,
    /// Every successful request's latency, sorted.
    pub latencies_us: Vec<u64>,
    /// The first failure's text (a client error, or a client task that died).
    pub first_error: Option<String>,
}

impl RunResult {
    pub fn percentile_us(&self, q: f64) -> u64 {
        percentile_us(&self.latencies_us, q)
    }

    pub fn ops_per_second(&self) -> f64 {
        self.ops as f64 / self.seconds.max(1e-9)
    }
}

/// The `q` quantile (0 to 1) of `sorted`, exact: the value at rank `len * q`; 0 when empty.
pub fn percentile_us(sorted: &[u64], q: f64) -> u64 {
    match sorted.len() {
        0 => 0,
        n => sorted[((n as f64 * q) as usize).min(n - 1)],
    }
}

/// The `k`-th key of the bench's key space.
pub fn key(k: u64) -> Vec<u8> {
    format!("bench/{k:08}").into_bytes()
}

/// Writes every key once, so that gets find them.
pub async fn preload(client: &mut Client, keys: u64, value_size: usize) -> Result<(), ClientError> {
    let value = vec![b'v'; value_size];
    let mut k = 0;
    while k < keys {
        let end = (k + PRELOAD_BATCH_KEYS).min(keys);
        let updates = (k..end).map(|k| Update::Set { key: key(k), value: value.clone() }).collect();
        client.sequence(updates, false).await?;
        k = end;
    }
    Ok(())
}

/// A client's own key sequence (xorshift: cheap, and different per client).
struct Keys(u64);

impl Keys {
    fn new(client: usize) -> Keys {
        Keys(0x9e37_79b9_7f4a_7c15u64 ^ (client as u64 + 1))
    }

    fn next(&mut self) -> u64 {
        let x = &mut self.0;
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }
}

/// Whether the request drawn as `x` is a set under `mix`.
fn is_set(mix: Mix, x: u64) -> bool {
    match mix {
        Mix::Set => true,
        Mix::Get => false,
        Mix::Mixed => x & (1 << 40) != 0,
    }
}

/// Runs `clients` closed-loop clients for `duration`; `ops` counts the successful requests as
/// they happen (for a live display).
pub async fn run_clients(
    config: &ClientConfig,
    clients: usize,
    duration: Duration,
    spec: LoadSpec,
    ops: Arc<AtomicU64>,
) -> RunResult {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let mut client = Client::new(config.clone());
        let ops = ops.clone();
        let value = vec![b'v'; spec.value_size];
        tasks.push(tokio::spawn(async move {
            let mut keys = Keys::new(c);
            let mut latencies = Vec::new();
            let (mut errors, mut first_error) = (0u64, None);
            while Instant::now() < deadline {
                let x = keys.next();
                let k = key(x % spec.keys);
                let t = Instant::now();
                let result = if is_set(spec.mix, x) {
                    client.set(&k, &value).await
                } else {
                    client.get(&k).await.map(drop)
                };
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
    result.seconds = started.elapsed().as_secs_f64();
    result.ops = result.latencies_us.len() as u64;
    result.latencies_us.sort_unstable();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_exact_ranks_of_the_sorted_latencies() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile_us(&sorted, 0.5), 51);
        assert_eq!(percentile_us(&sorted, 0.99), 100);
        assert_eq!(percentile_us(&sorted, 1.0), 100, "the top rank is clamped");
        assert_eq!(percentile_us(&[], 0.5), 0);
        let r = RunResult {
            clients: 1,
            ops: 100,
            errors: 0,
            seconds: 2.0,
            latencies_us: sorted,
            first_error: None,
        };
        assert_eq!(r.ops_per_second(), 50.0);
        assert_eq!(r.percentile_us(0.5), 51);
    }

    #[test]
    fn clients_draw_different_keys_and_the_mix_splits_sets_and_gets() {
        let (mut a, mut b) = (Keys::new(0), Keys::new(1));
        let (xa, xb): (Vec<u64>, Vec<u64>) = (0..8).map(|_| (a.next(), b.next())).unzip();
        assert_ne!(xa, xb);
        assert_eq!(key(7), b"bench/00000007".to_vec());
        let mut k = Keys::new(3);
        let draws: Vec<u64> = (0..1000).map(|_| k.next()).collect();
        let sets = draws.iter().filter(|&&x| is_set(Mix::Mixed, x)).count();
        assert!((350..650).contains(&sets), "about half are sets: {sets}");
        assert!(draws.iter().all(|&x| is_set(Mix::Set, x) && !is_set(Mix::Get, x)));
    }
}
