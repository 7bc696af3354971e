//! The TLog against its rules: round trips on the real and the simulated disk, rollover,
//! markers, last-one-wins, the committed rule, archives, and an exhaustive classification of
//! single-bit corruptions and truncations of a small log.

use arakoon_node::tlog::{
    self, archive, for_each_committed, truncate_torn_tail, validate, Entry, FileKind, FsDir,
    LogDir, MemDir, TlogConfig, TlogError, TlogFile, TlogWriter, ENTRY_HEADER_BYTES,
};
use arakoon_node::value::{Update, Value};
use std::convert::Infallible;
use std::sync::Arc;

fn set(k: &str, v: &str) -> Update {
    Update::Set { key: k.as_bytes().to_vec(), value: v.as_bytes().to_vec() }
}

fn value(i: u64) -> Value {
    Value::client(vec![set(&format!("k{i}"), &format!("v{i}"))])
}

fn small_config(entries: u64) -> TlogConfig {
    TlogConfig { entries_per_file_max: entries, file_bytes_max: 1 << 30 }
}

fn committed(dir: &dyn LogDir, from: u64, last_is_committed: bool) -> Vec<(u64, Value)> {
    let mut out = Vec::new();
    for_each_committed::<Infallible>(dir, from, last_is_committed, &mut |e| {
        out.push((e.i, e.value));
        Ok(())
    })
    .unwrap()
    .unwrap();
    out
}

fn write_log(dir: Arc<dyn LogDir>, config: TlogConfig, slots: u64) {
    let (mut w, report) = TlogWriter::open(dir, config, "n0").unwrap();
    assert_eq!(report.last_i, None);
    for i in 0..slots {
        w.append(&[(i, &value(i))]).unwrap();
    }
}

/// The same round trip on both disks: the conformance suite of the LogDir seam.
fn round_trip_on(dir: Arc<dyn LogDir>) {
    let (mut w, _) = TlogWriter::open(dir.clone(), small_config(3), "n0").unwrap();
    let values: Vec<Value> = (0..10).map(value).collect();
    // One call with many values, then single ones.
    let batch: Vec<(u64, &Value)> = (0..5).map(|i| (i, &values[i as usize])).collect();
    w.append(&batch).unwrap();
    for i in 5..10u64 {
        w.append(&[(i, &values[i as usize])]).unwrap();
    }
    w.close().unwrap();
    let v = validate(dir.as_ref()).unwrap();
    assert!(v.is_clean(), "{:?}", v.problems);
    assert!(v.closed_cleanly());
    // Rollover every 3 slots: 0-2, 3-5, 6-8, 9 + the closed marker.
    let ranges: Vec<(Option<u64>, Option<u64>)> =
        v.files.iter().map(|f| (f.first_i, f.last_i)).collect();
    assert_eq!(
        ranges,
        vec![(Some(0), Some(2)), (Some(3), Some(5)), (Some(6), Some(8)), (Some(9), Some(9))]
    );
    // 9 is the last slot: not known to be committed unless asked.
    let got = committed(dir.as_ref(), 0, false);
    assert_eq!(got.len(), 9);
    assert!(got.iter().all(|(i, v)| *v == values[*i as usize]));
    assert_eq!(committed(dir.as_ref(), 0, true).len(), 10);
    assert_eq!(committed(dir.as_ref(), 7, false).iter().map(|p| p.0).collect::<Vec<_>>(), [7, 8]);

    // Reopening writes the opened marker and goes on in the last file.
    let (mut w, report) = TlogWriter::open(dir.clone(), small_config(3), "n0").unwrap();
    assert_eq!(report.last_i, Some(9));
    assert!(report.closed_cleanly);
    w.append(&[(10, &value(10))]).unwrap();
    assert_eq!(committed(dir.as_ref(), 9, false), vec![(9, value(9))]);
}

#[test]
fn round_trip_on_the_simulated_disk() {
    round_trip_on(Arc::new(MemDir::new("t")));
}

#[test]
fn round_trip_on_the_real_disk() {
    let tmp = tempfile::tempdir().unwrap();
    round_trip_on(Arc::new(FsDir::open(tmp.path()).unwrap()));
}

