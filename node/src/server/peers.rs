//! Peer links: one outgoing connection per peer for this node's messages, and a listener for
//! the peers' connections to us.
//!
//! Each direction has its own TCP connections (a node sends on the links it opened and receives
//! on the links its peers opened), so that a one-way partition is exactly one cut direction, and
//! a fault proxy can sit on each direction. Messages are bytes here; the core encodes them.
//!
//! A link to a peer is two connections, two lanes: large messages (an accept or a promise that
//! carries a large value, from [`BULK_BYTES_MIN`] up) go on the bulk lane, the rest on the
//! control lane, so that the small messages that keep the master's lease (Hold and Held, the
//! lease rule in docs/CONSENSUS.md) never wait behind a value being shipped. The core does not
//! rely on the order between lanes: it takes messages in any order, as the simulator delivers
//! them.
//!
//! Paxos tolerates lost messages, so a link never blocks the core: its queue is bounded, and
//! when it is full or the peer is down, messages are dropped (the core retransmits what
//! matters). A broken link reconnects with exponential backoff, bounded; so does a lane whose
//! peer closed the connection (it stopped or restarts: the lane need not lose a message to the
//! dead connection's reset first) and one whose write stalls for [`WRITE_STALL_MS`] (the peer
//! stopped reading: its machine died with the buffers full, and TCP's retransmissions would
//! notice its return only minutes later).
//!
//! Every connection proves membership first (server/auth.rs); a refused one, a frame that
//! fails its MAC and a peer that cannot be talked to are logged at most once a minute per
//! address (server/loglimit.rs), so a stranger or a misconfigured node cannot flood the log.

use super::auth::PeerAuth;
use super::env::{Listener, Network};
use super::frame::{read_frame, write_frame_parts, Hello};
use super::loglimit::LogLimiter;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

/// Messages queued for one peer at most; beyond, new ones are dropped.
pub const LINK_QUEUE_MAX: usize = 1024;
/// Incoming peer connections open at once at most (a cluster has a few peers, each with two
/// lanes, plus the ones a reconnect replaces); beyond, new ones are closed unread.
pub const PEER_CONNECTIONS_MAX: usize = 64;
const BACKOFF_MIN_MS: u64 = 20;
const BACKOFF_MAX_MS: u64 = 1000;
const CONNECT_TIMEOUT_MS: u64 = 1000;
/// A write that makes no progress for this long breaks the connection: the peer has read
/// nothing for that long. A large value on a slow link takes as long as it takes, as long as
/// its bytes keep going.
const WRITE_STALL_MS: u64 = 3000;
/// A resend of one accept waits at most this many retransmission intervals after the previous.
const RESEND_BACKOFF_MAX: u32 = 4;
/// Messages of this many bytes or more go on the bulk lane.
pub const BULK_BYTES_MIN: usize = 64 << 10;
/// The bytes the control lane queues at most (its messages are all below [`BULK_BYTES_MIN`]).
pub const CONTROL_QUEUE_BYTES_MAX: usize = 1 << 20;

/// The two lanes of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Control = 0,
    Bulk = 1,
}

impl Lane {
    fn of(len: usize) -> Lane {
        if len >= BULK_BYTES_MIN {
            Lane::Bulk
        } else {
            Lane::Control
        }
    }
}

/// The bytes queued to one peer at most, for a node whose updates are at most
/// `max_buffer_size`: one of the largest values on the bulk lane and room for the small
/// messages of the control lane ([`CONTROL_QUEUE_BYTES_MAX`]; an accept is never queued twice,
/// see [`PeerLink::send_accept`]). Beyond, messages are dropped;
/// a slave that misses accepts this way sees the gap at the next one and catches up from a
/// peer's TLog.
pub fn link_queue_bytes_max(max_buffer_size: u32) -> usize {
    max_buffer_size as usize + (1 << 20)
}

/// One queued message: its bytes, and the accept (ballot, slot) it carries, if it is one.
struct Frame {
    /// Shared by the links an Accept goes to: encoded once, not once a peer.
    payload: Arc<Vec<u8>>,
    accept: Option<(u64, u64)>,
}

impl Frame {
    fn lane(&self) -> Lane {
        Lane::of(self.payload.len())
    }
}

/// The resends of the latest accept to one peer.
#[derive(Debug, Default)]
struct AcceptTrack {
    /// The accept (ballot, slot) these counts are about.
    slot: Option<(u64, u64)>,
    /// A copy of it is queued or being written now.
    queued: bool,
    /// Resend requests dropped since the last copy went out.
    skipped: u32,
    /// Copies sent after the first.
    resends: u32,
}

