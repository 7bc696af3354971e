//! Snapshot reads (store/snapshot.rs, store/journal.rs): a read at a snapshot sees the store at
//! the snapshot's applied index whatever is applied after, on both stores, for every kind of
//! read; a read overtaken by more writes than the journal holds restarts once at a newer index,
//! then is refused; and a reader on another thread sees each multi-key sequence all or nothing
//! while a writer applies them (a live scan of sled without the journal does not: its iterator
//! reads leaf by leaf).

use arakoon_node::store::{MemoryStore, Range, Scan, SledStore, Snapshot, SnapshotError, Store};
use arakoon_node::value::{Key, Update, Value};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

type Model = BTreeMap<Key, Vec<u8>>;

fn key(n: u32) -> Key {
    format!("k{n:03}").into_bytes()
}

/// A random update over a small key space: sets, deletes, delete_prefix, sequences.
fn random_update(rng: &mut ChaCha8Rng, depth: u32) -> Update {
    let k = key(rng.gen_range(0..120));
    match rng.gen_range(0..10) {
        0..=4 => Update::Set { key: k, value: vec![b'v'; rng.gen_range(0..40)] },
        5..=6 => Update::Delete { key: k },
        7 => Update::DeletePrefix { prefix: format!("k{}", rng.gen_range(0..12)).into_bytes() },
        _ if depth == 0 => {
            let n = rng.gen_range(1..6);
            Update::Sequence((0..n).map(|_| random_update(rng, 1)).collect())
        }
        _ => Update::Set { key: k, value: b"s".to_vec() },
    }
}

/// What a store holds, read whole (the model is the store's own state at each snapshot).
fn state(s: &dyn Store) -> Model {
    s.range_entries(&Range { max: None, ..Range::default() }).unwrap().into_iter().collect()
}

fn ranges(rng: &mut ChaCha8Rng) -> Range {
    let bound = |rng: &mut ChaCha8Rng| rng.gen_bool(0.8).then(|| key(rng.gen_range(0..125)));
    Range {
        first: bound(rng),
        first_inclusive: rng.gen_bool(0.5),
        last: bound(rng),
        last_inclusive: rng.gen_bool(0.5),
        max: rng.gen_bool(0.6).then(|| rng.gen_range(0..30)),
    }
}

/// Every kind of read at `snap` agrees with the same read on a memory store holding `model`.
fn check(snap: &mut dyn Snapshot, model: &Model, rng: &mut ChaCha8Rng, what: &str) {
    let mut at = MemoryStore::new("c");
    let updates = model.iter().map(|(k, v)| Update::Set { key: k.clone(), value: v.clone() });
    at.apply(0, &Value::client(updates.collect())).unwrap();
    for _ in 0..6 {
        let r = ranges(rng);
        assert_eq!(snap.range(&r).unwrap(), at.range(&r).unwrap(), "{what}: range {r:?}");
        let got = snap.range_entries(&r).unwrap();
        assert_eq!(got, at.range_entries(&r).unwrap(), "{what}: range_entries {r:?}");
        let got = snap.rev_range_entries(&r).unwrap();
        assert_eq!(got, at.rev_range_entries(&r).unwrap(), "{what}: rev_range_entries {r:?}");
        let prefix = format!("k{}", rng.gen_range(0..13)).into_bytes();
        let max = rng.gen_bool(0.5).then(|| rng.gen_range(0..12));
        let got = snap.prefix_keys(&prefix, max).unwrap();
        assert_eq!(got, at.prefix_keys(&prefix, max).unwrap(), "{what}: prefix_keys {prefix:?}");
        let keys: Vec<Key> = (0..rng.gen_range(1..6)).map(|_| key(rng.gen_range(0..120))).collect();
        assert_eq!(
            snap.multi_get(&keys).unwrap(),
            at.multi_get(&keys).unwrap(),
            "{what}: multi_get"
        );
        let got = snap.multi_get_option(&keys).unwrap();
        assert_eq!(got, at.multi_get_option(&keys).unwrap(), "{what}: multi_get_option");
        let k = key(rng.gen_range(0..120));
        assert_eq!(snap.get(&k).unwrap(), model.get(&k).cloned(), "{what}: get {k:?}");
        assert_eq!(snap.exists(&k).unwrap(), model.contains_key(&k), "{what}: exists");
        // The byte bound is judged on the state at the snapshot too.
        let bytes_max = rng.gen_range(0..600);
        let r = ranges(rng);
        let scan = Scan::RangeEntries(&r);
        let got = snap.scan_within(&scan, bytes_max).unwrap();
        assert_eq!(got, at.scan_within(&scan, bytes_max).unwrap(), "{what}: within {bytes_max}");
    }
}

