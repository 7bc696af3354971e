//! A file system in user space (FUSE) for crash tests, after the idea of Jepsen's LazyFS: real
//! code (the node's TLog writer, the sled store and its threads) runs on it through `std::fs`,
//! and the test can cut the power at any moment. The file system keeps, for every file, what its
//! last successful fsync made durable and the writes since; for every directory, the entries its
//! last fsync made durable. A power cut throws away everything that is not durable:
//!
//! - a file goes back to its content at its last fsync (fsync and fdatasync alike), or, when the
//!   cut tears, to that content plus a random prefix of the writes since (the last one of them
//!   possibly cut short), the random choice made by a seeded generator;
//! - a directory goes back to the entries of its last fsync: a new name, a rename and an unlink
//!   are durable only once their directory is fsynced (strict, as ext4 without a journal); a
//!   file or directory that no durable entry reaches is gone.
//!
//! An fsync can be made to fail ([`LossyFs::fail_next_fsync`]): it returns EIO and the writes it
//! was to make durable never will be, although reads still see them (as Linux does, which marks
//! the pages clean after a failed write-back); a later fsync makes durable only the writes after
//! the failure.
//!
//! Everything lives in memory (test sizes). After a cut the file system is dead: every operation
//! fails with EIO until [`LossyFs::power_on`], and the file handles opened before the cut stay
//! dead for good, so that the threads of the crashed code cannot write into the next life.
//!
//! Mounting needs /dev/fuse and the right to mount: as root, `mount(2)` is called directly;
//! otherwise fuser runs `fusermount3` (Debian's `fuse3`). [`LossyFs::mount`] returns the error
//! when it cannot, so that tests can say so and skip.

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// The kernel caches no attribute and no name: every look-up asks the file system, so that what
/// the code sees after a power cut is what the cut left.
const TTL: Duration = Duration::ZERO;

/// One change to a file's bytes since its last fsync.
#[derive(Debug, Clone)]
enum Op {
    Write { offset: u64, data: Vec<u8> },
    Truncate(u64),
}

fn apply(bytes: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write { offset, data } => {
            let start = *offset as usize;
            let end = start + data.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[start..end].copy_from_slice(data);
        }
        Op::Truncate(len) => bytes.resize(*len as usize, 0),
    }
}

#[derive(Debug, Default)]
struct FileNode {
    /// What reads see.
    data: Vec<u8>,
    /// What a power cut leaves (without tearing).
    durable: Vec<u8>,
    /// The changes since the last fsync, in order: `durable` with all of them applied is `data`,
    /// unless an fsync failed in between.
    pending: Vec<Op>,
}

#[derive(Debug, Default)]
struct DirNode {
    entries: BTreeMap<OsString, u64>,
    durable: BTreeMap<OsString, u64>,
}

#[derive(Debug)]
enum Kind {
    File(FileNode),
    Dir(DirNode),
}

#[derive(Debug)]
struct Node {
    kind: Kind,
    perm: u16,
    mtime: SystemTime,
}

#[derive(Debug)]
struct Handle {
    ino: u64,
    epoch: u64,
    append: bool,
    /// A directory's entries as its first `readdir` (offset 0) saw them: the later pages come
    /// from this copy, so that an entry made or removed meanwhile cannot shift the offsets and
    /// list another entry twice (a collapse once removed a TLog file twice that way).
    listing: Vec<(u64, FileType, OsString)>,
}

/// What the file system has counted, for tests to check that the faults were exercised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub writes: u64,
    pub fsyncs: u64,
    pub dir_fsyncs: u64,
    pub failed_fsyncs: u64,
    pub power_cuts: u64,
    /// Unsynced bytes thrown away by power cuts.
    pub bytes_lost: u64,
    /// Unsynced bytes that survived a power cut because it tore.
    pub bytes_torn_kept: u64,
    /// Bits flipped at rest ([`LossyFs::flip_bit`]).
    pub bits_flipped: u64,
}

