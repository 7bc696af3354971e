//! Hostile peers against real 3-node clusters of `arakoon` processes on loopback (issue 15,
//! item 1): a forged Accept and Commit from a process that is no member is applied without a
//! cluster secret and is not applied with one; nodes with different secrets do not talk and say
//! so at most once a minute per address; a cluster with a secret elects and serves; a node
//! without a secret warns once at start; a master that loses its lease says so.

mod harness;

use arakoon_node::client::Connection;
use arakoon_node::consensus::{value_hash, Msg};
use arakoon_node::llio::Put;
use arakoon_node::protocol::client::{Consistency, Payload, Reply, Request};
use arakoon_node::protocol::peer;
use arakoon_node::server::env::TokioNet;
use arakoon_node::server::frame::{read_frame, write_frame, Hello, HelloFrame};
use arakoon_node::value::{Update, Value};
use harness::Cluster;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const LEASE_MS: u64 = 1000;
const FORGED_KEY: &[u8] = b"forged";

/// A 3-node cluster whose nodes read the secret file `secret` holds now.
fn with_secret(secret: &[u8]) -> (Cluster, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, secret).unwrap();
    let extra = format!("cluster_secret_file = {}", path.display());
    (harness::cluster(3, LEASE_MS, &extra), dir)
}

async fn connection(cluster: &Cluster, k: usize) -> Option<Connection<tokio::net::TcpStream>> {
    Connection::open(&TokioNet, cluster.client_addr(k), "itest", Duration::from_secs(2), 1 << 20)
        .await
        .ok()
}

/// What node `k` has applied, asked on its client port (as anyone may).
async fn applied(cluster: &Cluster, k: usize) -> Option<u64> {
    let mut c = connection(cluster, k).await?;
    match c.exchange(&Request::GetTxid, Duration::from_secs(2)).await {
        Ok(Reply::Ok(Payload::Consistency(Consistency::AtLeast(i)))) => Some(i),
        _ => None,
    }
}

/// Node `k`'s own value of `key`, without asking the master.
async fn local_get(cluster: &Cluster, k: usize, key: &[u8]) -> Option<Vec<u8>> {
    let mut c = connection(cluster, k).await?;
    let req = Request::Get { c: Consistency::NoGuarantees, key: key.to_vec() };
    match c.exchange(&req, Duration::from_secs(2)).await {
        Ok(Reply::Ok(Payload::String(v))) => Some(v),
        _ => None,
    }
}

fn messaging_addr(cluster: &Cluster, k: usize) -> SocketAddr {
    let n = &cluster.config.nodes[k];
    SocketAddr::new(n.ip, n.messaging_port)
}

