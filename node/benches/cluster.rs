//! Closed-loop clients against a real 3-node cluster (`ARAKOON_BENCH_NODES` to change) of `arakoon` processes on loopback (real
//! sled, real fsync): sets of 100-byte values and consistent gets with 1, 16 and 64 clients.
//! Prints ops/s, p50 and p99 per case.
//!
//! `cargo bench -p arakoon-node --bench cluster [-- SECONDS [set|get] [CLIENTS]]` (default: 5 s
//! per case, every case).

#[path = "../tests/harness/mod.rs"]
mod harness;

use harness::Cluster;
use std::time::{Duration, Instant};

#[derive(Clone, Copy)]
enum Op {
    Set,
    Get,
}

async fn run_case(
    cluster: &Cluster,
    op: Op,
    clients: usize,
    seconds: f64,
) -> (f64, Duration, Duration) {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut client = cluster.client();
        tasks.push(tokio::spawn(async move {
            let value = vec![b'v'; 100];
            let mut latencies = Vec::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                // Sets write a fresh key each (what a user adding data gets); gets read the 20
                // keys per client written before.
                let key = match op {
                    Op::Set => format!("fresh{clients}-c{c:03}-{n:08}"),
                    Op::Get => format!("c{c:03}-k{:05}", n % 20),
                };
                let t = Instant::now();
                let result = match op {
                    Op::Set => client.set(key.as_bytes(), &value).await,
                    Op::Get => client.get(key.as_bytes()).await.map(|_| ()),
                };
                result.unwrap_or_else(|e| panic!("{key}: {e}"));
                latencies.push(t.elapsed());
                n += 1;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("a client task"));
    }
    all.sort();
    let ops = all.len() as f64 / seconds;
    let p = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    (ops, p(0.5), p(0.99))
}

fn main() {
    // cargo bench passes --bench; the rest is ours: [SECONDS] [set|get] [CLIENTS]
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let seconds: f64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(5.0);
    let only_op = args.get(1).cloned();
    let only_clients: Option<usize> = args.get(2).and_then(|a| a.parse().ok());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let nodes: usize =
            std::env::var("ARAKOON_BENCH_NODES").ok().and_then(|n| n.parse().ok()).unwrap_or(3);
        let mut cluster = harness::cluster(nodes, 2000, "");
        cluster.start_all();
        cluster.wait_for_master(Duration::from_secs(20)).await;
        // The keys the gets read.
        let mut c = cluster.client();
        for cl in 0..64 {
            for k in 0..20 {
                let key = format!("c{cl:03}-k{k:05}");
                c.set(key.as_bytes(), &[b'v'; 100]).await.unwrap();
            }
        }
        println!(
            "{nodes}-node loopback cluster, 100-byte values, closed loop, {seconds} s per case; \
             sets write fresh keys, consistent gets read 20 keys per client (side by side with \
             etcd: arakoon-admin bench --compare etcd)"
        );
        println!("{:<6} {:>8} {:>10} {:>9} {:>9}", "op", "clients", "ops/s", "p50 ms", "p99 ms");
        for (name, op) in [("set", Op::Set), ("get", Op::Get)] {
            if only_op.as_deref().is_some_and(|o| o != name) {
                continue;
            }
            for clients in [1, 16, 64] {
                if only_clients.is_some_and(|c| c != clients) {
                    continue;
                }
                let (ops, p50, p99) = run_case(&cluster, op, clients, seconds).await;
                println!(
                    "{name:<6} {clients:>8} {ops:>10.0} {:>9.2} {:>9.2}",
                    p50.as_secs_f64() * 1e3,
                    p99.as_secs_f64() * 1e3
                );
            }
        }
        for k in 0..nodes {
            cluster.stop(k);
        }
    });
}
