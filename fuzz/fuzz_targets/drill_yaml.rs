//! YAML drills, for every tier and none.
#![no_main]

use arakoon_chaos::drill;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = drill::parse(text, "fuzz.yaml", None);
});
