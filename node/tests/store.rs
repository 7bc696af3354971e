//! The store: one conformance suite run against the memory store and the sled store, and a
//! property test in which random update streams give identical results and final states on
//! both stores and on a plain `BTreeMap` model written independently here.

use arakoon_node::rc::Rc;
use arakoon_node::store::{
    MemoryStore, Range, SledStore, Store, StoreError, UpdateFailure, UpdateOutput, UpdateResult,
};
use arakoon_node::value::{Update, Value};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn set(k: &str, v: &str) -> Update {
    Update::Set { key: b(k), value: b(v) }
}

/// Runs `check` against a fresh memory store and a fresh sled store.
fn on_both(check: impl Fn(&mut dyn Store)) {
    let mut mem = MemoryStore::new("c");
    check(&mut mem);
    let tmp = tempfile::tempdir().unwrap();
    let mut sled = SledStore::open(tmp.path(), "c").unwrap();
    check(&mut sled);
}

fn apply(store: &mut dyn Store, updates: Vec<Update>) -> Vec<UpdateResult> {
    let i = store.next_i();
    store.apply(i, &Value::client(updates)).unwrap()
}

fn failure(rc: Rc, msg: &str) -> UpdateResult {
    Err(UpdateFailure::new(rc, b(msg)))
}

#[test]
fn every_update_has_its_meaning_and_return_code() {
    on_both(|s| {
        let r = apply(
            s,
            vec![
                set("a", "1"),
                Update::Delete { key: b("missing") },
                Update::TestAndSet { key: b("a"), expected: Some(b("1")), wanted: Some(b("2")) },
                Update::TestAndSet { key: b("a"), expected: Some(b("1")), wanted: Some(b("3")) },
                Update::Replace { key: b("r"), value: Some(b("x")) },
                Update::Assert { key: b("a"), value: Some(b("2")) },
                Update::Assert { key: b("a"), value: None },
                Update::AssertExists { key: b("nope") },
                Update::Nop,
                Update::UserFunction { name: "arakoon.incr".into(), arg: Some(b("n")) },
                Update::UserFunction { name: "no.such".into(), arg: None },
                Update::SetInterval { bounds: [None, None, None, None] },
            ],
        );
        assert_eq!(r[0], Ok(UpdateOutput::Unit));
        assert_eq!(r[1], failure(Rc::NotFound, "missing"));
        assert_eq!(r[2], Ok(UpdateOutput::Previous(Some(b("1")))));
        assert_eq!(r[3], Ok(UpdateOutput::Previous(Some(b("2")))), "no swap: still 2");
        assert_eq!(r[4], Ok(UpdateOutput::Previous(None)));
        assert_eq!(r[5], Ok(UpdateOutput::Unit));
        assert_eq!(r[6], failure(Rc::AssertionFailed, "a"));
        assert_eq!(r[7], failure(Rc::AssertionFailed, "nope"));
        assert_eq!(r[8], Ok(UpdateOutput::Unit));
        assert_eq!(r[9], Ok(UpdateOutput::Returned(Some(b("1")))));
        assert_eq!(r[10].as_ref().unwrap_err().rc, Rc::BadInput);
        assert_eq!(r[11].as_ref().unwrap_err().rc, Rc::NotSupported);
        assert_eq!(s.get(b"a").unwrap(), Some(b("2")));
        assert_eq!(s.get(b"r").unwrap(), Some(b("x")));
        assert_eq!(s.get(b"n").unwrap(), Some(b("1")));
        assert_eq!(s.key_count().unwrap(), 3);
        assert_eq!(s.applied(), Some(0));

        let r = apply(
            s,
            vec![
                set("p/1", "a"),
                set("p/2", "b"),
                set("q", "c"),
                // Arakoon's quirk, copied: the list is compared as decoded, not sorted.
                Update::AssertRange { prefix: b("p/"), keys: vec![b("p/1"), b("p/2")] },
                Update::AssertRange { prefix: b("p/"), keys: vec![b("p/1")] },
                Update::AssertRange { prefix: b("p/"), keys: vec![b("p/2"), b("p/1")] },
                Update::AssertRange { prefix: b("p/"), keys: vec![b("p/1"), b("p/1"), b("p/2")] },
                Update::DeletePrefix { prefix: b("p/") },
                Update::TestAndSet { key: b("q"), expected: Some(b("c")), wanted: None },
            ],
        );
        assert_eq!(r[3], Ok(UpdateOutput::Unit));
        // The message is Arakoon's: the assertion as it prints it, then the keys found.
        let actual = " actual: p/1,p/2";
        let m4 = format!("ContainsExactly [ \"p/1\" ]{actual}");
        let m5 = format!("ContainsExactly [ \"p/2; p/1\" ]{actual}");
        let m6 = format!("ContainsExactly [ \"p/1; p/1; p/2\" ]{actual}");
        assert_eq!(r[4], failure(Rc::AssertionFailed, &m4));
        assert_eq!(r[5], failure(Rc::AssertionFailed, &m5), "another order fails");
        assert_eq!(r[6], failure(Rc::AssertionFailed, &m6), "a key twice fails");
        assert_eq!(r[7], Ok(UpdateOutput::Count(2)));
        assert_eq!(r[8], Ok(UpdateOutput::Previous(Some(b("c")))));
        assert_eq!(s.get(b"q").unwrap(), None, "test_and_set to None deletes");
        assert_eq!(s.key_count().unwrap(), 3);
    });
}

