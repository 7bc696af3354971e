//! One real `arakoon` process on loopback: every client command's semantics and return codes,
//! the list-order rule on the wire, the keep-open/close rule, and bad input.

mod harness;

use arakoon_node::client::ClientError;
use arakoon_node::llio::Put;
use arakoon_node::protocol::client::{encode_prologue, Consistency, Request, MAGIC};
use arakoon_node::rc::Rc;
use arakoon_node::store::Range;
use arakoon_node::value::Update;
use harness::Cluster;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const C: Consistency = Consistency::Consistent;

fn failed(e: ClientError) -> Rc {
    e.rc().unwrap_or_else(|| panic!("expected a return code, got {e}"))
}

fn all(first: Option<&str>, last: Option<&str>) -> Range {
    Range {
        first: first.map(|s| s.as_bytes().to_vec()),
        first_inclusive: true,
        last: last.map(|s| s.as_bytes().to_vec()),
        last_inclusive: true,
        max: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_answers_as_the_protocol_table_says() {
    let mut cluster = harness::cluster(1, 1000, "max_value_size = 4096");
    cluster.start_all();
    cluster.wait_for_master(Duration::from_secs(10)).await;
    let mut c = cluster.client();

    assert!(c.ping("t").await.unwrap().starts_with("Arakoon 1."));
    assert_eq!(c.who_master().await.unwrap().as_deref(), Some("n0"));
    assert_eq!(c.version().await.unwrap().0, 1);

    // set / get / exists / delete
    c.set(b"a", b"1").await.unwrap();
    assert_eq!(c.get(b"a").await.unwrap(), b"1");
    assert!(c.exists(C, b"a").await.unwrap());
    assert!(!c.exists(C, b"zz").await.unwrap());
    assert_eq!(failed(c.get(b"zz").await.unwrap_err()), Rc::NotFound);
    c.delete(b"a").await.unwrap();
    assert_eq!(failed(c.delete(b"a").await.unwrap_err()), Rc::NotFound);

    // test_and_set and replace return the value before
    assert_eq!(c.test_and_set(b"t", None, Some(b"x")).await.unwrap(), None);
    assert_eq!(
        c.test_and_set(b"t", Some(b"wrong"), Some(b"y")).await.unwrap(),
        Some(b"x".to_vec())
    );
    assert_eq!(c.get(b"t").await.unwrap(), b"x", "a failed comparison changes nothing");
    assert_eq!(c.replace(b"t", Some(b"z")).await.unwrap(), Some(b"x".to_vec()));
    assert_eq!(c.replace(b"t", None).await.unwrap(), Some(b"z".to_vec()));
    assert_eq!(failed(c.get(b"t").await.unwrap_err()), Rc::NotFound);

    // confirm sets only if different
    c.confirm(b"cf", b"v").await.unwrap();
    c.confirm(b"cf", b"v").await.unwrap();
    assert_eq!(c.get(b"cf").await.unwrap(), b"v");

    // ranges, in ascending order for the caller (reversed on the wire: see below)
    for k in ["r1", "r2", "r3", "r4"] {
        c.set(k.as_bytes(), k.as_bytes()).await.unwrap();
    }
    let keys = c.range(C, all(Some("r1"), Some("r3"))).await.unwrap();
    assert_eq!(keys, [b"r1".to_vec(), b"r2".to_vec(), b"r3".to_vec()]);
    let exclusive = Range { first_inclusive: false, max: Some(2), ..all(Some("r1"), None) };
    assert_eq!(c.range(C, exclusive).await.unwrap(), [b"r2".to_vec(), b"r3".to_vec()]);
    let entries = c.range_entries(C, all(Some("r2"), Some("r3"))).await.unwrap();
    assert_eq!(entries, [(b"r2".to_vec(), b"r2".to_vec()), (b"r3".to_vec(), b"r3".to_vec())]);
    let rev = c.rev_range_entries(C, all(Some("r4"), Some("r3"))).await.unwrap();
    assert_eq!(rev, [(b"r4".to_vec(), b"r4".to_vec()), (b"r3".to_vec(), b"r3".to_vec())]);
    assert_eq!(c.prefix_keys(C, b"r", Some(2)).await.unwrap(), [b"r1".to_vec(), b"r2".to_vec()]);
    let got = c.multi_get(C, vec![b"r3".to_vec(), b"r1".to_vec()]).await.unwrap();
    assert_eq!(got, [b"r3".to_vec(), b"r1".to_vec()], "multi_get answers in request order");
    let missing = c.multi_get(C, vec![b"r1".to_vec(), b"nope".to_vec()]).await.unwrap_err();
    assert_eq!(missing, ClientError::Failed { rc: Rc::NotFound, message: b"nope".to_vec() });
    let opts = c.multi_get_option(C, vec![b"nope".to_vec(), b"r2".to_vec()]).await.unwrap();
    assert_eq!(opts, [None, Some(b"r2".to_vec())]);
    assert_eq!(c.get_key_count().await.unwrap(), 5);

    // asserts
    c.assert(C, b"r1", Some(b"r1")).await.unwrap();
    c.assert(C, b"nope", None).await.unwrap();
    assert_eq!(failed(c.assert(C, b"r1", Some(b"x")).await.unwrap_err()), Rc::AssertionFailed);
    c.assert_exists(C, b"r1").await.unwrap();
    assert_eq!(failed(c.assert_exists(C, b"nope").await.unwrap_err()), Rc::AssertionFailed);

    // sequences are atomic
    let seq = vec![
        Update::Set { key: b"s1".to_vec(), value: b"1".to_vec() },
        Update::Delete { key: b"s-absent".to_vec() },
    ];
    assert_eq!(failed(c.sequence(seq, false).await.unwrap_err()), Rc::NotFound);
    assert_eq!(failed(c.get(b"s1").await.unwrap_err()), Rc::NotFound, "nothing of it applied");
    let seq = vec![
        Update::Set { key: b"s1".to_vec(), value: b"1".to_vec() },
        Update::Assert { key: b"r1".to_vec(), value: Some(b"r1".to_vec()) },
    ];
    c.sequence(seq.clone(), false).await.unwrap();
    c.sequence(seq, true).await.unwrap();
    assert_eq!(c.get(b"s1").await.unwrap(), b"1");

    // delete_prefix counts, user functions, nop
    assert_eq!(c.delete_prefix(b"r").await.unwrap(), 4);
    assert_eq!(c.user_function("arakoon.incr", Some(b"ctr")).await.unwrap(), Some(b"1".to_vec()));
    let unknown = c.user_function("no.such", None).await.unwrap_err();
    assert_eq!(failed(unknown), Rc::BadInput);
    c.nop().await.unwrap();

    // the local commands
    assert!(c.expect_progress_possible().await.unwrap() || cluster.size() == 1);
    assert_eq!(c.current_state().await.unwrap(), "Stable_master");
    // node_state is typed: the master says so, with its lease, its name and what it applied.
    let state = c.node_state().await.unwrap();
    assert_eq!(state.role, arakoon_node::consensus::RoleName::Master, "{state}");
    assert!(state.lease_valid, "{state}");
    assert_eq!(state.master.as_deref(), Some(state.name.as_str()), "{state}");
    assert!(state.applied.is_some() && state.committed >= state.applied, "{state}");
    assert!(!c.statistics().await.unwrap().is_empty());
    let Consistency::AtLeast(txid) = c.get_txid().await.unwrap() else { panic!("no txid") };
    assert_eq!(c.get_with(Consistency::AtLeast(txid), b"s1").await.unwrap(), b"1");
    let ahead = c.get_with(Consistency::AtLeast(txid + 1000), b"s1").await.unwrap_err();
    assert_eq!(failed(ahead), Rc::InconsistentRead);
    assert_eq!(c.get_with(Consistency::NoGuarantees, b"s1").await.unwrap(), b"1");
    c.flush_store().await.unwrap();
    assert_eq!(failed(c.drop_master().await.unwrap_err()), Rc::NotSupported);

    // limits: a value at or above max_value_size is Arakoon's 0xff "unknown failure" (the
    // connection closes; the client connects again for the next request)
    let big = vec![7u8; 4096];
    assert_eq!(failed(c.set(b"big", &big).await.unwrap_err()), Rc::UnknownFailure);
    c.set(b"after-big", b"ok").await.unwrap();

    // A clean stop: exit code 0, and everything is there after a restart.
    let status = cluster.stop(0).expect("stops on SIGTERM");
    assert!(status.success(), "{status:?}\n{}", cluster.log(0));
    let dir = arakoon_node::tlog::FsDir::open(&cluster.config.nodes[0].tlog_dir).unwrap();
    let validation = arakoon_node::tlog::validate(&dir).unwrap();
    assert!(validation.closed_cleanly(), "SIGTERM leaves the TLog with its closed marker");
    cluster.start(0);
    cluster.wait_for_master(Duration::from_secs(10)).await;
    let mut c = cluster.client();
    assert_eq!(c.get(b"after-big").await.unwrap(), b"ok");
    assert_eq!(c.get(b"ctr").await.unwrap(), b"1");
}

/// A raw connection that has sent its prologue.
fn raw(cluster: &Cluster, cluster_id: &str) -> TcpStream {
    let mut s = TcpStream::connect(cluster.client_addr(0)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut p = Vec::new();
    encode_prologue(cluster_id, &mut p);
    s.write_all(&p).unwrap();
    s
}

fn read_rc(s: &mut TcpStream) -> u32 {
    let mut b = [0u8; 4];
    s.read_exact(&mut b).unwrap();
    u32::from_le_bytes(b)
}

fn read_string(s: &mut TcpStream) -> Vec<u8> {
    let mut b = [0u8; 4];
    s.read_exact(&mut b).unwrap();
    let mut v = vec![0; u32::from_le_bytes(b) as usize];
    s.read_exact(&mut v).unwrap();
    v
}

fn is_closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_order_keep_open_rules_and_bad_input() {
    let mut cluster = harness::cluster(1, 1000, "max_connections = 6\nclient_stall_ms = 300");
    cluster.start_all();
    cluster.wait_for_master(Duration::from_secs(10)).await;
    let mut c = cluster.client();
    for k in ["a", "b", "c"] {
        c.set(k.as_bytes(), b"v").await.unwrap();
    }
    drop(c);

    // range_entries over a, b, c: the wire carries c, b, a.
    let mut s = raw(&cluster, "itest");
    s.write_all(&Request::RangeEntries { c: C, range: all(None, None) }.to_bytes()).unwrap();
    assert_eq!(read_rc(&mut s), 0);
    let mut count = [0u8; 4];
    s.read_exact(&mut count).unwrap();
    assert_eq!(u32::from_le_bytes(count), 3);
    let order: Vec<Vec<u8>> = (0..3)
        .map(|_| {
            let k = read_string(&mut s);
            read_string(&mut s);
            k
        })
        .collect();
    assert_eq!(order, [b"c".to_vec(), b"b".to_vec(), b"a".to_vec()]);

    // not_found keeps the connection open ...
    s.write_all(&Request::Get { c: C, key: b"zz".to_vec() }.to_bytes()).unwrap();
    assert_eq!(read_rc(&mut s), Rc::NotFound.code());
    // Arakoon's store raises Not_found and its handler answers that name, not the key.
    assert_eq!(read_string(&mut s), b"Not_found");
    s.write_all(&Request::Get { c: C, key: b"a".to_vec() }.to_bytes()).unwrap();
    assert_eq!(read_rc(&mut s), 0);
    assert_eq!(read_string(&mut s), b"v");
    // ... an unknown command gets 0x05 "<hex>: command not found", then a close.
    s.write_all(&(MAGIC | 0x77).to_le_bytes()).unwrap();
    assert_eq!(read_rc(&mut s), Rc::NotFound.code());
    assert_eq!(read_string(&mut s), b"77: command not found");
    assert!(is_closed(&mut s));

    // A command word without the magic: the bare 0x01 and a close.
    let mut s = raw(&cluster, "itest");
    s.write_all(&0x0000_0008u32.to_le_bytes()).unwrap();
    assert_eq!(read_rc(&mut s), Rc::NoMagic.code());
    assert!(is_closed(&mut s));

    // A wrong cluster id: closed without a word.
    let mut s = raw(&cluster, "another-cluster");
    assert!(is_closed(&mut s));

    // A length beyond the limit: refused from the prefix, before the bytes arrive.
    let mut s = raw(&cluster, "itest");
    let mut req = Vec::new();
    req.put_i32((MAGIC | 0x09) as i32);
    req.put_bytes(b"k");
    req.put_i32(i32::MAX);
    s.write_all(&req).unwrap();
    assert_eq!(read_rc(&mut s), Rc::BadInput.code());
    assert!(String::from_utf8_lossy(&read_string(&mut s)).contains("exceeds"));
    assert!(is_closed(&mut s));

    // Half a request, then silence: dropped after client_stall_ms; others are served meanwhile.
    let mut stalled = raw(&cluster, "itest");
    let half = Request::Set { key: b"k".to_vec(), value: b"value".to_vec() }.to_bytes();
    stalled.write_all(&half[..half.len() - 3]).unwrap();
    let started = Instant::now();
    let mut other = cluster.client();
    assert_eq!(other.get(b"a").await.unwrap(), b"v");
    assert!(is_closed(&mut stalled));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "stalled client held for {:?}",
        started.elapsed()
    );
    drop(other);

    // A flood of connections: beyond max_connections each gets 0xfe and a close; the node
    // goes on serving once they are gone.
    // (Connections closed just before may take a moment to be released: count, don't race.)
    let mut flood = Vec::new();
    let mut refused = 0;
    for _ in 0..10 {
        let mut s = TcpStream::connect(cluster.client_addr(0)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let mut b = [0u8; 4];
        match s.read_exact(&mut b) {
            Ok(()) => {
                assert_eq!(u32::from_le_bytes(b), Rc::MaxConnections.code());
                let msg = String::from_utf8(read_string(&mut s)).unwrap();
                assert!(msg.contains("at most 6"), "{msg}");
                assert!(is_closed(&mut s));
                refused += 1;
            }
            Err(_) => flood.push(s), // accepted: the node waits for a prologue
        }
    }
    assert!(flood.len() <= 6, "{} connections accepted beyond the limit of 6", flood.len());
    assert!(refused >= 4, "only {refused} of 10 refused");
    drop(flood);
    std::thread::sleep(Duration::from_millis(200));
    let mut c = cluster.client();
    assert_eq!(c.get(b"b").await.unwrap(), b"v");
    cluster.stop(0);
}

#[test]
fn a_bad_configuration_names_the_section_and_key_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("bad.ini");
    std::fs::write(
        &ini,
        "[global]\ncluster = n0\ncluster_id = x\nlease_period = soon\n[n0]\nip = 127.0.0.1\n\
         client_port = 1\nmessaging_port = 2\nhome = /tmp/x\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arakoon"))
        .args(["--node", "n0", "-config"])
        .arg(&ini)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("[global] lease_period"), "{stderr}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arakoon"))
        .args(["--node", "n9", "-config"])
        .arg(&ini)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let help =
        std::process::Command::new(env!("CARGO_BIN_EXE_arakoon")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("-catchup-only") && help.contains("EXAMPLE"), "{help}");
}
