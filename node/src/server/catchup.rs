//! Catch-up, the catching side: fetch committed entries from a peer's client port with
//! `last_entries`, in chunks, checking that they come in order without a gap; and when the peer
//! has collapsed the slots asked for into its head, fetch that head (`get_db`) and adopt it first
//! ([`crate::head::adopt_head`]), then fetch the entries after it.
//!
//! The running node's core takes the chunks (it appends them to the TLog and applies them) and
//! adopts a fetched head between two chunks ([`fetch_for_core`]); `arakoon --catchup-only` and
//! `arakoon-admin catchup` write them on a stopped node (server/rebuild.rs). Both hear
//! [`Progress`] as the fetch goes.

use super::env::{Network, Stream};
use crate::config::{ClusterConfig, NodeConfig};
use crate::head;
use crate::llio::VALUE_BYTES_MAX;
use crate::protocol::client::{decode_reply, encode_prologue, EntryFrame, Payload, Reply, Request};
use crate::rc::Rc;
use crate::store::{SledStore, Store};
use crate::tlog::{LogDir, TlogWriter};
use crate::value::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

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
pub(super) struct ReplyStream<S> {
    stream: S,
    buf: Vec<u8>,
    at: usize,
    pub addr: SocketAddr,
    timeout: Duration,
}

impl<S: Stream> ReplyStream<S> {
    /// Sends `request` to `addr` and reads its return code. The outer error is a failure to talk
    /// to the peer; the inner one is the peer's refusal (its return code and message).
    pub(super) async fn open<N: Network<Stream = S>>(
        net: &N,
        addr: SocketAddr,
        cluster_id: &str,
        request: &Request,
        timeout_ms: u64,
    ) -> Result<(ReplyStream<S>, Result<Payload, (Rc, String)>), String> {
        let timeout = Duration::from_millis(timeout_ms);
        let mut stream = tokio::time::timeout(timeout, net.connect(addr))
            .await
            .map_err(|_| format!("connecting to {addr} timed out"))?
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        let mut out = Vec::new();
        encode_prologue(cluster_id, &mut out);
        request.encode(&mut out);
        stream.write_all(&out).await.map_err(|e| format!("{addr}: {e}"))?;
        let mut me =
            ReplyStream { stream, buf: Vec::with_capacity(64 * 1024), at: 0, addr, timeout };
        loop {
            match decode_reply(request.reply_kind(), &me.buf, VALUE_BYTES_MAX)
                .map_err(|e| format!("{addr}: bad reply: {e}"))?
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
    pub(super) async fn next<T, E: std::fmt::Display>(
        &mut self,
        what: &str,
        decode: impl Fn(&[u8]) -> Result<Option<(T, usize)>, E>,
    ) -> Result<(T, usize), String> {
        loop {
            match decode(&self.buf[self.at..])
                .map_err(|e| format!("{}: bad {what}: {e}", self.addr))?
            {
                Some((frame, used)) => {
                    self.at += used;
                    return Ok((frame, used));
                }
                None => self.read_more().await?,
            }
        }
    }

    async fn read_more(&mut self) -> Result<(), String> {
        self.buf.drain(..self.at);
        self.at = 0;
        self.buf.reserve(64 * 1024);
        match tokio::time::timeout(self.timeout, self.stream.read_buf(&mut self.buf)).await {
            Ok(Ok(n)) if n > 0 => Ok(()),
            Ok(Ok(_)) => Err(format!("{} closed the connection early", self.addr)),
            Ok(Err(e)) => Err(format!("{}: {e}", self.addr)),
            Err(_) => Err(format!("{} went silent for {} ms", self.addr, self.timeout.as_millis())),
        }
    }
}

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The peer collapsed `from_i` away: its log starts at `first_i`; the slots before are in
    /// its head (fetch it with `get_db`).
    #[error("{message}")]
    Collapsed { first_i: u64, message: String },
    #[error("{0}")]
    Other(String),
}

impl From<String> for FetchError {
    fn from(s: String) -> Self {
        FetchError::Other(s)
    }
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
        let message = format!("{addr} refused catchup_entries {from_i}..={to_i}: {rc}: {message}");
        let first_i = (rc == Rc::OutsideInterval)
            .then(|| message.split("starts at slot ").nth(1))
            .flatten()
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok());
        return Err(match first_i {
            Some(first_i) => FetchError::Collapsed { first_i, message },
            None => FetchError::Other(message),
        });
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
                    return Err(format!("{addr} sent slot {i} where {expected} was due").into());
                }
                if i > to_i {
                    return Err(format!("{addr} sent slot {i}, beyond the {to_i} asked for").into());
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
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;
}

