//! The head snapshot and collapse: how a TLog stops growing forever.
//!
//! The head is a sled store at `<tlog_dir>/head.db` (where Arakoon kept it: the head stands in
//! for the TLog files it replaced, so it lives and moves with them) holding every committed slot
//! up to its applied index `h`. Collapse with `keep` N keeps the open file and the last N sealed
//! ones; let F be the first kept file and `f` its first slot. Collapse
//!
//! 1. advances the head to `f - 1` by replaying the committed entries before F into it (every
//!    slot below `f` is committed: an entry for the next slot exists),
//! 2. flushes the head durably,
//! 3. only then removes the files before F, lowest number first, and syncs the directory.
//!
//! At every moment each slot below `f` is in the files still present or in the durable head: a
//! crash before step 3 leaves every file (and a head that is merely ahead), a crash during it
//! leaves a contiguous log from some file on (removal goes upwards, so no gap appears) that the
//! head covers. A log whose first file is not `000` is a collapsed log, and start-up requires a
//! head that reaches its first slot ([`check_log_start`]).
//!
//! A running node's catch-up readers (`last_entries`) pin the files they read ([`Pins`]);
//! collapse removes no pinned file and says so, so a collapse never races a catch-up reading the
//! same files.

use crate::store::{SledStore, StoreError};
use crate::tlog::{self, LogDir, TlogError, TlogFile};
use crate::value::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use thiserror::Error;

/// The head's directory name inside the TLog directory.
pub const HEAD_DIR: &str = "head.db";

/// Where a node's head lives.
pub fn head_path(tlog_dir: &Path) -> PathBuf {
    tlog_dir.join(HEAD_DIR)
}

/// Whether a head exists (has been created by a collapse or a catch-up from a head).
pub fn head_exists(tlog_dir: &Path) -> bool {
    head_path(tlog_dir).is_dir()
}

/// Slots folded into the head per batch.
const FOLD_BATCH_VALUES_MAX: usize = 4096;

#[derive(Debug, Error)]
pub enum CollapseError {
    #[error(transparent)]
    Tlog(#[from] TlogError),
    #[error("head at {path}: {source}")]
    Head { path: String, source: StoreError },
    #[error("the head at {head} needs slot {need} next but the TLog in {dir} resumes at slot {found}: the head does not cover the collapsed files; catch this node up from a peer (`arakoon-admin catchup`)")]
    Gap { head: String, dir: String, need: u64, found: u64 },
    #[error("removing {path}: {source}; the head covers it: remove it by hand or collapse again")]
    Remove { path: String, source: std::io::Error },
    #[error("a collapse is already running on this node; wait for it to finish")]
    Busy,
}

impl CollapseError {
    pub fn exit_code(&self) -> i32 {
        use crate::exit::NodeExit as NE;
        match self {
            CollapseError::Tlog(e) => e.exit_code(),
            CollapseError::Head { .. } => NE::Head.code(),
            CollapseError::Gap { .. } => NE::Gap.code(),
            CollapseError::Remove { .. } => NE::TlogDir.code(),
            CollapseError::Busy => NE::Usage.code(),
        }
    }
}

/// What a collapse will do, decided before any work (so an online collapse can announce its
/// number of steps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The files before the first kept one, lowest first: these are folded and removed.
    pub remove: Vec<TlogFile>,
    /// The first kept file and its first slot; `None` when there is nothing to collapse.
    pub first_kept: Option<(TlogFile, u64)>,
}

impl Plan {
    /// The steps an online collapse reports: folding, then one per file.
    pub fn steps(&self) -> usize {
        if self.first_kept.is_none() {
            0
        } else {
            1 + self.remove.len()
        }
    }
}

/// Plans a collapse keeping the open file and the last `keep` sealed files.
pub fn plan(dir: &dyn LogDir, keep: u64) -> Result<Plan, TlogError> {
    let files = tlog::list_files(dir)?;
    let nothing = Plan { remove: Vec::new(), first_kept: None };
    let sealed = files.len().saturating_sub(1) as u64;
    if sealed <= keep {
        return Ok(nothing);
    }
    let mut k = (sealed - keep) as usize;
    // An empty open file has no first slot: keep the file before it too.
    let first = loop {
        match tlog::first_i(dir, &files[k])? {
            Some(i) => break i,
            None if k > 0 => k -= 1,
            None => return Ok(nothing),
        }
    };
    if k == 0 || first == 0 {
        return Ok(nothing);
    }
    Ok(Plan { remove: files[..k].to_vec(), first_kept: Some((files[k].clone(), first)) })
}

