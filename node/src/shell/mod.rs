//! The node shell: the one place that carries out what the consensus machine asks for.
//!
//! The machine ([`crate::consensus`]) decides; the shell acts: it owns the machine, the store and
//! the table of clients waiting for an answer, feeds the machine its inputs and carries out every
//! action it emits: sends and persist jobs first, then the rest, each in order. Sends and
//! persist jobs go to an [`Outbox`] (the server's peer links and persister, or the simulator's
//! network and disk); chosen slots are applied to the store in
//! order and their clients answered with typed [`Reply`]s; a catch-up is handed to the outbox to
//! fetch, and its end is judged here. Client requests enter here too: updates are admitted
//! (size limits) and proposed, reads pass the one read gate ([`Shell::read_gate`]) and are
//! answered from a snapshot of the store taken in the same turn, by a [`ReadJob`] that the
//! outbox runs beside the core ([`Outbox::read`]).
//!
//! The shell is synchronous and reads no clock (it is handed `now_ms`), so the server's event
//! loop and the tier-A simulator drive the very same code; what differs is the store type and the
//! outbox. See ARCHITECTURE.md, principle 4.

mod read_job;
mod reads;
mod requests;
pub mod state_name;
pub mod statistics;
mod status;

use crate::config::ClusterConfig;
use crate::consensus::{Action, ClientReqId, Input, Machine, Msg, NodeIdx, RoleName};
use crate::protocol::client::{encode_error, encode_ok, Payload};
use crate::rc::Rc;
use crate::store::{Store, StoreError, UpdateOutput, UpdateResult};
use crate::tlog::{self, BallotRecord, LogDir, TlogError};
use crate::value::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use thiserror::Error;

/// Whether someone waits on `msg` (the slaves for an Accept, a Prepare or a Hold to answer; the
/// master for an Accepted, a Promise or a Held to count): what [`Shell::feed_sends_first`] lets
/// the peer links write before an apply. A Commit and a Nak are not awaited: nothing waits for
/// them to go on.
fn awaited(msg: &Msg) -> bool {
    !matches!(msg, Msg::Commit { .. } | Msg::Nak { .. })
}

pub use read_job::ReadJob;

/// One unit of durable work from the consensus core: the entry, then the ballot record.
#[derive(Debug, Clone)]
pub struct PersistJob {
    pub token: u64,
    pub ballot: Option<BallotRecord>,
    pub entry: Option<(u64, Value)>,
}

/// A client's answer, typed ([`crate::protocol::client::Reply`]); the connection layer encodes
/// it once ([`encode_reply`]).
pub use crate::protocol::client::Reply;

/// A failed request's reply.
pub fn failed(rc: Rc, message: impl Into<Vec<u8>>) -> Reply {
    Reply::Failed { rc, message: message.into() }
}

/// The reply's return code.
pub fn reply_rc(reply: &Reply) -> Rc {
    match reply {
        Reply::Ok(_) => Rc::Ok,
        Reply::Failed { rc, .. } => *rc,
    }
}

/// Encodes a reply as the client protocol puts it on the wire.
pub fn encode_reply(reply: &Reply, out: &mut Vec<u8>) {
    match reply {
        Reply::Ok(payload) => encode_ok(payload, out),
        Reply::Failed { rc, message } => encode_error(*rc, message, out),
    }
}

/// A catch-up the shell asks its environment to carry out: fetch the committed slots
/// `from_i..=to_i` from node `from`, append them to the log and import them
/// ([`Shell::import`]), then report with [`Shell::catch_up_done`] and this `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchUpJob {
    pub epoch: u64,
    pub from: NodeIdx,
    pub from_i: u64,
    pub to_i: u64,
}

/// How a catch-up ended, as the shell judged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUpVerdict {
    /// The store reached the slot asked for: the machine was told `CaughtUp`.
    CaughtUp,
    /// The fetch ended before the slot asked for: the machine was told `CatchUpFailed`.
    Short,
    /// The fetch failed: the machine was told `CatchUpFailed`.
    Failed,
    /// A report of an older catch-up, or of none: ignored.
    Stale,
}

/// Where the shell's effects go. `W` is what a waiting client is to the environment (a reply
/// channel in the server, a client and operation number in the simulator).
pub trait Outbox<W> {
    /// A message to a peer.
    fn send(&mut self, to: NodeIdx, msg: Msg);
    /// A job to make durable; its token is fed back as `Input::Persisted` once it is, and jobs
    /// complete in the order they were handed over.
    fn persist(&mut self, job: PersistJob);
    /// The answer to a waiting client.
    fn reply(&mut self, waiter: W, reply: Reply);
    /// A catch-up to carry out.
    fn catch_up(&mut self, job: CatchUpJob);
    /// Slot `i` was chosen and is being applied (before its clients are answered); for
    /// observers such as the simulator's checks.
    fn applied(&mut self, _i: u64, _value: &Value) {}
    /// A read of the store, to run against its snapshot and answer (shell/read_job.rs). By
    /// default it runs at once, here (the simulator: nothing may race its time); the server runs
    /// it on its blocking pool, beside the core.
    fn read(&mut self, waiter: W, job: ReadJob) {
        let reply = job.run();
        self.reply(waiter, reply);
    }
}

