//! The store: a key-value B-tree derived from the TLog.
//!
//! The store applies the committed value of slot `i` atomically with its new applied index, and
//! only for `i = applied + 1`: a crash can never leave the data and the index disagreeing, and
//! the store never runs ahead of the log. Each update in a value gets its own result, so one
//! failed test_and_set in a group-committed batch fails only its own client.
//!
//! User keys and internal keys (applied index, master, cluster id) live apart: internal keys never
//! appear in user reads.

use crate::rc::Rc;
use crate::value::{Bytes, Key, Value};
use std::path::PathBuf;
use thiserror::Error;

mod apply;
mod journal;
mod memory;
mod reads;
mod sled_flusher;
mod sled_snapshot;
mod sled_store;
pub mod snapshot;
pub mod user_function;
pub mod verify;

pub use journal::JOURNAL_BYTES_MAX;
pub use memory::{MemoryDecodeError, MemoryStore};
pub use sled_snapshot::SledSnapshot;
pub use sled_store::{resident_bytes_max, SledStore};
pub use snapshot::{MemorySnapshot, Snapshot, SnapshotError};
pub use user_function::{UserContext, UserFunction, UserFunctionError, UserFunctionRegistry};

/// What one update of an applied value returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutput {
    /// set, delete, assert, sequence, nop, master_set, admin_set, ...
    Unit,
    /// test_and_set and replace: the value before.
    Previous(Option<Bytes>),
    /// delete_prefix: how many keys were deleted.
    Count(i64),
    /// user_function: what the function returned.
    Returned(Option<Bytes>),
}

/// Why one update of an applied value failed; nothing of that update (or of its sequence) was
/// applied. `rc` is the code the client hears, `message` its message (the key, mostly).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{rc}: {}", String::from_utf8_lossy(message))]
pub struct UpdateFailure {
    pub rc: Rc,
    pub message: Bytes,
}

impl UpdateFailure {
    pub fn new(rc: Rc, message: impl Into<Bytes>) -> Self {
        UpdateFailure { rc, message: message.into() }
    }
}

pub type UpdateResult = Result<UpdateOutput, UpdateFailure>;

/// What an operator can do about a backend error that says the store's files are damaged
/// (sled reports a failed checksum as `InvalidData`): the store is derived, so it can be built
/// again. Empty for other errors.
fn damaged_hint(source: &std::io::Error) -> &'static str {
    if source.kind() == std::io::ErrorKind::InvalidData {
        "; the store's files are damaged. The store is derived from the TLog: rebuild it with \
         `arakoon-admin rebuild`, or, if the TLog no longer holds every slot (collapsed), move \
         the node's home aside and catch it up from a peer (`arakoon -catchup-only`)"
    } else {
        ""
    }
}

/// A store-level failure: the store itself is unusable or was misused.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("store at {}: belongs to cluster {found:?}, not {expected:?}; point the node at its own store or rebuild it with `arakoon-admin rebuild`", path.display())]
    WrongCluster { path: PathBuf, expected: String, found: String },
    #[error("store: refused to apply i={i}: the next slot to apply is {expected}")]
    OutOfOrder { i: u64, expected: u64 },
    /// The store's own bookkeeping is damaged: it cannot say what it holds.
    #[error("store at {}: {damage}; the store is derived from the TLog: rebuild it with `arakoon-admin rebuild`", path.display())]
    Corrupt { path: PathBuf, damage: Damage },
    #[error("store at {}: {source}{}", path.display(), damaged_hint(source))]
    Backend { path: PathBuf, source: std::io::Error },
    /// [`SledStore::import`] builds a new store and never writes over one.
    #[error("store at {}: refusing to import into an existing directory; move it aside or name a new one", path.display())]
    ImportTargetExists { path: PathBuf },
    /// The pairs handed to [`SledStore::import`] could not be read (a peer's stream broke, a
    /// backup file is cut short).
    #[error("store at {}: reading the backup: {source}", path.display())]
    BackupUnreadable { path: PathBuf, source: Box<dyn std::error::Error + Send + Sync> },
    /// The pairs handed to [`SledStore::import`] lack the cluster id or the applied index, so
    /// they are not a whole store.
    #[error("store at {}: the backup has no {}; it is not a whole store: take a new one (get_db) or catch the node up from a peer", path.display(), missing_fields(*.cluster_id_missing, *.applied_missing))]
    BackupIncomplete { path: PathBuf, cluster_id_missing: bool, applied_missing: bool },
}

fn missing_fields(cluster_id_missing: bool, applied_missing: bool) -> &'static str {
    match (cluster_id_missing, applied_missing) {
        (true, true) => "cluster id and no applied index",
        (true, false) => "cluster id",
        _ => "applied index",
    }
}