/// Snapshots taken at random points, then more updates applied (and some snapshots dropped):
/// every read at every open snapshot equals the state at its index.
fn snapshots_read_the_past(store: &mut dyn Store, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut open: Vec<(Box<dyn Snapshot>, Model, Option<u64>)> = Vec::new();
    for step in 0..120 {
        let updates = (0..rng.gen_range(1..5)).map(|_| random_update(&mut rng, 0)).collect();
        let i = store.next_i();
        if rng.gen_bool(0.2) {
            // Replay's and catch-up's path: several slots in one batch.
            let more = Value::client(vec![random_update(&mut rng, 0)]);
            store.apply_many(&[(i, Value::client(updates)), (i + 1, more)]).unwrap();
        } else {
            store.apply(i, &Value::client(updates)).unwrap();
        }
        if rng.gen_bool(0.3) {
            open.push((store.snapshot(), state(store), store.applied()));
        }
        if rng.gen_bool(0.15) && !open.is_empty() {
            let k = rng.gen_range(0..open.len());
            open.remove(k);
        }
        for (snap, model, at) in open.iter_mut() {
            assert_eq!(snap.at(), *at);
            check(snap.as_mut(), model, &mut rng, &format!("seed {seed} step {step} at {at:?}"));
        }
    }
}

#[test]
fn reads_at_a_snapshot_see_the_state_at_its_index_on_both_stores() {
    for seed in 0..6 {
        snapshots_read_the_past(&mut MemoryStore::new("c"), seed);
        let tmp = tempfile::tempdir().unwrap();
        snapshots_read_the_past(&mut SledStore::open(tmp.path(), "c").unwrap(), seed);
    }
}

#[test]
fn the_sled_journal_is_empty_once_every_snapshot_is_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = SledStore::open(tmp.path(), "c").unwrap();
    let set = |k: &str| Value::client(vec![Update::Set { key: k.into(), value: vec![1; 100] }]);
    s.apply(0, &set("a")).unwrap();
    assert_eq!(s.snapshot_journal_bytes(), 0, "nothing is recorded while no snapshot is open");
    let snap = s.snapshot();
    s.apply(1, &set("a")).unwrap();
    assert!(s.snapshot_journal_bytes() > 100);
    drop(snap);
    assert_eq!(s.snapshot_journal_bytes(), 0);
    s.apply(2, &set("b")).unwrap();
    assert_eq!(s.snapshot_journal_bytes(), 0);
}

#[test]
fn an_overtaken_read_restarts_once_at_the_newest_index() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = SledStore::open(tmp.path(), "c").unwrap();
    s.set_snapshot_journal_bytes_max(1000);
    let set =
        |k: &str, v: u8| Value::client(vec![Update::Set { key: k.into(), value: vec![v; 300] }]);
    s.apply(0, &set("a", 0)).unwrap();
    let mut snap = s.snapshot();
    assert_eq!(snap.at(), Some(0));
    for i in 1..6 {
        s.apply(i, &set("a", i as u8)).unwrap();
    }
    assert!(s.snapshot_journal_bytes() <= 1000, "the journal keeps its bound");
    // The journal dropped what index 0 needed: the read restarts at the newest index (5), a
    // state inside the read's interval, and answers from there.
    assert_eq!(snap.get(b"a").unwrap(), Some(vec![5; 300]));
    assert_eq!(snap.at(), Some(5));
}

