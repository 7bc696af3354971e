//! Where a node keeps its TLog and its store: on disk (production), or in memory (tier B of the
//! simulator).
//!
//! On disk, start-up validates the TLog in the node's directory and opens its sled store; the
//! persister is a thread of its own that fsyncs. In memory, the TLog lives on a [`MemDir`] that
//! the simulator keeps across crashes (it drops what was not synced, as a power loss would), and
//! the store is a [`MemoryStore`] rebuilt from the log at every start (the store is derived: a
//! crash may lose all of it). Everything runs on the node's task: start-up, every TLog write,
//! every read. No thread, no file and no clock is involved, so a simulated node does the same
//! thing every time it is given the same inputs. The consensus core and the server code are the
//! same in both; only where the bytes go differs.
//!
//! A node in memory keeps its head as a file on its disk ([`FileHead`], [`Storage::head_space`]):
//! the server's online collapse folds into it (server/collapse.rs, through the `HeadSpace`
//! seam), `fetch_head` and `get_db` stream it, and a catch-up from a collapsed peer fetches the
//! peer's head into memory and adopts it with the same `catchup::adopt_fetched` as on disk
//! (server/catchup.rs `fetch_head_in_memory`, `adopt_in_memory`). Its start-up honours that head
//! ([`memory_store_with_head`]); the tier-A world collapses a node's log into one too
//! (sim/src/world/collapse.rs), with the one `head::collapse_planned`. What memory storage does
//! not do: rebuild (`--catchup-only`, which works on a stopped node's files).

use super::blocking::{BlockingReads, OnTask, ThreadPool};
use super::persist::{Persisted, Persister};
use super::startup::{Prepared, StartError};
use crate::config::{ClusterConfig, NodeConfig};
use crate::head::{self, FileHead, HeadSpace};
use crate::replay;
use crate::store::{MasterRecord, MemoryStore, Range, SledStore, Store, StoreError, UpdateResult};
use crate::tlog::{BallotRecord, LogDir, MemDir, TlogWriter, TornTail};
use crate::value::{Bytes, Key, Value};
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

/// Where a node keeps its files.
#[derive(Debug, Clone, Default)]
pub enum Storage {
    /// The node's home and TLog directories; a persister thread; sled. Production.
    #[default]
    Disk,
    /// This simulated disk for the TLog; the persister inline; a memory store. Simulation only.
    Memory(MemDir),
}

impl Storage {
    /// Validates node `node`'s TLog and opens its store, as start-up does, wherever they live:
    /// on disk on tokio's blocking pool ([`super::startup::prepare`]), in memory on the task
    /// ([`prepare_in_memory`]).
    pub async fn prepare(
        &self,
        config: &ClusterConfig,
        node: &NodeConfig,
    ) -> Result<Prepared<NodeStore>, StartError> {
        Ok(match self {
            Storage::Disk => {
                let (config, node) = (config.clone(), node.clone());
                tokio::task::spawn_blocking(move || super::startup::prepare(&config, &node))
                    .await
                    .expect("start-up does not panic")?
                    .map_store(|s| NodeStore::Sled(Box::new(s)))
            }
            Storage::Memory(disk) => {
                prepare_in_memory(config, node, disk)?.map_store(NodeStore::Memory)
            }
        })
    }

    /// Where blocking reads run: tokio's blocking pool on disk, the node's task in memory (no
    /// thread may race the simulation).
    pub fn blocking_reads(&self) -> Arc<dyn BlockingReads> {
        match self {
            Storage::Disk => Arc::new(ThreadPool),
            Storage::Memory(_) => Arc::new(OnTask),
        }
    }

    /// Where the node's head lives: the sled directory `<tlog_dir>/head.db` on disk, a file on
    /// the simulated disk in memory ([`FileHead`], as the tier-A world keeps it), so that the
    /// server's collapse and head streams run over either (server/collapse.rs).
    pub fn head_space(
        &self,
        tlog_dir: &std::path::Path,
        dir: Arc<dyn LogDir>,
    ) -> Arc<dyn HeadSpace> {
        match self {
            Storage::Disk => Arc::new(head::head_path(tlog_dir)),
            Storage::Memory(_) => Arc::new(FileHead::new(dir)),
        }
    }

    /// The persister of this storage: a thread that groups and fsyncs on disk, inline on the
    /// node's task in memory (server/persist.rs).
    pub fn persister(
        &self,
        writer: TlogWriter,
        dir: Arc<dyn LogDir>,
        done: UnboundedSender<Persisted>,
    ) -> Persister {
        match self {
            Storage::Disk => Persister::spawn(writer, dir, done),
            Storage::Memory(_) => Persister::inline(writer, dir, done),
        }
    }
}

/// The store of a running node.
pub enum NodeStore {
    // Boxed: a sled handle is about 20 KB, a memory store a few words.
    Sled(Box<SledStore>),
    Memory(MemoryStore),
}