/// One step of a collapse, for progress bars and the online reply stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Folding goes on: the head has reached `head_i` of `target_i`.
    Folding {
        head_i: Option<u64>,
        target_i: u64,
    },
    /// The head now covers every slot up to `head_i` and is durable.
    Folded {
        head_i: u64,
        slots: u64,
    },
    Removed(String),
    /// A catch-up is reading this file (or one before it): it stays.
    KeptPinned(String),
}

/// What a collapse did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub head_i: Option<u64>,
    /// Slots applied to the head by this collapse.
    pub folded: u64,
    pub removed: Vec<String>,
    pub kept_pinned: Vec<String>,
    /// The first slot the log holds afterwards.
    pub log_first_i: Option<u64>,
}

/// Collapses `dir` keeping the open file and the last `keep` sealed ones, folding into the head
/// at `head` of cluster `cluster_id`. `pins` (a running node's catch-up readers) protects files
/// in use; `step` hears each step.
pub fn collapse(
    dir: &dyn LogDir,
    head: &dyn HeadSpace,
    cluster_id: &str,
    keep: u64,
    pins: Option<&Pins>,
    step: &mut dyn FnMut(&Step),
) -> Result<Report, CollapseError> {
    let plan = plan(dir, keep)?;
    collapse_planned(dir, head, cluster_id, &plan, pins, step)
}

/// [`collapse`] of a plan made before (an online collapse announces its steps first).
pub fn collapse_planned(
    dir: &dyn LogDir,
    head: &dyn HeadSpace,
    cluster_id: &str,
    plan: &Plan,
    pins: Option<&Pins>,
    step: &mut dyn FnMut(&Step),
) -> Result<Report, CollapseError> {
    let Some((_, first_kept_i)) = plan.first_kept.clone() else {
        return Ok(Report::default());
    };
    let (mut store, slots) = fold_unflushed(dir, head, cluster_id, first_kept_i - 1, step)?;
    // Durable before any file goes: this is what makes removing them safe.
    let flushed = if crate::planted!(HeadFlushedAfterRemoval) {
        None
    } else {
        Some(flush(head, store.as_mut(), slots, step)?)
    };
    let (removed, kept) = remove_files(dir, &plan.remove, pins, step)?;
    let (head_i, folded) = match flushed {
        Some(done) => done,
        None => flush(head, store.as_mut(), slots, step)?,
    };
    let mut report = Report { head_i: Some(head_i), folded, ..Report::default() };
    report.removed = removed;
    report.kept_pinned = kept;
    report.log_first_i =
        tlog::list_files(dir)?.first().map(|f| tlog::first_i(dir, f)).transpose()?.flatten();
    Ok(report)
}

fn head_error(head: &dyn HeadSpace) -> impl Fn(StoreError) -> CollapseError + '_ {
    move |source| CollapseError::Head { path: head.location(), source }
}

/// Advances the head at `head` to at least `target_i` from the committed entries of `dir`,
/// flushed. Returns the head's applied index and the number of slots folded.
pub fn fold(
    dir: &dyn LogDir,
    head: &dyn HeadSpace,
    cluster_id: &str,
    target_i: u64,
    step: &mut dyn FnMut(&Step),
) -> Result<(u64, u64), CollapseError> {
    let (mut store, slots) = fold_unflushed(dir, head, cluster_id, target_i, step)?;
    flush(head, store.as_mut(), slots, step)
}

/// Makes the head durable; reports it folded. Returns its applied index and `slots`.
fn flush(
    head: &dyn HeadSpace,
    store: &mut dyn HeadStore,
    slots: u64,
    step: &mut dyn FnMut(&Step),
) -> Result<(u64, u64), CollapseError> {
    store.flush().map_err(head_error(head))?;
    let head_i = store.applied().expect("the head holds at least slot target_i");
    step(&Step::Folded { head_i, slots });
    Ok((head_i, slots))
}

/// [`fold`] without the flush: the head open, its new slots applied and volatile. Returns it
/// and the number of slots folded.
fn fold_unflushed(
    dir: &dyn LogDir,
    head: &dyn HeadSpace,
    cluster_id: &str,
    target_i: u64,
    step: &mut dyn FnMut(&Step),
) -> Result<(Box<dyn HeadStore>, u64), CollapseError> {
    let mut store = head.open(cluster_id).map_err(head_error(head))?;
    let from = store.next_i();
    let mut slots = 0u64;
    if from <= target_i {
        let mut batch: Vec<(u64, Value)> = Vec::with_capacity(FOLD_BATCH_VALUES_MAX);
        let mut expected = from;
        let apply = |store: &mut Box<dyn HeadStore>, batch: &mut Vec<(u64, Value)>| {
            store.apply_many(batch).map_err(head_error(head))?;
            batch.clear();
            Ok::<_, CollapseError>(())
        };
        let outcome = tlog::for_each_committed(dir, from, false, &mut |e| {
            if e.i > target_i {
                return Err(None);
            }
            if e.i != expected {
                return Err(Some(CollapseError::Gap {
                    head: head.location(),
                    dir: dir.location(),
                    need: expected,
                    found: e.i,
                }));
            }
            expected += 1;
            batch.push((e.i, e.value));
            if batch.len() >= FOLD_BATCH_VALUES_MAX {
                apply(&mut store, &mut batch).map_err(Some)?;
                step(&Step::Folding { head_i: store.applied(), target_i });
            }
            Ok(())
        })?;
        match outcome {
            Ok(()) | Err(None) => {}
            Err(Some(e)) => return Err(e),
        }
        apply(&mut store, &mut batch)?;
        slots = expected - from;
        if expected <= target_i {
            // The log ended before the target: the plan saw entries that are gone now.
            return Err(CollapseError::Gap {
                head: head.location(),
                dir: dir.location(),
                need: expected,
                found: target_i + 1,
            });
        }
    }
    Ok((store, slots))
}