#[test]
fn a_sequence_is_all_or_nothing() {
    on_both(|s| {
        let r = apply(
            s,
            vec![
                set("keep", "1"),
                Update::Sequence(vec![
                    set("x", "1"),
                    set("y", "2"),
                    Update::Delete { key: b("absent") },
                ]),
                Update::SyncedSequence(vec![
                    set("z", "3"),
                    Update::Assert { key: b("keep"), value: Some(b("1")) },
                ]),
            ],
        );
        assert_eq!(r[1], failure(Rc::NotFound, "absent"));
        assert_eq!(r[2], Ok(UpdateOutput::Unit));
        assert_eq!(s.get(b"x").unwrap(), None, "nothing of a failed sequence is applied");
        assert_eq!(s.get(b"y").unwrap(), None);
        assert_eq!(s.get(b"z").unwrap(), Some(b("3")));
        // A sequence sees its own earlier writes.
        let r = apply(
            s,
            vec![Update::Sequence(vec![
                set("s", "v"),
                Update::Assert { key: b("s"), value: Some(b("v")) },
            ])],
        );
        assert_eq!(r[0], Ok(UpdateOutput::Unit));
    });
}

#[test]
fn only_the_next_slot_is_accepted() {
    on_both(|s| {
        let v = Value::client(vec![set("a", "1")]);
        assert!(matches!(s.apply(1, &v), Err(StoreError::OutOfOrder { i: 1, expected: 0 })));
        s.apply(0, &v).unwrap();
        assert!(matches!(s.apply(0, &v), Err(StoreError::OutOfOrder { i: 0, expected: 1 })));
        let many = vec![(1, v.clone()), (3, v.clone())];
        assert!(matches!(s.apply_many(&many), Err(StoreError::OutOfOrder { i: 3, expected: 2 })));
        assert_eq!(s.applied(), Some(0), "a refused batch applies nothing");
        let refused = s.apply_replayed(&mut many.clone());
        assert!(matches!(refused, Err(StoreError::OutOfOrder { i: 3, expected: 2 })));
        assert_eq!(s.applied(), Some(0), "a refused replayed batch applies nothing");
        s.apply(1, &Value::MasterSet { master: "n1".into(), lease_start: 0 }).unwrap();
        assert_eq!(s.master().unwrap().master, "n1");
    });
}

#[test]
fn internal_keys_never_appear_in_reads() {
    on_both(|s| {
        apply(
            s,
            vec![
                Update::AdminSet { key: b("secret"), value: Some(b("x")) },
                set("", "empty key"),
                set("*applied", "a user key that looks internal"),
            ],
        );
        s.apply(1, &Value::MasterSet { master: "n0".into(), lease_start: 0 }).unwrap();
        let all = s.range_entries(&Range { first_inclusive: true, ..Range::default() }).unwrap();
        assert_eq!(
            all,
            vec![(b(""), b("empty key")), (b("*applied"), b("a user key that looks internal"))]
        );
        // Arakoon's quirk, copied: an open low bound that is not inclusive excludes the empty key.
        let open = s.range_entries(&Range::default()).unwrap();
        assert_eq!(open, vec![(b("*applied"), b("a user key that looks internal"))]);
        assert_eq!(s.key_count().unwrap(), 2);
        assert_eq!(s.prefix_keys(b"", None).unwrap().len(), 2);
    });
}