impl NodeStore {
    /// The sled store, for what only a node on disk does (adopting a peer's head).
    pub fn sled_mut(&mut self) -> Option<&mut SledStore> {
        match self {
            NodeStore::Sled(s) => Some(s),
            NodeStore::Memory(_) => None,
        }
    }

    /// Lets go of a sled store whose flush failed without dropping it: sled's drop waits for
    /// its flusher, and on a full disk that flush never completes (the node closed its ports and
    /// hung there, SIGTERM or not). The process is about to exit; the kernel closes the files.
    /// What was acknowledged is in the TLog, which start-up replays.
    pub fn abandon(&mut self) {
        if let NodeStore::Sled(_) = self {
            let NodeStore::Sled(sled) =
                std::mem::replace(self, NodeStore::Memory(MemoryStore::new("abandoned")))
            else {
                unreachable!("matched above")
            };
            std::mem::forget(sled);
        }
    }
}

/// Calls the same method on whichever store it is.
macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            NodeStore::Sled($s) => $e,
            NodeStore::Memory($s) => $e,
        }
    };
}

impl Store for NodeStore {
    fn cluster_id(&self) -> &str {
        each!(self, s => s.cluster_id())
    }
    fn applied(&self) -> Option<u64> {
        each!(self, s => s.applied())
    }
    fn next_i(&self) -> u64 {
        each!(self, s => s.next_i())
    }
    fn apply(&mut self, i: u64, value: &Value) -> Result<Vec<UpdateResult>, StoreError> {
        each!(self, s => s.apply(i, value))
    }
    fn apply_many(
        &mut self,
        values: &[(u64, Value)],
    ) -> Result<Vec<Vec<UpdateResult>>, StoreError> {
        each!(self, s => s.apply_many(values))
    }
    fn apply_replayed(&mut self, values: &mut Vec<(u64, Value)>) -> Result<(), StoreError> {
        each!(self, s => s.apply_replayed(values))
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        each!(self, s => s.flush())
    }
    fn master(&self) -> Option<MasterRecord> {
        each!(self, s => s.master())
    }
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        each!(self, s => s.get(key))
    }
    fn exists(&self, key: &[u8]) -> Result<bool, StoreError> {
        each!(self, s => s.exists(key))
    }
    fn multi_get(&self, keys: &[Key]) -> Result<Result<Vec<Bytes>, Key>, StoreError> {
        each!(self, s => s.multi_get(keys))
    }
    fn multi_get_option(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>, StoreError> {
        each!(self, s => s.multi_get_option(keys))
    }
    fn range(&self, range: &Range) -> Result<Vec<Key>, StoreError> {
        each!(self, s => s.range(range))
    }
    fn range_entries(&self, range: &Range) -> Result<Vec<(Key, Bytes)>, StoreError> {
        each!(self, s => s.range_entries(range))
    }
    fn rev_range_entries(&self, range: &Range) -> Result<Vec<(Key, Bytes)>, StoreError> {
        each!(self, s => s.rev_range_entries(range))
    }
    fn prefix_keys(&self, prefix: &[u8], max: Option<usize>) -> Result<Vec<Key>, StoreError> {
        each!(self, s => s.prefix_keys(prefix, max))
    }
    fn key_count(&self) -> Result<u64, StoreError> {
        each!(self, s => s.key_count())
    }
    fn snapshot(&self) -> Box<dyn crate::store::Snapshot> {
        each!(self, s => s.snapshot())
    }
    fn scan_within(
        &self,
        scan: &crate::store::Scan<'_>,
        bytes_max: usize,
    ) -> Result<Option<crate::store::Scanned>, StoreError> {
        each!(self, s => s.scan_within(scan, bytes_max))
    }
}

impl<S> Prepared<S> {
    /// The same start, with the store wrapped or replaced.
    pub fn map_store<T>(self, f: impl FnOnce(S) -> T) -> Prepared<T> {
        Prepared {
            dir: self.dir,
            writer: self.writer,
            store: f(self.store),
            ballot: self.ballot,
            last: self.last,
            prev: self.prev,
            closed_cleanly: self.closed_cleanly,
        }
    }
}

/// Start-up of a node in memory: validates the TLog on `disk` as start-up on disk does (a torn or
/// corrupt log refuses to start with the same error), then replays the whole log into a new
/// memory store.
pub fn prepare_in_memory(
    config: &ClusterConfig,
    node: &NodeConfig,
    disk: &MemDir,
) -> Result<Prepared<MemoryStore>, StartError> {
    let dir: Arc<dyn LogDir> = Arc::new(disk.clone());
    let tlog_config = config.tlog();
    // One pass over the log: the validation hands over the committed slots the new store is
    // built from.
    let mut committed = Vec::new();
    let (mut writer, mut report) = TlogWriter::open_with(
        dir.clone(),
        tlog_config,
        &node.name,
        TornTail::Refuse,
        &mut |i, v| committed.push((i, v)),
    )?;
    let ballot = BallotRecord::load(dir.as_ref())?;
    let mut store = memory_store_with_head(&config.cluster_id, &dir)?;
    // A store from a head past the whole log: an adoption a crash interrupted.
    if head::finish_interrupted_adoption(dir.as_ref(), store.applied(), report.last_i)
        .map_err(StartError::Head)?
    {
        drop(writer);
        committed.clear();
        (writer, report) = TlogWriter::open(dir.clone(), tlog_config, &node.name)?;
    }
    let single = config.nodes.len() == 1;
    if single {
        committed.extend(report.last.clone());
    }
    replay::replay_read(dir.as_ref(), &mut store, report.last_i, committed, single, &mut |_| {})?;
    let (last, prev) = (report.last, report.prev);
    Ok(Prepared { dir, writer, store, ballot, last, prev, closed_cleanly: report.closed_cleanly })
}

