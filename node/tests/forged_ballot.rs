//! One forged ballot must not stop a cluster of real processes (issue 15): a Prepare with ballot
//! 2^63-1 sent to every node's peer port, as if from another node of the cluster, used to raise
//! every node's next ballot past what the wire and the ballot record hold, so that no election
//! ever succeeded again and the ballot record written by the next candidacy failed the next
//! start (exit 49). The nodes must drop it: the cluster still elects after its master is
//! killed, accepts writes, and every node restarts cleanly afterwards.

mod harness;

use arakoon_node::client::Connection;
use arakoon_node::consensus::Msg;
use arakoon_node::protocol::client::{Consistency, Payload, Reply, Request};
use arakoon_node::protocol::peer;
use arakoon_node::server::env::TokioNet;
use arakoon_node::server::frame::{write_frame, Hello, HelloFrame};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

const LEASE_MS: u64 = 1000;

/// Opens a peer connection to node `to` posing as node `as_node` and sends `msg` on it. The
/// connection is returned so that it stays open while the node reads it.
async fn forge(cluster: &harness::Cluster, to: usize, as_node: usize, msg: &Msg) -> TcpStream {
    let node = &cluster.config.nodes[to];
    let addr = SocketAddr::new(node.ip, node.messaging_port);
    let mut stream = TcpStream::connect(addr).await.expect("connect to the peer port");
    // A cluster without a secret (scheme 0): the hello is all a peer is asked for.
    let hello = HelloFrame {
        hello: Hello {
            cluster_id: cluster.config.cluster_id.clone(),
            node: cluster.config.nodes[as_node].name.clone(),
        },
        scheme: 0,
        nonce: Vec::new(),
    };
    write_frame(&mut stream, &hello.encode()).await.expect("hello");
    write_frame(&mut stream, &peer::encode(msg)).await.expect("forged frame");
    stream
}

/// Writes `key` through a fresh client, retrying for at most `within`.
async fn write_within(cluster: &harness::Cluster, key: &str, within: Duration) {
    let deadline = Instant::now() + within;
    let mut c = cluster.client();
    loop {
        match c.set(key.as_bytes(), key.as_bytes()).await {
            Ok(()) => return,
            Err(e) => assert!(
                Instant::now() < deadline,
                "no write of {key} within {within:?}: {e}\n{}",
                cluster.logs()
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (bounded) until node `k` serves `key` from its own store: it is up and caught up.
async fn applied_on(cluster: &harness::Cluster, k: usize, key: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let addr = cluster.client_addr(k);
        let timeout = Duration::from_secs(2);
        if let Ok(mut c) = Connection::open(&TokioNet, addr, "itest", timeout, 1 << 20).await {
            let req = Request::Get { c: Consistency::NoGuarantees, key: key.as_bytes().to_vec() };
            if let Ok(Reply::Ok(Payload::String(_))) = c.exchange(&req, timeout).await {
                return;
            }
        }
        assert!(Instant::now() < deadline, "n{k} lacks {key} after {within:?}\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_top_ballot_neither_stops_elections_nor_breaks_a_restart() {
    let mut cluster = harness::cluster(3, LEASE_MS, "");
    cluster.start_all();
    let m = cluster.wait_for_master(Duration::from_secs(15)).await;
    write_within(&cluster, "before", Duration::from_secs(10)).await;

    // Every node hears the forged Prepare, from a node that is not itself.
    let forged = Msg::Prepare { n: (1 << 63) - 1, last_i: Some(1 << 40) };
    let mut open = Vec::new();
    for k in 0..3 {
        open.push(forge(&cluster, k, (k + 1) % 3, &forged).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The master goes: the others must still elect one of them, with ballots that fit.
    cluster.kill(m);
    write_within(&cluster, "after-kill", Duration::from_secs(20)).await;
    let m2 = cluster.wait_for_master(Duration::from_secs(10)).await;
    assert_ne!(m2, m);
    cluster.start(m);
    write_within(&cluster, "after-return", Duration::from_secs(20)).await;
    applied_on(&cluster, m, "after-return", Duration::from_secs(20)).await;
    drop(open);

    // Every ballot record written since reads back: each node stops and starts cleanly.
    for k in 0..3 {
        let status = cluster.stop(k).expect("stops within the wait");
        assert!(status.success(), "n{k} exited with {status:?}\n{}", cluster.log(k));
    }
    cluster.start_all();
    cluster.wait_for_master(Duration::from_secs(20)).await;
    write_within(&cluster, "after-restart", Duration::from_secs(20)).await;
    for k in 0..3 {
        applied_on(&cluster, k, "after-restart", Duration::from_secs(20)).await;
    }
    let mut c = cluster.client();
    for key in ["before", "after-kill", "after-return", "after-restart"] {
        assert_eq!(c.get(key.as_bytes()).await.unwrap(), key.as_bytes(), "{key} lost");
    }
    // Still running after the restart: none failed to read its ballot record.
    for k in 0..3 {
        assert!(cluster.stop(k).expect("still running").success(), "{}", cluster.log(k));
    }
}
