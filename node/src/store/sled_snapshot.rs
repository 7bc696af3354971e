//! The sled store's snapshots: the live tree, corrected by the undo journal (store/journal.rs).
//!
//! A read scans the live tree without a lock, then asks the journal for the value at its
//! position of every key a later batch changed within what it scanned, and puts those in. A
//! listing read goes in segments: a segment's scan stops at the keys still wanted (or the reply's
//! byte bound); once corrected, the segment is exactly the store at the snapshot between its
//! first and last scanned key, so the read keeps what it needs and, if corrections removed keys,
//! scans on past the segment. A read whose snapshot was overtaken (the journal dropped its
//! entries to keep its bound) restarts once at the newest applied index: a newer state, read
//! before the request is answered, is still a state inside the request's interval, so the read
//! stays linearizable; overtaken again, it is refused ([`SnapshotError::Overtaken`]).

use super::journal::{Journal, Overtaken, Ticket};
use super::sled_store::{scan_user, user_key};
use super::snapshot::{Snapshot, SnapshotError, Walk};
use super::{wire_bytes, Scan, Scanned, StoreError};
use crate::value::{Bytes, Key};
use std::cmp::Ordering;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Handles kept for the next snapshots at most (one per reading thread is what is used).
const HANDLES_KEPT_MAX: usize = 64;

pub struct SledSnapshot {
    /// `Some` until dropped, when it goes back to `handles`.
    db: Option<sled::Db>,
    handles: Arc<Mutex<Vec<sled::Db>>>,
    journal: Arc<Journal>,
    ticket: Ticket,
    path: Arc<str>,
    bytes_max: usize,
    restarted: bool,
}

impl std::fmt::Debug for SledSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledSnapshot").field("path", &self.path).field("at", &self.at()).finish()
    }
}

type Once<T> = Result<Result<T, Overtaken>, StoreError>;

impl SledSnapshot {
    pub(crate) fn open(
        db: sled::Db,
        handles: Arc<Mutex<Vec<sled::Db>>>,
        journal: Arc<Journal>,
        path: Arc<str>,
        bytes_max: usize,
    ) -> SledSnapshot {
        let ticket = journal.open();
        SledSnapshot { db: Some(db), handles, journal, ticket, path, bytes_max, restarted: false }
    }

    fn db(&self) -> &sled::Db {
        self.db.as_ref().expect("a snapshot has its handle until dropped")
    }

    fn backend(&self, source: std::io::Error) -> StoreError {
        StoreError::Backend { path: PathBuf::from(&*self.path), source }
    }

    /// Runs `read` once, and once more at the newest applied index if the snapshot was
    /// overtaken.
    fn retrying<T>(&mut self, read: impl Fn(&Self) -> Once<T>) -> Result<T, SnapshotError> {
        if let Ok(found) = read(self)? {
            return Ok(found);
        }
        if !self.restarted {
            self.restarted = true;
            let newer = self.journal.open();
            assert!(newer.at >= self.ticket.at, "a restart reads a newer state, never an older");
            self.journal.close(std::mem::replace(&mut self.ticket, newer));
            tracing::debug!(at = ?self.at(), "a read was overtaken by writes; it restarts once");
            if let Ok(found) = read(self)? {
                return Ok(found);
            }
        }
        Err(SnapshotError::Overtaken { bytes_max: self.bytes_max })
    }

