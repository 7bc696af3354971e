//! One TLog entry's command (a value and an optional marker), and a stream of entries.
#![no_main]

use arakoon_node::tlog::{decode_cmd, EntryStream, Next};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_cmd(data);
    let mut stream = EntryStream::new(data);
    // Each entry takes at least its header: the loop is bounded by the input.
    for _ in 0..=data.len() / 16 {
        match stream.next_entry() {
            Ok(Next::Entry { .. }) => {}
            _ => break,
        }
    }
});
