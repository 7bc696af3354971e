//! Start-up: validate the TLog and the store before serving anything.
//!
//! A node that cannot vouch for its files refuses to start, with Arakoon's exit code and a
//! message that names the file, the offset, the slot and the command that repairs it. An unclean
//! stop is not such a case: the store is derived, and replay restores whatever a crash lost.

use crate::config::{ClusterConfig, NodeConfig};
use crate::head::{self, CollapseError, StartProblem};
use crate::replay::{self, ReplayError};
use crate::store::{SledStore, Store, StoreError};
use crate::tlog::{BallotRecord, FsDir, LogDir, TlogError, TlogWriter};
use crate::value::Value;
use std::path::PathBuf;
use std::sync::Arc;
use thiserror::Error;

/// Why a node refused to start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error("home directory {path}: {reason}")]
    BadHome { path: String, reason: DirError },
    #[error("TLog directory {path}: {reason}")]
    BadTlogDir { path: String, reason: DirError },
    #[error("{error}\n  repair: {}", error.repair())]
    Tlog { error: TlogError },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Replay(ReplayError),
    #[error("{0}")]
    Collapsed(StartProblem),
    #[error("{0}")]
    Head(CollapseError),
}

impl StartError {
    /// The process exit code (Arakoon's numbers where it had one).
    pub fn exit_code(&self) -> i32 {
        use crate::exit::NodeExit as NE;
        match self {
            StartError::BadHome { .. } => NE::Home.code(),
            StartError::BadTlogDir { .. } => NE::TlogDir.code(),
            StartError::Tlog { error } => error.exit_code(),
            StartError::Store(_) => NE::Store.code(),
            StartError::Replay(e) => e.exit_code(),
            StartError::Collapsed(_) => NE::MissingTlog.code(),
            StartError::Head(_) => NE::Head.code(),
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

/// Everything a validated node starts from (its store is sled's unless the node runs in memory:
/// see server/storage.rs).
pub struct Prepared<S = SledStore> {
    pub dir: Arc<dyn LogDir>,
    pub writer: TlogWriter,
    pub store: S,
    pub ballot: BallotRecord,
    /// The log's last slot and its value.
    pub last: Option<(u64, Value)>,
    /// The slot before it, if the log holds it.
    pub prev: Option<(u64, Value)>,
    pub closed_cleanly: bool,
}

/// Why a node's directory (its home, its TLog directory) is unusable.
#[derive(Debug, Error)]
pub enum DirError {
    #[error("cannot create it: {0}; check the path and its parent's permissions")]
    Create(#[source] std::io::Error),
    #[error("not writable: {0}; check its owner and permissions")]
    NotWritable(#[source] std::io::Error),
    #[error("cannot open it: {0}")]
    Open(#[source] std::io::Error),
}

/// The directory exists (created if not) and this process can write in it.
fn ensure_dir(path: &std::path::Path) -> Result<(), DirError> {
    std::fs::create_dir_all(path).map_err(DirError::Create)?;
    let probe = path.join(".arakoon-write-probe");
    std::fs::write(&probe, b"").map_err(DirError::NotWritable)?;
    std::fs::remove_file(&probe).map_err(DirError::NotWritable)
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
        let path = node.tlog_dir.display().to_string();
        StartError::BadTlogDir { path, reason: DirError::Open(e) }
    })?);
    let tlog_config = config.tlog();
    // Validates the whole log first: any damage stops the start here.
    let (mut writer, mut report) = TlogWriter::open(dir.clone(), tlog_config, &node.name)?;
    let ballot = BallotRecord::load(dir.as_ref())?;
    let (mut store, from_head) = open_store_with_head(config, node, dir.as_ref())?;
    // A store copied from a head that is past the whole log: an adoption a crash interrupted.
    if from_head
        && head::finish_interrupted_adoption(dir.as_ref(), store.applied(), report.last_i)
            .map_err(StartError::Head)?
    {
        drop(writer);
        (writer, report) = TlogWriter::open(dir.clone(), tlog_config, &node.name)?;
    }
    let single = config.nodes.len() == 1;
    replay::replay(dir.as_ref(), &mut store, single, &mut |_| {})?;
    // The log's last two slots, as the validation read them.
    let (last, prev) = (report.last, report.prev);
    Ok(Prepared { dir, writer, store, ballot, last, prev, closed_cleanly: report.closed_cleanly })
}

/// Opens the store, checking that a collapsed log has a head reaching its first slot; a store
/// behind the log's first slot (wiped, or older than the last collapse) is replaced by a copy of
/// the head, after which replay brings it up to date from the log. True with a copy.
fn open_store_with_head(
    config: &ClusterConfig,
    node: &NodeConfig,
    dir: &dyn LogDir,
) -> Result<(SledStore, bool), StartError> {
    let head_path = head::head_path(&node.tlog_dir);
    let head_next_i = if head_path.is_dir() {
        let head = SledStore::open(&head_path, &config.cluster_id).map_err(|source| {
            StartError::Head(CollapseError::Head { path: head_path.display().to_string(), source })
        })?;
        Some(head.next_i())
    } else {
        None
    };
    let start = head::log_start(dir)?;
    let from = head::check_log_start(&dir.location(), &head_path, start, head_next_i)
        .map_err(StartError::Collapsed)?;
    let path = store_path(node);
    let store = SledStore::open(&path, &config.cluster_id)?;
    if store.next_i() >= from {
        return Ok((store, false));
    }
    tracing::info!(
        store = %path.display(),
        store_next_i = store.next_i(),
        log_first_i = from,
        "the store is behind the collapsed log: copying the head into it"
    );
    drop(store);
    let copy = head::copy_head_to_store(&head_path, &path, &config.cluster_id);
    Ok((copy.map_err(StartError::Head)?, true))
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn a_collapsed_node_starts_from_head_and_log_even_with_its_store_wiped() {
        let tmp = tempfile::tempdir().unwrap();
        let text = format!(
            "[global]\ncluster = n0\ncluster_id = c\ntlog_max_entries = 10\n[n0]\n\
             ip = 127.0.0.1\nclient_port = 1\nmessaging_port = 2\nhome = {}\n",
            tmp.path().display()
        );
        let cfg = ClusterConfig::parse(&text, "t.ini").unwrap();
        let node = &cfg.nodes[0];
        let p = prepare(&cfg, node).unwrap();
        let mut w = p.writer;
        for i in 0..45 {
            w.append(&[(i, &value(i))]).unwrap();
        }
        w.close().unwrap();
        drop(p.store);
        let dir = FsDir::open(&node.tlog_dir).unwrap();
        let head = head::head_path(&node.tlog_dir);
        let report = head::collapse(&dir, &head, "c", 1, None, &mut |_| {}).unwrap();
        assert_eq!(report.removed.len(), 3);
        // Restart with the store as it was (ahead of the head): replay from the log.
        let p = prepare(&cfg, node).unwrap();
        assert_eq!(p.store.applied(), Some(44));
        drop(p);
        // Wiped store: copied from the head, then replayed.
        std::fs::remove_dir_all(store_path(node)).unwrap();
        let p = prepare(&cfg, node).unwrap();
        assert_eq!(p.store.applied(), Some(44));
        for i in 0..45 {
            assert_eq!(p.store.get(format!("k{i}").as_bytes()).unwrap(), Some(vec![1]), "k{i}");
        }
        drop(p);
        // Without the head the collapsed log is refused with exit 50 and the repair.
        std::fs::remove_dir_all(&head).unwrap();
        let err = prepare(&cfg, node).err().expect("refuses to start");
        assert_eq!(err.exit_code(), 50);
        assert!(err.to_string().contains("arakoon-admin catchup"), "{err}");
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