#[test]
fn ranges_honour_bounds_inclusivity_direction_and_max() {
    on_both(|s| {
        apply(s, ["a", "b", "c", "d", "e"].iter().map(|k| set(k, k)).collect());
        let r =
            |first: Option<&str>, fi: bool, last: Option<&str>, li: bool, max: Option<usize>| {
                Range {
                    first: first.map(b),
                    first_inclusive: fi,
                    last: last.map(b),
                    last_inclusive: li,
                    max,
                }
            };
        let keys = |v: Vec<Vec<u8>>| {
            v.into_iter().map(|k| String::from_utf8(k).unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(keys(s.range(&r(Some("b"), true, Some("d"), false, None)).unwrap()), ["b", "c"]);
        assert_eq!(keys(s.range(&r(Some("b"), false, Some("d"), true, None)).unwrap()), ["c", "d"]);
        assert_eq!(keys(s.range(&r(None, true, None, true, Some(2))).unwrap()), ["a", "b"]);
        assert_eq!(
            keys(s.range(&r(Some("d"), true, Some("b"), true, None)).unwrap()),
            Vec::<String>::new()
        );
        assert_eq!(
            keys(s.range(&r(Some("c"), false, Some("c"), false, None)).unwrap()),
            Vec::<String>::new()
        );
        let rev = s.rev_range_entries(&r(Some("d"), true, Some("a"), false, Some(2))).unwrap();
        assert_eq!(keys(rev.into_iter().map(|(k, _)| k).collect()), ["d", "c"]);
        let rev = s.rev_range_entries(&r(None, true, None, true, None)).unwrap();
        assert_eq!(rev.len(), 5);
        assert_eq!(rev[0].0, b("e"));
        assert_eq!(keys(s.prefix_keys(b"c", None).unwrap()), ["c"]);
        assert_eq!(s.multi_get(&[b("e"), b("a")]).unwrap(), Ok(vec![b("e"), b("a")]));
        assert_eq!(s.multi_get(&[b("a"), b("zz")]).unwrap(), Err(b("zz")));
        // Arakoon names the last missing key in request order.
        assert_eq!(s.multi_get(&[b("yy"), b("a"), b("zz")]).unwrap(), Err(b("zz")));
        assert_eq!(s.multi_get(&[b("zz"), b("yy"), b("a")]).unwrap(), Err(b("yy")));
        assert_eq!(s.multi_get_option(&[b("zz"), b("a")]).unwrap(), vec![None, Some(b("a"))]);
        assert!(s.exists(b"c").unwrap() && !s.exists(b"cc").unwrap());
    });
}

#[test]
fn sled_keeps_data_and_index_across_reopen_and_refuses_another_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let mut s = SledStore::open(tmp.path(), "alpha").unwrap();
        s.apply(0, &Value::client(vec![set("k", "v")])).unwrap();
        s.apply(1, &Value::MasterSet { master: "n2".into(), lease_start: 0 }).unwrap();
        s.flush().unwrap();
    }
    let s = SledStore::open(tmp.path(), "alpha").unwrap();
    assert_eq!(s.applied(), Some(1));
    assert_eq!(s.get(b"k").unwrap(), Some(b("v")));
    assert_eq!(s.master().unwrap().master, "n2");
    assert_eq!(s.key_count().unwrap(), 1);
    drop(s);
    let err = SledStore::open(tmp.path(), "beta").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::WrongCluster { .. }), "{msg}");
    assert!(
        msg.contains("alpha")
            && msg.contains("beta")
            && msg.contains(&tmp.path().display().to_string()),
        "{msg}"
    );
}

