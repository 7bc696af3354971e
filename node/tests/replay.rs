//! Replay: a store brought up to date from the TLog, on both stores.

use arakoon_node::replay::{replay, ReplayError};
use arakoon_node::store::{MemoryStore, Range, SledStore, Store};
use arakoon_node::tlog::{LogDir, MemDir, TlogConfig, TlogWriter};
use arakoon_node::value::{Update, Value};
use std::sync::Arc;

fn value(i: u64) -> Value {
    Value::client(vec![
        Update::Set {
            key: format!("k{}", i % 7).into_bytes(),
            value: format!("v{i}").into_bytes(),
        },
        Update::Delete { key: format!("k{}", (i + 3) % 7).into_bytes() },
    ])
}

fn log_with(slots: u64) -> Arc<MemDir> {
    let dir = Arc::new(MemDir::new("r"));
    let cfg = TlogConfig { entries_per_file_max: 10, file_bytes_max: 1 << 20 };
    let (mut w, _) = TlogWriter::open(dir.clone(), cfg, "n0").unwrap();
    for i in 0..slots {
        w.append(&[(i, &value(i))]).unwrap();
        if i % 9 == 4 {
            w.append(&[(i, &value(i))]).unwrap(); // a re-proposal: last one wins
        }
    }
    dir
}

#[test]
fn replay_applies_every_committed_slot_and_reports_progress() {
    let dir = log_with(45);
    let mut store = MemoryStore::new("c");
    let mut seen = Vec::new();
    let done = replay(dir.as_ref(), &mut store, false, &mut |p| seen.push(*p)).unwrap();
    // Slot 44 is the last: not known to be committed.
    assert_eq!(store.applied(), Some(43));
    assert_eq!((done.values, done.updates, done.target_i), (44, 88, Some(43)));
    assert_eq!(seen.last().unwrap().applied_i, Some(43));

    // Going on from where it stopped, now treating the last slot as committed (1-node cluster).
    let done = replay(dir.as_ref(), &mut store, true, &mut |_| {}).unwrap();
    assert_eq!((store.applied(), done.values), (Some(44), 1));

    // The same state as applying slot by slot.
    let mut direct = MemoryStore::new("c");
    for i in 0..45 {
        direct.apply(i, &value(i)).unwrap();
    }
    assert_eq!(direct.entries(), store.entries());
}

#[test]
fn replay_into_sled_gives_the_memory_store_state() {
    let dir = log_with(120);
    let mut mem = MemoryStore::new("c");
    replay(dir.as_ref(), &mut mem, true, &mut |_| {}).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut sled = SledStore::open(tmp.path(), "c").unwrap();
    replay(dir.as_ref(), &mut sled, true, &mut |_| {}).unwrap();
    assert_eq!(sled.applied(), Some(119));
    let all = Range::default();
    assert_eq!(sled.range_entries(&all).unwrap(), mem.range_entries(&all).unwrap());
}

#[test]
fn a_store_ahead_of_its_log_is_refused() {
    let dir = log_with(5);
    let mut store = MemoryStore::new("c");
    for i in 0..8 {
        store.apply(i, &value(i)).unwrap();
    }
    let err = replay(dir.as_ref(), &mut store, false, &mut |_| {}).unwrap_err();
    assert!(matches!(err, ReplayError::StoreAhead { store_i: 7, log_last_i: 4, .. }), "{err}");
    assert_eq!(err.exit_code(), 40);
    assert!(err.to_string().contains("arakoon-admin rebuild"), "{err}");
}

#[test]
fn a_log_that_lost_what_the_store_needs_is_a_gap() {
    let dir = log_with(45);
    // Collapsed: the first two files are gone.
    dir.remove("000.tlog").unwrap();
    dir.remove("001.tlog").unwrap();
    let first = arakoon_node::tlog::validate(dir.as_ref()).unwrap().files[0].first_i.unwrap();
    assert!(first > 5);
    let mut store = MemoryStore::new("c");
    for i in 0..5 {
        store.apply(i, &value(i)).unwrap();
    }
    let err = replay(dir.as_ref(), &mut store, false, &mut |_| {}).unwrap_err();
    assert!(matches!(err, ReplayError::Gap { need: 5, found, .. } if found == first), "{err}");
    assert_eq!(err.exit_code(), 41);
    assert_eq!(store.applied(), Some(4), "nothing applied past the gap");
}
