//! `arakoon-admin rebuild`, `store dump` and `store verify` run as a binary against real stores:
//! one written by a real 1-node `arakoon`, and hand-made ones that disagree with their TLog.

mod common;

use arakoon_node::store::{SledStore, Store};
use arakoon_node::tlog::{FsDir, LogDir, TlogConfig, TlogWriter};
use arakoon_node::value::{Update, Value};
use common::{admin, expect_code, stdout, text};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn rebuild_gives_a_store_whose_dump_equals_the_original() {
    let mut cluster = common::cluster(1, "");
    cluster.start(0);
    common::runtime().block_on(async {
        cluster.wait_for_master(Duration::from_secs(20)).await;
        let mut c = cluster.client();
        for k in 0..300u32 {
            c.set(format!("key{k:04}").as_bytes(), &k.to_le_bytes()).await.unwrap();
        }
        for k in (0..300u32).step_by(7) {
            c.delete(format!("key{k:04}").as_bytes()).await.unwrap();
        }
        c.delete_prefix(b"key02").await.unwrap();
        let seq = vec![
            Update::Set { key: b"bin\x00key".to_vec(), value: vec![0, 255, b'\\'] },
            Update::Replace { key: b"key0001".to_vec(), value: Some(b"replaced".to_vec()) },
        ];
        c.sequence(seq, false).await.unwrap();
    });
    cluster.stop(0);
    let config = cluster.config_arg().to_string();
    let files = ["--node", "n0", "-config", &config];

    let before = admin(&[&["store", "dump", "--json"][..], &files].concat());
    expect_code(&before, 0);
    let json: serde_json::Value = serde_json::from_slice(&before.stdout).unwrap();
    assert_eq!(json["cluster_id"], "admintest");
    assert_eq!(json["key_count"], json["entries"].as_array().unwrap().len());
    assert!(stdout(&before).contains(r#""key":"bin\\x00key","value":"\\x00\\xff\\x5c""#));

    let verify = admin(&[&["store", "verify"][..], &files].concat());
    expect_code(&verify, 0);
    assert!(text(&verify).contains("ok: the store agrees"), "{}", text(&verify));

    // Without a terminal and without --yes, nothing is replaced.
    let declined = admin(&[&["rebuild"][..], &files].concat());
    assert_eq!(declined.status.code(), Some(1), "{}", text(&declined));
    assert!(text(&declined).contains("will replace the store"), "{}", text(&declined));

    let rebuilt = admin(&[&["rebuild", "--yes"][..], &files].concat());
    expect_code(&rebuilt, 0);
    assert!(text(&rebuilt).contains("updates/s"), "{}", text(&rebuilt));
    let after = admin(&[&["store", "dump", "--json"][..], &files].concat());
    expect_code(&after, 0);
    assert_eq!(stdout(&after), stdout(&before), "the rebuilt store differs");
    let home = &cluster.config.nodes[0].home;
    let leftovers: Vec<_> = std::fs::read_dir(home)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("store."))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");

    // The node starts on the rebuilt store and serves what was written.
    cluster.start(0);
    common::runtime().block_on(async {
        cluster.wait_for_master(Duration::from_secs(20)).await;
        let mut c = cluster.client();
        assert_eq!(c.get(b"key0001").await.unwrap(), b"replaced");
        assert_eq!(c.get(b"bin\x00key").await.unwrap(), [0, 255, b'\\']);
    });
}

fn value(i: u64) -> Value {
    Value::client(vec![Update::Set {
        key: format!("key{i}").into_bytes(),
        value: format!("value{i}").into_bytes(),
    }])
}

/// A TLog of slots 0..n.
fn write_log(dir: &Path, n: u64) {
    let d: Arc<dyn LogDir> = Arc::new(FsDir::create_all(dir).unwrap());
    let cfg = TlogConfig { entries_per_file_max: 1000, file_bytes_max: 1 << 30 };
    let (mut w, _) = TlogWriter::open(d, cfg, "n0").unwrap();
    for i in 0..n {
        w.append(&[(i, &value(i))]).unwrap();
    }
    w.close().unwrap();
}

/// A store of `cluster` that applied slots 0..n.
fn write_store(dir: &Path, cluster: &str, n: u64) {
    let mut store = SledStore::open(dir, cluster).unwrap();
    for i in 0..n {
        store.apply(i, &value(i)).unwrap();
    }
    store.flush().unwrap();
}

fn verify(root: &Path, store: &str, extra: &[&str]) -> std::process::Output {
    let tlogs = root.join("tlogs");
    let store = root.join(store);
    let args = [
        "store",
        "verify",
        "--tlog-dir",
        tlogs.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--cluster-id",
        "c",
    ];
    admin(&[&args[..], extra].concat())
}

#[test]
fn verify_catches_a_store_behind_or_ahead_of_its_tlog_or_of_another_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(&tmp.path().join("tlogs"), 10); // slots 0..=9: committed up to 8
    write_store(&tmp.path().join("level"), "c", 9);
    write_store(&tmp.path().join("behind"), "c", 5);
    write_store(&tmp.path().join("ahead"), "c", 12);
    write_store(&tmp.path().join("other"), "other", 9);

    let out = verify(tmp.path(), "level", &[]);
    expect_code(&out, 0);
    // In a 1-node cluster the last slot is committed too, so the same store is one behind.
    let out = verify(tmp.path(), "level", &["--last-committed"]);
    expect_code(&out, 42);

    let out = verify(tmp.path(), "behind", &[]);
    expect_code(&out, 42);
    let t = text(&out);
    assert!(t.contains("applied i=4 but the TLog has committed up to i=8"), "{t}");
    assert!(t.contains("repair: harmless") && t.contains("arakoon-admin rebuild"), "{t}");

    let out = verify(tmp.path(), "ahead", &["--json"]);
    expect_code(&out, 40);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["problems"][0]["kind"], "store_ahead");
    assert_eq!(json["applied"], 11);
    assert_eq!(json["tlog_last_i"], 9);

    let out = verify(tmp.path(), "other", &[]);
    expect_code(&out, 45);
    let t = text(&out);
    assert!(t.contains("belongs to cluster \"other\"") && t.contains("\"c\""), "{t}");

    // Rebuilding the store of another cluster fixes it.
    let rebuild = [
        "rebuild",
        "--yes",
        "--tlog-dir",
        tmp.path().join("tlogs").to_str().unwrap(),
        "--store",
        tmp.path().join("other").to_str().unwrap(),
        "--cluster-id",
        "c",
    ]
    .map(String::from);
    let out = admin(&rebuild.iter().map(String::as_str).collect::<Vec<_>>());
    expect_code(&out, 0);
    expect_code(&verify(tmp.path(), "other", &[]), 0);
}