/// What is damaged in a store's bookkeeping (the keys that are not user data).
#[derive(Debug, Error)]
pub enum Damage {
    /// Values were applied but the cluster id that every store is stamped with is gone.
    #[error("it has applied values but no cluster id")]
    NoClusterId,
    /// The applied index is not an 8-byte number.
    #[error("{key:?} holds {bytes} bytes, not 8")]
    AppliedIndex { key: &'static str, bytes: usize },
    /// The key count is not an 8-byte number.
    #[error("{key} is damaged ({bytes} bytes, not 8)")]
    KeyCount { key: &'static str, bytes: usize },
    /// The master record (name, lease start) does not decode.
    #[error("{key}: {source}")]
    Master { key: &'static str, source: crate::llio::DecodeError },
}

/// The bounds of a range read (`range`, `range_entries`, `rev_range_entries`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Range {
    /// `None`: unbounded. For `rev_range_entries`, this is the high bound.
    pub first: Option<Key>,
    pub first_inclusive: bool,
    /// `None`: unbounded. For `rev_range_entries`, this is the low bound.
    pub last: Option<Key>,
    pub last_inclusive: bool,
    /// `None`: all (the wire's -1).
    pub max: Option<usize>,
}

/// The master and its lease as the store last applied them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterRecord {
    pub master: String,
    pub lease_start: i64,
}

/// The store interface shared by the sled store (production) and the memory store (simulation).
/// Both pass the same conformance tests, operation for operation.
pub trait Store: Send {
    /// The cluster this store belongs to.
    fn cluster_id(&self) -> &str;

    /// The last applied slot, `None` for an empty store.
    fn applied(&self) -> Option<u64>;

    /// The next slot this store will accept.
    fn next_i(&self) -> u64 {
        self.applied().map_or(0, |i| i + 1)
    }

    /// Applies the committed value of slot `i` (which must be `applied + 1`, or 0 on an empty
    /// store) atomically with the new applied index; returns one result per update.
    fn apply(&mut self, i: u64, value: &Value) -> Result<Vec<UpdateResult>, StoreError>;

    /// Applies several consecutive committed values; the same as calling `apply` for each, but a
    /// store may commit them in one atomic write (replay's fast path). Returns the results of
    /// each value in order.
    fn apply_many(
        &mut self,
        values: &[(u64, Value)],
    ) -> Result<Vec<Vec<UpdateResult>>, StoreError> {
        // Refuse a batch with a gap before applying any of it.
        for (expected, (i, _)) in (self.next_i()..).zip(values) {
            if *i != expected {
                return Err(StoreError::OutOfOrder { i: *i, expected });
            }
        }
        values.iter().map(|(i, v)| self.apply(*i, v)).collect()
    }

    /// Replay's fast path: applies consecutive committed values whose results nobody waits for,
    /// taking them out of `values` (left empty, its capacity kept for the next batch). The same
    /// as `apply_many` with the results dropped; a store may move the values into place instead
    /// of copying them.
    fn apply_replayed(&mut self, values: &mut Vec<(u64, Value)>) -> Result<(), StoreError> {
        self.apply_many(values)?;
        values.clear();
        Ok(())
    }

    /// Makes everything applied so far durable (the store needs no fsync per value: the TLog
    /// is the truth and replay restores what a crash loses).
    fn flush(&mut self) -> Result<(), StoreError>;

    /// The master and lease last applied, if any.
    fn master(&self) -> Option<MasterRecord>;

    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError>;
    fn exists(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.get(key)?.is_some())
    }
    /// All values, in request order, or the missing key Arakoon names: Arakoon decodes the list
    /// last-first and stops at the first missing key it meets, so the last missing one in
    /// request (wire) order.
    fn multi_get(&self, keys: &[Key]) -> Result<Result<Vec<Bytes>, Key>, StoreError> {
        multi_get_with(keys, |k| self.get(k))
    }
    fn multi_get_option(&self, keys: &[Key]) -> Result<Vec<Option<Bytes>>, StoreError> {
        keys.iter().map(|k| self.get(k)).collect()
    }
    /// Keys in ascending order within the range.
    fn range(&self, range: &Range) -> Result<Vec<Key>, StoreError>;
    /// Entries in ascending order within the range.
    fn range_entries(&self, range: &Range) -> Result<Vec<(Key, Bytes)>, StoreError>;
    /// Entries in descending order; `range.first` is the high bound, `range.last` the low one.
    fn rev_range_entries(&self, range: &Range) -> Result<Vec<(Key, Bytes)>, StoreError>;
    /// Keys starting with `prefix`, ascending, at most `max`.
    fn prefix_keys(&self, prefix: &[u8], max: Option<usize>) -> Result<Vec<Key>, StoreError>;
    /// The number of user keys.
    fn key_count(&self) -> Result<u64, StoreError>;

