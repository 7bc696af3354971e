//! Reading a whole TLog directory in `i` order, with the rules of ARAKOON-FORMATS §4:
//!
//! - within the log, an entry's `i` equals the previous one (a value proposed again under a
//!   higher ballot, or a marker: the last one wins) or is one more;
//! - each file's first `i` is at least the previous file's last, and file numbers have no gaps;
//! - the last `i` is not known to be committed: `i` is committed once an entry `i+1` exists
//!   (a 1-node cluster may treat the last one as committed too).
//!
//! [`validate`] walks everything and reports every problem it can find, one per file at most
//! (nothing after a damaged entry in the same file can be trusted); [`walk`] and
//! [`for_each_committed`] stop at the first problem.

use super::archive::open_entries;
use super::dir::LogDir;
use super::entry::{Entry, EntryStream, Next};
use super::error::TlogError;
use super::files::{FileKind, TlogFile};
use std::io;

/// What one file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    pub file: TlogFile,
    /// Size on disk.
    pub bytes: u64,
    pub entries: u64,
    pub first_i: Option<u64>,
    pub last_i: Option<u64>,
    /// The marker of the file's last entry, if it has one.
    pub last_marker: Option<String>,
    /// Uncompressed bytes of whole, valid entries from the start.
    pub valid_bytes: u64,
}

/// Where an entry was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position<'a> {
    pub file: &'a TlogFile,
    pub offset: u64,
}

/// The files of a TLog directory in number order. When one number exists in several forms (an
/// interrupted compression), the plain `.tlog` is the one read.
pub fn list_files(dir: &dyn LogDir) -> Result<Vec<TlogFile>, TlogError> {
    let names = dir.list().map_err(|e| TlogError::io(dir.location(), e))?;
    let mut files: Vec<TlogFile> = names.iter().filter_map(|n| TlogFile::parse(n)).collect();
    files.sort();
    files.dedup_by(|later, earlier| later.number == earlier.number);
    Ok(files)
}

/// The bytes of every TLog file in `dir`, in whatever form (what a catch-up writes, for its
/// report); files that are not part of the log, and files that cannot be read, count nothing.
pub fn files_bytes(dir: &dyn LogDir) -> u64 {
    let Ok(names) = dir.list() else { return 0 };
    names.iter().filter(|n| TlogFile::parse(n).is_some()).filter_map(|n| dir.file_len(n).ok()).sum()
}

/// The first file number gap, as an error.
fn check_numbers(dir: &dyn LogDir, files: &[TlogFile]) -> Result<(), TlogError> {
    for pair in files.windows(2) {
        if pair[1].number != pair[0].number + 1 {
            return Err(TlogError::MissingFile {
                dir: dir.location(),
                missing: TlogFile::new(pair[0].number + 1, FileKind::Tlog).name(),
                prev: pair[0].name(),
                next: pair[1].name(),
            });
        }
    }
    Ok(())
}

/// The last good entry before the file being scanned.
#[derive(Debug, Clone)]
struct Prev {
    file: String,
    i: u64,
    /// Whether `i` was the last entry of the previous file (not of this one).
    in_previous_file: bool,
}

