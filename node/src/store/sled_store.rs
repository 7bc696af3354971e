//! The sled store (production and the sandbox).
//!
//! One sled tree holds everything, so that one `apply_batch` commits a value's data, the new
//! applied index and the key count together: sled makes a batch atomic across crashes, so the
//! data and the index can never disagree. Key layout:
//!
//! | key | holds |
//! |---|---|
//! | `@` + user key | the user's value |
//! | `*admin/` + key | AdminSet values |
//! | `*applied` | the last applied slot (int64 LE) |
//! | `*cluster_id` | the cluster this store belongs to |
//! | `*master` | the last MasterSet: llio string master, int64 lease start |
//! | `*key_count` | the number of user keys (uint64 LE) |
//!
//! The store is not fsynced per value: the TLog is the truth, and replay restores whatever a
//! crash lost. [`Store::flush`] makes it durable when a caller needs that (rebuild, shutdown).

use super::apply::{apply_batch, apply_batch_replayed, apply_value, Overlay, View};
use super::journal::{Journal, JOURNAL_BYTES_MAX};
use super::reads;
use super::sled_flusher::{Flusher, UNFLUSHED_BYTES_MAX};
use super::sled_snapshot::SledSnapshot;
use super::{
    Damage, MasterRecord, Range, Snapshot, Store, StoreError, UpdateResult, UserFunctionRegistry,
};
use crate::llio::{Put, Reader};
use crate::value::{Bytes, Key, Value};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(super) const USER: u8 = b'@';
/// The byte after `@`: the exclusive end of the user key space.
pub(super) const USER_END: u8 = b'A';
pub(super) const APPLIED: &[u8] = b"*applied";
pub(super) const CLUSTER_ID: &[u8] = b"*cluster_id";
pub(super) const MASTER: &[u8] = b"*master";
pub(super) const KEY_COUNT: &[u8] = b"*key_count";
pub(super) const ADMIN: &[u8] = b"*admin/";
/// Pairs written per batch by [`SledStore::import`].
const IMPORT_BATCH_PAIRS: usize = 4096;

pub struct SledStore {
    path: PathBuf,
    db: sled::Db,
    cluster_id: String,
    applied: Option<u64>,
    master: Option<MasterRecord>,
    key_count: u64,
    registry: UserFunctionRegistry,
    /// The pre-images open snapshots need (store/journal.rs).
    journal: Arc<Journal>,
    /// Handles for snapshots, kept between reads: a `sled::Db` is not `Sync`, so each reading
    /// thread needs its own, and cloning one copies its configuration and many counted
    /// references, too much for every get.
    handles: Arc<std::sync::Mutex<Vec<sled::Db>>>,
    shown: Arc<str>,
    journal_bytes_max: usize,
    /// Flushes the applied batches to disk, by time and by bytes.
    flusher: Flusher,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .field("cluster_id", &self.cluster_id)
            .field("applied", &self.applied)
            .finish()
    }
}

pub(super) fn user_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(USER);
    k.extend_from_slice(key);
    k
}

fn admin_key(key: &[u8]) -> Vec<u8> {
    [ADMIN, key].concat()
}

/// sled's cache of leaves. With the patched sled (vendor/sled/PATCHED.md) the cache holds at
/// most this many bytes of clean leaves: leaves are paged out once flushed, a leaf splits past
/// 1 MiB unless it holds one entry, and a leaf above 4 MiB (one large value) is paged out after
/// each use.
pub const CACHE_BYTES: usize = 24 << 20;

/// The most memory the store's sled holds: its cache, the writes applied and not yet flushed
/// (an apply waits while `UNFLUSHED_BYTES_MAX` are, those of the running flush included, and
/// the apply that passes that mark may be as large as `largest_update`; its leaves stay
/// resident until their flush is done). `node/tests/memory.rs` measures the whole node against
/// the bound this is a term of.
pub fn resident_bytes_max(largest_update: u64) -> u64 {
    CACHE_BYTES as u64 + UNFLUSHED_BYTES_MAX + largest_update
}

/// How long an open waits for the store's lock. A handle that was just dropped lets go of it
/// once its flusher thread has ended, which takes a moment on a loaded machine; a store that
/// another process holds stays locked, and is reported so.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn open_waiting_for_the_lock(path: &Path) -> std::io::Result<sled::Db> {
    let started = std::time::Instant::now();
    loop {
        // Flushed by the store's own flusher thread, by time and by bytes
        // (store/sled_flusher.rs), not by sled's; what sled holds in memory is bounded as
        // `resident_bytes_max` says.
        let config = sled::Config::new().path(path).cache_capacity_bytes(CACHE_BYTES);
        match config.flush_every_ms(None).open() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if started.elapsed() >= LOCK_WAIT {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::WouldBlock,
                        format!(
                            "locked for {} s: another process uses this store (is the node still running?)",
                            LOCK_WAIT.as_secs()
                        ),
                    ));
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

