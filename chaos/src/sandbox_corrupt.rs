//! File corruption on a stopped node of the sandbox: a flipped bit or a cut file, in its newest
//! TLog file or in its store, as bit rot at rest or a crash in the middle of a write leave them.
//!
//! The node must be stopped: corrupting files under a running process tests nothing but the
//! page cache, and the node would overwrite half of it. The caller checks that; this module only
//! changes the bytes and says exactly which ones, so the operator can watch the node's start-up
//! validation find them (or not).

use crate::sandbox_control::{CorruptHow, CorruptTarget};
use arakoon_node::tlog::{self, FileKind, FsDir, LogDir, ENTRY_HEADER_BYTES};
use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Damages the files of the node whose home is `home` and TLog directory `tlog_dir`; returns
/// what was done, for the operator.
pub fn corrupt(
    home: &Path,
    tlog_dir: &Path,
    target: CorruptTarget,
    how: CorruptHow,
) -> io::Result<String> {
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

fn corrupt_tlog(tlog_dir: &Path, how: CorruptHow) -> io::Result<String> {
    let dir = FsDir::open(tlog_dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", tlog_dir.display())))?;
    let files = tlog::list_files(&dir).map_err(|e| io::Error::other(e.to_string()))?;
    let Some(newest) = files.last().cloned() else {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} holds no TLog file yet; start the node first", tlog_dir.display()),
        ));
    };
    if newest.kind != FileKind::Tlog {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the newest TLog file {} is an archive; only a plain .tlog is damaged here",
                newest.name()
            ),
        ));
    }
    let path = tlog_dir.join(newest.name());
    let size = std::fs::metadata(&path)?.len();
    let spans = entry_spans(&dir, &newest, size)?;
    if spans.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} holds no whole entry to damage; write something first", path.display()),
        ));
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
            flip_bit(&path, at, 4)?;
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
            OpenOptions::new().write(true).open(&path)?.set_len(cut)?;
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
fn entry_spans(dir: &FsDir, file: &tlog::TlogFile, size: u64) -> io::Result<Vec<EntrySpan>> {
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
    Ok(spans)
}

fn corrupt_store(store: &Path, how: CorruptHow) -> io::Result<String> {
    let Some((path, size)) = largest_file(store)? else {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} holds no file to damage; start the node first", store.display()),
        ));
    };
    match how {
        CorruptHow::Bitflip => {
            let at = size / 2;
            flip_bit(&path, at, 4)?;
            Ok(format!(
                "flipped bit 4 of byte {at} of {} (the store's largest file, {size} bytes)",
                path.display()
            ))
        }
        CorruptHow::Truncate => {
            let cut = size / 2;
            OpenOptions::new().write(true).open(&path)?.set_len(cut)?;
            Ok(format!(
                "cut {} (the store's largest file) from {size} to {cut} bytes",
                path.display()
            ))
        }
    }
}

/// The largest regular file under `root`, with its size.
fn largest_file(root: &Path) -> io::Result<Option<(PathBuf, u64)>> {
    let mut best: Option<(PathBuf, u64)> = None;
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        let entries = std::fs::read_dir(&d)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", d.display())))?;
        for entry in entries {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                todo.push(entry.path());
            } else if meta.is_file() && best.as_ref().is_none_or(|(_, size)| meta.len() > *size) {
                best = Some((entry.path(), meta.len()));
            }
        }
    }
    Ok(best.filter(|(_, size)| *size > 0))
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
