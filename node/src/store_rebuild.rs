//! A stopped node's store, rebuilt from its TLog (`arakoon-admin rebuild`).
//!
//! The store is derived from the TLog, so a store that is damaged, ahead of its log or of
//! another cluster is rebuilt by replaying the log into a fresh one. The fresh store is built in
//! a directory beside the old one (same file system: `<store>.rebuild-PID`), starting from a copy
//! of the head when the log was collapsed, and swapped in with one atomic
//! `renameat2(RENAME_EXCHANGE)` ([`crate::head::exchange`]) only once it is complete and flushed:
//! a failure midway removes the fresh directory and leaves the old store exactly as it was; a
//! crash midway leaves the old store plus a `*.rebuild-PID` directory to delete.

use crate::head;
use crate::replay::{self, Progress, ReplayError};
use crate::store::{SledStore, Store, StoreError};
use crate::tlog::FsDir;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// What a rebuild did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    /// Replay's final progress: the slots and updates replayed, the last slot applied.
    pub progress: Progress,
    /// Keys in the rebuilt store.
    pub keys: u64,
}

/// Why a store could not be rebuilt. The old store is untouched unless the swap itself failed
/// ([`RebuildStoreError::Io`] naming the store).
#[derive(Debug, Error)]
pub enum RebuildStoreError {
    /// The store's path has no last component to put a sibling beside (`/`, `..`).
    #[error("{}: the store must be a directory name", path.display())]
    NotADirectoryName { path: PathBuf },
    /// A file-system step (`what`: "remove", "move the new store in", ...) failed at `path`.
    #[error("{}: cannot {what}: {source}", path.display())]
    Io { path: PathBuf, what: &'static str, source: std::io::Error },
    /// The head the collapsed log starts after does not open.
    #[error("head: {0}")]
    Head(#[source] StoreError),
    /// The fresh store could not be made, filled from the head, flushed or counted.
    #[error("{0}")]
    Store(#[source] StoreError),
    #[error("{0}")]
    Replay(#[source] ReplayError),
}

/// `store` with `.suffix` appended to its last component (a directory beside it).
pub fn sibling(store: &Path, suffix: &str) -> Result<PathBuf, RebuildStoreError> {
    let name = store
        .file_name()
        .ok_or_else(|| RebuildStoreError::NotADirectoryName { path: store.to_path_buf() })?;
    let mut name = name.to_os_string();
    name.push(format!(".{suffix}"));
    Ok(store.with_file_name(name))
}

/// Rebuilds the store at `store` (closed, or absent) from the TLog in `dir` and puts it in
/// place; `progress` hears replay's progress. `last_is_committed`: the log's last slot counts as
/// committed (a 1-node cluster).
pub fn rebuild_store(
    dir: &FsDir,
    store: &Path,
    cluster_id: &str,
    last_is_committed: bool,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Rebuilt, RebuildStoreError> {
    let fresh = sibling(store, &format!("rebuild-{}", std::process::id()))?;
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh).map_err(|e| io(&fresh, "remove", e))?;
    }
    let rebuilt = match build(dir, &fresh, cluster_id, last_is_committed, progress) {
        Ok(rebuilt) => rebuilt,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&fresh);
            return Err(e);
        }
    };
    swap_in(&fresh, store)?;
    Ok(rebuilt)
}

fn io(path: &Path, what: &'static str, source: std::io::Error) -> RebuildStoreError {
    RebuildStoreError::Io { path: path.to_path_buf(), what, source }
}

/// Replays the whole TLog into a new store at `path` (closed again on return).
fn build(
    dir: &FsDir,
    path: &Path,
    cluster_id: &str,
    last_is_committed: bool,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Rebuilt, RebuildStoreError> {
    // A collapsed log starts after its head: the fresh store starts as a copy of the head.
    let head_path = head::head_path(dir.root());
    let mut store = if head_path.is_dir() {
        let head = SledStore::open(&head_path, cluster_id).map_err(RebuildStoreError::Head)?;
        SledStore::import(path, cluster_id, head.export())
    } else {
        SledStore::open(path, cluster_id)
    }
    .map_err(RebuildStoreError::Store)?;
    let progress = replay::replay(dir, &mut store, last_is_committed, progress)
        .map_err(RebuildStoreError::Replay)?;
    store.flush().map_err(RebuildStoreError::Store)?;
    let keys = store.key_count().map_err(RebuildStoreError::Store)?;
    Ok(Rebuilt { progress, keys })
}

/// Puts the complete store at `fresh` in place of `store`, atomically, and deletes the old one.
fn swap_in(fresh: &Path, store: &Path) -> Result<(), RebuildStoreError> {
    if !store.exists() {
        std::fs::rename(fresh, store).map_err(|e| io(store, "move the new store in", e))?;
    } else {
        // Atomic where the file system has RENAME_EXCHANGE; otherwise two renames, the old
        // store kept until the new one is in place.
        head::exchange(fresh, store).map_err(|e| io(store, "swap in the rebuilt store", e))?;
        // `fresh` now holds the old store.
        std::fs::remove_dir_all(fresh).map_err(|e| io(fresh, "remove the old store", e))?;
    }
    if let Some(parent) = store.parent().filter(|p| !p.as_os_str().is_empty()) {
        // The renames are durable once the directory is synced.
        std::fs::File::open(parent).and_then(|d| d.sync_all()).ok();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::{TlogConfig, TlogWriter};
    use crate::value::{Update, Value};
    use std::sync::Arc;

    fn set(i: u64) -> Value {
        Value::client(vec![Update::Set {
            key: format!("k{}", i % 5).into_bytes(),
            value: format!("v{i}").into_bytes(),
        }])
    }

    fn log(root: &Path, slots: u64) -> Arc<FsDir> {
        std::fs::create_dir_all(root).unwrap();
        let dir = Arc::new(FsDir::open(root).unwrap());
        let cfg = TlogConfig { entries_per_file_max: 10, file_bytes_max: 1 << 20 };
        let (mut w, _) = TlogWriter::open(dir.clone(), cfg, "n0").unwrap();
        for i in 0..slots {
            w.append(&[(i, &set(i))]).unwrap();
        }
        w.close().unwrap();
        dir
    }

    #[test]
    fn a_store_of_another_cluster_is_replaced_by_one_replayed_from_the_log() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = log(&tmp.path().join("tlogs"), 23);
        let store = tmp.path().join("store");
        drop(SledStore::open(&store, "other").unwrap());
        let mut heard = 0;
        let rebuilt = rebuild_store(&dir, &store, "c", false, &mut |_| heard += 1).unwrap();
        assert!(heard > 0, "replay's progress is heard");
        // Slot 22 is the log's last: not known to be committed.
        assert_eq!((rebuilt.progress.applied_i, rebuilt.progress.values), (Some(21), 22));
        assert_eq!(rebuilt.keys, 5);
        let s = SledStore::open(&store, "c").expect("the rebuilt store is of cluster c");
        assert_eq!(s.applied(), Some(21));
        assert_eq!(s.get(b"k1").unwrap(), Some(b"v21".to_vec()));
        let left: Vec<_> =
            std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 2, "only tlogs and store remain: {left:?}");
    }

    #[test]
    fn a_failed_rebuild_leaves_the_old_store_and_no_fresh_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = log(&tmp.path().join("tlogs"), 5);
        // The head of another cluster: the fresh store cannot start from it.
        drop(SledStore::open(&head::head_path(dir.root()), "other").unwrap());
        let store = tmp.path().join("store");
        drop(SledStore::open(&store, "c").unwrap());
        let e = rebuild_store(&dir, &store, "c", true, &mut |_| {}).unwrap_err();
        assert!(matches!(e, RebuildStoreError::Head(StoreError::WrongCluster { .. })), "{e:?}");
        assert!(e.to_string().starts_with("head: store at "), "{e}");
        assert!(SledStore::open(&store, "c").is_ok(), "the old store is still there");
        assert!(!sibling(&store, &format!("rebuild-{}", std::process::id())).unwrap().exists());
    }

    #[test]
    fn the_store_needs_a_directory_name() {
        let e = sibling(Path::new("/"), "rebuild-1").unwrap_err();
        assert_eq!(e.to_string(), "/: the store must be a directory name");
        assert_eq!(sibling(Path::new("a/store"), "x").unwrap(), Path::new("a/store.x"));
    }
}
