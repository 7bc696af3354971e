//! Collapse on a running node (`collapse_tlogs` 0x14, `copy_db_to_head` 0x44) and the head's
//! transfer to a catching node (`get_db` 0x1b, our `fetch_head` 0x101), the serving side (the
//! asking side is client/head.rs).
//!
//! These are answered by the connection task, never by the core loop: folding and streaming run
//! where the storage runs blocking reads ([`super::blocking::BlockingReads`]: blocking threads
//! on disk, so the master keeps serving while they run; the node's task in memory, under
//! simulation), and the head is the storage's ([`crate::head::HeadSpace`]: a sled directory on
//! disk, a file on the simulated disk in memory), so one code path serves both. Three rules keep them from
//! racing each other or a catch-up:
//! - one collapse at a time: a second one fails at once ([`super::shared::HeadShared::lock`], `try_lock`);
//! - `get_db` waits for a running collapse (same lock) and reads a head no one writes;
//! - `last_entries` readers pin the files they read ([`crate::head::Pins`]); collapse keeps a
//!   pinned file (and every one after it) and says so in its step.
//!
//! `copy_db_to_head` does not copy the live store (the core writes it while we would read it, so
//! the copy would mix two moments): it brings the head up to the committed slot before the log's
//! last one by replaying the log, which yields the same state, then collapses.