/// Large values go through the paths of the patched sled (vendor/sled/PATCHED.md) that small
/// ones never reach: leaves split by bytes, leaves paged out after a flush and read back, a
/// leaf above 4 MiB paged out after each use. About 200 MiB over a 24 MiB cache, written,
/// overwritten and deleted in an order that is neither ascending nor descending, flushed in
/// between; every read, and a reopen, must give what a plain map gives.
#[test]
fn large_values_read_back_through_evictions_splits_and_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let check = |s: &SledStore, model: &BTreeMap<Vec<u8>, Vec<u8>>| {
        for (k, v) in model {
            let got = s.get(k).unwrap();
            assert!(got.as_deref() == Some(v.as_slice()), "key {:?}", String::from_utf8_lossy(k));
        }
        let all = s.range(&Range { max: None, ..Range::default() }).unwrap();
        let keys: Vec<Vec<u8>> = all.iter().map(|k| k.to_vec()).collect();
        assert_eq!(keys, model.keys().cloned().collect::<Vec<_>>());
    };
    {
        let mut s = SledStore::open(tmp.path(), "c").unwrap();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..4u64 {
            for n in 0..60u64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let k = format!("key/{:03}", (n * 37 + round * 11) % 97).into_bytes();
                let size = [64 << 10, 300 << 10, 1 << 20, 2_621_440, 5 << 20][(x % 5) as usize];
                let updates = if x.is_multiple_of(7) {
                    model.remove(&k);
                    vec![Update::Delete { key: k }]
                } else {
                    let v: Vec<u8> = (0..size).map(|i| (i as u64 ^ x) as u8).collect();
                    model.insert(k.clone(), v.clone());
                    vec![Update::Set { key: k, value: v }]
                };
                let i = s.next_i();
                s.apply(i, &Value::client(updates)).unwrap();
                if n % 8 == 7 {
                    s.flush().unwrap();
                }
            }
            check(&s, &model);
        }
        s.flush().unwrap();
    }
    let s = SledStore::open(tmp.path(), "c").unwrap();
    check(&s, &model);
}

// ---------------------------------------------------------------------------------------------
// The model: the same semantics, written independently and as plainly as possible.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Unit,
    Prev(Option<Vec<u8>>),
    Count(i64),
    Returned(Option<Vec<u8>>),
    Fail(Rc),
}

fn outcome(r: &UpdateResult) -> Outcome {
    match r {
        Ok(UpdateOutput::Unit) => Outcome::Unit,
        Ok(UpdateOutput::Previous(p)) => Outcome::Prev(p.clone()),
        Ok(UpdateOutput::Count(c)) => Outcome::Count(*c),
        Ok(UpdateOutput::Returned(v)) => Outcome::Returned(v.clone()),
        Err(f) => Outcome::Fail(f.rc),
    }
}

fn model_update(m: &mut BTreeMap<Vec<u8>, Vec<u8>>, u: &Update) -> Outcome {
    match u {
        Update::Set { key, value } => {
            m.insert(key.clone(), value.clone());
            Outcome::Unit
        }
        Update::Delete { key } => match m.remove(key) {
            Some(_) => Outcome::Unit,
            None => Outcome::Fail(Rc::NotFound),
        },
        Update::TestAndSet { key, expected, wanted } => {
            let before = m.get(key).cloned();
            if &before == expected {
                match wanted {
                    Some(w) => m.insert(key.clone(), w.clone()),
                    None => m.remove(key),
                };
            }
            Outcome::Prev(before)
        }
        Update::Replace { key, value } => {
            let before = match value {
                Some(v) => m.insert(key.clone(), v.clone()),
                None => m.remove(key),
            };
            Outcome::Prev(before)
        }
        Update::Assert { key, value } => {
            if m.get(key) == value.as_ref() {
                Outcome::Unit
            } else {
                Outcome::Fail(Rc::AssertionFailed)
            }
        }
        Update::AssertExists { key } => {
            if m.contains_key(key) {
                Outcome::Unit
            } else {
                Outcome::Fail(Rc::AssertionFailed)
            }
        }
        Update::DeletePrefix { prefix } => {
            let doomed: Vec<Vec<u8>> =
                m.keys().filter(|k| k.starts_with(prefix)).cloned().collect();
            for k in &doomed {
                m.remove(k);
            }
            Outcome::Count(doomed.len() as i64)
        }
        Update::AssertRange { prefix, keys } => {
            let have: Vec<&Vec<u8>> = m.keys().filter(|k| k.starts_with(prefix)).collect();
            // Arakoon compares the list as decoded: no sorting, no de-duplication.
            let want: Vec<&Vec<u8>> = keys.iter().collect();
            if have == want {
                Outcome::Unit
            } else {
                Outcome::Fail(Rc::AssertionFailed)
            }
        }
        Update::Sequence(us) => {
            let mut copy = m.clone();
            for u in us {
                if let Outcome::Fail(rc) = model_update(&mut copy, u) {
                    return Outcome::Fail(rc);
                }
            }
            *m = copy;
            Outcome::Unit
        }
        Update::UserFunction { name, arg } if name == "arakoon.incr" => {
            let key = arg.clone().unwrap();
            let n: i64 = match m.get(&key) {
                None => 0,
                Some(v) => match String::from_utf8(v.clone()).ok().and_then(|s| s.parse().ok()) {
                    Some(n) => n,
                    None => return Outcome::Fail(Rc::UserFunctionFailure),
                },
            };
            let next = (n + 1).to_string().into_bytes();
            m.insert(key, next.clone());
            Outcome::Returned(Some(next))
        }
        Update::UserFunction { .. } => Outcome::Fail(Rc::BadInput),
        Update::Nop => Outcome::Unit,
        other => panic!("the model does not generate {other:?}"),
    }
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b("a")),
        Just(b("ab")),
        Just(b("b")),
        Just(b("b/1")),
        Just(b("b/2")),
        Just(b("c"))
    ]
}

