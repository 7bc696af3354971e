//! The sled store's undo journal: what its snapshots need to read the past.
//!
//! sled 1.0 (alpha) has no snapshots, and its iterators read leaf by leaf, so a scan that spans
//! leaves is not atomic against a concurrent `apply_batch`. While at least one snapshot is open,
//! the store therefore records, before each batch becomes visible, the value every user key it
//! writes held before (its pre-image; `None`: absent), tagged with the batch's slot. A reader at
//! snapshot `at` scans the live tree without locks, then corrects what it read: for each key
//! written by a batch after `at`, the pre-image of the earliest such batch is the value at
//! `at`. The order makes this exact: a pre-image is in the journal before its batch can be seen,
//! and the reader consults the journal after its scan.
//!
//! Cost and bounds: with no snapshot open nothing is recorded (the write path pays nothing
//! when nobody reads); entries older than the oldest open snapshot are dropped; the journal holds
//! at most [`JOURNAL_BYTES_MAX`]. A batch that would pass it first drops the oldest snapshots'
//! entries: those snapshots are *overtaken*, and their reads restart once (store/sled_snapshot.rs).
//!
//! Positions: a snapshot is at position `p` = the store's next slot when it was taken (0 for the
//! empty store); it needs every entry of a batch whose slot is `>= p`. A batch is tagged with its
//! last slot (replay and catch-up commit several slots in one batch; a snapshot never falls inside
//! one).

use crate::value::{Bytes, Key};
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

/// The journal's bound. Its reason: a read that runs while the master applies writes at full
/// speed must not make the node hold the writes' old values without limit; 4 MiB holds the old
/// values of tens of thousands of small updates (a range read over a few hundred MB takes a few
/// seconds), and a read overtaken by more restarts once, then is refused with a message that
/// says to retry. Counted in the node's memory bound (server/limits.rs).
pub const JOURNAL_BYTES_MAX: usize = 4 << 20;

/// What an entry costs beyond its key and value: the deque slot, the map node, the index list.
const ENTRY_OVERHEAD_BYTES: usize = 64;

/// A snapshot's handle: its id and position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket {
    pub id: u64,
    pub at: u64,
}

/// The snapshot was overtaken: its entries were dropped to keep the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overtaken;

#[derive(Debug, Default)]
struct Inner {
    /// The position of the store now: its next slot.
    next: u64,
    /// Open snapshots: id -> position.
    open: BTreeMap<u64, u64>,
    next_id: u64,
    /// Every batch at a position `>= floor` is recorded; a snapshot below it is overtaken.
    floor: u64,
    /// Pre-images by key, each key's in slot order.
    by_key: BTreeMap<Key, VecDeque<(u64, Option<Bytes>)>>,
    /// The keys of each recorded batch, in slot order (to drop old entries).
    by_slot: VecDeque<(u64, Vec<Key>, usize)>,
    bytes: usize,
    bytes_max: usize,
}

impl Inner {
    /// The oldest position an open snapshot still reads at, if any is open and not overtaken.
    fn oldest_valid(&self) -> Option<u64> {
        self.open.values().copied().filter(|&p| p >= self.floor).min()
    }

    /// Drops the entries of batches below `floor`.
    fn raise_floor(&mut self, floor: u64) {
        self.floor = self.floor.max(floor);
        while let Some((slot, _, _)) = self.by_slot.front() {
            if *slot >= self.floor {
                break;
            }
            let (slot, keys, bytes) = self.by_slot.pop_front().expect("looked at above");
            self.bytes -= bytes;
            for key in keys {
                let entries = self.by_key.get_mut(&key).expect("an indexed key has entries");
                let (first, _) = entries.pop_front().expect("an indexed key has entries");
                assert_eq!(first, slot, "a key's entries are in slot order");
                if entries.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
    }
}

/// The journal, shared by the store (which writes it) and its snapshots (which read it).
#[derive(Debug)]
pub(crate) struct Journal {
    inner: Mutex<Inner>,
}

/// The store holds this while it commits a batch: snapshots can neither open nor read the
/// journal until the batch is visible and the store's position moved (so recording the
/// pre-images under the lock, before `done`, is recording them before any reader can look).
/// Dropped without `done` (the batch failed), it leaves the journal as it was.
pub(crate) struct Commit<'a> {
    inner: MutexGuard<'a, Inner>,
    /// Whether to record this batch's pre-images.
    pub recording: bool,
    slot: u64,
    pre_images: Vec<(Key, Option<Bytes>)>,
    bytes: usize,
}

impl Commit<'_> {
    /// Records that the batch replaces `key`'s value `before`.
    pub fn record(&mut self, key: &[u8], before: Option<Bytes>) {
        assert!(self.recording, "pre-images are recorded only while a snapshot is open");
        self.bytes += key.len() + before.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD_BYTES;
        self.pre_images.push((key.to_vec(), before));
    }

    /// Called once the batch is visible in the store.
    pub fn done(mut self) {
        let inner = &mut *self.inner;
        inner.next = self.slot + 1;
        if !self.recording {
            // No open snapshot needs this batch: whoever opens one next starts after it.
            inner.floor = inner.next;
            return;
        }
        let mut keys = Vec::with_capacity(self.pre_images.len());
        for (key, before) in std::mem::take(&mut self.pre_images) {
            inner.by_key.entry(key.clone()).or_default().push_back((self.slot, before));
            keys.push(key);
        }
        inner.bytes += self.bytes;
        inner.by_slot.push_back((self.slot, keys, self.bytes));
        // Over the bound: the oldest snapshots are overtaken, one position at a time.
        while inner.bytes > inner.bytes_max {
            let next_floor = inner
                .open
                .values()
                .copied()
                .filter(|&p| p > inner.floor)
                .min()
                .unwrap_or(inner.next);
            inner.raise_floor(next_floor);
            if next_floor == inner.next {
                break;
            }
        }
    }
}

