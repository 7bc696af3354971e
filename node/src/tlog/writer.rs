//! Appending to the TLog.
//!
//! One call to [`TlogWriter::append`] writes one or many entries and makes them durable with a
//! single `fdatasync` (two if the call crosses into a new file). The writer rolls over to the
//! next file before an entry with a new `i` once the current file holds `entries_per_file_max`
//! entries or `file_bytes_max` bytes, so one slot never spans two files, and it syncs the
//! directory whenever it creates a file. A clean [`TlogWriter::close`] writes the last entry
//! again with the `closed:<node>` marker; opening a non-empty log writes `opened:<node>`.
//!
//! After any I/O error the writer refuses further work: what reached the disk is unknown, and
//! only a restart (which validates the log) can tell.

use super::dir::{LogDir, LogFile};
use super::entry::{closed_marker, encode_entry, opened_marker, Entry};
use super::error::TlogError;
use super::files::{FileKind, TlogFile};
use super::reader::{validate_owned, validate_with, SlotValue, Validation};
use crate::value::Value;
use std::sync::Arc;

/// Rollover limits (Arakoon's `tlog_max_entries` and `tlog_max_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlogConfig {
    pub entries_per_file_max: u64,
    pub file_bytes_max: u64,
}

impl Default for TlogConfig {
    fn default() -> Self {
        TlogConfig { entries_per_file_max: 50_000, file_bytes_max: 32 * 1024 * 1024 }
    }
}

/// The TLog's appender.
pub struct TlogWriter {
    dir: Arc<dyn LogDir>,
    config: TlogConfig,
    node: String,
    file: TlogFile,
    out: Box<dyn LogFile>,
    entries_in_file: u64,
    bytes_in_file: u64,
    /// The last entry written: its slot and value (markers repeat it).
    last: Option<(u64, Value)>,
    failed: bool,
    buf: Vec<u8>,
}

/// What opening found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    pub last_i: Option<u64>,
    /// Whether the log ended with a clean-shutdown marker (informational: the store is derived
    /// and replay makes an unclean stop safe).
    pub closed_cleanly: bool,
    pub files: usize,
    /// The log's last slot with its final value (what [`super::last_two`] reads).
    pub last: Option<SlotValue>,
    /// The slot before it, if the log holds it.
    pub prev: Option<SlotValue>,
    /// With [`TornTail::Cut`], the torn tail cut off: the file, the offset cut at and the
    /// number of bytes removed.
    pub cut: Option<(String, u64, u64)>,
}

/// What opening does with a torn tail: the last file ending inside an entry, as a crash in the
/// middle of a write leaves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TornTail {
    /// Refuse to open, as the server does: the operator decides (`arakoon-admin tlog
    /// truncate`).
    Refuse,
    /// Cut it off first, as [`truncate_torn_tail`] does (the operator's repair, which the
    /// simulator makes before a restart); any other problem still refuses.
    Cut,
}

impl TlogWriter {
    /// Opens the log for appending after validating all of it; any problem is returned as the
    /// error, and nothing is written.
    pub fn open(
        dir: Arc<dyn LogDir>,
        config: TlogConfig,
        node: &str,
    ) -> Result<(TlogWriter, OpenReport), TlogError> {
        TlogWriter::open_with(dir, config, node, TornTail::Refuse, &mut |_, _| {})
    }

