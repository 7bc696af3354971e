//! Replies as the client reads them from a node (a hostile or broken server), every kind,
//! including the streamed ones' frames.
#![no_main]

use arakoon_node::protocol::client::{decode_reply, DbFrame, EntryFrame, ReplyKind, StepFrame};
use libfuzzer_sys::fuzz_target;

const KINDS: [ReplyKind; 16] = [
    ReplyKind::Unit,
    ReplyKind::Bool,
    ReplyKind::String,
    ReplyKind::OptionString,
    ReplyKind::Keys,
    ReplyKind::Entries,
    ReplyKind::Values,
    ReplyKind::OptionValues,
    ReplyKind::Int32,
    ReplyKind::Int64,
    ReplyKind::Version,
    ReplyKind::Consistency,
    ReplyKind::EntryStream,
    ReplyKind::StepStream,
    ReplyKind::DbStream,
    ReplyKind::NodeState,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let kind = KINDS[pick as usize % KINDS.len()];
    if let Ok(Some((_, n))) = decode_reply(kind, rest, 1 << 20) {
        assert!(n <= rest.len());
    }
    if let Ok(Some((_, n))) = EntryFrame::decode(rest) {
        assert!(n <= rest.len());
    }
    if let Ok(Some((_, n))) = StepFrame::decode(rest) {
        assert!(n <= rest.len());
    }
    for header in [false, true] {
        if let Ok(Some((_, n))) = DbFrame::decode(rest, header) {
            assert!(n <= rest.len());
        }
    }
});