impl Journal {
    pub fn new(next: u64, bytes_max: usize) -> Journal {
        let inner = Inner { next, floor: next, bytes_max, ..Inner::default() };
        Journal { inner: Mutex::new(inner) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A reader that panicked holding the lock left the journal whole (every change is
        // made in one step under it), so its state is still good.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the commit of a batch whose last slot is `slot`.
    pub fn commit(&self, slot: u64) -> Commit<'_> {
        let inner = self.lock();
        assert!(slot >= inner.next, "a batch at slot {slot} after position {}", inner.next);
        let recording = inner.oldest_valid().is_some();
        Commit { inner, recording, slot, pre_images: Vec::new(), bytes: 0 }
    }

    /// Opens a snapshot at the store's position now.
    pub fn open(&self) -> Ticket {
        let mut inner = self.lock();
        let (id, at) = (inner.next_id, inner.next);
        inner.next_id += 1;
        inner.open.insert(id, at);
        Ticket { id, at }
    }

    /// Closes a snapshot; entries no open snapshot needs are dropped.
    pub fn close(&self, ticket: Ticket) {
        let mut inner = self.lock();
        inner.open.remove(&ticket.id);
        let floor = inner.oldest_valid().unwrap_or(inner.next);
        inner.raise_floor(floor);
    }

    /// The value at `ticket`'s position of every key between `lo` and `hi` that a batch
    /// changed after it (`None`: absent then), in key order.
    pub fn corrections(
        &self,
        ticket: Ticket,
        lo: Bound<&[u8]>,
        hi: Bound<&[u8]>,
    ) -> Result<Vec<(Key, Option<Bytes>)>, Overtaken> {
        let inner = self.lock();
        if ticket.at < inner.floor {
            return Err(Overtaken);
        }
        if !super::reads::non_empty(lo, hi) {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for (key, entries) in inner.by_key.range::<[u8], _>((lo, hi)) {
            if let Some((_, before)) = entries.iter().find(|(slot, _)| *slot >= ticket.at) {
                out.push((key.clone(), before.clone()));
            }
        }
        Ok(out)
    }

    /// The value of `key` at `ticket`'s position if a batch changed it after.
    pub fn correction(
        &self,
        ticket: Ticket,
        key: &[u8],
    ) -> Result<Option<Option<Bytes>>, Overtaken> {
        let inner = self.lock();
        if ticket.at < inner.floor {
            return Err(Overtaken);
        }
        let entries = inner.by_key.get(key);
        Ok(entries
            .and_then(|e| e.iter().find(|(slot, _)| *slot >= ticket.at))
            .map(|(_, b)| b.clone()))
    }

    /// The snapshots open now.
    pub fn open_snapshots(&self) -> usize {
        self.lock().open.len()
    }

    /// The bytes the journal holds now (for tests and the bound).
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(j: &Journal, slot: u64, writes: &[(&str, Option<&str>)]) {
        let mut c = j.commit(slot);
        if c.recording {
            for (k, before) in writes {
                c.record(k.as_bytes(), before.map(|b| b.as_bytes().to_vec()));
            }
        }
        c.done();
    }

    #[test]
    fn nothing_is_recorded_while_no_snapshot_is_open() {
        let j = Journal::new(0, 1 << 20);
        commit(&j, 0, &[("a", None)]);
        assert_eq!(j.bytes(), 0);
        let t = j.open();
        assert_eq!(t.at, 1);
        commit(&j, 1, &[("a", Some("1"))]);
        assert!(j.bytes() > 0);
        j.close(t);
        assert_eq!(j.bytes(), 0, "closing the last snapshot drops every entry");
    }

    #[test]
    fn the_earliest_pre_image_after_the_snapshot_is_the_value_at_it() {
        let j = Journal::new(0, 1 << 20);
        let old = j.open();
        commit(&j, 0, &[("a", None)]);
        let t = j.open();
        commit(&j, 1, &[("a", Some("1")), ("b", None)]);
        commit(&j, 2, &[("a", Some("2"))]);
        let all = (Bound::Unbounded, Bound::Unbounded);
        let got = j.corrections(t, all.0, all.1).unwrap();
        assert_eq!(got, vec![(b"a".to_vec(), Some(b"1".to_vec())), (b"b".to_vec(), None)]);
        assert_eq!(j.correction(old, b"a").unwrap(), Some(None));
        j.close(old);
        assert_eq!(j.correction(t, b"a").unwrap(), Some(Some(b"1".to_vec())));
        assert_eq!(j.correction(t, b"zz").unwrap(), None);
    }

    #[test]
    fn a_batch_past_the_bound_overtakes_the_oldest_snapshot_first() {
        let j = Journal::new(0, 3 * ENTRY_OVERHEAD_BYTES);
        let old = j.open();
        commit(&j, 0, &[("a", None)]);
        let young = j.open();
        commit(&j, 1, &[("b", None)]);
        commit(&j, 2, &[("c", None)]);
        assert_eq!(j.correction(old, b"a"), Err(Overtaken));
        assert_eq!(j.correction(young, b"b").unwrap(), Some(None));
        commit(&j, 3, &[("d", None), ("e", None), ("f", None)]);
        assert_eq!(j.correction(young, b"b"), Err(Overtaken));
        let fresh = j.open();
        assert_eq!(fresh.at, 4);
        commit(&j, 4, &[("g", None)]);
        assert_eq!(j.correction(fresh, b"g").unwrap(), Some(None));
        for t in [old, young, fresh] {
            j.close(t);
        }
        assert_eq!(j.bytes(), 0);
    }
}
