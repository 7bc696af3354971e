//! Snapshots: a view of the store at one applied index that another thread reads while the
//! store goes on applying.
//!
//! The consensus core takes a snapshot at the read gate (shell/reads.rs), the instant the read is
//! linearized: the lease held then and the store had applied every acknowledged write. The read
//! itself then runs beside the core (the server's blocking pool) against the snapshot, and sees
//! the state at that index whatever is applied meanwhile. The memory store shares its map
//! copy-on-write; the sled store, which has no snapshots of its own, reads its live tree and
//! corrects what it read with an undo journal of the values writes replaced
//! (store/journal.rs).

use super::{reads, wire_bytes, Range, Scan, Scanned, StoreError};
use crate::value::{Bytes, Key};
use std::collections::BTreeMap;
use std::ops::Bound;
use thiserror::Error;

/// Why a read at a snapshot has no answer.
#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writes applied while the read ran replaced more than the journal holds, twice (the read
    /// restarts once at the newest applied index). Nothing is wrong with the store: retry.
    #[error(
        "the read was overtaken: writes applied while it ran replaced more than {bytes_max} bytes \
         of values (the snapshot journal's bound), twice; retry it, or read fewer keys at a time"
    )]
    Overtaken { bytes_max: usize },
}

/// A read-only view of the store at one applied index.
pub trait Snapshot: Send {
    /// The applied index this view shows (`None`: the empty store).
    fn at(&self) -> Option<u64>;

    fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>, SnapshotError>;

    /// `scan` at this view, or `None` once its keys and values pass `bytes_max` bytes on the
    /// wire (see [`super::Store::scan_within`]).
    fn scan_within(
        &mut self,
        scan: &Scan<'_>,
        bytes_max: usize,
    ) -> Result<Option<Scanned>, SnapshotError>;

    fn exists(&mut self, key: &[u8]) -> Result<bool, SnapshotError> {
        Ok(self.get(key)?.is_some())
    }

    /// As [`super::Store::multi_get`]: every value, or the last missing key in request order.
    fn multi_get(&mut self, keys: &[Key]) -> Result<Result<Vec<Bytes>, Key>, SnapshotError> {
        super::multi_get_with(keys, |k| self.get(k))
    }

    fn multi_get_option(&mut self, keys: &[Key]) -> Result<Vec<Option<Bytes>>, SnapshotError> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    fn range_entries(&mut self, range: &Range) -> Result<Vec<(Key, Bytes)>, SnapshotError> {
        Ok(self.scan_within(&Scan::RangeEntries(range), usize::MAX)?.unwrap_or_default())
    }

    fn range(&mut self, range: &Range) -> Result<Vec<Key>, SnapshotError> {
        let found = self.scan_within(&Scan::Range(range), usize::MAX)?.unwrap_or_default();
        Ok(found.into_iter().map(|(k, _)| k).collect())
    }

    fn rev_range_entries(&mut self, range: &Range) -> Result<Vec<(Key, Bytes)>, SnapshotError> {
        Ok(self.scan_within(&Scan::RevRangeEntries(range), usize::MAX)?.unwrap_or_default())
    }

    fn prefix_keys(
        &mut self,
        prefix: &[u8],
        max: Option<usize>,
    ) -> Result<Vec<Key>, SnapshotError> {
        let found =
            self.scan_within(&Scan::PrefixKeys(prefix, max), usize::MAX)?.unwrap_or_default();
        Ok(found.into_iter().map(|(k, _)| k).collect())
    }
}

/// A scan in plain terms: the keys between `lo` and `hi`, walked upwards (or downwards when
/// `reverse`), at most `max` of them.
#[derive(Debug, Clone)]
pub(crate) struct Walk {
    pub lo: Bound<Key>,
    pub hi: Bound<Key>,
    pub reverse: bool,
    pub max: usize,
    pub keys_only: bool,
}

/// The first key after every key that starts with `prefix`, `None` if there is none (all 0xff).
fn prefix_end(prefix: &[u8]) -> Option<Key> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

fn owned(b: Bound<&[u8]>) -> Bound<Key> {
    b.map(<[u8]>::to_vec)
}

impl Walk {
    /// The walk of `scan`, `None` if its range is empty.
    pub fn of(scan: &Scan<'_>) -> Option<Walk> {
        let (bounds, reverse, max, keys_only) = match scan {
            Scan::Range(r) => (reads::ascending(r)?, false, reads::limit(r), true),
            Scan::RangeEntries(r) => (reads::ascending(r)?, false, reads::limit(r), false),
            Scan::RevRangeEntries(r) => (reads::descending(r)?, true, reads::limit(r), false),
            Scan::PrefixKeys(p, max) => {
                let hi = prefix_end(p).map_or(Bound::Unbounded, Bound::Excluded);
                let walk = Walk {
                    lo: Bound::Included(p.to_vec()),
                    hi,
                    reverse: false,
                    max: max.unwrap_or(usize::MAX),
                    keys_only: true,
                };
                return Some(walk);
            }
        };
        Some(Walk { lo: owned(bounds.0), hi: owned(bounds.1), reverse, max, keys_only })
    }

    pub fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (as_ref(&self.lo), as_ref(&self.hi))
    }

    /// Whether any key lies between the bounds.
    pub fn is_empty(&self) -> bool {
        let (lo, hi) = self.bounds();
        !reads::non_empty(lo, hi)
    }

    /// What is left after the walk passed `key`.
    pub fn past(&mut self, key: &[u8]) {
        if self.reverse {
            self.hi = Bound::Excluded(key.to_vec());
        } else {
            self.lo = Bound::Excluded(key.to_vec());
        }
    }

    /// The part of the walk up to and including `key`.
    pub fn up_to<'a>(&'a self, key: &'a [u8]) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
        if self.reverse {
            (Bound::Included(key), as_ref(&self.hi))
        } else {
            (as_ref(&self.lo), Bound::Included(key))
        }
    }
}

fn as_ref(b: &Bound<Key>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// `scan` over a map held whole (the memory store and its snapshots).
pub(crate) fn scan_map(
    map: &BTreeMap<Key, Bytes>,
    scan: &Scan<'_>,
    bytes_max: usize,
) -> Option<Scanned> {
    let Some(walk) = Walk::of(scan) else { return Some(Vec::new()) };
    let range = map.range::<[u8], _>(walk.bounds());
    let items: Box<dyn Iterator<Item = (&Key, &Bytes)>> =
        if walk.reverse { Box::new(range.rev()) } else { Box::new(range) };
    let (mut out, mut bytes) = (Vec::new(), 0usize);
    for (k, v) in items.take(walk.max) {
        let value = if walk.keys_only { Vec::new() } else { v.clone() };
        bytes += wire_bytes(k, &value, walk.keys_only);
        if bytes > bytes_max {
            return None;
        }
        out.push((k.clone(), value));
    }
    Some(out)
}

/// A memory store's snapshot: its map, shared until the store writes it again.
#[derive(Debug, Clone)]
pub struct MemorySnapshot {
    pub(crate) data: std::sync::Arc<BTreeMap<Key, Bytes>>,
    pub(crate) at: Option<u64>,
}

impl Snapshot for MemorySnapshot {
    fn at(&self) -> Option<u64> {
        self.at
    }

    fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>, SnapshotError> {
        Ok(self.data.get(key).cloned())
    }

    fn scan_within(
        &mut self,
        scan: &Scan<'_>,
        bytes_max: usize,
    ) -> Result<Option<Scanned>, SnapshotError> {
        Ok(scan_map(&self.data, scan, bytes_max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_at_its_successor() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