impl SledStore {
    /// Opens (or creates) the store at `path` for cluster `cluster_id`.
    pub fn open(path: &Path, cluster_id: &str) -> Result<SledStore, StoreError> {
        SledStore::open_with(path, cluster_id, UserFunctionRegistry::default())
    }

    pub fn open_with(
        path: &Path,
        cluster_id: &str,
        registry: UserFunctionRegistry,
    ) -> Result<SledStore, StoreError> {
        let backend = |source| StoreError::Backend { path: path.to_path_buf(), source };
        let db: sled::Db = open_waiting_for_the_lock(path).map_err(backend)?;
        let corrupt = |damage: Damage| StoreError::Corrupt { path: path.to_path_buf(), damage };
        let found = db.get(CLUSTER_ID).map_err(backend)?;
        match found {
            Some(id) if id.as_ref() != cluster_id.as_bytes() => {
                return Err(StoreError::WrongCluster {
                    path: path.to_path_buf(),
                    expected: cluster_id.to_string(),
                    found: String::from_utf8_lossy(&id).into_owned(),
                })
            }
            Some(_) => {}
            None => {
                if db.get(APPLIED).map_err(backend)?.is_some() {
                    return Err(corrupt(Damage::NoClusterId));
                }
                db.insert(CLUSTER_ID, cluster_id.as_bytes()).map_err(backend)?;
                db.flush().map_err(backend)?;
            }
        }
        let applied = match db.get(APPLIED).map_err(backend)? {
            None => None,
            Some(b) => Some(read_u64(&b).ok_or_else(|| {
                corrupt(Damage::AppliedIndex { key: "*applied", bytes: b.len() })
            })?),
        };
        let key_count = match db.get(KEY_COUNT).map_err(backend)? {
            None => 0,
            Some(b) => read_u64(&b)
                .ok_or_else(|| corrupt(Damage::KeyCount { key: "*key_count", bytes: b.len() }))?,
        };
        let master = match db.get(MASTER).map_err(backend)? {
            None => None,
            Some(b) => {
                let mut r = Reader::new(&b);
                let m = r.string("master").and_then(|m| Ok((m, r.i64()?)));
                let (master, lease_start) =
                    m.map_err(|source| corrupt(Damage::Master { key: "*master", source }))?;
                Some(MasterRecord { master, lease_start })
            }
        };
        let shown: Arc<str> = path.display().to_string().into();
        let flusher = Flusher::start(db.clone(), shown.clone()).map_err(backend)?;
        Ok(SledStore {
            flusher,
            path: path.to_path_buf(),
            db,
            cluster_id: cluster_id.to_string(),
            applied,
            master,
            key_count,
            registry,
            journal: Arc::new(Journal::new(applied.map_or(0, |a| a + 1), JOURNAL_BYTES_MAX)),
            handles: Default::default(),
            shown,
            journal_bytes_max: JOURNAL_BYTES_MAX,
        })
    }

    /// Sets the snapshot journal's bound (tests make it small to overtake reads); the
    /// snapshots open until now keep the old journal, which records nothing more.
    pub fn set_snapshot_journal_bytes_max(&mut self, bytes_max: usize) {
        self.journal = Arc::new(Journal::new(self.next_i(), bytes_max));
        self.journal_bytes_max = bytes_max;
    }

    /// The snapshots of this store that reads still hold.
    pub fn open_snapshots(&self) -> usize {
        self.journal.open_snapshots()
    }

    /// The bytes the snapshot journal holds now.
    pub fn snapshot_journal_bytes(&self) -> usize {
        self.journal.bytes()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every stored pair, internal keys included, in key order: a backup of the database in its
    /// own layout (what `get_db` ships and what start-up copies from the head into the store).
    pub fn export(&self) -> impl Iterator<Item = Result<(Bytes, Bytes), StoreError>> + '_ {
        self.db.iter().map(|item| {
            let (k, v) = item.map_err(|e| self.backend(e))?;
            Ok((k.to_vec(), v.to_vec()))
        })
    }