impl AcceptTrack {
    /// Whether a copy of accept `key` goes out now; if so, it counts as queued.
    fn admit(&mut self, key: Option<(u64, u64)>) -> bool {
        if self.slot != key {
            *self = AcceptTrack { slot: key, ..AcceptTrack::default() };
        } else {
            if self.queued {
                return false;
            }
            self.skipped += 1;
            if self.skipped < (1u32 << self.resends.min(8)).min(RESEND_BACKOFF_MAX) {
                return false;
            }
            self.skipped = 0;
            self.resends += 1;
        }
        self.queued = true;
        true
    }
}

/// What the core and the sender tasks share about one link.
#[derive(Debug)]
struct LinkState {
    /// Bytes queued per lane, and the most each may hold.
    queued_bytes: [AtomicUsize; 2],
    queued_bytes_max: [usize; 2],
    accept: Mutex<AcceptTrack>,
}

impl LinkState {
    /// A frame left its lane's queue (written, or dropped as stale).
    fn done(&self, lane: Lane, len: usize, accept: Option<(u64, u64)>) {
        self.queued_bytes[lane as usize].fetch_sub(len, Ordering::AcqRel);
        if accept.is_some() {
            let mut t = self.accept.lock().unwrap_or_else(|e| e.into_inner());
            if t.slot == accept {
                t.queued = false;
            }
        }
    }
}

/// The sending side of one peer link.
#[derive(Debug, Clone)]
pub struct PeerLink {
    /// The queue of each lane's sender task.
    tx: [mpsc::Sender<Frame>; 2],
    state: Arc<LinkState>,
}

impl PeerLink {
    /// Queues a message; false if it was dropped (queue full, in messages or in bytes).
    pub fn send(&self, payload: Vec<u8>) -> bool {
        self.enqueue(Frame { payload: Arc::new(payload), accept: None })
    }

    /// Queues the accept of `slot` under ballot `n`, encoded by `encode` only if it goes out.
    /// A resend never goes out while an earlier copy of the same accept is still queued or
    /// being written to this peer (a large value resent every retransmission interval once
    /// filled the link with copies, and the lease renewal behind them never arrived), and
    /// resends back off: each waits twice as many intervals as the one before, up to
    /// [`RESEND_BACKOFF_MAX`]. False if nothing was queued.
    pub fn send_accept(&self, n: u64, slot: u64, encode: impl FnOnce() -> Arc<Vec<u8>>) -> bool {
        let key = Some((n, slot));
        let go = self.state.accept.lock().unwrap_or_else(|e| e.into_inner()).admit(key);
        if !go {
            return false;
        }
        let sent = self.enqueue(Frame { payload: encode(), accept: key });
        if !sent {
            let mut t = self.state.accept.lock().unwrap_or_else(|e| e.into_inner());
            if t.slot == key {
                t.queued = false;
            }
        }
        sent
    }

    fn enqueue(&self, frame: Frame) -> bool {
        let len = frame.payload.len();
        let lane = frame.lane() as usize;
        let max = self.state.queued_bytes_max[lane];
        // One message always fits an empty queue, whatever its size.
        let reserved = self.state.queued_bytes[lane]
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q == 0 || q + len <= max).then_some(q + len)
            })
            .is_ok();
        if !reserved {
            tracing::debug!("dropped a peer message of {len} bytes: the link's queue is full");
            return false;
        }
        match self.tx[lane].try_send(frame) {
            Ok(()) => true,
            Err(e) => {
                self.state.queued_bytes[lane].fetch_sub(len, Ordering::AcqRel);
                drop(e);
                false
            }
        }
    }

    /// The bytes queued now (for tests and statistics).
    pub fn queued_bytes(&self) -> usize {
        self.state.queued_bytes.iter().map(|q| q.load(Ordering::Acquire)).sum()
    }
}

