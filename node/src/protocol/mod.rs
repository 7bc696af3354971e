//! Wire codecs: node-to-node messages ([`peer`]). Codecs only: no I/O.

pub mod peer;
