//! A whole TLog directory as the node reads it at start: `.tlog` files, `.tlx` archives and
//! the ballot record, cut from the input; then validation and a walk over every entry.
#![no_main]

use arakoon_node::tlog::{reader, MemDir, BALLOT_FILE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = MemDir::new("fuzz");
    // Input: a byte choosing the files, then their contents split on a 4-byte separator.
    let Some((&layout, rest)) = data.split_first() else { return };
    let names = ["000.tlog", "001.tlog", "000.tlx", "001.tlx", "002.tlog", BALLOT_FILE];
    let mut parts = rest.split_inclusive_sep();
    for (k, name) in names.iter().enumerate() {
        if layout & (1 << k) != 0 {
            dir.put(name, parts.next().unwrap_or(&[]));
        }
    }
    let _ = arakoon_node::tlog::BallotRecord::load(&dir);
    if reader::validate(&dir).is_ok() {
        let mut seen = 0u64;
        let _ = reader::walk(&dir, 0, &mut |_, _| {
            seen += 1;
            seen < 1_000_000
        });
    }
});

/// Splits on the separator `b"\xff\xfe\xfd\xfc"`.
trait SplitSep {
    fn split_inclusive_sep(&self) -> Parts<'_>;
}

impl SplitSep for [u8] {
    fn split_inclusive_sep(&self) -> Parts<'_> {
        Parts { rest: Some(self) }
    }
}

struct Parts<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for Parts<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        const SEP: &[u8] = b"\xff\xfe\xfd\xfc";
        let rest = self.rest?;
        match rest.windows(SEP.len()).position(|w| w == SEP) {
            Some(at) => {
                self.rest = Some(&rest[at + SEP.len()..]);
                Some(&rest[..at])
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}
