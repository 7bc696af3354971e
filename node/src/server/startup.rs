//! Start-up: validate the TLog and the store before serving anything.
//!
//! A node that cannot vouch for its files refuses to start, with Arakoon's exit code and a
//! message that names the file, the offset, the slot and the command that repairs it. An unclean
//! stop is not such a case: the store is derived, and replay restores whatever a crash lost.

use crate::config::{ClusterConfig, NodeConfig};
use crate::replay::{self, ReplayError};
use crate::store::{SledStore, StoreError};
use crate::tlog::{self, BallotRecord, FsDir, LogDir, TlogConfig, TlogError, TlogWriter};
use crate::value::Value;
use std::path::PathBuf;
use std::sync::Arc;
use thiserror::Error;

/// Why a node refused to start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error("home directory {path}: {reason}")]
    BadHome { path: String, reason: String },
    #[error("TLog directory {path}: {reason}")]
    BadTlogDir { path: String, reason: String },
    #[error("{error}\n  repair: {}", error.repair())]
    Tlog { error: TlogError },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Replay(ReplayError),
}

impl StartError {
    /// The process exit code (Arakoon's numbers where it had one).
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::BadHome { .. } => 44,
            StartError::BadTlogDir { .. } => 43,
            StartError::Tlog { error } => error.exit_code(),
            StartError::Store(StoreError::WrongCluster { .. }) => 45,
            StartError::Store(_) => 45,
            StartError::Replay(e) => e.exit_code(),
        }
    }
}

impl From<TlogError> for StartError {
    fn from(error: TlogError) -> Self {
        StartError::Tlog { error }
    }
}

impl From<ReplayError> for StartError {
    fn from(e: ReplayError) -> Self {
        match e {
            ReplayError::Tlog(error) => StartError::Tlog { error },
            other => StartError::Replay(other),
        }
    }
}

/// Where a node keeps its files.
pub fn store_path(node: &NodeConfig) -> PathBuf {
    node.home.join("store")
}

/// Everything a validated node starts from.
pub struct Prepared {
    pub dir: Arc<dyn LogDir>,
    pub writer: TlogWriter,
    pub store: SledStore,
    pub ballot: BallotRecord,
    /// The log's last slot and its value.
    pub last: Option<(u64, Value)>,
    /// The slot before it, if the log holds it.
    pub prev: Option<(u64, Value)>,
    pub closed_cleanly: bool,
}

fn ensure_dir(path: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
    let probe = path.join(".arakoon-write-probe");
    std::fs::write(&probe, b"").map_err(|e| format!("not writable: {e}"))?;
    std::fs::remove_file(&probe).map_err(|e| e.to_string())
}

/// Validates and opens a node's TLog and store, and replays what the store lacks.
pub fn prepare(config: &ClusterConfig, node: &NodeConfig) -> Result<Prepared, StartError> {
    ensure_dir(&node.home)
        .map_err(|reason| StartError::BadHome { path: node.home.display().to_string(), reason })?;
    ensure_dir(&node.tlog_dir).map_err(|reason| StartError::BadTlogDir {
        path: node.tlog_dir.display().to_string(),
        reason,
    })?;
    let dir: Arc<dyn LogDir> = Arc::new(FsDir::open(&node.tlog_dir).map_err(|e| {
        StartError::BadTlogDir { path: node.tlog_dir.display().to_string(), reason: e.to_string() }
    })?);
    let tlog_config = TlogConfig {
        entries_per_file_max: config.tlog_max_entries,
        file_bytes_max: config.tlog_max_size,
    };
    // Validates the whole log first: any damage stops the start here.
    let (writer, report) = TlogWriter::open(dir.clone(), tlog_config, &node.name)?;
    let ballot = BallotRecord::load(dir.as_ref())?;
    let mut store = SledStore::open(&store_path(node), &config.cluster_id)?;
    let single = config.nodes.len() == 1;
    replay::replay(dir.as_ref(), &mut store, single, &mut |_| {})?;
    let (last, prev) = tlog::last_two(dir.as_ref())?;
    debug_assert_eq!(last.as_ref().map(|(i, _)| *i), report.last_i);
    Ok(Prepared { dir, writer, store, ballot, last, prev, closed_cleanly: report.closed_cleanly })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::value::Update;

    fn config(dir: &std::path::Path) -> ClusterConfig {
        let text = format!(
            "[global]\ncluster = n0\ncluster_id = c\n[n0]\nip = 127.0.0.1\nclient_port = 1\n\
             messaging_port = 2\nhome = {}\n",
            dir.display()
        );
        ClusterConfig::parse(&text, "t.ini").unwrap()
    }

    fn value(i: u64) -> Value {
        Value::client(vec![Update::Set { key: format!("k{i}").into_bytes(), value: vec![1] }])
    }

    #[test]
    fn a_healthy_node_starts_with_its_store_replayed() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(tmp.path());
        let p = prepare(&cfg, &cfg.nodes[0]).unwrap();
        let mut w = p.writer;
        for i in 0..5 {
            w.append(&[(i, &value(i))]).unwrap();
        }
        w.close().unwrap();
        drop(p.store);
        let p = prepare(&cfg, &cfg.nodes[0]).unwrap();
        assert!(p.closed_cleanly);
        assert_eq!(p.last, Some((4, value(4))));
        assert_eq!(p.store.applied(), Some(4), "a 1-node cluster applies its last slot too");
    }

    #[test]
    fn a_torn_tlog_refuses_to_start_with_exit_48_and_the_repair() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(tmp.path());
        {
            let p = prepare(&cfg, &cfg.nodes[0]).unwrap();
            let mut w = p.writer;
            w.append(&[(0, &value(0))]).unwrap();
        }
        let file = tmp.path().join("000.tlog");
        let mut bytes = std::fs::read(&file).unwrap();
        bytes.extend_from_slice(&[7, 0, 0]);
        std::fs::write(&file, &bytes).unwrap();
        let err = prepare(&cfg, &cfg.nodes[0]).err().expect("refuses to start");
        assert_eq!(err.exit_code(), 48);
        let msg = err.to_string();
        assert!(msg.contains("000.tlog") && msg.contains("arakoon-admin tlog truncate"), "{msg}");
    }

    #[test]
    fn a_store_of_another_cluster_refuses_to_start() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(tmp.path());
        drop(SledStore::open(&store_path(&cfg.nodes[0]), "other").unwrap());
        let err = prepare(&cfg, &cfg.nodes[0]).err().expect("refuses to start");
        assert_eq!(err.exit_code(), 45);
        assert!(err.to_string().contains("other"), "{err}");
    }
}