/// From this process (no member), one forged Accept and Commit of `forged = attempt` for the
/// slot after what node `k` applied, in a connection that claims to be another member: first as
/// a node without a secret would, then as one that must guess the proof.
async fn forge(cluster: &Cluster, k: usize, attempt: u64) {
    let Some(last) = applied(cluster, k).await else { return };
    let i = last + 1;
    let value = Value::client(vec![Update::Set {
        key: FORGED_KEY.to_vec(),
        value: attempt.to_string().into_bytes(),
    }]);
    let n = 1000 + attempt;
    let hash = value_hash(&value);
    let frames = [
        peer::encode(&Msg::Accept { n, i, value, prev_hash: None }),
        peer::encode(&Msg::Commit { n, i, hash }),
    ];
    let claim = if k == 0 { "n1" } else { "n0" };
    for scheme in [0, 1] {
        let connect = tokio::net::TcpStream::connect(messaging_addr(cluster, k));
        let Ok(Ok(mut s)) = tokio::time::timeout(Duration::from_secs(2), connect).await else {
            continue;
        };
        let hello = HelloFrame {
            hello: Hello { cluster_id: "itest".into(), node: claim.into() },
            scheme,
            nonce: if scheme == 0 { Vec::new() } else { vec![7; 16] },
        };
        let _ = write_frame(&mut s, &hello.encode()).await;
        if scheme == 1 {
            // The challenge, if any, and a guessed proof.
            let mut buf = Vec::new();
            let _ = tokio::time::timeout(
                Duration::from_millis(500),
                read_frame(&mut s, &mut buf, 4096),
            )
            .await;
            let mut proof = Vec::new();
            proof.put_bytes(&[0u8; 32]);
            let _ = write_frame(&mut s, &proof).await;
        }
        for f in &frames {
            let _ = write_frame(&mut s, f).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Forges against every node for `rounds` rounds; returns the first node that serves the
/// forged key, if any.
async fn forge_rounds(cluster: &Cluster, rounds: u64) -> Option<usize> {
    for attempt in 0..rounds {
        for k in 0..cluster.size() {
            forge(cluster, k, attempt).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        for k in 0..cluster.size() {
            if local_get(cluster, k, FORGED_KEY).await.is_some() {
                return Some(k);
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secret_a_forged_accept_and_commit_is_applied() {
    // The attack the secret stops, shown on the open cluster (and a check that `forge` is a
    // real attack, so that the test with a secret can fail).
    let mut cluster = harness::cluster(3, LEASE_MS, "");
    cluster.start_all();
    cluster.wait_for_master(Duration::from_secs(15)).await;
    cluster.client().set(b"k", b"v").await.unwrap();
    assert!(
        forge_rounds(&cluster, 40).await.is_some(),
        "the forgery never took on an open cluster\n{}",
        cluster.logs()
    );
    let log = cluster.log(0);
    assert_eq!(log.matches("the peer port trusts its network").count(), 1, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_secret_a_forged_accept_and_commit_is_not_applied() {
    let (mut cluster, _secret) = with_secret(b"correct horse battery staple\n");
    cluster.start_all();
    let m = cluster.wait_for_master(Duration::from_secs(15)).await;
    let mut c = cluster.client();
    for k in 0..50 {
        c.set(format!("k{k}").as_bytes(), b"v").await.unwrap();
    }
    assert_eq!(forge_rounds(&cluster, 20).await, None, "{}", cluster.logs());
    // The cluster is unharmed: the same master serves, every node has the writes.
    assert_eq!(cluster.wait_for_master(Duration::from_secs(5)).await, m);
    c.set(b"after", b"v").await.unwrap();
    for k in 0..3 {
        let deadline = Instant::now() + Duration::from_secs(10);
        while local_get(&cluster, k, b"after").await.is_none() {
            assert!(Instant::now() < deadline, "n{k} lacks a write\n{}", cluster.logs());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for k in 0..3 {
        let log = cluster.log(k);
        assert!(!log.contains("trusts its network"), "{log}");
        // Every forged connection came from 127.0.0.1: one line a minute about it.
        let refused = log.matches("refused a peer connection").count();
        assert_eq!(refused, 1, "n{k} should say it once:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_different_secrets_do_not_talk_and_say_so_once() {
    let (mut cluster, secret) = with_secret(b"the first secret, 32 bytes long.");
    cluster.start(0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(secret.path().join("secret"), b"another secret of the same size").unwrap();
    cluster.start(1);
    cluster.start(2);
    // n1 and n2 share a secret: they are a quorum and serve.
    let m = cluster.wait_for_master(Duration::from_secs(15)).await;
    assert_ne!(m, 0, "n0 cannot have been elected\n{}", cluster.logs());
    let mut c = cluster.client();
    c.set(b"k", b"v").await.unwrap();
    // Several redial rounds.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(local_get(&cluster, 0, b"k").await, None, "n0 must not have the write");
    let n0 = cluster.log(0);
    // n0 is refused by both peers (and refuses their connections): said, but once a minute
    // per address and link, not once a connection.
    let refused = n0.matches("refused a peer connection").count();
    assert_eq!(refused, 1, "{n0}");
    let cannot = n0.matches("cannot talk to a peer").count();
    assert!((1..=2).contains(&cannot), "one line per link at most:\n{n0}");
    for k in [1, 2] {
        let log = cluster.log(k);
        assert_eq!(log.matches("refused a peer connection").count(), 1, "n{k}:\n{log}");
        assert!(log.matches("cannot talk to a peer").count() <= 1, "n{k}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_that_loses_its_lease_says_so_once() {
    let (mut cluster, _secret) = with_secret(b"0123456789abcdef0123456789abcdef");
    cluster.start_all();
    let m = cluster.wait_for_master(Duration::from_secs(15)).await;
    cluster.client().set(b"k", b"v").await.unwrap();
    // The master's slaves vanish: it cannot renew, and steps down.
    for k in (0..3).filter(|k| *k != m) {
        cluster.kill(k);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = cluster.log(m);
        let said = log.matches("lost or gave up the master lease").count();
        if said > 0 {
            tokio::time::sleep(Duration::from_millis(3 * LEASE_MS)).await;
            let log = cluster.log(m);
            let said = log.matches("lost or gave up the master lease").count();
            assert_eq!(said, 1, "once per loss:\n{log}");
            break;
        }
        assert!(Instant::now() < deadline, "the master never said it lost its lease\n{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