#[test]
fn rollover_by_size_never_splits_a_slot() {
    let dir = Arc::new(MemDir::new("t"));
    let config = TlogConfig { entries_per_file_max: 1000, file_bytes_max: 100 };
    let (mut w, _) = TlogWriter::open(dir.clone(), config, "n0").unwrap();
    // Slot 0 proposed three times (re-proposals) must stay in one file.
    for _ in 0..3 {
        w.append(&[(0, &value(0))]).unwrap();
    }
    w.append(&[(0, &value(100))]).unwrap();
    // Entries of these values take 43 bytes: a file is full after its third.
    assert_eq!(Entry::new(1, value(1)).to_bytes().len(), 43);
    w.append(&[(1, &value(1)), (2, &value(2)), (3, &value(3))]).unwrap();
    w.append(&[(4, &value(4)), (5, &value(5))]).unwrap();
    let v = validate(dir.as_ref()).unwrap();
    assert!(v.is_clean());
    let files: Vec<(u64, Option<u64>, Option<u64>)> =
        v.files.iter().map(|f| (f.entries, f.first_i, f.last_i)).collect();
    assert_eq!(files, vec![(4, Some(0), Some(0)), (3, Some(1), Some(3)), (2, Some(4), Some(5))]);
    // Last one wins for slot 0.
    assert_eq!(committed(dir.as_ref(), 0, false)[0], (0, value(100)));
}

#[test]
fn a_crash_loses_only_what_was_not_synced() {
    let dir = Arc::new(MemDir::new("t"));
    let (mut w, _) = TlogWriter::open(dir.clone(), small_config(4), "n0").unwrap();
    for i in 0..6 {
        w.append(&[(i, &value(i))]).unwrap();
    }
    assert_eq!(dir.unsynced_bytes(), 0, "append returns only once everything is durable");
    drop(w);
    dir.crash(|_| 0);
    assert_eq!(tlog::last_i(dir.as_ref()).unwrap(), Some(5));
}

#[test]
fn a_torn_tail_is_found_and_only_it_is_cut() {
    let dir = Arc::new(MemDir::new("t"));
    write_log(dir.clone(), small_config(100), 3);
    let good = dir.contents("000.tlog").unwrap();
    let mut torn = good.clone();
    torn.extend_from_slice(&Entry::new(3, value(3)).to_bytes()[..20]);
    dir.put("000.tlog", &torn);
    let v = validate(dir.as_ref()).unwrap();
    assert!(
        matches!(v.problems.as_slice(), [TlogError::TornTail { offset, i: Some(3), .. }] if *offset == good.len() as u64)
    );
    assert_eq!(v.problems[0].exit_code(), 48);
    assert!(v.problems[0].repair().contains("arakoon-admin tlog truncate"));
    let (path, at, cut) = truncate_torn_tail(dir.as_ref()).unwrap().unwrap();
    assert!(path.ends_with("000.tlog"));
    assert_eq!((at, cut), (good.len() as u64, 20));
    assert_eq!(dir.contents("000.tlog").unwrap(), good);
    assert_eq!(truncate_torn_tail(dir.as_ref()).unwrap(), None);
}