    /// A view of the store at its applied index now, for a read that runs elsewhere while this
    /// store goes on applying (store/snapshot.rs). Dropping it lets the store forget what it kept
    /// for it.
    fn snapshot(&self) -> Box<dyn Snapshot>;

    /// `scan`'s answer, or `None` once its keys and values (keys only for `range` and
    /// `prefix_keys`) pass `bytes_max` bytes on the wire, so that one read cannot make the node
    /// build a reply of any size. The default collects first (a store in memory holds the data
    /// anyway); a store on disk stops at the limit.
    fn scan_within(
        &self,
        scan: &Scan<'_>,
        bytes_max: usize,
    ) -> Result<Option<Scanned>, StoreError> {
        let (entries, keys_only) = match scan {
            Scan::Range(r) => (self.range(r)?.into_iter().map(|k| (k, Vec::new())).collect(), true),
            Scan::RangeEntries(r) => (self.range_entries(r)?, false),
            Scan::RevRangeEntries(r) => (self.rev_range_entries(r)?, false),
            Scan::PrefixKeys(p, max) => {
                (self.prefix_keys(p, *max)?.into_iter().map(|k| (k, Vec::new())).collect(), true)
            }
        };
        let bytes: usize = entries.iter().map(|(k, v)| wire_bytes(k, v, keys_only)).sum();
        Ok((bytes <= bytes_max).then_some(entries))
    }
}

/// A read that lists keys or entries (the ones [`Store::scan_within`] bounds).
#[derive(Debug, Clone, Copy)]
pub enum Scan<'a> {
    Range(&'a Range),
    RangeEntries(&'a Range),
    RevRangeEntries(&'a Range),
    PrefixKeys(&'a [u8], Option<usize>),
}

/// What a [`Scan`] found: keys with their values (empty for the key-only scans).
pub type Scanned = Vec<(Key, Bytes)>;

/// Entries read from a store at a time by [`for_each_entry`], so that a large store is never
/// all in memory.
pub const PAGE_KEYS_MAX: usize = 10_000;

/// Visits every user entry of `store` in key order, a page of [`PAGE_KEYS_MAX`] at a time;
/// returns how many there were.
pub fn for_each_entry<S: Store + ?Sized>(
    store: &S,
    visit: &mut dyn FnMut(&[u8], &[u8]),
) -> Result<u64, StoreError> {
    let mut range = Range { first_inclusive: true, max: Some(PAGE_KEYS_MAX), ..Range::default() };
    let mut count = 0u64;
    loop {
        let page = store.range_entries(&range)?;
        for (k, v) in &page {
            visit(k, v);
        }
        count += page.len() as u64;
        match page.last() {
            Some((k, _)) if page.len() == PAGE_KEYS_MAX => {
                range.first = Some(k.clone());
                range.first_inclusive = false;
            }
            _ => return Ok(count),
        }
    }
}

/// `multi_get` over any lookup: every value in request order, or the missing key Arakoon names
/// (it decodes the list last-first and stops at the first missing key it meets: the last missing
/// one in request order). One rule for the store and its snapshots.
pub fn multi_get_with<E>(
    keys: &[Key],
    mut get: impl FnMut(&[u8]) -> Result<Option<Bytes>, E>,
) -> Result<Result<Vec<Bytes>, Key>, E> {
    let mut values = Vec::with_capacity(keys.len());
    for key in keys.iter().rev() {
        match get(key)? {
            Some(v) => values.push(v),
            None => return Ok(Err(key.clone())),
        }
    }
    values.reverse();
    Ok(Ok(values))
}

/// The bytes an entry takes in a reply (each string is an int32 length and its bytes).
pub fn wire_bytes(key: &[u8], value: &[u8], keys_only: bool) -> usize {
    4 + key.len() + if keys_only { 0 } else { 4 + value.len() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Update;

    #[test]
    fn every_entry_is_visited_in_key_order_across_pages() {
        let mut store = MemoryStore::new("c");
        let n = PAGE_KEYS_MAX + 3;
        let updates = (0..n)
            .map(|k| Update::Set { key: format!("k{k:06}").into_bytes(), value: vec![b'v'] })
            .collect();
        store.apply(0, &Value::client(updates)).unwrap();
        let mut keys = Vec::new();
        let count = for_each_entry(&store, &mut |k, v| {
            assert_eq!(v, b"v");
            keys.push(k.to_vec());
        })
        .unwrap();
        assert_eq!(count, n as u64);
        assert_eq!(keys.len(), n);
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "in key order, each once");
    }
}
