//! The core loop: the one task that owns the consensus machine and the store.
//!
//! Everything that touches consensus state passes through here, in order: client requests (from
//! connection tasks), peer messages, persistence reports (from the persister thread), catch-up
//! chunks and timer ticks. Reads are answered from the store in the same task, so a read never
//! sees a slot that is committed but not applied. The machine's actions are carried out at once:
//! sends go to peer links, persists to the persister thread, applies to the store (answering the
//! clients of each update), catch-ups to a fetching task.

use super::catchup;
use super::conn;
use super::env::{Clock, Listener, Network};
use super::frame::Hello;
use super::peers::{spawn_link, spawn_listener, Incoming, PeerLink};
use super::persist::{PersistJob, Persisted, Persister};
use super::startup::{prepare, StartError};
use super::statistics::Op;
use super::storage::{prepare_in_memory, NodeStore, Storage};
use crate::config::ClusterConfig;
use crate::consensus::{Action, ClientReqId, Durable, Input, Machine, NodeIdx, RoleName};
use crate::protocol::client::{
    encode_error, encode_ok, Consistency, Payload, Request, SPOKEN_VERSION,
};
use crate::protocol::peer;
use crate::rc::Rc;
use crate::store::{Store, StoreError, UpdateOutput};
use crate::tlog::{self, LogDir};
use crate::value::{Update, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

/// Settings of the server shell that the cluster configuration does not carry.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// How often the core is told that time passed.
    pub tick_ms: u64,
    /// The seed of the machine's election jitter.
    pub seed: u64,
    /// Where the TLog and the store live: on disk (production) or in memory (simulation, where
    /// everything then runs on the node's task; see server/storage.rs).
    pub storage: Storage,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions { tick_ms: 10, seed: 0, storage: Storage::Disk }
    }
}

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
    AdoptHead(String),
}

impl ServeError {
    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            ServeError::Start(e) => e.exit_code(),
            ServeError::Bind { .. } => 2,
            ServeError::Tlog(e) => e.exit_code(),
            ServeError::Store(_) => 45,
            ServeError::AdoptHead(_) => 47,
        }
    }
}

/// What connection tasks send to the core.
pub enum CoreMsg {
    Client {
        request: Request,
        reply: oneshot::Sender<Vec<u8>>,
    },
    /// The last committed slot (for `last_entries`).
    Committed {
        reply: oneshot::Sender<Option<u64>>,
    },
    /// Whether this node is the master now (copy_db_to_head and get_db are refused there).
    IsMaster {
        reply: oneshot::Sender<bool>,
    },
}

/// What the core shares with connection tasks.
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
    /// The head, collapse and the catch-up readers' pins (server/collapse.rs).
    pub head: super::collapse::HeadShared,
    /// Blocking work (reading the TLog for a catch-up) runs on the calling task instead of
    /// tokio's blocking pool: set for a node in memory, where a thread would race the simulation.
    pub inline: bool,
}

