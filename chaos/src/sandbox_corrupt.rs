//! File corruption on a stopped node of the sandbox: a flipped bit or a cut file, in its newest
//! TLog file or in its store, as bit rot at rest or a crash in the middle of a write leave them.
//!
//! The node must be stopped: corrupting files under a running process tests nothing but the
//! page cache, and the node would overwrite half of it. The caller checks that; this module only
//! changes the bytes and says exactly which ones, so the operator can watch the node's start-up
//! validation find them (or not).

use crate::sandbox::{self, SandboxState};
use crate::sandbox_control::{CorruptHow, CorruptTarget};
use arakoon_node::tlog::{self, FileKind, FsDir, LogDir, TlogError, ENTRY_HEADER_BYTES};
use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Why a node's files were not damaged.
#[derive(Debug, thiserror::Error)]
pub enum CorruptError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Tlog(Box<TlogError>),
    #[error("{} holds no TLog file yet; start the node first", dir.display())]
    NoTlog { dir: PathBuf },
    #[error("the newest TLog file {name} is an archive; only a plain .tlog is damaged here")]
    Archive { name: String },
    #[error("{} holds no whole entry to damage; write something first", path.display())]
    NoEntry { path: PathBuf },
    #[error("{} holds no file to damage; start the node first", store.display())]
    NoStoreFile { store: PathBuf },
    /// `node` is named by the caller's prefix (`n1: still runs ...`).
    #[error("still runs as pid {pid}; `sandbox down --dir {}` first", dir.display())]
    StillRuns { node: String, pid: u32, dir: PathBuf },
    /// The node is not one of the sandbox's.
    #[error(transparent)]
    Sandbox(#[from] sandbox::SandboxError),
}

fn at(path: &Path) -> impl Fn(io::Error) -> CorruptError + '_ {
    move |source| CorruptError::Io { path: path.to_path_buf(), source }
}

/// Damages the files of node `name` of the sandbox in `dir` while the sandbox is down (no
/// supervisor to ask): refused if the node's process still runs. Returns what was done.
pub fn corrupt_down(
    dir: &Path,
    state: &SandboxState,
    name: &str,
    target: CorruptTarget,
    how: CorruptHow,
) -> Result<String, CorruptError> {
    let node = state.node(name)?;
    if let Some(pid) = node.pid.filter(|&p| crate::process::pid_alive(p)) {
        return Err(CorruptError::StillRuns {
            node: name.to_string(),
            pid,
            dir: dir.to_path_buf(),
        });
    }
    let home = sandbox::node_home(dir, name);
    let tlogs = sandbox::node_tlog_dir(dir, name);
    corrupt(&home, &tlogs, target, how)
}

/// Damages the files of the node whose home is `home` and TLog directory `tlog_dir`; returns
/// what was done, for the operator.
pub fn corrupt(
    home: &Path,
    tlog_dir: &Path,
    target: CorruptTarget,
    how: CorruptHow,
) -> Result<String, CorruptError> {
    match target {
        CorruptTarget::Tlog => corrupt_tlog(tlog_dir, how),
        CorruptTarget::Store => corrupt_store(&home.join("store"), how),
    }
}

/// One entry of the newest TLog file: its slot, offset and length in bytes.
struct EntrySpan {
    i: u64,
    offset: u64,
    bytes: u64,
}

