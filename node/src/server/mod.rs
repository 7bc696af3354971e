//! The server: the tokio environment around the node shell (crate::shell).
//!
//! Start-up (core.rs) prepares the files and starts everything; the event loop (event_loop.rs)
//! owns the node shell, which owns the consensus machine and the store; the persister owns the
//! TLog writer; connection tasks speak the client protocol; peer links carry node-to-node
//! messages.

pub mod auth;
pub mod blocking;
pub mod catchup;
pub mod collapse;
pub mod conn;
pub mod core;
pub mod env;
pub mod error;
pub mod event_loop;
pub mod fdlimit;
pub mod frame;
pub mod host;
pub mod limits;
pub mod loglimit;
pub mod peers;
pub mod persist;
pub mod rebuild;
pub mod shared;
pub mod startup;
pub mod storage;

pub use error::ServeError;
