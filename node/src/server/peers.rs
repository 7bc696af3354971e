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
//!
//! Every connection proves membership first (server/auth.rs); a refused one, a frame that
//! fails its MAC and a peer that cannot be talked to are logged at most once a minute per
//! address (server/loglimit.rs), so a stranger or a misconfigured node cannot flood the log.

use super::auth::PeerAuth;
use super::env::{Listener, Network};
use super::frame::{read_frame, write_frame, Hello};
use super::loglimit::LogLimiter;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Messages queued for one peer at most; beyond, new ones are dropped.
pub const LINK_QUEUE_MAX: usize = 1024;
/// Incoming peer connections open at once at most (a cluster has a few peers, each with one
/// link, plus the ones a reconnect replaces); beyond, new ones are closed unread.
pub const PEER_CONNECTIONS_MAX: usize = 64;
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
pub fn spawn_link<N: Network>(net: N, hello: Hello, auth: PeerAuth, addr: SocketAddr) -> PeerLink {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(LINK_QUEUE_MAX);
    tokio::spawn(async move {
        let mut backoff_ms = BACKOFF_MIN_MS;
        // One address: one line a minute about it at most.
        let mut limiter = LogLimiter::per_minute();
        loop {
            let connect =
                tokio::time::timeout(Duration::from_millis(CONNECT_TIMEOUT_MS), net.connect(addr));
            if let Ok(Ok(mut stream)) = connect.await {
                let handshake = tokio::time::timeout(
                    Duration::from_millis(CONNECT_TIMEOUT_MS),
                    auth.dial(&mut stream, &hello),
                )
                .await;
                match handshake {
                    Ok(Ok(mut guard)) => {
                        backoff_ms = BACKOFF_MIN_MS;
                        loop {
                            let Some(payload) = rx.recv().await else {
                                return; // the core dropped the link: shutting down
                            };
                            if write_frame(&mut stream, &guard.seal(payload)).await.is_err() {
                                break;
                            }
                        }
                    }
                    Ok(Err(e)) => {
                        if limiter.allow(addr.ip()) {
                            tracing::warn!(peer = %addr, "cannot talk to a peer: {e} (said once a minute)");
                        }
                    }
                    Err(_) => {
                        if limiter.allow(addr.ip()) {
                            tracing::warn!(peer = %addr, "a peer did not finish the handshake within {CONNECT_TIMEOUT_MS} ms (said once a minute)");
                        }
                    }
                }
            }
            // Whatever was queued meanwhile is stale: drop it rather than replay it.
            while rx.try_recv().is_ok() {}
            if rx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
            backoff_ms = (backoff_ms * 2).min(BACKOFF_MAX_MS);
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

/// Accepts peer connections and forwards their frames. A connection that does not prove it
/// comes from a member (another cluster, an unknown node, a wrong or missing secret) is closed
/// before any message is read, and one whose frame fails its MAC is closed at that frame.
pub fn spawn_listener<N: Network>(
    mut listener: N::Listener,
    cluster_id: String,
    peers: Vec<String>,
    auth: PeerAuth,
    frame_bytes_max: u32,
    out: mpsc::Sender<Incoming>,
) {
    let limiter = Arc::new(Mutex::new(LogLimiter::per_minute()));
    let open = Arc::new(tokio::sync::Semaphore::new(PEER_CONNECTIONS_MAX));
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, addr)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let cluster_id = cluster_id.clone();
            let peers = peers.clone();
            let out = out.clone();
            let auth = auth.clone();
            let limiter = limiter.clone();
            let say = move |what: &dyn std::fmt::Display| {
                let mut l = limiter.lock().unwrap_or_else(|e| e.into_inner());
                if l.allow(addr.ip()) {
                    tracing::warn!(from = %addr, "{what} (said once a minute per address)");
                }
            };
            let Ok(slot) = open.clone().try_acquire_owned() else {
                say(&format_args!(
                    "refused a peer connection: {PEER_CONNECTIONS_MAX} are open already"
                ));
                continue;
            };
            tokio::spawn(async move {
                let _slot = slot; // held while the connection lives
                let handshake = tokio::time::timeout(
                    Duration::from_millis(CONNECT_TIMEOUT_MS),
                    auth.accept(&mut stream, &cluster_id, &peers),
                )
                .await;
                let (from, mut guard) = match handshake {
                    Ok(Ok(accepted)) => accepted,
                    Ok(Err(e)) => return say(&format_args!("refused a peer connection: {e}")),
                    Err(_) => {
                        return say(&format_args!(
                            "refused a peer connection: no handshake within {CONNECT_TIMEOUT_MS} ms"
                        ))
                    }
                };
                let mut buf = Vec::new();
                let bytes_max = frame_bytes_max.saturating_add(guard.overhead() as u32);
                while let Ok(true) = read_frame(&mut stream, &mut buf, bytes_max).await {
                    if let Err(e) = guard.open(&mut buf) {
                        return say(&format_args!("dropped the connection of peer {from}: {e}"));
                    }
                    let msg = Incoming { from: from.clone(), payload: std::mem::take(&mut buf) };
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
    use crate::server::auth::Secret;
    use crate::server::env::TokioNet;

    #[tokio::test]
    async fn messages_cross_and_strangers_are_refused() {
        let net = TokioNet;
        let listener = net.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let auth = PeerAuth::Secret(Secret::from_bytes(&[5; 32]).unwrap());
        spawn_listener::<TokioNet>(
            listener,
            "c".into(),
            vec!["n0".into()],
            auth.clone(),
            1 << 20,
            tx,
        );

        let n0 = Hello { cluster_id: "c".into(), node: "n0".into() };
        let stranger = spawn_link(
            net,
            Hello { cluster_id: "other".into(), node: "n0".into() },
            auth.clone(),
            addr,
        );
        assert!(stranger.send(b"nope".to_vec()));
        let open = spawn_link(net, n0.clone(), PeerAuth::Open, addr);
        assert!(open.send(b"no proof".to_vec()));
        let wrong = PeerAuth::Secret(Secret::from_bytes(&[6; 32]).unwrap());
        let guesser = spawn_link(net, n0.clone(), wrong, addr);
        assert!(guesser.send(b"wrong secret".to_vec()));
        let link = spawn_link(net, n0, auth, addr);
        assert!(link.send(b"hello".to_vec()));
        assert!(link.send(b"world".to_vec()));
        let a = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        let b = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert_eq!((a.from.as_str(), a.payload.as_slice()), ("n0", &b"hello"[..]));
        assert_eq!(b.payload, b"world");
        assert!(tokio::time::timeout(Duration::from_millis(200), rx.recv()).await.is_err());
    }
}