    /// Builds a new store at `path` (which must not exist yet) from the pairs of
    /// [`SledStore::export`], flushes it and opens it. The pairs must carry cluster id
    /// `cluster_id`; anything else (a backup of another cluster, a pair list without an applied
    /// index) is refused.
    pub fn import<E: std::error::Error + Send + Sync + 'static>(
        path: &Path,
        cluster_id: &str,
        pairs: impl IntoIterator<Item = Result<(Bytes, Bytes), E>>,
    ) -> Result<SledStore, StoreError> {
        if path.exists() {
            return Err(StoreError::ImportTargetExists { path: path.to_path_buf() });
        }
        {
            let mut store = SledStore::open(path, cluster_id)?;
            let mut batch = sled::Batch::default();
            let mut in_batch = 0usize;
            let (mut saw_applied, mut saw_cluster) = (false, false);
            for pair in pairs {
                let (k, v) = pair.map_err(|e| StoreError::BackupUnreadable {
                    path: path.to_path_buf(),
                    source: e.into(),
                })?;
                if k == CLUSTER_ID {
                    if v != cluster_id.as_bytes() {
                        return Err(StoreError::WrongCluster {
                            path: path.to_path_buf(),
                            expected: cluster_id.to_string(),
                            found: String::from_utf8_lossy(&v).into_owned(),
                        });
                    }
                    saw_cluster = true;
                    continue;
                }
                saw_applied |= k == APPLIED;
                batch.insert(k.as_slice(), v.as_slice());
                in_batch += 1;
                if in_batch >= IMPORT_BATCH_PAIRS {
                    store
                        .db
                        .apply_batch(std::mem::take(&mut batch))
                        .map_err(|e| store.backend(e))?;
                    in_batch = 0;
                }
            }
            if !saw_cluster || !saw_applied {
                return Err(StoreError::BackupIncomplete {
                    path: path.to_path_buf(),
                    cluster_id_missing: !saw_cluster,
                    applied_missing: !saw_applied,
                });
            }
            store.db.apply_batch(batch).map_err(|e| store.backend(e))?;
            store.flush()?;
        }
        SledStore::open(path, cluster_id)
    }

    fn backend(&self, source: std::io::Error) -> StoreError {
        StoreError::Backend { path: self.path.clone(), source }
    }

    /// Commits an overlay's writes and the new applied index in one atomic batch, with the key
    /// count kept exact: sled counts the keys the batch creates and removes as it writes them
    /// (vendor/sled patch 6), except while a snapshot is open, when each written key's value is
    /// read first anyway (the snapshot's pre-image) and counted here.
    fn commit(
        &mut self,
        writes: BTreeMap<Key, Option<Bytes>>,
        admin: BTreeMap<Key, Option<Bytes>>,
        master: Option<MasterRecord>,
        applied: u64,
    ) -> Result<(), StoreError> {
        let started = crate::spans::start();
        // Within the bound on what sled holds unflushed (store/sled_flusher.rs).
        self.flusher.wait_for_room(&self.shown);
        let mut batch = sled::Batch::default();
        // Held until the batch is visible: open snapshots get every key's pre-image first.
        let journal = self.journal.clone();
        let mut journaled = journal.commit(applied);
        // The change of the key count that the journal's reads found (None: sled counts).
        let mut counted: Option<i64> = journaled.recording.then_some(0);
        // One buffer for every `@`-prefixed key: the batch copies the key anyway.
        let mut key = Vec::with_capacity(64);
        let mut bytes = 0u64;
        for (k, v) in writes {
            bytes += (k.len() + v.as_ref().map_or(0, Vec::len)) as u64;
            key.clear();
            key.push(USER);
            key.extend_from_slice(&k);
            if let Some(delta) = &mut counted {
                let before = self.db.get(&key).map_err(|e| self.backend(e))?;
                let existed = before.is_some();
                journaled.record(&k, before.map(|b| b.to_vec()));
                *delta += match &v {
                    Some(_) => i64::from(!existed),
                    None => -i64::from(existed),
                };
            }
            match v {
                Some(v) => batch.insert(key.as_slice(), v.as_slice()),
                None => batch.remove(key.as_slice()),
            }
        }
        for (k, v) in admin {
            match v {
                Some(v) => batch.insert(admin_key(&k).as_slice(), v.as_slice()),
                None => batch.remove(admin_key(&k).as_slice()),
            }
        }
        if let Some(m) = &master {
            let mut b = Vec::new();
            b.put_bytes(m.master.as_bytes());
            b.put_i64(m.lease_start);
            batch.insert(MASTER, b.as_slice());
        }
        batch.insert(APPLIED, &applied.to_le_bytes()[..]);
        let delta = match counted {
            Some(delta) => {
                let count = self.count_after(delta);
                batch.insert(KEY_COUNT, &count.to_le_bytes()[..]);
                self.db.apply_batch(batch).map_err(|e| self.backend(e))?;
                delta
            }
            None => self
                .db
                .apply_batch_counting(batch, &[USER], KEY_COUNT, self.key_count)
                .map_err(|e| self.backend(e))?,
        };
        journaled.done();
        self.flusher.applied(bytes);
        self.key_count = self.count_after(delta);
        self.applied = Some(applied);
        if master.is_some() {
            self.master = master;
        }
        crate::spans::STORE_APPLY.since(started);
        Ok(())
    }

    /// The key count after a change of `delta`; below zero, the store's count was wrong.
    fn count_after(&self, delta: i64) -> u64 {
        let count = self.key_count as i64 + delta;
        assert!(count >= 0, "the key count of {} went negative", self.path.display());
        count as u64
    }

    fn scan(&self, bounds: reads::Bounds<'_>) -> sled::Iter<1024> {
        scan_user(&self.db, bounds)
    }

    fn collect(
        &self,
        iter: impl Iterator<Item = std::io::Result<(sled::InlineArray, sled::InlineArray)>>,
        max: usize,
    ) -> Result<Vec<(Key, Bytes)>, StoreError> {
        let mut out = Vec::new();
        for item in iter.take(max) {
            let (k, v) = item.map_err(|e| self.backend(e))?;
            out.push((k[1..].to_vec(), v.to_vec()));
        }
        Ok(out)
    }
}