/// Removes `files` (all covered by a durable head) lowest first, stopping at the first pinned
/// one; syncs the directory. Returns the names removed and the names kept because pinned.
fn remove_files(
    dir: &dyn LogDir,
    files: &[TlogFile],
    pins: Option<&Pins>,
    step: &mut dyn FnMut(&Step),
) -> Result<(Vec<String>, Vec<String>), CollapseError> {
    // Holding the pins lock while removing: a reader that pins now waits, then finds the files
    // that are left.
    let guard = pins.map(Pins::lock);
    let guard = guard.filter(|_| !crate::planted!(CollapseIgnoresPins));
    let limit = guard.as_ref().and_then(|g| g.values().min().copied()).unwrap_or(u64::MAX);
    let names = dir.list().map_err(|e| TlogError::io(dir.location(), e))?;
    let (mut removed, mut kept) = (Vec::new(), Vec::new());
    for file in files {
        if file.number >= limit {
            // Removal stays a prefix: nothing above a pinned file goes either.
            kept.push(file.name());
            step(&Step::KeptPinned(file.name()));
            continue;
        }
        // Every form of this number (an interrupted compression leaves two).
        for name in
            names.iter().filter(|n| TlogFile::parse(n).is_some_and(|f| f.number == file.number))
        {
            dir.remove(name)
                .map_err(|source| CollapseError::Remove { path: dir.path_of(name), source })?;
        }
        removed.push(file.name());
        step(&Step::Removed(file.name()));
    }
    dir.sync_dir().map_err(|e| TlogError::io(dir.location(), e))?;
    drop(guard);
    Ok((removed, kept))
}

/// The log's start as start-up sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogStart {
    /// The first file's number (0 for a log that was never collapsed).
    pub first_file: u64,
    /// The first slot the log holds, if it holds any.
    pub first_i: Option<u64>,
}

/// Reads where the log starts.
pub fn log_start(dir: &dyn LogDir) -> Result<Option<LogStart>, TlogError> {
    let files = tlog::list_files(dir)?;
    let Some(first) = files.first() else { return Ok(None) };
    // The first file may be an empty open file after a catch-up from a head.
    let first_i = files.iter().find_map(|f| tlog::first_i(dir, f).ok().flatten());
    Ok(Some(LogStart { first_file: first.number, first_i }))
}

/// Why a log and its head do not fit together.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StartProblem {
    #[error("the TLog in {dir} starts at file {first_file:03} (slot {}) but there is no head at {head} to cover the slots before it: files were collapsed without their head, or removed; restore the head, or move the TLog directory aside and catch the node up from a peer (`arakoon-admin catchup --node NAME -config FILE`)", fmt_slot(*first_i))]
    NoHead { dir: String, head: String, first_file: u64, first_i: Option<u64> },
    #[error("the head at {head} reaches slot {} but the TLog in {dir} starts at slot {first_i}: slots between are lost; move the TLog directory aside and catch the node up from a peer (`arakoon-admin catchup --node NAME -config FILE`)", fmt_slot(*head_i))]
    HeadShort { dir: String, head: String, head_i: Option<u64>, first_i: u64 },
}

fn fmt_slot(i: Option<u64>) -> String {
    i.map_or("none".into(), |i| i.to_string())
}