/// What the catch-up task hands the running node's core.
pub enum Fetched {
    Entries(Vec<(u64, Value)>),
    /// A collapsed peer's head, fetched and ready: the core adopts it ([`adopt_running`]) and
    /// answers once done; the entries after it follow.
    Head(FetchedHead, oneshot::Sender<()>),
}

/// Chunks into a channel (the running node's core takes them).
impl AsyncChunk for mpsc::Sender<Fetched> {
    async fn take(&mut self, entries: Vec<(u64, Value)>) -> Result<(), String> {
        self.send(Fetched::Entries(entries)).await.map_err(|_| "the node stopped".to_string())
    }
}

/// A peer's head fetched beside a node's files (`head.db.incoming`) and flushed, with the store's
/// copy of it built (`<store>.from-head`): ready for [`crate::head::adopt_head`].
#[derive(Debug)]
pub struct FetchedHead {
    /// The last slot the head holds.
    pub head_i: u64,
    pub incoming: PathBuf,
    pub store_copy: PathBuf,
}

/// Fetches the head of the peer at `addr` for the node whose TLog is at `tlog_dir` and store at
/// `store`. Nothing of the node changes: a failure leaves directories that the next try removes.
pub async fn fetch_head<N: Network>(
    net: &N,
    addr: SocketAddr,
    cluster_id: &str,
    (tlog_dir, store): (&Path, &Path),
    progress: OnProgress<'_>,
) -> Result<FetchedHead, String> {
    let incoming = head::incoming_head_path(tlog_dir);
    let store_copy = head::store_copy_path(store);
    for leftover in [&incoming, &store_copy] {
        if leftover.exists() {
            std::fs::remove_dir_all(leftover)
                .map_err(|e| format!("removing {}: {e}", leftover.display()))?;
        }
    }
    let fetched = super::collapse::fetch_db(net, addr, cluster_id, &incoming, progress).await?;
    let Some(head_i) = fetched.applied() else {
        drop(fetched);
        let _ = std::fs::remove_dir_all(&incoming);
        return Err(format!("{addr} sent a head that holds no slot"));
    };
    let (copy, id) = (store_copy.clone(), cluster_id.to_string());
    tokio::task::spawn_blocking(move || {
        let copied = SledStore::import(&copy, &id, fetched.export());
        copied.map(drop).map_err(|e| format!("copying the fetched head for the store: {e}"))
    })
    .await
    .map_err(|e| format!("copying the fetched head: {e}"))??;
    Ok(FetchedHead { head_i, incoming, store_copy })
}

/// Adopts a fetched head on a node whose TLog writer and store are closed (steps 1 to 4 of
/// [`crate::head::adopt_head`]), then opens both again: the store holds the head, the log is one
/// empty file after it.
pub fn adopt_closed(
    fetched: &FetchedHead,
    dir: Arc<dyn LogDir>,
    config: &ClusterConfig,
    node: &NodeConfig,
) -> Result<(TlogWriter, SledStore), String> {
    head::adopt_head(dir.as_ref(), &node.tlog_dir, &fetched.incoming, &mut |step| {
        tracing::info!(node = %node.name, ?step, "adopting a peer's head");
        true
    })
    .map_err(|e| e.to_string())?;
    let store_path = super::startup::store_path(node);
    head::replace_store(&fetched.store_copy, &store_path).map_err(|e| e.to_string())?;
    let store = SledStore::open(&store_path, &config.cluster_id).map_err(|e| e.to_string())?;
    assert_eq!(store.applied(), Some(fetched.head_i), "the adopted store is the head's copy");
    let (writer, _) =
        TlogWriter::open(dir, config.tlog(), &node.name).map_err(|e| e.to_string())?;
    assert_eq!(writer.last_i(), None, "the log restarts empty after an adopted head");
    Ok((writer, store))
}