fn val() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(b("1")), Just(b("2")), Just(b("x")), Just(Vec::new())]
}

fn leaf() -> impl Strategy<Value = Update> {
    prop_oneof![
        4 => (key(), val()).prop_map(|(key, value)| Update::Set { key, value }),
        2 => key().prop_map(|key| Update::Delete { key }),
        2 => (key(), proptest::option::of(val()), proptest::option::of(val()))
            .prop_map(|(key, expected, wanted)| Update::TestAndSet { key, expected, wanted }),
        1 => (key(), proptest::option::of(val())).prop_map(|(key, value)| Update::Replace { key, value }),
        1 => (key(), proptest::option::of(val())).prop_map(|(key, value)| Update::Assert { key, value }),
        1 => key().prop_map(|key| Update::AssertExists { key }),
        1 => prop_oneof![Just(b("b")), Just(b("b/")), Just(b("a"))].prop_map(|prefix| Update::DeletePrefix { prefix }),
        1 => proptest::collection::vec(key(), 0..3).prop_map(|keys| Update::AssertRange { prefix: b("b/"), keys }),
        1 => key().prop_map(|k| Update::UserFunction { name: "arakoon.incr".into(), arg: Some(k) }),
        1 => Just(Update::UserFunction { name: "nope".into(), arg: None }),
        1 => Just(Update::Nop),
    ]
}

