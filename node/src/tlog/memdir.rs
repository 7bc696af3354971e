//! A simulated disk for the TLog: memory files that know which bytes are durable.
//!
//! Appended bytes are volatile until `sync_data`; created, renamed and removed names are
//! volatile until `sync_dir`. [`MemDir::crash`] throws away everything volatile, optionally
//! keeping a torn piece of the un-synced tail, as a power loss would. [`MemDir::flip_bit`] and
//! [`MemDir::cut`] damage files at rest. Clones share the same disk, so a test or the simulator
//! can keep a handle while the TLog writer owns another. Nothing here reads a clock or an RNG:
//! the caller decides how much of a torn write survives.

use super::dir::{LogDir, LogFile};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Cursor, Read};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Clone, Default)]
struct Inode {
    data: Vec<u8>,
    /// `data[..synced_len]` survives a crash.
    synced_len: usize,
}

#[derive(Debug, Default)]
struct Disk {
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    /// The directory as the running system sees it.
    names: BTreeMap<String, u64>,
    /// The directory as it would be found after a crash.
    synced_names: BTreeMap<String, u64>,
    /// The names created, renamed or removed since the last directory sync: what a sync must
    /// copy from `names` to `synced_names` (copying the whole directory made every sync cost as
    /// much as the directory is long).
    unsynced_names: BTreeSet<String>,
    /// When set, every operation fails with this kind (a full or dead disk).
    failing: Option<io::ErrorKind>,
}

/// A shared, simulated directory.
#[derive(Debug, Clone, Default)]
pub struct MemDir {
    disk: Arc<Mutex<Disk>>,
    label: String,
}

impl MemDir {
    pub fn new(label: impl Into<String>) -> MemDir {
        MemDir { disk: Arc::default(), label: label.into() }
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        // A poisoned lock means a test thread panicked mid-operation; the data is still usable.
        self.disk.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A power loss: un-synced names and bytes are lost. `torn_bytes_kept(unsynced_len)` says how
    /// many of each file's un-synced bytes survive (0 for a clean loss).
    pub fn crash(&self, mut torn_bytes_kept: impl FnMut(usize) -> usize) {
        let mut disk = self.disk();
        disk.names = disk.synced_names.clone();
        disk.unsynced_names.clear();
        let live: BTreeSet<u64> = disk.names.values().copied().collect();
        disk.inodes.retain(|id, _| live.contains(id));
        for inode in disk.inodes.values_mut() {
            let unsynced = inode.data.len() - inode.synced_len;
            let kept = torn_bytes_kept(unsynced).min(unsynced);
            inode.data.truncate(inode.synced_len + kept);
            inode.synced_len = inode.data.len();
        }
    }

    /// Flips one bit of a file at rest. Returns false if the file or offset does not exist.
    pub fn flip_bit(&self, name: &str, offset: usize, bit: u8) -> bool {
        let mut disk = self.disk();
        let Some(&id) = disk.names.get(name) else { return false };
        let inode = disk.inodes.get_mut(&id).expect("a named inode exists");
        match inode.data.get_mut(offset) {
            Some(byte) => {
                *byte ^= 1 << (bit % 8);
                true
            }
            None => false,
        }
    }

    /// Cuts a file at rest to `len` bytes (a lost or torn write discovered later).
    pub fn cut(&self, name: &str, len: usize) -> bool {
        let mut disk = self.disk();
        let Some(&id) = disk.names.get(name) else { return false };
        let inode = disk.inodes.get_mut(&id).expect("a named inode exists");
        inode.data.truncate(len);
        inode.synced_len = inode.synced_len.min(len);
        true
    }

    /// Empties the whole disk (a wiped node).
    pub fn wipe(&self) {
        let mut disk = self.disk();
        disk.inodes.clear();
        disk.names.clear();
        disk.synced_names.clear();
        disk.unsynced_names.clear();
    }

    /// Makes every operation fail with `kind` (e.g. a full disk), or heals it with `None`.
    pub fn set_failing(&self, kind: Option<io::ErrorKind>) {
        self.disk().failing = kind;
    }

    /// A copy of a file's current bytes.
    pub fn contents(&self, name: &str) -> Option<Vec<u8>> {
        let disk = self.disk();
        disk.names.get(name).map(|id| disk.inodes[id].data.clone())
    }

    /// Replaces a file's contents durably (for building test fixtures).
    pub fn put(&self, name: &str, bytes: &[u8]) {
        let mut disk = self.disk();
        let id = disk.next_inode;
        disk.next_inode += 1;
        disk.inodes.insert(id, Inode { data: bytes.to_vec(), synced_len: bytes.len() });
        disk.names.insert(name.to_string(), id);
        disk.synced_names.insert(name.to_string(), id);
    }

    /// Whether a crash now would lose nothing: every byte and every name is synced.
    pub fn all_synced(&self) -> bool {
        let disk = self.disk();
        disk.unsynced_names.is_empty() && disk.inodes.values().all(|i| i.data.len() == i.synced_len)
    }

    /// A separate disk holding what a crash now would leave (no torn bytes): what is durable.
    /// The simulator checks against it that a node names only durable state to its peers.
    pub fn durable_copy(&self) -> MemDir {
        let disk = self.disk();
        let mut copy = Disk { next_inode: disk.next_inode, ..Disk::default() };
        for (name, id) in &disk.synced_names {
            let Some(inode) = disk.inodes.get(id) else { continue };
            let data = inode.data[..inode.synced_len.min(inode.data.len())].to_vec();
            copy.inodes.insert(*id, Inode { synced_len: data.len(), data });
            copy.names.insert(name.clone(), *id);
            copy.synced_names.insert(name.clone(), *id);
        }
        MemDir { disk: Arc::new(Mutex::new(copy)), label: format!("{} (durable)", self.label) }
    }

    /// The total number of bytes that a crash now would lose.
    pub fn unsynced_bytes(&self) -> usize {
        let disk = self.disk();
        disk.inodes.values().map(|i| i.data.len() - i.synced_len).sum()
    }
}

fn check(disk: &Disk) -> io::Result<()> {
    match disk.failing {
        Some(kind) => Err(io::Error::new(kind, "simulated disk failure")),
        None => Ok(()),
    }
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{name}: no such file"))
}

struct MemFile {
    dir: MemDir,
    inode: u64,
}

impl LogFile for MemFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut disk = self.dir.disk();
        check(&disk)?;
        match disk.inodes.get_mut(&self.inode) {
            Some(inode) => {
                inode.data.extend_from_slice(bytes);
                Ok(())
            }
            // The file was removed (or lost in a crash) under an open handle.
            None => Err(io::Error::new(io::ErrorKind::NotFound, "file is gone")),
        }
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut disk = self.dir.disk();
        check(&disk)?;
        if let Some(inode) = disk.inodes.get_mut(&self.inode) {
            inode.synced_len = inode.data.len();
        }
        Ok(())
    }
}

