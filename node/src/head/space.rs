//! Where a head lives: the seam between collapse and the disk under the head.
//!
//! Collapse ([`super::collapse_planned`], [`super::fold`]) and start-up
//! ([`super::check_log_start`]) see a head through [`HeadSpace`] (where it is, whether it
//! exists, open it) and [`HeadStore`] (what it holds up to, apply, flush durably). Two spaces:
//!
//! - a [`PathBuf`]: a sled store at that path, the production head (`<tlog_dir>/head.db`); every
//!   production caller passes its path as before, so nothing changes there;
//! - a [`FileHead`]: the head as one file, [`HEAD_FILE`], on a [`LogDir`] beside the TLog files,
//!   which the simulator's nodes keep on their simulated disk ([`crate::tlog::MemDir`]), so that
//!   collapse runs over the disk that loses unsynced writes, tears them, flips bits and fails
//!   fsyncs.
//!
//! Adoption ([`super::adopt_head`]) sees the head through the same seam: a fetched head waits
//! beside it ("incoming": `head.db.incoming`, a sled directory or a file) and is put in place in
//! one atomic step ([`HeadSpace::take_incoming`]: `renameat2` exchange on disk,
//! [`crate::tlog::LogDir::exchange`] on the simulated disk).
//!
//! The file head keeps the durability rule of the sled head: what it holds is durable only once
//! flushed. A flush writes the whole head to `head.db.part`, syncs it, renames it over
//! `head.db` and syncs the directory (the ballot record's way): a crash at any point leaves the
//! old head or the new one, never a mix, and a leftover `.part` is never read. The file ends in
//! a CRC-32C of its bytes, so a bit flipped at rest is found at the next open, which refuses it.

use super::{with_suffix, HEAD_DIR};
use crate::store::{MemoryStore, SledStore, Store, StoreError};
use crate::tlog::LogDir;
use crate::value::Value;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

/// A head, open: folding applies committed values to it and flushes it.
pub trait HeadStore {
    /// The last slot the head holds, `None` for an empty head.
    fn applied(&self) -> Option<u64>;
    /// The next slot the head accepts.
    fn next_i(&self) -> u64 {
        self.applied().map_or(0, |i| i + 1)
    }
    /// Applies consecutive committed values (the first must be [`HeadStore::next_i`]).
    fn apply_many(&mut self, values: &[(u64, Value)]) -> Result<(), StoreError>;
    /// Makes everything applied durable. Until it returns, a crash may lose any of it.
    fn flush(&mut self) -> Result<(), StoreError>;
}

/// A head's pairs, in key order (see [`HeadRead::pairs`]).
pub type HeadPairs<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + 'a>;

/// A head read whole: what `fetch_head` and `get_db` stream (server/collapse.rs).
pub trait HeadRead {
    /// The last slot the head holds, `None` for an empty head.
    fn head_i(&self) -> Option<u64>;
    /// Every pair of the head in the sled store's layout, in key order
    /// ([`SledStore::export`]; a memory head gives the same pairs: [`MemoryStore::export`]).
    fn pairs(&self) -> HeadPairs<'_>;
}

impl HeadRead for SledStore {
    fn head_i(&self) -> Option<u64> {
        Store::applied(self)
    }
    fn pairs(&self) -> HeadPairs<'_> {
        Box::new(self.export())
    }
}

impl HeadRead for MemoryStore {
    fn head_i(&self) -> Option<u64> {
        Store::applied(self)
    }
    fn pairs(&self) -> HeadPairs<'_> {
        Box::new(self.export())
    }
}

/// Where a head lives.
pub trait HeadSpace: Send + Sync {
    /// Where, for messages.
    fn location(&self) -> String;
    /// Whether a head exists (a collapse or a catch-up from a head made one).
    fn exists(&self) -> bool;
    /// Opens the head, creating an empty one if there is none.
    fn open(&self, cluster_id: &str) -> Result<Box<dyn HeadStore>, StoreError>;
    /// Opens the head to read it whole (an empty one if there is none).
    fn read(&self, cluster_id: &str) -> Result<Box<dyn HeadRead>, StoreError>;

