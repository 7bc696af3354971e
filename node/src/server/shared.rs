//! What the event loop shares with the connection tasks: the channel into the loop and the
//! node's settings and files that connections read beside it.

use super::blocking::BlockingReads;
use crate::head::{head_path, Pins};
use crate::protocol::client::Request;
use crate::shell::Reply;
use crate::tlog::LogDir;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// What connection tasks send to the event loop.
pub enum CoreMsg {
    /// A client's request; the typed reply comes back on `reply` (conn.rs encodes it).
    Client { request: Request, reply: oneshot::Sender<Reply> },
    /// The last committed slot (for `last_entries`).
    Committed { reply: oneshot::Sender<Option<u64>> },
    /// Whether this node is the master now (copy_db_to_head and get_db are refused there).
    IsMaster { reply: oneshot::Sender<bool> },
}

/// What the event loop shares with connection tasks.
pub struct Shared {
    pub cluster_id: String,
    pub core: mpsc::Sender<CoreMsg>,
    pub dir: Arc<dyn LogDir>,
    pub connections: AtomicUsize,
    pub max_connections: usize,
    pub max_buffer_size: u32,
    /// Arakoon's value-size limit, checked before the core (server/limits.rs).
    pub max_value_size: u32,
    pub request_stall_ms: u64,
    /// The head, collapse and the catch-up readers' pins.
    pub head: HeadShared,
    /// Where blocking reads (the TLog for a catch-up) run, chosen at start-up with the storage.
    pub reads: Arc<dyn BlockingReads>,
}

/// What the connection tasks share about the head.
pub struct HeadShared {
    pub path: PathBuf,
    pub pins: Arc<Pins>,
    /// Held by a collapse and by `get_db`.
    pub lock: Arc<tokio::sync::Mutex<()>>,
}

impl HeadShared {
    pub fn new(tlog_dir: &Path) -> HeadShared {
        HeadShared {
            path: head_path(tlog_dir),
            pins: Arc::new(Pins::default()),
            lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}