impl LogDir for MemDir {
    fn location(&self) -> String {
        format!("mem:{}", self.label)
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let disk = self.disk();
        check(&disk)?;
        Ok(disk.names.keys().cloned().collect())
    }

    fn file_len(&self, name: &str) -> io::Result<u64> {
        let disk = self.disk();
        check(&disk)?;
        let id = disk.names.get(name).ok_or_else(|| not_found(name))?;
        Ok(disk.inodes[id].data.len() as u64)
    }

    fn open_read(&self, name: &str) -> io::Result<Box<dyn Read + Send>> {
        let disk = self.disk();
        check(&disk)?;
        let id = disk.names.get(name).ok_or_else(|| not_found(name))?;
        Ok(Box::new(Cursor::new(disk.inodes[id].data.clone())))
    }

    fn create(&self, name: &str) -> io::Result<Box<dyn LogFile>> {
        let mut disk = self.disk();
        check(&disk)?;
        let id = disk.next_inode;
        disk.next_inode += 1;
        disk.inodes.insert(id, Inode::default());
        disk.unsynced_names.insert(name.to_string());
        if let Some(old) = disk.names.insert(name.to_string(), id) {
            if !disk.synced_names.values().any(|v| *v == old) {
                disk.inodes.remove(&old);
            }
        }
        Ok(Box::new(MemFile { dir: self.clone(), inode: id }))
    }