/// What stops the shell: the node cannot go on and must restart.
#[derive(Debug, Error)]
pub enum ShellError {
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
    #[error("reading the TLog's last slots after a catch-up failed: {0}")]
    Tlog(#[from] TlogError),
}

/// What the shell needs of the cluster's configuration.
#[derive(Debug, Clone)]
pub struct ShellConfig {
    pub cluster_id: String,
    /// Node names, by index.
    pub names: Vec<String>,
    pub me: NodeIdx,
    pub max_value_size: u32,
    pub max_buffer_size: u32,
    /// The largest update the master can ship within its lease (node/src/limits_config.rs);
    /// larger ones are refused at admission.
    pub ship_bytes_max: u32,
    /// The largest range, range_entries, rev_range_entries or prefix_keys reply.
    pub reply_bytes_max: usize,
}

impl ShellConfig {
    pub fn new(config: &ClusterConfig, me: NodeIdx) -> ShellConfig {
        ShellConfig {
            cluster_id: config.cluster_id.clone(),
            names: config.names(),
            me,
            max_value_size: config.max_value_size,
            max_buffer_size: config.max_buffer_size,
            ship_bytes_max: config.limits.ship_bytes_max(config.lease_ms, config.max_buffer_size),
            reply_bytes_max: usize::try_from(config.limits.reply_bytes_max).unwrap_or(usize::MAX),
        }
    }
}

/// Clients waiting at most (a bound on the table; the server's connection limit keeps it far
/// below). A request beyond it is refused at once.
pub const PENDING_MAX: usize = 1 << 20;

/// The node shell. The machine and the store are public to read (roles, leases, applied slots);
/// everything that changes them goes through the shell's methods.
pub struct Shell<S: Store, W> {
    pub machine: Machine,
    pub store: S,
    config: ShellConfig,
    /// The node's log, read for its last two slots after a catch-up.
    dir: Arc<dyn LogDir>,
    /// Clients waiting for an update's outcome (or drop_master's), by request id.
    pending: BTreeMap<u64, W>,
    next_req: u64,
    /// The catch-up in progress.
    catching_up: Option<CatchUpJob>,
    catch_up_epoch: u64,
    /// The time of the input being handled (for the statistics' timings).
    now_ms: u64,
    /// Arakoon's operation counters (shell/statistics.rs), shared with the read jobs, which
    /// record their own durations wherever they run.
    stats: Arc<Mutex<statistics::Statistics>>,
    /// The clock that times reads and the memory figures (zero unless the server sets them).
    probes: statistics::HostProbes,
    /// The machine's actions, reused between inputs, and those carried out after the sends
    /// and persist jobs.
    actions: Vec<Action>,
    later: Vec<Action>,
}

impl<S: Store, W> Shell<S, W> {
    pub fn new(
        machine: Machine,
        store: S,
        config: ShellConfig,
        dir: Arc<dyn LogDir>,
        now_ms: u64,
    ) -> Self {
        Shell {
            machine,
            store,
            config,
            dir,
            pending: BTreeMap::new(),
            next_req: 1,
            catching_up: None,
            catch_up_epoch: 0,
            now_ms,
            stats: Arc::new(Mutex::new(statistics::Statistics::new(now_ms))),
            probes: statistics::HostProbes::default(),
            actions: Vec::new(),
            later: Vec::new(),
        }
    }

    /// Hands in the process's clock and memory figures for `statistics` (the server does; the
    /// simulator keeps the zero defaults so that it stays deterministic).
    pub fn set_host_probes(&mut self, probes: statistics::HostProbes) {
        self.probes = probes;
    }

    pub fn config(&self) -> &ShellConfig {
        &self.config
    }

    fn stats(&self) -> MutexGuard<'_, statistics::Statistics> {
        // A read job that panicked while recording left at worst one sample half counted.
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Clients waiting for an answer.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Feeds the machine one input and carries out its actions.
    pub fn feed(
        &mut self,
        now_ms: u64,
        input: Input,
        out: &mut impl Outbox<W>,
    ) -> Result<(), ShellError> {
        self.feed_sends_first(now_ms, input, out)?;
        self.finish(out)
    }

