//! A simulated disk for the TLog: memory files that know which bytes are durable.
//!
//! Appended bytes are volatile until `sync_data`; created, renamed and removed names are
//! volatile until `sync_dir`. [`MemDir::crash`] throws away everything volatile, optionally
//! keeping a torn piece of the un-synced tail, as a power loss would. [`MemDir::flip_bit`] and
//! [`MemDir::cut`] damage files at rest. Clones share the same disk, so a test or the simulator
//! can keep a handle while the TLog writer owns another. Nothing here reads a clock or an RNG:
//! the caller decides how much of a torn write survives.
//!
//! A [`Trip`] armed on the disk strikes once, at the operation it names: a sync that fails
//! (EIO) and leaves what it should have made durable volatile, or a power cut at a point of a
//! rollover or of the ballot record's replacement. After a power cut every operation fails
//! until [`MemDir::crash`] (the world's power loss) runs; the writer in the middle of its work
//! sees an error and never learns more. The simulator arms trips; the node's code is unaware.

use super::dir::{LogDir, LogFile};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Cursor, Read};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Clone, Default)]
struct Inode {
    /// Shared with the readers open on it and with durable copies, copied on write if any is
    /// still open: reading a file, as a restart's replay does for every file, copies nothing.
    data: Arc<Vec<u8>>,
    /// `data[..synced_len]` survives a crash.
    synced_len: usize,
}

impl Inode {
    fn bytes_mut(&mut self) -> &mut Vec<u8> {
        Arc::make_mut(&mut self.data)
    }

    /// Cuts the file to `len` bytes (nothing to do, and no copy, when it is not longer).
    fn truncate(&mut self, len: usize) {
        if self.data.len() > len {
            self.bytes_mut().truncate(len);
        }
    }
}

/// A file's bytes as a reader holds them.
struct SharedBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
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
    /// The one-shot fault armed, if any.
    armed: Option<Trip>,
    /// The trip that struck since it was last taken ([`MemDir::take_struck`]).
    struck: Option<Trip>,
    /// The power is cut (a trip struck): every operation fails until the crash.
    power_cut: bool,
    /// The TLog files (inodes) created since the trip was armed and not synced since.
    new_tlogs: BTreeSet<u64>,
    /// The head's part files (inodes): what a head's flush writes before its rename.
    head_parts: BTreeSet<u64>,
    /// TLog files removed since the trip was armed (for [`Trip::CutBeforeTlogRemoval`]).
    tlog_removals: u8,
    /// The inodes holding bytes a crash now would lose (`data.len() != synced_len`), so that
    /// [`MemDir::all_synced`] need not visit every file (the simulator asks at every Promise
    /// and Accepted a node sends, and a long run's TLog has hundreds of files).
    unsynced_inodes: BTreeSet<u64>,
    /// How many times a fetched head was put in place of the head
    /// ([`crate::head::HEAD_INCOMING_FILE`] renamed or exchanged onto
    /// [`crate::head::HEAD_FILE`]): the adoptions this disk saw, for the simulator's reports.
    heads_taken: u64,
}

impl Disk {
    /// Records whether inode `id` (if it still exists) holds un-synced bytes; call after any
    /// change to its bytes or its synced length.
    fn note(&mut self, id: u64) {
        match self.inodes.get(&id) {
            Some(inode) if inode.data.len() != inode.synced_len => {
                self.unsynced_inodes.insert(id);
            }
            _ => {
                self.unsynced_inodes.remove(&id);
            }
        }
    }
}

/// A one-shot fault of the simulated disk, struck at the operation it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Trip {
    /// The next data or directory sync fails with an I/O error, and what it should have made
    /// durable stays volatile (a power loss later loses it).
    FailNextSync,
    /// The power is cut as the directory is about to be synced while a new TLog file's name is
    /// not durable yet: a rollover created the next file, which a crash may lose.
    CutBeforeNewTlogDirSync,
    /// The power is cut as the first data sync of a TLog file created since the trip was armed
    /// is about to run: a rollover's new file is named durably, its first entries are not.
    CutBeforeNewTlogDataSync,
    /// The power is cut as the ballot record's new copy is about to be renamed into place: it
    /// is written and synced under `ballot.part`, the old record still in place.
    CutBeforeBallotRename,
    /// The power is cut as the data sync of a head's new copy (`head.db.part`) is about to run:
    /// a collapse folded slots into its head and is flushing it; what it wrote is volatile.
    CutBeforeHeadSync,
    /// The power is cut as a collapse is about to remove a TLog file, after `after` removals
    /// since the trip was armed: the head is durable, some files are gone (volatile until the
    /// directory sync).
    CutBeforeTlogRemoval { after: u8 },
    /// The power is cut as the directory is about to be synced while the head's name is not
    /// durable: an adoption exchanged (or moved) a fetched head into place
    /// (`crate::head::adopt_head`); a crash now finds the node's old head.
    CutBeforeHeadDirSync,
    /// The power is cut as a TLog file's data is about to be synced: what was written since its
    /// last sync is volatile, and the crash that follows may keep a torn part of it
    /// ([`MemDir::crash`]). A write in flight when the power goes.
    CutBeforeTlogSync,
}