/// A bit flipped at rest by [`LossyFs::flip_random_bit`]: where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flipped {
    /// The file, relative to the mount point.
    pub path: PathBuf,
    pub offset: u64,
    pub bit: u8,
    /// The file's durable length.
    pub file_bytes: u64,
}

#[derive(Debug)]
struct State {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    handles: HashMap<u64, Handle>,
    next_fh: u64,
    epoch: u64,
    dead: bool,
    fail_fsyncs: u32,
    uid: u32,
    gid: u32,
    stats: Stats,
}

type Res<T> = Result<T, Errno>;

impl State {
    fn new() -> State {
        let mut nodes = HashMap::new();
        let root = Node { kind: Kind::Dir(DirNode::default()), perm: 0o755, mtime: now() };
        nodes.insert(1, root);
        // SAFETY: getuid and getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        State {
            nodes,
            next_ino: 2,
            handles: HashMap::new(),
            next_fh: 1,
            epoch: 0,
            dead: false,
            fail_fsyncs: 0,
            uid,
            gid,
            stats: Stats::default(),
        }
    }

    fn alive(&self) -> Res<()> {
        if self.dead {
            Err(Errno::EIO)
        } else {
            Ok(())
        }
    }

    fn node(&self, ino: u64) -> Res<&Node> {
        self.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Res<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn dir(&self, ino: u64) -> Res<&DirNode> {
        match &self.node(ino)?.kind {
            Kind::Dir(d) => Ok(d),
            Kind::File(_) => Err(Errno::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Res<&mut DirNode> {
        match &mut self.node_mut(ino)?.kind {
            Kind::Dir(d) => Ok(d),
            Kind::File(_) => Err(Errno::ENOTDIR),
        }
    }

    fn file_mut(&mut self, ino: u64) -> Res<&mut FileNode> {
        match &mut self.node_mut(ino)?.kind {
            Kind::File(f) => Ok(f),
            Kind::Dir(_) => Err(Errno::EISDIR),
        }
    }

    /// A handle opened in this life (a handle from before a power cut is dead).
    fn handle(&self, fh: FileHandle) -> Res<&Handle> {
        self.alive()?;
        let h = self.handles.get(&fh.0).ok_or(Errno::EBADF)?;
        if h.epoch != self.epoch {
            return Err(Errno::EIO);
        }
        Ok(h)
    }

    fn attr(&self, ino: u64) -> Res<FileAttr> {
        let node = self.node(ino)?;
        let (kind, size, nlink) = match &node.kind {
            Kind::File(f) => (FileType::RegularFile, f.data.len() as u64, 1),
            Kind::Dir(_) => (FileType::Directory, 4096, 2),
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: node.mtime,
            mtime: node.mtime,
            ctime: node.mtime,
            crtime: node.mtime,
            kind,
            perm: node.perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn lookup(&self, parent: u64, name: &OsStr) -> Res<FileAttr> {
        self.alive()?;
        let ino = *self.dir(parent)?.entries.get(name).ok_or(Errno::ENOENT)?;
        self.attr(ino)
    }

    fn new_node(&mut self, parent: u64, name: &OsStr, kind: Kind, perm: u16) -> Res<u64> {
        self.alive()?;
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, Node { kind, perm, mtime: now() });
        self.dir_mut(parent)?.entries.insert(name.to_owned(), ino);
        Ok(ino)
    }

    fn open_handle(&mut self, ino: u64, flags: i32) -> Res<FileHandle> {
        let fh = self.next_fh;
        self.next_fh += 1;
        let append = flags & libc::O_APPEND != 0;
        self.handles.insert(fh, Handle { ino, epoch: self.epoch, append, listing: Vec::new() });
        Ok(FileHandle(fh))
    }

    fn truncate(&mut self, ino: u64, len: u64) -> Res<()> {
        let file = self.file_mut(ino)?;
        let op = Op::Truncate(len);
        apply(&mut file.data, &op);
        file.pending.push(op);
        self.node_mut(ino)?.mtime = now();
        Ok(())
    }

    fn write(&mut self, fh: FileHandle, offset: u64, data: &[u8]) -> Res<u32> {
        let (ino, append) = {
            let h = self.handle(fh)?;
            (h.ino, h.append)
        };
        let file = self.file_mut(ino)?;
        let offset = if append { file.data.len() as u64 } else { offset };
        let op = Op::Write { offset, data: data.to_vec() };
        apply(&mut file.data, &op);
        file.pending.push(op);
        self.node_mut(ino)?.mtime = now();
        self.stats.writes += 1;
        Ok(data.len() as u32)
    }

    /// Consumes one injected fsync failure, if any is armed.
    fn fsync_fails(&mut self) -> bool {
        if self.fail_fsyncs > 0 {
            self.fail_fsyncs -= 1;
            self.stats.failed_fsyncs += 1;
            true
        } else {
            false
        }
    }

    fn fsync(&mut self, ino: u64) -> Res<()> {
        self.alive()?;
        self.stats.fsyncs += 1;
        let fails = self.fsync_fails();
        let file = self.file_mut(ino)?;
        let pending = std::mem::take(&mut file.pending);
        if fails {
            // The write-back failed: those writes never reach the disk.
            return Err(Errno::EIO);
        }
        for op in &pending {
            apply(&mut file.durable, op);
        }
        Ok(())
    }

    fn fsyncdir(&mut self, ino: u64) -> Res<()> {
        self.alive()?;
        self.stats.dir_fsyncs += 1;
        let fails = self.fsync_fails();
        let dir = self.dir_mut(ino)?;
        if fails {
            return Err(Errno::EIO);
        }
        dir.durable = dir.entries.clone();
        Ok(())
    }

    fn unlink(&mut self, parent: u64, name: &OsStr, want_dir: bool) -> Res<()> {
        self.alive()?;
        let ino = *self.dir(parent)?.entries.get(name).ok_or(Errno::ENOENT)?;
        match (&self.node(ino)?.kind, want_dir) {
            (Kind::Dir(_), false) => return Err(Errno::EISDIR),
            (Kind::File(_), true) => return Err(Errno::ENOTDIR),
            (Kind::Dir(d), true) if !d.entries.is_empty() => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        self.dir_mut(parent)?.entries.remove(name);
        Ok(())
    }

    fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> Res<()> {
        self.alive()?;
        let from = *self.dir(parent)?.entries.get(name).ok_or(Errno::ENOENT)?;
        let to = self.dir(new_parent)?.entries.get(new_name).copied();
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            let to = to.ok_or(Errno::ENOENT)?;
            self.dir_mut(parent)?.entries.insert(name.to_owned(), to);
            self.dir_mut(new_parent)?.entries.insert(new_name.to_owned(), from);
            return Ok(());
        }
        if let Some(to) = to {
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(Errno::EEXIST);
            }
            if to == from {
                return Ok(());
            }
            match (&self.node(from)?.kind, &self.node(to)?.kind) {
                (Kind::File(_), Kind::Dir(_)) => return Err(Errno::EISDIR),
                (Kind::Dir(_), Kind::File(_)) => return Err(Errno::ENOTDIR),
                (Kind::Dir(_), Kind::Dir(d)) if !d.entries.is_empty() => {
                    return Err(Errno::ENOTEMPTY)
                }
                _ => {}
            }
        }
        self.dir_mut(parent)?.entries.remove(name);
        self.dir_mut(new_parent)?.entries.insert(new_name.to_owned(), from);
        Ok(())
    }

    /// The inode `path` (relative to the mount point, through the current entries) names.
    fn resolve(&self, path: &Path) -> Res<u64> {
        let mut ino = 1u64;
        for part in path.components() {
            match part {
                std::path::Component::Normal(name) => {
                    ino = *self.dir(ino)?.entries.get(name).ok_or(Errno::ENOENT)?;
                }
                std::path::Component::CurDir => {}
                _ => return Err(Errno::EINVAL),
            }
        }
        Ok(ino)
    }

    /// Flips bit `bit` of byte `offset` of the file `ino`, on the disk (its durable content) and
    /// in what reads see; a pending write that covers the byte later still writes it whole.
    fn flip_bit(&mut self, ino: u64, offset: u64, bit: u8) -> Res<()> {
        if bit > 7 {
            return Err(Errno::EINVAL);
        }
        let file = self.file_mut(ino)?;
        let at = usize::try_from(offset).map_err(|_| Errno::EINVAL)?;
        if at >= file.durable.len() {
            return Err(Errno::EINVAL);
        }
        file.durable[at] ^= 1 << bit;
        if let Some(b) = file.data.get_mut(at) {
            *b ^= 1 << bit;
        }
        self.stats.bits_flipped += 1;
        Ok(())
    }

    /// Every file under the directory `ino` with durable bytes, with its path below `prefix`,
    /// sorted by path (so that a seed picks the same file whatever the hash order).
    fn durable_files(&self, ino: u64, prefix: &Path, out: &mut Vec<(PathBuf, u64, u64)>) {
        let Ok(dir) = self.dir(ino) else { return };
        for (name, &child) in &dir.durable {
            let path = prefix.join(name);
            match self.nodes.get(&child).map(|n| &n.kind) {
                Some(Kind::Dir(_)) => self.durable_files(child, &path, out),
                Some(Kind::File(f)) if !f.durable.is_empty() => {
                    out.push((path, child, f.durable.len() as u64))
                }
                _ => {}
            }
        }
        out.sort();
    }

    /// Throws away everything that is not durable, tearing with `rng` if given, and kills the
    /// file system until the power comes back.
    fn power_cut(&mut self, mut rng: Option<rand_chacha::ChaCha8Rng>) {
        self.stats.power_cuts += 1;
        let mut inos: Vec<u64> = self.nodes.keys().copied().collect();
        inos.sort_unstable(); // a seed must give the same tears whatever the hash order
        for ino in inos {
            let node = self.nodes.get_mut(&ino).expect("listed");
            match &mut node.kind {
                Kind::Dir(d) => d.entries = d.durable.clone(),
                Kind::File(f) => {
                    let pending = std::mem::take(&mut f.pending);
                    let unsynced: u64 = pending
                        .iter()
                        .map(|op| match op {
                            Op::Write { data, .. } => data.len() as u64,
                            Op::Truncate(_) => 0,
                        })
                        .sum();
                    let mut kept = 0u64;
                    if let Some(rng) = rng.as_mut().filter(|_| !pending.is_empty()) {
                        // A prefix of the writes since the last fsync reached the disk, the
                        // last of them possibly cut short.
                        let whole = rng.gen_range(0..=pending.len());
                        for op in &pending[..whole] {
                            apply(&mut f.durable, op);
                            if let Op::Write { data, .. } = op {
                                kept += data.len() as u64;
                            }
                        }
                        if let Some(Op::Write { offset, data }) = pending.get(whole) {
                            let part = rng.gen_range(0..=data.len());
                            let op = Op::Write { offset: *offset, data: data[..part].to_vec() };
                            apply(&mut f.durable, &op);
                            kept += part as u64;
                        }
                    }
                    self.stats.bytes_lost += unsynced - kept;
                    self.stats.bytes_torn_kept += kept;
                    f.data = f.durable.clone();
                }
            }
        }
        // What no durable entry reaches is gone.
        let mut reachable = HashSet::from([1u64]);
        let mut todo = vec![1u64];
        while let Some(ino) = todo.pop() {
            if let Some(Node { kind: Kind::Dir(d), .. }) = self.nodes.get(&ino) {
                for &child in d.entries.values() {
                    if reachable.insert(child) {
                        todo.push(child);
                    }
                }
            }
        }
        self.nodes.retain(|ino, _| reachable.contains(ino));
        self.handles.clear();
        self.epoch += 1;
        self.dead = true;
    }
}

fn now() -> SystemTime {
    SystemTime::now()
}

/// The file system as fuser serves it; the test holds the same state through [`LossyFs`].
struct Served(Arc<Mutex<State>>);

impl Served {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new file or directory `name` in `parent` with the permission bits of `mode`.
    fn new_entry(&self, parent: INodeNo, name: &OsStr, kind: Kind, mode: u32, reply: ReplyEntry) {
        let mut st = self.state();
        match st.new_node(parent.0, name, kind, (mode & 0o7777) as u16).and_then(|ino| st.attr(ino))
        {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }
}

impl Filesystem for Served {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.state().lookup(parent.0, name) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let st = self.state();
        // The root answers even while the power is off, so that unmounting never needs it on.
        match st.alive().or(if ino.0 == 1 { Ok(()) } else { Err(Errno::EIO) }) {
            Ok(()) => match st.attr(ino.0) {
                Ok(attr) => reply.attr(&TTL, &attr),
                Err(e) => reply.error(e),
            },
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut st = self.state();
        let result = (|| {
            st.alive()?;
            if let Some(fh) = fh {
                st.handle(fh)?;
            }
            if let Some(mode) = mode {
                st.node_mut(ino.0)?.perm = (mode & 0o7777) as u16;
            }
            if let Some(size) = size {
                st.truncate(ino.0, size)?;
            }
            st.attr(ino.0)
        })();
        match result {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        self.new_entry(parent, name, Kind::File(FileNode::default()), mode & !umask, reply);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.new_entry(parent, name, Kind::Dir(DirNode::default()), mode & !umask, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.state().unlink(parent.0, name, false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.state().unlink(parent.0, name, true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        match self.state().rename(parent.0, name, newparent.0, newname, flags) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut st = self.state();
        let result = (|| {
            st.alive()?;
            if let Kind::Dir(_) = st.node(ino.0)?.kind {
                return Err(Errno::EISDIR);
            }
            if flags.0 & libc::O_TRUNC != 0 && flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
                st.truncate(ino.0, 0)?;
            }
            st.open_handle(ino.0, flags.0)
        })();
        match result {
            // Direct I/O: no page cache between the code and this file system.
            Ok(fh) => reply.opened(fh, FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut st = self.state();
        let perm = (mode & !umask & 0o7777) as u16;
        let result = (|| {
            let ino = st.new_node(parent.0, name, Kind::File(FileNode::default()), perm)?;
            let fh = st.open_handle(ino, flags)?;
            Ok((st.attr(ino)?, fh))
        })();
        match result {
            Ok((attr, fh)) => {
                reply.created(&TTL, &attr, Generation(0), fh, FopenFlags::FOPEN_DIRECT_IO)
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut st = self.state();
        let result = (|| {
            let ino = st.handle(fh)?.ino;
            let file = st.file_mut(ino)?;
            let start = (offset as usize).min(file.data.len());
            let end = (start + size as usize).min(file.data.len());
            Ok(file.data[start..end].to_vec())
        })();
        match result {
            Ok(bytes) => reply.data(&bytes),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.state().write(fh, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.state().handles.remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.state();
        match st.handle(fh).map(|h| h.ino).and_then(|ino| st.fsync(ino)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut st = self.state();
        match st
            .alive()
            .and_then(|()| st.dir(ino.0).map(|_| ()))
            .and_then(|()| st.open_handle(ino.0, 0))
        {
            Ok(fh) => reply.opened(fh, FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut st = self.state();
        let result = (|| {
            st.handle(fh)?;
            if offset == 0 {
                let dir = st.dir(ino.0)?;
                let mut list = vec![
                    (ino.0, FileType::Directory, OsString::from(".")),
                    (ino.0, FileType::Directory, OsString::from("..")),
                ];
                for (name, &child) in &dir.entries {
                    let kind = match st.node(child)?.kind {
                        Kind::Dir(_) => FileType::Directory,
                        Kind::File(_) => FileType::RegularFile,
                    };
                    list.push((child, kind, name.clone()));
                }
                st.handles.get_mut(&fh.0).ok_or(Errno::EBADF)?.listing = list;
            }
            Ok(st.handles.get(&fh.0).ok_or(Errno::EBADF)?.listing.clone())
        })();
        match result {
            Ok(list) => {
                for (i, (child, kind, name)) in list.into_iter().enumerate().skip(offset as usize) {
                    if reply.add(INodeNo(child), (i + 1) as u64, kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.state().handles.remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.state();
        match st.handle(fh).map(|_| ()).and_then(|()| st.fsyncdir(ino.0)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(1 << 24, 1 << 23, 1 << 23, 1 << 20, 1 << 19, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }
}

/// A mounted lossy file system. Dropping it unmounts it (bounded: a mount that cannot be
/// unmounted cleanly is detached and its connection aborted).
pub struct LossyFs {
    state: Arc<Mutex<State>>,
    mountpoint: PathBuf,
    session: Option<fuser::BackgroundSession>,
    /// The FUSE connection's number (the mount's device minor), to abort it if need be.
    connection: Option<u32>,
}

impl LossyFs {
    /// Mounts an empty file system on `mountpoint` (an existing empty directory).
    pub fn mount(mountpoint: &Path) -> io::Result<LossyFs> {
        if !Path::new("/dev/fuse").exists() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "/dev/fuse is absent"));
        }
        let state = Arc::new(Mutex::new(State::new()));
        let mut config = Config::default();
        config.mount_options =
            vec![MountOption::FSName("lossyfs".into()), MountOption::Subtype("lossyfs".into())];
        let session = fuser::spawn_mount(Served(state.clone()), mountpoint, &config)?;
        let connection = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(mountpoint).ok().map(|m| libc::minor(m.dev()))
        };
        Ok(LossyFs {
            state,
            mountpoint: mountpoint.to_path_buf(),
            session: Some(session),
            connection,
        })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cuts the power: everything not durable is gone (see the crate's documentation). With a
    /// seed, the cut tears: each file keeps a random prefix of its unsynced writes. Every
    /// operation fails with EIO until [`LossyFs::power_on`].
    pub fn power_cut(&self, tear_seed: Option<u64>) {
        let rng = tear_seed.map(rand_chacha::ChaCha8Rng::seed_from_u64);
        self.state().power_cut(rng);
    }

    /// Makes everything durable, as sync(2) does on a disk that honours it: every file's
    /// writes and every directory's entries.
    pub fn sync_everything(&self) {
        let mut st = self.state();
        for node in st.nodes.values_mut() {
            match &mut node.kind {
                Kind::File(f) => {
                    for op in std::mem::take(&mut f.pending) {
                        apply(&mut f.durable, &op);
                    }
                }
                Kind::Dir(d) => d.durable = d.entries.clone(),
            }
        }
    }

    /// Bit rot at rest: flips bit `bit` (0 to 7) of byte `offset` of the file at `path`
    /// (relative to the mount point) on the disk, so in what reads see too, and for good (a
    /// power cut keeps it). The byte must be durable; InvalidInput otherwise.
    pub fn flip_bit(&self, path: &Path, offset: u64, bit: u8) -> io::Result<()> {
        let mut st = self.state();
        let ino = st.resolve(path).map_err(|e| errno_error(e, path))?;
        st.flip_bit(ino, offset, bit).map_err(|e| errno_error(e, path))
    }

    /// Flips one bit, chosen by `seed`, of one of the durable files under the directory `dir`
    /// (relative to the mount point; `""` for all) whose path `pick` accepts: a file with equal
    /// chances, then a byte of its durable content and a bit. None when no file qualifies.
    pub fn flip_random_bit(
        &self,
        dir: &Path,
        seed: u64,
        pick: impl Fn(&Path) -> bool,
    ) -> io::Result<Option<Flipped>> {
        let mut st = self.state();
        let top = st.resolve(dir).map_err(|e| errno_error(e, dir))?;
        let mut files = Vec::new();
        st.durable_files(top, dir, &mut files);
        files.retain(|(path, _, _)| pick(path));
        if files.is_empty() {
            return Ok(None);
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let (path, ino, len) = files.swap_remove(rng.gen_range(0..files.len()));
        let offset = rng.gen_range(0..len);
        let bit = rng.gen_range(0..8u8);
        st.flip_bit(ino, offset, bit).map_err(|e| errno_error(e, &path))?;
        Ok(Some(Flipped { path, offset, bit, file_bytes: len }))
    }

    /// Brings the power back: the file system serves what the cut left; handles opened before
    /// the cut stay dead.
    pub fn power_on(&self) {
        let mut st = self.state();
        st.dead = false;
        st.fail_fsyncs = 0;
    }

    /// The next fsync or directory fsync fails with EIO and loses the writes it was to make
    /// durable.
    pub fn fail_next_fsync(&self) {
        self.state().fail_fsyncs += 1;
    }

    /// Whether an armed fsync failure is still waiting for its fsync.
    pub fn fsync_failure_armed(&self) -> bool {
        self.state().fail_fsyncs > 0
    }

    pub fn stats(&self) -> Stats {
        self.state().stats.clone()
    }

    /// Unmounts, reporting an unmount that failed.
    pub fn unmount(mut self) -> io::Result<()> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> io::Result<()> {
        let Some(session) = self.session.take() else { return Ok(()) };
        // The power comes back so that the kernel's last requests are answered.
        self.state().dead = false;
        let c = std::ffi::CString::new(self.mountpoint.as_os_str().as_encoded_bytes())
            .map_err(io::Error::other)?;
        // Files still open (a dropped store's threads closing theirs) make it busy for a moment:
        // retry for up to 10 s before the forced path below.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut unmounted = false;
        loop {
            // SAFETY: a valid C string; the result is checked.
            if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
                unmounted = true;
                break;
            }
            let busy = io::Error::last_os_error().raw_os_error() == Some(libc::EBUSY);
            if !busy || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Unmounted: the session thread ends as the kernel closes the connection.
            let _ =
                done_tx.send(if unmounted { session.join() } else { session.umount_and_join() });
        });
        match done_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(()),
            other => {
                // Busy or stuck: detach the mount and abort the connection so that the session
                // thread ends.
                // SAFETY: a valid C string; a failure is reported by the return value only.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
                if let Some(n) = self.connection {
                    abort_connection(n);
                }
                let _ = done_rx.recv_timeout(Duration::from_secs(10));
                Err(match other {
                    Ok(Err(e)) => e,
                    _ => io::Error::new(io::ErrorKind::TimedOut, "unmounting took over 10 s"),
                })
            }
        }
    }
}

fn errno_error(e: Errno, path: &Path) -> io::Error {
    let os = io::Error::from_raw_os_error(e.code());
    io::Error::new(os.kind(), format!("{}: {os}", path.display()))
}

/// Aborts a FUSE connection through fusectl (mounted first if it is not), so that every request
/// waiting on it fails and the session thread ends.
fn abort_connection(n: u32) {
    let dir = "/sys/fs/fuse/connections";
    if !Path::new(&format!("{dir}/{n}")).exists() {
        let c = |s: &str| std::ffi::CString::new(s).expect("no NUL");
        let (src, target, kind) = (c("fusectl"), c(dir), c("fusectl"));
        // SAFETY: valid C strings; a failure only leaves the connection as it was.
        unsafe { libc::mount(src.as_ptr(), target.as_ptr(), kind.as_ptr(), 0, std::ptr::null()) };
    }
    let _ = std::fs::write(format!("{dir}/{n}/abort"), "1");
}

impl Drop for LossyFs {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_inner() {
            eprintln!("lossyfs: unmounting {} failed: {e}", self.mountpoint.display());
        }
    }
}
