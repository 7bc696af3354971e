//! The checker's history importers: our JSON lines, Jepsen EDN and Jepsen log lines.
#![no_main]

use arakoon_checker::import::{read, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for format in [Format::Jsonl, Format::Edn, Format::JepsenLog, Format::detect(text)] {
        let _ = read(text, format);
    }
});
