//! Reads off the core (issue 15, item 4), on real processes: a 3-node cluster of `arakoon`
//! processes with real sled stores is filled, then range reads over the whole store run in a
//! loop on the master while clients set; the master keeps its lease (the same master answers
//! throughout, its log shows no lease lost, no setter hears an error) and the sets' latency is
//! printed. Before the change a range read ran on the consensus core: over a 320 MB store one
//! held the core for 2.1 s, long enough to lose the lease.
//!
//! The default test fills a million keys (75 MB); `a_300_mb_range_loop_...` (ignored: it takes
//! minutes to fill) four million (300 MB). `cargo test -p arakoon-node --test reads_beside_core -- --nocapture
//! --include-ignored` runs both and prints the figures.

mod harness;

use arakoon_node::client::Connection;
use arakoon_node::protocol::client::{Consistency, Payload, Reply, Request};
use arakoon_node::server::env::TokioNet;
use arakoon_node::store::Range;
use arakoon_node::value::Update;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Values of the fill: 64 bytes each (a range read costs per key far more than per byte),
/// 4096 per sequence (under 1 MiB: a short lease ships it, and its apply is short).
const VALUE_BYTES: usize = 64;
const PER_SEQUENCE: usize = 4096;
/// The lease: a second, as several other real-process tests use. A range read on the core took
/// half a second to a second over a million keys, which cost the old code its lease in most runs.
const LEASE_MS: u64 = 750;

/// A value no store can compress (sled compresses its pages): xorshift bytes from `seed`.
fn noise(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..VALUE_BYTES / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect()
}

async fn connect(cluster: &harness::Cluster, k: usize) -> Connection<tokio::net::TcpStream> {
    let addr = cluster.client_addr(k);
    Connection::open(&TokioNet, addr, "itest", Duration::from_secs(5), 256 << 20).await.unwrap()
}

