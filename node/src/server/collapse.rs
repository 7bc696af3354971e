//! Collapse on a running node (`collapse_tlogs` 0x14, `copy_db_to_head` 0x44) and the head's
//! transfer to a catching node (`get_db` 0x1b), both sides.
//!
//! These are answered by the connection task, never by the core loop: folding and streaming run
//! on blocking threads, so the master keeps serving while they run. Three rules keep them from
//! racing each other or a catch-up:
//! - one collapse at a time: a second one fails at once ([`HeadShared::lock`], `try_lock`);
//! - `get_db` waits for a running collapse (same lock) and reads a head no one writes;
//! - `last_entries` readers pin the files they read ([`crate::head::Pins`]); collapse keeps a
//!   pinned file (and every one after it) and says so in its step.
//!
//! `copy_db_to_head` does not copy the live store (the core writes it while we would read it, so
//! the copy would mix two moments): it brings the head up to the committed slot before the log's
//! last one by replaying the log, which yields the same state, then collapses.

use super::env::{Network, Stream};
use super::shared::{CoreMsg, Shared};
use crate::client::fetch::{self as catchup, OnProgress, Phase, ReplyStream};
use crate::head::{self, CollapseError, Pins, Step};
use crate::protocol::client::{encode_error, DbFrame, Request, StepFrame};
use crate::rc::Rc;
use crate::store::{SledStore, Store, StoreError};
use crate::tlog;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

/// One pair of a `get_db` stream on its way to the importer, or why the stream failed.
type PairItem = Result<(Vec<u8>, Vec<u8>), String>;

/// Pairs per `get_db` chunk.
const DB_CHUNK_PAIRS: usize = 1024;
/// A peer that sends nothing for this long is given up on.
const SILENCE_TIMEOUT_MS: u64 = 30_000;

/// What the connection tasks share about the head.
pub struct HeadShared {
    pub path: PathBuf,
    pub pins: Arc<Pins>,
    /// Held by a collapse and by `get_db`.
    pub lock: Arc<tokio::sync::Mutex<()>>,
}

