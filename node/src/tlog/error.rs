//! What can be wrong with a TLog, said so that an operator can act on it.
//!
//! Every problem names the file, the byte offset and the `i` it concerns, maps to the exit code
//! the original Arakoon used for it (operators know those numbers), and names the command that
//! repairs it.

use crate::llio::DecodeError;
use std::io;
use thiserror::Error;

/// A problem found in a TLog directory. Offsets in archives (.tlx, .tlf) are offsets in the
/// uncompressed entry stream.
#[derive(Debug, Error)]
pub enum TlogError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },

    #[error("{path}: torn tail at offset {offset}: the file ends inside the entry {}({have} of {} bytes present)", fmt_i(*i), need.map_or("at least 16".to_string(), |n| n.to_string()))]
    TornTail { path: String, offset: u64, i: Option<u64>, have: u64, need: Option<u64> },

    #[error("{path}: sealed file ends inside the entry at offset {offset} {}: the file was cut", fmt_i(*i))]
    TruncatedSealed { path: String, offset: u64, i: Option<u64> },

    #[error("{path}: checksum error at offset {offset} (i={i}): stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { path: String, offset: u64, i: u64, stored: u32, computed: u32 },

    #[error("{path}: impossible entry length {len} at offset {offset} (i={i})")]
    BadLength { path: String, offset: u64, i: u64, len: i64 },

    #[error(
        "{path}: entry at offset {offset} (i={i}) passes its checksum but does not decode: {error}"
    )]
    Undecodable { path: String, offset: u64, i: i64, error: DecodeError },

    #[error("{path}: sequence error at offset {offset}: i={i} follows i={prev} (expected {prev} or {})", prev + 1)]
    Sequence { path: String, offset: u64, i: u64, prev: u64 },

    #[error("{path}: the log's first file starts at i={i} (offset {offset}), not at i=0")]
    BadStart { path: String, offset: u64, i: u64 },

    #[error("{path}: starts at i={first_i}, below the last i={prev_last_i} of {prev_file}")]
    FileStartsBelow { path: String, first_i: u64, prev_file: String, prev_last_i: u64 },

    #[error("{dir}: expected TLog file {missing} is missing (found {next} after {prev})")]
    MissingFile { dir: String, missing: String, prev: String, next: String },

    /// An archive's compressed stream does not decode (the offset is in the uncompressed
    /// entry stream, where the damage was met).
    #[error("{path}: bad archive at offset {offset}: {source}")]
    BadArchive { path: String, offset: u64, source: io::Error },

    /// Arakoon's legacy `.tlc` archives are not read.
    #[error("{path}: the legacy .tlc format is not supported; uncompress it with the original Arakoon tools first")]
    LegacyTlc { path: String },

    /// The ballot record (what this node promised and accepted) has the wrong size.
    #[error("{path}: the ballot record has {bytes} bytes, not {expected}; if the TLog is healthy, remove it and let the node catch up before it votes again")]
    BallotSize { path: String, bytes: usize, expected: usize },

    /// The ballot record fails its checksum or holds impossible values.
    #[error("{path}: the ballot record is damaged (checksum); if the TLog is healthy, remove it and let the node catch up before it votes again")]
    BallotDamaged { path: String },

    /// A writer whose write or sync failed takes no more entries: what reached the disk is
    /// unknown until the log is validated again.
    #[error(
        "{path}: an earlier write or sync failed; restart the node so that it validates its TLog"
    )]
    WriterFailed { path: String },

    /// `truncate_torn_tail` cuts a torn tail and nothing else; the log has other problems.
    #[error("{dir}: will not truncate: the log has {problems} problem(s) that are not a torn tail, first: {first}")]
    NotOnlyTornTail { dir: String, problems: usize, first: Box<TlogError> },

    /// A file read on its own (to convert it, or to show it) stopped at a damaged entry; the
    /// problem found there is `problem`.
    #[error(
        "{path}: stopped at a damaged entry: {problem}; run `arakoon-admin tlog verify` first"
    )]
    DamagedFile { path: String, problem: Box<TlogError> },

    /// The persister's writer stopped after an earlier failure: nothing more is written.
    #[error("{path}: the TLog writer stopped after an earlier failure; restart the node")]
    WriterStopped { path: String },

    /// Catch-up entries that do not continue the log (neither its last slot, rewritten, nor
    /// the one after it).
    #[error("{path}: catch-up entry {i} does not continue the log at {last}")]
    ImportGap { path: String, i: u64, last: u64 },
}

fn fmt_i(i: Option<u64>) -> String {
    i.map_or(String::new(), |i| format!("for i={i} "))
}

impl TlogError {
    pub(crate) fn io(path: impl Into<String>, source: io::Error) -> TlogError {
        TlogError::Io { path: path.into(), source }
    }

