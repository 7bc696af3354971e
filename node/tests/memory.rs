//! A memory ceiling (issue 15, item 3), on real processes: the master of a 3-node cluster with
//! the default limits stays under the bound its limits give (server/limits.rs
//! `memory_bound_bytes`, README "Limits") while a slave is frozen and clients write 1 MiB
//! values as fast as they can (the queue to the frozen slave once counted messages, not bytes:
//! 862 MB after a minute), while 100 connections each start a 30 MiB request and trickle it (a byte now and then
//! once kept each alive), and a range_entries over the whole store is asked for
//! (it once built a reply of the store's size; now it is refused with bad_input). Resident
//! memory is read from /proc/PID/statm every 50 ms; the figures are printed. Thawed, the slave
//! catches up what its queue dropped.

mod harness;

use arakoon_node::config::ClusterConfig;
use arakoon_node::llio::Put;
use arakoon_node::protocol::client::{
    encode_prologue, Consistency, Payload, Reply, Request, MAGIC,
};
use arakoon_node::rc::Rc;
use arakoon_node::store::Range;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The resident bytes of process `pid`.
fn rss(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    Some(pages * page)
}

/// Samples the resident memory of `pid` until `stop`; the largest value seen.
fn sample(pid: u32, stop: Arc<AtomicBool>, peak: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Acquire) {
            if let Some(r) = rss(pid) {
                peak.fetch_max(r, Ordering::AcqRel);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

/// A connection that sends the start of a sequence announcing `len` bytes, `sent` of them, and
/// then one byte every 200 ms.
fn trickler(to: std::net::SocketAddr, len: usize, sent: usize) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok(mut s) = TcpStream::connect(to) else { return };
        let mut p = Vec::new();
        encode_prologue("itest", &mut p);
        p.put_i32((MAGIC | 0x10) as i32); // sequence
        p.put_i32(len as i32);
        p.extend(std::iter::repeat_n(0u8, sent));
        if s.write_all(&p).is_err() {
            return;
        }
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(200));
            if s.write_all(&[0]).is_err() {
                return;
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_stays_under_the_memory_bound_of_its_limits() {
    let mut cluster = harness::cluster(3, 2000, "client_stall_ms = 2000");
    cluster.start_all();
    let m = cluster.wait_for_master(Duration::from_secs(20)).await;
    let config: ClusterConfig = cluster.config.clone();
    let bound = arakoon_node::server::limits::memory_bound_bytes(&config);
    let pid = cluster.pid(m).unwrap();
    let frozen = (m + 1) % 3;
    cluster.pause(frozen);
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = sample(pid, stop.clone(), peak.clone());
    let start_rss = rss(pid).unwrap();

    // Writers: 1 MiB values for 15 s, four at a time.
    let writers: Vec<_> = (0..4u8)
        .map(|w| {
            let mut c = cluster.client();
            tokio::spawn(async move {
                let mut n = 0u32;
                let until = Instant::now() + Duration::from_secs(15);
                while Instant::now() < until {
                    let key = format!("w{w}/{n:06}");
                    if c.set(key.as_bytes(), &vec![w; 1 << 20]).await.is_ok() {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    // Tricklers: 100 connections, each 256 KiB into a 30 MiB request, then a byte at a time.
    let to = cluster.client_addr(m);
    let tricklers: Vec<_> = (0..100).map(|_| trickler(to, 30 << 20, 256 << 10)).collect();
    let mut written = 0;
    for w in writers {
        written += w.await.unwrap();
    }
    // A range_entries over everything written: far above reply_bytes_max.
    let all =
        Range { first: None, first_inclusive: true, last: None, last_inclusive: true, max: None };
    let mut c = cluster.client();
    let e = match c.range_entries(Consistency::Consistent, all).await {
        Ok(found) => panic!("range_entries over {written} MiB answered {} entries", found.len()),
        Err(e) => e,
    };
    assert_eq!(e.rc(), Some(Rc::BadInput), "{e}");
    assert!(e.to_string().contains("reply_bytes_max"), "{e}");
    for t in tricklers {
        let _ = t.join();
    }
    stop.store(true, Ordering::Release);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Acquire);
    eprintln!(
        "memory: {written} values of 1 MiB written with n{frozen} frozen; master RSS {} MiB at \
         the start, peak {} MiB; bound {} MiB",
        start_rss >> 20,
        peak >> 20,
        bound >> 20
    );
    assert!(written >= 20, "the load ran: {written} writes");
    assert!(peak <= bound, "peak RSS {} MiB above the bound {} MiB", peak >> 20, bound >> 20);

    // The frozen slave missed what its bounded queue dropped; thawed, it catches up from a TLog.
    let mut last = cluster.client();
    last.set(b"last", b"v").await.unwrap();
    cluster.resume(frozen);
    let asker = cluster.client();
    let get = |key: &[u8]| Request::Get { c: Consistency::NoGuarantees, key: key.to_vec() };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Reply::Ok(_)) = asker.ask(frozen, &get(b"last")).await {
            break;
        }
        assert!(Instant::now() < deadline, "n{frozen} did not catch up\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first = asker.ask(frozen, &get(b"w0/000000")).await.unwrap();
    assert_eq!(first, Reply::Ok(Payload::String(vec![0; 1 << 20])), "a value written while frozen");
}