    /// The first half of [`Shell::feed`]: hands the machine `input` and carries out its sends
    /// and persist jobs, keeping the store's applies, the replies and a catch-up for
    /// [`Shell::finish`], which must follow before the next input. True when both halves have
    /// work and a send is one somebody waits on (an Accept for the next slot, an Accepted, see
    /// [`awaited`]): the server then lets its peer links write it before the store's apply of
    /// the slot just chosen holds its thread (issue 17). A Commit alone does not: written
    /// before the apply it would only delay the reply the client waits for (one client's
    /// every set).
    pub fn feed_sends_first(
        &mut self,
        now_ms: u64,
        input: Input,
        out: &mut impl Outbox<W>,
    ) -> Result<bool, ShellError> {
        // An unfinished input's actions go first, in their order.
        self.finish(out)?;
        self.now_ms = now_ms;
        match &input {
            Input::Tick => self.stats().report_if_due(now_ms),
            Input::Message { from, msg } => {
                if let Some(i) = statistics::slot_of(msg) {
                    self.stats().witness(&self.config.names[*from], i);
                }
            }
            _ => {}
        }
        let mut actions = std::mem::take(&mut self.actions);
        let was_master = self.machine.role() == RoleName::Master;
        self.machine.handle(now_ms, input, &mut actions);
        if was_master && self.machine.role() != RoleName::Master {
            tracing::warn!(now = ?self.machine.role(), "lost or gave up the master lease");
        }
        // Sends and persist jobs first, in their order: they start work elsewhere (the peer
        // links, the persister) that a quorum waits for, and none of them needs the store. The
        // store's applies, the replies and a catch-up follow, in theirs. A slave's apply of the
        // slot an accept committed no longer delays its accepted for the next (issue 17).
        let mut result = Ok(());
        let mut sent = false;
        for action in actions.drain(..) {
            match action {
                Action::Send { .. } | Action::Persist { .. } if result.is_ok() => {
                    sent |= matches!(&action, Action::Send { msg, .. } if awaited(msg));
                    result = self.execute(action, out)
                }
                Action::Send { .. } | Action::Persist { .. } => {}
                other => self.later.push(other),
            }
        }
        self.actions = actions;
        if let Err(e) = result {
            self.later.clear();
            return Err(e);
        }
        Ok(sent && !self.later.is_empty())
    }

    /// The second half of [`Shell::feed`]: the applies, replies and catch-up that
    /// [`Shell::feed_sends_first`] kept, in their order.
    pub fn finish(&mut self, out: &mut impl Outbox<W>) -> Result<(), ShellError> {
        let mut later = std::mem::take(&mut self.later);
        let mut result = Ok(());
        for action in later.drain(..) {
            if result.is_ok() {
                result = self.execute(action, out);
            }
        }
        self.later = later;
        result
    }

    fn execute(&mut self, action: Action, out: &mut impl Outbox<W>) -> Result<(), ShellError> {
        match action {
            Action::Send { to, msg } => out.send(to, msg),
            Action::Persist { token, ballot, entry } => {
                out.persist(PersistJob { token, ballot, entry })
            }
            Action::Apply { i, value, clients } => self.apply(i, &value, &clients, out)?,
            Action::Reply { id, result } => {
                self.stats().forget(id.0);
                if let Some(waiter) = self.pending.remove(&id.0) {
                    let (rc, message) = crate::rc::reply_of(&result, &self.machine.config().names);
                    out.reply(waiter, consensus_reply(rc, message));
                }
            }
            Action::CatchUp { from, to_i } => {
                self.catch_up_epoch += 1;
                let job = CatchUpJob {
                    epoch: self.catch_up_epoch,
                    from,
                    from_i: self.store.next_i(),
                    to_i,
                };
                self.catching_up = Some(job);
                out.catch_up(job);
            }
        }
        Ok(())
    }

    /// Applies chosen slot `i` and answers the clients of its updates, in order.
    fn apply(
        &mut self,
        i: u64,
        value: &Value,
        clients: &[ClientReqId],
        out: &mut impl Outbox<W>,
    ) -> Result<(), ShellError> {
        out.applied(i, value);
        if self.store.next_i() > i {
            return Ok(()); // replayed from the log at start-up already
        }
        let results = self.store.apply(i, value)?;
        for (id, result) in clients.iter().zip(results) {
            let count = match &result {
                Ok(UpdateOutput::Count(n)) => Some(usize::try_from(*n).unwrap_or(0)),
                _ => None,
            };
            self.stats().end(id.0, self.now_ms, count);
            if let Some(waiter) = self.pending.remove(&id.0) {
                out.reply(waiter, update_reply(result));
            }
        }
        Ok(())
    }

