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

    #[error("{path}: bad archive at offset {offset}: {reason}")]
    BadArchive { path: String, offset: u64, reason: String },

    #[error("{path}: {reason}")]
    Refused { path: String, reason: String },
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
            TlogError::Io { .. } | TlogError::Refused { .. } => NE::TlogDir.code(),
            TlogError::TornTail { .. } | TlogError::TruncatedSealed { .. } => NE::TornTail.code(),
            TlogError::Checksum { .. }
            | TlogError::BadLength { .. }
            | TlogError::Undecodable { .. }
            | TlogError::Sequence { .. }
            | TlogError::BadStart { .. }
            | TlogError::BadArchive { .. } => NE::CorruptTlog.code(),
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
            TlogError::BadArchive { .. } => "bad_archive",
            TlogError::Refused { .. } => "refused",
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
            | TlogError::Refused { path, .. } => path,
            TlogError::MissingFile { dir, .. } => dir,
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
            TlogError::Io { .. } | TlogError::Refused { .. } => {
                "check that the directory exists and is readable and writable by the node".into()
            }
            TlogError::MissingFile { .. } => format!(
                "restore the missing file from a backup, or {}",
                REBUILD.trim_start_matches("the damaged entries cannot be trusted: ")
            ),
            _ => REBUILD.into(),
        }
    }
}