/// Scans one file, checking the sequence rules against `prev`, calling `visit` for each good
/// entry. Returns the summary and the first problem, if any (the summary covers the entries
/// before it).
fn scan_file(
    dir: &dyn LogDir,
    file: &TlogFile,
    is_last_file: bool,
    prev: &mut Option<Prev>,
    visit: &mut dyn FnMut(Entry, Position<'_>) -> bool,
) -> Result<(FileSummary, Option<TlogError>), TlogError> {
    let name = file.name();
    let path = dir.path_of(&name);
    let bytes = dir.file_len(&name).map_err(|e| TlogError::io(&path, e))?;
    let mut summary = FileSummary {
        file: file.clone(),
        bytes,
        entries: 0,
        first_i: None,
        last_i: None,
        last_marker: None,
        valid_bytes: 0,
    };
    let mut stream = match open_entries(dir, file) {
        Ok(r) => EntryStream::new(r),
        Err(e @ TlogError::LegacyTlc { .. }) => return Ok((summary, Some(e))),
        Err(e) => return Err(e),
    };
    if let Some(p) = prev.as_mut() {
        p.in_previous_file = true;
    }
    let sealed = !is_last_file || file.kind.is_archive();
    loop {
        let next = match stream.next_entry() {
            Ok(next) => next,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let problem = TlogError::BadArchive { path, offset: stream.offset(), source: e };
                return Ok((summary, Some(problem)));
            }
            Err(e) => return Err(TlogError::io(path, e)),
        };
        let problem = match next {
            // The writer only rolls over after at least one entry: an empty sealed file was cut.
            Next::End { offset: 0 } if sealed && !file.kind.is_archive() => {
                TlogError::TruncatedSealed { path, offset: 0, i: None }
            }
            Next::End { .. } => return Ok((summary, None)),
            Next::Entry { offset, len, entry } => {
                if prev.is_none() && file.number == 0 && entry.i != 0 {
                    // Only the first file of a log that was never collapsed is 000, and it starts
                    // at slot 0; later first files of a collapsed log carry later numbers.
                    let problem = TlogError::BadStart { path, offset, i: entry.i };
                    return Ok((summary, Some(problem)));
                }
                if let Some(p) = prev.as_ref() {
                    if p.in_previous_file && entry.i < p.i {
                        let problem = TlogError::FileStartsBelow {
                            path,
                            first_i: entry.i,
                            prev_file: p.file.clone(),
                            prev_last_i: p.i,
                        };
                        return Ok((summary, Some(problem)));
                    }
                    if entry.i != p.i && entry.i != p.i + 1 {
                        let problem = TlogError::Sequence { path, offset, i: entry.i, prev: p.i };
                        return Ok((summary, Some(problem)));
                    }
                }
                summary.entries += 1;
                summary.first_i.get_or_insert(entry.i);
                summary.last_i = Some(entry.i);
                summary.last_marker.clone_from(&entry.marker);
                summary.valid_bytes = offset + len;
                match prev.as_mut() {
                    // Most entries follow one in the same file: no copy of its name for each.
                    Some(p) if p.file == name => {
                        p.i = entry.i;
                        p.in_previous_file = false;
                    }
                    _ => {
                        *prev =
                            Some(Prev { file: name.clone(), i: entry.i, in_previous_file: false })
                    }
                }
                // Handed over, not copied: replay keeps the values it reads.
                if !visit(entry, Position { file, offset }) {
                    return Ok((summary, None));
                }
                continue;
            }
            // Entry and End are handled above: what is left is a damaged entry.
            other => problem_at(path, other, sealed).expect("a damaged entry"),
        };
        return Ok((summary, Some(problem)));
    }
}

/// The problem a damaged entry is, in the file at `path`; `None` for an entry or the end.
/// `sealed`: the file is not the one the writer appends to, so a cut entry was not a crash in
/// the middle of a write.
pub fn problem_at(path: String, next: Next, sealed: bool) -> Option<TlogError> {
    Some(match next {
        Next::Entry { .. } | Next::End { .. } => return None,
        Next::Torn { offset, i, have, need } => {
            if sealed {
                TlogError::TruncatedSealed { path, offset, i }
            } else {
                TlogError::TornTail { path, offset, i, have, need }
            }
        }
        Next::BadLength { offset, i, len } => TlogError::BadLength { path, offset, i, len },
        Next::Checksum { offset, i, stored, computed } => {
            TlogError::Checksum { path, offset, i, stored, computed }
        }
        Next::Undecodable { offset, i, error } => TlogError::Undecodable { path, offset, i, error },
    })
}

/// A file read on its own stopped at `next`, a damaged entry.
pub(crate) fn damaged_file(path: String, next: Next) -> TlogError {
    let problem = problem_at(path.clone(), next, true).expect("a damaged entry");
    TlogError::DamagedFile { path, problem: Box::new(problem) }
}

/// Visits the entries of one file on its own (no rules across files), with each one's offset,
/// until `visit` says stop or the file ends. A damaged entry stops the walk with
/// [`TlogError::DamagedFile`].
pub fn walk_file(
    dir: &dyn LogDir,
    file: &TlogFile,
    visit: &mut dyn FnMut(&Entry, u64) -> bool,
) -> Result<(), TlogError> {
    let mut stream = EntryStream::new(open_entries(dir, file)?);
    let path = dir.path_of(&file.name());
    loop {
        match stream.next_entry().map_err(|e| TlogError::io(path.clone(), e))? {
            Next::Entry { offset, entry, .. } => {
                if !visit(&entry, offset) {
                    return Ok(());
                }
            }
            Next::End { .. } => return Ok(()),
            other => return Err(damaged_file(path, other)),
        }
    }
}

/// The first slot the log holds (after a collapse, not 0), checking the log as [`walk`] does.
pub fn log_first_i(dir: &dyn LogDir) -> Result<Option<u64>, TlogError> {
    let mut first = None;
    walk(dir, 0, &mut |e, _| {
        first = Some(e.i);
        false
    })?;
    Ok(first)
}