fn corrupt_tlog(tlog_dir: &Path, how: CorruptHow) -> Result<String, CorruptError> {
    let dir = FsDir::open(tlog_dir).map_err(at(tlog_dir))?;
    let files = tlog::list_files(&dir).map_err(|e| CorruptError::Tlog(Box::new(e)))?;
    let Some(newest) = files.last().cloned() else {
        return Err(CorruptError::NoTlog { dir: tlog_dir.to_path_buf() });
    };
    if newest.kind != FileKind::Tlog {
        return Err(CorruptError::Archive { name: newest.name() });
    }
    let path = tlog_dir.join(newest.name());
    let size = std::fs::metadata(&path).map_err(at(&path))?.len();
    let spans = entry_spans(&dir, &newest, size);
    if spans.is_empty() {
        return Err(CorruptError::NoEntry { path });
    }
    match how {
        CorruptHow::Bitflip => {
            // An entry in the middle of the file, a byte in the middle of its cmd: bit rot
            // that the CRC must catch (not the last entry's `i`, which the format cannot).
            let e = &spans[spans.len() / 2];
            let header = ENTRY_HEADER_BYTES as u64;
            let at = if e.bytes > header {
                e.offset + header + (e.bytes - header) / 2
            } else {
                e.offset
            };
            flip_bit(&path, at, 4).map_err(self::at(&path))?;
            Ok(format!(
                "flipped bit 4 of byte {at} of {} (inside the entry for i={} at offset {}); \
                 `arakoon-admin tlog verify {}` shows it, and the node's start-up validation \
                 should refuse it",
                path.display(),
                e.i,
                e.offset,
                tlog_dir.display()
            ))
        }
        CorruptHow::Truncate => {
            let e = spans.last().expect("not empty");
            let cut = e.offset + (e.bytes / 2).max(1);
            cut_to(&path, cut)?;
            Ok(format!(
                "cut {} from {size} to {cut} bytes, in the middle of its last entry (i={} at \
                 offset {}): a torn tail, as a crash in the middle of a write leaves it",
                path.display(),
                e.i,
                e.offset
            ))
        }
    }
}

/// The entries of `file` (the directory's last file) in order, as far as they read cleanly.
fn entry_spans(dir: &FsDir, file: &tlog::TlogFile, size: u64) -> Vec<EntrySpan> {
    let mut spans: Vec<EntrySpan> = Vec::new();
    let mut visit = |e: &tlog::Entry, p: tlog::Position<'_>| {
        if p.file == file {
            spans.push(EntrySpan { i: e.i, offset: p.offset, bytes: 0 });
        }
        true
    };
    // An error stops the walk where the damage starts; what was read before still counts.
    let _ = tlog::walk(dir as &dyn LogDir, 0, &mut visit);
    for k in 0..spans.len() {
        let end = spans.get(k + 1).map_or(size, |next| next.offset);
        spans[k].bytes = end.saturating_sub(spans[k].offset);
    }
    spans
}

fn corrupt_store(store: &Path, how: CorruptHow) -> Result<String, CorruptError> {
    let Some((path, size)) = largest_file(store)? else {
        return Err(CorruptError::NoStoreFile { store: store.to_path_buf() });
    };
    match how {
        CorruptHow::Bitflip => {
            let at = size / 2;
            flip_bit(&path, at, 4).map_err(self::at(&path))?;
            Ok(format!(
                "flipped bit 4 of byte {at} of {} (the store's largest file, {size} bytes)",
                path.display()
            ))
        }
        CorruptHow::Truncate => {
            let cut = size / 2;
            cut_to(&path, cut)?;
            Ok(format!(
                "cut {} (the store's largest file) from {size} to {cut} bytes",
                path.display()
            ))
        }
    }
}

/// The largest regular file under `root`, with its size.
fn largest_file(root: &Path) -> Result<Option<(PathBuf, u64)>, CorruptError> {
    let mut best: Option<(PathBuf, u64)> = None;
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        let entries = std::fs::read_dir(&d).map_err(at(&d))?;
        for entry in entries {
            let entry = entry.map_err(at(&d))?;
            let meta = entry.metadata().map_err(at(&entry.path()))?;
            if meta.is_dir() {
                todo.push(entry.path());
            } else if meta.is_file() && best.as_ref().is_none_or(|(_, size)| meta.len() > *size) {
                best = Some((entry.path(), meta.len()));
            }
        }
    }
    Ok(best.filter(|(_, size)| *size > 0))
}

/// Cuts the file at `path` to `len` bytes.
fn cut_to(path: &Path, len: u64) -> Result<(), CorruptError> {
    OpenOptions::new().write(true).open(path).and_then(|f| f.set_len(len)).map_err(at(path))
}

