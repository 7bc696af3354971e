//! Collapse: the folding order, pins, and start-up from head + log.

use super::*;
use crate::replay::replay;
use crate::store::{MemoryStore, Store};
use crate::tlog::{FsDir, TlogConfig, TlogWriter};
use crate::value::Update;

fn value(i: u64) -> Value {
    Value::client(vec![Update::Set {
        key: format!("k{}", i % 37).into_bytes(),
        value: format!("v{i}").into_bytes(),
    }])
}

/// A log of slots `0..slots`, 10 entries per file, in a fresh directory.
fn log(slots: u64) -> (tempfile::TempDir, Arc<dyn LogDir>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir: Arc<dyn LogDir> = Arc::new(FsDir::open(tmp.path()).unwrap());
    let config = TlogConfig { entries_per_file_max: 10, file_bytes_max: 1 << 20 };
    let (mut w, _) = TlogWriter::open(dir.clone(), config, "n0").unwrap();
    for i in 0..slots {
        w.append(&[(i, &value(i))]).unwrap();
    }
    w.close().unwrap();
    (tmp, dir)
}

fn names(dir: &dyn LogDir) -> Vec<String> {
    tlog::list_files(dir).unwrap().iter().map(TlogFile::name).collect()
}

/// The user data of a store replayed from the whole log up to `last`.
fn expected(last: u64) -> MemoryStore {
    let mut m = MemoryStore::new("c");
    for i in 0..=last {
        m.apply(i, &value(i)).unwrap();
    }
    m
}

fn same_data(store: &dyn Store, model: &MemoryStore) {
    assert_eq!(store.applied(), model.applied());
    assert_eq!(store.key_count().unwrap(), model.key_count().unwrap());
    for (k, v) in model.entries() {
        assert_eq!(store.get(k).unwrap().as_ref(), Some(v), "{}", String::from_utf8_lossy(k));
    }
}

#[test]
fn collapse_keeps_the_open_file_and_the_last_n_sealed_ones_and_the_head_covers_the_rest() {
    let (tmp, dir) = log(55);
    assert_eq!(
        names(dir.as_ref()),
        ["000.tlog", "001.tlog", "002.tlog", "003.tlog", "004.tlog", "005.tlog"]
    );
    let head = head_path(tmp.path());
    let mut steps = Vec::new();
    let report =
        collapse(dir.as_ref(), &head, "c", 1, None, &mut |s| steps.push(s.clone())).unwrap();
    assert_eq!(names(dir.as_ref()), ["004.tlog", "005.tlog"]);
    assert_eq!(report.removed, ["000.tlog", "001.tlog", "002.tlog", "003.tlog"]);
    assert_eq!(report.head_i, Some(39), "the head ends just before the first kept slot");
    assert_eq!(report.folded, 40);
    assert_eq!(report.log_first_i, Some(40));
    // Folding is reported (durable) before the first removal.
    let folded = steps.iter().position(|s| matches!(s, Step::Folded { .. })).unwrap();
    let first_removal = steps.iter().position(|s| matches!(s, Step::Removed(_))).unwrap();
    assert!(folded < first_removal, "{steps:?}");
    let head_store = SledStore::open(&head, "c").unwrap();
    same_data(&head_store, &expected(39));
}

#[test]
fn collapsing_again_advances_the_head_from_where_it_was() {
    let (tmp, dir) = log(55);
    let head = head_path(tmp.path());
    collapse(dir.as_ref(), &head, "c", 3, None, &mut |_| {}).unwrap();
    assert_eq!(names(dir.as_ref()), ["002.tlog", "003.tlog", "004.tlog", "005.tlog"]);
    let report = collapse(dir.as_ref(), &head, "c", 0, None, &mut |_| {}).unwrap();
    assert_eq!(names(dir.as_ref()), ["005.tlog"]);
    assert_eq!((report.head_i, report.folded), (Some(49), 30));
    same_data(&SledStore::open(&head, "c").unwrap(), &expected(49));
    // Nothing more to do: a no-op, not an error.
    assert_eq!(
        collapse(dir.as_ref(), &head, "c", 0, None, &mut |_| {}).unwrap(),
        Report::default()
    );
}

