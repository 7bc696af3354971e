//! Measurements, not tests (ignored; nothing is asserted about time): how fast `arakoon-admin
//! rebuild` replays a TLog, and how fast `arakoon-admin catchup` fetches one over loopback.
//!
//! ```sh
//! cargo test -p arakoon-cli --test measure -- --ignored --nocapture --test-threads 1
//! ARAKOON_MEASURE_MB=1000 cargo test ... catchup_speed   # the TLog size for catch-up
//! ARAKOON_ADMIN_BIN=target/release/arakoon-admin cargo test ...   # measure a release build
//! ```
//!
//! Each prints one line per run and the median of three.

mod common;

use arakoon_bench::summary::median;
use arakoon_node::tlog::{FsDir, LogDir, TlogConfig, TlogWriter};
use arakoon_node::value::{Update, Value};
use common::{admin, expect_code};
use std::path::Path;
use std::sync::Arc;

/// Slots appended per writer call (one fsync each).
const APPEND_SLOTS: u64 = 256;

/// Writes `slots` slots of `per_slot` Sets of `value_bytes`-byte values over a rolling key space.
fn write_log(dir: &Path, slots: u64, per_slot: u64, value_bytes: usize) {
    let d: Arc<dyn LogDir> = Arc::new(FsDir::create_all(dir).unwrap());
    let cfg = TlogConfig { entries_per_file_max: 50_000, file_bytes_max: 32 << 20 };
    let (mut w, _) = TlogWriter::open(d, cfg, "n0").unwrap();
    let mut i = 0;
    while i < slots {
        let end = (i + APPEND_SLOTS).min(slots);
        let values: Vec<(u64, Value)> = (i..end)
            .map(|i| {
                let updates = (0..per_slot)
                    .map(|u| Update::Set {
                        key: format!("key{:08}", (i * per_slot + u) % 200_000).into_bytes(),
                        value: vec![(i % 251) as u8; value_bytes],
                    })
                    .collect();
                (i, Value::client(updates))
            })
            .collect();
        let refs: Vec<(u64, &Value)> = values.iter().map(|(i, v)| (*i, v)).collect();
        w.append(&refs).unwrap();
        i = end;
    }
    w.close().unwrap();
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).unwrap().flatten().map(|e| e.metadata().unwrap().len()).sum()
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn rebuild_speed() {
    for (slots, per_slot) in [(1_000_000u64, 1u64), (15_625, 64)] {
        let tmp = tempfile::tempdir().unwrap();
        let tlogs = tmp.path().join("tlogs");
        write_log(&tlogs, slots, per_slot, 100);
        let mut rates = Vec::new();
        for run in 0..3 {
            let store = tmp.path().join("store");
            let out = admin(&[
                "rebuild",
                "--yes",
                "--json",
                "--last-committed",
                "--tlog-dir",
                tlogs.to_str().unwrap(),
                "--store",
                store.to_str().unwrap(),
                "--cluster-id",
                "m",
            ]);
            expect_code(&out, 0);
            let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let rate = j["updates_per_second"].as_f64().unwrap();
            println!(
                "rebuild run {run}: {slots} slots x {per_slot} updates of 100 B ({:.0} MB TLog): \
                 {} updates in {:.2} s = {rate:.0} updates/s",
                dir_bytes(&tlogs) as f64 / 1e6,
                j["updates"],
                j["seconds"].as_f64().unwrap()
            );
            rates.push(rate);
        }
        println!(
            "rebuild median, {per_slot} update(s) per slot: {:.0} updates/s",
            median(&mut rates)
        );
    }
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn catchup_speed() {
    let mb: u64 =
        std::env::var("ARAKOON_MEASURE_MB").ok().and_then(|s| s.parse().ok()).unwrap_or(256);
    // Slots of 16 updates of 1000-byte values: about 16.2 KB each.
    let slots = mb * 1_000_000 / 16_200;
    let mut cluster = common::cluster(3, "");
    let config = cluster.config_arg().to_string();
    let home0 = cluster.config.nodes[0].home.clone();
    write_log(&home0, slots, 16, 1000);
    let tlog_mb = dir_bytes(&home0) as f64 / 1e6;
    // The peer replays its log into its store before serving (part of the set-up, not timed).
    let rebuilt = admin(&["rebuild", "--yes", "--node", "n0", "-config", &config]);
    expect_code(&rebuilt, 0);
    cluster.start(0);
    // The peer answers once its store is open; catch-up does not need a master.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while admin(&["client", "node-state", "n0", "-c", &config]).status.code() != Some(0) {
        assert!(std::time::Instant::now() < deadline, "{}", cluster.logs());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let mut rates = Vec::new();
    for run in 0..3 {
        let _ = std::fs::remove_dir_all(&cluster.config.nodes[2].home);
        let out = admin(&["catchup", "--node", "n2", "-config", &config, "--from", "n0", "--json"]);
        expect_code(&out, 0);
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let rate = j["mb_per_second"].as_f64().unwrap();
        println!(
            "catch-up run {run}: peer TLog {tlog_mb:.0} MB; {} MB written in {:.2} s = {rate:.1} \
             MB/s ({})",
            j["tlog_bytes_written"].as_u64().unwrap() / 1_000_000,
            j["seconds"].as_f64().unwrap(),
            j["report"]
        );
        rates.push(rate);
    }
    println!("catch-up median: {:.1} MB/s", median(&mut rates));
}
