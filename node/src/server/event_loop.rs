//! The event loop: the one task that owns the node shell (and through it the consensus machine
//! and the store).
//!
//! Everything that touches consensus state passes through here, in order: client requests (from
//! connection tasks), peer messages, persistence reports (from the persister), catch-up chunks
//! and timer ticks. Each is handed to the [`Shell`], which carries out the machine's actions
//! through [`ServerIo`]: sends go to peer links, persist jobs to the persister, replies to the
//! waiting connection tasks. What is asynchronous stays here: the select loop, the catch-up
//! fetch task, importing fetched entries and adopting a peer's head.

use super::blocking::BlockingReads;
use super::catchup;
use super::env::{Clock, Network};
use super::peers::{Incoming, PeerLink};
use super::persist::{Persisted, Persister};
use super::shared::CoreMsg;
use super::storage::NodeStore;
use super::ServeError;
use crate::config::ClusterConfig;
use crate::consensus::{Input, Msg, NodeIdx};
use crate::protocol::peer;
use crate::shell::{CatchUpJob, Outbox, PersistJob, ReadJob, Reply, Shell, ShellError};
use crate::tlog::LogDir;
use crate::value::{Update, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long adopting a peer's head waits for the reads of the old store to end.
const ADOPT_READS_WAIT_MS: u64 = 5_000;

/// A waiting client: where its reply goes.
pub type Waiter = oneshot::Sender<Reply>;

/// The server's outbox: peer links, the persister, reply channels; a catch-up the shell asked
/// for is kept for the loop to start.
pub struct ServerIo {
    pub links: Vec<Option<PeerLink>>,
    /// Where reads of the store run: the blocking pool on disk, beside the core (at once in
    /// memory, for the simulator).
    pub reads: Arc<dyn BlockingReads>,
    pub persister: Option<Persister>,
    pub catch_up: Option<CatchUpJob>,
    /// The latest Accept of a client batch as encoded, shared by the peers it goes to.
    pub accept_encoded: Option<EncodedAccept>,
}

/// An Accept's frame payload, kept for the next peer the same Accept goes to (a broadcast, or a
/// resend): the ballot, the slot and the very batch (the same shared updates) it was made from.
/// One is kept, replaced by the next Accept: the memory bound's "Accept's encoding" (README).
pub struct EncodedAccept {
    n: u64,
    i: u64,
    updates: Arc<[Update]>,
    payload: Arc<Vec<u8>>,
}

impl EncodedAccept {
    /// The payload of `msg` (an Accept under `n` for slot `i`), encoded only if `kept` is not it.
    fn of(kept: &mut Option<EncodedAccept>, n: u64, i: u64, msg: &Msg) -> Arc<Vec<u8>> {
        let Msg::Accept { value: Value::Client { updates, .. }, .. } = msg else {
            return Arc::new(peer::encode(msg));
        };
        if let Some(k) =
            kept.as_ref().filter(|k| (k.n, k.i) == (n, i) && Arc::ptr_eq(&k.updates, updates))
        {
            return k.payload.clone();
        }
        let payload = Arc::new(peer::encode(msg));
        *kept = Some(EncodedAccept { n, i, updates: updates.clone(), payload: payload.clone() });
        payload
    }
}

impl Outbox<Waiter> for ServerIo {
    fn send(&mut self, to: NodeIdx, msg: Msg) {
        let ServerIo { links, accept_encoded, .. } = self;
        if let Some(Some(link)) = links.get(to) {
            match &msg {
                // Resends of an accept are paced per peer (server/peers.rs).
                Msg::Accept { n, i, .. } => {
                    link.send_accept(*n, *i, || EncodedAccept::of(accept_encoded, *n, *i, &msg))
                }
                _ => link.send(peer::encode(&msg)),
            };
        }
    }

    fn persist(&mut self, job: PersistJob) {
        if let Some(p) = &self.persister {
            p.submit(job);
        }
    }

    fn reply(&mut self, waiter: Waiter, reply: Reply) {
        // The connection may have gone meanwhile; nobody is left to tell.
        let _ = waiter.send(reply);
    }

    fn catch_up(&mut self, job: CatchUpJob) {
        self.catch_up = Some(job);
    }

    fn read(&mut self, waiter: Waiter, job: ReadJob) {
        // A job that panics drops the waiter: its connection answers going_down.
        self.reads.run(Box::new(move || {
            let _ = waiter.send(job.run_encoded());
        }));
    }
}

/// A catch-up fetch in progress.
struct Fetch {
    epoch: u64,
    chunks: mpsc::Receiver<catchup::Fetched>,
    done: oneshot::Receiver<Result<Option<u64>, catchup::CatchUpError>>,
}

pub(super) struct EventLoop<N: Network, C: Clock> {
    pub config: ClusterConfig,
    pub me: NodeIdx,
    pub net: N,
    pub clock: C,
    pub shell: Shell<NodeStore, Waiter>,
    pub io: ServerIo,
    pub dir: Arc<dyn LogDir>,
    /// Where the persister reports (kept to start a new one after adopting a peer's head).
    pub persisted_tx: mpsc::UnboundedSender<Persisted>,
    /// The head lock shared with the connection tasks (server/collapse.rs).
    pub head_lock: Arc<tokio::sync::Mutex<()>>,
    fetch: Option<Fetch>,
}

enum Event {
    Client(CoreMsg),
    Peer(Incoming),
    Persisted(Persisted),
    Chunk(catchup::Fetched),
    CatchUpDone(Result<Option<u64>, catchup::CatchUpError>),
    Tick,
    Shutdown,
}

fn stopped(e: ShellError) -> ServeError {
    match e {
        ShellError::Store(e) => ServeError::Store(e),
        ShellError::Tlog(e) => ServeError::Tlog(e),
    }
}

impl<N: Network, C: Clock> EventLoop<N, C> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: ClusterConfig,
        me: NodeIdx,
        net: N,
        clock: C,
        shell: Shell<NodeStore, Waiter>,
        io: ServerIo,
        dir: Arc<dyn LogDir>,
        persisted_tx: mpsc::UnboundedSender<Persisted>,
        head_lock: Arc<tokio::sync::Mutex<()>>,
    ) -> Self {
        EventLoop { config, me, net, clock, shell, io, dir, persisted_tx, head_lock, fetch: None }
    }

    pub async fn run(
        &mut self,
        mut inbox: mpsc::Receiver<CoreMsg>,
        mut peers: mpsc::Receiver<Incoming>,
        mut persisted: mpsc::UnboundedReceiver<Persisted>,
        tick_ms: u64,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let mut ticker = tokio::time::interval(Duration::from_millis(tick_ms.max(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            let event = {
                let (chunks, done) = match self.fetch.as_mut() {
                    Some(c) => (Some(&mut c.chunks), Some(&mut c.done)),
                    None => (None, None),
                };
                tokio::select! {
                    biased;
                    _ = &mut shutdown => Event::Shutdown,
                    Some(p) = persisted.recv() => Event::Persisted(p),
                    Some(c) = async { match chunks { Some(r) => r.recv().await, None => None } } => Event::Chunk(c),
                    Ok(r) = async { match done { Some(d) => d.await, None => std::future::pending().await } } => Event::CatchUpDone(r),
                    Some(m) = peers.recv() => Event::Peer(m),
                    Some(m) = inbox.recv() => Event::Client(m),
                    _ = ticker.tick() => Event::Tick,
                }
            };
            let started = crate::spans::start();
            match event {
                Event::Shutdown => return Ok(()),
                Event::Persisted(Persisted::Done(tokens)) => {
                    for token in tokens {
                        self.feed_sends_first(Input::Persisted { token }).await?;
                    }
                }
                Event::Persisted(Persisted::Failed(e)) => return Err(ServeError::Tlog(e)),
                Event::Chunk(catchup::Fetched::Entries(entries)) => self.import(entries).await?,
                Event::Chunk(catchup::Fetched::Head(head, adopted)) => {
                    self.adopt_head(head).await?;
                    let _ = adopted.send(());
                }
                Event::Chunk(catchup::Fetched::HeadInMemory(head, adopted)) => {
                    self.adopt_head_in_memory(head).await?;
                    let _ = adopted.send(());
                }
                Event::CatchUpDone(result) => self.caught_up(result)?,
                Event::Peer(m) => {
                    self.on_peer(m).await?;
                    // Take whatever else arrived meanwhile before looking elsewhere.
                    for _ in 0..64 {
                        match peers.try_recv() {
                            Ok(m) => self.on_peer(m).await?,
                            Err(_) => break,
                        }
                    }
                }
                Event::Client(m) => {
                    self.on_client(m)?;
                    for _ in 0..256 {
                        match inbox.try_recv() {
                            Ok(m) => self.on_client(m)?,
                            Err(_) => break,
                        }
                    }
                }
                Event::Tick => self.feed(Input::Tick)?,
            }
            crate::spans::CORE_EVENT.since(started);
        }
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Hands the shell one input, then starts the catch-up it asked for, if any.
    fn feed(&mut self, input: Input) -> Result<(), ServeError> {
        let now = self.now();
        self.shell.feed(now, input, &mut self.io).map_err(stopped)?;
        self.start_requested_catch_up();
        Ok(())
    }

    /// [`EventLoop::feed`] for an input that may choose a slot (a persist done, a peer's
    /// message): when the core sent messages (the Commit, the next slot's Accepts) and also has
    /// a slot to apply, the peer links write them before the apply and the replies take this
    /// thread, so that the slaves' fsyncs of the next slot overlap the master's apply.
    async fn feed_sends_first(&mut self, input: Input) -> Result<(), ServeError> {
        let now = self.now();
        if self.shell.feed_sends_first(now, input, &mut self.io).map_err(stopped)? {
            tokio::task::yield_now().await;
        }
        self.shell.finish(&mut self.io).map_err(stopped)?;
        self.start_requested_catch_up();
        Ok(())
    }

    fn on_client(&mut self, m: CoreMsg) -> Result<(), ServeError> {
        match m {
            CoreMsg::Committed { reply } => {
                let _ = reply.send(self.shell.machine.committed_i());
            }
            CoreMsg::IsMaster { reply } => {
                let me = &self.config.nodes[self.me].name;
                let _ = reply.send(self.shell.master_name(self.now()).as_ref() == Some(me));
            }
            CoreMsg::Client { request, reply } => {
                let now = self.now();
                self.shell.request(now, request, reply, &mut self.io).map_err(stopped)?;
                self.start_requested_catch_up();
            }
        }
        Ok(())
    }

    async fn on_peer(&mut self, m: Incoming) -> Result<(), ServeError> {
        let Some(from) = self.config.nodes.iter().position(|n| n.name == m.from) else {
            return Ok(());
        };
        if from == self.me {
            return Ok(());
        }
        match peer::decode(&m.payload) {
            Ok(msg) => self.feed_sends_first(Input::Message { from, msg }).await,
            Err(e) => {
                tracing::warn!(peer = %m.from, "dropped an undecodable peer message: {e}");
                Ok(())
            }
        }
    }

    // ---- catch-up ------------------------------------------------------------------------

    /// Spawns the fetch task of the catch-up the shell asked for (a newer one replaces an older:
    /// dropping its channels stops it).
    fn start_requested_catch_up(&mut self) {
        let Some(job) = self.io.catch_up.take() else { return };
        let (chunk_tx, chunks) = mpsc::channel(2);
        let (done_tx, done) = oneshot::channel();
        let peer = &self.config.nodes[job.from];
        let addr = SocketAddr::new(peer.ip, peer.client_port);
        let (net, cluster_id) = (self.net.clone(), self.config.cluster_id.clone());
        let node = &self.config.nodes[self.me];
        let into = match &self.shell.store {
            NodeStore::Sled(_) => catchup::HeadInto::Disk {
                tlog_dir: node.tlog_dir.clone(),
                store: super::startup::store_path(node),
            },
            NodeStore::Memory(_) => {
                catchup::HeadInto::Memory(crate::head::FileHead::new(self.dir.clone()))
            }
        };
        let side = catchup::HeadSide { into, lock: self.head_lock.clone() };
        let CatchUpJob { from_i, to_i, .. } = job;
        tracing::info!(from = %peer.name, from_i, to_i, "catching up");
        tokio::spawn(async move {
            let result = if to_i < from_i {
                Ok(None)
            } else {
                let range = (from_i, to_i);
                catchup::fetch_for_core(&net, addr, &cluster_id, range, side, chunk_tx).await
            };
            let _ = done_tx.send(result);
        });
        self.fetch = Some(Fetch { epoch: job.epoch, chunks, done });
    }

    async fn import(&mut self, entries: Vec<(u64, Value)>) -> Result<(), ServeError> {
        let entries = self.shell.importable(entries);
        if entries.is_empty() {
            return Ok(());
        }
        let Some(persister) = &self.io.persister else { return Ok(()) };
        persister.import(entries.clone()).await.map_err(ServeError::Tlog)?;
        self.shell.import(&entries).map_err(stopped)
    }

    /// Adopts a collapsed peer's head that the catch-up task fetched (server/catchup.rs): the
    /// persister closes its TLog files, the store and the log are replaced (each step leaves
    /// files that start-up accepts), and a new persister writes the log from after the head.
    /// Nothing else runs in the loop meanwhile; the machine is catching up, so it sends nothing
    /// to persist. A failure stops the node rather than go on in a state it does not understand.
    async fn adopt_head(&mut self, head: catchup::FetchedHead) -> Result<(), ServeError> {
        if self.shell.store.sled_mut().is_none() {
            return Err(ServeError::AdoptHead(catchup::CatchUpError::OtherStorage));
        }
        if let Some(p) = self.io.persister.take() {
            p.close().await.map_err(ServeError::Tlog)?;
        }
        // Reads beside the core hold the old store's handle: let them finish before its files
        // are replaced (no new one starts, the loop is here). They are bounded by
        // reply_bytes_max, so this is short; a read still open after the wait gets an error.
        let store = self.shell.store.sled_mut().expect("checked above");
        for _ in 0..ADOPT_READS_WAIT_MS / 10 {
            if store.open_snapshots() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if store.open_snapshots() > 0 {
            tracing::warn!(
                reads = store.open_snapshots(),
                "adopting a head while reads of the old store still run; they will fail"
            );
        }
        let node = &self.config.nodes[self.me];
        let store = self.shell.store.sled_mut().expect("checked above");
        let writer = catchup::adopt_running(store, &head, self.dir.clone(), &self.config, node)
            .map_err(ServeError::AdoptHead)?;
        tracing::info!(head_i = head.head_i, "adopted a peer's head; the TLog restarts after it");
        let persisted = self.persisted_tx.clone();
        self.io.persister = Some(Persister::spawn(writer, self.dir.clone(), persisted));
        Ok(())
    }

    /// [`EventLoop::adopt_head`] for a node in memory (tier B of the simulator): the same
    /// adoption (`catchup::adopt_fetched`) over its simulated disk, its head a file there, its
    /// store replaced by the fetched head's copy, a new inline persister after it. Reads of the
    /// store run at once on this task, so none is open meanwhile.
    async fn adopt_head_in_memory(
        &mut self,
        head: catchup::FetchedMemoryHead,
    ) -> Result<(), ServeError> {
        if !matches!(self.shell.store, NodeStore::Memory(_)) {
            return Err(ServeError::AdoptHead(catchup::CatchUpError::OtherStorage));
        }
        if let Some(p) = self.io.persister.take() {
            p.close().await.map_err(ServeError::Tlog)?;
        }
        let (head_i, node) = (head.head_i, &self.config.nodes[self.me]);
        let (writer, store) = catchup::adopt_in_memory(head, self.dir.clone(), &self.config, node)
            .map_err(ServeError::AdoptHead)?;
        self.shell.store = NodeStore::Memory(store);
        tracing::info!(head_i, "adopted a peer's head; the TLog restarts after it");
        let persisted = self.persisted_tx.clone();
        self.io.persister = Some(Persister::inline(writer, self.dir.clone(), persisted));
        Ok(())
    }

    fn caught_up(
        &mut self,
        result: Result<Option<u64>, catchup::CatchUpError>,
    ) -> Result<(), ServeError> {
        let Some(fetch) = self.fetch.take() else { return Ok(()) };
        let now = self.now();
        self.shell.catch_up_done(now, fetch.epoch, result, &mut self.io).map_err(stopped)?;
        self.start_requested_catch_up();
        Ok(())
    }

    // ---- shutdown ------------------------------------------------------------------------

    pub async fn close(&mut self) -> Result<(), ServeError> {
        self.shell.close(&mut self.io);
        self.io.links.clear();
        let mut result = Ok(());
        if let Some(p) = self.io.persister.take() {
            if let Err(e) = p.close().await {
                result = Err(ServeError::Tlog(e));
            }
        }
        if let Err(e) = crate::store::Store::flush(&mut self.shell.store) {
            tracing::error!("the store's last flush failed: {e}");
            self.shell.store.abandon();
            result = result.and(Err(ServeError::Store(e)));
        }
        tracing::info!(node = %self.config.nodes[self.me].name, "stopped");
        result
    }
}

#[cfg(test)]
mod encoded_accept_tests {
    use super::*;

    /// One encoding serves every peer an Accept goes to, and only that Accept: another slot,
    /// another ballot or another batch under the same numbers is encoded afresh.
    #[test]
    fn an_accept_is_encoded_once_for_all_its_peers() {
        let batch =
            |k: &[u8]| Value::client(vec![Update::Set { key: k.to_vec(), value: vec![1; 9] }]);
        let accept = |n, i, value| Msg::Accept { n, i, value, prev_hash: Some(5) };
        let mut kept = None;
        let v = batch(b"a");
        let first = EncodedAccept::of(&mut kept, 3, 7, &accept(3, 7, v.clone()));
        assert_eq!(*first, peer::encode(&accept(3, 7, v.clone())));
        let again = EncodedAccept::of(&mut kept, 3, 7, &accept(3, 7, v.clone()));
        assert!(Arc::ptr_eq(&first, &again), "the second peer shares the first one's bytes");
        for (n, i, value) in [(3, 8, v.clone()), (4, 7, v.clone()), (3, 7, batch(b"a"))] {
            let msg = accept(n, i, value);
            let other = EncodedAccept::of(&mut kept, n, i, &msg);
            assert!(!Arc::ptr_eq(&first, &other));
            assert_eq!(*other, peer::encode(&msg));
        }
        // A MasterSet is small and not kept.
        let ms = accept(3, 9, Value::MasterSet { master: "n0".into(), lease_start: 0 });
        assert_eq!(*EncodedAccept::of(&mut kept, 3, 9, &ms), peer::encode(&ms));
    }
}