#[test]
fn opening_with_a_cut_reads_the_log_once_as_truncate_then_open_would() {
    // Two logs alike, one torn: the cut one opens as truncate_torn_tail then open would, and
    // hands over every committed slot; the last two are in the report.
    let (cut, reference) = (Arc::new(MemDir::new("t")), Arc::new(MemDir::new("t")));
    for dir in [&cut, &reference] {
        write_log(dir.clone(), small_config(3), 7);
        let mut torn = dir.contents("002.tlog").unwrap();
        torn.extend_from_slice(&Entry::new(7, value(7)).to_bytes()[..20]);
        dir.put("002.tlog", &torn);
    }
    let mut slots = Vec::new();
    let (mut w, report) = TlogWriter::open_with(
        cut.clone(),
        small_config(3),
        "n0",
        tlog::TornTail::Cut,
        &mut |i, v| slots.push((i, v)),
    )
    .unwrap();
    let expected_cut = truncate_torn_tail(reference.as_ref()).unwrap();
    let (mut w2, report2) = TlogWriter::open(reference.clone(), small_config(3), "n0").unwrap();
    assert_eq!(report.cut, expected_cut);
    assert_eq!((report.last_i, report.files), (report2.last_i, report2.files));
    assert_eq!(slots, committed(reference.as_ref(), 0, false));
    let last_two = tlog::last_two(reference.as_ref()).unwrap();
    assert_eq!((report.last, report.prev), last_two);
    assert_eq!(last_two, (Some((6, value(6))), Some((5, value(5)))));
    // Both writers go on alike: the same bytes in every file.
    w.append(&[(7, &value(7))]).unwrap();
    w2.append(&[(7, &value(7))]).unwrap();
    for name in ["000.tlog", "001.tlog", "002.tlog", "003.tlog"] {
        assert_eq!(cut.contents(name), reference.contents(name), "{name}");
    }
    // Refusing a torn tail, the default, hands the error over.
    let dir = Arc::new(MemDir::new("c"));
    write_log(dir.clone(), small_config(3), 2);
    let mut torn = dir.contents("000.tlog").unwrap();
    torn.extend_from_slice(&Entry::new(2, value(2)).to_bytes()[..20]);
    dir.put("000.tlog", &torn);
    let err = TlogWriter::open(dir, small_config(3), "n0").err().expect("refused");
    assert_eq!(err.kind(), "torn_tail");
}

#[test]
fn the_last_two_slots_are_read_whether_or_not_the_last_file_holds_both() {
    for slots in [1, 2, 3, 4, 5, 7] {
        let dir = Arc::new(MemDir::new("t"));
        write_log(dir.clone(), small_config(3), slots);
        let prev = (slots >= 2).then(|| (slots - 2, value(slots - 2)));
        let expected = (Some((slots - 1, value(slots - 1))), prev);
        assert_eq!(tlog::last_two(dir.as_ref()).unwrap(), expected, "{slots} slots");
    }
    let empty = MemDir::new("empty");
    assert_eq!(tlog::last_two(&empty).unwrap(), (None, None));
}

#[test]
fn truncate_refuses_anything_but_a_torn_tail() {
    let dir = Arc::new(MemDir::new("t"));
    write_log(dir.clone(), small_config(100), 3);
    assert!(dir.flip_bit("000.tlog", ENTRY_HEADER_BYTES + 3, 0));
    let before = dir.contents("000.tlog").unwrap();
    let err = truncate_torn_tail(dir.as_ref()).unwrap_err();
    assert_eq!(err.kind(), "refused");
    assert!(err.to_string().contains("checksum"), "{err}");
    assert_eq!(dir.contents("000.tlog").unwrap(), before);
}

#[test]
fn a_missing_file_and_a_file_starting_below_are_reported() {
    let dir = Arc::new(MemDir::new("t"));
    write_log(dir.clone(), small_config(2), 7);
    dir.remove("001.tlog").unwrap();
    let v = validate(dir.as_ref()).unwrap();
    let missing = v.problems.iter().find(|p| p.kind() == "missing_file").expect("missing file");
    assert!(missing.to_string().contains("001.tlog"), "{missing}");
    assert_eq!(missing.exit_code(), 50);

    let dir = Arc::new(MemDir::new("t"));
    write_log(dir.clone(), small_config(2), 6);
    let first = dir.contents("000.tlog").unwrap();
    dir.put("002.tlog", &first);
    let v = validate(dir.as_ref()).unwrap();
    assert!(
        matches!(
            v.problems.as_slice(),
            [TlogError::FileStartsBelow { first_i: 0, prev_last_i: 3, .. }]
        ),
        "{:?}",
        v.problems
    );
}

