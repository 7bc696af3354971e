//! "llio": Arakoon's primitive encoding (ARAKOON-FORMATS §1).
//!
//! Little-endian fixed-width integers, length-prefixed byte strings, one-byte booleans and
//! options. The writer side is a handful of methods on `Vec<u8>`; the reader side is [`Reader`],
//! a cursor over a borrowed buffer that never panics and never allocates more than the buffer
//! can hold: every length prefix is checked against both a configured maximum and the bytes that
//! are actually left before anything is allocated.
//!
//! Lists are written last-element-first on the wire (the original rebuilt them by prepending);
//! [`Put::put_list_reversed`] and [`Reader::list_reversed`] keep that rule in one place.

use thiserror::Error;

/// Default maximum for one string (a key or a value): 8 MiB.
pub const VALUE_BYTES_MAX: u32 = 8 * 1024 * 1024;
/// Default maximum for one message or one TLog `cmd`: 32 MiB.
pub const MESSAGE_BYTES_MAX: u32 = 32 * 1024 * 1024;
/// Maximum element count of any list; a bigger count cannot be honest within a message.
pub const LIST_COUNT_MAX: u32 = MESSAGE_BYTES_MAX / 4;

/// Why a buffer could not be decoded. `at` is the byte offset in the buffer being decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("truncated: needed {needed} more bytes at offset {at}, {left} left")]
    Truncated { at: usize, needed: usize, left: usize },
    #[error("length {len} at offset {at} exceeds the maximum of {max} bytes")]
    TooLong { at: usize, len: i64, max: u32 },
    #[error("negative length {len} at offset {at}")]
    NegativeLength { at: usize, len: i32 },
    #[error("byte {byte:#04x} at offset {at} is not a boolean (0x00 or 0x01)")]
    BadBool { at: usize, byte: u8 },
    #[error("unknown {what} tag {tag} at offset {at}")]
    BadTag { at: usize, what: &'static str, tag: i64 },
    #[error("{what} at offset {at} is not valid UTF-8")]
    BadUtf8 { at: usize, what: &'static str },
    #[error("{count} trailing bytes after the {what} at offset {at}")]
    Trailing { at: usize, what: &'static str, count: usize },
    /// A slot, a ballot or a count that cannot be negative.
    #[error("{what} at offset {at} is negative: {value}")]
    Negative { at: usize, what: &'static str, value: i64 },
    /// A slot field that is neither a slot nor -1 (none).
    #[error("{what} at offset {at}: {value} is neither a slot nor -1 (none)")]
    NotASlot { at: usize, what: &'static str, value: i64 },
    #[error("{what} at offset {at}: slots {from}..={to} are not a range")]
    NotARange { at: usize, what: &'static str, from: i64, to: i64 },
    #[error("{what} at offset {at}: nested deeper than {max} levels")]
    TooDeep { at: usize, what: &'static str, max: usize },
    /// Arakoon knows it, we do not (the nursery's updates); `name` says which, with its tag.
    #[error("{what} at offset {at}: {name} is not supported by arakoon-rs")]
    Unsupported { at: usize, what: &'static str, name: &'static str },
    #[error("{what} at offset {at}: a client may not send a {update} update; only nodes write it")]
    NodeOnly { at: usize, what: &'static str, update: &'static str },
    #[error("{what} at offset {at}: the payload is a {update} update, not a sequence")]
    NotASequence { at: usize, what: &'static str, update: &'static str },
    /// A whole value inside a frame did not decode; `inner` says why, at its own offset.
    #[error("{what} at offset {at}: {inner}")]
    Inside { at: usize, what: &'static str, inner: Box<DecodeError> },
}

impl DecodeError {
    /// The offset in the decoded buffer where the problem was found.
    pub fn offset(&self) -> usize {
        match *self {
            DecodeError::Truncated { at, .. }
            | DecodeError::TooLong { at, .. }
            | DecodeError::NegativeLength { at, .. }
            | DecodeError::BadBool { at, .. }
            | DecodeError::BadTag { at, .. }
            | DecodeError::BadUtf8 { at, .. }
            | DecodeError::Trailing { at, .. }
            | DecodeError::Negative { at, .. }
            | DecodeError::NotASlot { at, .. }
            | DecodeError::NotARange { at, .. }
            | DecodeError::TooDeep { at, .. }
            | DecodeError::Unsupported { at, .. }
            | DecodeError::NodeOnly { at, .. }
            | DecodeError::NotASequence { at, .. }
            | DecodeError::Inside { at, .. } => at,
        }
    }
}

/// Writing primitives onto a sink of bytes: a buffer, or a hash that reads the encoding as it
/// is written (`consensus::value_hash`), so both see the same bytes from one definition.
pub trait Put {
    /// Appends raw bytes; every primitive below is written through it.
    fn put_raw(&mut self, v: &[u8]);

    fn put_u8(&mut self, v: u8) {
        self.put_raw(&[v]);
    }
    fn put_i32(&mut self, v: i32) {
        self.put_raw(&v.to_le_bytes());
    }
    fn put_i64(&mut self, v: i64) {
        self.put_raw(&v.to_le_bytes());
    }
    fn put_bool(&mut self, v: bool) {
        self.put_u8(u8::from(v));
    }
    fn put_bytes(&mut self, v: &[u8]) {
        self.put_i32(i32::try_from(v.len()).expect("a string longer than i32::MAX"));
        self.put_raw(v);
    }
    fn put_option(&mut self, v: Option<&[u8]>) {
        match v {
            None => self.put_bool(false),
            Some(bytes) => {
                self.put_bool(true);
                self.put_bytes(bytes);
            }
        }
    }
    fn put_f64(&mut self, v: f64) {
        self.put_i64(v.to_bits() as i64);
    }

    /// A list in Arakoon's wire order: count, then the elements last-first.
    fn put_list_reversed<T>(&mut self, items: &[T], mut put: impl FnMut(&mut Self, &T)) {
        self.put_i32(count_i32(items.len()));
        for item in items.iter().rev() {
            put(self, item);
        }
    }

    /// A list in the order given: count, then the elements first-first.
    fn put_list_in_order<T>(&mut self, items: &[T], mut put: impl FnMut(&mut Self, &T)) {
        self.put_i32(count_i32(items.len()));
        for item in items {
            put(self, item);
        }
    }
}

fn count_i32(len: usize) -> i32 {
    i32::try_from(len).expect("a list longer than i32::MAX cannot be encoded")
}

impl Put for Vec<u8> {
    fn put_raw(&mut self, v: &[u8]) {
        self.extend_from_slice(v);
    }
}

/// A bounds-checked cursor over an encoded buffer.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    string_bytes_max: u32,
}

impl<'a> Reader<'a> {
    /// A reader whose strings may be at most [`MESSAGE_BYTES_MAX`] long.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0, string_bytes_max: MESSAGE_BYTES_MAX }
    }

    /// A reader whose strings may be at most `string_bytes_max` long.
    pub fn with_limit(buf: &'a [u8], string_bytes_max: u32) -> Self {
        Reader { buf, pos: 0, string_bytes_max }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing { at: self.pos, what, count: self.remaining() })
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated { at: self.pos, needed: n, left: self.remaining() });
        }
        let slice = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }

    pub fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_bits(self.i64()? as u64))
    }

    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        let at = self.pos;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(DecodeError::BadBool { at, byte }),
        }
    }

    /// A length prefix, checked against `max` and against the bytes left.
    fn length(&mut self, max: u32) -> Result<usize, DecodeError> {
        let at = self.pos;
        let len = self.i32()?;
        if len < 0 {
            return Err(DecodeError::NegativeLength { at, len });
        }
        if len as u32 > max {
            return Err(DecodeError::TooLong { at, len: i64::from(len), max });
        }
        Ok(len as usize)
    }

    /// A string's bytes, borrowed from the buffer.
    pub fn bytes_ref(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.length(self.string_bytes_max)?;
        self.take(len)
    }

    pub fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        self.bytes_ref().map(<[u8]>::to_vec)
    }

    /// A string that must be UTF-8 (node names, function names).
    pub fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let at = self.pos;
        let bytes = self.bytes_ref()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::BadUtf8 { at, what })
    }

    pub fn option(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        if self.bool()? {
            Ok(Some(self.bytes()?))
        } else {
            Ok(None)
        }
    }

    pub fn option_string(&mut self, what: &'static str) -> Result<Option<String>, DecodeError> {
        if self.bool()? {
            Ok(Some(self.string(what)?))
        } else {
            Ok(None)
        }
    }

    /// A list count. Each element takes at least `element_bytes_min` bytes, so a count that
    /// could not fit in what is left is rejected before anything is allocated.
    pub fn count(&mut self, element_bytes_min: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        let count = self.length(LIST_COUNT_MAX)?;
        if count.saturating_mul(element_bytes_min.max(1)) > self.remaining() {
            return Err(DecodeError::Truncated {
                at,
                needed: count.saturating_mul(element_bytes_min.max(1)),
                left: self.remaining(),
            });
        }
        Ok(count)
    }

    /// A list written in the order it is to be presented.
    pub fn list_in_order<T>(
        &mut self,
        element_bytes_min: usize,
        mut get: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let count = self.count(element_bytes_min)?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(get(self)?);
        }
        Ok(items)
    }

    /// A list written last-element-first; returned in presentation order.
    pub fn list_reversed<T>(
        &mut self,
        element_bytes_min: usize,
        get: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let mut items = self.list_in_order(element_bytes_min, get)?;
        items.reverse();
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_are_little_endian_and_length_prefixed() {
        let mut buf = Vec::new();
        buf.put_i32(1);
        buf.put_i64(-2);
        buf.put_bool(true);
        buf.put_bytes(b"ab");
        buf.put_option(None);
        buf.put_option(Some(b"c"));
        assert_eq!(
            buf,
            [
                1, 0, 0, 0, //
                0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, //
                1,    //
                2, 0, 0, 0, b'a', b'b', //
                0,    //
                1, 1, 0, 0, 0, b'c',
            ]
        );
        let mut r = Reader::new(&buf);
        assert_eq!(r.i32().unwrap(), 1);
        assert_eq!(r.i64().unwrap(), -2);
        assert!(r.bool().unwrap());
        assert_eq!(r.bytes().unwrap(), b"ab");
        assert_eq!(r.option().unwrap(), None);
        assert_eq!(r.option().unwrap(), Some(b"c".to_vec()));
        r.finish("test").unwrap();
    }

    #[test]
    fn lists_are_reversed_on_the_wire() {
        let mut buf = Vec::new();
        buf.put_list_reversed(&[1i32, 2, 3], |b, v| b.put_i32(*v));
        assert_eq!(&buf[4..8], &3i32.to_le_bytes());
        let back = Reader::new(&buf).list_reversed(4, |r| r.i32()).unwrap();
        assert_eq!(back, vec![1, 2, 3]);
    }

    #[test]
    fn absurd_lengths_are_rejected_before_allocation() {
        let mut buf = Vec::new();
        buf.put_i32(i32::MAX);
        assert!(matches!(Reader::new(&buf).bytes(), Err(DecodeError::TooLong { at: 0, .. })));
        assert!(matches!(
            Reader::with_limit(&buf, u32::MAX).bytes(),
            Err(DecodeError::Truncated { at: 4, .. })
        ));
        let mut buf = Vec::new();
        buf.put_i32(-1);
        assert!(matches!(Reader::new(&buf).bytes(), Err(DecodeError::NegativeLength { .. })));
        let mut buf = Vec::new();
        buf.put_i32(1_000_000);
        assert!(matches!(Reader::new(&buf).count(1), Err(DecodeError::Truncated { .. })));
    }

    #[test]
    fn a_bool_is_only_zero_or_one() {
        assert_eq!(Reader::new(&[2]).bool(), Err(DecodeError::BadBool { at: 0, byte: 2 }));
    }
}