/// [`adopt_closed`] for the running node's core, whose store is replaced in place (the core
/// always owns one: an empty store stands in while the directories are swapped; sled closes a
/// store only by dropping it). The core closed its TLog writer first; the new one is returned.
pub fn adopt_running(
    store: &mut SledStore,
    fetched: &FetchedHead,
    dir: Arc<dyn LogDir>,
    config: &ClusterConfig,
    node: &NodeConfig,
) -> Result<TlogWriter, String> {
    let stand_in = head::with_suffix(&super::startup::store_path(node), "stand-in");
    if stand_in.exists() {
        std::fs::remove_dir_all(&stand_in)
            .map_err(|e| format!("removing {}: {e}", stand_in.display()))?;
    }
    let empty = SledStore::open(&stand_in, &config.cluster_id).map_err(|e| e.to_string())?;
    drop(std::mem::replace(store, empty));
    let (writer, adopted) = adopt_closed(fetched, dir, config, node)?;
    drop(std::mem::replace(store, adopted));
    let _ = std::fs::remove_dir_all(&stand_in);
    Ok(writer)
}

/// What the running node's catch-up task needs to fetch a collapsed peer's head.
pub struct HeadSide {
    pub tlog_dir: PathBuf,
    pub store: PathBuf,
    /// The node's head lock (server/collapse.rs): no collapse or `get_db` of this node runs while
    /// its head is replaced.
    pub lock: Arc<tokio::sync::Mutex<()>>,
}

/// The running node's catch-up: the entries `from_i..=to_i` from the peer at `addr` into `tx`;
/// when the peer collapsed them, its head first (handed to the core to adopt), then the entries
/// after it. Progress goes to the node's log.
pub async fn fetch_for_core<N: Network>(
    net: &N,
    addr: SocketAddr,
    cluster_id: &str,
    (from_i, to_i): (u64, u64),
    side: HeadSide,
    tx: mpsc::Sender<Fetched>,
) -> Result<Option<u64>, String> {
    let mut log = ProgressLog::default();
    let mut report = |p: &Progress| log.report(p);
    let first = fetch_entries(net, addr, cluster_id, (from_i, to_i), tx.clone(), &mut report).await;
    let first_i = match first {
        Err(FetchError::Collapsed { first_i, .. }) => first_i,
        other => return other.map_err(|e| e.to_string()),
    };
    tracing::info!(%addr, from_i, first_i, "the peer collapsed the slots this node needs: fetching its head");
    let guard = side.lock.clone().lock_owned().await;
    let fetched =
        fetch_head(net, addr, cluster_id, (&side.tlog_dir, &side.store), &mut report).await?;
    let head_i = fetched.head_i;
    let (reply, adopted) = oneshot::channel();
    tx.send(Fetched::Head(fetched, reply)).await.map_err(|_| "the node stopped".to_string())?;
    adopted.await.map_err(|_| "the node stopped while adopting the head".to_string())?;
    drop(guard);
    tracing::info!(%addr, head_i, "adopted the peer's head; fetching the entries after it");
    // At least one slot after the head, so that the log holds a last slot again; a peer that
    // committed none yet leaves the node at the head (its next Accept fetches on).
    let after =
        fetch_entries(net, addr, cluster_id, (head_i + 1, to_i.max(head_i + 1)), tx, &mut report)
            .await;
    match after {
        Err(e) if head_i >= to_i => {
            tracing::info!(%addr, "nothing after the head yet: {e}");
            Ok(Some(head_i))
        }
        other => other.map_err(|e| e.to_string()),
    }
}
