//! Adopting a peer's head: how a node whose next slot a peer has collapsed away starts again from
//! that peer's head (catch-up from a collapsed peer, by a running node or `arakoon-admin catchup`).
//!
//! The peer's head is fetched (`get_db`) into `<tlog_dir>/head.db.incoming` and flushed, and a copy
//! for the store is built at `<store>.from-head`; nothing of the node changes until both are
//! complete. Then, each step crash-safe (start-up accepts the files after any of them):
//!
//! 1. the incoming head and the node's own head (if it has one) are exchanged in one atomic rename
//!    (`renameat2(RENAME_EXCHANGE)`) and the directory synced; the old head, now at
//!    `head.db.incoming`, is removed. The new head covers every slot the node's log holds: the node
//!    asked for its next slot `from_i`, which the peer had folded, so the head reaches `from_i`,
//!    and a node's log ends at most one slot past its store (at `from_i`). A log beside a head
//!    that is ahead of it is a state start-up accepts ([`super::check_log_start`]).
//! 2. an empty TLog file numbered after the node's last one is created, the directory synced (a
//!    last file that holds no entry is that file already: [`restart_log`] says why);
//! 3. the node's older files are removed lowest first, the directory synced: at every moment the
//!    log is a contiguous run of files (the head covering what is gone) ending in the empty one;
//! 4. the store is replaced by the copy ([`replace_store`]): the old store removed, the copy
//!    renamed in, the parent synced. A crash between leaves no store; start-up then finds a log
//!    that starts after the head and copies the head into a new store.
//!
//! Start-up relies on the node's own store between steps 1 and 4: it replays the old log. When
//! that store is gone or behind the log's first slot (a power loss may leave sled's behind; the
//! simulator's stores in memory are always gone), start-up copies the head into a new store,
//! which then reaches the whole log: it finishes steps 2 and 3 itself
//! ([`finish_interrupted_adoption`]).
//!
//! A leftover `head.db.incoming` or `<store>.from-head` (a crash before step 1, or the old head
//! after it) is never read: the next adoption removes it first.
//!
//! Every file operation of steps 1 to 3 goes through the node's disk seam ([`LogDir`]) and its
//! head's ([`HeadSpace`]): production's directory and sled head, or the simulator's disk with the
//! head a file on it, so that the world runs these very steps with its crash points and faults
//! (`server::catchup::adopt_fetched` is the sequence both run; sim/src/world/adopt.rs).

use super::{head_path, CollapseError, HeadSpace};
use crate::tlog::{self, FileKind, LogDir, TlogError, TlogFile};
use std::path::{Path, PathBuf};

/// Where a fetched head waits before it is adopted.
pub fn incoming_head_path(tlog_dir: &Path) -> PathBuf {
    with_suffix(&head_path(tlog_dir), "incoming")
}

/// Where the store's copy of an adopted head is built.
pub fn store_copy_path(store: &Path) -> PathBuf {
    with_suffix(store, "from-head")
}

/// `path` with `.suffix` appended to its last component.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// The steps of an adoption, in order (for logs, and for the crash tests that stop after each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdoptStep {
    /// The new head is in place (step 1).
    HeadSwapped,
    /// The empty TLog file that the log restarts with exists (step 2).
    Restarted(String),
    /// One of the node's old files is gone (step 3).
    Removed(String),
}

/// Steps 1 to 3: makes the flushed head waiting at `head`'s incoming place this node's head and
/// restarts the TLog in `dir` with an empty file after it. `step` hears each step; returning
/// `false` stops there, as a crash would (for the tests). The TLog writer must be closed.
///
/// Every file operation goes through `dir` and `head`: production passes the real directory and
/// the head's path (`<tlog_dir>/head.db`, a sled directory), the simulator its simulated disk
/// and the head kept as a file on it ([`super::FileHead`]), so both run these steps.
pub fn adopt_head(
    dir: &dyn LogDir,
    head: &dyn HeadSpace,
    step: &mut dyn FnMut(&AdoptStep) -> bool,
) -> Result<(), CollapseError> {
    let failed = |what: &str, path: String, e: std::io::Error| CollapseError::Remove {
        path: format!("{path} ({what})"),
        source: e,
    };
    let io = |e: std::io::Error| TlogError::io(dir.location(), e);
    let what = if head.exists() { "exchanging the heads" } else { "moving the head in" };
    head.take_incoming().map_err(|e| failed(what, head.location(), e))?;
    dir.sync_dir().map_err(io)?;
    if !step(&AdoptStep::HeadSwapped) {
        return Ok(());
    }
    if head.incoming_exists() {
        // The old head: covered by the new one.
        head.remove_incoming()
            .map_err(|e| failed("removing the old head", head.incoming_location(), e))?;
    }
    restart_log(dir, step).map(drop)
}