#[test]
fn a_pinned_file_and_every_file_after_it_stay() {
    let (tmp, dir) = log(55);
    let pins = Arc::new(Pins::default());
    // A catch-up reading from slot 25 (file 002).
    let Pinned::Reading(guard) = pins.pin(dir.as_ref(), 25).unwrap() else { panic!() };
    let head = head_path(tmp.path());
    let report = collapse(dir.as_ref(), &head, "c", 1, Some(&pins), &mut |_| {}).unwrap();
    assert_eq!(report.removed, ["000.tlog", "001.tlog"]);
    assert_eq!(report.kept_pinned, ["002.tlog", "003.tlog"]);
    // The reader can still read everything it pinned.
    let mut seen = Vec::new();
    tlog::for_each_committed(dir.as_ref(), 25, true, &mut |e| {
        seen.push(e.i);
        Ok::<_, ()>(())
    })
    .unwrap()
    .unwrap();
    assert_eq!(seen, (25..55).collect::<Vec<_>>());
    drop(guard);
    assert_eq!(pins.count(), 0);
    let report = collapse(dir.as_ref(), &head, "c", 1, Some(&pins), &mut |_| {}).unwrap();
    assert_eq!(report.removed, ["002.tlog", "003.tlog"]);
    // A reader asking for a collapsed slot hears where the log starts now.
    match pins.pin(dir.as_ref(), 25).unwrap() {
        Pinned::Collapsed { first_i } => assert_eq!(first_i, 40),
        other => panic!("{other:?}"),
    }
}

#[test]
fn start_up_replays_a_store_from_the_head_then_the_log() {
    let (tmp, dir) = log(55);
    let head = head_path(tmp.path());
    collapse(dir.as_ref(), &head, "c", 1, None, &mut |_| {}).unwrap();
    let start = log_start(dir.as_ref()).unwrap();
    let head_next = SledStore::open(&head, "c").unwrap().next_i();
    let from = check_log_start("d", &head, start, Some(head_next)).unwrap();
    assert_eq!(from, 40);
    // A wiped store is behind the log's first slot: it comes from the head.
    let store_path = tmp.path().join("store");
    let mut store = copy_head_to_store(&head, &store_path, "c").unwrap();
    assert_eq!(store.applied(), Some(39));
    replay(dir.as_ref(), &mut store, true, &mut |_| {}).unwrap();
    same_data(&store, &expected(54));
}

#[test]
fn every_crash_point_of_a_collapse_leaves_a_log_that_head_and_files_cover() {
    // Crash after the head is durable, before any removal; then after each removal.
    for removed in 0..=4u64 {
        let (tmp, dir) = log(55);
        let head = head_path(tmp.path());
        fold(dir.as_ref(), &head, "c", 39, &mut |_| {}).unwrap();
        for n in 0..removed {
            dir.remove(&format!("{n:03}.tlog")).unwrap();
        }
        let start = log_start(dir.as_ref()).unwrap();
        let head_next = SledStore::open(&head, "c").unwrap().next_i();
        let from = check_log_start("d", &head, start, Some(head_next)).unwrap();
        let store_path = tmp.path().join("store");
        let mut store = if from > 0 {
            copy_head_to_store(&head, &store_path, "c").unwrap()
        } else {
            SledStore::open(&store_path, "c").unwrap()
        };
        replay(dir.as_ref(), &mut store, true, &mut |_| {}).unwrap();
        same_data(&store, &expected(54));
    }
}

#[test]
fn a_collapsed_log_without_its_head_is_refused_and_a_log_from_000_needs_none() {
    let (tmp, dir) = log(25);
    let head = head_path(tmp.path());
    assert_eq!(check_log_start("d", &head, log_start(dir.as_ref()).unwrap(), None), Ok(0));
    dir.remove("000.tlog").unwrap();
    let err = check_log_start("d", &head, log_start(dir.as_ref()).unwrap(), None).unwrap_err();
    assert!(matches!(err, StartProblem::NoHead { first_file: 1, first_i: Some(10), .. }), "{err}");
    assert!(err.to_string().contains("arakoon-admin catchup"), "{err}");
    // A head that stops short of the log's first slot.
    let err = check_log_start("d", &head, log_start(dir.as_ref()).unwrap(), Some(5)).unwrap_err();
    assert!(matches!(err, StartProblem::HeadShort { first_i: 10, .. }), "{err}");
}

#[test]
fn an_export_imports_into_an_identical_store_and_another_cluster_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = SledStore::open(&tmp.path().join("a"), "c").unwrap();
    let values: Vec<(u64, Value)> = (0..100).map(|i| (i, value(i))).collect();
    a.apply_many(&values).unwrap();
    let b = SledStore::import(&tmp.path().join("b"), "c", a.export()).unwrap();
    same_data(&b, &expected(99));
    let err = SledStore::import(&tmp.path().join("x"), "other", a.export()).unwrap_err();
    assert!(matches!(err, StoreError::WrongCluster { .. }), "{err}");
}