#[test]
fn tlx_archives_hold_the_same_entries() {
    let dir = Arc::new(MemDir::new("t"));
    write_log(dir.clone(), small_config(5), 12);
    let before = committed(dir.as_ref(), 0, true);
    assert_eq!(archive::compress(dir.as_ref(), 0).unwrap(), 5);
    assert_eq!(archive::compress(dir.as_ref(), 1).unwrap(), 5);
    let names: Vec<String> = dir.list().unwrap();
    assert!(names.contains(&"000.tlx".to_string()) && !names.contains(&"000.tlog".to_string()));
    assert!(archive::looks_like_tlx(&dir.contents("000.tlx").unwrap()));
    assert!(validate(dir.as_ref()).unwrap().is_clean());
    assert_eq!(committed(dir.as_ref(), 0, true), before);
    assert_eq!(committed(dir.as_ref(), 7, true), before[7..].to_vec());
    archive::uncompress(dir.as_ref(), &TlogFile::new(1, FileKind::Tlx)).unwrap();
    assert_eq!(committed(dir.as_ref(), 0, true), before);
}

#[test]
fn a_damaged_tlx_chunk_is_reported_and_never_read() {
    let dir = Arc::new(MemDir::new("t"));
    write_log(dir.clone(), small_config(5), 8);
    archive::compress(dir.as_ref(), 0).unwrap();
    let len = dir.contents("000.tlx").unwrap().len();
    assert!(dir.flip_bit("000.tlx", len - 3, 2));
    let v = validate(dir.as_ref()).unwrap();
    // One problem: the damaged chunk. What follows it is not blamed for the gap it leaves.
    assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
    assert!(v.problems[0].path().ends_with("000.tlx"));
    assert_eq!(v.problems[0].exit_code(), 49);
}

#[test]
fn tlf_bzip2_archives_are_read() {
    use std::io::Write;
    let dir = Arc::new(MemDir::new("t"));
    write_log(dir.clone(), small_config(4), 9);
    let plain = dir.contents("000.tlog").unwrap();
    let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    enc.write_all(&plain).unwrap();
    dir.remove("000.tlog").unwrap();
    dir.put("000.tlf", &enc.finish().unwrap());
    assert!(validate(dir.as_ref()).unwrap().is_clean());
    assert_eq!(committed(dir.as_ref(), 0, false).len(), 8);
}

/// Offsets of the entries of a plain file.
fn entry_offsets(bytes: &[u8]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let len = i32::from_le_bytes(bytes[at + 12..at + 16].try_into().unwrap()) as usize;
        let i = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        out.push((at as u64, i));
        at += ENTRY_HEADER_BYTES + len;
    }
    out
}

/// Every single-bit flip of every byte of a two-file log is classified, at the entry it hit (or,
/// for a flipped `i`, at the entry where the sequence breaks). The one corruption the format
/// cannot see: the `i` of the log's very last entry turned into its predecessor's `i` looks like
/// a legitimate re-proposal of that slot (the CRC covers `cmd`, not `i`); that last slot was not
/// known to be committed anyway, and this test pins that this is the only blind spot.
#[test]
fn every_bit_flip_is_classified_at_the_damaged_entry() {
    let dir = Arc::new(MemDir::new("t"));
    // 000: 0-3, 001: 4-7; the last slot is odd, so one bit flip turns 7 into 6.
    write_log(dir.clone(), small_config(4), 8);
    let files = ["000.tlog", "001.tlog"];
    let originals: Vec<Vec<u8>> = files.iter().map(|f| dir.contents(f).unwrap()).collect();
    let mut blind = 0;
    for (fk, name) in files.iter().enumerate() {
        let offsets = entry_offsets(&originals[fk]);
        for pos in 0..originals[fk].len() {
            let (k, &(entry_at, entry_i)) =
                offsets.iter().enumerate().rev().find(|(_, (at, _))| *at as usize <= pos).unwrap();
            let in_i_field = pos - (entry_at as usize) < 8;
            for bit in 0..8 {
                dir.put(name, &originals[fk]);
                assert!(dir.flip_bit(name, pos, bit));
                let v = validate(dir.as_ref()).unwrap();
                let here = format!("{name} byte {pos} bit {bit} (entry i={entry_i} at {entry_at})");
                if v.problems.is_empty() {
                    let flipped = entry_i ^ (1 << (8 * (pos - entry_at as usize) + bit as usize));
                    let last_entry = fk == 1 && k + 1 == offsets.len();
                    assert!(
                        in_i_field && last_entry && flipped + 1 == entry_i,
                        "{here}: corruption not detected"
                    );
                    blind += 1;
                    continue;
                }
                let p = &v.problems[0];
                if in_i_field {
                    // Found at this entry, or where the sequence breaks: the next entry, which
                    // for a file's last entry is the first of the next file.
                    let next = match offsets.get(k + 1) {
                        Some(o) => (files[fk], o.0),
                        None => (files[(fk + 1).min(1)], 0),
                    };
                    let at_this = p.path().ends_with(name) && p.offset() == Some(entry_at);
                    let at_next = p.path().ends_with(next.0)
                        && (p.offset() == Some(next.1) || p.kind() == "file_starts_below");
                    assert!(at_this || at_next, "{here}: {p}");
                } else {
                    assert!(p.path().ends_with(name), "{here}: reported in {}", p.path());
                    assert_eq!(p.offset(), Some(entry_at), "{here}: {p}");
                    assert!(
                        ["checksum", "bad_length", "torn_tail", "truncated_sealed"]
                            .contains(&p.kind()),
                        "{here}: {p}"
                    );
                }
            }
        }
        dir.put(name, &originals[fk]);
    }
    assert_eq!(blind, 1, "exactly one blind spot: slot 7's i flipped to 6");
}