/// A one-line message on stderr and the expected exit code.
#[track_caller]
fn one_line_error(args: &[&str], code: i32, mentions: &str) {
    let out = admin(args);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {t}");
    assert_eq!(t.trim().lines().count(), 1, "{args:?}: {t}");
    assert!(t.contains(mentions), "{args:?} should mention {mentions}: {t}");
    assert!(!t.contains("panicked"), "{t}");
}

#[test]
fn bad_input_is_a_one_line_error_never_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nothing");
    let missing = missing.to_str().unwrap();
    one_line_error(&["store", "dump", "--store", missing, "--cluster-id", "c"], 45, missing);
    one_line_error(
        &["rebuild", "--tlog-dir", missing, "--store", missing, "--cluster-id", "c"],
        43,
        missing,
    );
    let cluster = common::cluster(3, "");
    let config = cluster.config_arg();
    one_line_error(&["store", "dump", "--node", "n9", "-config", config], 3, "n0, n1, n2");
    one_line_error(&["store", "verify", "--node", "n0", "-config", missing], 3, missing);
    // n0 never ran: no store yet.
    one_line_error(&["store", "dump", "--node", "n0", "-config", config], 45, "no store here");
    one_line_error(&["store", "verify", "--store", missing], 2, "--node NAME --config FILE");
}
