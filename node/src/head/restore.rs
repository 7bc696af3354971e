//! Restoring a stopped node from a file saved by `get_db` (Arakoon's `downloadDb`).
//!
//! The file is our `get_db` answer after its rc and size: the node's state at one committed slot
//! as [`DbFrame`]s (header with cluster id and slot, chunks of pairs, an end with the pair
//! count). Restoring makes it the node's head and its store, and restarts the node's TLog with
//! an empty file after the head, the state a node is in after catching up from a collapsed peer
//! (see `adopt.rs`): on start, the node needs the slots after the head and catches them up from
//! its peers. The file is validated whole (cluster id, framing, the pair count, the slot the
//! header announces against the one the pairs hold) into a new head beside the node's files
//! before anything of the node changes; then the head is adopted and the store replaced by a
//! copy of it, each step crash-safe as in `adopt.rs`.
//!
//! Replacing a node's files forgets what its log held past the file's slot, as wiping it does:
//! restore one node at a time, with the others holding a majority.

use super::{adopt_head, head_path, incoming_head_path, replace_store, store_copy_path};
use super::{head_exists, CollapseError};
use crate::llio::DecodeError;
use crate::protocol::client::DbFrame;
use crate::store::{SledStore, Store, StoreError};
use crate::tlog::{self, LogDir, TlogError};
use std::io::Read;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The largest frame the file may hold; a frame is a chunk of at most a few thousand pairs, each
/// bounded by the value size limit, so a longer one means a damaged file (a bound on memory).
const FRAME_BYTES_MAX: usize = 512 << 20;

/// How much of the file is read at a time.
const READ_BYTES: usize = 1 << 20;

#[derive(Debug, Error)]
pub enum RestoreError {
    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    /// A frame's length is beyond any a get_db file holds: the length itself is damaged.
    #[error("{} is not a get_db file: at byte {at}: a frame longer than {max_bytes} bytes; save it again with get_db from a slave", path.display())]
    FrameTooLong { path: PathBuf, at: u64, max_bytes: usize },
    /// Something follows the end frame.
    #[error("{} is not a get_db file: at byte {at}: bytes after the end frame; save it again with get_db from a slave", path.display())]
    BytesAfterEnd { path: PathBuf, at: u64 },
    /// A frame does not decode.
    #[error("{} is not a get_db file: at byte {at}: {source}; save it again with get_db from a slave", path.display())]
    Undecodable { path: PathBuf, at: u64, source: DecodeError },
    #[error("{} ends at byte {at} inside a frame (a cut download); save it again with get_db from a slave", path.display())]
    Truncated { path: PathBuf, at: u64 },
    #[error("{} holds the store of cluster {found:?}, this node is in cluster {expected:?}; use a file saved from this cluster", path.display())]
    WrongCluster { path: PathBuf, expected: String, found: String },
    #[error("{} announces {announced} pairs but holds {found} (a damaged file); save it again with get_db from a slave", path.display())]
    Count { path: PathBuf, announced: u64, found: u64 },
    #[error(
        "{}'s header says slot {} but its pairs are at slot {} (a damaged file)",
        path.display(), slot_text(*header), slot_text(*pairs)
    )]
    Slot { path: PathBuf, header: Option<u64>, pairs: Option<u64> },
    #[error("the node already has {0}; pass --yes to replace them by the file's state (the node forgets its log: restore one node at a time)")]
    WouldReplace(String),
    #[error("building the head from the file: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Collapse(#[from] CollapseError),
    #[error(transparent)]
    Tlog(#[from] TlogError),
}

fn slot_text(i: Option<u64>) -> String {
    i.map_or("none".to_string(), |i| i.to_string())
}

/// What the pair stream hands the import when the file breaks off; the restore reports the
/// problem it kept (a [`RestoreError`] naming the byte), not this.
#[derive(Debug, Error)]
#[error("the get_db file is damaged or cut short")]
struct FileBroken;

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The slot the node's head and store now hold.
    pub applied: Option<u64>,
    /// The pairs read from the file.
    pub pairs: u64,
    pub head: PathBuf,
    pub store: PathBuf,
}

/// Restores the stopped node whose TLog directory is `dir` (at `tlog_dir`) and whose store is at
/// `store` from the `get_db` file at `file`. Without `replace`, a node that has a store, a head
/// or TLog files is left alone and the error names them.
pub fn restore_from_db_file(
    file: &Path,
    cluster_id: &str,
    dir: &dyn LogDir,
    tlog_dir: &Path,
    store: &Path,
    replace: bool,
) -> Result<Restored, RestoreError> {
    let mut existing = Vec::new();
    if store.exists() {
        existing.push(format!("a store at {}", store.display()));
    }
    if head_exists(tlog_dir) {
        existing.push(format!("a head at {}", head_path(tlog_dir).display()));
    }
    let files = tlog::list_files(dir)?;
    if !files.is_empty() {
        existing.push(format!("{} TLog files in {}", files.len(), tlog_dir.display()));
    }
    if !existing.is_empty() && !replace {
        return Err(RestoreError::WouldReplace(existing.join(", ")));
    }
    let incoming = incoming_head_path(tlog_dir);
    remove_leftover(&incoming)?;
    let (head, pairs) = match import_file(file, cluster_id, &incoming) {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&incoming);
            return Err(e);
        }
    };
    let applied = head.applied();
    let copy = store_copy_path(store);
    remove_leftover(&copy)?;
    let built = SledStore::import(&copy, cluster_id, head.export());
    drop(head);
    drop(built.inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&copy);
    })?);
    adopt_head(dir, &head_path(tlog_dir), &mut |step| {
        tracing::info!(?step, "restore");
        true
    })?;
    replace_store(&copy, store)?;
    Ok(Restored { applied, pairs, head: head_path(tlog_dir), store: store.to_path_buf() })
}