fn flip_bit(path: &Path, at: u64, bit: u8) -> io::Result<()> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let mut byte = [0u8; 1];
    f.seek(SeekFrom::Start(at))?;
    f.read_exact(&mut byte)?;
    byte[0] ^= 1 << bit;
    f.seek(SeekFrom::Start(at))?;
    f.write_all(&byte)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arakoon_node::tlog::{TlogConfig, TlogWriter};
    use arakoon_node::value::{Update, Value};
    use std::sync::Arc;

    fn write_log(dir: &Path, n: u64) {
        let d: Arc<dyn LogDir> = Arc::new(FsDir::open(dir).unwrap());
        let cfg = TlogConfig { entries_per_file_max: 1000, file_bytes_max: 1 << 30 };
        let (mut w, _) = TlogWriter::open(d, cfg, "n0").unwrap();
        for i in 0..n {
            let v = Value::client(vec![Update::Set {
                key: format!("key{i}").into_bytes(),
                value: vec![b'v'; 40],
            }]);
            w.append(&[(i, &v)]).unwrap();
        }
        w.close().unwrap();
    }

    /// With the sandbox down, a node whose process still runs is not touched, and a name that
    /// is no node is refused with the known ones.
    #[test]
    fn corrupting_a_stopped_sandbox_refuses_a_running_node_and_an_unknown_one() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut state, _) = sandbox::plan_with(tmp.path(), 3, 1000, &[]).unwrap();
        state.nodes[1].pid = Some(std::process::id());
        let e = corrupt_down(tmp.path(), &state, "n1", CorruptTarget::Tlog, CorruptHow::Bitflip)
            .unwrap_err();
        assert!(matches!(&e, CorruptError::StillRuns { node, .. } if node == "n1"), "{e}");
        assert!(e.to_string().contains("sandbox down --dir"), "{e}");
        let e = corrupt_down(tmp.path(), &state, "n7", CorruptTarget::Tlog, CorruptHow::Bitflip)
            .unwrap_err();
        assert!(e.to_string().contains("n0, n1, n2"), "{e}");
        let e = corrupt_down(tmp.path(), &state, "n0", CorruptTarget::Store, CorruptHow::Bitflip)
            .unwrap_err();
        assert!(matches!(e, CorruptError::Io { .. } | CorruptError::NoStoreFile { .. }), "{e}");
    }

    #[test]
    fn a_bit_flip_in_the_tlog_is_found_by_validation_at_the_entry_named() {
        let tmp = tempfile::tempdir().unwrap();
        write_log(tmp.path(), 20);
        let said =
            corrupt(tmp.path(), tmp.path(), CorruptTarget::Tlog, CorruptHow::Bitflip).unwrap();
        let dir = FsDir::open(tmp.path()).unwrap();
        let err = tlog::validate(&dir).map(|v| v.is_clean());
        assert!(!matches!(err, Ok(true)), "validation must see the flip: {said}");
        assert!(said.contains("000.tlog"), "{said}");
    }

    #[test]
    fn a_truncated_tlog_ends_inside_its_last_entry() {
        let tmp = tempfile::tempdir().unwrap();
        write_log(tmp.path(), 5);
        let file = tmp.path().join("000.tlog");
        let before = std::fs::metadata(&file).unwrap().len();
        let said =
            corrupt(tmp.path(), tmp.path(), CorruptTarget::Tlog, CorruptHow::Truncate).unwrap();
        let after = std::fs::metadata(&file).unwrap().len();
        assert!(after < before, "{said}");
        assert!(said.contains("torn tail"), "{said}");
    }

    #[test]
    fn nothing_to_damage_is_said_plainly() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("store")).unwrap();
        let err =
            corrupt(tmp.path(), tmp.path(), CorruptTarget::Tlog, CorruptHow::Bitflip).unwrap_err();
        assert!(err.to_string().contains("no TLog file"), "{err}");
        let err = corrupt(tmp.path(), tmp.path(), CorruptTarget::Store, CorruptHow::Truncate)
            .unwrap_err();
        assert!(err.to_string().contains("no file to damage"), "{err}");
    }
}
