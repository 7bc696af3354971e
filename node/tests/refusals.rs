//! What cannot work is refused by real `arakoon` processes (issue 15, item 6): each bad
//! configuration stops the node at start with exit code 1 and a message naming the file, the
//! section, the key and why; `--help` explains the exit codes the node returns; a client
//! sequence carrying a MasterSet or an AdminSet is refused and changes nothing.

mod harness;

use arakoon_node::exit::NodeExit;
use arakoon_node::rc::Rc;
use arakoon_node::value::Update;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_arakoon");

/// A valid 3-node configuration whose `[global]` gets `global` and whose n1 section gets
/// `n1` appended; ports are never bound (every case is refused before).
fn config(global: &str, n1: &str, tail: &str) -> String {
    let mut s = format!("[global]\ncluster = n0, n1, n2\ncluster_id = itest\n{global}\n");
    for k in 0..3 {
        s += &format!(
            "\n[n{k}]\nip = 127.0.0.1\nclient_port = {}\nmessaging_port = {}\nhome = /tmp/x/n{k}\n",
            7100 + k,
            7200 + k
        );
        if k == 1 {
            s += n1;
            s += "\n";
        }
    }
    s + tail
}

/// Starts n0 on `text`; returns its exit code and stderr.
fn start(dir: &Path, text: &str) -> (Option<i32>, String) {
    let path = dir.join("cluster.ini");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BINARY)
        .args(["--node", "n0", "-config"])
        .arg(&path)
        .output()
        .expect("runs arakoon");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn configurations_that_cannot_work_stop_the_node_with_file_section_key_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.ini").display().to_string();
    let long_id = "c".repeat(129);
    let cases = [
        (config("quorum = 1", "", ""), "[global] quorum: 1 is below a majority of 3 nodes"),
        (
            config("lease_period = 2\nlease_period = 3", "", ""),
            "[global] lease_period: is given twice",
        ),
        (config("", "", "\n[n2]\nip = 127.0.0.1\n"), "[n2]: the section appears twice"),
        (config("", "client_port = 7100", ""), "[n1] client_port: is given twice"),
        (
            config("", "", "").replace("client_port = 7101", "client_port = 7100"),
            "[n1] client_port: 127.0.0.1:7100 is already [n0] client_port",
        ),
        (
            config("max_value_size = 4096\nmax_buffer_size = 2048", "", ""),
            "[global] max_value_size: 4096 is above max_buffer_size (2048)",
        ),
        (
            config("", "", "").replace("cluster_id = itest", &format!("cluster_id = {long_id}")),
            "[global] cluster_id: is 129 bytes long; at most 128",
        ),
        (
            config("cluster_secret_file = /nonexistent/secret", "", ""),
            "/nonexistent/secret: cannot read the cluster secret",
        ),
    ];
    for (text, expected) in cases {
        let (code, stderr) = start(dir.path(), &text);
        assert_eq!(code, Some(NodeExit::Usage.code()), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}\nshould contain\n{expected}");
        if !expected.starts_with('/') {
            assert!(stderr.contains(&format!("{file}: {expected}")), "{stderr} names the file");
        }
    }
    // A short secret is refused with its bounds.
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "short\n").unwrap();
    let (code, stderr) =
        start(dir.path(), &config(&format!("cluster_secret_file = {}", secret.display()), "", ""));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("is 5 bytes") && stderr.contains("16 to 4096"), "{stderr}");
}

#[test]
fn help_explains_the_exit_codes_the_node_returns() {
    let out = Command::new(BINARY).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for e in NodeExit::ALL {
        assert!(help.contains(&format!("{:>3} {}", e.code(), e.meaning())), "{e:?} in\n{help}");
    }
    // The two texts that were wrong (issue 15).
    assert!(help.contains("49 TLog checksum, length or sequence error"), "{help}");
    assert!(help.contains("50 an expected TLog file is missing"), "{help}");
    assert!(!help.contains("out of order") && !help.contains("bad ballot record"), "{help}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_sequences_may_not_carry_master_set_or_admin_set() {
    let mut cluster = harness::cluster(1, 1000, "");
    cluster.start_all();
    cluster.wait_for_master(Duration::from_secs(10)).await;
    let mut c = cluster.client();
    let before = c.who_master().await.unwrap();
    let forbidden = [
        Update::MasterSet { master: "intruder".into(), lease_start: 0 },
        Update::AdminSet { key: b"*i".to_vec(), value: Some(b"1".to_vec()) },
        Update::Sequence(vec![
            Update::Nop,
            Update::MasterSet { master: "x".into(), lease_start: 0 },
        ]),
    ];
    for u in forbidden {
        let name = u.node_only_part().unwrap().name();
        let seq = vec![Update::Set { key: b"k".to_vec(), value: b"v".to_vec() }, u];
        let e = cluster.client().sequence(seq, false).await.unwrap_err();
        assert_eq!(e.rc(), Some(Rc::BadInput), "{e}");
        assert!(e.to_string().contains(name), "{e}");
    }
    // Nothing of them happened.
    assert!(c.get(b"k").await.is_err(), "the sequence was not applied");
    assert_eq!(c.who_master().await.unwrap(), before);
    let allowed = vec![Update::Set { key: b"k".to_vec(), value: b"v".to_vec() }];
    c.sequence(allowed, true).await.unwrap();
    assert_eq!(c.get(b"k").await.unwrap(), b"v");
}
