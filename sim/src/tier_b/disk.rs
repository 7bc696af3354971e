//! Each node's home directory, and waiting for a crashed node to let go of its files.
//!
//! Homes live under `/dev/shm` when it exists. It is tmpfs: fsync returns at once, so the
//! persister thread (a real OS thread that turmoil does not schedule) finishes a write in
//! microseconds of real time. While it works, the node's runtime is idle and turmoil's clock
//! moves on, so every real microsecond the thread takes can become a tick of virtual time; a fast
//! disk keeps that to one tick and makes it rare for it to be two.
//!
//! A crash in turmoil drops the node's runtime: its tasks, sockets, store and the persister's
//! queue go, but the persister thread finishes the write it is doing and sled may flush, as the
//! kernel finishes a killed process's writes. Before the node is started again, [`wait_released`]
//! waits (in real time, no virtual time passes) until no file under its home is open in this
//! process, so that the new instance validates files that nobody writes any more.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The temporary directory that holds every node's home; removed on drop.
pub struct Homes {
    dir: tempfile::TempDir,
}

impl Homes {
    pub fn new() -> std::io::Result<Homes> {
        let shm = Path::new("/dev/shm");
        let mut builder = tempfile::Builder::new();
        builder.prefix("arakoon-tier-b-");
        let dir = if shm.is_dir() { builder.tempdir_in(shm) } else { builder.tempdir() }?;
        Ok(Homes { dir })
    }

    pub fn home(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

/// Waits until no open file of this process lies under `dir`, for at most `limit` of real time.
/// False if files were still open then. Where `/proc/self/fd` cannot be read, returns true at
/// once (nothing to wait on).
pub fn wait_released(dir: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return true };
        let held = entries
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .any(|target| target.starts_with(dir));
        if !held {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Watches this process's threads of one name (the nodes' persisters) so that the run can wait,
/// between two steps of the simulation, until each is asleep: every write a node asked for in
/// the step is then done and reported, and the next step sees the report whatever the real
/// scheduler did. Linux only; elsewhere it never waits.
pub struct ThreadWatch {
    name: &'static str,
    tids: Vec<String>,
    steps_to_refresh: u32,
}

/// Steps between two looks for new threads (a restarted node has a new persister).
const REFRESH_STEPS: u32 = 16;

impl ThreadWatch {
    pub fn new(name: &'static str) -> ThreadWatch {
        ThreadWatch { name, tids: Vec::new(), steps_to_refresh: 0 }
    }

    fn refresh(&mut self) {
        self.tids.clear();
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return };
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim_end() == self.name {
                self.tids.push(task.file_name().to_string_lossy().into_owned());
            }
        }
        self.tids.sort();
    }

    /// Waits until every watched thread sleeps (or is gone), for at most `limit` of real time.
    pub fn wait_idle(&mut self, limit: Duration) {
        if self.steps_to_refresh == 0 {
            self.refresh();
            self.steps_to_refresh = REFRESH_STEPS;
        }
        self.steps_to_refresh -= 1;
        let deadline = Instant::now() + limit;
        for tid in &self.tids {
            let path = format!("/proc/self/task/{tid}/stat");
            // A thread that is gone cannot be read: nothing to wait for.
            while let Ok(stat) = std::fs::read_to_string(&path) {
                // "tid (comm) S ...": the state follows the last parenthesis.
                let state =
                    stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
                let busy = matches!(state, Some('R' | 'D'));
                if !busy || Instant::now() >= deadline {
                    break;
                }
                std::thread::yield_now();
            }
        }
    }
}