/// Runs node `me` of `config` until `shutdown` resolves, then stops cleanly: pending clients hear
/// going_down, the TLog gets its closed marker, the store is flushed.
pub async fn serve<N: Network, C: Clock>(
    config: ClusterConfig,
    me: NodeIdx,
    net: N,
    clock: C,
    options: ServerOptions,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let node = config.nodes[me].clone();
    let prepared = match &options.storage {
        Storage::Disk => {
            let (config, node) = (config.clone(), node.clone());
            tokio::task::spawn_blocking(move || prepare(&config, &node))
                .await
                .expect("start-up does not panic")?
                .map_store(|s| NodeStore::Sled(Box::new(s)))
        }
        Storage::Memory(disk) => {
            prepare_in_memory(&config, &node, disk)?.map_store(NodeStore::Memory)
        }
    };
    let client_addr = SocketAddr::new(node.ip, node.client_port);
    let peer_addr = SocketAddr::new(node.ip, node.messaging_port);
    let client_listener = net
        .bind(client_addr)
        .await
        .map_err(|source| ServeError::Bind { addr: client_addr, source })?;
    let peer_listener =
        net.bind(peer_addr).await.map_err(|source| ServeError::Bind { addr: peer_addr, source })?;

    let ccfg = config.consensus(me);
    let durable = Durable {
        ballot: prepared.ballot,
        last: prepared.last.clone(),
        prev: prepared.prev.clone(),
        applied: prepared.store.applied(),
    };
    tracing::info!(
        node = %node.name,
        last = ?prepared.last.as_ref().map(|(i, _)| *i),
        applied = ?durable.applied,
        closed_cleanly = prepared.closed_cleanly,
        seed = options.seed,
        "starting"
    );
    let machine = Machine::new(ccfg, durable, clock.now_ms(), options.seed);

    let (persisted_tx, persisted_rx) = mpsc::unbounded_channel();
    let persister = if options.storage.inline() {
        Persister::inline(prepared.writer, prepared.dir.clone(), persisted_tx.clone())
    } else {
        Persister::spawn(prepared.writer, prepared.dir.clone(), persisted_tx.clone())
    };
    let (core_tx, core_rx) = mpsc::channel(4096);
    let shared = Arc::new(Shared {
        cluster_id: config.cluster_id.clone(),
        core: core_tx,
        dir: prepared.dir.clone(),
        connections: AtomicUsize::new(0),
        max_connections: config.max_connections,
        max_buffer_size: config.max_buffer_size,
        max_value_size: config.max_value_size,
        request_stall_ms: config.client_stall_ms,
        head: super::collapse::HeadShared::new(&node.tlog_dir),
        inline: options.storage.inline(),
    });

    // Peers.
    let hello = Hello { cluster_id: config.cluster_id.clone(), node: node.name.clone() };
    let links: Vec<Option<PeerLink>> = config
        .nodes
        .iter()
        .enumerate()
        .map(|(k, n)| {
            (k != me).then(|| {
                spawn_link(net.clone(), hello.clone(), SocketAddr::new(n.ip, n.messaging_port))
            })
        })
        .collect();
    let (peer_tx, peer_rx) = mpsc::channel(4096);
    let peer_names: Vec<String> =
        config.names().into_iter().enumerate().filter(|(k, _)| *k != me).map(|(_, n)| n).collect();
    spawn_listener::<N>(
        peer_listener,
        config.cluster_id.clone(),
        peer_names,
        config.max_buffer_size.saturating_add(1024),
        peer_tx,
    );

    // Clients.
    let accept_shared = shared.clone();
    let acceptor = tokio::spawn(async move {
        let mut listener = client_listener;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            match conn::ConnectionSlot::take(&accept_shared) {
                Some(slot) => {
                    tokio::spawn(conn::serve(stream, accept_shared.clone(), slot));
                }
                None => {
                    tokio::spawn(conn::refuse(stream, accept_shared.max_connections));
                }
            }
        }
    });

    let mut core = Core {
        config,
        me,
        net,
        clock,
        machine,
        store: prepared.store,
        dir: prepared.dir.clone(),
        persister: Some(persister),
        persisted_tx,
        head_lock: shared.head.lock.clone(),
        links,
        pending: BTreeMap::new(),
        next_req: 1,
        catch_up: None,
        catch_up_epoch: 0,
        actions: Vec::new(),
        started_ms: 0,
        stats: super::statistics::Statistics::default(),
    };
    core.started_ms = core.clock.now_ms();
    core.stats = super::statistics::Statistics::new(core.started_ms);
    let result = core.run(core_rx, peer_rx, persisted_rx, options.tick_ms, shutdown).await;
    acceptor.abort();
    let closing = core.close().await;
    drop(shared);
    result.and(closing)
}

struct CatchUp {
    epoch: u64,
    chunks: mpsc::Receiver<catchup::Fetched>,
    done: oneshot::Receiver<Result<Option<u64>, String>>,
    to_i: u64,
}

struct Core<N: Network, C: Clock> {
    config: ClusterConfig,
    me: NodeIdx,
    net: N,
    clock: C,
    machine: Machine,
    store: NodeStore,
    dir: Arc<dyn LogDir>,
    persister: Option<Persister>,
    /// Where the persister reports (kept to start a new one after adopting a peer's head).
    persisted_tx: mpsc::UnboundedSender<Persisted>,
    /// The head lock shared with the connection tasks (server/collapse.rs).
    head_lock: Arc<tokio::sync::Mutex<()>>,
    links: Vec<Option<PeerLink>>,
    /// Clients waiting for an update's outcome.
    pending: BTreeMap<u64, oneshot::Sender<Vec<u8>>>,
    next_req: u64,
    catch_up: Option<CatchUp>,
    catch_up_epoch: u64,
    actions: Vec<Action>,
    started_ms: u64,
    /// Arakoon's operation counters (server/statistics.rs).
    stats: super::statistics::Statistics,
}

