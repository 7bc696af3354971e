//! Client frames as a node reads them: the prologue, then requests one after another.
#![no_main]

use arakoon_node::protocol::client::{decode_prologue, Decoded, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_prologue(data, "arakoon");
    let mut rest = data;
    // A bound on the loop: every decoded request takes at least one byte.
    while let Ok(Decoded::Request(request, n)) = Request::decode(rest, 1 << 20) {
        assert!(n > 0 && n <= rest.len(), "a request of {n} bytes in {}", rest.len());
        // What decodes must encode again and decode to the same request.
        let again = request.to_bytes();
        match Request::decode(&again, 1 << 20) {
            Ok(Decoded::Request(back, m)) => {
                assert_eq!(m, again.len());
                assert_eq!(back, request);
            }
            other => panic!("{request:?} re-encoded does not decode: {other:?}"),
        }
        rest = &rest[n..];
    }
});
