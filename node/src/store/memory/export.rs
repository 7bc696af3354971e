//! A memory store as the pairs of a sled store's own layout ([`super::super::SledStore::export`]):
//! what a node in memory (tier B of the simulator) streams as its head (`fetch_head`, `get_db`),
//! and how a node in memory builds a store from a head it fetched. One layout for both stores,
//! so a head streams the same way whatever keeps it.

use super::MemoryStore;
use crate::store::sled_store::{read_u64, ADMIN, APPLIED, CLUSTER_ID, KEY_COUNT, MASTER, USER};
use crate::store::{MasterRecord, StoreError};
use crate::value::Bytes;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Why a pair of a fetched head is not one of the layout's.
#[derive(Debug, thiserror::Error)]
enum PairError {
    #[error("{key:?} holds {bytes} bytes, not an index")]
    Index { key: &'static str, bytes: usize },
    #[error("the master record: {0}")]
    Master(crate::llio::DecodeError),
    #[error("an unknown key {0:?}")]
    Unknown(String),
}

impl MemoryStore {
    /// Every pair of the store in the sled store's layout, in key order: the internal keys
    /// (admin pairs, applied index, cluster id, key count, master record), then the user keys.
    pub fn export(&self) -> impl Iterator<Item = Result<(Bytes, Bytes), StoreError>> + '_ {
        use crate::llio::Put;
        let mut internal: BTreeMap<Bytes, Bytes> = BTreeMap::new();
        for (k, v) in &self.admin {
            internal.insert([ADMIN, k].concat(), v.clone());
        }
        if let Some(i) = self.applied {
            internal.insert(APPLIED.to_vec(), i.to_le_bytes().to_vec());
        }
        internal.insert(CLUSTER_ID.to_vec(), self.cluster_id.as_bytes().to_vec());
        internal.insert(KEY_COUNT.to_vec(), (self.data.len() as u64).to_le_bytes().to_vec());
        if let Some(m) = &self.master {
            let mut b = Vec::new();
            b.put_bytes(m.master.as_bytes());
            b.put_i64(m.lease_start);
            internal.insert(MASTER.to_vec(), b);
        }
        let user = self.data.iter().map(|(k, v)| {
            let mut key = Vec::with_capacity(k.len() + 1);
            key.push(USER);
            key.extend_from_slice(k);
            (key, v.clone())
        });
        internal.into_iter().chain(user).map(Ok)
    }

    /// Builds a store from the pairs of [`MemoryStore::export`] or of a sled store's export, as
    /// [`crate::store::SledStore::import`] does (the same refusals: another cluster's pairs, or
    /// pairs without a cluster id or an applied index). `shown` names the head in messages.
    pub fn import<E: std::error::Error + Send + Sync + 'static>(
        shown: &str,
        cluster_id: &str,
        pairs: impl IntoIterator<Item = Result<(Bytes, Bytes), E>>,
    ) -> Result<MemoryStore, StoreError> {
        let path = || PathBuf::from(shown);
        let unreadable =
            |e: PairError| StoreError::BackupUnreadable { path: path(), source: e.into() };
        let mut store = MemoryStore::new(cluster_id);
        let mut data = BTreeMap::new();
        let mut saw_cluster = false;
        for pair in pairs {
            let (k, v) =
                pair.map_err(|e| StoreError::BackupUnreadable { path: path(), source: e.into() })?;
            let index = |key| read_u64(&v).ok_or(PairError::Index { key, bytes: v.len() });
            if k.first() == Some(&USER) {
                data.insert(k[1..].to_vec(), v);
            } else if let Some(admin) = k.strip_prefix(ADMIN) {
                store.admin.insert(admin.to_vec(), v);
            } else if k == APPLIED {
                store.applied = Some(index("*applied").map_err(unreadable)?);
            } else if k == KEY_COUNT {
                // Counted from the keys themselves; checked as an index all the same.
                index("*key_count").map_err(unreadable)?;
            } else if k == MASTER {
                let mut r = crate::llio::Reader::new(&v);
                let m = r.string("master").and_then(|m| Ok((m, r.i64()?)));
                let (master, lease_start) = m.map_err(|e| unreadable(PairError::Master(e)))?;
                store.master = Some(MasterRecord { master, lease_start });
            } else if k == CLUSTER_ID {
                if v != cluster_id.as_bytes() {
                    return Err(StoreError::WrongCluster {
                        path: path(),
                        expected: cluster_id.to_string(),
                        found: String::from_utf8_lossy(&v).into_owned(),
                    });
                }
                saw_cluster = true;
            } else {
                let shown = String::from_utf8_lossy(&k).into_owned();
                return Err(unreadable(PairError::Unknown(shown)));
            }
        }
        if !saw_cluster || store.applied.is_none() {
            return Err(StoreError::BackupIncomplete {
                path: path(),
                cluster_id_missing: !saw_cluster,
                applied_missing: store.applied.is_none(),
            });
        }
        store.data = Arc::new(data);
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SledStore, Store};
    use crate::value::{Update, Value};

    fn filled<S: Store>(store: &mut S) {
        let ms = Value::MasterSet { master: "n1".into(), lease_start: 77 };
        store.apply(0, &ms).unwrap();
        let sets = (0..20u8)
            .map(|k| Update::Set { key: vec![b'k', k], value: vec![k; 3] })
            .chain([Update::Delete { key: vec![b'k', 4] }])
            .collect();
        store.apply(1, &Value::client(sets)).unwrap();
    }

    /// The memory store's pairs are the sled store's, pair for pair, for the same slots; each
    /// store imports the other's; and an import refuses what the sled import refuses.
    #[test]
    fn a_memory_store_exports_and_imports_the_sled_layout() {
        let home = tempfile::tempdir().unwrap();
        let mut sled = SledStore::open(&home.path().join("s"), "c").unwrap();
        let mut mem = MemoryStore::new("c");
        filled(&mut sled);
        filled(&mut mem);
        let sled_pairs: Vec<_> = sled.export().map(Result::unwrap).collect();
        let mem_pairs: Vec<_> = mem.export().map(Result::unwrap).collect();
        assert_eq!(mem_pairs, sled_pairs);

        let back = MemoryStore::import("h", "c", sled.export()).unwrap();
        assert_eq!(back.applied(), Some(1));
        assert_eq!(back.entries(), mem.entries());
        assert_eq!(back.master(), mem.master());
        let into_sled = SledStore::import(&home.path().join("t"), "c", mem.export()).unwrap();
        assert_eq!(into_sled.applied(), Some(1));
        assert_eq!(into_sled.key_count().unwrap(), 19);

        let other = MemoryStore::import("h", "d", mem.export());
        assert!(matches!(other, Err(StoreError::WrongCluster { .. })), "{other:?}");
        let no_applied = mem.export().filter(|p| p.as_ref().unwrap().0 != APPLIED);
        let e = MemoryStore::import("h", "c", no_applied);
        assert!(matches!(e, Err(StoreError::BackupIncomplete { applied_missing: true, .. })));
        let odd = mem.export().chain([Ok((b"?".to_vec(), vec![]))]);
        assert!(matches!(
            MemoryStore::import("h", "c", odd),
            Err(StoreError::BackupUnreadable { .. })
        ));
    }
}
