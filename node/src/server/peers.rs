//! Peer links: one outgoing connection per peer for this node's messages, and a listener for
//! the peers' connections to us.
//!
//! Each direction has its own TCP connection (a node sends on the link it opened and receives on
//! the links its peers opened), so that a one-way partition is exactly one cut connection, and a
//! fault proxy can sit on each direction. Messages are bytes here; the core encodes them.
//!
//! Paxos tolerates lost messages, so a link never blocks the core: its queue is bounded, and
//! when it is full or the peer is down, messages are dropped (the core retransmits what
//! matters). A broken link reconnects with exponential backoff, bounded.

use super::env::{Listener, Network};
use super::frame::{read_frame, write_frame, Hello};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;

/// Messages queued for one peer at most; beyond, new ones are dropped.
pub const LINK_QUEUE_MAX: usize = 1024;
const BACKOFF_MIN_MS: u64 = 20;
const BACKOFF_MAX_MS: u64 = 1000;
const CONNECT_TIMEOUT_MS: u64 = 1000;

/// The sending side of one peer link.
#[derive(Debug, Clone)]
pub struct PeerLink {
    tx: mpsc::Sender<Vec<u8>>,
}

impl PeerLink {
    /// Queues a message; false if it was dropped (queue full).
    pub fn send(&self, payload: Vec<u8>) -> bool {
        self.tx.try_send(payload).is_ok()
    }
}

/// Starts the sender task for the link from `me` to the peer at `addr`.
pub fn spawn_link<N: Network>(net: N, hello: Hello, addr: SocketAddr) -> PeerLink {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(LINK_QUEUE_MAX);
    tokio::spawn(async move {
        let mut backoff_ms = BACKOFF_MIN_MS;
        'reconnect: loop {
            let connect =
                tokio::time::timeout(Duration::from_millis(CONNECT_TIMEOUT_MS), net.connect(addr));
            let mut stream = match connect.await {
                Ok(Ok(s)) => s,
                _ => {
                    // Whatever was queued meanwhile is stale: drop it rather than replay it.
                    while rx.try_recv().is_ok() {}
                    if rx.is_closed() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                    backoff_ms = (backoff_ms * 2).min(BACKOFF_MAX_MS);
                    continue 'reconnect;
                }
            };
            if write_frame(&mut stream, &hello.encode()).await.is_err() {
                continue 'reconnect;
            }
            backoff_ms = BACKOFF_MIN_MS;
            while let Some(payload) = rx.recv().await {
                if write_frame(&mut stream, &payload).await.is_err() {
                    continue 'reconnect;
                }
            }
            return; // the core dropped the link: shutting down
        }
    });
    PeerLink { tx }
}

/// A message received from a named peer.
#[derive(Debug)]
pub struct Incoming {
    pub from: String,
    pub payload: Vec<u8>,
}

/// Accepts peer connections and forwards their frames; connections with a wrong hello (another
/// cluster, an unknown node) are closed.
pub fn spawn_listener<N: Network>(
    mut listener: N::Listener,
    cluster_id: String,
    peers: Vec<String>,
    frame_bytes_max: u32,
    out: mpsc::Sender<Incoming>,
) {
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let cluster_id = cluster_id.clone();
            let peers = peers.clone();
            let out = out.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let hello = tokio::time::timeout(
                    Duration::from_millis(CONNECT_TIMEOUT_MS),
                    read_frame(&mut stream, &mut buf, 4096),
                )
                .await;
                let Ok(Ok(true)) = hello else { return };
                let Ok(hello) = Hello::decode(&buf) else { return };
                if hello.cluster_id != cluster_id || !peers.contains(&hello.node) {
                    tracing::warn!(node = %hello.node, cluster = %hello.cluster_id, "refused a peer connection");
                    return;
                }
                while let Ok(true) = read_frame(&mut stream, &mut buf, frame_bytes_max).await {
                    let msg =
                        Incoming { from: hello.node.clone(), payload: std::mem::take(&mut buf) };
                    if out.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::env::TokioNet;

    #[tokio::test]
    async fn messages_cross_and_strangers_are_refused() {
        let net = TokioNet;
        let listener = net.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        spawn_listener::<TokioNet>(listener, "c".into(), vec!["n0".into()], 1 << 20, tx);

        let stranger =
            spawn_link(net, Hello { cluster_id: "other".into(), node: "n0".into() }, addr);
        assert!(stranger.send(b"nope".to_vec()));
        let link = spawn_link(net, Hello { cluster_id: "c".into(), node: "n0".into() }, addr);
        assert!(link.send(b"hello".to_vec()));
        assert!(link.send(b"world".to_vec()));
        let a = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        let b = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert_eq!((a.from.as_str(), a.payload.as_slice()), ("n0", &b"hello"[..]));
        assert_eq!(b.payload, b"world");
        assert!(tokio::time::timeout(Duration::from_millis(200), rx.recv()).await.is_err());
    }
}
