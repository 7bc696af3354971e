//! One TLog entry: `i` (int64) | CRC-32C of `cmd` (int32) | `cmd` (length-prefixed), where
//! `cmd` is the encoded [`Value`] optionally followed by a string-option marker
//! (ARAKOON-FORMATS §4).
//!
//! [`EntryStream`] reads entries from any byte stream and classifies what it cannot read: the
//! stream ends inside an entry (torn), a length no entry can have, a checksum mismatch, or a
//! `cmd` that passes its checksum but does not decode. It never allocates more than one bounded
//! `cmd` at a time.

use crate::llio::{DecodeError, Put, Reader, MESSAGE_BYTES_MAX};
use crate::value::Value;
use std::io::{self, Read};

/// i (8) + crc (4) + length (4).
pub const ENTRY_HEADER_BYTES: usize = 16;

/// A decoded entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub i: u64,
    pub value: Value,
    /// `closed:<node>` on a clean shutdown, `opened:<node>` at start; `None` otherwise.
    pub marker: Option<String>,
}

/// The marker written on a clean shutdown.
pub fn closed_marker(node: &str) -> String {
    format!("closed:{node}")
}

/// The marker written when a node opens its log.
pub fn opened_marker(node: &str) -> String {
    format!("opened:{node}")
}

impl Entry {
    pub fn new(i: u64, value: Value) -> Entry {
        Entry { i, value, marker: None }
    }

    /// Whether this entry is a clean-shutdown marker.
    pub fn is_closed_marker(&self) -> bool {
        self.marker.as_deref().is_some_and(|m| m.starts_with("closed:"))
    }

    /// Appends the encoded entry to `buf`.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        encode_entry(buf, self.i, &self.value, self.marker.as_deref());
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        self.encode(&mut buf);
        buf
    }
}