fn update() -> impl Strategy<Value = Update> {
    prop_oneof![4 => leaf(), 1 => proptest::collection::vec(leaf(), 0..5).prop_map(Update::Sequence)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn both_stores_agree_with_the_model(
        values in proptest::collection::vec(proptest::collection::vec(update(), 0..8), 1..20),
        batch in 1usize..5,
    ) {
        let mut model = BTreeMap::new();
        let mut mem = MemoryStore::new("c");
        let tmp = tempfile::tempdir().unwrap();
        let mut sled = SledStore::open(&tmp.path().join("many"), "c").unwrap();
        let mut replayed = SledStore::open(&tmp.path().join("replayed"), "c").unwrap();
        let values: Vec<(u64, Value)> =
            values.into_iter().enumerate().map(|(i, us)| (i as u64, Value::client(us))).collect();
        for (i, v) in &values {
            let Value::Client { updates, .. } = v else { unreachable!() };
            let expected: Vec<Outcome> = updates.iter().map(|u| model_update(&mut model, u)).collect();
            let got: Vec<Outcome> = mem.apply(*i, v).unwrap().iter().map(outcome).collect();
            prop_assert_eq!(&got, &expected, "memory store, slot {}", i);
        }
        // One sled store takes the same values in batches with their results; another takes
        // them as replay does, moved in and their results dropped.
        let mut sled_results = Vec::new();
        for chunk in values.chunks(batch) {
            sled_results.extend(sled.apply_many(chunk).unwrap());
            replayed.apply_replayed(&mut chunk.to_vec()).unwrap();
        }
        for ((i, v), results) in values.iter().zip(&sled_results) {
            let mine: Vec<Outcome> = mem_results_for(v, &values, *i);
            let theirs: Vec<Outcome> = results.iter().map(outcome).collect();
            prop_assert_eq!(theirs, mine, "sled store, slot {}", i);
        }
        let everything = Range::default();
        let model_entries: Vec<(Vec<u8>, Vec<u8>)> = model.into_iter().collect();
        prop_assert_eq!(&mem.range_entries(&everything).unwrap(), &model_entries);
        prop_assert_eq!(&sled.range_entries(&everything).unwrap(), &model_entries);
        prop_assert_eq!(sled.key_count().unwrap(), model_entries.len() as u64);
        prop_assert_eq!(sled.applied(), mem.applied());
        prop_assert_eq!(&replayed.range_entries(&everything).unwrap(), &model_entries);
        prop_assert_eq!(replayed.key_count().unwrap(), model_entries.len() as u64);
        prop_assert_eq!(replayed.applied(), mem.applied());
        // The count written beside the keys (sled counts them as it writes, patch 6) is the
        // one a reopened store reads.
        drop((sled, replayed));
        for name in ["many", "replayed"] {
            let reopened = SledStore::open(&tmp.path().join(name), "c").unwrap();
            prop_assert_eq!(reopened.key_count().unwrap(), model_entries.len() as u64, "{}", name);
        }
    }
}

/// The memory store's results for slot `i`, recomputed from scratch (results are a function of
/// the values up to `i`).
fn mem_results_for(_v: &Value, values: &[(u64, Value)], i: u64) -> Vec<Outcome> {
    let mut mem = MemoryStore::new("c");
    let mut last = Vec::new();
    for (j, v) in values.iter().take(i as usize + 1) {
        last = mem.apply(*j, v).unwrap().iter().map(outcome).collect();
    }
    last
}

/// An open waits for a handle that is being let go of, and names a lock that stays held.
#[test]
fn sled_open_waits_for_a_released_lock_and_names_one_that_stays_held() {
    let tmp = tempfile::tempdir().unwrap();
    let first = SledStore::open(tmp.path(), "alpha").unwrap();
    let path = tmp.path().to_path_buf();
    let held = std::thread::spawn(move || SledStore::open(&path, "alpha").map(|_| ()));
    let err = held.join().unwrap().unwrap_err().to_string();
    assert!(err.contains("locked") && err.contains("another process"), "{err}");
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(first);
    });
    let second = SledStore::open(tmp.path(), "alpha");
    releaser.join().unwrap();
    assert!(second.is_ok(), "{:?}", second.err().map(|e| e.to_string()));
}

/// A user function's refusal fails its update with user_function_failure and the refusal's text,
/// and leaves nothing it wrote behind; an embedder's function refuses in its own words.
#[test]
fn a_refused_user_function_fails_with_its_text_and_writes_nothing() {
    use arakoon_node::store::{UserContext, UserFunctionError, UserFunctionRegistry};
    fn half(
        ctx: &mut dyn UserContext,
        _: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, UserFunctionError> {
        ctx.set(b"half", b"written");
        Err(UserFunctionError::Refused("half-done: refused".into()))
    }
    let mut registry = UserFunctionRegistry::default();
    registry.register("test.half", half);
    let mut mem = MemoryStore::with_registry("c", registry);
    let r = apply(
        &mut mem,
        vec![
            set("c", "x"),
            Update::UserFunction { name: "arakoon.incr".into(), arg: Some(b("c")) },
            Update::UserFunction { name: "test.half".into(), arg: None },
        ],
    );
    assert_eq!(r[1], failure(Rc::UserFunctionFailure, "the value at c is not a decimal counter"));
    assert_eq!(r[2], failure(Rc::UserFunctionFailure, "half-done: refused"));
    assert_eq!(mem.get(b"half").unwrap(), None, "a refused function's writes are dropped");
}
