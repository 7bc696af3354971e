//! Crash test with real processes, real files and real fsync: a child process appends to a TLog
//! and reports every `i` whose append (and so its fsync) has returned; the parent kills it with
//! SIGKILL at a random moment, then checks that the reopened log holds every reported entry with
//! its exact value and nothing corrupt (a torn tail is allowed, and is cut by the repair).
//!
//! The child is this same test binary, started with `ARAKOON_CRASH_CHILD_DIR` set.

mod common;

use arakoon_node::tlog::{
    for_each_committed, truncate_torn_tail, validate, FsDir, LogDir, TlogConfig, TlogWriter,
};
use arakoon_node::value::{Update, Value};
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

const CHILD_ENV: &str = "ARAKOON_CRASH_CHILD_DIR";

/// The value for slot `i`: its size varies so that writes of many sizes are cut.
fn value_for(i: u64) -> Value {
    let size = (i as usize * 7919) % 3000 + 1;
    let body = vec![b'a' + (i % 26) as u8; size];
    Value::client(vec![Update::Set { key: format!("key{i}").into_bytes(), value: body }])
}

fn config() -> TlogConfig {
    TlogConfig { entries_per_file_max: 200, file_bytes_max: 256 * 1024 }
}

/// The child: append batches forever, reporting what is durable. Does nothing in a normal run.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let dir: Arc<dyn LogDir> = Arc::new(FsDir::open(&dir).unwrap());
    let (mut w, report) = TlogWriter::open(dir, config(), "child").unwrap();
    let mut next = report.last_i.map_or(0, |i| i + 1);
    let out = std::io::stdout();
    let mut out = out.lock();
    for round in 0u64.. {
        let batch = (round % 16) + 1;
        let values: Vec<Value> = (next..next + batch).map(value_for).collect();
        let entries: Vec<(u64, &Value)> =
            values.iter().enumerate().map(|(k, v)| (next + k as u64, v)).collect();
        w.append(&entries).unwrap();
        next += batch;
        writeln!(out, "durable {}", next - 1).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn killed_writers_never_lose_a_durable_entry_nor_leave_corruption() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let seed = common::crash_seed("tlog_crash");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let mut durable: Option<u64> = None;
    let rounds = 12;
    for round in 0..rounds {
        let (mut child, reader) =
            common::spawn_reporter("crash_child_writer", CHILD_ENV, tmp.path(), "durable ");
        std::thread::sleep(Duration::from_micros(rng.gen_range(2_000..60_000)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Everything the child printed before it died was durable when printed.
        if let Some(i) = reader.join().unwrap() {
            durable = Some(i);
        }

        let dir = FsDir::open(tmp.path()).unwrap();
        let v = validate(&dir).unwrap();
        for p in &v.problems {
            assert_eq!(p.kind(), "torn_tail", "seed {seed} round {round}: {p}");
        }
        if !v.is_clean() {
            truncate_torn_tail(&dir).unwrap();
        }
        let mut seen = 0u64;
        for_each_committed::<()>(&dir, 0, true, &mut |e| {
            assert_eq!(e.i, seen, "seed {seed}: slots in order");
            assert_eq!(e.value, value_for(e.i), "seed {seed}: slot {} has its value", e.i);
            seen += 1;
            Ok(())
        })
        .unwrap()
        .unwrap();
        if let Some(d) = durable {
            assert!(seen > d, "seed {seed} round {round}: durable slot {d} lost ({seen} read)");
        }
    }
    assert!(durable.is_some_and(|d| d > 50), "the child wrote too little to test anything");
    println!("{rounds} kills, {} slots durable", durable.unwrap() + 1);
}