    // ---- adoption (super::adopt): a fetched head waits beside the head ("incoming") --------

    /// Where a fetched head waits to be adopted, for messages.
    fn incoming_location(&self) -> String;
    /// Whether something waits there: a fetched head, or the old head after
    /// [`HeadSpace::take_incoming`].
    fn incoming_exists(&self) -> bool;
    /// Puts the fetched head in place in one atomic step: exchanged with the head there is
    /// (which then waits where the fetched one was), or moved in when there is none. Durable once
    /// the directory is synced.
    fn take_incoming(&self) -> std::io::Result<()>;
    /// Removes what waits at the incoming place.
    fn remove_incoming(&self) -> std::io::Result<()>;
}

/// A sled head, open (a wrapper, so that `SledStore`'s own methods stay unambiguous).
struct OpenSledHead(SledStore);

impl HeadStore for OpenSledHead {
    fn applied(&self) -> Option<u64> {
        Store::applied(&self.0)
    }
    fn apply_many(&mut self, values: &[(u64, Value)]) -> Result<(), StoreError> {
        self.0.apply_many(values).map(drop)
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        self.0.flush()
    }
}

/// A path is where a sled head lives: production's head at `<tlog_dir>/head.db`.
impl HeadSpace for PathBuf {
    fn location(&self) -> String {
        self.display().to_string()
    }
    fn exists(&self) -> bool {
        self.is_dir()
    }
    fn open(&self, cluster_id: &str) -> Result<Box<dyn HeadStore>, StoreError> {
        Ok(Box::new(OpenSledHead(SledStore::open(self, cluster_id)?)))
    }
    fn read(&self, cluster_id: &str) -> Result<Box<dyn HeadRead>, StoreError> {
        Ok(Box::new(SledStore::open(self, cluster_id)?))
    }
    fn incoming_location(&self) -> String {
        with_suffix(self, "incoming").display().to_string()
    }
    fn incoming_exists(&self) -> bool {
        with_suffix(self, "incoming").exists()
    }
    fn take_incoming(&self) -> std::io::Result<()> {
        let incoming = with_suffix(self, "incoming");
        if std::path::Path::exists(self) {
            super::exchange(&incoming, self)
        } else {
            std::fs::rename(&incoming, self)
        }
    }
    fn remove_incoming(&self) -> std::io::Result<()> {
        std::fs::remove_dir_all(with_suffix(self, "incoming"))
    }
}

/// The file name of a head kept as a file, beside the TLog files (not a TLog name, so TLog
/// listings ignore it).
pub const HEAD_FILE: &str = HEAD_DIR;
/// Where a flush writes the new head before renaming it over [`HEAD_FILE`].
pub const HEAD_PART_FILE: &str = "head.db.part";
/// Where a fetched head waits to be adopted ([`super::adopt_head`]), as production's
/// `head.db.incoming` directory does.
pub const HEAD_INCOMING_FILE: &str = "head.db.incoming";
/// The first bytes of a head file.
const MAGIC: &[u8; 8] = b"AKHEAD1\n";

/// A head kept as one file on a log directory (the simulator's nodes keep theirs so).
#[derive(Clone)]
pub struct FileHead {
    dir: Arc<dyn LogDir>,
}

impl FileHead {
    pub fn new(dir: Arc<dyn LogDir>) -> FileHead {
        FileHead { dir }
    }

    fn error(&self, name: &str, source: std::io::Error) -> StoreError {
        StoreError::Backend { path: PathBuf::from(self.dir.path_of(name)), source }
    }

    fn damaged(&self, what: String) -> StoreError {
        let source = std::io::Error::new(std::io::ErrorKind::InvalidData, what);
        self.error(HEAD_FILE, source)
    }

    /// Writes a fetched head, `store`, where it waits to be adopted ([`HEAD_INCOMING_FILE`]),
    /// its bytes synced: what `get_db` and the fetch's flush leave on a node's disk (the
    /// simulator's fetch). The incoming name becomes durable with the adoption's directory
    /// sync, as production's does.
    pub fn write_incoming(&self, store: &MemoryStore) -> std::io::Result<()> {
        let mut file = self.dir.create(HEAD_INCOMING_FILE)?;
        file.append(&encode(store))?;
        file.sync_data()
    }

