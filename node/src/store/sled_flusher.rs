//! When the sled store writes its applied batches to disk: this thread flushes every
//! [`FLUSH_EVERY_MS`] when something was applied, and sooner once [`FLUSH_BYTES`] were applied
//! since it last flushed. sled's own periodic flusher is off (sled_store.rs), so that every
//! flush is this thread's and timed (the `store.flush` span, node/src/spans.rs).
//!
//! sled's own flusher runs on a fixed period (200 ms by default). Each flush opens a new epoch,
//! and a later `apply_batch` that touches a leaf still dirty from the epoch before serializes and
//! compresses that whole leaf on the caller's thread first: with the default period that cost
//! landed on the thread that runs the consensus core several times a second and made the tail
//! of sets at 64 clients (docs/PERFORMANCE.md, profile 1). A longer period alone would let the
//! unflushed data grow with the write rate (large values at full speed), so the period here is
//! longer and bytes bound it too. Nothing is lost by flushing less often: the TLog is the truth,
//! and start-up replays what the store had not flushed.
//!
//! The bytes bound what is unflushed only if applies wait for the flushes: a flush runs beside
//! the applies, and on a loaded machine (the flusher starved of CPU, or the disk behind) the
//! applies went on while it ran, so the unflushed data grew with the write rate: a master took
//! 808 MiB with 1 MiB values and a bound of 511 MiB (node/tests/memory.rs while a build ran).
//! An apply now waits ([`Flusher::wait_for_room`]) while the bytes applied and not yet flushed,
//! those of the flush that runs included, reach [`UNFLUSHED_BYTES_MAX`].

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// The longest the store's applied batches stay unflushed.
pub const FLUSH_EVERY_MS: u64 = 1_000;

/// The applied bytes (keys and values) after which this thread flushes without waiting for
/// sled's period: the bound on what the store holds unflushed, beyond one batch.
pub const FLUSH_BYTES: u64 = 8 << 20;

/// The applied bytes not yet flushed (those the running flush writes and those applied since) at
/// which an apply waits for the flush: twice [`FLUSH_BYTES`], so that a flush that keeps pace
/// never holds an apply up. One apply may pass it by its own bytes.
pub const UNFLUSHED_BYTES_MAX: u64 = 2 * FLUSH_BYTES;

/// An apply that waited this long for a flush is logged: the disk or the machine is behind.
const SLOW_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Default)]
struct State {
    /// Bytes applied since this thread last took them to flush.
    dirty: u64,
    /// Bytes the running flush writes (0 between flushes).
    flushing: u64,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the thread: bytes passed [`FLUSH_BYTES`], or stop.
    work: Condvar,
    /// Wakes the applies that wait: a flush ended, or stop.
    room: Condvar,
}

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // The flusher thread never panics while holding the lock; if it did, the counts stay usable.
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The thread that flushes one sled database; stopped and joined on drop.
pub struct Flusher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts flushing `db` (a handle of the store's database; sled flushes the whole database
    /// through any of them).
    pub fn start(db: sled::Db, shown: Arc<str>) -> std::io::Result<Flusher> {
        let state = Mutex::new(State::default());
        let shared = Arc::new(Shared { state, work: Condvar::new(), room: Condvar::new() });
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("store-flusher".into())
            .spawn(move || run(&db, &theirs, &shown))?;
        Ok(Flusher { shared, thread: Some(thread) })
    }

    /// Counts `bytes` applied; wakes the thread once they pass [`FLUSH_BYTES`] (else it flushes
    /// them when its period ends).
    pub fn applied(&self, bytes: u64) {
        let mut state = lock(&self.shared);
        // A batch without user bytes still changed the store (its applied index, the master).
        state.dirty += bytes.max(1);
        if state.dirty >= FLUSH_BYTES {
            self.shared.work.notify_one();
        }
    }

    /// Waits, before an apply, while the bytes applied and not yet flushed reach
    /// [`UNFLUSHED_BYTES_MAX`]: what sled holds unflushed stays bounded whatever the write rate
    /// and however far the flushes fall behind. Returns at once while they keep pace.
    pub fn wait_for_room(&self, shown: &str) {
        let full = |s: &State| !s.stop && s.dirty + s.flushing >= UNFLUSHED_BYTES_MAX;
        let mut state = lock(&self.shared);
        if !full(&state) {
            return;
        }
        let started = std::time::Instant::now();
        // The thread may not have woken for the bytes yet (its wake-up is lost if it was
        // flushing then): wake it again.
        self.shared.work.notify_one();
        while full(&state) {
            state = self.shared.room.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        let waited = started.elapsed();
        if waited >= SLOW_WAIT {
            tracing::warn!(
                "store at {shown}: an apply waited {waited:.1?} for the store's flush to disk \
                 (more than {} MiB unflushed): the disk or the machine is behind the writes",
                UNFLUSHED_BYTES_MAX >> 20
            );
        }
    }
}

fn run(db: &sled::Db, shared: &Shared, shown: &str) {
    loop {
        {
            let state = lock(shared);
            let period = std::time::Duration::from_millis(FLUSH_EVERY_MS);
            let (mut state, _) = shared
                .work
                .wait_timeout_while(state, period, |s| !s.stop && s.dirty < FLUSH_BYTES)
                .unwrap_or_else(|e| e.into_inner());
            if state.stop {
                return;
            }
            if state.dirty == 0 {
                continue;
            }
            state.flushing = std::mem::take(&mut state.dirty);
        }
        let started = crate::spans::start();
        let flushed = db.flush();
        crate::spans::STORE_FLUSH.since(started);
        lock(shared).flushing = 0;
        shared.room.notify_all();
        if let Err(e) = flushed {
            // The store goes on in memory; the TLog still holds every applied slot, and the next
            // flush (or start-up's replay) tries again.
            tracing::error!("store at {shown}: flushing to disk failed: {e}");
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        lock(&self.shared).stop = true;
        self.shared.work.notify_one();
        self.shared.room.notify_all();
        if let Some(thread) = self.thread.take() {
            // The thread only waits and flushes: it ends once it sees `stop`.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db() -> (tempfile::TempDir, sled::Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        (dir, db)
    }

    #[test]
    fn applied_bytes_past_the_bound_wake_the_thread_and_a_drop_stops_it() {
        let (_dir, db) = temp_db();
        let flusher = Flusher::start(db.clone(), "t".into()).unwrap();
        db.insert(b"k", &b"v"[..]).unwrap();
        flusher.applied(FLUSH_BYTES);
        // Woken by the bytes, the thread flushes: the count is reset.
        let started = std::time::Instant::now();
        while lock(&flusher.shared).dirty != 0 {
            assert!(started.elapsed().as_secs() < 30, "never woken");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // Below the bound the thread sleeps on.
        flusher.applied(10);
        assert_eq!(lock(&flusher.shared).dirty, 10);
        // ... until its period is over: then it flushes what is there.
        let started = std::time::Instant::now();
        while lock(&flusher.shared).dirty != 0 {
            assert!(started.elapsed().as_secs() < 30, "a period passed without a flush");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // Applies past the bound on unflushed bytes wait for a flush: once back, the store
        // holds less than the bound unflushed (the flush took them).
        flusher.applied(UNFLUSHED_BYTES_MAX);
        flusher.wait_for_room("t");
        let state = lock(&flusher.shared);
        assert!(state.dirty + state.flushing < UNFLUSHED_BYTES_MAX, "returned while full");
        drop(state);
        // Dropped, the thread is told to stop and joined (a thread that missed it hangs here).
        drop(flusher);
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }
}
