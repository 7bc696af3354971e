//! Fetching from a peer's client port, the client side of catch-up and of a head transfer:
//! committed entries with `last_entries`, in chunks, checked to come in order without a gap, and
//! the reply stream that `get_db` and the collapse commands read too. The running node's catch-up
//! (server/catchup.rs), `arakoon --catchup-only` and `arakoon-admin catchup` use it.

use crate::llio::{DecodeError, VALUE_BYTES_MAX};
use crate::protocol::client::{decode_reply, encode_prologue, EntryFrame, Payload, Reply, Request};
use crate::rc::Rc;
use crate::server::env::{Network, Stream};
use crate::value::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Entries handed over at a time.
pub const CHUNK_ENTRIES: usize = 2048;
/// Bytes handed over at a time (roughly).
pub const CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// A peer that sends nothing for this long during `last_entries` is given up on.
const SILENCE_TIMEOUT_MS: u64 = 10_000;
/// The running node logs its catch-up's progress at most this often.
const PROGRESS_LOG_MS: u64 = 2_000;

/// A request's reply stream from a peer's client port, as `last_entries`, `get_db` and the
/// collapse commands read it: connect, send the prologue and the request, read the return code,
/// then frames. Frames are decoded from `buf[at..]`; the buffer is compacted only when more bytes
/// are needed, so many small frames cost no copying.
pub(crate) struct ReplyStream<S> {
    stream: S,
    buf: Vec<u8>,
    at: usize,
    pub addr: SocketAddr,
    timeout: Duration,
}

impl<S: Stream> ReplyStream<S> {
    /// Sends `request` to `addr` and reads its return code. The outer error is a failure to talk
    /// to the peer; the inner one is the peer's refusal (its return code and message).
    pub(crate) async fn open<N: Network<Stream = S>>(
        net: &N,
        addr: SocketAddr,
        cluster_id: &str,
        request: &Request,
        timeout_ms: u64,
    ) -> Result<(ReplyStream<S>, Result<Payload, (Rc, String)>), FetchError> {
        let timeout = Duration::from_millis(timeout_ms);
        let mut stream = tokio::time::timeout(timeout, net.connect(addr))
            .await
            .map_err(|_| FetchError::ConnectTimeout { addr, ms: timeout_ms })?
            .map_err(|source| FetchError::Connect { addr, source })?;
        let mut out = Vec::new();
        encode_prologue(cluster_id, &mut out);
        request.encode(&mut out);
        stream.write_all(&out).await.map_err(|source| FetchError::Io { addr, source })?;
        let mut me =
            ReplyStream { stream, buf: Vec::with_capacity(64 * 1024), at: 0, addr, timeout };
        loop {
            match decode_reply(request.reply_kind(), &me.buf, VALUE_BYTES_MAX)
                .map_err(|error| FetchError::BadFrame { addr, what: "reply", error })?
            {
                Some((Reply::Ok(payload), used)) => {
                    me.at = used;
                    return Ok((me, Ok(payload)));
                }
                Some((Reply::Failed { rc, message }, _)) => {
                    return Ok((me, Err((rc, String::from_utf8_lossy(&message).into_owned()))))
                }
                None => me.read_more().await?,
            }
        }
    }

    /// The next frame, as `decode` reads it from the bytes not yet taken; reads more as needed.
    /// Returns the frame and its size in bytes.
    pub(crate) async fn next<T>(
        &mut self,
        what: &'static str,
        decode: impl Fn(&[u8]) -> Result<Option<(T, usize)>, DecodeError>,
    ) -> Result<(T, usize), FetchError> {
        loop {
            match decode(&self.buf[self.at..]).map_err(|error| FetchError::BadFrame {
                addr: self.addr,
                what,
                error,
            })? {
                Some((frame, used)) => {
                    self.at += used;
                    return Ok((frame, used));
                }
                None => self.read_more().await?,
            }
        }
    }

    async fn read_more(&mut self) -> Result<(), FetchError> {
        self.buf.drain(..self.at);
        self.at = 0;
        self.buf.reserve(64 * 1024);
        let addr = self.addr;
        match tokio::time::timeout(self.timeout, self.stream.read_buf(&mut self.buf)).await {
            Ok(Ok(n)) if n > 0 => Ok(()),
            Ok(Ok(_)) => Err(FetchError::ClosedEarly { addr }),
            Ok(Err(source)) => Err(FetchError::Io { addr, source }),
            Err(_) => Err(FetchError::Silent { addr, ms: self.timeout.as_millis() as u64 }),
        }
    }
}