fn sets_seen(reply: &Reply) -> Result<(), String> {
    match reply {
        Reply::Ok(_) => Ok(()),
        Reply::Failed { rc, message } => {
            Err(format!("{}: {}", rc.name(), String::from_utf8_lossy(message)))
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The master's count of lost leases so far.
fn leases_lost(cluster: &harness::Cluster, k: usize) -> usize {
    cluster.log(k).matches("lost or gave up the master lease").count()
}

async fn range_loop_keeps_the_lease(sequences: usize, load_s: u64) {
    // A range over every key must fit in one reply: raise the reply limit (an operator's
    // setting) so that the read walks the whole store.
    let mut cluster = harness::cluster(3, LEASE_MS, "reply_bytes_max = 134217728");
    cluster.start_all();
    cluster.wait_for_master(Duration::from_secs(30)).await;

    // The fill, through the client that finds the master (and retries a sequence it refused).
    let started = Instant::now();
    let mut filler = cluster.client();
    for s in 0..sequences {
        let updates: Vec<Update> = (0..PER_SEQUENCE)
            .map(|n| Update::Set {
                key: format!("fill/{s:04}/{n:04}").into_bytes(),
                value: noise((s * PER_SEQUENCE + n) as u64),
            })
            .collect();
        // Sets are idempotent: a sequence whose outcome is unknown (the master changed while
        // it was pending, which a short lease allows during a large fill) is sent again.
        let mut attempts = 0;
        while let Err(e) = filler.sequence(updates.clone(), false).await {
            attempts += 1;
            assert!(attempts < 5, "fill sequence {s}: {e}");
            eprintln!("fill sequence {s}: {e}; again");
        }
    }
    let m = cluster.wait_for_master(Duration::from_secs(30)).await;
    let keys = sequences * PER_SEQUENCE;
    let fill_mb = (keys * (VALUE_BYTES + 15)) >> 20;
    eprintln!("filled {keys} keys ({fill_mb} MB) in {:.1} s", started.elapsed().as_secs_f64());
    let lost_before = leases_lost(&cluster, m);

    let stop = Arc::new(AtomicBool::new(false));
    // Range reads over the whole store, one after the other (keys only: the reply stays within
    // reply_bytes_max, the read still walks every value).
    let reader = {
        let (stop, mut conn) = (stop.clone(), connect(&cluster, m).await);
        tokio::spawn(async move {
            let (mut durations, mut errors) = (Vec::new(), Vec::new());
            while !stop.load(Ordering::Acquire) {
                let all = Range { max: None, ..Range::default() };
                let range = Request::Range { c: Consistency::Consistent, range: all };
                let t = Instant::now();
                match conn.exchange(&range, Duration::from_secs(60)).await {
                    Ok(Reply::Ok(Payload::Keys(found))) => {
                        assert!(found.len() >= keys, "a range found {} keys", found.len())
                    }
                    Ok(other) => errors.push(format!("range: {other:?}")),
                    Err(e) => errors.push(format!("range: {e}")),
                }
                durations.push(t.elapsed());
                if !errors.is_empty() {
                    // A refused read closes the connection; the loop has shown what it had to.
                    break;
                }
            }
            (durations, errors)
        })
    };
    // Setters: four connections to the master, closed loop.
    let setters: Vec<_> = (0..4)
        .map(|w| {
            let stop = stop.clone();
            let addr = cluster.client_addr(m);
            tokio::spawn(async move {
                let mut conn =
                    Connection::open(&TokioNet, addr, "itest", Duration::from_secs(5), 1 << 20)
                        .await
                        .unwrap();
                let (mut latencies, mut errors) = (Vec::new(), Vec::new());
                let mut n = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let set = Request::Set {
                        key: format!("load/{w}/{n}").into_bytes(),
                        value: vec![1; 100],
                    };
                    let t = Instant::now();
                    match conn.exchange(&set, Duration::from_secs(10)).await {
                        Ok(reply) => {
                            if let Err(e) = sets_seen(&reply) {
                                errors.push(e);
                            }
                        }
                        Err(e) => errors.push(e.to_string()),
                    }
                    latencies.push(t.elapsed());
                    if !errors.is_empty() {
                        break; // the node closed the connection after a refusal
                    }
                    n += 1;
                }
                (latencies, errors)
            })
        })
        .collect();
    // Who is master, asked of every node now and then.
    let mut watcher = cluster.client();
    let until = Instant::now() + Duration::from_secs(load_s);
    let mut masters = std::collections::BTreeSet::new();
    while Instant::now() < until {
        if let Ok(Some(name)) = watcher.who_master().await {
            masters.insert(name);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Release);
    let (ranges, range_errors) = reader.await.unwrap();
    let (mut latencies, mut errors) = (Vec::new(), Vec::new());
    for s in setters {
        let (l, e) = s.await.unwrap();
        latencies.extend(l);
        errors.extend(e);
    }
    latencies.sort();
    let mut range_ms: Vec<u128> = ranges.iter().map(Duration::as_millis).collect();
    range_ms.sort();
    eprintln!(
        "{fill_mb} MB: {} range reads over {keys} keys (median {} ms, max {} ms) beside {} sets: \
         set p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; masters seen {masters:?}; {} set errors, \
         {} range errors; leases lost by n{m}: {}",
        ranges.len(),
        range_ms.get(range_ms.len() / 2).copied().unwrap_or(0),
        range_ms.last().copied().unwrap_or(0),
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        errors.len(),
        range_errors.len(),
        leases_lost(&cluster, m) - lost_before,
    );
    let lost = leases_lost(&cluster, m) - lost_before;
    assert!(range_errors.is_empty(), "the range reads were refused: {range_errors:?}");
    assert!(ranges.len() >= 2, "the range loop ran: {} reads", ranges.len());
    assert!(
        errors.is_empty(),
        "setters heard errors (an election?): {:?}",
        &errors[..errors.len().min(5)]
    );
    assert_eq!(lost, 0, "the master lost its lease {lost} times under the range loop");
    let me = format!("n{m}");
    assert_eq!(masters.into_iter().collect::<Vec<_>>(), vec![me], "the master stayed the same");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_reads_in_a_loop_leave_the_master_its_lease() {
    // About a million keys, 75 MB.
    range_loop_keeps_the_lease(256, 15).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fills 300 MB into three stores: minutes on a small machine"]
async fn a_300_mb_range_loop_leaves_the_master_its_lease() {
    // About four million keys, 300 MB.
    range_loop_keeps_the_lease(1024, 30).await;
}