/// The user keys within `bounds` (user keys, without the `@`), as a sled iterator.
pub(super) fn scan_user(db: &sled::Db, bounds: reads::Bounds<'_>) -> sled::Iter<1024> {
    let lo = match bounds.0 {
        Bound::Unbounded => Bound::Included(vec![USER]),
        Bound::Included(k) => Bound::Included(user_key(k)),
        Bound::Excluded(k) => Bound::Excluded(user_key(k)),
    };
    let hi = match bounds.1 {
        Bound::Unbounded => Bound::Excluded(vec![USER_END]),
        Bound::Included(k) => Bound::Included(user_key(k)),
        Bound::Excluded(k) => Bound::Excluded(user_key(k)),
    };
    db.range((lo, hi))
}

pub(super) fn read_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

impl View for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        Ok(self.db.get(user_key(key)).map_err(|e| self.backend(e))?.map(|v| v.to_vec()))
    }

    fn keys_with_prefix(&self, prefix: &[u8]) -> Result<Vec<Key>, StoreError> {
        let mut keys = Vec::new();
        for item in self.db.scan_prefix(user_key(prefix)) {
            let (k, _) = item.map_err(|e| self.backend(e))?;
            keys.push(k[1..].to_vec());
        }
        Ok(keys)
    }
}

impl Store for SledStore {
    fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    fn applied(&self) -> Option<u64> {
        self.applied
    }

    fn apply(&mut self, i: u64, value: &Value) -> Result<Vec<UpdateResult>, StoreError> {
        let expected = self.next_i();
        if i != expected {
            return Err(StoreError::OutOfOrder { i, expected });
        }
        let mut top = Overlay::new(&*self);
        let results = apply_value(&mut top, value, &self.registry)?;
        let (writes, admin, master) = (top.writes, top.admin, top.master);
        self.commit(writes, admin, master, i)?;
        Ok(results)
    }

    fn apply_many(
        &mut self,
        values: &[(u64, Value)],
    ) -> Result<Vec<Vec<UpdateResult>>, StoreError> {
        let Some(&(last, _)) = values.last() else { return Ok(Vec::new()) };
        let mut top = Overlay::new(&*self);
        let all = apply_batch(&mut top, self.next_i(), values, &self.registry)?;
        let (writes, admin, master) = (top.writes, top.admin, top.master);
        self.commit(writes, admin, master, last)?;
        Ok(all)
    }

    fn apply_replayed(&mut self, values: &mut Vec<(u64, Value)>) -> Result<(), StoreError> {
        let Some(&(last, _)) = values.last() else { return Ok(()) };
        let mut top = Overlay::new(&*self);
        apply_batch_replayed(&mut top, self.next_i(), values, &self.registry)?;
        let (writes, admin, master) = (top.writes, top.admin, top.master);
        self.commit(writes, admin, master, last)
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.db.flush().map_err(|e| self.backend(e))?;
        Ok(())
    }

