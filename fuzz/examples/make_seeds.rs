//! Writes the seed corpus (fuzz/corpus/TARGET/) from real encodings: requests and peer
//! messages of every kind, TLog directories written by the TLog writer (one sealed and archived
//! as .tlx), the configurations, drills and histories of the repository. Run once after a
//! format changes: `cargo run --example make_seeds` in fuzz/ (no instrumentation needed).

// Linked for the coverage callbacks the instrumented build inserts (see the entry point below).
extern crate libfuzzer_sys;

use arakoon_node::consensus::{Msg, NakReason};
use arakoon_node::protocol::client::{encode_prologue, Consistency, Request};
use arakoon_node::protocol::peer;
use arakoon_node::server::frame::{Hello, HelloFrame};
use arakoon_node::tlog::{archive, BallotRecord, MemDir, TlogConfig, TlogWriter};
use arakoon_node::value::{Update, Value};
use std::path::Path;
use std::sync::Arc;

/// The fuzz build links libFuzzer into every binary of this crate; this example is no fuzz
/// target, so it gives the entry point libFuzzer's objects expect, which is never called.
#[no_mangle]
pub extern "C" fn LLVMFuzzerTestOneInput(_data: *const u8, _size: usize) -> i32 {
    0
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn updates() -> Vec<Update> {
    vec![
        Update::Set { key: b"k".to_vec(), value: b"v".to_vec() },
        Update::Delete { key: b"k".to_vec() },
        Update::TestAndSet { key: b"k".to_vec(), expected: None, wanted: Some(b"w".to_vec()) },
        Update::Assert { key: b"k".to_vec(), value: Some(b"v".to_vec()) },
        Update::DeletePrefix { prefix: b"p".to_vec() },
        Update::Nop,
    ]
}

fn main() {
    // Client requests, after a prologue.
    let mut prologue = Vec::new();
    encode_prologue("arakoon", &mut prologue);
    let requests = vec![
        Request::WhoMaster,
        Request::Get { c: Consistency::Consistent, key: b"k".to_vec() },
        Request::Get { c: Consistency::AtLeast(7), key: b"k".to_vec() },
        Request::Set { key: b"k".to_vec(), value: b"v".to_vec() },
        Request::Delete { key: b"k".to_vec() },
        Request::Sequence { updates: updates(), synced: false },
        Request::Sequence { updates: vec![Update::Sequence(updates())], synced: true },
        Request::Statistics,
        Request::Version,
        Request::GetTxid,
        Request::LastEntries { from_i: 0, to_i: 10 },
        Request::DropMaster,
    ];
    for (k, r) in requests.iter().enumerate() {
        write("client_request", &format!("request-{k}"), &r.to_bytes());
        let mut with = prologue.clone();
        with.extend(r.to_bytes());
        write("client_request", &format!("prologue-{k}"), &with);
    }
    // Replies: a kind byte, then an ok or failed reply.
    for kind in 0u8..15 {
        let mut ok = vec![kind];
        ok.extend(0u32.to_le_bytes());
        ok.extend(1u32.to_le_bytes());
        ok.extend(b"v");
        write("client_reply", &format!("ok-{kind}"), &ok);
    }
    let mut failed = vec![0u8];
    failed.extend(5u32.to_le_bytes());
    failed.extend(9u32.to_le_bytes());
    failed.extend(b"not found");
    write("client_reply", "failed", &failed);

    // Peer messages and hellos.
    let v = Value::client(updates());
    let msgs = vec![
        Msg::Prepare { n: 7, last_i: Some(41) },
        Msg::Promise { n: 7, last: Some((4, 3, v.clone())), prev_hash: Some(9) },
        Msg::Nak { n: 7, reason: NakReason::LeaseHeld, promised: 9, last_i: Some(2) },
        Msg::Accept { n: 7, i: 5, value: v.clone(), prev_hash: Some(3) },
        Msg::Accept {
            n: 7,
            i: 0,
            value: Value::MasterSet { master: "n0".into(), lease_start: 0 },
            prev_hash: None,
        },
        Msg::Accepted { n: 7, i: 5 },
        Msg::Commit { n: 7, i: 5, hash: 12345 },
        Msg::Hold { n: 7, t: 1_234_567 },
        Msg::Held { n: 7, t: 1_234_567 },
    ];
    for (k, m) in msgs.iter().enumerate() {
        write("peer_message", &format!("msg-{k}"), &peer::encode(m));
    }
    let hello = Hello { cluster_id: "arakoon".into(), node: "n0".into() };
    for (scheme, nonce) in [(0, vec![]), (1, vec![7u8; 16])] {
        let frame = HelloFrame { hello: hello.clone(), scheme, nonce };
        write("peer_message", &format!("hello-{scheme}"), &frame.encode());
    }

    // TLog: a directory written by the writer, two files, the first archived.
    let dir = Arc::new(MemDir::new("seed"));
    let config = TlogConfig { entries_per_file_max: 4, file_bytes_max: 1 << 20 };
    {
        let (mut w, _) = TlogWriter::open(dir.clone(), config, "n0").unwrap();
        let master = Value::MasterSet { master: "n0".into(), lease_start: 0 };
        let values: Vec<Value> =
            (0..7).map(|k| if k % 3 == 0 { master.clone() } else { v.clone() }).collect();
        let refs: Vec<(u64, &Value)> =
            values.iter().enumerate().map(|(i, v)| (i as u64, v)).collect();
        w.append(&refs).unwrap();
    }
    let tlog0 = dir.contents("000.tlog").unwrap_or_default();
    let tlog1 = dir.contents("001.tlog").unwrap_or_default();
    BallotRecord { promised: 3, accepted_n: 2, accepted_from: 0, learner: false }
        .store(dir.as_ref())
        .unwrap();
    let ballot = dir.contents("ballot").unwrap_or_default();
    write("tlog_entry", "file-0", &tlog0);
    write("tlog_entry", "file-1", &tlog1);
    let _ = archive::compress(dir.as_ref(), 0);
    let tlx0 = dir.contents("000.tlx").unwrap_or_default();
    const SEP: &[u8] = b"\xff\xfe\xfd\xfc";
    // layout bits: 000.tlog, 001.tlog, 000.tlx, 001.tlx, 002.tlog, ballot.
    let join = |layout: u8, parts: &[&[u8]]| {
        let mut out = vec![layout];
        for (k, p) in parts.iter().enumerate() {
            if k > 0 {
                out.extend_from_slice(SEP);
            }
            out.extend_from_slice(p);
        }
        out
    };
    write("tlog_files", "two-files", &join(0b000011, &[&tlog0, &tlog1]));
    write("tlog_files", "archived", &join(0b000110, &[&tlog1, &tlx0]));
    write("tlog_files", "with-ballot", &join(0b100011, &[&tlog0, &tlog1, &ballot]));

    // Text inputs from the repository.
    let ini = "[global]\ncluster = n0, n1, n2\ncluster_id = demo\nlease_period = 2\nquorum = 2\n\
               cluster_secret_file = /etc/arakoon/secret\n\n\
               [n0]\nip = 127.0.0.1\nclient_port = 4000\nmessaging_port = 4010\nhome = /h/n0\n\n\
               [n1]\nip = 127.0.0.1\nclient_port = 4001\nmessaging_port = 4011\nhome = /h/n1\n\
               log_level = debug\ntlog_dir = /t/n1\n\n\
               [n2]\nip = 127.0.0.1\nclient_port = 4002\nmessaging_port = 4012\nhome = /h/n2\n";
    write("config_ini", "three-nodes.ini", ini.as_bytes());
    for entry in std::fs::read_dir("../scenarios").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") {
            write("drill_yaml", &name, &std::fs::read(entry.path()).unwrap());
        }
    }
    seed_histories(Path::new("../../shared/histories"), 0);
}

/// Small history files (at most 8 KiB, at most 24 of them) from the shared histories.
fn seed_histories(dir: &Path, mut taken: usize) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return taken };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        if taken >= 24 {
            break;
        }
        let path = e.path();
        if path.is_dir() {
            taken = seed_histories(&path, taken);
        } else if std::fs::metadata(&path).map(|m| m.len() <= 8192).unwrap_or(false) {
            let name = path.to_string_lossy().replace(['/', '.'], "_");
            write("history", &name, &std::fs::read(&path).unwrap());
            taken += 1;
        }
    }
    taken
}