#[test]
fn a_read_overtaken_twice_is_refused_with_an_error_that_says_retry() {
    // A journal that holds nothing: every batch applied while a read runs overtakes it, so
    // a writer in a loop overtakes the read and its restart.
    let tmp = tempfile::tempdir().unwrap();
    let mut s = SledStore::open(tmp.path(), "c").unwrap();
    s.set_snapshot_journal_bytes_max(0);
    let fill: Vec<Update> =
        (0..2000).map(|n| Update::Set { key: key(n), value: vec![7; 200] }).collect();
    s.apply(0, &Value::client(fill)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let halt = stop.clone();
    // Batches applied so far: the reader starts once some have overtaken every snapshot.
    let applied = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = applied.clone();
    let writer = std::thread::spawn(move || {
        for _ in 0..50 {
            tx.send(s.snapshot()).unwrap();
        }
        drop(tx);
        let mut i = 1;
        while !halt.load(std::sync::atomic::Ordering::Acquire) {
            let v = Value::client(vec![Update::Set { key: key(i as u32 % 2000), value: vec![8] }]);
            s.apply(i, &v).unwrap();
            count.store(i, std::sync::atomic::Ordering::Release);
            i += 1;
        }
    });
    let mut refused = 0;
    while applied.load(std::sync::atomic::Ordering::Acquire) < 10 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    for mut snap in rx.iter() {
        let all = Range { max: None, ..Range::default() };
        match snap.range_entries(&all) {
            Ok(got) => assert_eq!(got.len(), 2000),
            Err(e @ SnapshotError::Overtaken { .. }) => {
                assert!(e.to_string().contains("retry"), "{e}");
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    writer.join().unwrap();
    assert!(refused > 0, "a writer in a loop overtakes some reads twice");
}

/// The keys of a generation: enough to span several of sled's leaves (1024 items at most), so
/// that its iterator reads them leaf by leaf.
const GENERATION_KEYS: u32 = 6000;

fn wide_key(n: u32) -> Key {
    format!("k{n:05}").into_bytes()
}

/// Generation `g` of a store whose every multi-key sequence replaces the whole key set: the keys
/// of g's parity, each holding g.
fn generation(g: u32) -> Value {
    let mut updates = vec![Update::DeletePrefix { prefix: b"k".to_vec() }];
    for n in (g % 2..GENERATION_KEYS).step_by(2) {
        updates.push(Update::Set { key: wide_key(n), value: g.to_le_bytes().to_vec() });
    }
    Value::client(vec![Update::Sequence(updates)])
}

/// Whether `entries` is one whole generation.
fn whole(entries: &[(Key, Vec<u8>)]) -> Result<u32, String> {
    let Some((_, v)) = entries.first() else { return Err("empty".into()) };
    let g = u32::from_le_bytes(v.as_slice().try_into().unwrap());
    let want: Vec<Key> = (g % 2..GENERATION_KEYS).step_by(2).map(wide_key).collect();
    let keys: Vec<Key> = entries.iter().map(|(k, _)| k.clone()).collect();
    if keys != want || entries.iter().any(|(_, x)| x != v) {
        return Err(format!("a mix around generation {g}: {} keys", keys.len()));
    }
    Ok(g)
}

#[test]
fn a_reader_beside_the_writer_sees_each_sequence_all_or_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = SledStore::open(tmp.path(), "c").unwrap();
    s.apply(0, &generation(0)).unwrap();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Box<dyn Snapshot>>(4);
    let writer = std::thread::spawn(move || {
        for g in 1..120u32 {
            s.apply(u64::from(g), &generation(g)).unwrap();
            if tx.send(s.snapshot()).is_err() {
                break;
            }
        }
    });
    let mut reads = 0;
    for mut snap in rx.iter() {
        let at = snap.at().unwrap() as u32;
        // Several reads per snapshot, each racing the writer.
        for _ in 0..3 {
            let all = Range { max: None, ..Range::default() };
            // All or nothing first (a live scan without the journal fails here), then the
            // snapshot's own generation.
            let g = whole(&snap.range_entries(&all).unwrap()).expect("one whole sequence");
            assert_eq!(g, at);
            let mut rev = snap.rev_range_entries(&all).unwrap();
            rev.reverse();
            assert_eq!(whole(&rev), Ok(at));
            let some = Range { max: Some(40), ..Range::default() };
            let got = snap.range(&some).unwrap();
            let want: Vec<Key> =
                (at % 2..GENERATION_KEYS).step_by(2).take(40).map(wide_key).collect();
            assert_eq!(got, want);
            let keys: Vec<Key> = (0..GENERATION_KEYS).map(wide_key).collect();
            let values = snap.multi_get_option(&keys).unwrap();
            assert!(values
                .iter()
                .enumerate()
                .all(|(n, v)| v.is_some() == (n as u32 % 2 == at % 2)));
            reads += 1;
        }
    }
    writer.join().unwrap();
    assert!(reads > 100, "{reads} reads");
}