/// Checks that a collapsed log has a head reaching its first slot. `head_next_i` is the head's
/// next slot, `None` without a head. Returns the first slot the log and head together can replay
/// from: the store must have applied every slot before it, or be replaced by the head.
pub fn check_log_start(
    dir: &str,
    head: &dyn HeadSpace,
    start: Option<LogStart>,
    head_next_i: Option<u64>,
) -> Result<u64, StartProblem> {
    let Some(start) = start else { return Ok(head_next_i.unwrap_or(0)) };
    if start.first_file == 0 && head_next_i.is_none() {
        return Ok(0);
    }
    let head_shown = head.location();
    let Some(head_next) = head_next_i else {
        return Err(StartProblem::NoHead {
            dir: dir.into(),
            head: head_shown,
            first_file: start.first_file,
            first_i: start.first_i,
        });
    };
    match start.first_i {
        Some(f) if head_next < f => Err(StartProblem::HeadShort {
            dir: dir.into(),
            head: head_shown,
            head_i: head_next.checked_sub(1),
            first_i: f,
        }),
        Some(f) if start.first_file > 0 => Ok(f),
        // A never-collapsed log beside a head (copy_db_to_head before any removal): the log
        // alone replays everything.
        Some(_) => Ok(0),
        None => Ok(head_next),
    }
}

/// Replaces the store at `store_path` with a copy of the head at `head`: the copy is built beside
/// it (`.from-head`), then the old store is removed and the copy renamed in ([`replace_store`]);
/// a crash midway leaves the old store, or none (then the next start copies again), and a
/// `.from-head` directory that the next try removes.
pub fn copy_head_to_store(
    head: &Path,
    store_path: &Path,
    cluster_id: &str,
) -> Result<SledStore, CollapseError> {
    let source = SledStore::open(head, cluster_id)
        .map_err(|source| CollapseError::Head { path: head.display().to_string(), source })?;
    let fresh = store_copy_path(store_path);
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh).map_err(|source| CollapseError::Remove {
            path: fresh.display().to_string(),
            source,
        })?;
    }
    let copy = SledStore::import(&fresh, cluster_id, source.export())
        .map_err(|source| CollapseError::Head { path: fresh.display().to_string(), source })?;
    drop(copy);
    drop(source);
    replace_store(&fresh, store_path)?;
    SledStore::open(store_path, cluster_id)
        .map_err(|source| CollapseError::Head { path: store_path.display().to_string(), source })
}

/// The TLog files a running node's catch-up readers are reading: each pin holds the lowest file
/// number its reader may open. Collapse removes only files below every pin.
#[derive(Debug, Default)]
pub struct Pins {
    inner: Mutex<PinsInner>,
}

#[derive(Debug, Default)]
struct PinsInner {
    next_id: u64,
    pins: BTreeMap<u64, u64>,
}

/// A reader's pin; dropping it unpins.
#[derive(Debug)]
pub struct PinGuard {
    pins: Arc<Pins>,
    id: u64,
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        self.pins.inner.lock().unwrap_or_else(|p| p.into_inner()).pins.remove(&self.id);
    }
}

/// What a reader finds when it pins.
#[derive(Debug)]
pub enum Pinned {
    /// The log holds `from_i`: read on while the guard lives.
    Reading(PinGuard),
    /// Slots before `first_i` were collapsed into the head.
    Collapsed { first_i: u64 },
}

impl Pins {
    fn lock(&self) -> PinsView<'_> {
        PinsView(self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Pins the files a reader of slots `>= from_i` will open, or says that `from_i` was
    /// collapsed away. Under the lock, so no collapse removes files between the look and the pin.
    pub fn pin(self: &Arc<Self>, dir: &dyn LogDir, from_i: u64) -> Result<Pinned, TlogError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let files = tlog::list_files(dir)?;
        if let Some(first) = files.first().filter(|f| f.number > 0) {
            if let Some(first_i) = tlog::first_i(dir, first)? {
                if from_i < first_i {
                    return Ok(Pinned::Collapsed { first_i });
                }
            }
        }
        let start = tlog::start_index(dir, &files, from_i)?;
        let number = files.get(start).map_or(0, |f| f.number);
        let id = inner.next_id;
        inner.next_id += 1;
        inner.pins.insert(id, number);
        Ok(Pinned::Reading(PinGuard { pins: self.clone(), id }))
    }

    /// How many readers hold pins.
    pub fn count(&self) -> usize {
        self.lock().0.pins.len()
    }
}

struct PinsView<'a>(MutexGuard<'a, PinsInner>);

impl PinsView<'_> {
    fn values(&self) -> impl Iterator<Item = &u64> {
        self.0.pins.values()
    }
}

mod adopt;
mod restore;
mod space;
pub use adopt::{
    adopt_head, exchange, finish_interrupted_adoption, incoming_head_path, replace_store,
    restart_log, store_copy_path, with_suffix, AdoptStep,
};
pub use restore::{restore_from_db_file, RestoreError, Restored};
pub use space::{
    FileHead, HeadRead, HeadSpace, HeadStore, HEAD_FILE, HEAD_INCOMING_FILE, HEAD_PART_FILE,
};

#[cfg(test)]
mod tests;
