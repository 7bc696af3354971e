//! `arakoon-admin store restore` on real `arakoon` processes: a file saved by `get_db` from a
//! slave restores a wiped node, which then catches up the rest from its peers and holds every
//! key; a damaged file, a file of another cluster and a node with files (without --yes) are
//! refused with what to do.

mod common;

use arakoon_node::protocol::client::{Consistency, Payload, Reply, Request};
use common::{admin, expect_code, text};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

fn key(k: u32) -> Vec<u8> {
    format!("key{k:04}").into_bytes()
}

fn value(k: u32) -> Vec<u8> {
    format!("value-{k}-{}", "x".repeat((k % 50) as usize)).into_bytes()
}

fn i32le(n: u32) -> [u8; 4] {
    n.to_le_bytes()
}

/// Arakoon's `get_db` by hand: prologue (magic, version 1, cluster id), command 0x1b; the
/// answer is rc 0, an int64 size and the file, which is saved to `to`.
fn get_db(addr: SocketAddr, cluster_id: &str, to: &Path) {
    let mut t = TcpStream::connect(addr).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut out = Vec::new();
    out.extend_from_slice(&i32le(0xb1ff_0000));
    out.extend_from_slice(&i32le(1));
    out.extend_from_slice(&i32le(cluster_id.len() as u32));
    out.extend_from_slice(cluster_id.as_bytes());
    out.extend_from_slice(&i32le(0xb1ff_0000 | 0x1b));
    t.write_all(&out).unwrap();
    let mut rc = [0u8; 4];
    t.read_exact(&mut rc).unwrap();
    assert_eq!(u32::from_le_bytes(rc), 0, "get_db refused");
    let mut size = [0u8; 8];
    t.read_exact(&mut size).unwrap();
    let size = i64::from_le_bytes(size);
    assert!(size > 0 && size < 64 << 20, "size {size}");
    let mut file = vec![0u8; size as usize];
    t.read_exact(&mut file).unwrap();
    std::fs::write(to, file).unwrap();
}

#[test]
fn a_wiped_node_restored_from_a_get_db_file_catches_up_and_holds_every_key() {
    let mut cluster = common::cluster(3, "tlog_max_entries = 100");
    cluster.start_all();
    let rt = common::runtime();
    let config = cluster.config_arg().to_string();
    let master = rt.block_on(cluster.wait_for_master(Duration::from_secs(30)));
    let (slave, restored) = ((master + 1) % 3, (master + 2) % 3);
    // 250 keys before the download, 100 after: the restored node must catch those up.
    let write = |range: std::ops::Range<u32>| {
        rt.block_on(async {
            cluster.wait_for_master(Duration::from_secs(30)).await;
            let mut c = cluster.client();
            for k in range {
                c.set(&key(k), &value(k)).await.unwrap();
            }
        })
    };
    write(0..250);
    let file = cluster.dir.path().join("saved.db");
    let node = cluster.config.nodes[slave].clone();
    get_db(SocketAddr::new(node.ip, node.client_port), &cluster.config.cluster_id, &file);
    write(250..350);

    let name = format!("n{restored}");
    let file_arg = file.display().to_string();
    cluster.stop(restored);
    // The stopped node still has its files: refused without --yes.
    let out = admin(&["store", "restore", &file_arg, "--node", &name, "-config", &config]);
    expect_code(&out, 3);
    assert!(text(&out).contains("pass --yes"), "{}", text(&out));
    // A cut file and a file with bytes after its end are named as such, and change nothing.
    let bytes = std::fs::read(&file).unwrap();
    let cut = cluster.dir.path().join("cut.db");
    std::fs::write(&cut, &bytes[..bytes.len() - 5]).unwrap();
    let cut_arg = cut.display().to_string();
    let out = admin(&["store", "restore", &cut_arg, "--node", &name, "-config", &config, "--yes"]);
    expect_code(&out, 45);
    assert!(text(&out).contains("cut download"), "{}", text(&out));
    let mut longer = bytes.clone();
    longer.push(0);
    std::fs::write(&cut, &longer).unwrap();
    let out = admin(&["store", "restore", &cut_arg, "--node", &name, "-config", &config, "--yes"]);
    expect_code(&out, 45);
    assert!(text(&out).contains("after the end frame"), "{}", text(&out));
    // Another cluster's file: the header's cluster id is checked.
    let mut other = Vec::new();
    other.extend_from_slice(&i32le(5));
    other.extend_from_slice(b"other");
    other.extend_from_slice(&bytes[4 + cluster.config.cluster_id.len()..]);
    std::fs::write(&cut, &other).unwrap();
    let out = admin(&["store", "restore", &cut_arg, "--node", &name, "-config", &config, "--yes"]);
    expect_code(&out, 45);
    assert!(text(&out).contains("cluster \"other\""), "{}", text(&out));

    // Wiped, restored, restarted.
    std::fs::remove_dir_all(&cluster.config.nodes[restored].home).unwrap();
    let out = admin(&["store", "restore", &file_arg, "--node", &name, "-config", &config]);
    expect_code(&out, 0);
    assert!(text(&out).contains("restored"), "{}", text(&out));
    assert!(cluster.config.nodes[restored].tlog_dir.join("head.db").is_dir());
    cluster.start(restored);
    rt.block_on(async {
        let c = cluster.client();
        let get = |k: u32| Request::Get { c: Consistency::NoGuarantees, key: key(k) };
        let deadline = Instant::now() + Duration::from_secs(30);
        // The last key was written after the download: the node caught it up.
        loop {
            if let Ok(Reply::Ok(_)) = c.ask(restored, &get(349)).await {
                break;
            }
            assert!(Instant::now() < deadline, "never caught up\n{}", cluster.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for k in 0..350 {
            let reply = c.ask(restored, &get(k)).await.unwrap();
            assert_eq!(reply, Reply::Ok(Payload::String(value(k))), "key{k:04}");
        }
    });
}