/// Every truncation length of either file: on an entry boundary the last file is simply shorter
/// (nothing to detect: those bytes were never there as far as the file can tell), a sealed file is
/// caught by the next file's sequence; anywhere else it is a torn tail (last file) or a cut sealed
/// file, reported at the entry that was cut.
#[test]
fn every_truncation_is_classified() {
    let dir = Arc::new(MemDir::new("t"));
    write_log(dir.clone(), small_config(4), 7);
    let files = ["000.tlog", "001.tlog"];
    let originals: Vec<Vec<u8>> = files.iter().map(|f| dir.contents(f).unwrap()).collect();
    for (fk, name) in files.iter().enumerate() {
        let offsets = entry_offsets(&originals[fk]);
        for len in 0..originals[fk].len() {
            dir.put(name, &originals[fk][..len]);
            let v = validate(dir.as_ref()).unwrap();
            let cut = offsets.iter().rev().find(|(at, _)| *at as usize <= len).unwrap();
            let on_boundary = cut.0 as usize == len;
            let here = format!("{name} cut to {len}");
            match (fk, on_boundary) {
                (1, true) => {
                    assert!(v.is_clean(), "{here}: {:?}", v.problems);
                    let last = tlog::last_i(dir.as_ref()).unwrap();
                    let expected = if len == 0 { Some(3) } else { Some(cut.1 - 1) };
                    assert_eq!(last, expected, "{here}");
                }
                (_, true) => {
                    let p = &v.problems[0];
                    assert!(["sequence", "truncated_sealed"].contains(&p.kind()), "{here}: {p}");
                }
                (fk, false) => {
                    let p = &v.problems[0];
                    let kind = if fk == 1 { "torn_tail" } else { "truncated_sealed" };
                    assert_eq!(p.kind(), kind, "{here}: {p}");
                    assert_eq!(p.offset(), Some(cut.0), "{here}: {p}");
                }
            }
        }
        dir.put(name, &originals[fk]);
    }
}

#[test]
fn garbage_and_foreign_files_give_typed_errors() {
    let dir = Arc::new(MemDir::new("t"));
    dir.put("000.tlog", &[0xde; 100]);
    let v = validate(dir.as_ref()).unwrap();
    assert_eq!(v.problems.len(), 1);
    assert_eq!(v.problems[0].offset(), Some(0));
    dir.put("000.tlog", &[]);
    dir.put("001.tlx", b"not an archive at all");
    dir.put("notes.txt", b"ignored");
    let v = validate(dir.as_ref()).unwrap();
    assert_eq!(v.problems.len(), 2, "{:?}", v.problems);
    assert_eq!(v.problems[1].kind(), "bad_archive");
    // The writer refuses to open a damaged log.
    assert!(TlogWriter::open(dir, TlogConfig::default(), "n0").is_err());
}