impl Trip {
    pub const ALL: [Trip; 9] = [
        Trip::FailNextSync,
        Trip::CutBeforeNewTlogDirSync,
        Trip::CutBeforeNewTlogDataSync,
        Trip::CutBeforeBallotRename,
        Trip::CutBeforeHeadSync,
        Trip::CutBeforeTlogRemoval { after: 0 },
        Trip::CutBeforeTlogRemoval { after: 1 },
        Trip::CutBeforeHeadDirSync,
        Trip::CutBeforeTlogSync,
    ];

    /// The name reports count it under.
    pub fn name(self) -> &'static str {
        match self {
            Trip::FailNextSync => "fsync-fails",
            Trip::CutBeforeNewTlogDirSync => "crash-at-rollover-before-dir-sync",
            Trip::CutBeforeNewTlogDataSync => "crash-at-rollover-before-first-sync",
            Trip::CutBeforeBallotRename => "crash-before-ballot-rename",
            Trip::CutBeforeHeadSync => "crash-in-collapse-before-head-sync",
            Trip::CutBeforeTlogRemoval { after: 0 } => "crash-in-collapse-before-removal",
            Trip::CutBeforeTlogRemoval { .. } => "crash-in-collapse-between-removals",
            Trip::CutBeforeHeadDirSync => "crash-in-adoption-before-head-sync",
            Trip::CutBeforeTlogSync => "crash-before-tlog-sync",
        }
    }
}

