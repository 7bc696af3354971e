//! Replay: bring a store up to date from the TLog.
//!
//! The store is derived from the log: replay applies every committed slot from the store's
//! `applied + 1` up to the last committed one (the log's last slot is committed only once a later
//! one exists, unless the caller knows better, as a 1-node cluster does). Values are handed to
//! the store in batches through `apply_replayed`, so that a store can commit many slots in one atomic
//! write, and a progress callback hears after every batch.
//!
//! A store ahead of the log is an error (Arakoon's exit 40): the store can only ever hold what
//! the log decided, so such a store belongs to another history.

use crate::store::{Store, StoreError};
use crate::tlog::{self, LogDir, TlogError};
use crate::value::Value;
use thiserror::Error;

/// How far replay has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The last slot applied so far.
    pub applied_i: Option<u64>,
    /// The last slot replay will apply.
    pub target_i: Option<u64>,
    /// Values and leaf updates applied by this replay so far.
    pub values: u64,
    pub updates: u64,
}

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error(transparent)]
    Tlog(#[from] TlogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the store has applied i={store_i} but the TLog in {dir} ends at i={log_last_i}: the store is ahead of its log; rebuild it with `arakoon-admin rebuild`")]
    StoreAhead { dir: String, store_i: u64, log_last_i: u64 },
    #[error("the store needs i={need} next but the TLog in {dir} resumes at i={found}: the entries between are gone (collapsed or deleted); restore the store from a head snapshot or catch up from a peer")]
    Gap { dir: String, need: u64, found: u64 },
}

impl ReplayError {
    /// Arakoon's exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        use crate::exit::NodeExit as NE;
        match self {
            ReplayError::Tlog(e) => e.exit_code(),
            ReplayError::Store(_) => NE::Store.code(),
            ReplayError::StoreAhead { .. } => NE::StoreAhead.code(),
            ReplayError::Gap { .. } => NE::Gap.code(),
        }
    }
}

/// Batch limits for `apply_replayed`. Small batches replay faster into sled: rebuilding 1,000,000
/// updates ran at 0.47 M updates/s with batches of up to 4,096 slots or 16,384 updates, 0.60 M
/// with 4,096 updates, 0.65-0.75 M with 1,024 and 0.70-0.80 M with 256 (64 was no faster), both
/// for slots of 1 and of 64 updates (`cli/tests/measure.rs`). Each batch is still one atomic write.
const BATCH_VALUES_MAX: usize = 256;
const BATCH_UPDATES_MAX: usize = 256;

