//! The TLog: the node's source of truth.
//!
//! A directory of numbered files of entries `i | crc | cmd` (ARAKOON-FORMATS §4). The
//! [`TlogWriter`] appends with one fsync per call and rolls over by entry count and size; the
//! [`reader`] walks the directory in `i` order applying the last-one-wins and committed-once-
//! `i+1`-exists rules; [`validate`] classifies every kind of damage with file, offset and `i`;
//! [`archive`] reads and writes sealed-file archives. All file access goes through [`LogDir`],
//! real ([`FsDir`]) or simulated ([`MemDir`]).

pub mod archive;
mod ballot;
mod dir;
mod entry;
mod error;
mod files;
mod memdir;
pub mod reader;
mod writer;

pub use ballot::{BallotRecord, BALLOT_FILE};
pub use dir::{FsDir, LogDir, LogFile};
pub use entry::{
    closed_marker, decode_cmd, encode_entry, opened_marker, Entry, EntryStream, Next,
    ENTRY_HEADER_BYTES,
};
pub use error::TlogError;
pub use files::{FileKind, TlogFile};
pub use memdir::{MemDir, Trip};
pub use reader::{
    files_bytes, first_i, for_each_committed, last_i, last_two, list_files, log_first_i,
    problem_at, start_index, validate, validate_with, walk, walk_file, FileSummary, Position,
    SlotValue, Validation,
};
pub use writer::{truncate_torn_tail, OpenReport, TlogConfig, TlogWriter, TornTail};
