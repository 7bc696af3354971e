//! The directory/file seam under the TLog.
//!
//! Every file operation of the TLog goes through [`LogDir`], so that the simulator can put a disk
//! under it that loses un-fsynced bytes, tears writes and flips bits at rest ([`super::MemDir`]),
//! while production uses the real file system ([`FsDir`]). The interface is deliberately small:
//! list, read, append with an explicit data sync, rename, remove, truncate, and a directory sync.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// A file open for appending. Bytes written are not durable until [`LogFile::sync_data`] returns.
pub trait LogFile: Send {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes every byte appended so far durable (fdatasync).
    fn sync_data(&mut self) -> io::Result<()>;
}

/// A directory of TLog files.
pub trait LogDir: Send + Sync {
    /// Where this directory is, for messages.
    fn location(&self) -> String;
    /// The names of the regular files in the directory, in no particular order.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Whether `name` is one of [`LogDir::list`]'s names (a simulated disk answers without
    /// listing the whole directory).
    fn exists(&self, name: &str) -> io::Result<bool> {
        Ok(self.list()?.iter().any(|n| n == name))
    }
    /// The first `max` bytes of a small file, or `None` when there is no such file: one look
    /// at the directory where [`LogDir::exists`] and [`LogDir::open_read`] take two (the
    /// simulator reads a node's ballot record this way at every Promise and Accepted it sends).
    fn read_small(&self, name: &str, max: u64) -> io::Result<Option<Vec<u8>>>;
    /// The current length of a file.
    fn file_len(&self, name: &str) -> io::Result<u64>;
    /// Opens a file for reading from the start.
    fn open_read(&self, name: &str) -> io::Result<Box<dyn Read + Send>>;
    /// Creates (or empties) a file and opens it for appending.
    fn create(&self, name: &str) -> io::Result<Box<dyn LogFile>>;
    /// Opens an existing file for appending at its end.
    fn open_append(&self, name: &str) -> io::Result<Box<dyn LogFile>>;
    /// Renames atomically (replacing `to` if it exists).
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Swaps the names `a` and `b` (both must exist) in one atomic step, durable once the
    /// directory is synced: adopting a fetched head puts it in place of the node's own
    /// (`crate::head::adopt_head`). A directory that cannot do it says so (`Unsupported`).
    fn exchange(&self, a: &str, b: &str) -> io::Result<()> {
        let _ = (a, b);
        Err(io::Error::new(io::ErrorKind::Unsupported, "this directory cannot swap two names"))
    }
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Cuts a file to `len` bytes and makes that durable.
    fn truncate(&self, name: &str, len: u64) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self) -> io::Result<()>;
    /// A path for a file, for messages.
    fn path_of(&self, name: &str) -> String {
        format!("{}/{}", self.location().trim_end_matches('/'), name)
    }
}

/// The real file system.
#[derive(Debug, Clone)]
pub struct FsDir {
    root: PathBuf,
}

impl FsDir {
    /// Uses an existing directory.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<FsDir> {
        let root = root.into();
        let meta = fs::metadata(&root)?;
        if !meta.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, "not a directory"));
        }
        Ok(FsDir { root })
    }

    /// Creates the directory (and its parents) if needed.
    pub fn create_all(root: impl Into<PathBuf>) -> io::Result<FsDir> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        Ok(FsDir { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

struct FsFile(File);

impl LogFile for FsFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl LogDir for FsDir {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Ok(name) = entry.file_name().into_string() {
                    names.push(name);
                }
            }
        }
        Ok(names)
    }

    fn file_len(&self, name: &str) -> io::Result<u64> {
        Ok(fs::metadata(self.path(name))?.len())
    }

    fn open_read(&self, name: &str) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(File::open(self.path(name))?))
    }

    fn read_small(&self, name: &str, max: u64) -> io::Result<Option<Vec<u8>>> {
        let file = match File::open(self.path(name)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut bytes = Vec::new();
        file.take(max).read_to_end(&mut bytes)?;
        Ok(Some(bytes))
    }

    fn create(&self, name: &str) -> io::Result<Box<dyn LogFile>> {
        let f = OpenOptions::new().create(true).write(true).truncate(true).open(self.path(name))?;
        Ok(Box::new(FsFile(f)))
    }

    fn open_append(&self, name: &str) -> io::Result<Box<dyn LogFile>> {
        let f = OpenOptions::new().append(true).open(self.path(name))?;
        Ok(Box::new(FsFile(f)))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        fs::rename(self.path(from), self.path(to))
    }

    fn exchange(&self, a: &str, b: &str) -> io::Result<()> {
        crate::head::exchange(&self.path(a), &self.path(b))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.path(name))
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        let f = OpenOptions::new().write(true).open(self.path(name))?;
        f.set_len(len)?;
        f.sync_all()
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.root)?.sync_all()
    }

    fn path_of(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::MemDir;

    /// `read_small` on `dir`: the first `max` bytes, the whole of a shorter file, and `None`
    /// (not an error) for a file that is not there.
    fn reads_small_files(dir: &dyn LogDir) {
        let mut f = dir.create("ballot").unwrap();
        f.append(b"0123456789").unwrap();
        f.sync_data().unwrap();
        assert_eq!(dir.read_small("ballot", 4).unwrap().as_deref(), Some(&b"0123"[..]));
        assert_eq!(dir.read_small("ballot", 64).unwrap().as_deref(), Some(&b"0123456789"[..]));
        assert_eq!(dir.read_small("absent", 64).unwrap(), None);
    }

    #[test]
    fn both_directories_read_a_small_file_and_say_none_for_an_absent_one() {
        let root = tempfile::tempdir().unwrap();
        reads_small_files(&FsDir::open(root.path()).unwrap());
        reads_small_files(&MemDir::new("t"));
    }
}
