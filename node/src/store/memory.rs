//! The memory store: B-trees in memory, deterministic and cheap to clone. The simulator gives
//! one to every node; it passes the same conformance tests as the sled store.

use super::apply::{apply_batch, apply_batch_replayed, apply_value, Overlay, View};
use super::reads;
use super::snapshot::{scan_map, MemorySnapshot};
use super::{MasterRecord, Range, Snapshot, Store, StoreError, UpdateResult, UserFunctionRegistry};
use crate::value::{Bytes, Key, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

mod export;

/// Why bytes are not a [`MemoryStore::encode`]d store.
#[derive(Debug, thiserror::Error)]
pub enum MemoryDecodeError {
    #[error(transparent)]
    Decode(#[from] crate::llio::DecodeError),
    #[error("it belongs to cluster {found:?}")]
    WrongCluster { found: String },
    #[error("{bytes} bytes follow the store")]
    Trailing { bytes: usize },
}

#[derive(Debug, Clone)]
pub struct MemoryStore {
    cluster_id: String,
    /// Shared with the snapshots taken since the last write: a write copies it only while a
    /// snapshot still holds it (copy-on-write), which a read run at once never does.
    data: Arc<BTreeMap<Key, Bytes>>,
    admin: BTreeMap<Key, Bytes>,
    master: Option<MasterRecord>,
    applied: Option<u64>,
    registry: UserFunctionRegistry,
}

impl MemoryStore {
    pub fn new(cluster_id: &str) -> MemoryStore {
        MemoryStore::with_registry(cluster_id, UserFunctionRegistry::default())
    }

    pub fn with_registry(cluster_id: &str, registry: UserFunctionRegistry) -> MemoryStore {
        MemoryStore {
            cluster_id: cluster_id.to_string(),
            data: Arc::new(BTreeMap::new()),
            admin: BTreeMap::new(),
            master: None,
            applied: None,
            registry,
        }
    }

    /// Every user key and value, in order (for comparisons in tests and the simulator).
    pub fn entries(&self) -> &BTreeMap<Key, Bytes> {
        &self.data
    }

    /// The whole store (cluster id, applied index, master record, admin and user pairs) as
    /// bytes, for a head kept as a file on a log directory (`head::FileHead`): the simulator's
    /// nodes keep their head so. [`MemoryStore::decode`] reads it back.
    pub fn encode(&self, out: &mut Vec<u8>) {
        use crate::llio::Put;
        out.put_bytes(self.cluster_id.as_bytes());
        out.put_bool(self.applied.is_some());
        out.put_i64(self.applied.unwrap_or(0) as i64);
        out.put_bool(self.master.is_some());
        if let Some(m) = &self.master {
            out.put_bytes(m.master.as_bytes());
            out.put_i64(m.lease_start);
        }
        for map in [&self.admin, &*self.data] {
            out.put_i64(map.len() as i64);
            for (k, v) in map {
                out.put_bytes(k);
                out.put_bytes(v);
            }
        }
    }

    /// Reads what [`MemoryStore::encode`] wrote; the bytes must name `cluster_id`.
    pub fn decode(cluster_id: &str, bytes: &[u8]) -> Result<MemoryStore, MemoryDecodeError> {
        let mut r = crate::llio::Reader::new(bytes);
        let found = r.string("cluster id")?;
        if found != cluster_id {
            return Err(MemoryDecodeError::WrongCluster { found });
        }
        let mut store = MemoryStore::new(cluster_id);
        let has_applied = r.bool()?;
        let applied = r.i64()? as u64;
        store.applied = has_applied.then_some(applied);
        if r.bool()? {
            let master = r.string("master")?;
            store.master = Some(MasterRecord { master, lease_start: r.i64()? });
        }
        let mut maps = [BTreeMap::new(), BTreeMap::new()];
        for map in &mut maps {
            let n = r.i64()?;
            for _ in 0..n {
                let k = r.bytes()?;
                map.insert(k, r.bytes()?);
            }
        }
        if r.remaining() != 0 {
            return Err(MemoryDecodeError::Trailing { bytes: r.remaining() });
        }
        let [admin, data] = maps;
        store.admin = admin;
        store.data = Arc::new(data);
        Ok(store)
    }

    /// Commits a batch of values ending at slot `last`.
    fn commit_batch(
        &mut self,
        writes: BTreeMap<Key, Option<Bytes>>,
        admin: BTreeMap<Key, Option<Bytes>>,
        master: Option<MasterRecord>,
        last: u64,
    ) {
        self.commit(writes, admin);
        if master.is_some() {
            self.master = master;
        }
        self.applied = Some(last);
    }

    fn commit(
        &mut self,
        writes: BTreeMap<Key, Option<Bytes>>,
        admin: BTreeMap<Key, Option<Bytes>>,
    ) {
        if !writes.is_empty() {
            let data = Arc::make_mut(&mut self.data);
            for (k, v) in writes {
                match v {
                    Some(v) => data.insert(k, v),
                    None => data.remove(&k),
                };
            }
        }
        for (k, v) in admin {
            match v {
                Some(v) => self.admin.insert(k, v),
                None => self.admin.remove(&k),
            };
        }
    }
}

impl View for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        Ok(self.data.get(key).cloned())
    }

    fn keys_with_prefix(&self, prefix: &[u8]) -> Result<Vec<Key>, StoreError> {
        Ok(self
            .data
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }
}

impl Store for MemoryStore {
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
        self.commit(writes, admin);
        if master.is_some() {
            self.master = master;
        }
        self.applied = Some(i);
        Ok(results)
    }

    /// One overlay for the whole batch and one commit, as the sled store does: a key written by
    /// many values of the batch is put into the map once.
    fn apply_many(
        &mut self,
        values: &[(u64, Value)],
    ) -> Result<Vec<Vec<UpdateResult>>, StoreError> {
        let Some(&(last, _)) = values.last() else { return Ok(Vec::new()) };
        let mut top = Overlay::new(&*self);
        let all = apply_batch(&mut top, self.next_i(), values, &self.registry)?;
        self.commit_batch(top.writes, top.admin, top.master, last);
        Ok(all)
    }

    /// [`MemoryStore::apply_many`] with the values moved into place.
    fn apply_replayed(&mut self, values: &mut Vec<(u64, Value)>) -> Result<(), StoreError> {
        let Some(&(last, _)) = values.last() else { return Ok(()) };
        let mut top = Overlay::new(&*self);
        apply_batch_replayed(&mut top, self.next_i(), values, &self.registry)?;
        self.commit_batch(top.writes, top.admin, top.master, last);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
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
        Ok(self
            .data
            .range::<[u8], _>(bounds)
            .take(reads::limit(range))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn rev_range_entries(&self, range: &Range) -> Result<Vec<(Key, Bytes)>, StoreError> {
        let Some(bounds) = reads::descending(range) else { return Ok(Vec::new()) };
        Ok(self
            .data
            .range::<[u8], _>(bounds)
            .rev()
            .take(reads::limit(range))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn prefix_keys(&self, prefix: &[u8], max: Option<usize>) -> Result<Vec<Key>, StoreError> {
        let mut keys = self.keys_with_prefix(prefix)?;
        keys.truncate(max.unwrap_or(usize::MAX));
        Ok(keys)
    }

    fn key_count(&self) -> Result<u64, StoreError> {
        Ok(self.data.len() as u64)
    }

    fn snapshot(&self) -> Box<dyn Snapshot> {
        Box::new(MemorySnapshot { data: self.data.clone(), at: self.applied })
    }

    fn scan_within(
        &self,
        scan: &super::Scan<'_>,
        bytes_max: usize,
    ) -> Result<Option<super::Scanned>, StoreError> {
        Ok(scan_map(&self.data, scan, bytes_max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Update;

    /// A store read back from its bytes is the same store: user and admin pairs, the master
    /// record and the applied slot, so a head kept as a file loses nothing of what it folded.
    #[test]
    fn a_store_decodes_from_its_encoding_unchanged() {
        let mut s = MemoryStore::new("c");
        let mut empty = Vec::new();
        s.encode(&mut empty);
        let back = MemoryStore::decode("c", &empty).unwrap();
        assert_eq!((back.applied(), back.entries().len()), (None, 0));
        s.apply(0, &Value::MasterSet { master: "n1".into(), lease_start: 42 }).unwrap();
        let updates = vec![
            Update::Set { key: b"a".to_vec(), value: b"1".to_vec() },
            Update::Set { key: b"b".to_vec(), value: vec![0, 255] },
            Update::AdminSet { key: b"x".to_vec(), value: Some(b"y".to_vec()) },
        ];
        s.apply(1, &Value::client(updates)).unwrap();
        let mut bytes = Vec::new();
        s.encode(&mut bytes);
        let back = MemoryStore::decode("c", &bytes).unwrap();
        assert_eq!(back.applied(), Some(1));
        assert_eq!(back.master(), s.master());
        assert_eq!(back.entries(), s.entries());
        assert_eq!(back.admin, s.admin);
        assert!(!back.admin.is_empty(), "the admin key was kept");
        let mut again = Vec::new();
        back.encode(&mut again);
        assert_eq!(again, bytes);
        assert!(matches!(
            MemoryStore::decode("other", &bytes),
            Err(MemoryDecodeError::WrongCluster { .. })
        ));
        assert!(MemoryStore::decode("c", &bytes[..bytes.len() - 1]).is_err());
        bytes.push(0);
        assert!(matches!(
            MemoryStore::decode("c", &bytes),
            Err(MemoryDecodeError::Trailing { bytes: 1 })
        ));
    }
}