    /// [`TlogWriter::open`], in the one pass over the log that validates it: `torn` says what
    /// to do with a torn tail, and `committed` is handed every slot the log holds committed
    /// (every slot but the last: an entry of the next slot follows it), in order, with its final
    /// value, so that a store rebuilt from nothing needs no second read of the log. The slots
    /// are handed over as validation reads them: a caller keeps them until this returns `Ok`,
    /// and drops them on an error (the log was refused). The report's `last` and `prev` are
    /// the log's last two slots, read in the same pass.
    pub fn open_with(
        dir: Arc<dyn LogDir>,
        config: TlogConfig,
        node: &str,
        torn: TornTail,
        committed: &mut dyn FnMut(u64, Value),
    ) -> Result<(TlogWriter, OpenReport), TlogError> {
        assert!(config.entries_per_file_max > 0 && config.file_bytes_max > 0);
        // The last entry read, and the slot before it with its final value: a slot is handed
        // over once a second later slot shows up, so that the slot before the last is still
        // here, for the report, when the log ends.
        let mut last: Option<Entry> = None;
        let mut before: Option<SlotValue> = None;
        let mut validation = validate_owned(dir.as_ref(), &mut |e, _| {
            match last.take() {
                Some(l) if l.i != e.i => {
                    if let Some((i, value)) = before.replace((l.i, l.value)) {
                        committed(i, value);
                    }
                }
                // The same slot again (proposed again, or a marker): the last one wins.
                _ => {}
            }
            last = Some(e);
            true
        })?;
        let cut = match torn {
            TornTail::Refuse => None,
            TornTail::Cut => cut_torn_tail(dir.as_ref(), &mut validation)?,
        };
        if let Some(problem) = validation.problems.into_iter().next() {
            return Err(problem);
        }
        if let Some((i, value)) = &before {
            committed(*i, value.clone());
        }
        let report = OpenReport {
            last_i: last.as_ref().map(|e| e.i),
            closed_cleanly: last.as_ref().is_some_and(Entry::is_closed_marker),
            files: validation.files.len(),
            last: last.as_ref().map(|e| (e.i, e.value.clone())),
            prev: before,
            cut,
        };
        let io = |e| TlogError::io(dir.location(), e);
        let (file, out, entries_in_file, bytes_in_file) = match validation.files.last() {
            Some(s) if s.file.kind == FileKind::Tlog => {
                let out = dir.open_append(&s.file.name()).map_err(io)?;
                // The file's name may not be durable: a node that stopped because the directory
                // sync of a rollover failed finds the new file (the page cache still holds its
                // name) and would build on a file a power loss removes, acknowledging what it
                // then loses. The simulator's fsync_fail found it.
                dir.sync_dir().map_err(io)?;
                (s.file.clone(), out, s.entries, s.bytes)
            }
            other => {
                // No file yet, or the last one is a sealed archive: start the next number.
                let file = TlogFile::new(other.map_or(0, |s| s.file.number + 1), FileKind::Tlog);
                let out = dir.create(&file.name()).map_err(io)?;
                dir.sync_dir().map_err(io)?;
                (file, out, 0, 0)
            }
        };
        let mut writer = TlogWriter {
            dir,
            config,
            node: node.to_string(),
            file,
            out,
            entries_in_file,
            bytes_in_file,
            last: last.map(|e| (e.i, e.value)),
            failed: false,
            buf: Vec::new(),
        };
        if let Some((i, value)) = writer.last.clone() {
            let marker = opened_marker(node);
            writer.write(&[(i, &value, Some(marker.as_str()))])?;
        }
        Ok((writer, report))
    }

    pub fn last_i(&self) -> Option<u64> {
        self.last.as_ref().map(|(i, _)| *i)
    }

    /// The file being appended to.
    pub fn current_file(&self) -> &TlogFile {
        &self.file
    }

    pub fn dir(&self) -> &Arc<dyn LogDir> {
        &self.dir
    }

    /// Appends entries and makes them durable. Each `i` must equal the previous `i` (the same
    /// slot again, last one wins) or be one more; the first entry of an empty log may have any
    /// `i` (a node rebuilt from a snapshot).
    pub fn append(&mut self, entries: &[(u64, &Value)]) -> Result<(), TlogError> {
        let with_markers: Vec<(u64, &Value, Option<&str>)> =
            entries.iter().map(|(i, v)| (*i, *v, None)).collect();
        self.write(&with_markers)
    }

    /// Writes the closed marker and makes it durable.
    pub fn close(mut self) -> Result<(), TlogError> {
        if let Some((i, value)) = self.last.clone() {
            let marker = closed_marker(&self.node);
            self.write(&[(i, &value, Some(marker.as_str()))])?;
        }
        Ok(())
    }

    /// Starts a new file now (before the next new slot), e.g. so that a collapse can seal
    /// everything up to here.
    pub fn roll_over(&mut self) -> Result<(), TlogError> {
        self.check_usable()?;
        if self.entries_in_file > 0 {
            self.start_next_file()?;
        }
        Ok(())
    }

    fn check_usable(&self) -> Result<(), TlogError> {
        if self.failed {
            return Err(TlogError::WriterFailed { path: self.dir.path_of(&self.file.name()) });
        }
        Ok(())
    }