    /// Takes a client's request: an update is admitted and proposed (answered once applied or
    /// refused), a read or an admin command answered now (drop_master once the machine acts).
    pub fn request(
        &mut self,
        now_ms: u64,
        request: crate::protocol::client::Request,
        waiter: W,
        out: &mut impl Outbox<W>,
    ) -> Result<(), ShellError> {
        if request.is_update() {
            self.update(now_ms, request, waiter, out)
        } else {
            self.answer(now_ms, request, waiter, out)
        }
    }

    /// Keeps `waiter` until the machine answers request `id`; false if the table is full.
    fn wait(&mut self, waiter: W, out: &mut impl Outbox<W>) -> Option<ClientReqId> {
        if self.pending.len() >= PENDING_MAX {
            let msg = format!("{PENDING_MAX} requests already wait on this node; try again later");
            out.reply(waiter, failed(Rc::UnknownFailure, msg));
            return None;
        }
        let id = self.next_req;
        self.next_req += 1;
        self.pending.insert(id, waiter);
        Some(ClientReqId(id))
    }

    /// Entries fetched by a catch-up, from the store's next slot on: what of `entries` to append
    /// to the log and then [`Shell::import`]. Empty when they do not continue the store (a stale
    /// chunk after a restart of the fetch).
    pub fn importable(&self, entries: Vec<(u64, Value)>) -> Vec<(u64, Value)> {
        let next = self.store.next_i();
        let entries: Vec<(u64, Value)> = entries.into_iter().filter(|(i, _)| *i >= next).collect();
        if entries.first().is_none_or(|(i, _)| *i != next) {
            return Vec::new();
        }
        entries
    }

    /// Applies entries a catch-up fetched (and the log already holds) to the store.
    pub fn import(&mut self, entries: &[(u64, Value)]) -> Result<(), ShellError> {
        self.store.apply_many(entries)?;
        Ok(())
    }

    /// The catch-up `epoch` ended with `fetched` (`Ok(last slot fetched)` or why it failed);
    /// judges whether the node caught up and tells the machine.
    pub fn catch_up_done(
        &mut self,
        now_ms: u64,
        epoch: u64,
        fetched: Result<Option<u64>, impl std::fmt::Display>,
        out: &mut impl Outbox<W>,
    ) -> Result<CatchUpVerdict, ShellError> {
        let Some(job) = self.catching_up.filter(|j| j.epoch == epoch) else {
            return Ok(CatchUpVerdict::Stale);
        };
        self.catching_up = None;
        let reached = self.store.applied();
        let verdict = match &fetched {
            Ok(_) if reached.is_some_and(|a| a >= job.to_i) || job.to_i < self.store.next_i() => {
                CatchUpVerdict::CaughtUp
            }
            Ok(_) => CatchUpVerdict::Short,
            Err(_) => CatchUpVerdict::Failed,
        };
        match (&verdict, &fetched) {
            (CatchUpVerdict::CaughtUp, _) => {
                let (last, prev) = tlog::last_two(self.dir.as_ref())?;
                tracing::info!(applied = ?reached, epoch, "caught up");
                self.feed(now_ms, Input::CaughtUp { last, prev, applied: reached }, out)?;
            }
            (_, Ok(got)) => {
                tracing::warn!(wanted = job.to_i, got = ?got, "catch-up came back short");
                self.feed(now_ms, Input::CatchUpFailed, out)?;
            }
            (_, Err(e)) => {
                tracing::warn!("catch-up failed: {e}");
                self.feed(now_ms, Input::CatchUpFailed, out)?;
            }
        }
        Ok(verdict)
    }

    /// The node stops: every waiting client hears going_down.
    pub fn close(&mut self, out: &mut impl Outbox<W>) {
        for (_, waiter) in std::mem::take(&mut self.pending) {
            out.reply(waiter, failed(Rc::GoingDown, "the node is shutting down"));
        }
    }
}

/// The reply to a client that the machine answers itself (a refused or dropped update, a
/// drop_master): the one place its return code becomes the client's.
pub fn consensus_reply(rc: Rc, message: String) -> Reply {
    if rc == Rc::Ok {
        Reply::Ok(Payload::Unit)
    } else {
        failed(rc, message)
    }
}

/// The reply to the client of one applied update.
fn update_reply(result: UpdateResult) -> Reply {
    match result {
        Ok(UpdateOutput::Unit) => Reply::Ok(Payload::Unit),
        Ok(UpdateOutput::Previous(p)) | Ok(UpdateOutput::Returned(p)) => {
            Reply::Ok(Payload::OptionString(p))
        }
        Ok(UpdateOutput::Count(n)) => {
            Reply::Ok(Payload::Int32(i32::try_from(n).unwrap_or(i32::MAX)))
        }
        Err(f) => failed(f.rc, f.message),
    }
}

#[cfg(test)]
mod tests;
