//! The server: the tokio shell around the consensus machine.
//!
//! The core loop owns the consensus machine and the store; the persister thread owns the TLog
//! writer; connection tasks speak the client protocol; peer links carry node-to-node messages.

pub mod catchup;
pub mod collapse;
pub mod conn;
pub mod core;
pub mod env;
pub mod frame;
pub mod limits;
pub mod peers;
pub mod persist;
pub mod rebuild;
pub mod startup;
pub mod state_name;
pub mod statistics;
pub mod storage;