/// Encodes one entry without building an [`Entry`] (the writer's hot path).
pub fn encode_entry(buf: &mut Vec<u8>, i: u64, value: &Value, marker: Option<&str>) {
    let cmd_len = value.encoded_len() + 1 + marker.map_or(0, |m| 4 + m.len());
    buf.reserve(ENTRY_HEADER_BYTES + cmd_len);
    buf.put_i64(i64::try_from(i).expect("i beyond i64::MAX"));
    let crc_at = buf.len();
    buf.put_i32(0);
    buf.put_i32(i32::try_from(cmd_len).expect("a cmd longer than i32::MAX"));
    let cmd_at = buf.len();
    value.encode(buf);
    buf.put_option(marker.map(str::as_bytes));
    debug_assert_eq!(buf.len() - cmd_at, cmd_len);
    let crc = crc32c::crc32c(&buf[cmd_at..]);
    buf[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes a `cmd` into its value and marker.
pub fn decode_cmd(cmd: &[u8]) -> Result<(Value, Option<String>), DecodeError> {
    let mut r = Reader::new(cmd);
    let value = Value::decode(&mut r)?;
    // Entries from the oldest writers carry no marker option at all.
    let marker = if r.is_empty() { None } else { r.option_string("marker")? };
    r.finish("tlog entry")?;
    Ok((value, marker))
}

/// What the stream held at one position.
#[derive(Debug)]
pub enum Next {
    /// A whole, checksummed, decoded entry that started at `offset` and took `len` bytes.
    Entry { offset: u64, len: u64, entry: Entry },
    /// The stream ended cleanly on an entry boundary.
    End { offset: u64 },
    /// The stream ends inside the entry at `offset`: `have` of `need` bytes are there (`need` is
    /// `None` while the header itself is incomplete).
    Torn { offset: u64, i: Option<u64>, have: u64, need: Option<u64> },
    /// The length field holds a value no entry can have.
    BadLength { offset: u64, i: u64, len: i64 },
    /// The `cmd` does not match its checksum.
    Checksum { offset: u64, i: u64, stored: u32, computed: u32 },
    /// The `cmd` matches its checksum but is not a value (or `i` is negative).
    Undecodable { offset: u64, i: i64, error: DecodeError },
}

/// Reads entries one by one from a byte stream.
pub struct EntryStream<R> {
    inner: R,
    offset: u64,
    cmd_bytes_max: u32,
    cmd: Vec<u8>,
    verify_crc: bool,
}

impl<R: Read> EntryStream<R> {
    pub fn new(inner: R) -> Self {
        EntryStream {
            inner,
            offset: 0,
            cmd_bytes_max: MESSAGE_BYTES_MAX,
            cmd: Vec::new(),
            verify_crc: !crate::planted!(SkipCrcCheck),
        }
    }

    /// Skips checksum verification. Only for measuring what the check costs.
    pub fn without_crc_check(mut self) -> Self {
        self.verify_crc = false;
        self
    }

    /// The offset of the next entry.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads the next entry. After anything but `Entry`, the stream is positioned nowhere useful.
    pub fn next_entry(&mut self) -> io::Result<Next> {
        let offset = self.offset;
        let mut header = [0u8; ENTRY_HEADER_BYTES];
        let got = read_full(&mut self.inner, &mut header)?;
        if got == 0 {
            return Ok(Next::End { offset });
        }
        if got < ENTRY_HEADER_BYTES {
            let i = (got >= 8).then(|| i64_at(&header, 0) as u64);
            return Ok(Next::Torn { offset, i, have: got as u64, need: None });
        }
        let i_raw = i64_at(&header, 0);
        let stored = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
        let len = i32::from_le_bytes([header[12], header[13], header[14], header[15]]);
        if len < 0 || len as u32 > self.cmd_bytes_max {
            return Ok(Next::BadLength { offset, i: i_raw as u64, len: i64::from(len) });
        }
        let len = len as usize;
        self.cmd.clear();
        let got = read_growing(&mut self.inner, &mut self.cmd, len)?;
        let need = (ENTRY_HEADER_BYTES + len) as u64;
        if got < len {
            return Ok(Next::Torn {
                offset,
                i: Some(i_raw as u64),
                have: (ENTRY_HEADER_BYTES + got) as u64,
                need: Some(need),
            });
        }
        if self.verify_crc {
            let computed = crc32c::crc32c(&self.cmd);
            if computed != stored {
                return Ok(Next::Checksum { offset, i: i_raw as u64, stored, computed });
            }
        }
        if i_raw < 0 {
            let error = DecodeError::Negative { at: 0, what: "i", value: i_raw };
            return Ok(Next::Undecodable { offset, i: i_raw, error });
        }
        match decode_cmd(&self.cmd) {
            Ok((value, marker)) => {
                self.offset += need;
                Ok(Next::Entry {
                    offset,
                    len: need,
                    entry: Entry { i: i_raw as u64, value, marker },
                })
            }
            Err(error) => Ok(Next::Undecodable { offset, i: i_raw, error }),
        }
    }
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_le_bytes(a)
}

/// Reads up to `len` bytes into `buf` (empty), growing it by at most 1 MiB a step as bytes
/// arrive: a corrupt length near the maximum then costs no more memory than the file holds
/// (fuzzing found every such header allocating and zeroing up to 32 MiB first, ~200 entries/s).
fn read_growing(r: &mut impl Read, buf: &mut Vec<u8>, len: usize) -> io::Result<usize> {
    const STEP: usize = 1 << 20;
    while buf.len() < len {
        let start = buf.len();
        let want = (len - start).min(STEP);
        buf.resize(start + want, 0);
        let got = read_full(r, &mut buf[start..])?;
        if got < want {
            buf.truncate(start + got);
            break;
        }
    }
    Ok(buf.len())
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Update;

    fn set(k: &str, v: &str) -> Update {
        Update::Set { key: k.as_bytes().to_vec(), value: v.as_bytes().to_vec() }
    }

    /// Built by hand from ARAKOON-FORMATS §4, so that the layout is pinned.
    #[test]
    fn a_client_entry_is_laid_out_byte_for_byte() {
        let entry = Entry::new(5, Value::client(vec![set("k", "v")]));
        #[rustfmt::skip]
        let cmd: Vec<u8> = vec![
            0xff, 0, 0, 0, b'c', 0x00,          // value magic, client value, not synced
            1, 0, 0, 0,                         // one update
            1, 0, 0, 0,                         // Set
            1, 0, 0, 0, b'k', 1, 0, 0, 0, b'v', // key, value
            0x00,                               // no marker
        ];
        let mut expected = vec![5, 0, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(&crc32c::crc32c(&cmd).to_le_bytes());
        expected.extend_from_slice(&(cmd.len() as i32).to_le_bytes());
        expected.extend_from_slice(&cmd);
        assert_eq!(entry.to_bytes(), expected);
    }

    #[test]
    fn a_master_set_entry_with_a_closed_marker_is_laid_out_byte_for_byte() {
        let entry = Entry {
            i: 0x0102,
            value: Value::MasterSet { master: "n0".into(), lease_start: 0 },
            marker: Some(closed_marker("n0")),
        };
        #[rustfmt::skip]
        let cmd: Vec<u8> = vec![
            0xff, 0, 0, 0, b'm',
            2, 0, 0, 0, b'n', b'0',
            0, 0, 0, 0, 0, 0, 0, 0,            // lease start
            1, 9, 0, 0, 0, b'c', b'l', b'o', b's', b'e', b'd', b':', b'n', b'0',
        ];
        let bytes = entry.to_bytes();
        assert_eq!(&bytes[..8], &[0x02, 0x01, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[8..12], &crc32c::crc32c(&cmd).to_le_bytes());
        assert_eq!(&bytes[16..], &cmd[..]);
    }

    #[test]
    fn the_crc_is_castagnoli() {
        // The standard check value of CRC-32C.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn entries_stream_back_and_a_legacy_entry_without_marker_reads() {
        let mut bytes = Vec::new();
        let a = Entry::new(0, Value::client(vec![set("a", "1")]));
        let b = Entry { marker: Some(opened_marker("n1")), ..Entry::new(1, Value::client(vec![])) };
        a.encode(&mut bytes);
        b.encode(&mut bytes);
        // A legacy entry: cmd is a bare update, no marker option.
        let cmd = set("z", "9").to_bytes();
        bytes.put_i64(2);
        bytes.extend_from_slice(&crc32c::crc32c(&cmd).to_le_bytes());
        bytes.put_bytes(&cmd);
        let mut s = EntryStream::new(&bytes[..]);
        let mut got = Vec::new();
        loop {
            match s.next_entry().unwrap() {
                Next::Entry { entry, .. } => got.push(entry),
                Next::End { offset } => {
                    assert_eq!(offset, bytes.len() as u64);
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got[0], a);
        assert_eq!(got[1], b);
        assert_eq!(got[2], Entry::new(2, Value::client(vec![set("z", "9")])));
    }

    #[test]
    fn absurd_lengths_are_refused_without_allocating() {
        let mut bytes = Vec::new();
        bytes.put_i64(0);
        bytes.put_i32(0);
        bytes.put_i32(i32::MAX);
        let next = EntryStream::new(&bytes[..]).next_entry().unwrap();
        assert!(
            matches!(next, Next::BadLength { offset: 0, i: 0, len } if len == i64::from(i32::MAX))
        );
    }
}
