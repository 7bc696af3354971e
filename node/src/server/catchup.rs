//! Catch-up, the catching side: fetch committed entries from a peer's client port with
//! `last_entries`, in chunks, checking that they come in order without a gap; and when the peer
//! has collapsed the slots asked for into its head, fetch that head (`get_db`) and adopt it first
//! ([`crate::head::adopt_head`]), then fetch the entries after it.
//!
//! The fetching itself, the client side, lives in client/fetch.rs. The running node's event loop
//! takes the chunks (it appends them to the TLog and applies them) and adopts a fetched head
//! between two chunks ([`fetch_for_core`]); `arakoon --catchup-only` and
//! `arakoon-admin catchup` write them on a stopped node (server/rebuild.rs). Both hear
//! [`Progress`] as the fetch goes.

use super::env::Network;
use crate::config::{ClusterConfig, NodeConfig};
use crate::head::{self, CollapseError, FileHead, HeadSpace};
use crate::store::{MemoryStore, SledStore, Store, StoreError};
use crate::tlog::{LogDir, TlogConfig, TlogError, TlogWriter};
use crate::value::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

pub use crate::client::fetch::{
    fetch_entries, AsyncChunk, ChunkError, FetchError, OnProgress, Phase, Progress, ProgressLog,
    CHUNK_BYTES, CHUNK_ENTRIES,
};

