//! Catch-up of a stopped node from a running peer: what an operator does for a node that lagged
//! far behind or lost its disk (`arakoon -catchup-only`, `arakoon-admin catchup`).
//!
//! The node's own files are validated first, exactly as at start-up. The most advanced peer that
//! answers gives its committed entries from the node's next slot on; they are appended to the
//! TLog and applied to the store as they arrive. A node whose log was empty (a lost disk, or a
//! new node) is marked a learner: it forgot what it promised and accepted, so it must not vote
//! until a master has committed a slot through it (docs/CONSENSUS.md, restart rule).
//!
//! It runs over either [`Storage`]: on disk (the node's files, sled) for the operator's
//! commands, in memory for the simulator's tier B, whose operator repairs a node that refused a
//! damaged TLog the same way (its disk wiped, this catch-up, a start).

use super::catchup::{self, AsyncChunk, CatchUpError, ChunkError, FetchError};
use super::env::Network;
use super::startup::StartError;
use super::storage::{NodeStore, Storage};
use crate::client::{ClientConfig, Connection};
use crate::config::ClusterConfig;
use crate::consensus::NodeIdx;
use crate::protocol::client::{Consistency, Payload, Reply, Request};
use crate::store::{SledStore, Store, StoreError};
use crate::tlog::{BallotRecord, LogDir, TlogWriter};
use crate::value::Value;
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RebuildError {
    #[error("{0}")]
    Start(#[from] StartError),
    /// `notes` say, peer by peer, what each answered instead.
    #[error("no peer answered with its committed slot: {notes}; start at least one peer")]
    NoPeer { notes: String },
    #[error("fetching from {peer}: {source}")]
    Fetch { peer: String, source: FetchError },
    /// The peer collapsed the slots needed, and its head could not be installed.
    #[error("installing the head of {peer}: {source}")]
    Head { peer: String, source: CatchUpError },
    /// The peer's stream ended before the slot it had committed.
    #[error("fetching from {peer}: the stream ended at {got:?}, short of slot {to_i}; run the catch-up again")]
    Short { peer: String, got: Option<u64>, to_i: u64 },
    #[error("writing the fetched entries: {0}")]
    Write(#[source] WriteError),
}

/// What could not be written once the entries were fetched.
#[derive(Debug, Error)]
pub enum WriteError {
    #[error(transparent)]
    Tlog(#[from] crate::tlog::TlogError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl RebuildError {
    pub fn exit_code(&self) -> i32 {
        use crate::exit::NodeExit as NE;
        match self {
            RebuildError::Start(e) => e.exit_code(),
            RebuildError::NoPeer { .. }
            | RebuildError::Fetch { .. }
            | RebuildError::Head { .. }
            | RebuildError::Short { .. } => NE::CatchUpPeer.code(),
            RebuildError::Write(_) => NE::CatchUpWrite.code(),
        }
    }
}

struct Sink<'a> {
    writer: &'a mut TlogWriter,
    store: &'a mut NodeStore,
    count: u64,
}

impl AsyncChunk for &mut Sink<'_> {
    async fn take(&mut self, entries: Vec<(u64, Value)>) -> Result<(), ChunkError> {
        let refs: Vec<(u64, &Value)> = entries.iter().map(|(i, v)| (*i, v)).collect();
        self.writer.append(&refs).map_err(ChunkError::Tlog)?;
        self.store.apply_many(&entries).map_err(ChunkError::Store)?;
        self.count += entries.len() as u64;
        Ok(())
    }
}

/// Makes a peer's head this node's head and store, and starts the node's TLog afresh after it
/// (server/catchup.rs [`catchup::fetch_head`], then [`catchup::adopt_closed`]; every step leaves
/// files that start-up accepts, and the catch-up can be run again). In memory, the head is
/// fetched into the disk's head file and adopted with [`catchup::adopt_in_memory`].
async fn install_peer_head<N: Network>(
    config: &ClusterConfig,
    me: NodeIdx,
    (net, storage): (&N, &Storage),
    addr: std::net::SocketAddr,
    dir: Arc<dyn LogDir>,
    progress: catchup::OnProgress<'_>,
) -> Result<(TlogWriter, NodeStore, u64), CatchUpError> {
    let node = config.nodes[me].clone();
    if let Storage::Memory(_) = storage {
        let space = crate::head::FileHead::new(dir.clone());
        let fetched =
            catchup::fetch_head_in_memory(net, addr, &config.cluster_id, &space, progress).await?;
        let head_i = fetched.head_i;
        let (writer, store) = catchup::adopt_in_memory(fetched, dir, config, &node)?;
        return Ok((writer, NodeStore::Memory(store), head_i));
    }
    let paths = (node.tlog_dir.as_path(), super::startup::store_path(&node));
    let fetched =
        catchup::fetch_head(net, addr, &config.cluster_id, (paths.0, &paths.1), progress).await?;
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let (writer, store) = catchup::adopt_closed(&fetched, dir, &config, &node)?;
        Ok((writer, NodeStore::Sled(Box::new(store)), fetched.head_i))
    })
    .await
    .map_err(|source| CatchUpError::Task { what: "installing the head", source })?
}