/// The store a node in memory starts from before its log is replayed, as start-up on disk
/// opens it (`startup::open_store_with_head`): the log must start at slot 0 or at a slot its
/// head (a [`FileHead`] on the same disk, which the simulator's collapse writes) reaches, or the
/// node refuses to start with [`StartError::Collapsed`]; a collapsed log's store is a copy of
/// the head, which replay then brings up to the log's end. Without a store kept from before
/// the stop ([`memory_store_kept`]), it is the head's copy whenever the log starts after slot 0.
pub fn memory_store_with_head(
    cluster_id: &str,
    dir: &Arc<dyn LogDir>,
) -> Result<MemoryStore, StartError> {
    Ok(memory_store_kept(cluster_id, dir, None)?.0)
}

/// [`memory_store_with_head`] for a node whose store survived its stop as far as it was last
/// flushed (`kept`; the simulator keeps it, as sled keeps what it flushed), opened as start-up
/// on disk opens a store that exists (`startup::open_store_with_head`): it is used when it
/// reaches the log's first slot, and replay brings it up to the log's end; behind that slot it
/// is replaced by a copy of the head. True when the store is the head's copy (or a new one):
/// not the kept store.
pub fn memory_store_kept(
    cluster_id: &str,
    dir: &Arc<dyn LogDir>,
    kept: Option<MemoryStore>,
) -> Result<(MemoryStore, bool), StartError> {
    let head = FileHead::new(dir.clone());
    let loaded = head.load(cluster_id).map_err(|source| {
        StartError::Head(head::CollapseError::Head { path: head.location(), source })
    })?;
    let start = head::log_start(dir.as_ref())?;
    let head_next_i = loaded.as_ref().map(Store::next_i);
    let from = head::check_log_start(&dir.location(), &head, start, head_next_i)
        .map_err(StartError::Collapsed)?;
    Ok(match (kept, loaded) {
        (Some(store), _) if store.next_i() >= from => (store, false),
        (_, Some(copy)) if from > 0 => (copy, true),
        _ => (MemoryStore::new(cluster_id), true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Update;

    fn config() -> ClusterConfig {
        let text = "[global]\ncluster = n0\ncluster_id = c\n[n0]\nip = 127.0.0.1\n\
                    client_port = 1\nmessaging_port = 2\nhome = /nonexistent/n0\n";
        ClusterConfig::parse(text, "t.ini").unwrap()
    }

    fn value(i: u64) -> Value {
        Value::client(vec![Update::Set { key: format!("k{i}").into_bytes(), value: vec![1] }])
    }

    #[test]
    fn a_node_in_memory_starts_from_its_log_and_touches_no_file() {
        let cfg = config();
        let disk = MemDir::new("n0");
        let p = prepare_in_memory(&cfg, &cfg.nodes[0], &disk).unwrap();
        assert_eq!(p.store.applied(), None);
        let mut w = p.writer;
        for i in 0..5 {
            w.append(&[(i, &value(i))]).unwrap();
        }
        // A crash: what was synced survives, the store does not.
        drop(w);
        disk.crash(|_| 0);
        let p = prepare_in_memory(&cfg, &cfg.nodes[0], &disk).unwrap();
        assert!(!p.closed_cleanly);
        assert_eq!(p.last, Some((4, value(4))));
        assert_eq!(p.store.applied(), Some(4), "a 1-node cluster applies its last slot too");
        assert!(!cfg.nodes[0].home.exists());
    }

    #[test]
    fn a_torn_log_in_memory_refuses_to_start_as_on_disk() {
        let cfg = config();
        let disk = MemDir::new("n0");
        let p = prepare_in_memory(&cfg, &cfg.nodes[0], &disk).unwrap();
        let mut w = p.writer;
        w.append(&[(0, &value(0))]).unwrap();
        drop(w);
        let mut bytes = disk.contents("000.tlog").unwrap();
        bytes.extend_from_slice(&[7, 0, 0]);
        disk.put("000.tlog", &bytes);
        let err = prepare_in_memory(&cfg, &cfg.nodes[0], &disk).err().expect("refuses to start");
        assert_eq!(err.exit_code(), 48);
    }
}
