//! A read handed off the core: the request, the snapshot the read gate took for it, and what it
//! needs to answer and to be counted.
//!
//! The shell checks the read gate (the master lease for a consistent read) and takes the store's
//! snapshot in the same turn: that instant is the read's linearization point, since the lease
//! held then and the store had applied every write acknowledged before it. The job then runs
//! wherever the [`super::Outbox`] puts it (the server's blocking pool; at once in the
//! simulator) and answers the state at the snapshot's index, whatever the core applies or
//! whatever becomes of the lease meanwhile. A long range read no longer holds the core, so it
//! cannot starve the lease timer. A read of one key ([`point_read`]) is answered on the core from
//! the store itself: it costs less than the hop to another thread and back.

use super::statistics::{HostProbes, Op, Statistics};
use super::{failed, Reply};
use crate::protocol::client::{Payload, Request};
use crate::rc::Rc;
use crate::store::{Scan, Snapshot, SnapshotError, Store, StoreError};
use crate::value::Bytes;
use std::sync::{Arc, Mutex};

/// A read to run against its snapshot.
pub struct ReadJob {
    pub(super) snapshot: Box<dyn Snapshot>,
    pub(super) request: Request,
    pub(super) reply_bytes_max: usize,
    /// The node's counters, shared with the shell: the job records its own duration.
    pub(super) stats: Arc<Mutex<Statistics>>,
    /// The core's time at the gate (the counters' `last`).
    pub(super) now_ms: u64,
    pub(super) probes: HostProbes,
}

impl std::fmt::Debug for ReadJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadJob")
            .field("request", &self.request.name())
            .field("at", &self.snapshot.at())
            .finish()
    }
}

/// What a read of one key reads from: a snapshot (a read job) or the store itself (the core).
pub(super) trait KeyReads {
    type Error;
    fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>, Self::Error>;
    fn exists(&mut self, key: &[u8]) -> Result<bool, Self::Error>;
}

impl KeyReads for dyn Snapshot {
    type Error = SnapshotError;
    fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>, SnapshotError> {
        Snapshot::get(self, key)
    }
    fn exists(&mut self, key: &[u8]) -> Result<bool, SnapshotError> {
        Snapshot::exists(self, key)
    }
}

/// The store as it is now: what the core reads.
pub(super) struct Live<'a, S>(pub &'a S);

impl<S: Store> KeyReads for Live<'_, S> {
    type Error = StoreError;
    fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        self.0.get(key)
    }
    fn exists(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        self.0.exists(key)
    }
}

/// The answer to a read of one key (get, exists, assert, assert_exists), with its kind and size
/// for the counters when it is timed; any other request comes back as `Err`. A read job answers these
/// from its snapshot; the core answers them from its store at once, since reading one key costs
/// less than handing the read to another thread and back.
pub(super) fn point_read<R: KeyReads + ?Sized>(
    request: Request,
    s: &mut R,
) -> Result<Result<Answered, Request>, R::Error> {
    Ok(Ok(match request {
        Request::Exists { key, .. } => (Reply::Ok(Payload::Bool(s.exists(&key)?)), None),
        Request::Get { key, .. } => match s.get(&key)? {
            Some(v) => {
                let size = v.len();
                (Reply::Ok(Payload::String(v)), Some((Op::Get, size)))
            }
            // Arakoon's store raises Not_found, which its handler answers by that name.
            None => (failed(Rc::NotFound, b"Not_found".to_vec()), None),
        },
        Request::Assert { key, value, .. } => {
            if s.get(&key)? == value {
                (Reply::Ok(Payload::Unit), None)
            } else {
                (failed(Rc::AssertionFailed, key), None)
            }
        }
        Request::AssertExists { key, .. } => {
            if s.exists(&key)? {
                (Reply::Ok(Payload::Unit), None)
            } else {
                (failed(Rc::AssertionFailed, key), None)
            }
        }
        other => return Ok(Err(other)),
    }))
}

/// A reply and, for a timed read, its kind and size for the counters.
pub(super) type Answered = (Reply, Option<(Op, usize)>);

/// Whether `request` is a listing or multi-key read of the store (and so runs as a
/// [`ReadJob`]); reads of one key are answered on the core ([`point_read`]).
pub(super) fn reads_the_store(request: &Request) -> bool {
    matches!(
        request,
        Request::Range { .. }
            | Request::PrefixKeys { .. }
            | Request::RangeEntries { .. }
            | Request::RevRangeEntries { .. }
            | Request::MultiGet { .. }
            | Request::MultiGetOption { .. }
    )
}

