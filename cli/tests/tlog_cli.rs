//! `arakoon-admin tlog ...` run as a binary against real TLog directories.

use arakoon_node::tlog::{FsDir, LogDir, TlogConfig, TlogWriter, ENTRY_HEADER_BYTES};
use arakoon_node::value::{Update, Value};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

fn admin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arakoon-admin")).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn value(i: u64) -> Value {
    Value::client(vec![Update::Set {
        key: format!("key{i}").into_bytes(),
        value: format!("value{i}").into_bytes(),
    }])
}

/// Writes slots 0..n with `per_file` entries per file; returns the byte offset of each entry of
/// the first file.
fn write_log(dir: &Path, n: u64, per_file: u64) {
    let d: Arc<dyn LogDir> = Arc::new(FsDir::open(dir).unwrap());
    let cfg = TlogConfig { entries_per_file_max: per_file, file_bytes_max: 1 << 30 };
    let (mut w, _) = TlogWriter::open(d, cfg, "n0").unwrap();
    for i in 0..n {
        w.append(&[(i, &value(i))]).unwrap();
    }
    w.close().unwrap();
}

fn entry_len(i: u64) -> u64 {
    let mut buf = Vec::new();
    arakoon_node::tlog::encode_entry(&mut buf, i, &value(i), None);
    buf.len() as u64
}

#[test]
fn verify_reports_a_bit_flip_at_its_offset_and_i() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path(), 30, 10);
    let clean = admin(&["tlog", "verify", tmp.path().to_str().unwrap()]);
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));
    assert!(text(&clean).contains("ok: 3 files"), "{}", text(&clean));

    // Flip a bit inside the cmd of slot 14 (the fifth entry of 001.tlog).
    let offset: u64 = (10..14).map(entry_len).sum();
    let file = tmp.path().join("001.tlog");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[(offset + ENTRY_HEADER_BYTES as u64 + 6) as usize] ^= 0x10;
    std::fs::write(&file, &bytes).unwrap();

    let out = admin(&["tlog", "verify", tmp.path().to_str().unwrap()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(49), "{t}");
    assert!(t.contains("001.tlog"), "{t}");
    assert!(t.contains(&format!("checksum error at offset {offset} (i=14)")), "{t}");
    assert!(t.contains("repair:"), "{t}");

    let out = admin(&["tlog", "verify", "--json", tmp.path().to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["problems"][0]["kind"], "checksum");
    assert_eq!(json["problems"][0]["offset"], offset);
    assert_eq!(json["problems"][0]["i"], 14);
}

#[test]
fn truncate_cuts_a_torn_tail_only_with_consent() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path(), 5, 100);
    let file = tmp.path().join("000.tlog");
    let good = std::fs::read(&file).unwrap();
    let mut torn = good.clone();
    let mut extra = Vec::new();
    arakoon_node::tlog::encode_entry(&mut extra, 5, &value(5), None);
    torn.extend_from_slice(&extra[..extra.len() - 3]);
    std::fs::write(&file, &torn).unwrap();

    let out = admin(&["tlog", "verify", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(48), "{}", text(&out));
    assert!(text(&out).contains("arakoon-admin tlog truncate"), "{}", text(&out));

    // Without a terminal and without --yes, nothing changes.
    let out = admin(&["tlog", "truncate", file.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(std::fs::read(&file).unwrap(), torn);

    let out = admin(&["tlog", "truncate", "--yes", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains(&format!(
        "cut {} bytes at offset {}",
        extra.len() - 3,
        good.len()
    )));
    assert_eq!(std::fs::read(&file).unwrap(), good);
    let out = admin(&["tlog", "verify", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn list_dump_compress_and_uncompress() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    write_log(tmp.path(), 25, 10);
    let out = admin(&["tlog", "list", dir]);
    let t = text(&out);
    assert!(t.contains("000.tlog") && t.contains("002.tlog") && t.contains("closed:n0"), "{t}");

    let out = admin(&["tlog", "compress", dir]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(tmp.path().join("000.tlx").exists() && tmp.path().join("001.tlx").exists());
    assert!(tmp.path().join("002.tlog").exists(), "the last file is never compressed");

    let out = admin(&["tlog", "list", "--json", dir]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["files"][0]["archived"], true);
    assert_eq!(json["files"][1]["last_i"], 19);

    let out = admin(&["tlog", "dump", dir, "--from", "12", "--to", "13", "--values"]);
    let t = text(&out);
    assert!(t.contains("set key12=value12") && t.contains("set key13=value13"), "{t}");
    assert!(!t.contains("key11") && !t.contains("key14"), "{t}");

    let out = admin(&["tlog", "dump", "--json", tmp.path().join("001.tlx").to_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 10);

    let out = admin(&["tlog", "uncompress", dir]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(tmp.path().join("000.tlog").exists() && !tmp.path().join("000.tlx").exists());
    let out = admin(&["tlog", "verify", dir]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_missing_directory_is_a_one_line_error() {
    let out = admin(&["tlog", "verify", "/nonexistent/arakoon/tlogs"]);
    assert_eq!(out.status.code(), Some(43));
    let t = text(&out);
    assert_eq!(t.trim().lines().count(), 1, "{t}");
    assert!(t.contains("/nonexistent/arakoon/tlogs"), "{t}");
}

#[test]
fn sim_runs_seeds_and_exits_zero_when_every_check_holds() {
    let out = admin(&["sim", "--seeds", "0..3", "--duration", "5s"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("3 seeds, 0 failed") && t.contains("verdict: every check held"), "{t}");
    let out = admin(&["sim", "--seeds", "9..3"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("t.txt");
    let out = admin(&[
        "sim",
        "--seed",
        "4",
        "--duration",
        "3s",
        "--determinism",
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(std::fs::read_to_string(&trace).unwrap().lines().count() > 50);
}

/// A campaign split into shards on several workers gives the same runs as one serial campaign;
/// the shards' reports merge into it, and overlapping shards are refused.
#[test]
fn sim_shards_run_in_parallel_and_merge_into_the_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let path = |n: &str| tmp.path().join(n).to_str().unwrap().to_string();
    let run = |extra: &[&str], report: &str| {
        let mut args = vec!["sim", "--seeds", "0..6", "--duration", "4s", "--report"];
        let report = path(report);
        args.push(&report);
        args.extend_from_slice(extra);
        let out = admin(&args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        json
    };
    let whole = run(&["--jobs", "1"], "whole.json");
    let a = run(&["--jobs", "2", "--shard", "1/2"], "a.json");
    let b = run(&["--jobs", "2", "--shard", "2/2"], "b.json");
    assert_eq!(a["seeds"], serde_json::json!([0, 2, 4]));
    assert_eq!(b["seeds"], serde_json::json!([1, 3, 5]));
    let out =
        admin(&["sim", "merge", &path("a.json"), &path("b.json"), "--output", &path("m.json")]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("6 seeds, 0 failed"), "{t}");
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path("m.json")).unwrap()).unwrap();
    for field in ["seeds", "per_fault", "per_nodes", "ops_ok", "committed_slots", "simulated_ms"] {
        assert_eq!(merged[field], whole[field], "{field}");
    }
    let out = admin(&["sim", "merge", &path("a.json"), &path("whole.json")]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("the shards overlap"), "{}", text(&out));
    let out = admin(&["sim", "--seeds", "0..6", "--shard", "3/2"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}