impl HeadShared {
    pub fn new(tlog_dir: &Path) -> HeadShared {
        HeadShared {
            path: head::head_path(tlog_dir),
            pins: Arc::new(Pins::default()),
            lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}

enum Progress {
    Total(usize),
    Step(StepFrame),
    Fail(String),
}

fn step_frame(step: &Step) -> Option<StepFrame> {
    let message = match step {
        Step::Folding { .. } => return None,
        Step::Folded { head_i, slots } => {
            format!("folded {slots} slots into the head, which covers every slot up to i={head_i}")
        }
        Step::Removed(name) => format!("removed {name}"),
        Step::KeptPinned(name) => {
            format!("kept {name}: a catch-up is reading it or a file before it")
        }
    };
    Some(StepFrame { rc: Rc::Ok, message })
}

/// Answers `collapse_tlogs` (or, with `copy_db`, `copy_db_to_head`): rc 0, int32 total steps,
/// then one [`StepFrame`] per step. Returns whether the connection may go on.
pub async fn serve_collapse<S: Stream>(
    stream: &mut S,
    shared: &Arc<Shared>,
    keep: u32,
    copy_db: bool,
) -> bool {
    let mut out = Vec::new();
    let Ok(guard) = shared.head.lock.clone().try_lock_owned() else {
        let e = CollapseError::Busy.to_string();
        encode_error(Rc::UnknownFailure, e.as_bytes(), &mut out);
        return stream.write_all(&out).await.is_ok();
    };
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
    let (tx, mut rx) = mpsc::channel::<Progress>(16);
    let (dir, path, pins) =
        (shared.dir.clone(), shared.head.path.clone(), shared.head.pins.clone());
    let cluster_id = shared.cluster_id.clone();
    tokio::task::spawn_blocking(move || {
        let _guard = guard;
        let send = |p: Progress| {
            let _ = tx.blocking_send(p);
        };
        let mut announced = false;
        let result = (|| -> Result<(), CollapseError> {
            let plan = head::plan(dir.as_ref(), u64::from(keep))?;
            let fold_first = copy_db.then_some(committed).flatten();
            send(Progress::Total(plan.steps() + usize::from(fold_first.is_some())));
            announced = true;
            let mut on_step = |s: &Step| {
                if let Some(frame) = step_frame(s) {
                    send(Progress::Step(frame));
                }
            };
            if let Some(committed) = fold_first {
                // The log's last slot is committed only once a later one exists.
                let last = tlog::last_i(dir.as_ref())?.unwrap_or(0);
                let target = committed.min(last.saturating_sub(1));
                head::fold(dir.as_ref(), &path, &cluster_id, target, &mut on_step)?;
            }
            let report = head::collapse_planned(
                dir.as_ref(),
                &path,
                &cluster_id,
                &plan,
                Some(&pins),
                &mut on_step,
            )?;
            tracing::info!(removed = ?report.removed, kept_pinned = ?report.kept_pinned, head_i = ?report.head_i, "collapsed");
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!("collapse failed: {e}");
            if !announced {
                send(Progress::Fail(e.to_string()));
            } else {
                send(Progress::Step(StepFrame { rc: Rc::UnknownFailure, message: e.to_string() }));
            }
        }
    });
    while let Some(p) = rx.recv().await {
        out.clear();
        match p {
            Progress::Total(n) => {
                out.put_i32_le(Rc::Ok.code() as i32);
                out.put_i32_le(n as i32);
            }
            Progress::Step(frame) => frame.encode(&mut out),
            Progress::Fail(message) => {
                encode_error(Rc::UnknownFailure, message.as_bytes(), &mut out);
                let _ = stream.write_all(&out).await;
                return false;
            }
        }
        if stream.write_all(&out).await.is_err() {
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

/// Answers `get_db`: the head's pairs as [`DbFrame`]s, or not_found when this node has no head.
/// Waits for a running collapse. Returns whether the connection may go on.
pub async fn serve_get_db<S: Stream>(stream: &mut S, shared: &Arc<Shared>) -> bool {
    let guard = shared.head.lock.clone().lock_owned().await;
    let path = shared.head.path.clone();
    let mut out = Vec::new();
    if !path.is_dir() {
        let msg = format!(
            "this node has no head at {} (its TLog was never collapsed): fetch its entries with \
             last_entries",
            path.display()
        );
        encode_error(Rc::NotFound, msg.as_bytes(), &mut out);
        return stream.write_all(&out).await.is_ok();
    }
    let (tx, mut rx) = mpsc::channel::<Result<Vec<u8>, String>>(8);
    let cluster_id = shared.cluster_id.clone();
    tokio::task::spawn_blocking(move || {
        let _guard = guard;
        let result = (|| -> Result<(), StoreError> {
            let head = SledStore::open(&path, &cluster_id)?;
            let mut bytes = Vec::new();
            bytes.put_i32_le(Rc::Ok.code() as i32);
            DbFrame::Header { cluster_id: cluster_id.clone(), applied: head.applied() }
                .encode(&mut bytes);
            if tx.blocking_send(Ok(bytes)).is_err() {
                return Ok(());
            }
            let mut chunk = Vec::with_capacity(DB_CHUNK_PAIRS);
            let mut sent = 0u64;
            for pair in head.export() {
                chunk.push(pair?);
                if chunk.len() >= DB_CHUNK_PAIRS {
                    sent += chunk.len() as u64;
                    let mut bytes = Vec::new();
                    DbFrame::Pairs(std::mem::take(&mut chunk)).encode(&mut bytes);
                    if tx.blocking_send(Ok(bytes)).is_err() {
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
            let _ = tx.blocking_send(Ok(bytes));
            Ok(())
        })();
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e.to_string()));
        }
    });
    let mut first = true;
    while let Some(item) = rx.recv().await {
        match item {
            Ok(bytes) => {
                if stream.write_all(&bytes).await.is_err() {
                    return false;
                }
            }
            Err(e) => {
                tracing::warn!("get_db: {e}");
                if first {
                    out.clear();
                    encode_error(Rc::UnknownFailure, e.as_bytes(), &mut out);
                    let _ = stream.write_all(&out).await;
                }
                // A cut stream: the catcher sees no end frame and gives up.
                return false;
            }
        }
        first = false;
    }
    true
}

/// Asks the node at `addr` to collapse (`copy_db`: copy_db_to_head), calling `on_step` with each
/// step as it arrives. Returns the number of steps announced; a failed step is an error.
pub async fn request_collapse<N: Network>(
    net: &N,
    addr: SocketAddr,
    cluster_id: &str,
    keep: u32,
    copy_db: bool,
    on_step: &mut dyn FnMut(usize, &StepFrame),
) -> Result<usize, String> {
    let request =
        if copy_db { Request::CopyDbToHead { keep } } else { Request::CollapseTlogs { keep } };
    let (mut stream, reply) =
        ReplyStream::open(net, addr, cluster_id, &request, SILENCE_TIMEOUT_MS).await?;
    let total = match reply {
        Ok(crate::protocol::client::Payload::Int32(n)) => {
            usize::try_from(n).map_err(|_| format!("{addr}: {n} steps"))?
        }
        Ok(other) => return Err(format!("{addr}: unexpected {other:?}")),
        Err((rc, message)) => return Err(format!("{addr}: {rc}: {message}")),
    };
    for done in 1..=total {
        let (frame, _) = stream.next("step", StepFrame::decode).await?;
        on_step(done, &frame);
        if frame.rc != Rc::Ok {
            return Err(format!("{addr}: step {done} of {total}: {}: {}", frame.rc, frame.message));
        }
    }
    Ok(total)
}

/// Fetches the head of the node at `addr` into a new store at `dest` (which must not exist);
/// returns it opened. A cut stream or a pair count that does not match leaves no store behind.
pub async fn fetch_db<N: Network>(
    net: &N,
    addr: SocketAddr,
    cluster_id: &str,
    dest: &Path,
    progress: OnProgress<'_>,
) -> Result<SledStore, String> {
    let (mut stream, reply) =
        ReplyStream::open(net, addr, cluster_id, &Request::GetDb, SILENCE_TIMEOUT_MS).await?;
    if let Err((rc, message)) = reply {
        return Err(format!("{addr} refused get_db: {rc}: {message}"));
    }
    let (tx, mut rx) = mpsc::channel::<PairItem>(4 * DB_CHUNK_PAIRS);
    let (dest_owned, id) = (dest.to_path_buf(), cluster_id.to_string());
    let importer = tokio::task::spawn_blocking(move || {
        SledStore::import(&dest_owned, &id, std::iter::from_fn(|| rx.blocking_recv()))
    });
    let received = receive_db(&mut stream, cluster_id, &tx, progress).await;
    if let Err(e) = &received {
        let _ = tx.send(Err(e.clone())).await;
    }
    drop(tx);
    let imported = importer.await.map_err(|e| format!("the import thread failed: {e}"))?;
    match (received, imported) {
        (Ok(()), Ok(store)) => Ok(store),
        (Err(e), _) | (Ok(()), Err(StoreError::Corrupt { reason: e, .. })) => {
            let _ = std::fs::remove_dir_all(dest);
            Err(e)
        }
        (Ok(()), Err(e)) => {
            let _ = std::fs::remove_dir_all(dest);
            Err(e.to_string())
        }
    }
}

async fn receive_db<S: Stream>(
    stream: &mut ReplyStream<S>,
    cluster_id: &str,
    tx: &mpsc::Sender<PairItem>,
    progress: OnProgress<'_>,
) -> Result<(), String> {
    let addr = stream.addr;
    let mut state = catchup::Progress { phase: Phase::Head, done: 0, total: None, bytes: 0 };
    let mut header = true;
    loop {
        let (frame, used) = stream.next("get_db frame", |b| DbFrame::decode(b, header)).await?;
        state.bytes += used as u64;
        match frame {
            DbFrame::Header { cluster_id: theirs, .. } => {
                if theirs != cluster_id {
                    return Err(format!("{addr} sent the head of cluster {theirs:?}"));
                }
                header = false;
            }
            DbFrame::Pairs(pairs) => {
                state.done += pairs.len() as u64;
                for pair in pairs {
                    tx.send(Ok(pair)).await.map_err(|_| "the import stopped".to_string())?;
                }
                progress(&state);
            }
            DbFrame::End { pairs } => {
                if pairs != state.done {
                    return Err(format!("{addr} announced {pairs} pairs but sent {}", state.done));
                }
                progress(&state);
                return Ok(());
            }
        }
    }
}