#[test]
fn a_writer_that_failed_refuses_further_appends() {
    let dir = Arc::new(MemDir::new("t"));
    let (mut w, _) = TlogWriter::open(dir.clone(), TlogConfig::default(), "n0").unwrap();
    w.append(&[(0, &value(0))]).unwrap();
    dir.set_failing(Some(std::io::ErrorKind::StorageFull));
    assert!(w.append(&[(1, &value(1))]).is_err());
    dir.set_failing(None);
    let err = w.append(&[(1, &value(1))]).unwrap_err();
    assert_eq!(err.kind(), "refused");
}

#[test]
fn a_log_that_starts_after_slot_zero_does_not_call_its_first_file_000() {
    let dir = Arc::new(MemDir::new("t"));
    let (mut w, _) = TlogWriter::open(dir.clone(), TlogConfig::default(), "n0").unwrap();
    w.append(&[(1000, &value(1000)), (1001, &value(1001))]).unwrap();
    let v = validate(dir.as_ref()).unwrap();
    assert!(v.is_clean(), "{:?}", v.problems);
    assert_eq!(v.files.len(), 1);
    assert_eq!(v.files[0].file.number, 1);
    assert_eq!(committed(dir.as_ref(), 0, false), vec![(1000, value(1000))]);
}

#[test]
fn one_file_walks_on_its_own_and_stops_at_a_damaged_entry_typed() {
    let dir = Arc::new(MemDir::new("t"));
    write_log(dir.clone(), small_config(4), 10);
    assert_eq!(tlog::log_first_i(dir.as_ref()).unwrap(), Some(0));
    let file = TlogFile::parse("001.tlog").unwrap();
    let mut seen = Vec::new();
    tlog::walk_file(dir.as_ref(), &file, &mut |e, offset| {
        seen.push((e.i, offset));
        true
    })
    .unwrap();
    assert_eq!(seen.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![4, 5, 6, 7]);
    assert_eq!(seen[0].1, 0, "offsets are within the file");
    assert!(dir.flip_bit("001.tlog", ENTRY_HEADER_BYTES + 3, 0));
    let err = tlog::walk_file(dir.as_ref(), &file, &mut |_, _| true).unwrap_err();
    match &err {
        TlogError::DamagedFile { problem, .. } => {
            assert_eq!(problem.kind(), "checksum", "{err}");
            assert_eq!(problem.offset(), Some(0), "{err}");
        }
        other => panic!("expected a damaged file, got {other}"),
    }
    assert_eq!(err.kind(), "refused");
}

/// A node that stopped because a rollover's directory sync failed (the new file's name left
/// volatile) reopens its log and finds that file, which the page cache still names: the writer
/// makes the name durable before it builds on it, so what it reports durable afterwards
/// survives a power loss. (Found by the simulator's fsync_fail: the node acknowledged slots of a
/// file a crash then removed.)
#[test]
fn a_reopened_log_makes_a_new_file_s_name_durable_before_building_on_it() {
    let mem = MemDir::new("t");
    let dir: Arc<dyn LogDir> = Arc::new(mem.clone());
    let (mut w, _) = TlogWriter::open(dir.clone(), small_config(2), "n0").unwrap();
    let (v0, v1, v2) = (value(0), value(1), value(2));
    w.append(&[(0, &v0), (1, &v1)]).unwrap();
    mem.arm(Some(tlog::Trip::FailNextSync));
    assert!(w.append(&[(2, &v2)]).is_err(), "the rollover's directory sync fails");
    assert_eq!(mem.take_struck(), Some(tlog::Trip::FailNextSync));
    drop(w); // the node stops; no power loss, so the page cache keeps the new file's name
    let (mut w, report) = TlogWriter::open(dir.clone(), small_config(2), "n0").unwrap();
    assert_eq!(report.last_i, Some(1));
    w.append(&[(2, &v2)]).unwrap();
    mem.crash(|_| 0);
    assert_eq!(tlog::last_i(&mem).unwrap(), Some(2), "slot 2 was reported durable");
}
