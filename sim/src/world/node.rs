//! One simulated node: the real node shell (the consensus machine, a memory store, the clients'
//! table) with a real TLog writer over a simulated disk, and its own clock. Crashing drops
//! everything volatile (machine, writer and the un-synced bytes on disk) and keeps the store as
//! it was last flushed, as sled keeps what it flushed ([`SimNode::flushed`]); restarting
//! rebuilds the rest from the disk exactly as the server does: validate the TLog (cutting a
//! torn tail, as an operator would), load the ballot record, check that a collapsed log's head
//! covers its first slot, open the flushed store if it reaches the log's first slot or start
//! from the head's copy (`memory_store_kept`, the same checks as the server's), and replay
//! what the store lacks; a store ahead of its log is refused, as the server refuses it. The
//! log is read once: the validation hands over the committed slots replay applies.

use super::clock::SimClock;
use arakoon_node::consensus::{Config, Durable, Machine, Msg, NodeIdx};
use arakoon_node::head;
use arakoon_node::replay::{replay_read, ReplayError};
use arakoon_node::server::persist::GroupWriter;
use arakoon_node::server::startup::StartError;
use arakoon_node::server::storage::memory_store_kept;
use arakoon_node::shell::{CatchUpJob, Outbox, PersistJob, Reply, Shell, ShellConfig};
use arakoon_node::store::{MemoryStore, Store};
use arakoon_node::tlog::{
    BallotRecord, LogDir, MemDir, TlogConfig, TlogError, TlogWriter, TornTail,
};
use arakoon_node::value::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a simulated node refuses to start: its TLog or ballot record (as at the real node's
/// start-up), or the replay of its log into the store. The text is the node crate's own.
#[derive(Debug, thiserror::Error)]
pub enum StartRefused {
    #[error(transparent)]
    Tlog(#[from] TlogError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// The log and its head do not fit together, or the head is unreadable (as the server's
    /// start-up says it).
    #[error(transparent)]
    Start(#[from] StartError),
}

pub struct SimNode {
    pub name: String,
    pub disk: MemDir,
    pub clock: SimClock,
    pub state: Option<Running>,
    /// Every slot this node ever applied, with its value, across restarts (for the checks).
    /// Values equal to the first one applied at their slot by any node share it
    /// ([`World::slot_values`](super::run::World)): one copy a slot, not one a node.
    pub applied: BTreeMap<u64, Arc<Value>>,
    /// Bumped on every crash: events scheduled for an older incarnation are ignored.
    pub epoch: u64,
    pub paused: bool,
    /// Its disk was lost: the operator restores it before the next start.
    pub wiped: bool,
    /// Its disk is full: every write fails until space is freed; it is not started meanwhile.
    pub disk_full: bool,
    /// Its store as last flushed, which outlives a crash as sled's flushed state does: the
    /// store is copied here a second after the copy before, at an apply ([`SimNode::flush`];
    /// the server's store is flushed every second, `store/sled_flusher.rs`), and a start
    /// opens it as the server's start-up opens its store. Gone with the disk, and after an
    /// adoption (the world leaves the adoption's store step on disk out: the node then starts
    /// from the head, as a node whose store was lost does).
    pub flushed: Option<MemoryStore>,
    /// When [`SimNode::flushed`] was taken (true µs).
    pub flushed_at_us: u64,
    /// The last start opened the flushed store (not a head's copy nor a new store).
    pub started_from_flushed: bool,
    /// Its TLog was damaged at rest (a bit flip, a cut, a deleted file) since it last started:
    /// its next start may refuse the log, and the operator then rebuilds it as a learner. Until
    /// that start, the world counts it as a node that lost its vote.
    pub damaged: bool,
}

/// A waiting client, to the world: the client and its operation.
pub type Waiter = (usize, u64);

/// What a running node holds in memory: the node shell (read its `machine` and `store` through
/// it) and the server's persister work ([`GroupWriter`]: group commit over the TLog writer),
/// which the world drives: it decides when a group is written, the node's code what.
pub struct Running {
    pub shell: Shell<MemoryStore, Waiter>,
    pub persister: GroupWriter,
}

impl std::ops::Deref for Running {
    type Target = Shell<MemoryStore, Waiter>;
    fn deref(&self) -> &Self::Target {
        &self.shell
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.shell
    }
}

/// What a node's shell asked of the world during one input, in order: the world carries each
/// out with its network, disk and clients (world/run.rs).
#[derive(Debug)]
pub enum Effect {
    Send { to: NodeIdx, msg: Msg },
    Persist(PersistJob),
    Reply { waiter: Waiter, reply: Reply },
    CatchUp(CatchUpJob),
    Applied { i: u64, value: Arc<Value> },
}

/// The simulated node's outbox: a buffer of effects (stateright-style), and the first value
/// applied at each slot by any node, which an equal applied value shares instead of a copy.
#[derive(Debug)]
pub struct Effects<'a> {
    pub fx: Vec<Effect>,
    slot_values: &'a BTreeMap<u64, Arc<Value>>,
}

impl<'a> Effects<'a> {
    pub fn new(slot_values: &'a BTreeMap<u64, Arc<Value>>) -> Effects<'a> {
        Effects { fx: Vec::new(), slot_values }
    }
}

impl Outbox<Waiter> for Effects<'_> {
    fn send(&mut self, to: NodeIdx, msg: Msg) {
        self.fx.push(Effect::Send { to, msg });
    }
    fn persist(&mut self, job: PersistJob) {
        self.fx.push(Effect::Persist(job));
    }
    fn reply(&mut self, waiter: Waiter, reply: Reply) {
        self.fx.push(Effect::Reply { waiter, reply });
    }
    fn catch_up(&mut self, job: CatchUpJob) {
        self.fx.push(Effect::CatchUp(job));
    }
    fn applied(&mut self, i: u64, value: &Value) {
        let value = match self.slot_values.get(&i) {
            Some(first) if **first == *value => Arc::clone(first),
            _ => Arc::new(value.clone()),
        };
        self.fx.push(Effect::Applied { i, value });
    }
}

/// How often a node's store is flushed (µs): the server's period (`store/sled_flusher.rs`).
const STORE_FLUSH_US: u64 = 1_000_000;

/// The TLog configuration of simulated nodes: small files, so rollover happens often.
pub fn tlog_config() -> TlogConfig {
    TlogConfig { entries_per_file_max: 64, file_bytes_max: 256 * 1024 }
}

impl SimNode {
    pub fn new(name: String, clock: SimClock) -> SimNode {
        let disk = MemDir::new(name.clone());
        SimNode {
            name,
            disk,
            clock,
            state: None,
            applied: BTreeMap::new(),
            epoch: 0,
            paused: false,
            wiped: false,
            flushed: None,
            flushed_at_us: 0,
            started_from_flushed: false,
            disk_full: false,
            damaged: false,
        }
    }

    pub fn is_up(&self) -> bool {
        self.state.is_some()
    }

    /// Starts (or restarts) from the disk. Returns a description of any repair done, or why
    /// the node refuses to start (its files, as the real node's start-up would say).
    pub fn start(
        &mut self,
        cfg: Config,
        shell: ShellConfig,
        tlog: TlogConfig,
        cluster_id: &str,
        now_ms: u64,
        seed: u64,
    ) -> Result<Option<String>, StartRefused> {
        let dir: Arc<dyn LogDir> = Arc::new(self.disk.clone());
        // One pass over the log: it is validated (a torn tail cut, as an operator would), and
        // the committed slots it holds are kept for the store, rebuilt from nothing.
        let mut committed = Vec::new();
        let (mut writer, mut report) =
            TlogWriter::open_with(dir.clone(), tlog, &self.name, TornTail::Cut, &mut |i, v| {
                committed.push((i, v))
            })?;
        let repair = report
            .cut
            .map(|(file, at, cut)| format!("cut a torn tail of {cut} bytes at {file}:{at}"));
        let ballot = BallotRecord::load(dir.as_ref())?;
        // The store as last flushed, if it reaches the log's first slot; a collapsed log's
        // head otherwise, as on the server (a new store with neither).
        let (mut store, from_head) = memory_store_kept(cluster_id, &dir, self.flushed.take())?;
        self.started_from_flushed = !from_head;
        // A store from a head past the whole log: an adoption a crash interrupted, finished as
        // the server's start-up finishes it.
        if from_head
            && head::finish_interrupted_adoption(dir.as_ref(), store.applied(), report.last_i)
                .map_err(StartError::Head)?
        {
            drop(writer);
            committed.clear();
            (writer, report) = TlogWriter::open(dir.clone(), tlog, &self.name)?;
        }
        let single = cfg.names.len() == 1;
        if single {
            committed.extend(report.last.clone());
        }
        replay_read(dir.as_ref(), &mut store, report.last_i, committed, single, &mut |_| {})?;
        let (last, prev) = (report.last, report.prev);
        // What the store applied is already in the node's applied history.
        let applied = store.applied();
        let durable = Durable { ballot, last, prev, applied };
        let machine = Machine::new(cfg, durable, now_ms, seed);
        // Replay ends with a flush, as on the server (the world says when: `flushed_at_us`).
        self.flushed = Some(store.clone());
        let shell = Shell::new(machine, store, shell, dir.clone(), now_ms);
        self.state = Some(Running { shell, persister: GroupWriter::new(writer, dir) });
        self.paused = false;
        self.damaged = false;
        Ok(repair)
    }

    /// The store's flush a second after the last one (true µs `now_us`), at an apply.
    pub fn flush(&mut self, now_us: u64) {
        if now_us < self.flushed_at_us + STORE_FLUSH_US {
            return;
        }
        if let Some(state) = &self.state {
            self.flushed = Some(state.shell.store.clone());
            self.flushed_at_us = now_us;
        }
    }

    /// The disk fills up (`true`: every operation on it fails as a full disk does) or space is
    /// freed (`false`).
    pub fn fill_disk(&mut self, full: bool) {
        self.disk_full = full;
        self.disk.set_failing(full.then_some(std::io::ErrorKind::StorageFull));
    }

    /// Power loss: volatile state and un-synced bytes are gone; `torn` keeps part of them.
    pub fn crash(&mut self, torn: impl FnMut(usize) -> usize) {
        self.state = None;
        self.disk.crash(torn);
        self.epoch += 1;
    }

    /// The process stops (it exits on an error, as the server does), without a power loss:
    /// what it wrote and did not sync stays in the page cache; a one-shot disk fault still
    /// armed goes with it.
    pub fn stop(&mut self) {
        self.state = None;
        self.disk.arm(None);
        self.epoch += 1;
    }

    /// The disk is gone: the node comes back empty and must catch up.
    pub fn wipe(&mut self) {
        self.crash(|_| 0);
        self.wipe_disk();
    }

    /// The files are gone (the store's with the TLog's).
    pub fn wipe_disk(&mut self) {
        self.disk.wipe();
        self.flushed = None;
    }
}