/// Why a fetch from a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The peer collapsed `from_i` away: its log starts at `first_i`; the slots before are in
    /// its head (fetch it with `fetch_head`).
    #[error("{addr} collapsed slot {from_i} away: its TLog starts at slot {first_i}; fetch its head (fetch_head), then the entries from there")]
    Collapsed { addr: SocketAddr, from_i: u64, first_i: u64 },
    #[error("connecting to {addr} timed out after {ms} ms: is the node running?")]
    ConnectTimeout { addr: SocketAddr, ms: u64 },
    #[error("connecting to {addr}: {source}: is the node running?")]
    Connect { addr: SocketAddr, source: std::io::Error },
    #[error("{addr}: {source}")]
    Io { addr: SocketAddr, source: std::io::Error },
    #[error("{addr} closed the connection early")]
    ClosedEarly { addr: SocketAddr },
    #[error("{addr} went silent for {ms} ms")]
    Silent { addr: SocketAddr, ms: u64 },
    /// The peer sent bytes that do not decode: a peer of another version, or damage.
    #[error("{addr}: bad {what}: {error}")]
    BadFrame { addr: SocketAddr, what: &'static str, error: DecodeError },
    /// The peer answered the request with a failure.
    #[error("{addr} refused {command}: {rc}: {message}")]
    Refused {
        addr: SocketAddr,
        /// The request, with its arguments ("catchup_entries 5..=9").
        command: String,
        rc: Rc,
        /// The peer's message, as it sent it.
        message: String,
    },
    /// The peer answered with a reply of another kind than the request's (for a collapse, a
    /// negative count of steps).
    #[error("{addr}: unexpected answer to {command}: {answer:?}")]
    Unexpected { addr: SocketAddr, command: &'static str, answer: Box<Payload> },
    /// The fetched head could not be kept in a new store at `dest` (removed again).
    #[error("keeping the fetched head in {}: {source}", dest.display())]
    Import { dest: std::path::PathBuf, source: crate::store::StoreError },
    /// The peer's stream skipped or repeated a slot.
    #[error("{addr} sent slot {i} where {expected} was due")]
    OutOfOrder { addr: SocketAddr, i: u64, expected: u64 },
    #[error("{addr} sent slot {i}, beyond the {to_i} asked for")]
    BeyondRange { addr: SocketAddr, i: u64, to_i: u64 },
    /// The peer said its log was collapsed after it had sent slots: a peer that collapsed
    /// under the fetch; fetching again starts with its head.
    #[error("{addr} said its TLog starts at slot {first_i} after it sent slots up to {last}")]
    CollapsedMidStream { addr: SocketAddr, first_i: u64, last: u64 },
    /// A head of another cluster: the node's configuration names a peer of another cluster.
    #[error(
        "{addr} sent the head of cluster {theirs:?}; check the node addresses in the configuration"
    )]
    OtherCluster { addr: SocketAddr, theirs: String },
    #[error("{addr} announced {announced} pairs but sent {sent}")]
    PairCount { addr: SocketAddr, announced: u64, sent: u64 },
    /// The thread that imports a fetched head into a new store stopped taking pairs.
    #[error("the import of the fetched head stopped early")]
    ImportStopped,
    /// The thread that imports a fetched head into a new store failed (panicked).
    #[error("the thread importing the fetched head failed: {0}")]
    ImportThread(tokio::task::JoinError),
    /// The taker of the fetched chunks could not keep one.
    #[error(transparent)]
    Chunk(#[from] ChunkError),
}

/// Why the taker of fetched chunks ([`AsyncChunk`]) could not keep one.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// The running node's core is gone (it is stopping).
    #[error("the node stopped")]
    NodeStopped,
    #[error("appending the fetched entries to the TLog: {0}")]
    Tlog(#[source] crate::tlog::TlogError),
    #[error("applying the fetched entries to the store: {0}")]
    Store(#[source] crate::store::StoreError),
}

/// What a catch-up is fetching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A collapsed peer's head (`get_db`); `done` counts its pairs.
    Head,
    /// Committed entries (`last_entries`); `done` counts slots.
    Entries,
}

