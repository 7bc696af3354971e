//! Wire codecs: the Arakoon client protocol ([`client`]) and node-to-node messages ([`peer`]).
//! Codecs only: no I/O.

pub mod client;
pub mod node_state;
pub mod peer;
