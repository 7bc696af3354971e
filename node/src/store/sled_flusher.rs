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

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// The longest the store's applied batches stay unflushed.
pub const FLUSH_EVERY_MS: u64 = 1_000;

/// The applied bytes (keys and values) after which this thread flushes without waiting for
/// sled's period: the bound on what the store holds unflushed, beyond one batch.
pub const FLUSH_BYTES: u64 = 8 << 20;

#[derive(Default)]
struct State {
    /// Bytes applied since this thread last flushed.
    dirty: u64,
    stop: bool,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    // The flusher thread never panics while holding the lock; if it did, the counts stay usable.
    shared.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// The thread that flushes one sled database; stopped and joined on drop.
pub struct Flusher {
    shared: Shared,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts flushing `db` (a handle of the store's database; sled flushes the whole database
    /// through any of them).
    pub fn start(db: sled::Db, shown: Arc<str>) -> std::io::Result<Flusher> {
        let shared: Shared = Arc::default();
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
            self.shared.1.notify_one();
        }
    }
}

fn run(db: &sled::Db, shared: &Shared, shown: &str) {
    loop {
        {
            let state = lock(shared);
            let period = std::time::Duration::from_millis(FLUSH_EVERY_MS);
            let (mut state, _) = shared
                .1
                .wait_timeout_while(state, period, |s| !s.stop && s.dirty < FLUSH_BYTES)
                .unwrap_or_else(|e| e.into_inner());
            if state.stop {
                return;
            }
            if state.dirty == 0 {
                continue;
            }
            state.dirty = 0;
        }
        let started = crate::spans::start();
        let flushed = db.flush();
        crate::spans::STORE_FLUSH.since(started);
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
        self.shared.1.notify_one();
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
        // Dropped, the thread is told to stop and joined (a thread that missed it hangs here).
        drop(flusher);
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }
}
