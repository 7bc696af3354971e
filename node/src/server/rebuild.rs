//! Catch-up of a stopped node from a running peer: what an operator does for a node that lagged
//! far behind or lost its disk (`arakoon -catchup-only`, `arakoon-admin catchup`).
//!
//! The node's own files are validated first, exactly as at start-up. The most advanced peer that
//! answers gives its committed entries from the node's next slot on; they are appended to the
//! TLog and applied to the store as they arrive. A node whose log was empty (a lost disk, or a
//! new node) is marked a learner: it forgot what it promised and accepted, so it must not vote
//! until a master has committed a slot through it (docs/CONSENSUS.md, restart rule).

use super::catchup::{self, AsyncChunk};
use super::env::Network;
use super::startup::{prepare, StartError};
use crate::client::{ClientConfig, Connection};
use crate::config::ClusterConfig;
use crate::consensus::NodeIdx;
use crate::protocol::client::{Consistency, Payload, Reply, Request};
use crate::store::{SledStore, Store};
use crate::tlog::{BallotRecord, LogDir, TlogWriter};
use crate::value::Value;
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RebuildError {
    #[error("{0}")]
    Start(#[from] StartError),
    #[error("no peer answered with its committed slot: {0}; start at least one peer")]
    NoPeer(String),
    #[error("fetching from {peer}: {reason}")]
    Fetch { peer: String, reason: String },
    #[error("writing the fetched entries: {0}")]
    Write(String),
}

impl RebuildError {
    pub fn exit_code(&self) -> i32 {
        match self {
            RebuildError::Start(e) => e.exit_code(),
            RebuildError::NoPeer(_) | RebuildError::Fetch { .. } => 3,
            RebuildError::Write(_) => 4,
        }
    }
}

struct Sink<'a> {
    writer: &'a mut TlogWriter,
    store: &'a mut SledStore,
    count: u64,
}

impl AsyncChunk for &mut Sink<'_> {
    async fn take(&mut self, entries: Vec<(u64, Value)>) -> Result<(), String> {
        let refs: Vec<(u64, &Value)> = entries.iter().map(|(i, v)| (*i, v)).collect();
        self.writer.append(&refs).map_err(|e| e.to_string())?;
        self.store.apply_many(&entries).map_err(|e| e.to_string())?;
        self.count += entries.len() as u64;
        Ok(())
    }
}

/// Makes a peer's head this node's head and store, and starts the node's TLog afresh after it:
/// the head is fetched (`get_db`) into a new directory and renamed into place, an empty TLog file
/// numbered after the old ones is created, the old files (all below the head: the node was
/// behind the peer's log start) are removed lowest first, and the store is copied from the head.
/// A crash at any point leaves files that start-up accepts (a log from 000 beside a head, or a
/// collapsed log the head covers) and the catch-up can be run again.
async fn install_peer_head<N: Network>(
    config: &ClusterConfig,
    me: NodeIdx,
    net: &N,
    addr: std::net::SocketAddr,
    dir: Arc<dyn LogDir>,
    old: (TlogWriter, SledStore),
) -> Result<(TlogWriter, SledStore, u64), String> {
    // The old writer and store go first: the store is replaced, the files removed.
    drop(old);
    let node = &config.nodes[me];
    let head_path = crate::head::head_path(&node.tlog_dir);
    let mut incoming = head_path.as_os_str().to_os_string();
    incoming.push(".incoming");
    let incoming = std::path::PathBuf::from(incoming);
    if incoming.exists() {
        std::fs::remove_dir_all(&incoming).map_err(|e| format!("{}: {e}", incoming.display()))?;
    }
    let head = super::collapse::fetch_db(net, addr, &config.cluster_id, &incoming).await?;
    let head_i = head.applied().ok_or("the peer's head is empty")?;
    drop(head);
    let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
    if head_path.exists() {
        std::fs::remove_dir_all(&head_path).map_err(|e| io("removing the old head", e))?;
    }
    std::fs::rename(&incoming, &head_path).map_err(|e| io("moving the head in", e))?;
    dir.sync_dir().map_err(|e| io("syncing the TLog directory", e))?;
    let old = crate::tlog::list_files(dir.as_ref()).map_err(|e| e.to_string())?;
    let next = old.last().map_or(1, |f| f.number + 1);
    let fresh = crate::tlog::TlogFile::new(next, crate::tlog::FileKind::Tlog).name();
    drop(dir.create(&fresh).map_err(|e| io("creating the new TLog file", e))?);
    dir.sync_dir().map_err(|e| io("syncing the TLog directory", e))?;
    let names = dir.list().map_err(|e| io("listing the TLog directory", e))?;
    for file in &old {
        for name in names
            .iter()
            .filter(|n| crate::tlog::TlogFile::parse(n).is_some_and(|f| f.number == file.number))
        {
            dir.remove(name).map_err(|e| io(&format!("removing {name}"), e))?;
        }
    }
    dir.sync_dir().map_err(|e| io("syncing the TLog directory", e))?;
    let (config, node) = (config.clone(), node.clone());
    let (writer, store) = tokio::task::spawn_blocking(move || {
        let store = crate::head::copy_head_to_store(
            &head_path,
            &super::startup::store_path(&node),
            &config.cluster_id,
        )
        .map_err(|e| e.to_string())?;
        let tlog_config = crate::tlog::TlogConfig {
            entries_per_file_max: config.tlog_max_entries,
            file_bytes_max: config.tlog_max_size,
        };
        let (writer, _) =
            TlogWriter::open(dir, tlog_config, &node.name).map_err(|e| e.to_string())?;
        Ok::<_, String>((writer, store))
    })
    .await
    .map_err(|e| format!("installing the head: {e}"))??;
    Ok((writer, store, head_i))
}