    fn write(&mut self, entries: &[(u64, &Value, Option<&str>)]) -> Result<(), TlogError> {
        self.check_usable()?;
        let result = self.write_inner(entries);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn write_inner(&mut self, entries: &[(u64, &Value, Option<&str>)]) -> Result<(), TlogError> {
        self.buf.clear();
        let mut last_i = self.last_i();
        if let (None, Some(&(first, _, _))) = (last_i, entries.first()) {
            if first != 0 && self.file.number == 0 {
                // A log that starts after slot 0 (a node rebuilt from a snapshot) must not call
                // its first file 000: validation holds 000.tlog to start at slot 0. The empty
                // 000 goes first: a crash between leaves no file (the log starts again after
                // the head), never an empty 000 before 001, which validation takes for a cut
                // file.
                let empty = TlogFile::new(0, FileKind::Tlog).name();
                self.dir.remove(&empty).map_err(|e| TlogError::io(self.dir.path_of(&empty), e))?;
                self.dir.sync_dir().map_err(|e| TlogError::io(self.dir.location(), e))?;
                self.start_next_file()?;
            }
        }
        for &(i, value, marker) in entries {
            if let Some(last) = last_i {
                assert!(
                    i == last || i == last + 1,
                    "TLog append out of order: i={i} after i={last}"
                );
            }
            let new_slot = last_i != Some(i);
            let full = self.entries_in_file >= self.config.entries_per_file_max
                || self.bytes_in_file >= self.config.file_bytes_max;
            if new_slot && full {
                // Planted bug RolloverSkipsFsync, at the edge of the rollover's flush.
                let sync = !crate::planted!(RolloverSkipsFsync);
                self.flush_buf_with(sync)?;
                self.start_next_file()?;
            }
            let before = self.buf.len();
            encode_entry(&mut self.buf, i, value, marker);
            self.bytes_in_file += (self.buf.len() - before) as u64;
            self.entries_in_file += 1;
            last_i = Some(i);
        }
        self.flush_buf()?;
        if let Some(&(i, value, _)) = entries.last() {
            self.last = Some((i, value.clone()));
        }
        Ok(())
    }

    /// Writes the buffered bytes to the current file and syncs them.
    fn flush_buf(&mut self) -> Result<(), TlogError> {
        self.flush_buf_with(true)
    }

    /// Writes the buffered bytes to the current file, and syncs them when `sync` (always, but
    /// for a planted bug).
    fn flush_buf_with(&mut self, sync: bool) -> Result<(), TlogError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        // The file's path is made only for an error: this runs at every append.
        let (dir, file) = (&self.dir, &self.file);
        let io = |e| TlogError::io(dir.path_of(&file.name()), e);
        self.out.append(&self.buf).map_err(io)?;
        if sync {
            self.out.sync_data().map_err(io)?;
        }
        self.buf.clear();
        Ok(())
    }

    fn start_next_file(&mut self) -> Result<(), TlogError> {
        let next = TlogFile::new(self.file.number + 1, FileKind::Tlog);
        let io = |e| TlogError::io(self.dir.path_of(&next.name()), e);
        self.out = self.dir.create(&next.name()).map_err(io)?;
        self.dir.sync_dir().map_err(io)?;
        self.file = next;
        self.entries_in_file = 0;
        self.bytes_in_file = 0;
        Ok(())
    }
}

/// Cuts a torn tail off the log's last file, and nothing else: it refuses unless the only
/// problem in the whole log is a torn tail. Returns the file, the offset cut at and the number
/// of bytes removed, or `None` when there was nothing to cut.
pub fn truncate_torn_tail(dir: &dyn LogDir) -> Result<Option<(String, u64, u64)>, TlogError> {
    let mut validation = validate_with(dir, &mut |_, _| true)?;
    cut_torn_tail(dir, &mut validation)
}

/// Cuts the torn tail `validation` (of `dir`, just made) found, if that is its only problem,
/// and leaves `validation` as a validation of the cut log would be: no problem, the last file as
/// long as the cut left it. Refuses, as [`truncate_torn_tail`] does, when there is any other
/// problem.
fn cut_torn_tail(
    dir: &dyn LogDir,
    validation: &mut Validation,
) -> Result<Option<(String, u64, u64)>, TlogError> {
    match validation.problems.as_slice() {
        [] => Ok(None),
        [TlogError::TornTail { offset, .. }] => {
            let offset = *offset;
            let last = validation.files.last_mut().expect("a torn tail is in a file");
            let file = last.file.name();
            let len = dir.file_len(&file).map_err(|e| TlogError::io(dir.path_of(&file), e))?;
            dir.truncate(&file, offset).map_err(|e| TlogError::io(dir.path_of(&file), e))?;
            last.bytes = offset;
            validation.problems.clear();
            Ok(Some((dir.path_of(&file), offset, len - offset)))
        }
        problems => {
            let first = problems.iter().position(|p| p.kind() != "torn_tail").unwrap_or(0);
            let count = problems.len();
            let problems = std::mem::take(&mut validation.problems);
            let first = problems.into_iter().nth(first).expect("a problem");
            Err(TlogError::NotOnlyTornTail {
                dir: dir.location(),
                problems: count,
                first: Box::new(first),
            })
        }
    }
}
