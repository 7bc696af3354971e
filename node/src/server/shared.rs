//! What the event loop shares with the connection tasks: the channel into the loop and the
//! node's settings and files that connections read beside it.

use super::blocking::BlockingReads;
use crate::head::{HeadSpace, Pins};
use crate::protocol::client::Request;
use crate::shell::Reply;
use crate::tlog::LogDir;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
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
    /// A connection with no request for this long is closed.
    pub client_idle_ms: u64,
    /// After `request_stall_ms`, a request must have arrived at this rate at least.
    pub client_min_bytes_per_s: u64,
    /// The slots one client address may hold, and who holds how many (server/conn.rs).
    pub per_address_max: usize,
    pub per_address: Mutex<BTreeMap<IpAddr, usize>>,
    /// The master lease: a master's `drop_master` answers half of it after stepping down, as
    /// Arakoon does, so that the client's next call finds the new master.
    pub lease_ms: u64,
    /// The request memory, in KiB permits (server/conn.rs `request_memory_bytes`).
    pub request_memory: Arc<tokio::sync::Semaphore>,
    /// One listing read (range, range_entries, prefix_keys, multi_get) at a time.
    pub listing: Arc<tokio::sync::Semaphore>,
    /// One `catchup_entries` / `last_entries` stream at a time.
    pub entry_streams: Arc<tokio::sync::Semaphore>,
    /// The head, collapse and the catch-up readers' pins.
    pub head: HeadShared,
    /// Where blocking reads (the TLog for a catch-up) run, chosen at start-up with the storage.
    pub reads: Arc<dyn BlockingReads>,
}

/// What the connection tasks share about the head.
pub struct HeadShared {
    /// Where the head lives: `<tlog_dir>/head.db` on disk, a file on the simulated disk for a
    /// node in memory (server/storage.rs `Storage::head_space`).
    pub space: Arc<dyn HeadSpace>,
    pub pins: Arc<Pins>,
    /// Held while the head is written or read whole: by a collapse, `copy_db_to_head`, `get_db`
    /// and a catch-up adopting a peer's head. The others wait for it.
    pub lock: Arc<tokio::sync::Mutex<()>>,
    /// Held by a `collapse_tlogs` from its start to its end: a second one at once is refused
    /// ("Collapsing already in progress"), as Arakoon's `collapsing_lock` refuses it. Only a
    /// collapse takes it, so a `get_db` or a catch-up that has just finished with the head never
    /// makes a collapse fail (Arakoon's `get_db` does not take it either).
    pub collapsing: Arc<tokio::sync::Mutex<()>>,
}

impl HeadShared {
    pub fn new(space: Arc<dyn HeadSpace>) -> HeadShared {
        HeadShared {
            space,
            pins: Arc::new(Pins::default()),
            lock: Arc::new(tokio::sync::Mutex::new(())),
            collapsing: Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}