    /// Every key's value at the snapshot: all live reads first, then the corrections.
    fn values_once(&self, keys: &[Key]) -> Once<Vec<Option<Bytes>>> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            let live = self.db().get(user_key(key)).map_err(|e| self.backend(e))?;
            values.push(live.map(|v| v.to_vec()));
        }
        for (key, value) in keys.iter().zip(values.iter_mut()) {
            match self.journal.correction(self.ticket, key) {
                Ok(Some(before)) => *value = before,
                Ok(None) => {}
                Err(overtaken) => return Ok(Err(overtaken)),
            }
        }
        Ok(Ok(values))
    }

    fn scan_once(&self, walk: &Walk, bytes_max: usize) -> Once<Option<Scanned>> {
        let mut walk = walk.clone();
        let (mut out, mut bytes) = (Vec::new(), 0usize);
        while out.len() < walk.max && !walk.is_empty() {
            let need = walk.max - out.len();
            let (mut segment, mut segment_bytes, mut ended) = (Vec::new(), 0usize, true);
            let live = scan_user(self.db(), walk.bounds());
            let live: Box<dyn Iterator<Item = _>> =
                if walk.reverse { Box::new(live.rev()) } else { Box::new(live) };
            for item in live {
                let (k, v) = item.map_err(|e| self.backend(e))?;
                let value = if walk.keys_only { Vec::new() } else { v.to_vec() };
                let key = k[1..].to_vec();
                segment_bytes += wire_bytes(&key, &value, walk.keys_only);
                segment.push((key, value));
                if segment.len() >= need || bytes.saturating_add(segment_bytes) > bytes_max {
                    ended = false;
                    break;
                }
            }
            let last_live = segment.last().map(|(k, _)| k.clone());
            let covered = match (&last_live, ended) {
                (Some(last), false) => walk.up_to(last),
                _ => walk.bounds(),
            };
            let fixes = match self.journal.corrections(self.ticket, covered.0, covered.1) {
                Ok(fixes) => fixes,
                Err(overtaken) => return Ok(Err(overtaken)),
            };
            for (key, value) in
                merge(segment, fixes, walk.reverse, walk.keys_only).into_iter().take(need)
            {
                bytes += wire_bytes(&key, &value, walk.keys_only);
                if bytes > bytes_max {
                    return Ok(Ok(None));
                }
                out.push((key, value));
            }
            match (last_live, ended) {
                (Some(last), false) => walk.past(&last),
                _ => break,
            }
        }
        Ok(Ok(Some(out)))
    }
}

/// `segment` (in walk order) with `fixes` (ascending; `None`: absent at the snapshot) put in.
fn merge(
    segment: Vec<(Key, Bytes)>,
    mut fixes: Vec<(Key, Option<Bytes>)>,
    reverse: bool,
    keys_only: bool,
) -> Vec<(Key, Bytes)> {
    if fixes.is_empty() {
        return segment;
    }
    if reverse {
        fixes.reverse();
    }
    let order = |a: &Key, b: &Key| if reverse { b.cmp(a) } else { a.cmp(b) };
    let fixed =
        |(k, v): (Key, Option<Bytes>)| v.map(|v| (k, if keys_only { Vec::new() } else { v }));
    let mut out = Vec::with_capacity(segment.len() + fixes.len());
    let mut live = segment.into_iter().peekable();
    let mut fixes = fixes.into_iter().peekable();
    loop {
        let next = match (live.peek(), fixes.peek()) {
            (None, None) => break,
            (Some(_), None) => live.next(),
            (None, Some(_)) => fixes.next().and_then(fixed),
            (Some((a, _)), Some((b, _))) => match order(a, b) {
                Ordering::Less => live.next(),
                Ordering::Greater => fixes.next().and_then(fixed),
                Ordering::Equal => {
                    live.next();
                    fixes.next().and_then(fixed)
                }
            },
        };
        out.extend(next);
    }
    out
}

impl Snapshot for SledSnapshot {
    fn at(&self) -> Option<u64> {
        self.ticket.at.checked_sub(1)
    }

    fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>, SnapshotError> {
        let keys = [key.to_vec()];
        let mut values = self.retrying(|s| s.values_once(&keys))?;
        Ok(values.pop().expect("one value per key"))
    }

    fn multi_get(&mut self, keys: &[Key]) -> Result<Result<Vec<Bytes>, Key>, SnapshotError> {
        let values = self.retrying(|s| s.values_once(keys))?;
        // Arakoon names the last missing key in request order.
        if let Some(k) = keys.iter().zip(&values).rev().find(|(_, v)| v.is_none()) {
            return Ok(Err(k.0.clone()));
        }
        Ok(Ok(values.into_iter().map(|v| v.expect("none is missing")).collect()))
    }

    fn multi_get_option(&mut self, keys: &[Key]) -> Result<Vec<Option<Bytes>>, SnapshotError> {
        self.retrying(|s| s.values_once(keys))
    }

    fn scan_within(
        &mut self,
        scan: &Scan<'_>,
        bytes_max: usize,
    ) -> Result<Option<Scanned>, SnapshotError> {
        let Some(walk) = Walk::of(scan) else { return Ok(Some(Vec::new())) };
        self.retrying(|s| s.scan_once(&walk, bytes_max))
    }
}

impl Drop for SledSnapshot {
    fn drop(&mut self) {
        self.journal.close(self.ticket);
        if let Some(db) = self.db.take() {
            let mut handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
            if handles.len() < HANDLES_KEPT_MAX {
                handles.push(db);
            }
        }
    }
}