    /// The exit code Arakoon used for this kind of problem.
    pub fn exit_code(&self) -> i32 {
        use crate::exit::NodeExit as NE;
        match self {
            TlogError::Io { .. }
            | TlogError::WriterStopped { .. }
            | TlogError::ImportGap { .. }
            | TlogError::WriterFailed { .. }
            | TlogError::NotOnlyTornTail { .. }
            | TlogError::DamagedFile { .. } => NE::TlogDir.code(),
            TlogError::TornTail { .. } | TlogError::TruncatedSealed { .. } => NE::TornTail.code(),
            TlogError::Checksum { .. }
            | TlogError::BadLength { .. }
            | TlogError::Undecodable { .. }
            | TlogError::Sequence { .. }
            | TlogError::BadStart { .. }
            | TlogError::BadArchive { .. }
            | TlogError::LegacyTlc { .. }
            | TlogError::BallotSize { .. }
            | TlogError::BallotDamaged { .. } => NE::CorruptTlog.code(),
            TlogError::MissingFile { .. } | TlogError::FileStartsBelow { .. } => {
                NE::MissingTlog.code()
            }
        }
    }

    /// A short name for the kind of problem (for JSON output and tests).
    pub fn kind(&self) -> &'static str {
        match self {
            TlogError::Io { .. } => "io",
            TlogError::TornTail { .. } => "torn_tail",
            TlogError::TruncatedSealed { .. } => "truncated_sealed",
            TlogError::Checksum { .. } => "checksum",
            TlogError::BadLength { .. } => "bad_length",
            TlogError::Undecodable { .. } => "undecodable",
            TlogError::Sequence { .. } => "sequence",
            TlogError::BadStart { .. } => "bad_start",
            TlogError::FileStartsBelow { .. } => "file_starts_below",
            TlogError::MissingFile { .. } => "missing_file",
            TlogError::BadArchive { .. } | TlogError::LegacyTlc { .. } => "bad_archive",
            TlogError::BallotSize { .. } | TlogError::BallotDamaged { .. } => "bad_ballot",
            TlogError::WriterStopped { .. }
            | TlogError::ImportGap { .. }
            | TlogError::WriterFailed { .. }
            | TlogError::NotOnlyTornTail { .. }
            | TlogError::DamagedFile { .. } => "refused",
        }
    }

    /// The byte offset the problem is at, where there is one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            TlogError::TornTail { offset, .. }
            | TlogError::TruncatedSealed { offset, .. }
            | TlogError::Checksum { offset, .. }
            | TlogError::BadLength { offset, .. }
            | TlogError::Undecodable { offset, .. }
            | TlogError::Sequence { offset, .. }
            | TlogError::BadStart { offset, .. }
            | TlogError::BadArchive { offset, .. } => Some(*offset),
            _ => None,
        }
    }

    /// The `i` the problem concerns, where known.
    pub fn i(&self) -> Option<u64> {
        match self {
            TlogError::TornTail { i, .. } | TlogError::TruncatedSealed { i, .. } => *i,
            TlogError::Checksum { i, .. }
            | TlogError::BadLength { i, .. }
            | TlogError::Sequence { i, .. }
            | TlogError::BadStart { i, .. } => Some(*i),
            TlogError::Undecodable { i, .. } => u64::try_from(*i).ok(),
            TlogError::FileStartsBelow { first_i, .. } => Some(*first_i),
            _ => None,
        }
    }

    /// The file the problem is in.
    pub fn path(&self) -> &str {
        match self {
            TlogError::Io { path, .. }
            | TlogError::TornTail { path, .. }
            | TlogError::TruncatedSealed { path, .. }
            | TlogError::Checksum { path, .. }
            | TlogError::BadLength { path, .. }
            | TlogError::Undecodable { path, .. }
            | TlogError::Sequence { path, .. }
            | TlogError::BadStart { path, .. }
            | TlogError::FileStartsBelow { path, .. }
            | TlogError::BadArchive { path, .. }
            | TlogError::LegacyTlc { path }
            | TlogError::BallotSize { path, .. }
            | TlogError::BallotDamaged { path }
            | TlogError::WriterFailed { path }
            | TlogError::DamagedFile { path, .. }
            | TlogError::WriterStopped { path }
            | TlogError::ImportGap { path, .. } => path,
            TlogError::MissingFile { dir, .. } | TlogError::NotOnlyTornTail { dir, .. } => dir,
        }
    }

    /// What the operator should run to repair it.
    pub fn repair(&self) -> String {
        const REBUILD: &str = "the damaged entries cannot be trusted: move this node's TLog \
            directory and store aside and bring it back from a healthy peer with \
            `arakoon-admin catchup --node NAME -config FILE`";
        match self {
            TlogError::TornTail { path, .. } => format!(
                "a write was cut short by a crash; cut the torn tail with \
                 `arakoon-admin tlog truncate {path}` (only un-acknowledged bytes are lost)"
            ),
            TlogError::Io { .. }
            | TlogError::WriterStopped { .. }
            | TlogError::ImportGap { .. }
            | TlogError::WriterFailed { .. } => {
                "check that the directory exists and is readable and writable by the node".into()
            }
            TlogError::NotOnlyTornTail { first, .. }
            | TlogError::DamagedFile { problem: first, .. } => first.repair(),
            TlogError::MissingFile { .. } => format!(
                "restore the missing file from a backup, or {}",
                REBUILD.trim_start_matches("the damaged entries cannot be trusted: ")
            ),
            _ => REBUILD.into(),
        }
    }
}