/// Why a catch-up ended without reaching its slot: the fetch failed, or a collapsed peer's head
/// could not be fetched or adopted. Every step of an adoption leaves files that start-up accepts,
/// so the cure is the same for each: run the catch-up again (the running node does by itself).
#[derive(Debug, thiserror::Error)]
pub enum CatchUpError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// A directory an earlier, interrupted try left could not be removed.
    #[error("removing {} (left by an earlier try): {source}", path.display())]
    Leftover { path: PathBuf, source: std::io::Error },
    #[error("{addr} sent a head that holds no slot")]
    EmptyHead { addr: SocketAddr },
    #[error("copying the fetched head for the store into {}: {source}", path.display())]
    CopyHead { path: PathBuf, source: StoreError },
    /// A blocking task of the catch-up (copying or installing the head) panicked.
    #[error("{what} failed: {source}")]
    Task { what: &'static str, source: tokio::task::JoinError },
    #[error("adopting the fetched head: {0}")]
    Adopt(#[source] CollapseError),
    #[error("replacing the store with the fetched head's copy: {0}")]
    ReplaceStore(#[source] CollapseError),
    #[error("opening the store {} after adopting the head: {source}", path.display())]
    OpenStore { path: PathBuf, source: StoreError },
    #[error("opening the TLog after adopting the head: {0}")]
    OpenTlog(#[source] TlogError),
    /// The running node's core is gone (it is stopping).
    #[error("the node stopped")]
    NodeStopped,
    #[error("the node stopped while adopting the head")]
    StoppedWhileAdopting,
    /// A head fetched to disk handed to a node whose store is in memory (tier B of the
    /// simulator), or the other way round: the node's storage decides how it fetches
    /// ([`HeadInto`]), so this is a bug.
    #[error("a head fetched for one storage (disk or memory) was handed to a node of the other")]
    OtherStorage,
}

/// What the catch-up task hands the running node's core.
pub enum Fetched {
    Entries(Vec<(u64, Value)>),
    /// A collapsed peer's head, fetched and ready: the core adopts it ([`adopt_running`]) and
    /// answers once done; the entries after it follow.
    Head(FetchedHead, oneshot::Sender<()>),
    /// The same for a node in memory: the core adopts it ([`adopt_in_memory`]).
    HeadInMemory(FetchedMemoryHead, oneshot::Sender<()>),
}

/// Chunks into a channel (the running node's core takes them).
impl AsyncChunk for mpsc::Sender<Fetched> {
    async fn take(&mut self, entries: Vec<(u64, Value)>) -> Result<(), ChunkError> {
        self.send(Fetched::Entries(entries)).await.map_err(|_| ChunkError::NodeStopped)
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
) -> Result<FetchedHead, CatchUpError> {
    let incoming = head::incoming_head_path(tlog_dir);
    let store_copy = head::store_copy_path(store);
    for leftover in [&incoming, &store_copy] {
        if leftover.exists() {
            std::fs::remove_dir_all(leftover)
                .map_err(|source| CatchUpError::Leftover { path: leftover.clone(), source })?;
        }
    }
    let fetched = crate::client::head::fetch_db(net, addr, cluster_id, &incoming, progress).await?;
    let Some(head_i) = fetched.applied() else {
        drop(fetched);
        let _ = std::fs::remove_dir_all(&incoming);
        return Err(CatchUpError::EmptyHead { addr });
    };
    let (copy, id) = (store_copy.clone(), cluster_id.to_string());
    tokio::task::spawn_blocking(move || {
        let copied = SledStore::import(&copy, &id, fetched.export());
        copied.map(drop).map_err(|source| CatchUpError::CopyHead { path: copy, source })
    })
    .await
    .map_err(|source| CatchUpError::Task { what: "copying the fetched head", source })??;
    Ok(FetchedHead { head_i, incoming, store_copy })
}

/// A peer's head fetched for a node in memory (tier B of the simulator): written where a
/// fetched head waits on the node's disk ([`crate::head::HEAD_INCOMING_FILE`], synced), as
/// [`fetch_head`] leaves `head.db.incoming`, and kept as the store's copy.
#[derive(Debug)]
pub struct FetchedMemoryHead {
    /// The last slot the head holds.
    pub head_i: u64,
    pub store: MemoryStore,
}

/// [`fetch_head`] for a node in memory whose head is `space` (a file on its disk): the peer's
/// head is fetched on the calling task into memory and written, synced, where a fetched head
/// waits; a leftover of an earlier try is removed first. Nothing of the node changes.
pub async fn fetch_head_in_memory<N: Network>(
    net: &N,
    addr: SocketAddr,
    cluster_id: &str,
    space: &FileHead,
    progress: OnProgress<'_>,
) -> Result<FetchedMemoryHead, CatchUpError> {
    let incoming = PathBuf::from(space.incoming_location());
    if space.incoming_exists() {
        space
            .remove_incoming()
            .map_err(|source| CatchUpError::Leftover { path: incoming.clone(), source })?;
    }
    let shown = space.incoming_location();
    let store =
        crate::client::head::fetch_db_in_memory(net, addr, cluster_id, &shown, progress).await?;
    let Some(head_i) = store.applied() else {
        return Err(CatchUpError::EmptyHead { addr });
    };
    space.write_incoming(&store).map_err(|source| CatchUpError::CopyHead {
        path: incoming.clone(),
        source: StoreError::Backend { path: incoming, source },
    })?;
    Ok(FetchedMemoryHead { head_i, store })
}

/// [`adopt_fetched`] on a running node in memory whose TLog writer is closed: its head a file
/// on its disk ([`FileHead`]), its new store the fetched head's copy. Returns the TLog writer,
/// opened again after the head, and the store.
pub fn adopt_in_memory(
    fetched: FetchedMemoryHead,
    dir: Arc<dyn LogDir>,
    config: &ClusterConfig,
    node: &NodeConfig,
) -> Result<(TlogWriter, MemoryStore), CatchUpError> {
    let space = FileHead::new(dir.clone());
    let FetchedMemoryHead { head_i, store } = fetched;
    adopt_fetched(dir, &space, head_i, (config.tlog(), &node.name), || Ok(store))
}

/// Adopts a fetched head on a node whose TLog writer and store are closed (steps 1 to 4 of
/// [`crate::head::adopt_head`]), then opens both again: the store holds the head, the log is one
/// empty file after it.
pub fn adopt_closed(
    fetched: &FetchedHead,
    dir: Arc<dyn LogDir>,
    config: &ClusterConfig,
    node: &NodeConfig,
) -> Result<(TlogWriter, SledStore), CatchUpError> {
    let head = head::head_path(&node.tlog_dir);
    let store_path = super::startup::store_path(node);
    let replace = || {
        head::replace_store(&fetched.store_copy, &store_path)
            .map_err(CatchUpError::ReplaceStore)?;
        SledStore::open(&store_path, &config.cluster_id)
            .map_err(|source| CatchUpError::OpenStore { path: store_path.clone(), source })
    };
    adopt_fetched(dir, &head, fetched.head_i, (config.tlog(), &node.name), replace)
}

/// The adoption's steps once a head is fetched, on a node whose TLog writer and store are
/// closed, whatever its disk: steps 1 to 3 ([`head::adopt_head`]) over `dir` and `head`, step 4
/// (`replace_store`: the head's copy put in place of the store, and opened), then the TLog
/// writer opened again, empty. The server runs it over its files ([`adopt_closed`]); the
/// simulator's world over a node's simulated disk, its head a file on it and its store in
/// memory (sim/src/world/adopt.rs), so that the world's crash points and disk faults strike
/// inside these very steps.
pub fn adopt_fetched<S: Store>(
    dir: Arc<dyn LogDir>,
    head: &dyn HeadSpace,
    head_i: u64,
    (tlog, name): (TlogConfig, &str),
    replace_store: impl FnOnce() -> Result<S, CatchUpError>,
) -> Result<(TlogWriter, S), CatchUpError> {
    head::adopt_head(dir.as_ref(), head, &mut |step| {
        tracing::info!(node = %name, ?step, "adopting a peer's head");
        true
    })
    .map_err(CatchUpError::Adopt)?;
    let store = replace_store()?;
    assert_eq!(store.applied(), Some(head_i), "the adopted store is the head's copy");
    let (writer, _) = TlogWriter::open(dir, tlog, name).map_err(CatchUpError::OpenTlog)?;
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
) -> Result<TlogWriter, CatchUpError> {
    let stand_in = head::with_suffix(&super::startup::store_path(node), "stand-in");
    if stand_in.exists() {
        std::fs::remove_dir_all(&stand_in)
            .map_err(|source| CatchUpError::Leftover { path: stand_in.clone(), source })?;
    }
    let empty = SledStore::open(&stand_in, &config.cluster_id)
        .map_err(|source| CatchUpError::OpenStore { path: stand_in.clone(), source })?;
    drop(std::mem::replace(store, empty));
    let (writer, adopted) = adopt_closed(fetched, dir, config, node)?;
    drop(std::mem::replace(store, adopted));
    let _ = std::fs::remove_dir_all(&stand_in);
    Ok(writer)
}

/// Where a running node fetches a collapsed peer's head to.
pub enum HeadInto {
    /// Beside its files: `<tlog_dir>/head.db.incoming` and `<store>.from-head` ([`fetch_head`]).
    Disk { tlog_dir: PathBuf, store: PathBuf },
    /// Into memory, written where a fetched head waits on its simulated disk
    /// ([`fetch_head_in_memory`]).
    Memory(FileHead),
}

/// What the running node's catch-up task needs to fetch a collapsed peer's head.
pub struct HeadSide {
    pub into: HeadInto,
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
) -> Result<Option<u64>, CatchUpError> {
    let mut log = ProgressLog::default();
    let mut report = |p: &Progress| log.report(p);
    let first = fetch_entries(net, addr, cluster_id, (from_i, to_i), tx.clone(), &mut report).await;
    let first_i = match first {
        Err(FetchError::Collapsed { first_i, .. }) => first_i,
        other => return Ok(other?),
    };
    tracing::info!(%addr, from_i, first_i, "the peer collapsed the slots this node needs: fetching its head");
    let guard = side.lock.clone().lock_owned().await;
    let (reply, adopted) = oneshot::channel();
    let (head_i, fetched) = match &side.into {
        HeadInto::Disk { tlog_dir, store } => {
            let fetched = fetch_head(net, addr, cluster_id, (tlog_dir, store), &mut report).await?;
            (fetched.head_i, Fetched::Head(fetched, reply))
        }
        HeadInto::Memory(space) => {
            let fetched = fetch_head_in_memory(net, addr, cluster_id, space, &mut report).await?;
            (fetched.head_i, Fetched::HeadInMemory(fetched, reply))
        }
    };
    tx.send(fetched).await.map_err(|_| CatchUpError::NodeStopped)?;
    adopted.await.map_err(|_| CatchUpError::StoppedWhileAdopting)?;
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
        other => Ok(other?),
    }
}