/// Starts the sender tasks (one per lane) for the link from `me` to the peer at `addr`; at
/// most `queued_bytes_max` bytes wait in its queues, [`CONTROL_QUEUE_BYTES_MAX`] of them on
/// the control lane.
pub fn spawn_link<N: Network>(
    net: N,
    hello: Hello,
    auth: PeerAuth,
    addr: SocketAddr,
    queued_bytes_max: usize,
) -> PeerLink {
    let control_max = CONTROL_QUEUE_BYTES_MAX.min(queued_bytes_max);
    let state = Arc::new(LinkState {
        queued_bytes: [AtomicUsize::new(0), AtomicUsize::new(0)],
        queued_bytes_max: [control_max, queued_bytes_max.saturating_sub(control_max).max(1)],
        accept: Mutex::new(AcceptTrack::default()),
    });
    let (control, control_rx) = mpsc::channel::<Frame>(LINK_QUEUE_MAX);
    let (bulk, bulk_rx) = mpsc::channel::<Frame>(LINK_QUEUE_MAX);
    // One address: one line a minute about it at most, whichever lane fails.
    let limiter = Arc::new(Mutex::new(LogLimiter::per_minute()));
    for rx in [control_rx, bulk_rx] {
        let to = Dial { net: net.clone(), hello: hello.clone(), auth: auth.clone(), addr };
        spawn_lane(to, rx, state.clone(), limiter.clone());
    }
    PeerLink { tx: [control, bulk], state }
}

/// Where and how a lane connects.
struct Dial<N> {
    net: N,
    hello: Hello,
    auth: PeerAuth,
    addr: SocketAddr,
}

/// One lane's sender task: connects, proves membership, writes its queue's frames in order,
/// and reconnects with backoff when the connection breaks.
fn spawn_lane<N: Network>(
    to: Dial<N>,
    mut rx: mpsc::Receiver<Frame>,
    state: Arc<LinkState>,
    limiter: Arc<Mutex<LogLimiter>>,
) {
    let Dial { net, hello, auth, addr } = to;
    let say = move |what: &dyn std::fmt::Display| {
        if limiter.lock().unwrap_or_else(|e| e.into_inner()).allow(addr.ip()) {
            tracing::warn!(peer = %addr, "{what} (said once a minute)");
        }
    };
    tokio::spawn(async move {
        let mut backoff_ms = BACKOFF_MIN_MS;
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
                        // The peer never writes on a lane once the handshake is over: a read
                        // that ends means it closed the connection (it stopped or restarted).
                        // Reconnect now, rather than lose the next message to its reset.
                        let mut probe = [0u8; 1];
                        loop {
                            let next = tokio::select! {
                                biased;
                                frame = rx.recv() => Some(frame),
                                _ = stream.read(&mut probe) => None,
                            };
                            let Some(next) = next else { break };
                            let Some(frame) = next else {
                                return; // the core dropped the link: shutting down
                            };
                            let lane = frame.lane();
                            let Frame { payload, accept } = frame;
                            let len = payload.len();
                            let tag = guard.tag(&payload);
                            let parts = [&payload[..], tag.as_ref().map_or(&[][..], |t| &t[..])];
                            // A peer that reads nothing for WRITE_STALL_MS is gone (or its machine
                            // is, and TCP would only notice at its next retransmission, which
                            // backs off to minutes): reconnect rather than hold the lane.
                            let mut guarded = StallGuard::new(&mut stream);
                            let written = write_frame_parts(&mut guarded, &parts).await;
                            state.done(lane, len, accept);
                            if written.is_err() {
                                break;
                            }
                        }
                    }
                    Ok(Err(e)) => say(&format_args!("cannot talk to a peer: {e}")),
                    Err(_) => say(&format_args!(
                        "a peer did not finish the handshake within {CONNECT_TIMEOUT_MS} ms"
                    )),
                }
            }
            // Whatever was queued meanwhile is stale: drop it rather than replay it.
            while let Ok(frame) = rx.try_recv() {
                state.done(frame.lane(), frame.payload.len(), frame.accept);
            }
            if rx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
            backoff_ms = (backoff_ms * 2).min(BACKOFF_MAX_MS);
        }
    });
}

