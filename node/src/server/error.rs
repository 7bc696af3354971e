//! Why a running node stops other than by request, and the exit code it stops with.

use super::startup::StartError;
use crate::exit::NodeExit;
use crate::store::StoreError;
use crate::tlog;
use std::net::SocketAddr;
use thiserror::Error;

/// Why a running node stopped other than by request.
#[derive(Debug, Error)]
pub enum ServeError {
    #[error("{0}")]
    Start(#[from] StartError),
    #[error("cannot listen on {addr}: {source}; is another process using the port?")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("the TLog writer failed: {0}; restart the node: start-up validates the TLog")]
    Tlog(tlog::TlogError),
    #[error("the store failed: {0}; restart the node: replay rebuilds what the store lacks")]
    Store(StoreError),
    #[error("adopting a peer's head failed: {0}; restart the node: its files are valid after every step of the adoption, and catch-up fetches the head again")]
    AdoptHead(#[source] super::catchup::CatchUpError),
}

impl ServeError {
    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            ServeError::Start(e) => e.exit_code(),
            ServeError::Bind { .. } => NodeExit::PortTaken.code(),
            ServeError::Tlog(e) => e.exit_code(),
            ServeError::Store(_) => NodeExit::Store.code(),
            ServeError::AdoptHead(_) => NodeExit::Head.code(),
        }
    }
}