/// Everything [`validate`] found.
#[derive(Debug, Default)]
pub struct Validation {
    pub files: Vec<FileSummary>,
    pub problems: Vec<TlogError>,
}

impl Validation {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// The last `i` in the log (committed or not).
    pub fn last_i(&self) -> Option<u64> {
        self.files.iter().rev().find_map(|f| f.last_i)
    }

    /// Whether the log's last entry is a clean-shutdown marker.
    pub fn closed_cleanly(&self) -> bool {
        let last = self.files.iter().rev().find(|f| f.entries > 0);
        last.and_then(|f| f.last_marker.as_deref()).is_some_and(|m| m.starts_with("closed:"))
    }
}

/// Walks the whole log and reports every problem: file number gaps, and per file the first
/// damaged entry. I/O errors on the directory itself are returned as `Err`.
pub fn validate(dir: &dyn LogDir) -> Result<Validation, TlogError> {
    validate_with(dir, &mut |_, _| true)
}

/// [`validate`], calling `visit` for every good entry (return false to stop early).
pub fn validate_with(
    dir: &dyn LogDir,
    visit: &mut dyn FnMut(&Entry, Position<'_>) -> bool,
) -> Result<Validation, TlogError> {
    validate_owned(dir, &mut |e, p| visit(&e, p))
}

/// [`validate_with`], handing `visit` each good entry to keep (the writer keeps the last one
/// without copying every entry on the way).
pub(crate) fn validate_owned(
    dir: &dyn LogDir,
    visit: &mut dyn FnMut(Entry, Position<'_>) -> bool,
) -> Result<Validation, TlogError> {
    let files = list_files(dir)?;
    let mut out = Validation::default();
    if let Err(gap) = check_numbers(dir, &files) {
        out.problems.push(gap);
    }
    let mut prev = None;
    for (k, file) in files.iter().enumerate() {
        let (summary, problem) = scan_file(dir, file, k + 1 == files.len(), &mut prev, visit)?;
        out.files.push(summary);
        if let Some(problem) = problem {
            out.problems.push(problem);
            // The next file's continuity would only be judged against damage: the first problem
            // is the one to report.
            prev = None;
        }
    }
    Ok(out)
}

/// The first `i` of a file, reading only its first entry.
pub fn first_i(dir: &dyn LogDir, file: &TlogFile) -> Result<Option<u64>, TlogError> {
    let mut stream = EntryStream::new(open_entries(dir, file)?);
    match stream.next_entry() {
        Ok(Next::Entry { entry, .. }) => Ok(Some(entry.i)),
        _ => Ok(None),
    }
}

/// The index in `files` of the first file a reader of slots `>= from_i` must open. Files wholly
/// below from_i are skipped: file k can be skipped when file k+1 starts at or below from_i (the
/// same i never spans files except as a re-proposal, which the later file holds).
///
/// The search runs from the last file backwards and opens no file below the one it returns, so
/// a collapse that removes files below a reader's start (see `crate::head::Pins`) never pulls a
/// file from under it.
pub fn start_index(dir: &dyn LogDir, files: &[TlogFile], from_i: u64) -> Result<usize, TlogError> {
    for k in (1..files.len()).rev() {
        if first_i(dir, &files[k])?.is_some_and(|i| i <= from_i) {
            return Ok(k);
        }
    }
    Ok(0)
}

/// Visits every entry with `i >= from_i` in log order (duplicates of one `i` included, last one
/// last), stopping at the first problem. Files that end before `from_i` are skipped unread.
/// `visit` returns false to stop early.
pub fn walk(
    dir: &dyn LogDir,
    from_i: u64,
    visit: &mut dyn FnMut(&Entry, Position<'_>) -> bool,
) -> Result<(), TlogError> {
    walk_owned(dir, from_i, &mut |e, p| visit(&e, p))
}

/// [`walk`], handing each entry over to `visit`.
fn walk_owned(
    dir: &dyn LogDir,
    from_i: u64,
    visit: &mut dyn FnMut(Entry, Position<'_>) -> bool,
) -> Result<(), TlogError> {
    let files = list_files(dir)?;
    check_numbers(dir, &files)?;
    let start = start_index(dir, &files, from_i)?;
    let mut prev = None;
    let mut stopped = false;
    for (k, file) in files.iter().enumerate().skip(start) {
        let mut inner = |e: Entry, p: Position<'_>| {
            if e.i < from_i {
                return true;
            }
            let go_on = visit(e, p);
            stopped = !go_on;
            go_on
        };
        let (_, problem) = scan_file(dir, file, k + 1 == files.len(), &mut prev, &mut inner)?;
        if let Some(problem) = problem {
            return Err(problem);
        }
        if stopped {
            break;
        }
    }
    Ok(())
}

/// Visits each committed slot `i >= from_i` once, in order, with its final value: the last
/// entry for `i`, once an entry for `i+1` exists (or, with `last_is_committed`, the log's last
/// `i` too). Markers are not values of their own: a marker entry repeats its slot's value.
pub fn for_each_committed<E>(
    dir: &dyn LogDir,
    from_i: u64,
    last_is_committed: bool,
    visit: &mut dyn FnMut(Entry) -> Result<(), E>,
) -> Result<Result<(), E>, TlogError> {
    let mut pending: Option<Entry> = None;
    let mut failure = None;
    walk_owned(dir, from_i, &mut |entry, _| {
        match pending.take() {
            Some(p) if p.i != entry.i => {
                if let Err(e) = visit(p) {
                    failure = Some(e);
                    return false;
                }
            }
            _ => {}
        }
        pending = Some(entry);
        true
    })?;
    if let Some(e) = failure {
        return Ok(Err(e));
    }
    if let (true, Some(p)) = (last_is_committed, pending) {
        return Ok(visit(p));
    }
    Ok(Ok(()))
}

/// A slot and its value, as the log holds it.
pub type SlotValue = (u64, crate::value::Value);

/// The log's last slot and the one before it (if the log holds it), with their final values.
///
/// Reads the last non-empty file once, as [`last_i`] does; only when that file starts at the
/// last slot (the slot before is in an earlier file) does it walk again from the slot before.
pub fn last_two(dir: &dyn LogDir) -> Result<(Option<SlotValue>, Option<SlotValue>), TlogError> {
    let files = list_files(dir)?;
    for (k, file) in files.iter().enumerate().rev() {
        let mut prev = None;
        // The last entry read, and the slot before it with its final value.
        let (mut last, mut before): (Option<Entry>, Option<SlotValue>) = (None, None);
        let (_, problem) = scan_file(dir, file, k + 1 == files.len(), &mut prev, &mut |e, _| {
            match last.take() {
                Some(l) if l.i != e.i => before = Some((l.i, l.value)),
                other => drop(other),
            }
            last = Some(e);
            true
        })?;
        if let Some(problem) = problem {
            return Err(problem);
        }
        let Some(last) = last else { continue };
        return match before {
            // The walk from the slot before would read this file only (the later ones are
            // empty): what it checks besides is that no file number is missing.
            Some(before) => {
                check_numbers(dir, &files)?;
                debug_assert_eq!(before.0 + 1, last.i, "consecutive slots in one file");
                Ok((Some((last.i, last.value)), Some(before)))
            }
            None => last_two_from(dir, last.i),
        };
    }
    Ok((None, None))
}

/// [`last_two`] of a log whose last slot is `last_i`, walking from the slot before it.
fn last_two_from(
    dir: &dyn LogDir,
    last_i: u64,
) -> Result<(Option<SlotValue>, Option<SlotValue>), TlogError> {
    let (mut last, mut prev) = (None, None);
    walk(dir, last_i.saturating_sub(1), &mut |e, _| {
        if e.i == last_i {
            last = Some((e.i, e.value.clone()));
        } else if e.i + 1 == last_i {
            prev = Some((e.i, e.value.clone()));
        }
        true
    })?;
    Ok((last, prev))
}

/// The log's last `i`, reading only as much as needed (the last non-empty file).
pub fn last_i(dir: &dyn LogDir) -> Result<Option<u64>, TlogError> {
    let files = list_files(dir)?;
    for (k, file) in files.iter().enumerate().rev() {
        let mut prev = None;
        let mut last = None;
        let (summary, problem) =
            scan_file(dir, file, k + 1 == files.len(), &mut prev, &mut |e, _| {
                last = Some(e.i);
                true
            })?;
        if let Some(problem) = problem {
            return Err(problem);
        }
        if summary.last_i.is_some() {
            return Ok(last);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::MemDir;

    #[test]
    fn files_bytes_counts_the_log_in_every_form_and_nothing_else() {
        let dir = MemDir::new("t");
        dir.put("000.tlf", &[0; 100]);
        dir.put("001.tlx", &[0; 20]);
        dir.put("002.tlog", &[0; 3]);
        dir.put("003.tlx.part", &[0; 1000]);
        dir.put("ballot", &[0; 500]);
        assert_eq!(files_bytes(&dir), 123);
        assert_eq!(files_bytes(&MemDir::new("empty")), 0);
    }
}
