//! Node-to-node frames: the hello, and the Paxos messages (which round-trip when they decode).
#![no_main]

use arakoon_node::protocol::peer;
use arakoon_node::server::frame::HelloFrame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(hello) = HelloFrame::decode(data) {
        assert_eq!(HelloFrame::decode(&hello.encode()).as_ref(), Ok(&hello));
    }
    if let Ok(msg) = peer::decode(data) {
        assert_eq!(peer::decode(&peer::encode(&msg)).ok().as_ref(), Some(&msg));
    }
});