/// How far a fetch has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub phase: Phase,
    pub done: u64,
    /// How many there are, when known (slots asked for; a head's pair count is not announced).
    pub total: Option<u64>,
    pub bytes: u64,
}

/// Where progress goes.
pub type OnProgress<'a> = &'a mut (dyn FnMut(&Progress) + Send);

/// Logs a catch-up's progress at most every [`PROGRESS_LOG_MS`] (and each phase's first report).
#[derive(Debug, Default)]
pub struct ProgressLog {
    last: Option<(Phase, tokio::time::Instant)>,
    started: Option<tokio::time::Instant>,
}

impl ProgressLog {
    pub fn report(&mut self, p: &Progress) {
        let now = tokio::time::Instant::now();
        let started = *self.started.get_or_insert(now);
        let due = self.last.is_none_or(|(phase, at)| {
            phase != p.phase || now.duration_since(at) >= Duration::from_millis(PROGRESS_LOG_MS)
        });
        if !due {
            return;
        }
        self.last = Some((p.phase, now));
        let secs = now.duration_since(started).as_secs_f64().max(1e-3);
        let of = p.total.map_or(String::new(), |t| format!(" of {t}"));
        let what = match p.phase {
            Phase::Head => "head pairs",
            Phase::Entries => "slots",
        };
        tracing::info!(
            "catch-up: {}{of} {what} fetched, {:.1} MB ({:.1} MB/s)",
            p.done,
            p.bytes as f64 / 1e6,
            p.bytes as f64 / 1e6 / secs
        );
    }
}

/// Fetches the committed entries `from_i..=to_i` from the node whose client port is `addr`,
/// calling `chunk` with consecutive runs of entries. Returns the last slot received (`None` if
/// none). Fewer than asked is not an error here: the caller decides.
pub async fn fetch_entries<N: Network, F: AsyncChunk>(
    net: &N,
    addr: SocketAddr,
    cluster_id: &str,
    (from_i, to_i): (u64, u64),
    chunk: F,
    progress: OnProgress<'_>,
) -> Result<Option<u64>, FetchError> {
    let request = Request::CatchupEntries { from_i, to_i };
    let (mut stream, reply) =
        ReplyStream::open(net, addr, cluster_id, &request, SILENCE_TIMEOUT_MS).await?;
    if let Err((rc, message)) = reply {
        let command = format!("catchup_entries {from_i}..={to_i}");
        return Err(FetchError::Refused { addr, command, rc, message });
    }
    receive_entries(&mut stream, (from_i, to_i), chunk, progress).await
}

async fn receive_entries<S: Stream, F: AsyncChunk>(
    stream: &mut ReplyStream<S>,
    (from_i, to_i): (u64, u64),
    mut chunk: F,
    progress: OnProgress<'_>,
) -> Result<Option<u64>, FetchError> {
    let addr = stream.addr;
    let mut state =
        Progress { phase: Phase::Entries, done: 0, total: Some(to_i - from_i + 1), bytes: 0 };
    progress(&state);
    let mut last: Option<u64> = None;
    let mut pending: Vec<(u64, Value)> = Vec::new();
    let mut pending_bytes = 0usize;
    loop {
        match stream.next("entry", EntryFrame::decode).await? {
            (EntryFrame::Entry(i, value), n) => {
                let expected = last.map_or(from_i, |l| l + 1);
                if i != expected {
                    return Err(FetchError::OutOfOrder { addr, i, expected });
                }
                if i > to_i {
                    return Err(FetchError::BeyondRange { addr, i, to_i });
                }
                last = Some(i);
                pending_bytes += n;
                pending.push((i, value));
                if pending.len() >= CHUNK_ENTRIES || pending_bytes >= CHUNK_BYTES {
                    state.done += pending.len() as u64;
                    state.bytes += pending_bytes as u64;
                    chunk.take(std::mem::take(&mut pending)).await?;
                    pending_bytes = 0;
                    progress(&state);
                }
            }
            (EntryFrame::Collapsed { first_i }, _) if last.is_none() => {
                return Err(FetchError::Collapsed { addr, from_i, first_i });
            }
            (EntryFrame::Collapsed { first_i }, _) => {
                let last = last.unwrap_or(from_i);
                return Err(FetchError::CollapsedMidStream { addr, first_i, last });
            }
            (EntryFrame::End, _) => {
                if !pending.is_empty() {
                    state.done += pending.len() as u64;
                    state.bytes += pending_bytes as u64;
                    chunk.take(pending).await?;
                }
                progress(&state);
                return Ok(last);
            }
        }
    }
}

