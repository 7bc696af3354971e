//! Sealed-file archives.
//!
//! `.tlx`: the llio string "snappy", then chunks of `int64 last_i_in_chunk | string block`, where
//! each block is a raw snappy compression of about 2 MiB of whole entries. `.tlf`: a bzip2
//! stream of the entries (read only). Both are read as one uncompressed entry stream, so the
//! scanner and every check work on archives exactly as on plain files.
//!
//! Compressing a file never loses it: the archive is written as `NNN.tlx.part`, synced, renamed,
//! the directory synced, and only then is the plain file removed.

use super::dir::LogDir;
use super::entry::{EntryStream, Next};
use super::error::TlogError;
use super::files::{FileKind, TlogFile};
use super::reader::damaged_file;
use crate::llio::{Put, Reader};
use std::io::{self, Read};

/// The header string of a `.tlx`.
const TLX_HEADER: &[u8] = b"snappy";
/// Raw bytes gathered before a chunk is compressed.
pub const TLX_CHUNK_BYTES: usize = 2 * 1024 * 1024;
/// No honest chunk is larger than this, compressed or not.
const TLX_CHUNK_BYTES_MAX: usize = 64 * 1024 * 1024;

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Reads a `.tlx` as the stream of entries it holds.
pub struct TlxReader<R> {
    inner: R,
    block: Vec<u8>,
    pos: usize,
    /// Offset in the compressed file, for messages.
    file_offset: u64,
    header_read: bool,
}

impl<R: Read> TlxReader<R> {
    pub fn new(inner: R) -> Self {
        TlxReader { inner, block: Vec::new(), pos: 0, file_offset: 0, header_read: false }
    }

    fn read_exact_counted(&mut self, buf: &mut [u8], what: &str) -> io::Result<bool> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => {
                    return Err(invalid(format!(
                        "archive ends inside the {what} at offset {}",
                        self.file_offset
                    )))
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.file_offset += buf.len() as u64;
        Ok(true)
    }

    /// Loads the next chunk; false at the end of the archive.
    fn next_chunk(&mut self) -> io::Result<bool> {
        if !self.header_read {
            let mut h = [0u8; 4 + TLX_HEADER.len()];
            if !self.read_exact_counted(&mut h, "header")? || &h[4..] != TLX_HEADER {
                return Err(invalid("not a .tlx archive: no \"snappy\" header".into()));
            }
            self.header_read = true;
        }
        let at = self.file_offset;
        let mut head = [0u8; 12];
        if !self.read_exact_counted(&mut head, "chunk header")? {
            return Ok(false);
        }
        let len = i32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        if len < 0 || len as usize > TLX_CHUNK_BYTES_MAX {
            return Err(invalid(format!("impossible chunk length {len} at offset {at}")));
        }
        let mut compressed = vec![0u8; len as usize];
        self.read_exact_counted(&mut compressed, "chunk")?;
        let raw_len = snap::raw::decompress_len(&compressed)
            .map_err(|e| invalid(format!("chunk at offset {at}: {e}")))?;
        if raw_len > TLX_CHUNK_BYTES_MAX {
            return Err(invalid(format!("chunk at offset {at} claims {raw_len} raw bytes")));
        }
        self.block = snap::raw::Decoder::new()
            .decompress_vec(&compressed)
            .map_err(|e| invalid(format!("chunk at offset {at}: {e}")))?;
        self.pos = 0;
        Ok(true)
    }
}

