//! Crash atomicity of the sled store with real processes: a child applies values, each of which
//! rewrites ten keys and moves the applied index, while the parent kills it with SIGKILL at
//! random moments. After every kill the reopened store's data must match its applied index
//! exactly: all ten keys hold the value of the applied slot, never a mix of two slots.
//!
//! The child is this same test binary, started with `ARAKOON_STORE_CHILD_DIR` set.

mod common;

use arakoon_node::store::{SledStore, Store};
use arakoon_node::value::{Update, Value};
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::time::Duration;

const CHILD_ENV: &str = "ARAKOON_STORE_CHILD_DIR";
const KEYS: usize = 10;

fn value_for(i: u64) -> Value {
    Value::client(
        (0..KEYS)
            .map(|k| Update::Set {
                key: format!("k{k}").into_bytes(),
                value: format!("v{i}").into_bytes(),
            })
            .collect(),
    )
}

#[test]
fn crash_child_applier() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let mut store = SledStore::open(std::path::Path::new(&dir), "crash").unwrap();
    let mut out = std::io::stdout().lock();
    for round in 0u64.. {
        let i = store.next_i();
        if round % 3 == 0 {
            let values: Vec<(u64, Value)> = (i..i + 4).map(|i| (i, value_for(i))).collect();
            store.apply_many(&values).unwrap();
        } else {
            store.apply(i, &value_for(i)).unwrap();
        }
        if round % 50 == 0 {
            store.flush().unwrap();
            writeln!(out, "flushed {}", store.applied().unwrap()).unwrap();
            out.flush().unwrap();
        }
    }
}

#[test]
fn a_killed_store_never_mixes_two_slots() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let seed = common::crash_seed("store_crash");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let mut flushed: Option<u64> = None;
    for round in 0..8 {
        let (mut child, reader) =
            common::spawn_reporter("crash_child_applier", CHILD_ENV, tmp.path(), "flushed ");
        std::thread::sleep(Duration::from_millis(rng.gen_range(50..400)));
        child.kill().unwrap();
        child.wait().unwrap();
        if let Some(i) = reader.join().unwrap() {
            flushed = Some(i);
        }
        let store = SledStore::open(tmp.path(), "crash").unwrap();
        let Some(applied) = store.applied() else {
            assert!(
                flushed.is_none(),
                "seed {seed} round {round}: a flushed store came back empty"
            );
            continue;
        };
        if let Some(f) = flushed {
            assert!(
                applied >= f,
                "seed {seed} round {round}: flushed slot {f} lost (applied {applied})"
            );
        }
        let expected = format!("v{applied}").into_bytes();
        for k in 0..KEYS {
            let got = store.get(format!("k{k}").as_bytes()).unwrap();
            assert_eq!(
                got.as_deref(),
                Some(&expected[..]),
                "seed {seed} round {round}: key k{k} at applied {applied}"
            );
        }
        assert_eq!(store.key_count().unwrap(), KEYS as u64);
    }
    assert!(flushed.is_some_and(|f| f > 100), "the child applied too little to test anything");
}