fn too_large(what: &str, max: usize) -> Reply {
    let msg = format!(
        "{what}: the reply would pass reply_bytes_max ({max} bytes); ask for fewer with max, or \
         a narrower range, and go on from the last key"
    );
    failed(Rc::BadInput, msg.into_bytes())
}

impl ReadJob {
    /// The applied index the read answers at.
    pub fn at(&self) -> Option<u64> {
        self.snapshot.at()
    }

    /// Reads and answers.
    pub fn run(mut self) -> Reply {
        let clock = self.probes.seconds;
        let t0 = clock();
        let request = std::mem::replace(&mut self.request, Request::WhoMaster);
        match self.answer(request) {
            Ok((reply, None)) => reply,
            Ok((reply, Some((op, size)))) => {
                let took = clock() - t0;
                let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
                stats.record_secs(op, took, self.now_ms, size);
                reply
            }
            Err(e @ SnapshotError::Overtaken { .. }) => {
                failed(Rc::UnknownFailure, e.to_string().into_bytes())
            }
            Err(SnapshotError::Store(e)) => {
                // The core stops the node when the store fails under it; a read beside the core
                // can only report it (the next apply meets the same store).
                tracing::error!("a read failed in the store: {e}");
                failed(Rc::UnknownFailure, format!("the store failed: {e}").into_bytes())
            }
        }
    }

    /// Reads and answers, with a listing's payload already in its wire form
    /// ([`Payload::Encoded`]): the server runs this beside its core, so that the core's thread
    /// never walks a large answer to encode it (nor to free it).
    pub fn run_encoded(self) -> Reply {
        match self.run() {
            Reply::Ok(
                payload @ (Payload::Keys(_)
                | Payload::Entries(_)
                | Payload::Values(_)
                | Payload::OptionValues(_)),
            ) => {
                let mut bytes = Vec::new();
                crate::protocol::client::encode_payload(&payload, &mut bytes);
                Reply::Ok(Payload::Encoded(bytes))
            }
            other => other,
        }
    }

    /// The reply and, for a timed read, its kind and size for the counters.
    fn answer(&mut self, request: Request) -> Result<Answered, SnapshotError> {
        let s = &mut self.snapshot;
        let max = self.reply_bytes_max;
        let keys = |found: crate::store::Scanned| found.into_iter().map(|(k, _)| k).collect();
        let request = match point_read(request, &mut **s)? {
            Ok(answered) => return Ok(answered),
            Err(request) => request,
        };
        Ok(match request {
            Request::Range { range, .. } => match s.scan_within(&Scan::Range(&range), max)? {
                Some(found) => {
                    let n = found.len();
                    (Reply::Ok(Payload::Keys(keys(found))), Some((Op::Range, n)))
                }
                None => (too_large("range", max), None),
            },
            Request::PrefixKeys { prefix, max: count, .. } => {
                match s.scan_within(&Scan::PrefixKeys(&prefix, count), max)? {
                    Some(found) => {
                        let n = found.len();
                        (Reply::Ok(Payload::Keys(keys(found))), Some((Op::PrefixKeys, n)))
                    }
                    None => (too_large("prefix_keys", max), None),
                }
            }
            Request::RangeEntries { range, .. } => {
                match s.scan_within(&Scan::RangeEntries(&range), max)? {
                    Some(entries) => {
                        let n = entries.len();
                        (Reply::Ok(Payload::Entries(entries)), Some((Op::RangeEntries, n)))
                    }
                    None => (too_large("range_entries", max), None),
                }
            }
            Request::RevRangeEntries { range, .. } => {
                match s.scan_within(&Scan::RevRangeEntries(&range), max)? {
                    Some(entries) => {
                        let n = entries.len();
                        (Reply::Ok(Payload::Entries(entries)), Some((Op::RevRangeEntries, n)))
                    }
                    None => (too_large("rev_range_entries", max), None),
                }
            }
            Request::MultiGet { keys, .. } => match s.multi_get(&keys)? {
                Ok(values) => (Reply::Ok(Payload::Values(values)), Some((Op::MultiGet, 0))),
                Err(missing) => (failed(Rc::NotFound, missing), None),
            },
            Request::MultiGetOption { keys, .. } => {
                let values = s.multi_get_option(&keys)?;
                (Reply::Ok(Payload::OptionValues(values)), Some((Op::MultiGetOption, 0)))
            }
            other => {
                let msg = format!("{} does not read the store", other.name());
                (failed(Rc::UnknownFailure, msg.into_bytes()), None)
            }
        })
    }
}