/// What an operation is, for the trips.
#[derive(Debug, Clone, Copy)]
enum Op<'a> {
    SyncData { tlog: bool, new_tlog: bool, head_part: bool },
    SyncDir,
    Rename { from: &'a str },
    Remove { name: &'a str },
}

fn is_tlog(name: &str) -> bool {
    name.ends_with(".tlog")
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

    /// How many fetched heads were put in place on this disk (step 1 of an adoption,
    /// `crate::head::adopt_head`), crashes or not: a count of operations, not of what survived.
    pub fn heads_taken(&self) -> u64 {
        self.disk().heads_taken
    }

    /// A power loss: un-synced names and bytes are lost. `torn_bytes_kept(unsynced_len)` says how
    /// many of each file's un-synced bytes survive (0 for a clean loss).
    pub fn crash(&self, mut torn_bytes_kept: impl FnMut(usize) -> usize) {
        let mut disk = self.disk();
        disk.names = disk.synced_names.clone();
        disk.unsynced_names.clear();
        disk.armed = None;
        disk.power_cut = false;
        let live: BTreeSet<u64> = disk.names.values().copied().collect();
        disk.inodes.retain(|id, _| live.contains(id));
        disk.head_parts.retain(|id| live.contains(id));
        for inode in disk.inodes.values_mut() {
            let unsynced = inode.data.len() - inode.synced_len;
            let kept = torn_bytes_kept(unsynced).min(unsynced);
            inode.truncate(inode.synced_len + kept);
            inode.synced_len = inode.data.len();
        }
        disk.unsynced_inodes.clear();
    }

    /// Flips one bit of a file at rest. Returns false if the file or offset does not exist.
    pub fn flip_bit(&self, name: &str, offset: usize, bit: u8) -> bool {
        let mut disk = self.disk();
        let Some(&id) = disk.names.get(name) else { return false };
        let inode = disk.inodes.get_mut(&id).expect("a named inode exists");
        match inode.bytes_mut().get_mut(offset) {
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
        inode.truncate(len);
        inode.synced_len = inode.synced_len.min(len);
        disk.note(id);
        true
    }

    /// Empties the whole disk (a wiped node).
    pub fn wipe(&self) {
        let mut disk = self.disk();
        disk.inodes.clear();
        disk.names.clear();
        disk.synced_names.clear();
        disk.unsynced_names.clear();
        disk.unsynced_inodes.clear();
        disk.head_parts.clear();
    }

    /// Makes every operation fail with `kind` (e.g. a full disk), or heals it with `None`.
    pub fn set_failing(&self, kind: Option<io::ErrorKind>) {
        self.disk().failing = kind;
    }

    /// Arms a one-shot fault (replacing any armed before), or disarms with `None`.
    pub fn arm(&self, trip: Option<Trip>) {
        let mut disk = self.disk();
        disk.armed = trip;
        if trip.is_some() {
            disk.new_tlogs.clear();
            disk.tlog_removals = 0;
        }
    }

    /// The trip armed and not struck yet.
    pub fn armed(&self) -> Option<Trip> {
        self.disk().armed
    }

    /// The trip that struck and was not taken yet.
    pub fn struck(&self) -> Option<Trip> {
        self.disk().struck
    }

    /// The trip that struck since the last call, if any.
    pub fn take_struck(&self) -> Option<Trip> {
        self.disk().struck.take()
    }

    /// Whether a trip cut the power (every operation fails until the crash).
    pub fn power_cut(&self) -> bool {
        self.disk().power_cut
    }

    /// A copy of a file's current bytes.
    pub fn contents(&self, name: &str) -> Option<Vec<u8>> {
        let disk = self.disk();
        disk.names.get(name).map(|id| disk.inodes[id].data.to_vec())
    }

    /// Replaces a file's contents durably (for building test fixtures).
    pub fn put(&self, name: &str, bytes: &[u8]) {
        let mut disk = self.disk();
        let id = disk.next_inode;
        disk.next_inode += 1;
        disk.inodes.insert(id, Inode { data: Arc::new(bytes.to_vec()), synced_len: bytes.len() });
        disk.names.insert(name.to_string(), id);
        disk.synced_names.insert(name.to_string(), id);
    }

    /// Whether a crash now would lose nothing: every byte and every name is synced.
    pub fn all_synced(&self) -> bool {
        let disk = self.disk();
        debug_assert_eq!(
            disk.unsynced_inodes.is_empty(),
            disk.inodes.values().all(|i| i.data.len() == i.synced_len)
        );
        disk.unsynced_names.is_empty() && disk.unsynced_inodes.is_empty()
    }

    /// A separate disk holding what a crash now would leave (no torn bytes): what is durable.
    /// The simulator checks against it that a node names only durable state to its peers.
    pub fn durable_copy(&self) -> MemDir {
        let disk = self.disk();
        let mut copy = Disk { next_inode: disk.next_inode, ..Disk::default() };
        for (name, id) in &disk.synced_names {
            let Some(inode) = disk.inodes.get(id) else { continue };
            let synced = inode.synced_len.min(inode.data.len());
            let data = if synced == inode.data.len() {
                // All of it is durable: shared, not copied.
                inode.data.clone()
            } else {
                Arc::new(inode.data[..synced].to_vec())
            };
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
    if disk.power_cut {
        return Err(io::Error::other("simulated power cut"));
    }
    match disk.failing {
        Some(kind) => Err(io::Error::new(kind, "simulated disk failure")),
        None => Ok(()),
    }
}

/// Checks an operation against the disk's state and its armed trip: an error if the disk fails
/// or the trip strikes now (then the operation does nothing).
fn check_op(disk: &mut Disk, op: Op<'_>) -> io::Result<()> {
    check(disk)?;
    let strikes = match (disk.armed, op) {
        (Some(Trip::FailNextSync), Op::SyncData { .. } | Op::SyncDir) => true,
        (Some(Trip::CutBeforeNewTlogDirSync), Op::SyncDir) => {
            disk.unsynced_names.iter().any(|n| is_tlog(n) && disk.names.contains_key(n))
        }
        (Some(Trip::CutBeforeNewTlogDataSync), Op::SyncData { new_tlog, .. }) => new_tlog,
        (Some(Trip::CutBeforeHeadDirSync), Op::SyncDir) => {
            disk.unsynced_names.contains(crate::head::HEAD_FILE)
        }
        (Some(Trip::CutBeforeHeadSync), Op::SyncData { head_part, .. }) => head_part,
        (Some(Trip::CutBeforeTlogSync), Op::SyncData { tlog, .. }) => tlog,
        (Some(Trip::CutBeforeTlogRemoval { after }), Op::Remove { name }) if is_tlog(name) => {
            let strikes = disk.tlog_removals >= after;
            disk.tlog_removals = disk.tlog_removals.saturating_add(1);
            strikes
        }
        (Some(Trip::CutBeforeBallotRename), Op::Rename { from }) => {
            from == format!("{}.part", super::ballot::BALLOT_FILE)
        }
        _ => false,
    };
    if !strikes {
        return Ok(());
    }
    let trip = disk.armed.take().expect("a trip strikes only when armed");
    disk.struck = Some(trip);
    if trip == Trip::FailNextSync {
        return Err(io::Error::other("simulated fsync failure (EIO)"));
    }
    disk.power_cut = true;
    Err(io::Error::other("simulated power cut"))
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
                inode.bytes_mut().extend_from_slice(bytes);
                disk.note(self.inode);
                Ok(())
            }
            // The file was removed (or lost in a crash) under an open handle.
            None => Err(io::Error::new(io::ErrorKind::NotFound, "file is gone")),
        }
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut disk = self.dir.disk();
        let new_tlog = disk.new_tlogs.contains(&self.inode);
        let head_part = disk.head_parts.contains(&self.inode);
        // Whether this file is a TLog matters only to the one trip that asks, and finding out
        // walks the directory (hundreds of files in a long run): asked only then.
        let tlog = disk.armed == Some(Trip::CutBeforeTlogSync)
            && disk.names.iter().any(|(name, id)| *id == self.inode && is_tlog(name));
        check_op(&mut disk, Op::SyncData { tlog, new_tlog, head_part })?;
        disk.new_tlogs.remove(&self.inode);
        disk.head_parts.remove(&self.inode);
        if let Some(inode) = disk.inodes.get_mut(&self.inode) {
            inode.synced_len = inode.data.len();
        }
        disk.unsynced_inodes.remove(&self.inode);
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

    fn exists(&self, name: &str) -> io::Result<bool> {
        let disk = self.disk();
        check(&disk)?;
        Ok(disk.names.contains_key(name))
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
        Ok(Box::new(Cursor::new(SharedBytes(disk.inodes[id].data.clone()))))
    }

    fn read_small(&self, name: &str, max: u64) -> io::Result<Option<Vec<u8>>> {
        let disk = self.disk();
        check(&disk)?;
        let Some(id) = disk.names.get(name) else { return Ok(None) };
        let data = &disk.inodes[id].data;
        Ok(Some(data[..data.len().min(max as usize)].to_vec()))
    }

    fn create(&self, name: &str) -> io::Result<Box<dyn LogFile>> {
        let mut disk = self.disk();
        check(&disk)?;
        let id = disk.next_inode;
        disk.next_inode += 1;
        disk.inodes.insert(id, Inode::default());
        if is_tlog(name) && disk.armed.is_some() {
            disk.new_tlogs.insert(id);
        }
        if name == crate::head::HEAD_PART_FILE {
            disk.head_parts.insert(id);
        }
        disk.unsynced_names.insert(name.to_string());
        if let Some(old) = disk.names.insert(name.to_string(), id) {
            if !disk.synced_names.values().any(|v| *v == old) {
                disk.inodes.remove(&old);
                disk.unsynced_inodes.remove(&old);
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
        check_op(&mut disk, Op::Rename { from })?;
        let id = disk.names.remove(from).ok_or_else(|| not_found(from))?;
        disk.names.insert(to.to_string(), id);
        if (from, to) == (crate::head::HEAD_INCOMING_FILE, crate::head::HEAD_FILE) {
            disk.heads_taken += 1;
        }
        disk.unsynced_names.insert(from.to_string());
        disk.unsynced_names.insert(to.to_string());
        Ok(())
    }

    fn exchange(&self, a: &str, b: &str) -> io::Result<()> {
        let mut disk = self.disk();
        check_op(&mut disk, Op::Rename { from: a })?;
        let ia = *disk.names.get(a).ok_or_else(|| not_found(a))?;
        let ib = *disk.names.get(b).ok_or_else(|| not_found(b))?;
        disk.names.insert(a.to_string(), ib);
        disk.names.insert(b.to_string(), ia);
        if (a, b) == (crate::head::HEAD_INCOMING_FILE, crate::head::HEAD_FILE) {
            disk.heads_taken += 1;
        }
        disk.unsynced_names.insert(a.to_string());
        disk.unsynced_names.insert(b.to_string());
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut disk = self.disk();
        check_op(&mut disk, Op::Remove { name })?;
        disk.names.remove(name).ok_or_else(|| not_found(name))?;
        disk.unsynced_names.insert(name.to_string());
        Ok(())
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        let mut disk = self.disk();
        check(&disk)?;
        let id = *disk.names.get(name).ok_or_else(|| not_found(name))?;
        let inode = disk.inodes.get_mut(&id).expect("a named inode exists");
        inode.truncate(len as usize);
        inode.synced_len = inode.data.len();
        disk.unsynced_inodes.remove(&id);
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut disk = self.disk();
        check_op(&mut disk, Op::SyncDir)?;
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
                disk.unsynced_inodes.remove(&id);
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

    /// The cut strikes at a TLog file's sync, not at another file's: the written bytes stay
    /// volatile, every later operation fails, and a crash may keep a torn part of them.
    #[test]
    fn a_cut_before_a_tlog_sync_leaves_a_tail_that_a_crash_tears() {
        let dir = MemDir::new("t");
        let mut other = dir.create("ballot").unwrap();
        let mut f = dir.create("000.tlog").unwrap();
        dir.sync_dir().unwrap();
        dir.arm(Some(Trip::CutBeforeTlogSync));
        other.append(b"b").unwrap();
        other.sync_data().unwrap();
        f.append(b"abcdef").unwrap();
        assert!(f.sync_data().is_err());
        assert_eq!(dir.take_struck(), Some(Trip::CutBeforeTlogSync));
        assert!(dir.power_cut());
        assert!(f.append(b"g").is_err(), "no write after the power is cut");
        dir.crash(|unsynced| unsynced / 2);
        assert_eq!(dir.contents("000.tlog").unwrap(), b"abc");
        assert_eq!(dir.contents("ballot").unwrap(), b"b");
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

    #[test]
    fn a_failed_sync_leaves_the_bytes_volatile_and_strikes_once() {
        let dir = MemDir::new("t");
        let mut f = dir.create("000.tlog").unwrap();
        dir.sync_dir().unwrap();
        f.append(b"abc").unwrap();
        dir.arm(Some(Trip::FailNextSync));
        assert!(f.sync_data().is_err());
        assert_eq!(dir.take_struck(), Some(Trip::FailNextSync));
        assert_eq!(dir.take_struck(), None);
        assert!(!dir.power_cut(), "a failed sync is no power cut");
        assert_eq!(dir.durable_copy().contents("000.tlog").unwrap(), b"");
        dir.crash(|_| 0);
        assert_eq!(dir.contents("000.tlog").unwrap(), b"", "the failed sync made nothing durable");
    }

    #[test]
    fn a_cut_at_a_rollover_fails_every_later_operation_until_the_crash() {
        let dir = MemDir::new("t");
        let mut f = dir.create("000.tlog").unwrap();
        f.append(b"abc").unwrap();
        f.sync_data().unwrap();
        dir.sync_dir().unwrap();
        dir.arm(Some(Trip::CutBeforeNewTlogDirSync));
        // A ballot record's directory sync does not strike: no new TLog file is unsynced.
        dir.create("ballot.part").unwrap();
        dir.sync_dir().unwrap();
        assert_eq!(dir.armed(), Some(Trip::CutBeforeNewTlogDirSync));
        let mut g = dir.create("001.tlog").unwrap();
        assert!(dir.sync_dir().is_err());
        assert!(dir.power_cut());
        assert!(g.append(b"x").is_err());
        dir.crash(|_| 0);
        assert!(!dir.power_cut());
        assert!(dir.contents("001.tlog").is_none());
        assert_eq!(dir.contents("000.tlog").unwrap(), b"abc");

        dir.arm(Some(Trip::CutBeforeNewTlogDataSync));
        let mut h = dir.create("001.tlog").unwrap();
        dir.sync_dir().unwrap();
        h.append(b"y").unwrap();
        assert!(h.sync_data().is_err());
        assert_eq!(dir.take_struck(), Some(Trip::CutBeforeNewTlogDataSync));
        dir.crash(|_| 0);
        assert_eq!(dir.contents("001.tlog").unwrap(), b"");
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