/// Replays the committed slots the store lacks. Returns the final progress.
pub fn replay(
    dir: &dyn LogDir,
    store: &mut dyn Store,
    last_is_committed: bool,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Progress, ReplayError> {
    let log_last = tlog::last_i(dir)?;
    let Some(mut run) = Run::start(dir, store, log_last, last_is_committed)? else {
        return Ok(Progress::nothing(store, log_last, last_is_committed, progress));
    };
    let outcome = tlog::for_each_committed(dir, run.expected, last_is_committed, &mut |entry| {
        run.push(entry.i, entry.value, progress)
    })?;
    outcome?;
    run.finish(progress)
}

/// [`replay`] from slots read already: the log in `dir` ends at `log_last`, and `committed` is
/// every committed slot it holds, in order, with its final value (as
/// [`crate::tlog::TlogWriter::open_with`] hands them over, with the last slot added when
/// `last_is_committed`). The same checks, batches and progress as [`replay`], without reading
/// the log again: a store rebuilt from nothing at start-up thus costs one pass over the log.
pub fn replay_read(
    dir: &dyn LogDir,
    store: &mut dyn Store,
    log_last: Option<u64>,
    committed: impl IntoIterator<Item = (u64, Value)>,
    last_is_committed: bool,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Progress, ReplayError> {
    let Some(mut run) = Run::start(dir, store, log_last, last_is_committed)? else {
        return Ok(Progress::nothing(store, log_last, last_is_committed, progress));
    };
    // As `for_each_committed` from the store's next slot: the slots below it are skipped.
    let from = run.expected;
    for (i, value) in committed.into_iter().filter(|(i, _)| *i >= from) {
        run.push(i, value, progress)?;
    }
    run.finish(progress)
}

/// The last slot a replay of a log ending at `log_last` applies.
fn target(log_last: Option<u64>, last_is_committed: bool) -> Option<u64> {
    match (log_last, last_is_committed) {
        (Some(last), true) => Some(last),
        (Some(0), false) | (None, _) => None,
        (Some(last), false) => Some(last - 1),
    }
}

impl Progress {
    /// A replay with nothing to apply: the store holds every committed slot already.
    fn nothing(
        store: &dyn Store,
        log_last: Option<u64>,
        last_is_committed: bool,
        progress: &mut dyn FnMut(&Progress),
    ) -> Progress {
        let target_i = target(log_last, last_is_committed);
        let state = Progress { applied_i: store.applied(), target_i, values: 0, updates: 0 };
        progress(&state);
        state
    }
}

/// A replay under way: the batch being gathered and the slot it needs next.
struct Run<'a> {
    dir: &'a dyn LogDir,
    store: &'a mut dyn Store,
    state: Progress,
    batch: Vec<(u64, Value)>,
    batch_updates: usize,
    expected: u64,
}

impl<'a> Run<'a> {
    /// Checks the store against the log; `None` when the store holds every committed slot.
    fn start(
        dir: &'a dyn LogDir,
        store: &'a mut dyn Store,
        log_last: Option<u64>,
        last_is_committed: bool,
    ) -> Result<Option<Run<'a>>, ReplayError> {
        if let (Some(store_i), Some(log_last_i)) = (store.applied(), log_last) {
            if store_i > log_last_i {
                return Err(ReplayError::StoreAhead { dir: dir.location(), store_i, log_last_i });
            }
        }
        let target_i = target(log_last, last_is_committed);
        let from = store.next_i();
        if target_i.is_none_or(|t| t < from) {
            return Ok(None);
        }
        let state = Progress { applied_i: store.applied(), target_i, values: 0, updates: 0 };
        Ok(Some(Run {
            dir,
            store,
            state,
            batch: Vec::with_capacity(BATCH_VALUES_MAX),
            batch_updates: 0,
            expected: from,
        }))
    }

    /// The next committed slot: it must be the one the store needs next.
    fn push(
        &mut self,
        i: u64,
        value: Value,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<(), ReplayError> {
        if i != self.expected {
            let dir = self.dir.location();
            return Err(ReplayError::Gap { dir, need: self.expected, found: i });
        }
        self.expected += 1;
        self.batch_updates += value.update_count();
        self.batch.push((i, value));
        if self.batch.len() >= BATCH_VALUES_MAX || self.batch_updates >= BATCH_UPDATES_MAX {
            apply_batch(self.store, &mut self.batch, &mut self.batch_updates, &mut self.state)?;
            progress(&self.state);
        }
        Ok(())
    }

    /// Applies the last batch and makes the store durable.
    fn finish(mut self, progress: &mut dyn FnMut(&Progress)) -> Result<Progress, ReplayError> {
        apply_batch(self.store, &mut self.batch, &mut self.batch_updates, &mut self.state)?;
        self.store.flush()?;
        progress(&self.state);
        Ok(self.state)
    }
}

fn apply_batch(
    store: &mut dyn Store,
    batch: &mut Vec<(u64, Value)>,
    batch_updates: &mut usize,
    state: &mut Progress,
) -> Result<(), ReplayError> {
    if batch.is_empty() {
        return Ok(());
    }
    let values = batch.len() as u64;
    store.apply_replayed(batch)?;
    state.values += values;
    state.updates += *batch_updates as u64;
    state.applied_i = store.applied();
    *batch_updates = 0;
    Ok(())
}