enum Event {
    Client(CoreMsg),
    Peer(Incoming),
    Persisted(Persisted),
    Chunk(catchup::Fetched),
    CatchUpDone(Result<Option<u64>, String>),
    Tick,
    Shutdown,
}

fn encode_failure(rc: Rc, message: impl AsRef<[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_error(rc, message.as_ref(), &mut out);
    out
}

fn encode_payload(payload: &Payload) -> Vec<u8> {
    let mut out = Vec::new();
    encode_ok(payload, &mut out);
    out
}

impl<N: Network, C: Clock> Core<N, C> {
    async fn run(
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
                let catch_up = self.catch_up.as_mut();
                let (chunks, done) = match catch_up {
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
            match event {
                Event::Shutdown => return Ok(()),
                Event::Persisted(Persisted::Done(tokens)) => {
                    for token in tokens {
                        self.feed(Input::Persisted { token })?;
                    }
                }
                Event::Persisted(Persisted::Failed(e)) => return Err(ServeError::Tlog(e)),
                Event::Chunk(catchup::Fetched::Entries(entries)) => self.import(entries).await?,
                Event::Chunk(catchup::Fetched::Head(head, adopted)) => {
                    self.adopt_head(head).await?;
                    let _ = adopted.send(());
                }
                Event::CatchUpDone(result) => self.caught_up(result)?,
                Event::Peer(m) => {
                    self.on_peer(m)?;
                    // Take whatever else arrived meanwhile before looking elsewhere.
                    for _ in 0..64 {
                        match peers.try_recv() {
                            Ok(m) => self.on_peer(m)?,
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
                Event::Tick => {
                    self.stats.report_if_due(self.now());
                    self.feed(Input::Tick)?
                }
            }
        }
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    fn feed(&mut self, input: Input) -> Result<(), ServeError> {
        let now = self.now();
        let mut actions = std::mem::take(&mut self.actions);
        self.machine.handle(now, input, &mut actions);
        let result = actions.drain(..).try_for_each(|a| self.execute(a));
        self.actions = actions;
        result
    }

    fn execute(&mut self, action: Action) -> Result<(), ServeError> {
        match action {
            Action::Send { to, msg } => {
                if let Some(Some(link)) = self.links.get(to) {
                    link.send(peer::encode(&msg));
                }
            }
            Action::Persist { token, ballot, entry } => {
                if let Some(p) = &self.persister {
                    p.submit(PersistJob { token, ballot, entry });
                }
            }
            Action::Apply { i, value, clients } => self.apply(i, &value, clients)?,
            Action::Reply { id, rc, message } => {
                self.stats.forget(id.0);
                if let Some(reply) = self.pending.remove(&id.0) {
                    let bytes = if rc == Rc::Ok {
                        encode_payload(&Payload::Unit)
                    } else {
                        encode_failure(rc, message)
                    };
                    let _ = reply.send(bytes);
                }
            }
            Action::CatchUp { from, to_i } => self.start_catch_up(from, to_i),
        }
        Ok(())
    }

    fn apply(
        &mut self,
        i: u64,
        value: &Value,
        clients: Vec<ClientReqId>,
    ) -> Result<(), ServeError> {
        if self.store.next_i() > i {
            return Ok(()); // replayed at start-up already
        }
        let results = self.store.apply(i, value).map_err(ServeError::Store)?;
        let now = self.now();
        for (id, result) in clients.iter().zip(results) {
            let count = match &result {
                Ok(UpdateOutput::Count(n)) => Some(usize::try_from(*n).unwrap_or(0)),
                _ => None,
            };
            self.stats.end(id.0, now, count);
            let Some(reply) = self.pending.remove(&id.0) else { continue };
            let bytes = match result {
                Ok(UpdateOutput::Unit) => encode_payload(&Payload::Unit),
                Ok(UpdateOutput::Previous(p)) | Ok(UpdateOutput::Returned(p)) => {
                    encode_payload(&Payload::OptionString(p))
                }
                Ok(UpdateOutput::Count(n)) => {
                    encode_payload(&Payload::Int32(i32::try_from(n).unwrap_or(i32::MAX)))
                }
                Err(f) => encode_failure(f.rc, f.message),
            };
            let _ = reply.send(bytes);
        }
        Ok(())
    }

    fn on_peer(&mut self, m: Incoming) -> Result<(), ServeError> {
        let Some(from) = self.config.nodes.iter().position(|n| n.name == m.from) else {
            return Ok(());
        };
        if from == self.me {
            return Ok(());
        }
        match peer::decode(&m.payload) {
            Ok(msg) => {
                if let Some(i) = super::statistics::slot_of(&msg) {
                    self.stats.witness(&m.from, i);
                }
                self.feed(Input::Message { from, msg })
            }
            Err(e) => {
                tracing::warn!(peer = %m.from, "dropped an undecodable peer message: {e}");
                Ok(())
            }
        }
    }

    // ---- catch-up ------------------------------------------------------------------------

    fn start_catch_up(&mut self, from: NodeIdx, to_i: u64) {
        let from_i = self.store.next_i();
        self.catch_up_epoch += 1;
        let (chunk_tx, chunks) = mpsc::channel(2);
        let (done_tx, done) = oneshot::channel();
        let peer = &self.config.nodes[from];
        let addr = SocketAddr::new(peer.ip, peer.client_port);
        let (net, cluster_id) = (self.net.clone(), self.config.cluster_id.clone());
        let node = &self.config.nodes[self.me];
        let side = catchup::HeadSide {
            tlog_dir: node.tlog_dir.clone(),
            store: super::startup::store_path(node),
            lock: self.head_lock.clone(),
        };
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
        self.catch_up = Some(CatchUp { epoch: self.catch_up_epoch, chunks, done, to_i });
    }

    async fn import(&mut self, entries: Vec<(u64, Value)>) -> Result<(), ServeError> {
        if entries.is_empty() {
            return Ok(());
        }
        // The store may already hold some (a stale chunk after a restart of the fetch).
        let next = self.store.next_i();
        let entries: Vec<(u64, Value)> = entries.into_iter().filter(|(i, _)| *i >= next).collect();
        if entries.first().is_none_or(|(i, _)| *i != next) {
            return Ok(());
        }
        let Some(persister) = &self.persister else { return Ok(()) };
        persister.import(entries.clone()).await.map_err(ServeError::Tlog)?;
        self.store.apply_many(&entries).map_err(ServeError::Store)?;
        Ok(())
    }

    /// Adopts a collapsed peer's head that the catch-up task fetched (server/catchup.rs): the
    /// persister closes its TLog files, the store and the log are replaced (each step leaves
    /// files that start-up accepts), and a new persister writes the log from after the head.
    /// Nothing else runs in the core meanwhile; the machine is catching up, so it sends nothing
    /// to persist. A failure stops the node rather than go on in a state it does not understand.
    async fn adopt_head(&mut self, head: catchup::FetchedHead) -> Result<(), ServeError> {
        if self.store.sled_mut().is_none() {
            let why = "a node in memory (simulation) keeps no head and cannot adopt one";
            return Err(ServeError::AdoptHead(why.into()));
        }
        if let Some(p) = self.persister.take() {
            p.close().await.map_err(ServeError::Tlog)?;
        }
        let node = &self.config.nodes[self.me];
        let store = self.store.sled_mut().expect("checked above");
        let writer = catchup::adopt_running(store, &head, self.dir.clone(), &self.config, node)
            .map_err(ServeError::AdoptHead)?;
        tracing::info!(head_i = head.head_i, "adopted a peer's head; the TLog restarts after it");
        let persisted = self.persisted_tx.clone();
        self.persister = Some(Persister::spawn(writer, self.dir.clone(), persisted));
        Ok(())
    }

    fn caught_up(&mut self, result: Result<Option<u64>, String>) -> Result<(), ServeError> {
        let Some(c) = self.catch_up.take() else { return Ok(()) };
        let reached = self.store.applied();
        match result {
            Ok(_) if reached.is_some_and(|a| a >= c.to_i) || c.to_i < self.store.next_i() => {
                let (last, prev) =
                    tlog::last_two(self.persister_dir()).map_err(ServeError::Tlog)?;
                tracing::info!(applied = ?reached, epoch = c.epoch, "caught up");
                self.feed(Input::CaughtUp { last, prev, applied: reached })
            }
            Ok(got) => {
                tracing::warn!(wanted = c.to_i, got = ?got, "catch-up came back short");
                self.feed(Input::CatchUpFailed)
            }
            Err(e) => {
                tracing::warn!("catch-up failed: {e}");
                self.feed(Input::CatchUpFailed)
            }
        }
    }

    fn persister_dir(&self) -> &dyn LogDir {
        // Read here only for the last two slots; the persister thread owns the writer.
        self.dir.as_ref()
    }

    // ---- clients -------------------------------------------------------------------------

    fn on_client(&mut self, m: CoreMsg) -> Result<(), ServeError> {
        match m {
            CoreMsg::Committed { reply } => {
                let _ = reply.send(self.machine.committed_i());
            }
            CoreMsg::IsMaster { reply } => {
                let me = &self.config.nodes[self.me].name;
                let _ = reply.send(self.master_name().as_ref() == Some(me));
            }
            CoreMsg::Client { request, reply } => {
                if request.is_update() {
                    self.update(request, reply)?;
                } else {
                    let bytes = self.answer(request, reply)?;
                    if let Some((reply, bytes)) = bytes {
                        let _ = reply.send(bytes);
                    }
                }
            }
        }
        Ok(())
    }

    fn master_name(&self) -> Option<String> {
        let now = self.now();
        self.machine.master(now).map(|k| self.config.nodes[k].name.clone())
    }

    fn not_master(&self) -> Vec<u8> {
        encode_failure(Rc::NotMaster, self.master_name().unwrap_or_else(|| "None".into()))
    }

    /// Checks an update against the buffer limit; `Some(message)` refuses it.
    fn too_large(&self, update: &Update) -> Option<String> {
        super::limits::sequence_too_large(update, self.config.max_buffer_size)
    }

    fn update(
        &mut self,
        request: Request,
        reply: oneshot::Sender<Vec<u8>>,
    ) -> Result<(), ServeError> {
        let update = match request {
            Request::Set { key, value } => Update::Set { key, value },
            Request::Delete { key } => Update::Delete { key },
            Request::TestAndSet { key, expected, wanted } => {
                Update::TestAndSet { key, expected, wanted }
            }
            Request::Sequence { updates, synced: false } => Update::Sequence(updates),
            Request::Sequence { updates, synced: true } => Update::SyncedSequence(updates),
            Request::UserFunction { name, arg } => {
                if crate::store::UserFunctionRegistry::default().get(&name).is_none() {
                    let msg = format!("user function {name:?} is not registered on this node");
                    let _ = reply.send(encode_failure(Rc::BadInput, msg));
                    return Ok(());
                }
                Update::UserFunction { name, arg }
            }
            Request::Confirm { key, value } => {
                // Sets only if different: on the master, an equal value needs no round.
                if self.machine.lease_valid(self.now()) {
                    let current = self.store.get(&key).map_err(ServeError::Store)?;
                    if current.as_deref() == Some(value.as_slice()) {
                        let _ = reply.send(encode_payload(&Payload::Unit));
                        return Ok(());
                    }
                }
                Update::Set { key, value }
            }
            Request::DeletePrefix { prefix } => Update::DeletePrefix { prefix },
            Request::Replace { key, wanted } => Update::Replace { key, value: wanted },
            Request::Nop => Update::Nop,
            other => {
                let msg = format!("{} is not an update", other.name());
                let _ = reply.send(encode_failure(Rc::UnknownFailure, msg));
                return Ok(());
            }
        };
        if let Some(msg) = self.too_large(&update) {
            // Arakoon checks the master before the size.
            let refusal = if self.machine.lease_valid(self.now()) {
                encode_failure(Rc::BadInput, msg)
            } else {
                self.not_master()
            };
            let _ = reply.send(refusal);
            return Ok(());
        }
        let id = self.next_req;
        self.next_req += 1;
        self.pending.insert(id, reply);
        let (op, size) = super::statistics::op_of(&update);
        self.stats.begin(id, op, self.now(), size);
        self.feed(Input::ClientUpdate { id: ClientReqId(id), update })
    }

    /// Whether a read at consistency `c` may be served here; `Err` holds the refusal.
    fn may_read(&self, c: Consistency) -> Result<(), Vec<u8>> {
        match c {
            Consistency::Consistent => {
                if self.machine.lease_valid(self.now()) {
                    Ok(())
                } else {
                    Err(self.not_master())
                }
            }
            Consistency::NoGuarantees => Ok(()),
            Consistency::AtLeast(i) => {
                if self.store.applied().is_some_and(|a| a >= i) {
                    Ok(())
                } else {
                    let have = self.store.applied().map_or("none".to_string(), |a| a.to_string());
                    Err(encode_failure(
                        Rc::InconsistentRead,
                        format!("this node applied up to {have}, not yet {i}"),
                    ))
                }
            }
        }
    }

    /// Answers a read, a local or an admin command. Returns the reply to send now, if any
    /// (drop_master answers later, through the machine).
    #[allow(clippy::type_complexity)]
    fn answer(
        &mut self,
        request: Request,
        reply: oneshot::Sender<Vec<u8>>,
    ) -> Result<Option<(oneshot::Sender<Vec<u8>>, Vec<u8>)>, ServeError> {
        if let Some(c) = request.consistency() {
            if let Err(refusal) = self.may_read(c) {
                return Ok(Some((reply, refusal)));
            }
        }
        let store_err = ServeError::Store;
        let ok = |p: Payload| encode_payload(&p);
        // Reads are answered at once: timed by the core's clock, they take 0 s.
        let now = self.now();
        let bytes = match request {
            Request::Ping { cluster_id, .. } => {
                if cluster_id != self.config.cluster_id {
                    encode_failure(
                        Rc::WrongCluster,
                        format!("this node is in cluster {:?}", self.config.cluster_id),
                    )
                } else {
                    let (a, b, c) = SPOKEN_VERSION;
                    ok(Payload::String(format!("Arakoon {a}.{b}.{c}").into_bytes()))
                }
            }
            Request::WhoMaster => {
                ok(Payload::OptionString(self.master_name().map(String::into_bytes)))
            }
            Request::Exists { key, .. } => {
                ok(Payload::Bool(self.store.exists(&key).map_err(store_err)?))
            }
            Request::Get { key, .. } => match self.store.get(&key).map_err(store_err)? {
                Some(v) => {
                    self.stats.record(Op::Get, now, now, v.len());
                    ok(Payload::String(v))
                }
                None => encode_failure(Rc::NotFound, key),
            },
            Request::Range { range, .. } => {
                let keys = self.store.range(&range).map_err(store_err)?;
                self.stats.record(Op::Range, now, now, keys.len());
                ok(Payload::Keys(keys))
            }
            Request::PrefixKeys { prefix, max, .. } => {
                let keys = self.store.prefix_keys(&prefix, max).map_err(store_err)?;
                self.stats.record(Op::PrefixKeys, now, now, keys.len());
                ok(Payload::Keys(keys))
            }
            Request::RangeEntries { range, .. } => {
                let entries = self.store.range_entries(&range).map_err(store_err)?;
                self.stats.record(Op::RangeEntries, now, now, entries.len());
                ok(Payload::Entries(entries))
            }
            Request::RevRangeEntries { range, .. } => {
                let entries = self.store.rev_range_entries(&range).map_err(store_err)?;
                self.stats.record(Op::RevRangeEntries, now, now, entries.len());
                ok(Payload::Entries(entries))
            }
            Request::MultiGet { keys, .. } => {
                match self.store.multi_get(&keys).map_err(store_err)? {
                    Ok(values) => {
                        self.stats.record(Op::MultiGet, now, now, 0);
                        ok(Payload::Values(values))
                    }
                    Err(missing) => encode_failure(Rc::NotFound, missing),
                }
            }
            Request::MultiGetOption { keys, .. } => {
                self.stats.record(Op::MultiGetOption, now, now, 0);
                ok(Payload::OptionValues(self.store.multi_get_option(&keys).map_err(store_err)?))
            }
            Request::Assert { key, value, .. } => {
                if self.store.get(&key).map_err(store_err)? == value {
                    ok(Payload::Unit)
                } else {
                    encode_failure(Rc::AssertionFailed, key)
                }
            }
            Request::AssertExists { key, .. } => {
                if self.store.exists(&key).map_err(store_err)? {
                    ok(Payload::Unit)
                } else {
                    encode_failure(Rc::AssertionFailed, key)
                }
            }
            Request::GetKeyCount => {
                let n = self.store.key_count().map_err(store_err)?;
                ok(Payload::Int64(i64::try_from(n).unwrap_or(i64::MAX)))
            }
            Request::ExpectProgressPossible => {
                ok(Payload::Bool(self.machine.expect_progress_possible(self.now())))
            }
            Request::Statistics => {
                let node_is =
                    self.stats.node_is(&self.config.nodes[self.me].name, self.store.applied());
                ok(Payload::String(self.stats.encode(&node_is)))
            }
            Request::Version => {
                let (major, minor, patch) = SPOKEN_VERSION;
                let info = super::limits::version_info();
                ok(Payload::Version { major, minor, patch, info })
            }
            Request::CurrentState => {
                let name = super::state_name::arakoon_state_name(
                    self.machine.role(),
                    self.master_name().is_some(),
                );
                ok(Payload::String(name.as_bytes().to_vec()))
            }
            Request::NodeState => ok(Payload::String(self.current_state().into_bytes())),
            // Arakoon answers At_least 0 when nothing is applied.
            Request::GetTxid => {
                ok(Payload::Consistency(Consistency::AtLeast(self.store.applied().unwrap_or(0))))
            }
            Request::OptimizeDb | Request::DefragDb => {
                if self.machine.role() == RoleName::Master {
                    encode_failure(
                        Rc::NotSupported,
                        "optimize_db and defrag_db are refused on the master; run them on a slave",
                    )
                } else {
                    self.store.flush().map_err(store_err)?;
                    ok(Payload::Unit)
                }
            }
            Request::FlushStore => {
                self.store.flush().map_err(store_err)?;
                ok(Payload::Unit)
            }
            // Arakoon: refused on a single node; a no-op (OK) on a node that is not the master.
            Request::DropMaster if self.config.nodes.len() == 1 => {
                encode_failure(Rc::NotSupported, "drop master not supported for singletons")
            }
            Request::DropMaster
                if self.master_name().as_ref() != Some(&self.config.nodes[self.me].name) =>
            {
                ok(Payload::Unit)
            }
            // Arakoon reads the routing on the master only; a cluster without one has none.
            Request::GetRouting | Request::GetNurseryCfg => {
                match self.may_read(Consistency::Consistent) {
                    Ok(()) => encode_failure(Rc::NotFound, "Not_found"),
                    Err(refusal) => refusal,
                }
            }
            Request::DropMaster => {
                let id = self.next_req;
                self.next_req += 1;
                self.pending.insert(id, reply);
                self.feed(Input::DropMaster { id: ClientReqId(id) })?;
                return Ok(None);
            }
            other => encode_failure(
                Rc::UnknownFailure,
                format!("{} cannot be answered here", other.name()),
            ),
        };
        Ok(Some((reply, bytes)))
    }

    fn role_name(&self) -> &'static str {
        match self.machine.role() {
            RoleName::Master => "master",
            RoleName::Slave => "slave",
            RoleName::Candidate => "candidate",
            RoleName::CatchingUp => "catching_up",
        }
    }

    fn current_state(&self) -> String {
        let opt = |x: Option<u64>| x.map_or("none".to_string(), |i| i.to_string());
        format!(
            "{} {}: master={} lease_valid={} promised={} last={} committed={} applied={} learner={}",
            self.config.nodes[self.me].name,
            self.role_name(),
            self.master_name().unwrap_or_else(|| "None".into()),
            self.machine.lease_valid(self.now()),
            self.machine.promised(),
            opt(self.machine.last_i()),
            opt(self.machine.committed_i()),
            opt(self.store.applied()),
            self.machine.is_learner(),
        )
    }

    // ---- shutdown ------------------------------------------------------------------------

    async fn close(&mut self) -> Result<(), ServeError> {
        for (_, reply) in std::mem::take(&mut self.pending) {
            let _ = reply.send(encode_failure(Rc::GoingDown, "the node is shutting down"));
        }
        self.links.clear();
        let mut result = Ok(());
        if let Some(p) = self.persister.take() {
            if let Err(e) = p.close().await {
                result = Err(ServeError::Tlog(e));
            }
        }
        if let Err(e) = self.store.flush() {
            result = result.and(Err(ServeError::Store(e)));
        }
        tracing::info!(node = %self.config.nodes[self.me].name, "stopped");
        result
    }
}
