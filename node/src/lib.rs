//! arakoon-node: one node of an arakoon-rs cluster.
//!
//! The TLog ([`tlog`]) is the truth; the store ([`store`]) is derived from it by replay.
//! Consensus is a pure state machine; the server is a thin tokio shell around it.

pub mod config;
pub mod consensus;
pub mod llio;
pub mod rc;
pub mod replay;
pub mod server;
pub mod store;
pub mod tlog;
pub mod value;