/// A writer that fails once it has made no progress for [`WRITE_STALL_MS`]: each write that
/// moves bytes starts the wait again, so a slow link is not taken for a dead peer.
struct StallGuard<'a, W> {
    inner: &'a mut W,
    /// Armed at the first write that could not go on, cleared by the next that did.
    deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<'a, W: tokio::io::AsyncWrite + Unpin> StallGuard<'a, W> {
    fn new(inner: &'a mut W) -> Self {
        StallGuard { inner, deadline: None }
    }

    fn settle(
        &mut self,
        cx: &mut std::task::Context<'_>,
        polled: std::task::Poll<std::io::Result<usize>>,
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::future::Future;
        use std::task::Poll;
        if let Poll::Ready(result) = polled {
            self.deadline = None;
            return Poll::Ready(result);
        }
        let wait = Duration::from_millis(WRITE_STALL_MS);
        let deadline = self.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(wait)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the peer read nothing for {WRITE_STALL_MS} ms"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for StallGuard<'_, W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut *self.inner).poll_write(cx, buf);
        self.settle(cx, polled)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut *self.inner).poll_write_vectored(cx, bufs);
        self.settle(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
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

    #[test]
    fn an_accept_is_not_resent_while_queued_and_resends_back_off() {
        let mut t = AcceptTrack::default();
        let a = Some((3, 10));
        assert!(t.admit(a), "the first copy goes");
        assert!(!t.admit(a) && !t.admit(a), "not while it is queued");
        t.queued = false;
        // Written: resends after 1, 2, 4, 4 further requests.
        let mut pattern = Vec::new();
        for _ in 0..15 {
            let go = t.admit(a);
            if go {
                t.queued = false;
            }
            pattern.push(go);
        }
        let expect = [1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1];
        assert_eq!(pattern, expect.map(|b| b == 1));
        // Another slot (or ballot) starts afresh, even while the old one is queued.
        assert!(t.admit(Some((3, 11))));
        assert!(t.admit(Some((4, 11))));
    }

    #[tokio::test]
    async fn a_link_holds_one_copy_of_an_accept_and_its_queue_is_bounded_in_bytes() {
        let net = TokioNet;
        let listener = net.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A peer that reads one frame and then nothing: the link's writes stall.
        let (tx, _rx) = mpsc::channel(1);
        let peers = vec!["n0".into()];
        spawn_listener::<TokioNet>(listener, "c".into(), peers, PeerAuth::Open, 64 << 20, tx);
        let n0 = Hello { cluster_id: "c".into(), node: "n0".into() };
        let link = spawn_link(net, n0, PeerAuth::Open, addr, 20 << 20);
        let big = || Arc::new(vec![7u8; 16 << 20]);
        // Frames go out until the peer's one-message channel, its reader and the sockets'
        // buffers (autotuned: tens of MiB) are full; then one stays in the link.
        let mut stuck = None;
        for slot in 0..12 {
            assert!(link.send_accept(1, slot, big), "slot {slot}");
            tokio::time::sleep(Duration::from_millis(300)).await;
            if link.queued_bytes() == 16 << 20 {
                stuck = Some(slot);
                break;
            }
            assert_eq!(link.queued_bytes(), 0, "written whole, or not at all");
        }
        let slot = stuck.expect("a peer that does not read stops the link within 192 MiB");
        let mut encoded = 0;
        assert!(!link.send_accept(1, slot, || {
            encoded += 1;
            big()
        }));
        assert_eq!(encoded, 0, "a resend of a queued accept is not even encoded");
        assert!(!link.send(vec![0; 8 << 20]), "20 MiB queued at most");
        assert!(link.send(vec![0; 1 << 20]), "small messages still fit");
    }

    /// Accepts connections on a raw socket and keeps them, unread: a peer's process or machine
    /// that stopped reading. Returns its address and how many connections came.
    async fn deaf_peer(close_after_hello: bool) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                if close_after_hello {
                    let mut buf = Vec::new();
                    let _ = read_frame(&mut stream, &mut buf, 1 << 20).await;
                    drop(stream); // the peer stops: its FIN comes, nothing else
                } else {
                    kept.push(stream);
                }
            }
        });
        (addr, count)
    }

    /// Waits (10 s at most) for `count` to reach `n`.
    async fn until_count(count: &AtomicUsize, n: usize) -> bool {
        for _ in 0..1000 {
            if count.load(Ordering::SeqCst) >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// A peer that stops reading (its machine died with the link's buffers full) does not
    /// hold the lane until TCP gives up, minutes later: a write that stalls for
    /// WRITE_STALL_MS breaks the connection, and the lane connects again.
    #[tokio::test]
    async fn a_lane_whose_peer_stops_reading_connects_again() {
        let (addr, connections) = deaf_peer(false).await;
        let n0 = Hello { cluster_id: "c".into(), node: "n0".into() };
        let link = spawn_link(TokioNet, n0, PeerAuth::Open, addr, 64 << 20);
        // Enough to fill the sockets' buffers (autotuned, a few MiB on loopback).
        for slot in 0..12 {
            link.send_accept(1, slot, || Arc::new(vec![7u8; 4 << 20]));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Two lanes connected at first; the bulk lane's stalled write makes a third.
        assert!(until_count(&connections, 3).await, "the bulk lane never connected again");
    }

    /// A slow peer is not a dead one: a frame whose bytes keep going, if slowly, for longer than
    /// WRITE_STALL_MS arrives whole on the connection it started on.
    #[tokio::test]
    async fn a_slow_write_that_makes_progress_is_not_broken() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = connections.clone();
        let (got_tx, mut got) = mpsc::channel(1);
        tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                let got_tx = got_tx.clone();
                kept.push(tokio::spawn(async move {
                    let mut hello = Vec::new();
                    let _ = read_frame(&mut stream, &mut hello, 1 << 20).await;
                    // 256 KiB every 100 ms: about 2.5 MiB/s.
                    let mut all = Vec::new();
                    let mut chunk = vec![0u8; 256 << 10];
                    while let Ok(n) = stream.read(&mut chunk).await {
                        if n == 0 {
                            break;
                        }
                        all.extend_from_slice(&chunk[..n]);
                        if all.len() >= 4 + (24 << 20) {
                            let _ = got_tx.send(all.len()).await;
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }));
            }
        });
        let n0 = Hello { cluster_id: "c".into(), node: "n0".into() };
        let link = spawn_link(TokioNet, n0, PeerAuth::Open, addr, 64 << 20);
        // 24 MiB at about 2.5 MiB/s: several seconds, beyond WRITE_STALL_MS.
        assert!(link.send_accept(1, 0, || Arc::new(vec![7u8; 24 << 20])));
        let started = std::time::Instant::now();
        let whole = tokio::time::timeout(Duration::from_secs(60), got.recv()).await;
        assert_eq!(whole.ok().flatten(), Some(4 + (24 << 20)), "the frame did not arrive whole");
        assert!(started.elapsed() > Duration::from_millis(WRITE_STALL_MS), "not slow enough");
        assert_eq!(connections.load(Ordering::SeqCst), 2, "a lane connected again");
    }

    /// A peer that closes the connection (it stopped cleanly, or restarts) is connected to again
    /// at once, before the lane has anything to write: the first message after the peer's
    /// restart is not lost to the reset of a dead connection.
    #[tokio::test]
    async fn a_lane_whose_peer_closes_connects_again_without_a_write() {
        let (addr, connections) = deaf_peer(true).await;
        let n0 = Hello { cluster_id: "c".into(), node: "n0".into() };
        let link = spawn_link(TokioNet, n0, PeerAuth::Open, addr, 1 << 20);
        // Both lanes connect, are closed by the peer, and connect again, with nothing sent.
        assert!(until_count(&connections, 4).await, "{connections:?} connections");
        drop(link);
    }

    /// A small message sent after a large one arrives first: it goes on the control lane and
    /// does not wait behind the value being written on the bulk lane (the Hold that keeps the
    /// master's lease while a large slot is shipped). On one connection it came after it.
    #[tokio::test]
    async fn a_small_message_does_not_wait_behind_a_large_one() {
        let net = TokioNet;
        let listener = net.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let peers = vec!["n0".into()];
        let auth = PeerAuth::Secret(Secret::from_bytes(&[5; 32]).unwrap());
        spawn_listener::<TokioNet>(listener, "c".into(), peers, auth.clone(), 256 << 20, tx);
        let n0 = Hello { cluster_id: "c".into(), node: "n0".into() };
        let link = spawn_link(net, n0, auth, addr, 260 << 20);
        // Both lanes connected before the race.
        assert!(link.send(b"warm".to_vec()) && link.send(vec![1; BULK_BYTES_MIN]));
        for _ in 0..2 {
            tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap();
        }
        assert!(link.send_accept(1, 0, || Arc::new(vec![7u8; 192 << 20])));
        assert!(link.send(b"hold".to_vec()));
        let first =
            tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.unwrap().unwrap();
        assert_eq!(first.payload, b"hold", "the small message came second");
        let second =
            tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.unwrap().unwrap();
        assert_eq!(second.payload.len(), 192 << 20);
    }

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
            1 << 20,
        );
        assert!(stranger.send(b"nope".to_vec()));
        let open = spawn_link(net, n0.clone(), PeerAuth::Open, addr, 1 << 20);
        assert!(open.send(b"no proof".to_vec()));
        let wrong = PeerAuth::Secret(Secret::from_bytes(&[6; 32]).unwrap());
        let guesser = spawn_link(net, n0.clone(), wrong, addr, 1 << 20);
        assert!(guesser.send(b"wrong secret".to_vec()));
        let link = spawn_link(net, n0, auth, addr, 1 << 20);
        assert!(link.send(b"hello".to_vec()));
        assert!(link.send(b"world".to_vec()));
        let a = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        let b = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert_eq!((a.from.as_str(), a.payload.as_slice()), ("n0", &b"hello"[..]));
        assert_eq!(b.payload, b"world");
        assert!(tokio::time::timeout(Duration::from_millis(200), rx.recv()).await.is_err());
    }
}
