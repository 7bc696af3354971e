//! Storage benchmark: TLog append throughput (one fsync per value) and replay throughput into
//! the sled store, against the machine's bare 4 KiB write + fdatasync latency.
//!
//! Run: `cargo bench -p arakoon-node --bench storage` (set `ARAKOON_BENCH_DIR` to measure on
//! another file system; the default is a temporary directory under the target dir).
//! Figures are medians over several rounds; compare ratios, not absolute numbers.

use arakoon_node::replay::replay;
use arakoon_node::store::{SledStore, Store};
use arakoon_node::tlog::{FsDir, LogDir, TlogConfig, TlogWriter};
use arakoon_node::value::{Update, Value};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn bench_root() -> PathBuf {
    let base = std::env::var_os("ARAKOON_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&base).unwrap();
    base
}

fn fresh_dir(root: &Path, name: &str) -> PathBuf {
    let p = root.join(name);
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// The floor: appending 4 KiB to a file and fdatasync-ing it, median latency in ms.
fn bare_fdatasync_ms(root: &Path) -> f64 {
    let dir = fresh_dir(root, "bare");
    let mut f = OpenOptions::new().create(true).append(true).open(dir.join("f")).unwrap();
    let block = vec![7u8; 4096];
    let mut samples = Vec::new();
    for _ in 0..400 {
        let t = Instant::now();
        f.write_all(&block).unwrap();
        f.sync_data().unwrap();
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    median(samples)
}

fn value_with(updates: usize, n: u64) -> Value {
    Value::client(
        (0..updates)
            .map(|k| Update::Set {
                key: format!("key/{n:010}/{k:03}").into_bytes(),
                value: vec![b'v'; 100],
            })
            .collect(),
    )
}

/// Appends `values` values of `updates` updates each, one call (one fsync) per value.
/// Returns the median latency of one append in ms over the run.
fn append_run(root: &Path, updates: usize, values: u64) -> (f64, f64) {
    let dir: Arc<dyn LogDir> = Arc::new(FsDir::open(fresh_dir(root, "append")).unwrap());
    let (mut w, _) = TlogWriter::open(dir, TlogConfig::default(), "bench").unwrap();
    let prepared: Vec<Value> = (0..values).map(|n| value_with(updates, n)).collect();
    let mut samples = Vec::with_capacity(values as usize);
    let start = Instant::now();
    for (i, v) in prepared.iter().enumerate() {
        let t = Instant::now();
        w.append(&[(i as u64, v)]).unwrap();
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let per_s = values as f64 / start.elapsed().as_secs_f64();
    (median(samples), per_s)
}

/// Writes a log of `values` values × `updates` Sets of 100-byte values, then replays it into a
/// fresh sled store. Returns updates per second of the replay.
fn replay_run(root: &Path, updates: usize, values: u64) -> f64 {
    let log_dir = fresh_dir(root, "replay-log");
    let dir: Arc<dyn LogDir> = Arc::new(FsDir::open(&log_dir).unwrap());
    {
        let (mut w, _) = TlogWriter::open(dir.clone(), TlogConfig::default(), "bench").unwrap();
        let chunk: Vec<Value> = (0..values).map(|n| value_with(updates, n)).collect();
        let entries: Vec<(u64, &Value)> =
            chunk.iter().enumerate().map(|(i, v)| (i as u64, v)).collect();
        for part in entries.chunks(1000) {
            w.append(part).unwrap();
        }
    }
    let store_dir = fresh_dir(root, "replay-store");
    let mut store = SledStore::open(&store_dir, "bench").unwrap();
    let t = Instant::now();
    let done = replay(dir.as_ref(), &mut store, true, &mut |_| {}).unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(done.values, values);
    assert_eq!(store.key_count().unwrap(), values * updates as u64);
    done.updates as f64 / secs
}

fn main() {
    // `cargo test --benches` passes --bench-less flags; run only under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let root = bench_root();
    println!("storage benchmark in {}", root.display());
    let floor = median((0..3).map(|_| bare_fdatasync_ms(&root)).collect());
    println!("bare 4 KiB write + fdatasync: median {floor:.3} ms");

    for updates in [1usize, 64] {
        let runs: Vec<(f64, f64)> = (0..3).map(|_| append_run(&root, updates, 2000)).collect();
        let lat = median(runs.iter().map(|r| r.0).collect());
        let per_s = median(runs.iter().map(|r| r.1).collect());
        println!(
            "tlog append, {updates:>2} updates/value, one fsync per value: {per_s:>8.0} values/s, \
             {:>9.0} updates/s, median {lat:.3} ms per append = {:.2}x the bare fdatasync",
            per_s * updates as f64,
            lat / floor
        );
    }

    let replay_rates: Vec<f64> = (0..3).map(|_| replay_run(&root, 10, 30_000)).collect();
    println!(
        "replay into sled (100-byte Sets, 10 per value, 300,000 updates): median {:.0} updates/s",
        median(replay_rates)
    );
}