impl<R: Read> Read for TlxReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.block.len() {
            if !self.next_chunk()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.block.len() - self.pos);
        out[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Opens any TLog file as a stream of entry bytes.
pub fn open_entries(dir: &dyn LogDir, file: &TlogFile) -> Result<Box<dyn Read + Send>, TlogError> {
    let name = file.name();
    let raw = dir.open_read(&name).map_err(|e| TlogError::io(dir.path_of(&name), e))?;
    let raw = io::BufReader::with_capacity(256 * 1024, raw);
    Ok(match file.kind {
        FileKind::Tlog => Box::new(raw),
        FileKind::Tlx => Box::new(TlxReader::new(raw)),
        FileKind::Tlf => Box::new(bzip2::read::BzDecoder::new(raw)),
        FileKind::Tlc => return Err(TlogError::LegacyTlc { path: dir.path_of(&name) }),
    })
}

/// Builds `.tlx` bytes from a stream of whole entries.
pub struct TlxWriter {
    out: Vec<u8>,
    chunk: Vec<u8>,
    chunk_last_i: u64,
}

impl Default for TlxWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl TlxWriter {
    pub fn new() -> Self {
        let mut out = Vec::new();
        out.put_bytes(TLX_HEADER);
        TlxWriter { out, chunk: Vec::with_capacity(TLX_CHUNK_BYTES), chunk_last_i: 0 }
    }

    /// Adds one encoded entry.
    pub fn push(&mut self, i: u64, entry_bytes: &[u8]) {
        self.chunk.extend_from_slice(entry_bytes);
        self.chunk_last_i = i;
        if self.chunk.len() >= TLX_CHUNK_BYTES {
            self.flush_chunk();
        }
    }

    fn flush_chunk(&mut self) {
        if self.chunk.is_empty() {
            return;
        }
        let block = snap::raw::Encoder::new()
            .compress_vec(&self.chunk)
            .expect("snappy compresses any input below 4 GiB");
        self.out.put_i64(i64::try_from(self.chunk_last_i).expect("i beyond i64::MAX"));
        self.out.put_bytes(&block);
        self.chunk.clear();
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.flush_chunk();
        self.out
    }
}

/// Re-encodes the entries of a file, checking every one on the way.
fn copy_entries(
    dir: &dyn LogDir,
    file: &TlogFile,
    mut push: impl FnMut(u64, &[u8]),
) -> Result<u64, TlogError> {
    let path = dir.path_of(&file.name());
    let mut stream = EntryStream::new(open_entries(dir, file)?);
    let mut count = 0;
    let mut buf = Vec::new();
    loop {
        match stream.next_entry().map_err(|e| TlogError::io(&path, e))? {
            Next::Entry { entry, .. } => {
                buf.clear();
                entry.encode(&mut buf);
                push(entry.i, &buf);
                count += 1;
            }
            Next::End { .. } => return Ok(count),
            other => return Err(damaged_file(path, other)),
        }
    }
}

fn write_durably(dir: &dyn LogDir, name: &str, bytes: &[u8]) -> Result<(), TlogError> {
    let part = format!("{name}.part");
    let path = dir.path_of(&part);
    let mut f = dir.create(&part).map_err(|e| TlogError::io(&path, e))?;
    f.append(bytes).map_err(|e| TlogError::io(&path, e))?;
    f.sync_data().map_err(|e| TlogError::io(&path, e))?;
    dir.rename(&part, name).map_err(|e| TlogError::io(&path, e))?;
    dir.sync_dir().map_err(|e| TlogError::io(dir.location(), e))
}

/// Compresses sealed file `number` from `.tlog` into `.tlx`; returns the entry count.
pub fn compress(dir: &dyn LogDir, number: u64) -> Result<u64, TlogError> {
    let plain = TlogFile::new(number, FileKind::Tlog);
    let mut tlx = TlxWriter::new();
    let count = copy_entries(dir, &plain, |i, bytes| tlx.push(i, bytes))?;
    write_durably(dir, &plain.with_kind(FileKind::Tlx).name(), &tlx.finish())?;
    dir.remove(&plain.name()).map_err(|e| TlogError::io(dir.path_of(&plain.name()), e))?;
    dir.sync_dir().map_err(|e| TlogError::io(dir.location(), e))?;
    Ok(count)
}

/// Uncompresses archive `file` back into `NNN.tlog`; returns the entry count.
pub fn uncompress(dir: &dyn LogDir, file: &TlogFile) -> Result<u64, TlogError> {
    let mut out = Vec::new();
    let count = copy_entries(dir, file, |_, bytes| out.extend_from_slice(bytes))?;
    write_durably(dir, &file.with_kind(FileKind::Tlog).name(), &out)?;
    dir.remove(&file.name()).map_err(|e| TlogError::io(dir.path_of(&file.name()), e))?;
    dir.sync_dir().map_err(|e| TlogError::io(dir.location(), e))?;
    Ok(count)
}

/// Checks that `bytes` starts like a `.tlx` (for tools that guess a file's type).
pub fn looks_like_tlx(bytes: &[u8]) -> bool {
    let mut r = Reader::new(bytes);
    r.bytes_ref().is_ok_and(|h| h == TLX_HEADER)
}