    fn open_append(&self, name: &str) -> io::Result<Box<dyn LogFile>> {
        let disk = self.disk();
        check(&disk)?;
        let id = *disk.names.get(name).ok_or_else(|| not_found(name))?;
        Ok(Box::new(MemFile { dir: self.clone(), inode: id }))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut disk = self.disk();
        check(&disk)?;
        let id = disk.names.remove(from).ok_or_else(|| not_found(from))?;
        disk.names.insert(to.to_string(), id);
        disk.unsynced_names.insert(from.to_string());
        disk.unsynced_names.insert(to.to_string());
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut disk = self.disk();
        check(&disk)?;
        disk.names.remove(name).ok_or_else(|| not_found(name))?;
        disk.unsynced_names.insert(name.to_string());
        Ok(())
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        let mut disk = self.disk();
        check(&disk)?;
        let id = *disk.names.get(name).ok_or_else(|| not_found(name))?;
        let inode = disk.inodes.get_mut(&id).expect("a named inode exists");
        inode.data.truncate(len as usize);
        inode.synced_len = inode.data.len();
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut disk = self.disk();
        check(&disk)?;
        // Only the names touched since the last sync can differ between the two directories. An
        // inode is named at most once, so one that was named before under a touched name and is
        // not named now under a touched name is named nowhere: it can go.
        let touched = std::mem::take(&mut disk.unsynced_names);
        let mut named_now = BTreeSet::new();
        let mut named_before = Vec::new();
        for name in touched {
            let now = disk.names.get(&name).copied();
            let before = match now {
                Some(id) => {
                    named_now.insert(id);
                    disk.synced_names.insert(name, id)
                }
                None => disk.synced_names.remove(&name),
            };
            named_before.extend(before);
        }
        for id in named_before {
            if !named_now.contains(&id) {
                disk.inodes.remove(&id);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_keeps_only_synced_bytes_and_synced_names() {
        let dir = MemDir::new("t");
        let mut f = dir.create("000.tlog").unwrap();
        f.append(b"abc").unwrap();
        f.sync_data().unwrap();
        dir.sync_dir().unwrap();
        f.append(b"def").unwrap();
        let mut g = dir.create("001.tlog").unwrap();
        g.append(b"x").unwrap();
        g.sync_data().unwrap(); // data synced, but the name never was
        dir.crash(|_| 0);
        assert_eq!(dir.contents("000.tlog").unwrap(), b"abc");
        assert!(dir.contents("001.tlog").is_none());
    }

    #[test]
    fn the_durable_copy_is_what_a_crash_would_leave_and_the_disk_is_untouched() {
        let dir = MemDir::new("t");
        let mut f = dir.create("000.tlog").unwrap();
        f.append(b"abc").unwrap();
        f.sync_data().unwrap();
        dir.sync_dir().unwrap();
        assert!(dir.all_synced());
        f.append(b"def").unwrap();
        let mut g = dir.create("001.tlog").unwrap();
        g.append(b"x").unwrap();
        g.sync_data().unwrap();
        assert!(!dir.all_synced());
        let durable = dir.durable_copy();
        assert_eq!(durable.contents("000.tlog").unwrap(), b"abc");
        assert!(durable.contents("001.tlog").is_none(), "its name was never synced");
        assert!(durable.all_synced());
        assert_eq!(dir.contents("000.tlog").unwrap(), b"abcdef", "the disk keeps its tail");
        assert_eq!(dir.contents("001.tlog").unwrap(), b"x");
    }

    #[test]
    fn a_torn_crash_keeps_part_of_the_unsynced_tail() {
        let dir = MemDir::new("t");
        let mut f = dir.create("a").unwrap();
        dir.sync_dir().unwrap();
        f.append(b"12345").unwrap();
        dir.crash(|unsynced| unsynced / 2);
        assert_eq!(dir.contents("a").unwrap(), b"12");
    }

    #[test]
    fn a_failing_disk_fails_every_operation() {
        let dir = MemDir::new("t");
        let mut f = dir.create("a").unwrap();
        dir.set_failing(Some(io::ErrorKind::StorageFull));
        assert_eq!(f.append(b"x").unwrap_err().kind(), io::ErrorKind::StorageFull);
        dir.set_failing(None);
        f.append(b"x").unwrap();
    }

    /// The directory after a crash is the directory at the last sync, whatever was created,
    /// renamed, rewritten and removed since: checked against a model that copies the whole
    /// directory at every sync, over many random sequences of operations.
    #[test]
    fn a_crash_finds_the_directory_of_the_last_sync() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for _ in 0..200 {
            let dir = MemDir::new("t");
            let mut model_now: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            let mut model_synced = model_now.clone();
            for step in 0..40u8 {
                let name = format!("f{}", next(4));
                match next(4) {
                    0 => {
                        let mut f = dir.create(&name).unwrap();
                        f.append(&[step]).unwrap();
                        f.sync_data().unwrap();
                        model_now.insert(name, vec![step]);
                    }
                    1 => {
                        let to = format!("f{}", next(4));
                        if let Some(bytes) = model_now.remove(&name) {
                            dir.rename(&name, &to).unwrap();
                            model_now.insert(to, bytes);
                        }
                    }
                    2 => {
                        if model_now.remove(&name).is_some() {
                            dir.remove(&name).unwrap();
                        }
                    }
                    _ => {
                        dir.sync_dir().unwrap();
                        model_synced = model_now.clone();
                    }
                }
            }
            dir.crash(|_| 0);
            let found: BTreeMap<String, Vec<u8>> = dir
                .list()
                .unwrap()
                .into_iter()
                .map(|n| (n.clone(), dir.contents(&n).unwrap()))
                .collect();
            assert_eq!(found, model_synced);
            let disk = dir.disk();
            assert_eq!(disk.inodes.len(), disk.names.len(), "no inode outlives its names");
        }
    }
}