/// Brings stopped node `me` up to the most advanced reachable peer. Returns a one-line report.
pub async fn catch_up_stopped_node<N: Network>(
    config: &ClusterConfig,
    me: NodeIdx,
    net: &N,
) -> Result<String, RebuildError> {
    let node = config.nodes[me].clone();
    let prepared = {
        let (config, node) = (config.clone(), node.clone());
        tokio::task::spawn_blocking(move || prepare(&config, &node))
            .await
            .expect("start-up validation does not panic")?
    };
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
        return Err(RebuildError::NoPeer(notes.join("; ")));
    };
    let peer_name = config.nodes[peer].name.clone();
    let mut count = 0;
    let mut from_i = from_i;
    let mut from_head = None;
    if to_i >= from_i {
        let addr = client.nodes[peer].1;
        let mut sink = Sink { writer: &mut writer, store: &mut store, count: 0 };
        let fetched =
            catchup::fetch_typed(net, addr, &config.cluster_id, from_i, to_i, &mut sink).await;
        let fetched = match fetched {
            Err(catchup::FetchError::Collapsed { first_i, .. }) => {
                // The peer collapsed the slots we need: take its head, then the entries after.
                tracing::info!(peer = %peer_name, first_i, "the peer's log is collapsed: fetching its head");
                let old = (writer, store);
                let (w, s, head_i) = install_peer_head(config, me, net, addr, dir.clone(), old)
                    .await
                    .map_err(|reason| RebuildError::Fetch { peer: peer_name.clone(), reason })?;
                (writer, store) = (w, s);
                from_head = Some(head_i);
                from_i = store.next_i();
                let mut sink = Sink { writer: &mut writer, store: &mut store, count: 0 };
                let got = if to_i >= from_i {
                    catchup::fetch_typed(net, addr, &config.cluster_id, from_i, to_i, &mut sink)
                        .await
                } else {
                    Ok(Some(to_i))
                };
                count = sink.count;
                got
            }
            other => {
                count = sink.count;
                other
            }
        };
        let got = fetched
            .map_err(|e| RebuildError::Fetch { peer: peer_name.clone(), reason: e.to_string() })?;
        if got != Some(to_i) {
            return Err(RebuildError::Fetch {
                peer: peer_name,
                reason: format!("the stream ended at {got:?}, short of slot {to_i}"),
            });
        }
    }
    if (was_empty && count > 0) || from_head.is_some() {
        let record = BallotRecord { learner: true, ..prepared.ballot };
        record.store(dir.as_ref()).map_err(|e| RebuildError::Write(e.to_string()))?;
    }
    writer.close().map_err(|e| RebuildError::Write(e.to_string()))?;
    store.flush().map_err(|e| RebuildError::Write(e.to_string()))?;
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