fn remove_leftover(path: &Path) -> Result<(), RestoreError> {
    if path.exists() {
        std::fs::remove_dir_all(path)
            .map_err(|source| CollapseError::Remove { path: path.display().to_string(), source })?;
    }
    Ok(())
}

/// Reads and checks the file into a new head at `dest`; returns it and the pair count.
fn import_file(
    file: &Path,
    cluster_id: &str,
    dest: &Path,
) -> Result<(SledStore, u64), RestoreError> {
    let shown = file.to_path_buf();
    let read_error = |source| RestoreError::Read { path: shown.clone(), source };
    let mut frames = Frames::new(std::fs::File::open(file).map_err(read_error)?, shown.clone());
    let header_applied = match frames.next()? {
        Some(DbFrame::Header { cluster_id: found, applied }) => {
            if found != cluster_id {
                return Err(RestoreError::WrongCluster {
                    path: shown,
                    expected: cluster_id.into(),
                    found,
                });
            }
            applied
        }
        // The first frame is always decoded as the header.
        Some(_) => return Err(RestoreError::Truncated { path: shown, at: 0 }),
        None => return Err(RestoreError::Truncated { path: shown, at: 0 }),
    };
    // The pairs are streamed into the import; the first problem in the file stops it and is
    // kept here, so that it, not the import's reaction to it, is reported.
    let mut problem: Option<RestoreError> = None;
    let mut count = 0u64;
    let mut pending = Vec::new().into_iter();
    let mut ended = false;
    let pairs = std::iter::from_fn(|| loop {
        if let Some(pair) = pending.next() {
            count += 1;
            return Some(Ok(pair));
        }
        if ended || problem.is_some() {
            return None;
        }
        match frames.next() {
            Ok(Some(DbFrame::Pairs(chunk))) => pending = chunk.into_iter(),
            Ok(Some(DbFrame::End { pairs })) => {
                ended = true;
                if pairs != count {
                    problem = Some(RestoreError::Count {
                        path: frames.path.clone(),
                        announced: pairs,
                        found: count,
                    });
                } else if let Err(e) = frames.expect_end() {
                    problem = Some(e);
                }
                if problem.is_some() {
                    return Some(Err(FileBroken));
                }
            }
            // Only the first frame is decoded as a header.
            Ok(Some(DbFrame::Header { .. })) | Ok(None) => {
                problem =
                    Some(RestoreError::Truncated { path: frames.path.clone(), at: frames.offset });
                return Some(Err(FileBroken));
            }
            Err(e) => {
                problem = Some(e);
                return Some(Err(FileBroken));
            }
        }
    });
    let imported = SledStore::import(dest, cluster_id, pairs);
    if let Some(problem) = problem {
        return Err(problem);
    }
    let mut head = imported?;
    if head.applied() != header_applied {
        return Err(RestoreError::Slot {
            path: shown,
            header: header_applied,
            pairs: head.applied(),
        });
    }
    head.flush()?;
    Ok((head, count))
}

/// The file's frames, read a piece at a time.
struct Frames {
    file: std::fs::File,
    path: PathBuf,
    buf: Vec<u8>,
    /// Where the next frame starts in `buf`, and in the file.
    start: usize,
    offset: u64,
    header_due: bool,
    eof: bool,
}

impl Frames {
    fn new(file: std::fs::File, path: PathBuf) -> Frames {
        Frames { file, path, buf: Vec::new(), start: 0, offset: 0, header_due: true, eof: false }
    }

    /// The next frame; `None` at the end of the file on a frame boundary, a `Truncated` error
    /// inside one.
    fn next(&mut self) -> Result<Option<DbFrame>, RestoreError> {
        loop {
            let decoded = DbFrame::decode(&self.buf[self.start..], self.header_due);
            match decoded {
                Ok(Some((frame, used))) => {
                    self.start += used;
                    self.offset += used as u64;
                    self.header_due = false;
                    return Ok(Some(frame));
                }
                Ok(None) => {}
                Err(e) => return Err(self.framing(&e)),
            }
            if self.eof {
                if self.start == self.buf.len() {
                    return Ok(None);
                }
                return Err(RestoreError::Truncated { path: self.path.clone(), at: self.offset });
            }
            if self.buf.len() - self.start > FRAME_BYTES_MAX {
                return Err(RestoreError::FrameTooLong {
                    path: self.path.clone(),
                    at: self.offset,
                    max_bytes: FRAME_BYTES_MAX,
                });
            }
            self.fill()?;
        }
    }

    /// After the end frame the file must end.
    fn expect_end(&mut self) -> Result<(), RestoreError> {
        while !self.eof && self.start == self.buf.len() {
            self.fill()?;
        }
        if self.start == self.buf.len() {
            return Ok(());
        }
        Err(RestoreError::BytesAfterEnd { path: self.path.clone(), at: self.offset })
    }

    fn fill(&mut self) -> Result<(), RestoreError> {
        self.buf.drain(..self.start);
        self.start = 0;
        let had = self.buf.len();
        self.buf.resize(had + READ_BYTES, 0);
        let n = self
            .file
            .read(&mut self.buf[had..])
            .map_err(|source| RestoreError::Read { path: self.path.clone(), source })?;
        self.buf.truncate(had + n);
        self.eof = n == 0;
        Ok(())
    }

    fn framing(&self, e: &DecodeError) -> RestoreError {
        RestoreError::Undecodable { path: self.path.clone(), at: self.offset, source: e.clone() }
    }
}