/// A node of a 2-node cluster (its home holds the TLog and the store), for the real start-up.
fn node_config(home: &Path) -> crate::config::ClusterConfig {
    let text = format!(
        "[global]\ncluster = n0, n1\ncluster_id = c\ntlog_max_entries = 10\n\
         [n0]\nip = 127.0.0.1\nclient_port = 1\nmessaging_port = 2\nhome = {}\n\
         [n1]\nip = 127.0.0.1\nclient_port = 3\nmessaging_port = 4\nhome = {}/n1\n",
        home.display(),
        home.display()
    );
    crate::config::ClusterConfig::parse(&text, "t.ini").unwrap()
}

/// What the catch-up task leaves before adoption: the peer's head (every slot up to 39) fetched
/// into `head.db.incoming` and its copy for the store built, leftovers of an earlier try removed.
fn fetched_head(home: &Path, peer_head: &Path) -> crate::server::catchup::FetchedHead {
    let incoming = incoming_head_path(home);
    let store_copy = store_copy_path(&home.join("store"));
    for d in [&incoming, &store_copy] {
        if d.exists() {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
    let peer = SledStore::open(peer_head, "c").unwrap();
    drop(SledStore::import(&incoming, "c", peer.export()).unwrap());
    drop(SledStore::import(&store_copy, "c", peer.export()).unwrap());
    crate::server::catchup::FetchedHead { head_i: 39, incoming, store_copy }
}

/// A peer's head (in `tmp`) folded from a log of 55 slots up to slot `last`.
fn peer_head(tmp: &Path, last: u64) -> PathBuf {
    let (peer_log, peer_dir) = log(55);
    let head = head_path(tmp);
    fold(peer_dir.as_ref(), &head, "c", last, &mut |_| {}).unwrap();
    drop(peer_log);
    head
}

/// A node at `home` whose log holds `values` from slot 0, through the node's own start-up and
/// writer; `own_head`: its first file then collapsed into a head of its own.
fn node_with_log(
    home: &Path,
    values: &[Value],
    own_head: bool,
) -> (crate::config::ClusterConfig, Arc<dyn LogDir>) {
    let cfg = node_config(home);
    let mut w = crate::server::startup::prepare(&cfg, &cfg.nodes[0]).unwrap().writer;
    for (i, v) in (0u64..).zip(values) {
        w.append(&[(i, v)]).unwrap();
    }
    w.close().unwrap();
    let dir: Arc<dyn LogDir> = Arc::new(FsDir::open(home).unwrap());
    if own_head {
        collapse(dir.as_ref(), &head_path(home), "c", 1, None, &mut |_| {}).unwrap();
    }
    (cfg, dir)
}

/// Start-up as the node runs it; the store must equal a replay of the history up to its slot.
fn start_up(cfg: &crate::config::ClusterConfig) -> crate::server::startup::Prepared {
    let prepared = crate::server::startup::prepare(cfg, &cfg.nodes[0])
        .unwrap_or_else(|e| panic!("start-up refused the files: {e}"));
    let applied = prepared.store.applied().expect("the store holds slots");
    same_data(&prepared.store, &expected(applied));
    prepared
}

#[test]
fn every_crash_point_of_adopting_a_peers_head_leaves_files_that_start_up_accepts() {
    // The peer collapsed a log of 55 slots into a head at 39.
    let peer_tmp = tempfile::tempdir().unwrap();
    let peer_head = peer_head(peer_tmp.path(), 39);
    // The node holds slots 0..25 (files 000-002), with and without a head of its own.
    for own_head in [false, true] {
        // adopt_head's steps: the head swapped, the log restarted, each old file removed (000-002,
        // or 001-002 once the node collapsed 000 into a head of its own).
        let last_step = if own_head { 4 } else { 5 };
        // Crash points: 0 before adoption, 1..=last_step after each step, then before the store
        // is replaced, then with the old store removed but the copy not yet renamed in.
        for crash in 0..=last_step + 2 {
            let home = tempfile::tempdir().unwrap();
            let values: Vec<Value> = (0..25).map(value).collect();
            let (cfg, dir) = node_with_log(home.path(), &values, own_head);
            drop(start_up(&cfg));
            let fetched = fetched_head(home.path(), &peer_head);
            if crash > 0 {
                let mut steps = 0usize;
                assert_eq!(fetched.incoming, incoming_head_path(home.path()));
                adopt_head(dir.as_ref(), &head_path(home.path()), &mut |_| {
                    steps += 1;
                    steps < crash
                })
                .unwrap();
                assert_eq!(steps, crash.min(last_step), "own head {own_head}");
            }
            if crash == last_step + 2 {
                std::fs::remove_dir_all(home.path().join("store")).unwrap();
            }
            // The node restarts: start-up accepts what it finds, the store agrees with history.
            drop(start_up(&cfg));
            // The catch-up runs again, fetches the head again and completes the adoption.
            let fetched = fetched_head(home.path(), &peer_head);
            let (writer, store) =
                crate::server::catchup::adopt_closed(&fetched, dir.clone(), &cfg, &cfg.nodes[0])
                    .unwrap();
            assert_eq!(writer.last_i(), None);
            same_data(&store, &expected(39));
            drop((writer, store));
            let p = start_up(&cfg);
            assert_eq!(p.store.applied(), Some(39), "crash point {crash}, own head {own_head}");
            assert_eq!(p.last, None);
            assert_eq!(names(dir.as_ref()).len(), 1, "one empty file after the head");
            assert!(!incoming_head_path(home.path()).exists());
        }
    }
}

/// A crash inside an adoption after its head is durable, with the store lost too (or behind
/// the log's first slot, as sled may be after a power loss): start-up copies the head into a
/// new store, finds it past the whole log, and finishes the adoption (the log restarted after
/// the head) instead of refusing a store ahead of its log. Found by the simulator's world,
/// whose stores are in memory (sim/src/world/adopt.rs).
#[test]
fn a_store_lost_in_an_interrupted_adoption_is_rebuilt_from_the_head() {
    let peer_tmp = tempfile::tempdir().unwrap();
    let peer_head = peer_head(peer_tmp.path(), 39);
    for own_head in [false, true] {
        let last_step = if own_head { 4 } else { 5 };
        for crash in 1..=last_step {
            let home = tempfile::tempdir().unwrap();
            let values: Vec<Value> = (0..25).map(value).collect();
            let (cfg, dir) = node_with_log(home.path(), &values, own_head);
            drop(start_up(&cfg));
            drop(fetched_head(home.path(), &peer_head));
            let mut steps = 0usize;
            adopt_head(dir.as_ref(), &head_path(home.path()), &mut |_| {
                steps += 1;
                steps < crash
            })
            .unwrap();
            std::fs::remove_dir_all(home.path().join("store")).unwrap();
            let p = start_up(&cfg);
            let case = format!("crash after step {crash}, own head {own_head}");
            let applied = p.store.applied();
            if applied == Some(39) {
                assert_eq!(p.last, None, "{case}: the log restarted after the head");
                assert_eq!(names(dir.as_ref()).len(), 1, "{case}: one empty file");
            } else {
                // The log still starts at 000: it replays alone.
                assert!(!own_head && crash <= 2, "{case}: {applied:?}");
                assert_eq!(applied, Some(23), "{case}");
            }
        }
    }
}

/// A node's log ends with a value it accepted at the head's slot and that was never chosen (the
/// peer's head holds the chosen one); an adoption crashes after removing the node's first file
/// and its store is lost. Start-up copies the head into a new store, which reaches the log's
/// last slot: it restarts the log after the head, or the next slot appended would mark the
/// stale value committed. Found by the simulator's campaign (seed 722 of `sim --seeds 0..2000
/// --nodes draw`, an agreement violation).
#[test]
fn a_stale_last_slot_does_not_survive_an_interrupted_adoption() {
    let peer_tmp = tempfile::tempdir().unwrap();
    let peer_head = peer_head(peer_tmp.path(), 24);
    let home = tempfile::tempdir().unwrap();
    let stale =
        Value::client(vec![crate::value::Update::Set { key: b"stale".to_vec(), value: vec![7] }]);
    let values: Vec<Value> = (0..24).map(value).chain([stale]).collect();
    let (cfg, dir) = node_with_log(home.path(), &values, false);
    drop(start_up(&cfg));
    drop(fetched_head(home.path(), &peer_head));
    // The head swapped, the log restarted, 000 removed: the crash comes before 001 goes.
    let mut steps = 0usize;
    adopt_head(dir.as_ref(), &head_path(home.path()), &mut |_| {
        steps += 1;
        steps < 3
    })
    .unwrap();
    std::fs::remove_dir_all(home.path().join("store")).unwrap();
    let p = start_up(&cfg);
    assert_eq!(p.store.applied(), Some(24));
    assert_eq!(p.last, None, "the log restarted after the head: no stale slot 24");
    assert_eq!(names(dir.as_ref()).len(), 1);
}

/// A node whose log holds no slot (new, or wiped) adopts a collapsed peer's head, and crashes
/// after each step: its empty 000 becomes the restarted log's file (renamed 001), never an empty
/// file followed by another, which start-up refuses as a cut file. Found by the simulator's
/// world (sim/src/world/adopt.rs).
#[test]
fn a_node_with_an_empty_log_that_crashes_adopting_starts_again() {
    let peer_tmp = tempfile::tempdir().unwrap();
    let peer_head = peer_head(peer_tmp.path(), 39);
    for crash in 1..=3 {
        let home = tempfile::tempdir().unwrap();
        let cfg = node_config(home.path());
        drop(crate::server::startup::prepare(&cfg, &cfg.nodes[0]).unwrap());
        let dir: Arc<dyn LogDir> = Arc::new(FsDir::open(home.path()).unwrap());
        assert_eq!(names(dir.as_ref()), vec!["000.tlog".to_string()]);
        drop(fetched_head(home.path(), &peer_head));
        let mut steps = 0usize;
        adopt_head(dir.as_ref(), &head_path(home.path()), &mut |_| {
            steps += 1;
            steps < crash
        })
        .unwrap();
        let p = crate::server::startup::prepare(&cfg, &cfg.nodes[0])
            .unwrap_or_else(|e| panic!("crash after step {crash}: start-up refused: {e}"));
        assert_eq!(p.store.applied(), Some(39), "crash after step {crash}");
        assert_eq!(p.last, None);
        // Before the log restarted, its empty 000 stays; the first slot after the head then
        // moves the log to 001.
        let first = if crash == 1 { "000.tlog" } else { "001.tlog" };
        assert_eq!(names(dir.as_ref()), vec![first.to_string()], "crash after step {crash}");
        let mut w = p.writer;
        w.append(&[(40, &value(40))]).unwrap();
        assert_eq!(names(dir.as_ref()), vec!["001.tlog".to_string()], "crash after step {crash}");
    }
}

/// A log of slots `0..slots`, 10 entries per file, on a simulated disk, every byte synced.
fn mem_log(slots: u64) -> (crate::tlog::MemDir, Arc<dyn LogDir>) {
    let disk = crate::tlog::MemDir::new("n0");
    let dir: Arc<dyn LogDir> = Arc::new(disk.clone());
    let config = TlogConfig { entries_per_file_max: 10, file_bytes_max: 1 << 20 };
    let (mut w, _) = TlogWriter::open(dir.clone(), config, "n0").unwrap();
    for i in 0..slots {
        w.append(&[(i, &value(i))]).unwrap();
    }
    w.close().unwrap();
    dir.sync_dir().unwrap();
    (disk, dir)
}

fn file_head_data(dir: &Arc<dyn LogDir>) -> MemoryStore {
    FileHead::new(dir.clone()).load("c").unwrap().expect("a head exists")
}

/// The one collapse, over both heads: the same files go, the heads hold the same slots.
#[test]
fn the_head_as_a_file_collapses_as_the_sled_head_does() {
    let (tmp, sled_dir) = log(55);
    let sled_head = head_path(tmp.path());
    let by_sled = collapse(sled_dir.as_ref(), &sled_head, "c", 1, None, &mut |_| {}).unwrap();
    for dir in [mem_log(55).1, {
        let (tmp, dir) = log(55);
        std::mem::forget(tmp);
        dir
    }] {
        let head = FileHead::new(dir.clone());
        assert!(!head.exists());
        let mut steps = Vec::new();
        let report =
            collapse(dir.as_ref(), &head, "c", 1, None, &mut |s| steps.push(s.clone())).unwrap();
        assert_eq!(report, by_sled, "{}", dir.location());
        assert_eq!(names(dir.as_ref()), names(sled_dir.as_ref()));
        let folded = steps.iter().position(|s| matches!(s, Step::Folded { .. })).unwrap();
        let first_removal = steps.iter().position(|s| matches!(s, Step::Removed(_))).unwrap();
        assert!(folded < first_removal, "the head is durable before a file goes: {steps:?}");
        same_data(&file_head_data(&dir), &expected(39));
        // Again, from where it was.
        collapse(dir.as_ref(), &head, "c", 0, None, &mut |_| {}).unwrap();
        same_data(&file_head_data(&dir), &expected(49));
        assert!(!dir.exists(HEAD_PART_FILE).unwrap(), "the flush renamed its part file");
    }
    same_data(&SledStore::open(&sled_head, "c").unwrap(), &expected(39));
}

/// A head is durable only once flushed: a crash keeps the head of the last flush, whatever part
/// of a later flush's file survives torn.
#[test]
fn a_file_head_keeps_only_what_a_flush_made_durable() {
    let (disk, dir) = mem_log(55);
    let head = FileHead::new(dir.clone());
    fold(dir.as_ref(), &head, "c", 19, &mut |_| {}).unwrap();
    // Applied, never flushed.
    let mut open = head.open("c").unwrap();
    open.apply_many(&(20..30).map(|i| (i, value(i))).collect::<Vec<_>>()).unwrap();
    drop(open);
    disk.crash(|_| 0);
    same_data(&file_head_data(&dir), &expected(19));
    // A flush cut by the power before its data sync: a torn part file, the old head in place.
    for torn in [0usize, 1, 7, 1000] {
        disk.arm(Some(crate::tlog::Trip::CutBeforeHeadSync));
        let err = fold(dir.as_ref(), &head, "c", 39, &mut |_| {}).unwrap_err();
        assert!(matches!(err, CollapseError::Head { .. }), "{err}");
        disk.crash(|unsynced| torn.min(unsynced));
        same_data(&file_head_data(&dir), &expected(19));
    }
    // A failed fsync makes nothing durable and leaves the old head.
    disk.arm(Some(crate::tlog::Trip::FailNextSync));
    fold(dir.as_ref(), &head, "c", 39, &mut |_| {}).unwrap_err();
    disk.crash(|_| 0);
    same_data(&file_head_data(&dir), &expected(19));
    fold(dir.as_ref(), &head, "c", 39, &mut |_| {}).unwrap();
    disk.crash(|_| 0);
    same_data(&file_head_data(&dir), &expected(39));
}

#[test]
fn a_damaged_file_head_is_refused_never_read() {
    let (disk, dir) = mem_log(25);
    let head = FileHead::new(dir.clone());
    fold(dir.as_ref(), &head, "c", 9, &mut |_| {}).unwrap();
    let len = disk.contents(HEAD_FILE).unwrap().len();
    for at in [0, len / 2, len - 1] {
        assert!(disk.flip_bit(HEAD_FILE, at, 3));
        let err = head.load("c").unwrap_err();
        assert!(err.to_string().contains(HEAD_FILE), "{err}");
        disk.flip_bit(HEAD_FILE, at, 3);
    }
    disk.cut(HEAD_FILE, len - 5);
    assert!(head.load("c").is_err());
    assert!(FileHead::new(dir).load("other").is_err(), "another cluster's head is refused");
}

/// Start-up of a node in memory from a collapsed log: the store is the head's copy, replay brings
/// it to the log's end; a log the head does not reach is refused with the server's error.
#[test]
fn a_node_in_memory_starts_from_its_head_and_refuses_a_head_that_falls_short() {
    let (disk, dir) = mem_log(55);
    let head = FileHead::new(dir.clone());
    collapse(dir.as_ref(), &head, "c", 1, None, &mut |_| {}).unwrap();
    let mut store = crate::server::storage::memory_store_with_head("c", &dir).unwrap();
    assert_eq!(store.applied(), Some(39));
    replay(dir.as_ref(), &mut store, true, &mut |_| {}).unwrap();
    same_data(&store, &expected(54));
    // A head that stops short of the log's first slot (an older head put back).
    let (_, short_dir) = mem_log(55);
    let short = FileHead::new(short_dir.clone());
    fold(short_dir.as_ref(), &short, "c", 29, &mut |_| {}).unwrap();
    disk.put(
        HEAD_FILE,
        &short_dir
            .open_read(HEAD_FILE)
            .map(|mut r| {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut r, &mut b).unwrap();
                b
            })
            .unwrap(),
    );
    let err = crate::server::storage::memory_store_with_head("c", &dir).unwrap_err();
    assert!(
        matches!(
            err,
            crate::server::startup::StartError::Collapsed(StartProblem::HeadShort {
                first_i: 40,
                ..
            })
        ),
        "{err}"
    );
    // No head at all.
    dir.remove(HEAD_FILE).unwrap();
    let err = crate::server::storage::memory_store_with_head("c", &dir).unwrap_err();
    assert!(err.to_string().contains("arakoon-admin catchup"), "{err}");
}
