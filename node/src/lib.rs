//! arakoon-node: one node of an arakoon-rs cluster.
//!
//! The TLog ([`tlog`]) is the truth; the store ([`store`]) is derived from it by replay.
//! Consensus is a pure state machine; the server is a thin tokio shell around it.

#[cfg(not(feature = "planted-bugs"))]
mod no_planted {
    /// Without the `planted-bugs` feature no bug is ever on.
    #[macro_export]
    macro_rules! planted {
        ($bug:ident) => {
            false
        };
    }
}

pub mod client;
pub mod config;
pub mod consensus;
pub mod exit;
pub mod head;
pub mod limits_config;
pub mod llio;
#[cfg(feature = "planted-bugs")]
pub mod planted;
pub mod ports;
pub mod protocol;
pub mod rc;
pub mod replay;
pub mod server;
pub mod shell;
pub mod spans;
pub mod store;
pub mod store_rebuild;
pub mod tlog;
pub mod update_text;
pub mod value;