/// Where fetched chunks go.
pub trait AsyncChunk {
    fn take(
        &mut self,
        entries: Vec<(u64, Value)>,
    ) -> impl std::future::Future<Output = Result<(), ChunkError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::env::TokioNet;

    async fn fetch(addr: SocketAddr) -> FetchError {
        let chunk = Sink;
        fetch_entries(&TokioNet, addr, "c", (0, 10), chunk, &mut |_| {}).await.unwrap_err()
    }

    struct Sink;
    impl AsyncChunk for Sink {
        async fn take(&mut self, _: Vec<(u64, Value)>) -> Result<(), ChunkError> {
            Ok(())
        }
    }

    /// Each way a peer can fail is its own variant, with the address in its text.
    #[tokio::test]
    async fn a_failed_fetch_says_which_way_it_failed() {
        // Nothing listens: a bound port, closed again.
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let e = fetch(addr).await;
        assert!(matches!(e, FetchError::Connect { .. }), "{e:?}");
        assert!(e.to_string().contains(&addr.to_string()), "{e}");

        // A peer that hangs up without a word.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            // Read the request first: closing with unread bytes would be a reset, not an end.
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf).await;
            let _ = s.shutdown().await;
        });
        let e = fetch(addr).await;
        assert!(matches!(e, FetchError::ClosedEarly { addr: a } if a == addr), "{e:?}");
        server.await.unwrap();

        // A peer that refuses: rc not_found and its message.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut out = Vec::new();
            crate::protocol::client::encode_error(Rc::NotFound, b"not committed yet", &mut out);
            s.write_all(&out).await.unwrap();
            // Hold the connection until the client has read the answer.
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest).await;
        });
        let e = fetch(addr).await;
        match &e {
            FetchError::Refused { rc, message, .. } => {
                assert_eq!((*rc, message.as_str()), (Rc::NotFound, "not committed yet"));
            }
            other => panic!("{other:?}"),
        }
        drop(e);
        server.await.unwrap();
    }

    /// A peer whose stream breaks the protocol's order is named with the slot it sent and the
    /// one that was due, and a taker that cannot keep a chunk says why, as typed errors.
    #[tokio::test]
    async fn a_stream_out_of_order_and_a_chunk_not_kept_are_typed() {
        use crate::llio::Put;
        // rc 0, then slot 1 where slot 0 was due.
        let serve = |frames: Vec<EntryFrame>| async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut out = Vec::new();
                out.put_i32(Rc::Ok.code() as i32);
                for f in frames {
                    f.encode(&mut out);
                }
                s.write_all(&out).await.unwrap();
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest).await;
            });
            (addr, server)
        };
        let (addr, server) = serve(vec![EntryFrame::Entry(1, Value::client(Vec::new()))]).await;
        let e = fetch(addr).await;
        assert!(matches!(e, FetchError::OutOfOrder { i: 1, expected: 0, .. }), "{e:?}");
        assert_eq!(e.to_string(), format!("{addr} sent slot 1 where 0 was due"));
        server.await.unwrap();

        struct Stopped;
        impl AsyncChunk for Stopped {
            async fn take(&mut self, _: Vec<(u64, Value)>) -> Result<(), ChunkError> {
                Err(ChunkError::NodeStopped)
            }
        }
        let entry = EntryFrame::Entry(0, Value::client(Vec::new()));
        let (addr, server) = serve(vec![entry, EntryFrame::End]).await;
        let e = fetch_entries(&TokioNet, addr, "c", (0, 10), Stopped, &mut |_| {}).await;
        let e = e.unwrap_err();
        assert!(matches!(e, FetchError::Chunk(ChunkError::NodeStopped)), "{e:?}");
        assert_eq!(e.to_string(), "the node stopped");
        server.await.unwrap();
    }
}