/// Brings stopped node `me` up to the most advanced reachable peer, logging progress. Returns a
/// one-line report.
pub async fn catch_up_stopped_node<N: Network>(
    config: &ClusterConfig,
    me: NodeIdx,
    net: &N,
) -> Result<String, RebuildError> {
    let mut log = catchup::ProgressLog::default();
    catch_up_stopped_node_with(config, me, net, &mut |p| log.report(p)).await
}

/// [`catch_up_stopped_node`], telling `progress` how the fetch goes.
pub async fn catch_up_stopped_node_with<N: Network>(
    config: &ClusterConfig,
    me: NodeIdx,
    net: &N,
    progress: catchup::OnProgress<'_>,
) -> Result<String, RebuildError> {
    catch_up_stopped_node_on(config, me, (net, &Storage::Disk), progress).await
}

/// [`catch_up_stopped_node_with`] over `storage`: the node's files on disk, or the simulated
/// disk of a node in memory (its store is rebuilt from the log when it starts).
pub async fn catch_up_stopped_node_on<N: Network>(
    config: &ClusterConfig,
    me: NodeIdx,
    (net, storage): (&N, &Storage),
    progress: catchup::OnProgress<'_>,
) -> Result<String, RebuildError> {
    let node = config.nodes[me].clone();
    let prepared = storage.prepare(config, &node).await?;
    let dir: Arc<dyn LogDir> = prepared.dir.clone();
    let was_empty = prepared.last.is_none();
    let mut writer = prepared.writer;
    let mut store = prepared.store;

    // The most advanced peer, by the slot its store applied.
    let client = ClientConfig::from_cluster(config);
    let mut best: Option<(NodeIdx, u64)> = None;
    let mut notes = Vec::new();
    for (k, (name, addr)) in client.nodes.iter().enumerate() {
        if k == me {
            continue;
        }
        let conn =
            Connection::open(net, *addr, &config.cluster_id, client.connect_timeout, 1 << 20).await;
        let reply = match conn {
            Ok(mut c) => c.exchange(&Request::GetTxid, client.request_timeout).await.ok(),
            Err(e) => {
                notes.push(format!("{name}: {e}"));
                continue;
            }
        };
        match reply {
            Some(Reply::Ok(Payload::Consistency(Consistency::AtLeast(i)))) => {
                if best.is_none_or(|(_, b)| i > b) {
                    best = Some((k, i));
                }
            }
            Some(Reply::Ok(Payload::Consistency(_))) => notes.push(format!("{name}: empty")),
            other => notes.push(format!("{name}: {other:?}")),
        }
    }
    let from_i = store.next_i();
    let Some((peer, to_i)) = best else {
        return Err(RebuildError::NoPeer { notes: notes.join("; ") });
    };
    let peer_name = config.nodes[peer].name.clone();
    let mut count = 0;
    let mut from_i = from_i;
    let mut from_head = None;
    if to_i >= from_i {
        let addr = client.nodes[peer].1;
        let fetched = loop {
            let mut sink = Sink { writer: &mut writer, store: &mut store, count: 0 };
            let range = (from_i, to_i);
            let got = if to_i >= from_i {
                catchup::fetch_entries(net, addr, &config.cluster_id, range, &mut sink, progress)
                    .await
            } else {
                Ok(Some(to_i)) // the head reached to_i
            };
            count = sink.count;
            match got {
                Err(catchup::FetchError::Collapsed { first_i, .. }) if from_head.is_none() => {
                    // The peer collapsed the slots we need: take its head, then the entries after.
                    tracing::info!(peer = %peer_name, first_i, "the peer's log is collapsed: fetching its head");
                    // The old writer and store go first: the store is replaced, the files removed.
                    drop((writer, store));
                    let installed =
                        install_peer_head(config, me, (net, storage), addr, dir.clone(), progress)
                            .await;
                    let (w, s, head_i) = installed
                        .map_err(|source| RebuildError::Head { peer: peer_name.clone(), source })?;
                    (writer, store) = (w, s);
                    from_head = Some(head_i);
                    from_i = store.next_i();
                }
                other => break other,
            }
        };
        let got =
            fetched.map_err(|source| RebuildError::Fetch { peer: peer_name.clone(), source })?;
        if got != Some(to_i) {
            return Err(RebuildError::Short { peer: peer_name, got, to_i });
        }
    }
    if (was_empty && count > 0) || from_head.is_some() {
        let record = BallotRecord { learner: true, ..prepared.ballot };
        record.store(dir.as_ref()).map_err(|e| RebuildError::Write(e.into()))?;
    }
    writer.close().map_err(|e| RebuildError::Write(e.into()))?;
    store.flush().map_err(|e| RebuildError::Write(e.into()))?;
    let learner = if (was_empty && count > 0) || from_head.is_some() {
        "; it starts as a learner and votes once a master has caught it up"
    } else {
        ""
    };
    let head = from_head
        .map_or(String::new(), |h| format!(" after its head (slots up to {h}) from {peer_name}"));
    Ok(if count == 0 && from_head.is_none() {
        format!("{} is already at slot {to_i} of {peer_name}; nothing to fetch", node.name)
    } else {
        format!(
            "{} fetched {count} committed slots ({from_i}..={to_i}) from {peer_name}{head}{learner}",
            node.name
        )
    })
}
/// Whether the store at `store` is free for a catch-up of a stopped node: `Err` when it exists
/// and will not open for a reason a catch-up cannot mend, which is what a running node holding
/// its lock looks like. A store of another cluster or a damaged one is free: the catch-up
/// replaces it.
pub fn store_free(store: &Path, cluster_id: &str) -> Result<(), StoreError> {
    if !store.exists() {
        return Ok(());
    }
    match SledStore::open(store, cluster_id) {
        Ok(_) | Err(StoreError::WrongCluster { .. }) | Err(StoreError::Corrupt { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store held open (as a running node holds it) is not free; once let go, or absent, or of
    /// another cluster (the catch-up replaces it), it is.
    #[test]
    fn a_store_held_open_is_not_free_for_a_catch_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        assert!(store_free(&path, "c").is_ok(), "absent");
        let held = SledStore::open(&path, "c").unwrap();
        assert!(store_free(&path, "c").is_err(), "held by another opener");
        drop(held);
        assert!(store_free(&path, "c").is_ok(), "let go");
        assert!(store_free(&path, "other").is_ok(), "another cluster's store is replaced");
    }
}