use super::blocking::{self, Sink, Source};
use super::env::Stream;
use super::shared::{CoreMsg, Shared};
use crate::head::{self, CollapseError, HeadRead, Step};
use crate::protocol::client::{encode_error, DbFrame, StepFrame, COLLAPSE_STEPS_BEYOND_FILES};
use crate::rc::Rc;
use crate::store::StoreError;
use crate::tlog;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// Why a head could not be streamed (`get_db`, `fetch_head`): the requester hears it as rc 0xff
/// before any byte, or as a cut stream after; the node's log says which.
#[derive(Debug, thiserror::Error)]
enum HeadStreamError {
    /// Reading the TLog's last slot before folding the committed slots into the head.
    #[error("reading the TLog's last slot: {0}")]
    Tlog(#[source] tlog::TlogError),
    #[error("folding the committed slots into the head: {0}")]
    Fold(#[source] CollapseError),
    /// Opening or reading the head's store.
    #[error("reading the head: {0}")]
    Head(#[source] StoreError),
}
use tokio::sync::oneshot;

/// Pairs per head chunk (`fetch_head`, `get_db`).
const DB_CHUNK_PAIRS: usize = 1024;
/// A frame also ends once its pairs hold this many bytes: 1024 large values in one frame would
/// be gigabytes in memory at once.
const DB_CHUNK_BYTES: usize = 2 << 20;

enum Progress {
    Total(usize),
    /// A step done (what it did is logged here, not sent: Arakoon's steps carry an int64 only).
    Step,
    /// A failure before anything was announced, or after (then it ends the step stream).
    Fail(CollapseError),
    /// The collapse finished.
    Done,
}

fn log_step(step: &Step) -> bool {
    match step {
        Step::Folding { .. } => return false,
        Step::Folded { head_i, slots } => {
            tracing::info!("collapse: folded {slots} slots into the head, which covers every slot up to i={head_i}")
        }
        Step::Removed(name) => tracing::info!("collapse: removed {name}"),
        Step::KeptPinned(name) => {
            tracing::info!("collapse: kept {name}: a catch-up is reading it or a file before it")
        }
    }
    true
}

/// Arakoon's refusal of a `tlogs_to_keep` below 1 (rc 0xff, then the connection closes):
/// `collapse_tlogs` says "N is not acceptable", `copy_db_to_head` "tlogs_to_keep=N is not
/// acceptable".
pub fn refuse_keep(keep: i32, copy_db: bool) -> Option<Vec<u8>> {
    if keep >= 1 {
        return None;
    }
    let msg = if copy_db {
        format!("tlogs_to_keep={keep} is not acceptable")
    } else {
        format!("{keep} is not acceptable")
    };
    let mut out = Vec::new();
    encode_error(Rc::UnknownFailure, msg.as_bytes(), &mut out);
    Some(out)
}

/// Arakoon's refusal of `copy_db_to_head` and `get_db` on the master: rc 0x20, then the
/// connection closes.
pub const ON_MASTER: &str = "Operation cannot be performed on master node";

/// Asks the core whether this node is the master now; `None` when the core is gone.
async fn is_master(shared: &Arc<Shared>) -> Option<bool> {
    let (reply, answer) = oneshot::channel();
    shared.core.send(CoreMsg::IsMaster { reply }).await.ok()?;
    answer.await.ok()
}

/// Refuses a command that only a slave answers (copy_db_to_head, get_db) when this node is the
/// master, as Arakoon does: rc 0x20 and a close. True when the command may go on.
async fn on_slave_only<S: Stream>(stream: &mut S, shared: &Arc<Shared>) -> bool {
    match is_master(shared).await {
        None => false,
        Some(true) => {
            let mut out = Vec::new();
            encode_error(Rc::NotSupported, ON_MASTER.as_bytes(), &mut out);
            let _ = stream.write_all(&out).await;
            false
        }
        Some(false) => true,
    }
}

/// Answers `collapse_tlogs` (or, with `copy_db`, `copy_db_to_head`). Returns whether the
/// connection may go on.
///
/// `collapse_tlogs` answers as Arakoon 1.9 does: rc 0 and an int32 step count (0 when there is
/// nothing to collapse, else the number of files to fold and remove plus 2, Arakoon's count), then
/// exactly that many steps, each rc 0 and an int64 (the milliseconds since the start). A
/// failure after the count is rc and message, and the connection closes.
/// `copy_db_to_head` answers the bare rc 0 when done, 0x20 on the master.
pub async fn serve_collapse<S: Stream>(
    stream: &mut S,
    shared: &Arc<Shared>,
    keep: i32,
    copy_db: bool,
) -> bool {
    if let Some(refusal) = refuse_keep(keep, copy_db) {
        let _ = stream.write_all(&refusal).await;
        return false;
    }
    let keep = keep as u32;
    let mut out = Vec::new();
    if copy_db && !on_slave_only(stream, shared).await {
        return false;
    }
    // Arakoon: only a collapse refuses another collapse; copy_db_to_head takes no such lock.
    let collapsing = if copy_db {
        None
    } else {
        let Ok(collapsing) = shared.head.collapsing.clone().try_lock_owned() else {
            // Arakoon's words for a second collapse at once.
            encode_error(Rc::UnknownFailure, b"Collapsing already in progress", &mut out);
            let _ = stream.write_all(&out).await;
            return false;
        };
        Some(collapsing)
    };
    let guard = shared.head.lock.clone().lock_owned().await;
    let committed = if copy_db {
        let (reply, answer) = oneshot::channel();
        if shared.core.send(CoreMsg::Committed { reply }).await.is_err() {
            return false;
        }
        let Ok(committed) = answer.await else { return false };
        committed
    } else {
        None
    };
    // On a blocking thread on disk, on this task in memory (server/blocking.rs).
    let (tx, mut rx) = blocking::channel::<Progress>(shared.reads.as_ref(), 16);
    let (dir, space, pins) =
        (shared.dir.clone(), shared.head.space.clone(), shared.head.pins.clone());
    let cluster_id = shared.cluster_id.clone();
    shared.reads.run(Box::new(move || {
        let _guard = (guard, collapsing);
        let send = |p: Progress| {
            tx.send(p);
        };
        let result = (|| -> Result<(), CollapseError> {
            let plan = head::plan(dir.as_ref(), u64::from(keep))?;
            let fold_first = copy_db.then_some(committed).flatten();
            // Arakoon announces the files to collapse plus 2, or 0.
            let announced = if plan.first_kept.is_none() {
                0
            } else {
                plan.remove.len() + COLLAPSE_STEPS_BEYOND_FILES
            };
            send(Progress::Total(announced));
            let mut on_step = |s: &Step| {
                if log_step(s) {
                    send(Progress::Step);
                }
            };
            if let Some(committed) = fold_first {
                // The log's last slot is committed only once a later one exists.
                let last = tlog::last_i(dir.as_ref())?.unwrap_or(0);
                let target = committed.min(last.saturating_sub(1));
                head::fold(dir.as_ref(), space.as_ref(), &cluster_id, target, &mut |s| {
                    log_step(s);
                })?;
            }
            let report = head::collapse_planned(
                dir.as_ref(),
                space.as_ref(),
                &cluster_id,
                &plan,
                Some(&pins),
                &mut on_step,
            )?;
            tracing::info!(removed = ?report.removed, kept_pinned = ?report.kept_pinned, head_i = ?report.head_i, "collapsed");
            Ok(())
        })();
        match result {
            Ok(()) => send(Progress::Done),
            Err(e) => {
                tracing::warn!("collapse failed: {e}");
                send(Progress::Fail(e));
            }
        }
    }));
    // The runtime's clock: the simulated one under simulation.
    let started = tokio::time::Instant::now();
    let elapsed = || i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let (mut announced, mut sent) = (None::<usize>, 0usize);
    while let Some(p) = rx.recv().await {
        out.clear();
        match p {
            Progress::Total(n) => {
                announced = Some(n);
                if !copy_db {
                    out.put_i32_le(Rc::Ok.code() as i32);
                    out.put_i32_le(n as i32);
                }
            }
            Progress::Step => {
                // Never more steps than announced: an original client reads exactly that many.
                if !copy_db && announced.is_some_and(|n| sent + 1 < n) {
                    sent += 1;
                    StepFrame::Done { elapsed_ms: elapsed() }.encode(&mut out);
                }
            }
            Progress::Done => {
                if copy_db {
                    out.put_i32_le(Rc::Ok.code() as i32);
                } else {
                    // The last announced step is the end; pad if fewer steps were reported.
                    while announced.is_some_and(|n| sent < n) {
                        sent += 1;
                        StepFrame::Done { elapsed_ms: elapsed() }.encode(&mut out);
                    }
                }
            }
            Progress::Fail(e) => {
                encode_error(Rc::UnknownFailure, e.to_string().as_bytes(), &mut out);
                let _ = stream.write_all(&out).await;
                return false;
            }
        }
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            return false;
        }
    }
    true
}

trait PutLe {
    fn put_i32_le(&mut self, v: i32);
}

impl PutLe for Vec<u8> {
    fn put_i32_le(&mut self, v: i32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
}

/// Writes the head's [`DbFrame`]s (header, chunks of pairs, end) to `emit` until it returns
/// false. The head is not written meanwhile (the caller holds [`super::shared::HeadShared::lock`]), so two
/// passes see the same frames: `get_db` measures them first, then sends them.
fn head_frames(
    head: &dyn HeadRead,
    cluster_id: &str,
    emit: &mut dyn FnMut(Vec<u8>) -> bool,
) -> Result<(), StoreError> {
    let mut bytes = Vec::new();
    DbFrame::Header { cluster_id: cluster_id.to_string(), applied: head.head_i() }
        .encode(&mut bytes);
    if !emit(bytes) {
        return Ok(());
    }
    let mut chunk = Vec::with_capacity(DB_CHUNK_PAIRS);
    let (mut sent, mut chunk_bytes) = (0u64, 0usize);
    for pair in head.pairs() {
        let pair = pair?;
        chunk_bytes += pair.0.len() + pair.1.len();
        chunk.push(pair);
        if chunk.len() >= DB_CHUNK_PAIRS || chunk_bytes >= DB_CHUNK_BYTES {
            chunk_bytes = 0;
            sent += chunk.len() as u64;
            let mut bytes = Vec::new();
            DbFrame::Pairs(std::mem::take(&mut chunk)).encode(&mut bytes);
            if !emit(bytes) {
                return Ok(());
            }
        }
    }
    sent += chunk.len() as u64;
    let mut bytes = Vec::new();
    if !chunk.is_empty() {
        DbFrame::Pairs(chunk).encode(&mut bytes);
    }
    DbFrame::End { pairs: sent }.encode(&mut bytes);
    emit(bytes);
    Ok(())
}

/// Sends `prefix`, the int64 size of the head's [`DbFrame`]s, then the frames: how Arakoon frames
/// a database file (`get_db`, the head of `last_entries2`).
fn sized_head_frames(
    head: &dyn HeadRead,
    cluster_id: &str,
    mut prefix: Vec<u8>,
    tx: &Sink<Result<Vec<u8>, HeadStreamError>>,
) -> Result<(), StoreError> {
    let mut size = 0u64;
    head_frames(head, cluster_id, &mut |b| {
        size += b.len() as u64;
        true
    })?;
    prefix.extend_from_slice(&(size as i64).to_le_bytes());
    if !tx.send(Ok(prefix)) {
        return Ok(());
    }
    head_frames(head, cluster_id, &mut |b| tx.send(Ok(b)))
}

/// The head part of Arakoon's `last_entries2` / `last_entries3` when the slot asked for was
/// already folded into the head: `prefix` (rc 0, already due), int32 2, an int64 size, then the
/// head's bytes. As with `get_db`, the file is ours (its [`DbFrame`]s, README). Returns the slot
/// the head holds, from which the entries go on, or `None` when the stream cannot go on (the
/// connection then closes: the reader sees no end).
pub async fn send_head_for_entries<S: Stream>(
    stream: &mut S,
    shared: &Arc<Shared>,
    mut prefix: Vec<u8>,
) -> Option<Option<u64>> {
    let guard = shared.head.lock.clone().lock_owned().await;
    let (space, cluster_id) = (shared.head.space.clone(), shared.cluster_id.clone());
    let (tx, rx) = blocking::channel::<Result<Vec<u8>, HeadStreamError>>(shared.reads.as_ref(), 8);
    let (applied_tx, applied_rx) = oneshot::channel();
    shared.reads.run(Box::new(move || {
        let _guard = guard;
        let result = space.read(&cluster_id).and_then(|head| {
            let _ = applied_tx.send(head.head_i());
            prefix.put_i32_le(2);
            sized_head_frames(head.as_ref(), &cluster_id, prefix, &tx)
        });
        if let Err(e) = result {
            tx.send(Err(HeadStreamError::Head(e)));
        }
    }));
    if !forward(stream, rx, "last_entries (the head)").await {
        return None;
    }
    applied_rx.await.ok()
}

/// Answers our `fetch_head` (the private catch-up command): the head's pairs as [`DbFrame`]s, or
/// not_found when this node has no head. Waits for a running collapse. Returns whether the
/// connection may go on.
pub async fn serve_fetch_head<S: Stream>(stream: &mut S, shared: &Arc<Shared>) -> bool {
    let guard = shared.head.lock.clone().lock_owned().await;
    let space = shared.head.space.clone();
    let mut out = Vec::new();
    if !space.exists() {
        let msg = format!(
            "this node has no head at {} (its TLog was never collapsed): fetch its entries with \
             catchup_entries",
            space.location()
        );
        encode_error(Rc::NotFound, msg.as_bytes(), &mut out);
        return stream.write_all(&out).await.is_ok();
    }
    let (tx, rx) = blocking::channel::<Result<Vec<u8>, HeadStreamError>>(shared.reads.as_ref(), 8);
    let cluster_id = shared.cluster_id.clone();
    shared.reads.run(Box::new(move || {
        let _guard = guard;
        let result = space.read(&cluster_id).and_then(|head| {
            let mut first = true;
            head_frames(head.as_ref(), &cluster_id, &mut |mut bytes| {
                if std::mem::take(&mut first) {
                    let mut with_rc = (Rc::Ok.code() as i32).to_le_bytes().to_vec();
                    with_rc.append(&mut bytes);
                    bytes = with_rc;
                }
                tx.send(Ok(bytes))
            })
        });
        if let Err(e) = result {
            tx.send(Err(HeadStreamError::Head(e)));
        }
    }));
    forward(stream, rx, "fetch_head").await
}

/// Writes what a producer thread sends; an error before any bytes is answered with rc 0xff, one
/// after cuts the stream (the reader sees no end). Returns whether the connection may go on.
async fn forward<S: Stream>(
    stream: &mut S,
    mut rx: Source<Result<Vec<u8>, HeadStreamError>>,
    what: &str,
) -> bool {
    let mut first = true;
    while let Some(item) = rx.recv().await {
        match item {
            Ok(bytes) => {
                if stream.write_all(&bytes).await.is_err() {
                    return false;
                }
            }
            Err(e) => {
                tracing::warn!("{what}: {e}");
                if first {
                    let mut out = Vec::new();
                    encode_error(Rc::UnknownFailure, e.to_string().as_bytes(), &mut out);
                    let _ = stream.write_all(&out).await;
                }
                return false;
            }
        }
        first = false;
    }
    true
}

/// Answers Arakoon's `get_db` as Arakoon frames it: rc 0, an int64 size, then the database file's
/// bytes; on the master rc 0x20 and a close. The file is ours: the node's state at its committed
/// slot as [`DbFrame`]s (the head is first brought up to that slot, as `copy_db_to_head` does,
/// so the live store is never read while the core writes it). README says how to restore it.
pub async fn serve_get_db<S: Stream>(stream: &mut S, shared: &Arc<Shared>) -> bool {
    if !on_slave_only(stream, shared).await {
        return false;
    }
    let (reply, answer) = oneshot::channel();
    if shared.core.send(CoreMsg::Committed { reply }).await.is_err() {
        return false;
    }
    let Ok(committed) = answer.await else { return false };
    let guard = shared.head.lock.clone().lock_owned().await;
    let (dir, space) = (shared.dir.clone(), shared.head.space.clone());
    let (tx, rx) = blocking::channel::<Result<Vec<u8>, HeadStreamError>>(shared.reads.as_ref(), 8);
    let cluster_id = shared.cluster_id.clone();
    shared.reads.run(Box::new(move || {
        let _guard = guard;
        let result = (|| -> Result<(), HeadStreamError> {
            if let Some(committed) = committed {
                // The log's last slot is committed only once a later one exists.
                let last = tlog::last_i(dir.as_ref()).map_err(HeadStreamError::Tlog)?.unwrap_or(0);
                let target = committed.min(last.saturating_sub(1));
                head::fold(dir.as_ref(), space.as_ref(), &cluster_id, target, &mut |s| {
                    log_step(s);
                })
                .map_err(HeadStreamError::Fold)?;
            }
            let head = space.read(&cluster_id).map_err(HeadStreamError::Head)?;
            let mut first = Vec::with_capacity(12);
            first.put_i32_le(Rc::Ok.code() as i32);
            sized_head_frames(head.as_ref(), &cluster_id, first, &tx).map_err(HeadStreamError::Head)
        })();
        if let Err(e) = result {
            tx.send(Err(e));
        }
    }));
    forward(stream, rx, "get_db").await
}

#[cfg(test)]
mod memory_head_tests {
    //! The head of a node in memory, under the server's own code: written by a collapse into a
    //! [`FileHead`] on the node's simulated disk, streamed as `fetch_head` streams it
    //! ([`head_frames`]) and built into a store as the catcher builds it
    //! (`MemoryStore::import`), then adopted by a node whose log is behind
    //! ([`super::super::catchup::adopt_in_memory`]), which then starts from it.

    use super::*;
    use crate::config::ClusterConfig;
    use crate::head::{FileHead, HeadSpace, HEAD_INCOMING_FILE};
    use crate::server::catchup::{adopt_in_memory, FetchedMemoryHead};
    use crate::server::storage::prepare_in_memory;
    use crate::store::{MemoryStore, Store};
    use crate::tlog::{self, LogDir, MemDir};
    use crate::value::{Update, Value};

    fn config() -> ClusterConfig {
        let text = "[global]\ncluster = n0, n1\ncluster_id = c\ntlog_max_entries = 5\n\
                    [n0]\nip = 127.0.0.1\nclient_port = 1\nmessaging_port = 2\n\
                    home = /nonexistent/n0\n[n1]\nip = 127.0.0.1\nclient_port = 3\n\
                    messaging_port = 4\nhome = /nonexistent/n1\n";
        ClusterConfig::parse(text, "t.ini").unwrap()
    }

    fn value(i: u64) -> Value {
        let key = format!("k{}", i % 7).into_bytes();
        Value::client(vec![Update::Set { key, value: i.to_le_bytes().to_vec() }])
    }

    /// A node's log of slots `0..n` on a new disk, written by the server's start-up and writer.
    fn node_with_log(cfg: &ClusterConfig, k: usize, n: u64) -> MemDir {
        let disk = MemDir::new(format!("n{k}"));
        let mut w = prepare_in_memory(cfg, &cfg.nodes[k], &disk).unwrap().writer;
        for i in 0..n {
            w.append(&[(i, &value(i))]).unwrap();
        }
        disk
    }

    /// The frames `fetch_head` sends for `space`, decoded as the catcher decodes them.
    fn streamed(space: &FileHead) -> Vec<(Vec<u8>, Vec<u8>)> {
        let head = space.read("c").unwrap();
        let mut bytes = Vec::new();
        head_frames(head.as_ref(), "c", &mut |b| {
            bytes.extend_from_slice(&b);
            true
        })
        .unwrap();
        let (mut at, mut header, mut pairs) = (0, true, Vec::new());
        loop {
            let (frame, used) = DbFrame::decode(&bytes[at..], header).unwrap().expect("whole");
            at += used;
            match frame {
                DbFrame::Header { cluster_id, applied } => {
                    assert_eq!((cluster_id.as_str(), applied), ("c", head.head_i()));
                    header = false;
                }
                DbFrame::Pairs(p) => pairs.extend(p),
                DbFrame::End { pairs: n } => {
                    assert_eq!(n, pairs.len() as u64);
                    assert_eq!(at, bytes.len(), "nothing after the end");
                    return pairs;
                }
            }
        }
    }

    #[test]
    fn a_memory_head_is_written_by_collapse_streamed_and_adopted() {
        let cfg = config();
        // The peer: 60 slots in 12 files, collapsed keeping one sealed file.
        let peer = node_with_log(&cfg, 0, 60);
        let peer_dir: Arc<dyn LogDir> = Arc::new(peer.clone());
        let peer_head = FileHead::new(peer_dir.clone());
        assert!(!peer_head.exists());
        let plan = head::plan(peer_dir.as_ref(), 1).unwrap();
        let report =
            head::collapse_planned(peer_dir.as_ref(), &peer_head, "c", &plan, None, &mut |_| {})
                .unwrap();
        let head_i = report.head_i.expect("folded");
        assert!(head_i >= 40 && report.removed.len() >= 8, "{report:?}");
        assert!(peer_head.exists());

        // Streamed and built into a store: the peer's state at head_i, exactly.
        let pairs = streamed(&peer_head);
        let fetched =
            MemoryStore::import("fetched", "c", pairs.into_iter().map(Ok::<_, StoreError>))
                .unwrap();
        let mut want = MemoryStore::new("c");
        for i in 0..=head_i {
            want.apply(i, &value(i)).unwrap();
        }
        assert_eq!(fetched.applied(), Some(head_i));
        assert_eq!(fetched.entries(), want.entries());

        // The catcher: 8 slots, all before the peer's log. It writes the fetched head where a
        // fetched head waits and adopts it.
        let catcher = node_with_log(&cfg, 1, 8);
        let dir: Arc<dyn LogDir> = Arc::new(catcher.clone());
        FileHead::new(dir.clone()).write_incoming(&fetched).unwrap();
        let got = FetchedMemoryHead { head_i, store: fetched };
        let (writer, store) = adopt_in_memory(got, dir.clone(), &cfg, &cfg.nodes[1]).unwrap();
        assert_eq!(writer.last_i(), None, "the log restarts after the head");
        assert_eq!(store.entries(), want.entries());
        assert!(!catcher.exists(HEAD_INCOMING_FILE).unwrap());
        let files = tlog::list_files(dir.as_ref()).unwrap();
        assert_eq!(files.len(), 1, "the old files are gone: {files:?}");
        drop(writer);

        // A crash now loses nothing the adoption did: start-up takes the head as the store.
        catcher.crash(|_| 0);
        let restarted = prepare_in_memory(&cfg, &cfg.nodes[1], &catcher).unwrap();
        assert_eq!(restarted.store.applied(), Some(head_i));
        assert_eq!(restarted.store.entries(), want.entries());
        assert_eq!(restarted.last, None);
    }
}