    /// What the head holds, as a memory store; `None` when there is no head. A damaged file
    /// (a flipped bit, a cut) is an error, never a store.
    pub fn load(&self, cluster_id: &str) -> Result<Option<MemoryStore>, StoreError> {
        let exists = self.dir.exists(HEAD_FILE).map_err(|e| self.error(HEAD_FILE, e))?;
        if !exists {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        self.dir
            .open_read(HEAD_FILE)
            .and_then(|mut r| r.read_to_end(&mut bytes))
            .map_err(|e| self.error(HEAD_FILE, e))?;
        let body_len = bytes.len().checked_sub(4).filter(|n| *n >= MAGIC.len());
        let Some(body_len) = body_len.filter(|_| bytes.starts_with(MAGIC)) else {
            return Err(self.damaged(format!("not a head file ({} bytes)", bytes.len())));
        };
        let (body, crc) = bytes.split_at(body_len);
        let crc = u32::from_le_bytes(crc.try_into().expect("four bytes"));
        if crc32c::crc32c(body) != crc {
            return Err(self.damaged("checksum mismatch: the head is damaged".into()));
        }
        MemoryStore::decode(cluster_id, &body[MAGIC.len()..])
            .map(Some)
            .map_err(|e| self.damaged(e.to_string()))
    }
}

impl HeadSpace for FileHead {
    fn location(&self) -> String {
        self.dir.path_of(HEAD_FILE)
    }
    fn exists(&self) -> bool {
        self.dir.exists(HEAD_FILE).unwrap_or(false)
    }
    fn open(&self, cluster_id: &str) -> Result<Box<dyn HeadStore>, StoreError> {
        let store = self.load(cluster_id)?.unwrap_or_else(|| MemoryStore::new(cluster_id));
        Ok(Box::new(OpenFileHead { space: self.clone(), store }))
    }
    fn read(&self, cluster_id: &str) -> Result<Box<dyn HeadRead>, StoreError> {
        Ok(Box::new(self.load(cluster_id)?.unwrap_or_else(|| MemoryStore::new(cluster_id))))
    }
    fn incoming_location(&self) -> String {
        self.dir.path_of(HEAD_INCOMING_FILE)
    }
    fn incoming_exists(&self) -> bool {
        self.dir.exists(HEAD_INCOMING_FILE).unwrap_or(false)
    }
    fn take_incoming(&self) -> std::io::Result<()> {
        if self.dir.exists(HEAD_FILE)? {
            self.dir.exchange(HEAD_INCOMING_FILE, HEAD_FILE)
        } else {
            self.dir.rename(HEAD_INCOMING_FILE, HEAD_FILE)
        }
    }
    fn remove_incoming(&self) -> std::io::Result<()> {
        self.dir.remove(HEAD_INCOMING_FILE)
    }
}

/// A head file's bytes: the magic, the store, a CRC-32C of both.
fn encode(store: &MemoryStore) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    store.encode(&mut bytes);
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

/// A [`FileHead`] open: the head in memory, written out whole at each flush.
struct OpenFileHead {
    space: FileHead,
    store: MemoryStore,
}

impl HeadStore for OpenFileHead {
    fn applied(&self) -> Option<u64> {
        Store::applied(&self.store)
    }
    fn apply_many(&mut self, values: &[(u64, Value)]) -> Result<(), StoreError> {
        self.store.apply_many(values).map(drop)
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        let bytes = encode(&self.store);
        let dir = &self.space.dir;
        let part = |e| self.space.error(HEAD_PART_FILE, e);
        let mut file = dir.create(HEAD_PART_FILE).map_err(part)?;
        file.append(&bytes).map_err(part)?;
        file.sync_data().map_err(part)?;
        drop(file);
        dir.rename(HEAD_PART_FILE, HEAD_FILE).map_err(|e| self.space.error(HEAD_FILE, e))?;
        dir.sync_dir().map_err(|e| self.space.error(HEAD_FILE, e))
    }
}