    fn master(&self) -> Option<MasterRecord> {
        self.master.clone()
    }

    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        View::get(self, key)
    }

    fn range(&self, range: &Range) -> Result<Vec<Key>, StoreError> {
        Ok(self.range_entries(range)?.into_iter().map(|(k, _)| k).collect())
    }

    fn range_entries(&self, range: &Range) -> Result<Vec<(Key, Bytes)>, StoreError> {
        let Some(bounds) = reads::ascending(range) else { return Ok(Vec::new()) };
        self.collect(self.scan(bounds), reads::limit(range))
    }

    fn rev_range_entries(&self, range: &Range) -> Result<Vec<(Key, Bytes)>, StoreError> {
        let Some(bounds) = reads::descending(range) else { return Ok(Vec::new()) };
        self.collect(self.scan(bounds).rev(), reads::limit(range))
    }

    fn prefix_keys(&self, prefix: &[u8], max: Option<usize>) -> Result<Vec<Key>, StoreError> {
        let iter = self.db.scan_prefix(user_key(prefix));
        Ok(self.collect(iter, max.unwrap_or(usize::MAX))?.into_iter().map(|(k, _)| k).collect())
    }

    fn key_count(&self) -> Result<u64, StoreError> {
        Ok(self.key_count)
    }

    fn snapshot(&self) -> Box<dyn Snapshot> {
        let handles = self.handles.clone();
        let db = handles.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let db = db.unwrap_or_else(|| self.db.clone());
        let (journal, path) = (self.journal.clone(), self.shown.clone());
        Box::new(SledSnapshot::open(db, handles, journal, path, self.journal_bytes_max))
    }

    fn scan_within(
        &self,
        scan: &super::Scan<'_>,
        bytes_max: usize,
    ) -> Result<Option<super::Scanned>, StoreError> {
        use super::Scan;
        let (iter, max, keys_only): (Box<dyn Iterator<Item = _>>, usize, bool) = match scan {
            Scan::Range(r) => match reads::ascending(r) {
                Some(b) => (Box::new(self.scan(b)), reads::limit(r), true),
                None => return Ok(Some(Vec::new())),
            },
            Scan::RangeEntries(r) => match reads::ascending(r) {
                Some(b) => (Box::new(self.scan(b)), reads::limit(r), false),
                None => return Ok(Some(Vec::new())),
            },
            Scan::RevRangeEntries(r) => match reads::descending(r) {
                Some(b) => (Box::new(self.scan(b).rev()), reads::limit(r), false),
                None => return Ok(Some(Vec::new())),
            },
            Scan::PrefixKeys(p, max) => {
                (Box::new(self.db.scan_prefix(user_key(p))), max.unwrap_or(usize::MAX), true)
            }
        };
        let (mut out, mut bytes) = (Vec::new(), 0usize);
        for item in iter.take(max) {
            let (k, v) = item.map_err(|e| self.backend(e))?;
            let value = if keys_only { Vec::new() } else { v.to_vec() };
            bytes += super::wire_bytes(&k[1..], &value, keys_only);
            if bytes > bytes_max {
                return Ok(None);
            }
            out.push((k[1..].to_vec(), value));
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Damage;

    #[test]
    fn a_damaged_key_count_is_named_with_its_key_and_size() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s");
        drop(SledStore::open(&path, "c").unwrap());
        {
            // The store just dropped lets go of its lock once its threads end: wait for it, as
            // every open of the node does (a bare `sled::open` failed here now and then in CI).
            let db = open_waiting_for_the_lock(&path).unwrap();
            db.insert(KEY_COUNT, &b"abc"[..]).unwrap();
            db.flush().unwrap();
        }
        match SledStore::open(&path, "c") {
            Err(e @ StoreError::Corrupt { .. }) => {
                let StoreError::Corrupt { path: p, damage } = &e else { unreachable!() };
                assert_eq!(p, &path);
                assert!(matches!(damage, Damage::KeyCount { bytes: 3, .. }), "{damage}");
                assert!(e.to_string().contains("arakoon-admin rebuild"), "{e}");
            }
            other => panic!("expected a corrupt store, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn import_refuses_an_existing_directory_and_a_backup_without_an_applied_index() {
        let tmp = tempfile::tempdir().unwrap();
        let e =
            SledStore::import(tmp.path(), "c", Vec::<Result<_, StoreError>>::new()).err().unwrap();
        assert!(matches!(&e, StoreError::ImportTargetExists { path } if path == tmp.path()), "{e}");
        let pairs = vec![Ok::<_, StoreError>((CLUSTER_ID.to_vec(), b"c".to_vec()))];
        let e = SledStore::import(&tmp.path().join("new"), "c", pairs).err().unwrap();
        assert!(
            matches!(
                e,
                StoreError::BackupIncomplete {
                    cluster_id_missing: false,
                    applied_missing: true,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("no applied index"), "{e}");
    }
}