/// Steps 2 and 3: restarts the log in `dir` after a head that covers every slot it holds: an
/// empty TLog file numbered after the last, the directory synced, then the older files removed
/// lowest first, the directory synced after each. `step` hears each step; returning `false`
/// stops there (for the tests). True when every step ran.
///
/// A last file that holds no entry (a rollover's new file, or the only file of a log that
/// never held a slot) is the empty file the log restarts with: validation takes an empty file
/// followed by another for a cut one, so none is created after it. An empty `000` is renamed
/// to `001` instead (in one atomic step): a log that starts at `000` is one that starts at
/// slot 0, and the next slot is the head's next.
pub fn restart_log(
    dir: &dyn LogDir,
    step: &mut dyn FnMut(&AdoptStep) -> bool,
) -> Result<bool, CollapseError> {
    let io = |e: std::io::Error| TlogError::io(dir.location(), e);
    let mut old = tlog::list_files(dir)?;
    let empty_last = match old.last() {
        Some(f) if f.kind == FileKind::Tlog && tlog::first_i(dir, f)?.is_none() => old.pop(),
        _ => None,
    };
    let fresh = match empty_last {
        Some(last) if last.number > 0 => last.name(),
        Some(last) => {
            let fresh = TlogFile::new(1, FileKind::Tlog).name();
            dir.rename(&last.name(), &fresh).map_err(io)?;
            fresh
        }
        None => {
            let fresh =
                TlogFile::new(old.last().map_or(1, |f| f.number + 1), FileKind::Tlog).name();
            drop(dir.create(&fresh).map_err(io)?);
            fresh
        }
    };
    dir.sync_dir().map_err(io)?;
    if !step(&AdoptStep::Restarted(fresh)) {
        return Ok(false);
    }
    let names = dir.list().map_err(io)?;
    for file in &old {
        // Every form of this number (an interrupted compression leaves two).
        for name in
            names.iter().filter(|n| TlogFile::parse(n).is_some_and(|f| f.number == file.number))
        {
            dir.remove(name)
                .map_err(|source| CollapseError::Remove { path: dir.path_of(name), source })?;
        }
        dir.sync_dir().map_err(io)?;
        if !step(&AdoptStep::Removed(file.name())) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Start-up's end of an adoption that a crash interrupted after step 1, for a store just
/// rebuilt from the head (the store in memory always is; a store on disk when it was behind
/// the log's first slot, as sled may be after a power loss): when that store (`store_i`) reaches
/// the last slot the log holds (`log_last`), the head covers the whole log and the log holds
/// nothing the head lacks (every slot up to the head's is committed, and the head holds its
/// chosen value). Replay cannot bring the store back to a log that ends before it; and a log
/// that ends at the head's slot may hold there a value accepted and never chosen, which the
/// next slot appended after it would mark committed (the simulator found that one: its seed
/// 722). Start-up then finishes steps 2 and 3 ([`restart_log`]) and returns true: the caller
/// opens its TLog writer again. Only an adoption leaves a head that reaches its log's last
/// slot: a collapse folds committed slots before the files it keeps, `copy_db_to_head` those
/// before the log's last.
pub fn finish_interrupted_adoption(
    dir: &dyn LogDir,
    store_i: Option<u64>,
    log_last: Option<u64>,
) -> Result<bool, CollapseError> {
    let covered = matches!((store_i, log_last), (Some(s), Some(l)) if s >= l);
    if !covered {
        return Ok(false);
    }
    tracing::info!(
        store_i,
        log_last,
        "the head covers the whole log: an interrupted adoption; restarting the log after it"
    );
    restart_log(dir, &mut |_| true)
}

/// Step 4: puts the complete store at `copy` in place of the one at `store` (which must be
/// closed). A crash between the removal and the rename leaves no store, which start-up replaces
/// by a copy of the head.
pub fn replace_store(copy: &Path, store: &Path) -> Result<(), CollapseError> {
    let failed =
        |path: &Path, source| CollapseError::Remove { path: path.display().to_string(), source };
    if store.exists() {
        std::fs::remove_dir_all(store).map_err(|e| failed(store, e))?;
    }
    std::fs::rename(copy, store).map_err(|e| failed(store, e))?;
    if let Some(parent) = store.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent).and_then(|d| d.sync_all()).map_err(|e| failed(parent, e))?;
    }
    Ok(())
}

/// Swaps two paths atomically (Linux `renameat2` with `RENAME_EXCHANGE`). On a file system
/// without it (EINVAL, ENOSYS), two renames through `<b>.old`: a crash between them leaves `b`
/// missing (the node then refuses to start, naming the missing head).
pub fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    match exchange_atomically(a, b) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) => {
            let old = with_suffix(b, "old");
            std::fs::rename(b, &old)?;
            std::fs::rename(a, b)?;
            std::fs::rename(&old, a)
        }
        other => other,
    }
}

fn exchange_atomically(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both paths are NUL-terminated C strings that live across the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
