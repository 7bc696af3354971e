//! The consensus machine. See docs/CONSENSUS.md for the rules; each handler below names the rule
//! it implements.

use super::msg::{
    Action, ClientReqId, Input, Msg, NakReason, NodeIdx, ReadRefusal, ReadWant, Refusal, RoleName,
};
use super::rng::SplitMix64;
use crate::tlog::BallotRecord;
use crate::value::{Update, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// The highest ballot a node ever uses: the largest the peer protocol and the ballot record
/// carry (both store a ballot as a signed 64-bit integer), so every ballot the node persists or
/// sends reads back.
pub const MAX_BALLOT: u64 = i64::MAX as u64;

/// How far above the highest ballot a node has seen or promised a message's ballot may be.
///
/// Why it cannot refuse an honest candidate: a candidate's ballot is the next one of its own
/// above the highest it has seen, so less than `2 * nodes` above it, and a node starts at most
/// one election per tick (10 ms in the server). Even if all 64 nodes of a cluster failed an
/// election on every tick, each one above the last, the highest ballot would climb at most
/// 2 * 64 * 64 per tick, 819,200 a second: 2^48 takes more than ten years of that, all of it
/// while this node heard none of those ballots. A restarted node starts from the promise on its
/// disk, within the same reach. A forged or corrupt ballot beyond the reach is dropped unseen;
/// forging one's way up to [`MAX_BALLOT`] in steps of 2^48 takes 2^15 forged Prepares that each
/// win a promise (and, with peer authentication, the cluster's secret).
pub const BALLOT_REACH: u64 = 1 << 48;

/// The cluster as the core sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub names: Vec<String>,
    pub me: NodeIdx,
    pub quorum: usize,
    pub forced_master: Option<NodeIdx>,
    pub lease_ms: u64,
    /// The master gives up its lease this much before the slaves' timers can expire: room for
    /// clock drift between nodes.
    pub lease_margin_ms: u64,
    pub batch_updates_max: usize,
    pub batch_bytes_max: usize,
    pub queue_max: usize,
    /// Accept is sent again to silent slaves after this long.
    pub retransmit_ms: u64,
}

impl Config {
    /// Defaults for a cluster of `names`, with `me` among them.
    pub fn new(names: Vec<String>, me: NodeIdx, lease_ms: u64) -> Config {
        let quorum = names.len() / 2 + 1;
        Config {
            names,
            me,
            quorum,
            forced_master: None,
            lease_ms,
            lease_margin_ms: lease_ms / 10,
            batch_updates_max: 1024,
            batch_bytes_max: 4 * 1024 * 1024,
            queue_max: 64 * 1024,
            retransmit_ms: (lease_ms / 8).max(1),
        }
    }

    fn nodes(&self) -> usize {
        self.names.len()
    }
}

/// What a node found on its disk at start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Durable {
    pub ballot: BallotRecord,
    /// The TLog's last slot and its value.
    pub last: Option<(u64, Value)>,
    /// The value of the slot before it (if the log holds one).
    pub prev: Option<(u64, Value)>,
    /// The store's applied slot.
    pub applied: Option<u64>,
}

/// FNV-1a over a value's encoding: how nodes compare one slot's value without sending it.
pub fn value_hash(value: &Value) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in value.to_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[derive(Debug, Clone, PartialEq)]
struct Slot {
    i: u64,
    /// The ballot it was accepted under; `None` when unknown (then the node does not vote).
    n: Option<u64>,
    value: Value,
    hash: u64,
}

impl Slot {
    fn new(i: u64, n: Option<u64>, value: Value) -> Slot {
        let hash = value_hash(&value);
        Slot { i, n, value, hash }
    }
}

#[derive(Debug)]
struct InFlight {
    i: u64,
    value: Value,
    clients: Vec<ClientReqId>,
    acks: BTreeSet<NodeIdx>,
    self_durable: bool,
    first_sent_ms: u64,
    last_sent_ms: u64,
}

#[derive(Debug)]
struct MasterState {
    n: u64,
    /// When the committed MasterSet behind the current lease was first sent.
    lease_t0: Option<u64>,
    in_flight: Option<InFlight>,
    queue: VecDeque<(ClientReqId, Update)>,
}

#[derive(Debug)]
struct Promised {
    last: Option<(u64, u64, Value)>,
    prev_hash: Option<u64>,
}

#[derive(Debug)]
enum Role {
    Slave {
        election_at_ms: u64,
    },
    Candidate {
        n: u64,
        deadline_ms: u64,
        promises: BTreeMap<NodeIdx, Promised>,
        self_promised: bool,
    },
    Master(MasterState),
    CatchingUp {
        since_ms: u64,
    },
}

#[derive(Debug, Clone, Copy)]
enum After {
    Promise { to: NodeIdx, n: u64 },
    Accepted { to: NodeIdx, n: u64, i: u64 },
    SelfPromise { n: u64 },
    SelfAck { n: u64, i: u64 },
}

/// The pure consensus state machine of one node.
#[derive(Debug)]
pub struct Machine {
    cfg: Config,
    rng: SplitMix64,
    promised: u64,
    /// The newest ballot record emitted (durable once its job completes).
    record: BallotRecord,
    /// The highest ballot seen anywhere, to pick the next one above it.
    seen_ballot: u64,
    /// The highest ballot promised or accepted for another node.
    promised_others: u64,
    last: Option<Slot>,
    prev: Option<Slot>,
    committed: Option<u64>,
    applied: Option<u64>,
    role: Role,
    started_ms: u64,
    /// The master this node last accepted a MasterSet from, and when that lease expires.
    lease: Option<(NodeIdx, u64)>,
    /// No election before this (after drop_master).
    quiet_until_ms: u64,
    next_token: u64,
    after: BTreeMap<u64, After>,
    heard_ms: Vec<Option<u64>>,
    /// The Accept that sent this node to catch up, handled again once it has.
    held_accept: Option<(NodeIdx, Msg)>,
    /// Messages dropped because their ballot was beyond [`Machine::ballot_horizon`].
    refused_ballots: u64,
}

fn opt_lt(a: Option<u64>, b: Option<u64>) -> bool {
    match (a, b) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(a), Some(b)) => a < b,
    }
}

impl Machine {
    pub fn new(cfg: Config, durable: Durable, now_ms: u64, seed: u64) -> Machine {
        assert!(cfg.me < cfg.nodes() && cfg.quorum >= 1 && cfg.quorum <= cfg.nodes());
        let record = durable.ballot;
        let last = durable.last.map(|(i, v)| {
            let n =
                (i >= record.accepted_from && record.accepted_n > 0).then_some(record.accepted_n);
            Slot::new(i, n, v)
        });
        let prev = durable.prev.map(|(i, v)| Slot::new(i, None, v));
        let single = cfg.nodes() == 1;
        // The log rule: every slot but the last is committed (a 1-node cluster: all of them).
        let committed = match &last {
            Some(s) if single => Some(s.i),
            Some(s) => s.i.checked_sub(1),
            None => None,
        };
        let committed = committed.max(durable.applied);
        let nodes = cfg.nodes();
        let mut m = Machine {
            rng: SplitMix64::new(seed ^ (cfg.me as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            promised: record.promised,
            seen_ballot: record.promised,
            promised_others: record.promised,
            record,
            last,
            prev,
            committed,
            applied: durable.applied,
            role: Role::Slave { election_at_ms: now_ms },
            started_ms: now_ms,
            lease: None,
            quiet_until_ms: 0,
            next_token: 1,
            after: BTreeMap::new(),
            heard_ms: vec![None; nodes],
            held_accept: None,
            refused_ballots: 0,
            cfg,
        };
        let wait = if m.single() { 0 } else { m.cfg.lease_ms };
        m.role = Role::Slave { election_at_ms: now_ms + wait + m.jitter() };
        m
    }

    // ---- queries -------------------------------------------------------------------------

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn role(&self) -> RoleName {
        match self.role {
            Role::Slave { .. } => RoleName::Slave,
            Role::Candidate { .. } => RoleName::Candidate,
            Role::Master(_) => RoleName::Master,
            Role::CatchingUp { .. } => RoleName::CatchingUp,
        }
    }

    /// Who this node believes is master: itself, or the holder of the last lease it accepted.
    pub fn master(&self, now_ms: u64) -> Option<NodeIdx> {
        match &self.role {
            Role::Master(m) if m.lease_t0.is_some() => Some(self.cfg.me),
            _ => self.lease.filter(|(_, exp)| now_ms < *exp).map(|(m, _)| m),
        }
    }

    /// Whether this node may serve consistent reads now: a master inside its lease.
    pub fn lease_valid(&self, now_ms: u64) -> bool {
        match &self.role {
            Role::Master(m) => m.lease_t0.is_some_and(|t0| {
                now_ms < self.lease_until(t0) || crate::planted!(ReadAfterLeaseExpired)
            }),
            _ => false,
        }
    }

    /// Lease rule (5) for reads: whether a read that wants `want` may be served here now.
    /// `store_applied` is the slot the shell's store has applied, which is what the read sees.
    pub fn read_permission(
        &self,
        now_ms: u64,
        want: ReadWant,
        store_applied: Option<u64>,
    ) -> Result<(), ReadRefusal> {
        match want {
            ReadWant::Consistent if self.lease_valid(now_ms) => Ok(()),
            ReadWant::Consistent => Err(ReadRefusal::NotMaster { master: self.master(now_ms) }),
            ReadWant::AtLeast(wanted) if store_applied.is_some_and(|a| a >= wanted) => Ok(()),
            ReadWant::AtLeast(wanted) => {
                Err(ReadRefusal::NotYetApplied { applied: store_applied, wanted })
            }
            ReadWant::Anywhere => Ok(()),
        }
    }

    /// The moment the master's own view of its lease ends.
    fn lease_until(&self, t0: u64) -> u64 {
        t0 + self.cfg.lease_ms.saturating_sub(self.cfg.lease_margin_ms)
    }

    /// A master that heard from a quorum (itself included) within the last lease.
    pub fn expect_progress_possible(&self, now_ms: u64) -> bool {
        if !self.lease_valid(now_ms) {
            return false;
        }
        let recent = self
            .heard_ms
            .iter()
            .enumerate()
            .filter(|(k, t)| *k != self.cfg.me && t.is_some_and(|t| now_ms < t + self.cfg.lease_ms))
            .count();
        recent + 1 >= self.cfg.quorum
    }

    /// How many messages were dropped for a ballot beyond what the cluster can have reached.
    pub fn refused_ballots(&self) -> u64 {
        self.refused_ballots
    }

    pub fn promised(&self) -> u64 {
        self.promised
    }
    pub fn last_i(&self) -> Option<u64> {
        self.last.as_ref().map(|s| s.i)
    }
    pub fn committed_i(&self) -> Option<u64> {
        self.committed
    }
    pub fn applied_i(&self) -> Option<u64> {
        self.applied
    }

    // ---- the entry point -------------------------------------------------------------------

    /// Handles one input at `now_ms` on this node's clock, appending actions to `out`.
    pub fn handle(&mut self, now_ms: u64, input: Input, out: &mut Vec<Action>) {
        match input {
            Input::Tick => self.on_tick(now_ms, out),
            Input::Message { from, msg } => {
                assert!(from < self.cfg.nodes() && from != self.cfg.me, "message from {from}");
                if msg.ballot() > self.ballot_horizon() {
                    // Bounded ballots: a ballot no honest node can have reached is forged or
                    // corrupt. Heeding it would raise every later ballot past what the wire and
                    // the ballot record hold and stop the cluster for good; dropped unseen.
                    self.refused_ballots += 1;
                    return;
                }
                self.heard_ms[from] = Some(now_ms);
                self.seen_ballot = self.seen_ballot.max(msg.ballot());
                self.on_message(now_ms, from, msg, out);
            }
            Input::ClientUpdate { id, update } => self.on_client_update(now_ms, id, update, out),
            Input::Persisted { token } => self.on_persisted(now_ms, token, out),
            Input::CaughtUp { last, prev, applied } => {
                self.on_caught_up(now_ms, last, prev, applied);
                if let Some((from, msg)) = self.held_accept.take() {
                    self.on_message(now_ms, from, msg, out);
                }
            }
            Input::CatchUpFailed => {
                self.held_accept = None;
                if matches!(self.role, Role::CatchingUp { .. }) {
                    self.become_slave(now_ms, out);
                }
            }
            Input::DropMaster { id } => self.on_drop_master(now_ms, id, out),
        }
    }

    // ---- helpers ---------------------------------------------------------------------------

    fn single(&self) -> bool {
        self.cfg.nodes() == 1
    }

    fn jitter(&mut self) -> u64 {
        self.rng.below(self.cfg.lease_ms / 2 + 1)
    }

    fn peers(&self) -> impl Iterator<Item = NodeIdx> + '_ {
        (0..self.cfg.nodes()).filter(move |k| *k != self.cfg.me)
    }

    fn broadcast(&self, msg: Msg, out: &mut Vec<Action>) {
        for to in self.peers() {
            out.push(Action::Send { to, msg: msg.clone() });
        }
    }

    fn persist(
        &mut self,
        ballot: Option<BallotRecord>,
        entry: Option<(u64, Value)>,
        after: After,
        out: &mut Vec<Action>,
    ) {
        let token = self.next_token;
        self.next_token += 1;
        // The durable promise never goes down: a self-promise of a failed candidacy may exceed
        // what the node now promises in memory, and keeping it on disk is harmless.
        let ballot =
            ballot.map(|b| BallotRecord { promised: b.promised.max(self.record.promised), ..b });
        if let Some(b) = ballot {
            assert!(
                b.accepted_n >= self.record.accepted_n
                    || b.accepted_from > self.record.accepted_from,
                "accepted ballots only grow"
            );
            self.record = b;
        }
        self.after.insert(token, after);
        out.push(Action::Persist { token, ballot, entry });
    }

    /// A fresh ballot above everything seen, owned by this node; `None` once no ballot of this
    /// node fits below [`MAX_BALLOT`] (see [`BALLOT_REACH`] for why only thousands of
    /// forged messages that win promises get there, and never an honest cluster).
    fn next_ballot(&self) -> Option<u64> {
        let nodes = self.cfg.nodes() as u64;
        let round = self.seen_ballot.max(self.promised) / nodes;
        let n = round.checked_add(1)?.checked_mul(nodes)?.checked_add(self.cfg.me as u64)?;
        (n <= MAX_BALLOT).then_some(n)
    }

    /// The highest ballot a message may carry to be heard: [`BALLOT_REACH`] above the highest
    /// this node has seen or promised, and never above [`MAX_BALLOT`].
    fn ballot_horizon(&self) -> u64 {
        self.seen_ballot.max(self.promised).saturating_add(BALLOT_REACH).min(MAX_BALLOT)
    }

    /// Records slot `i` with `value` as this node's last, keeping the previous slot.
    fn set_last(&mut self, i: u64, n: Option<u64>, value: Value) {
        if let Some(old) = &self.last {
            assert!(i == old.i || i == old.i + 1, "slots only grow: {i} after {}", old.i);
            if i == old.i + 1 {
                self.prev = self.last.take();
            }
        } else if let Some(p) = &self.prev {
            assert!(i > p.i);
        }
        self.last = Some(Slot::new(i, n, value));
    }

    /// Marks slot `i` chosen and applies every chosen slot not yet applied, in order.
    fn commit_through(&mut self, i: u64, clients: Vec<ClientReqId>, out: &mut Vec<Action>) {
        self.committed = self.committed.max(Some(i));
        while opt_lt(self.applied, self.committed) {
            let next = self.applied.map_or(0, |a| a + 1);
            let slot = [&self.prev, &self.last]
                .into_iter()
                .flatten()
                .find(|s| s.i == next)
                .unwrap_or_else(|| panic!("slot {next} to apply is not in memory"));
            let clients = if next == i { clients.clone() } else { Vec::new() };
            out.push(Action::Apply { i: next, value: slot.value.clone(), clients });
            self.applied = Some(next);
        }
    }

    /// A learner that a master just brought up to date (its log matches the master's chosen
    /// slots) may vote from now on.
    fn graduate(&mut self, out: &mut Vec<Action>) {
        if self.record.learner {
            let record = BallotRecord { learner: false, ..self.record };
            let token = self.next_token;
            self.next_token += 1;
            self.record = record;
            out.push(Action::Persist { token, ballot: Some(record), entry: None });
        }
    }

    /// Whether this node was rebuilt after losing its disk and may not vote yet.
    pub fn is_learner(&self) -> bool {
        self.record.learner
    }

    fn become_slave(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let old = std::mem::replace(&mut self.role, Role::Slave { election_at_ms: 0 });
        if let Role::Candidate { n, .. } = &old {
            // A ballot this node promised only to itself, and will never propose under (the
            // next one is above `seen_ballot`), binds nobody: go back to the highest promise made
            // to another node, so that a failed candidacy does not make it refuse the master.
            if self.promised == *n {
                self.promised = self.promised_others;
            }
        }
        if let Role::Master(m) = old {
            // In flight: a quorum may still choose it under the next master. Queued: never
            // proposed, so it certainly did not happen.
            if let Some(f) = m.in_flight {
                for id in f.clients {
                    out.push(Action::Reply { id, result: Err(Refusal::NoLongerMaster) });
                }
            }
            for (id, _) in m.queue {
                let result = Err(Refusal::NotMaster { master: None });
                out.push(Action::Reply { id, result });
            }
        }
        let lease_end = self.lease.map_or(now_ms, |(_, exp)| exp.max(now_ms));
        let at = lease_end.max(self.quiet_until_ms) + self.jitter();
        self.role = Role::Slave { election_at_ms: at };
    }

    // ---- election rule (6) and restart rule (7) ----------------------------------------------

    fn may_run_election(&self) -> bool {
        // A learner forgot what it accepted: it can neither vote nor count itself.
        if self.record.learner {
            return false;
        }
        match self.cfg.forced_master {
            Some(m) => m == self.cfg.me,
            None => true,
        }
    }

    fn start_election(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let Some(n) = self.next_ballot() else { return };
        self.promised = n;
        self.seen_ballot = n;
        let deadline_ms = now_ms + (self.cfg.lease_ms / 2).max(1);
        self.role =
            Role::Candidate { n, deadline_ms, promises: BTreeMap::new(), self_promised: false };
        let record = BallotRecord { promised: n, ..self.record };
        self.persist(Some(record), None, After::SelfPromise { n }, out);
        self.broadcast(Msg::Prepare { n, last_i: self.last_i() }, out);
    }

    fn on_tick(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        match &mut self.role {
            Role::Slave { election_at_ms } => {
                let lease_known = self.lease.is_some_and(|(_, exp)| now_ms < exp);
                if now_ms >= *election_at_ms && !lease_known && self.may_run_election() {
                    self.start_election(now_ms, out);
                }
            }
            Role::Candidate { deadline_ms, .. } => {
                if now_ms >= *deadline_ms {
                    self.become_slave(now_ms, out);
                }
            }
            Role::CatchingUp { since_ms } => {
                // The shell always answers a catch-up; this only guards against a lost answer.
                if now_ms >= *since_ms + 20 * self.cfg.lease_ms {
                    self.become_slave(now_ms, out);
                }
            }
            Role::Master(_) => self.master_tick(now_ms, out),
        }
    }

    // ---- lease rule (5) on the master ----------------------------------------------------------

    fn master_tick(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let Role::Master(m) = &self.role else { return };
        let lapsed = match m.lease_t0 {
            Some(t0) => now_ms >= self.lease_until(t0),
            // Still recovering: give up if recovery takes longer than a lease.
            None => {
                m.in_flight.as_ref().is_some_and(|f| now_ms >= f.first_sent_ms + self.cfg.lease_ms)
            }
        };
        if lapsed {
            self.lease = None;
            self.become_slave(now_ms, out);
            return;
        }
        let retransmit = self.cfg.retransmit_ms;
        let Role::Master(m) = &mut self.role else { return };
        if let Some(f) = &mut m.in_flight {
            if now_ms >= f.last_sent_ms + retransmit {
                f.last_sent_ms = now_ms;
                let msg = Msg::Accept {
                    n: m.n,
                    i: f.i,
                    value: f.value.clone(),
                    prev_hash: self.prev.as_ref().filter(|p| p.i + 1 == f.i).map(|p| p.hash),
                };
                let silent: Vec<NodeIdx> = (0..self.cfg.nodes())
                    .filter(|k| *k != self.cfg.me && !f.acks.contains(k))
                    .collect();
                for to in silent {
                    out.push(Action::Send { to, msg: msg.clone() });
                }
            }
            return;
        }
        self.propose_next(now_ms, out);
    }

    /// With nothing in flight: renew the lease when due, else propose the queued updates.
    fn propose_next(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let Role::Master(m) = &mut self.role else { return };
        if m.in_flight.is_some() {
            return;
        }
        let renew = m.lease_t0.is_none_or(|t0| now_ms >= t0 + self.cfg.lease_ms / 2);
        let (value, clients) = if renew {
            let master = self.cfg.names[self.cfg.me].clone();
            (Value::MasterSet { master, lease_start: 0 }, Vec::new())
        } else if !m.queue.is_empty() {
            // Group commit (rule 8): everything queued, bounded by count and bytes.
            let mut updates = Vec::new();
            let mut clients = Vec::new();
            let mut bytes = 0usize;
            while let Some((_, u)) = m.queue.front() {
                let size = u.encoded_len();
                if !updates.is_empty()
                    && (updates.len() >= self.cfg.batch_updates_max
                        || bytes + size > self.cfg.batch_bytes_max)
                {
                    break;
                }
                let (id, u) = m.queue.pop_front().expect("front exists");
                bytes += size;
                let synced = matches!(u, Update::SyncedSequence(_));
                updates.push(u);
                clients.push(id);
                if synced {
                    break;
                }
            }
            let synced = updates.iter().any(|u| matches!(u, Update::SyncedSequence(_)));
            (Value::Client { synced, updates }, clients)
        } else {
            return;
        };
        let i = self.last_i().map_or(0, |l| l + 1);
        self.propose(now_ms, i, value, clients, out);
    }

    /// Sends Accept for slot `i` and persists it locally (the master votes once durable).
    fn propose(
        &mut self,
        now_ms: u64,
        i: u64,
        value: Value,
        clients: Vec<ClientReqId>,
        out: &mut Vec<Action>,
    ) {
        let Role::Master(m) = &self.role else { return };
        let n = m.n;
        if self.last.as_ref().is_some_and(|l| l.i + 1 == i) || self.last.is_none() {
            assert!(
                self.committed == self.last_i(),
                "propose {i} before the previous slot is chosen"
            );
        }
        let record = (self.record.accepted_n != n).then_some(BallotRecord {
            promised: self.promised,
            accepted_n: n,
            accepted_from: i,
            ..self.record
        });
        self.set_last(i, Some(n), value.clone());
        let prev_hash = self.prev.as_ref().filter(|p| p.i + 1 == i).map(|p| p.hash);
        self.broadcast(Msg::Accept { n, i, value: value.clone(), prev_hash }, out);
        self.persist(record, Some((i, value.clone())), After::SelfAck { n, i }, out);
        let Role::Master(m) = &mut self.role else { unreachable!() };
        m.in_flight = Some(InFlight {
            i,
            value,
            clients,
            acks: BTreeSet::new(),
            self_durable: false,
            first_sent_ms: now_ms,
            last_sent_ms: now_ms,
        });
    }

    // ---- messages ----------------------------------------------------------------------------

    fn on_message(&mut self, now_ms: u64, from: NodeIdx, msg: Msg, out: &mut Vec<Action>) {
        match msg {
            Msg::Prepare { n, last_i } => self.on_prepare(now_ms, from, n, last_i, out),
            Msg::Promise { n, last, prev_hash } => {
                self.on_promise(now_ms, from, n, last, prev_hash, out)
            }
            Msg::Nak { n, reason, last_i, .. } => self.on_nak(now_ms, from, n, reason, last_i, out),
            Msg::Accept { n, i, value, prev_hash } => {
                self.on_accept(now_ms, from, n, i, value, prev_hash, out)
            }
            Msg::Accepted { n, i } => self.on_accepted(now_ms, from, n, i, out),
            Msg::Commit { n, i, hash } => self.on_commit(n, i, hash, out),
        }
    }

    /// Promise rule (1).
    fn on_prepare(
        &mut self,
        now_ms: u64,
        from: NodeIdx,
        n: u64,
        last_i: Option<u64>,
        out: &mut Vec<Action>,
    ) {
        let nak = |reason| Action::Send {
            to: from,
            msg: Msg::Nak { n, reason, promised: self.promised, last_i: self.last_i() },
        };
        if n <= self.promised {
            out.push(nak(NakReason::LowBallot));
            return;
        }
        let restarting = self.record.learner
            || now_ms < self.started_ms + self.cfg.lease_ms
            || self.last.as_ref().is_some_and(|s| s.n.is_none() && self.committed != Some(s.i));
        if restarting || matches!(self.role, Role::CatchingUp { .. }) {
            out.push(nak(NakReason::Restarting));
            return;
        }
        // Behind first: a lagging candidate must learn to catch up, whatever the lease.
        if opt_lt(last_i, self.committed) && !crate::planted!(LaggingMaster) {
            out.push(nak(NakReason::Behind));
            return;
        }
        let held = self.lease_valid(now_ms)
            || self.lease.is_some_and(|(m, exp)| m != from && now_ms < exp);
        if held {
            out.push(nak(NakReason::LeaseHeld));
            return;
        }
        if !matches!(self.role, Role::Slave { .. }) {
            self.become_slave(now_ms, out);
        }
        self.promised = n;
        self.promised_others = n;
        let record = BallotRecord { promised: n, ..self.record };
        self.persist(Some(record), None, After::Promise { to: from, n }, out);
    }

    fn promise_msg(&self, n: u64) -> Msg {
        let last = self.last.as_ref().map(|s| {
            // A committed last slot may report any ballot: its value is the chosen one.
            (s.i, s.n.unwrap_or(0), s.value.clone())
        });
        let prev_hash = self
            .prev
            .as_ref()
            .filter(|p| self.last.as_ref().is_some_and(|l| p.i + 1 == l.i))
            .map(|p| p.hash);
        Msg::Promise { n, last, prev_hash }
    }

    /// Candidate rule (2).
    fn on_promise(
        &mut self,
        now_ms: u64,
        from: NodeIdx,
        n: u64,
        last: Option<(u64, u64, Value)>,
        prev_hash: Option<u64>,
        out: &mut Vec<Action>,
    ) {
        let Role::Candidate { n: mine, promises, .. } = &mut self.role else { return };
        if *mine != n {
            return;
        }
        promises.insert(from, Promised { last, prev_hash });
        self.try_win(now_ms, out);
    }

    fn try_win(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let Role::Candidate { n, promises, self_promised, .. } = &self.role else { return };
        if !*self_promised || promises.len() + 1 < self.cfg.quorum {
            return;
        }
        let n = *n;
        // The highest slot any promiser holds, and among its holders the highest ballot.
        let mut best: Option<(u64, u64, Value, Option<u64>, NodeIdx)> =
            self.last.as_ref().map(|s| (s.i, s.n.unwrap_or(0), s.value.clone(), None, self.cfg.me));
        for (&k, p) in promises {
            if let Some((i, pn, v)) = &p.last {
                let better = match &best {
                    None => true,
                    Some((bi, bn, ..)) => (*i, *pn) > (*bi, *bn),
                };
                if better {
                    best = Some((*i, *pn, v.clone(), p.prev_hash, k));
                }
            }
        }
        let promises_for_check: Vec<(NodeIdx, Option<u64>, Option<u64>)> =
            promises.iter().map(|(k, p)| (*k, p.last.as_ref().map(|l| l.0), p.prev_hash)).collect();
        let Some((s, _, value, _, holder)) = best else {
            // Nobody holds anything: start the log with this node's MasterSet.
            self.role = Role::Master(MasterState {
                n,
                lease_t0: None,
                in_flight: None,
                queue: VecDeque::new(),
            });
            self.propose_next(now_ms, out);
            return;
        };
        // This node must hold the chosen slot s-1 before it can re-propose s.
        let my_last = self.last_i();
        let ok = match my_last {
            _ if crate::planted!(LaggingMaster) => true,
            Some(l) if l >= s => true,
            Some(l) if l + 1 == s => {
                let mine = self.last.as_ref().map(|x| x.hash);
                promises_for_check
                    .iter()
                    .any(|(_, li, ph)| *li == Some(s) && *ph == mine && ph.is_some())
            }
            None if s == 0 => true,
            _ => false,
        };
        if !ok {
            let source = promises_for_check
                .iter()
                .find(|(_, li, _)| *li == Some(s))
                .map_or(holder, |(k, ..)| *k);
            self.role = Role::CatchingUp { since_ms: now_ms };
            out.push(Action::CatchUp { from: source, to_i: s - 1 });
            return;
        }
        self.role = Role::Master(MasterState {
            n,
            lease_t0: None,
            in_flight: None,
            queue: VecDeque::new(),
        });
        if my_last == Some(s) {
            // Re-propose the highest-ballot value for s (it may be chosen already; Paxos makes
            // re-proposing it under n safe).
            let value = if self.last.as_ref().is_some_and(|l| l.value == value) {
                self.last.as_ref().expect("last exists").value.clone()
            } else {
                value
            };
            self.repropose(now_ms, s, value, out);
        } else {
            self.repropose(now_ms, s, value, out);
        }
    }

    /// Re-proposes slot `s` (the same slot as this node's last, or the one after it).
    fn repropose(&mut self, now_ms: u64, s: u64, value: Value, out: &mut Vec<Action>) {
        if let Some(l) = &self.last {
            if l.i == s {
                // Overwrite the uncommitted last slot: keep `prev` as is.
                let Role::Master(m) = &self.role else { return };
                let n = m.n;
                let record = BallotRecord {
                    promised: self.promised,
                    accepted_n: n,
                    accepted_from: s,
                    ..self.record
                };
                self.last = Some(Slot::new(s, Some(n), value.clone()));
                let prev_hash = self.prev.as_ref().filter(|p| p.i + 1 == s).map(|p| p.hash);
                self.broadcast(Msg::Accept { n, i: s, value: value.clone(), prev_hash }, out);
                self.persist(
                    Some(record),
                    Some((s, value.clone())),
                    After::SelfAck { n, i: s },
                    out,
                );
                let Role::Master(m) = &mut self.role else { unreachable!() };
                m.in_flight = Some(InFlight {
                    i: s,
                    value,
                    clients: Vec::new(),
                    acks: BTreeSet::new(),
                    self_durable: false,
                    first_sent_ms: now_ms,
                    last_sent_ms: now_ms,
                });
                return;
            }
        }
        // s is one past this node's last, which is chosen.
        if let Some(l) = self.last_i() {
            self.commit_through(l, Vec::new(), out);
        }
        self.propose(now_ms, s, value, Vec::new(), out);
    }

    fn on_nak(
        &mut self,
        now_ms: u64,
        from: NodeIdx,
        n: u64,
        reason: NakReason,
        last_i: Option<u64>,
        out: &mut Vec<Action>,
    ) {
        let (Role::Candidate { n: mine, .. } | Role::Master(MasterState { n: mine, .. })) =
            &self.role
        else {
            return;
        };
        if *mine != n {
            return;
        }
        match reason {
            NakReason::Behind => {
                if matches!(self.role, Role::Master(_)) {
                    self.become_slave(now_ms, out);
                }
                let to_i = last_i.and_then(|l| l.checked_sub(1));
                match to_i {
                    Some(to_i) if opt_lt(self.committed, Some(to_i)) => {
                        self.role = Role::CatchingUp { since_ms: now_ms };
                        out.push(Action::CatchUp { from, to_i });
                    }
                    _ => self.become_slave(now_ms, out),
                }
            }
            // A master keeps its lease: a node with a higher ballot either cannot win (the
            // lease holds at a quorum) or will win, in which case this master's rounds fail and
            // its lease lapses. A candidate gives up.
            NakReason::LowBallot if matches!(self.role, Role::Master(_)) => {}
            NakReason::LowBallot => self.become_slave(now_ms, out),
            NakReason::LeaseHeld | NakReason::Restarting => {
                // Others may still promise; the candidate's deadline bounds the attempt.
            }
        }
    }

    /// Accept rule (3).
    #[allow(clippy::too_many_arguments)] // one argument per field of the message
    fn on_accept(
        &mut self,
        now_ms: u64,
        from: NodeIdx,
        n: u64,
        i: u64,
        value: Value,
        prev_hash: Option<u64>,
        out: &mut Vec<Action>,
    ) {
        if n < self.promised && !crate::planted!(AcceptLowerBallot) {
            out.push(Action::Send {
                to: from,
                msg: Msg::Nak {
                    n,
                    reason: NakReason::LowBallot,
                    promised: self.promised,
                    last_i: self.last_i(),
                },
            });
            return;
        }
        if matches!(self.role, Role::CatchingUp { .. }) {
            return;
        }
        if n > self.promised || !matches!(self.role, Role::Slave { .. }) {
            if matches!(self.role, Role::Master(MasterState { n: mine, .. }) if mine == n) {
                return; // our own ballot: cannot come from another node
            }
            self.become_slave(now_ms, out);
            self.promised = n;
        }
        self.promised_others = self.promised_others.max(n);
        let my_last = self.last_i();
        match my_last {
            Some(l) if l == i => {
                if self.last.as_ref().is_some_and(|s| s.n == Some(n)) {
                    // A duplicate: already accepted under n; answer again once durable.
                    let record = None;
                    self.persist(record, None, After::Accepted { to: from, n, i }, out);
                    return;
                }
            }
            Some(l) if l + 1 == i => {
                let mine = self.last.as_ref().map(|s| s.hash);
                // A last slot known committed holds the chosen value already; otherwise it must
                // match the master's.
                let verified = self.committed == Some(l)
                    || (prev_hash.is_some() && prev_hash == mine)
                    || crate::planted!(CommitUnverifiedSlot);
                if !verified {
                    // Our last slot may hold a value that was not chosen: fetch the chosen one.
                    self.role = Role::CatchingUp { since_ms: now_ms };
                    out.push(Action::CatchUp { from, to_i: l });
                    return;
                }
                self.graduate(out);
                self.commit_through(l, Vec::new(), out);
            }
            None if i == 0 => {}
            Some(l) if l > i => return, // stale
            _ => {
                // Behind: slots before i are chosen but missing here. Keep the Accept: once
                // caught up, this node can still accept slot i and so rejoin the quorum.
                self.role = Role::CatchingUp { since_ms: now_ms };
                out.push(Action::CatchUp { from, to_i: i - 1 });
                self.held_accept = Some((from, Msg::Accept { n, i, value, prev_hash }));
                return;
            }
        }
        let record =
            if self.record.promised != n || self.record.accepted_n != n || my_last == Some(i) {
                Some(BallotRecord { promised: n, accepted_n: n, accepted_from: i, ..self.record })
            } else {
                None
            };
        if let Value::MasterSet { master, .. } = &value {
            if let Some(k) = self.cfg.names.iter().position(|x| x == master) {
                self.lease = Some((k, now_ms + self.cfg.lease_ms));
            }
        }
        self.set_last(i, Some(n), value.clone());
        let jitter = self.jitter();
        if let Role::Slave { election_at_ms } = &mut self.role {
            let lease_end = self.lease.map_or(now_ms, |(_, e)| e);
            *election_at_ms = (*election_at_ms).max(lease_end + jitter);
        }
        self.persist(record, Some((i, value)), After::Accepted { to: from, n, i }, out);
        if crate::planted!(SkipFsyncBeforeAccepted) {
            out.push(Action::Send { to: from, msg: Msg::Accepted { n, i } });
        }
        if crate::planted!(ApplyBeforeCommit) {
            self.commit_through(i, Vec::new(), out);
        }
    }

    /// Commit rule (4), on the master.
    fn on_accepted(&mut self, now_ms: u64, from: NodeIdx, n: u64, i: u64, out: &mut Vec<Action>) {
        let Role::Master(m) = &mut self.role else { return };
        if m.n != n {
            return;
        }
        if let Some(f) = &mut m.in_flight {
            if f.i == i {
                f.acks.insert(from);
            }
        }
        self.check_commit(now_ms, out);
    }

    fn check_commit(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        let Role::Master(m) = &mut self.role else { return };
        let Some(f) = &m.in_flight else { return };
        let quorum = f.acks.len() + 1 >= self.cfg.quorum || crate::planted!(AckBeforeQuorum);
        if !f.self_durable || !quorum {
            return;
        }
        let f = m.in_flight.take().expect("in flight");
        let n = m.n;
        if matches!(&f.value, Value::MasterSet { master, .. } if *master == self.cfg.names[self.cfg.me])
        {
            m.lease_t0 = Some(f.first_sent_ms);
        }
        let hash = value_hash(&f.value);
        self.commit_through(f.i, f.clients, out);
        self.broadcast(Msg::Commit { n, i: f.i, hash }, out);
        self.propose_next(now_ms, out);
    }

    fn on_commit(&mut self, n: u64, i: u64, hash: u64, out: &mut Vec<Action>) {
        if n < self.promised || !matches!(self.role, Role::Slave { .. }) {
            return;
        }
        if self.last.as_ref().is_some_and(|s| s.i == i && s.hash == hash) {
            self.graduate(out);
            self.commit_through(i, Vec::new(), out);
        }
    }

    fn on_persisted(&mut self, now_ms: u64, token: u64, out: &mut Vec<Action>) {
        let Some(after) = self.after.remove(&token) else { return };
        match after {
            After::Promise { to, n } => {
                if self.promised == n {
                    out.push(Action::Send { to, msg: self.promise_msg(n) });
                }
            }
            After::Accepted { to, n, i } => {
                if self.promised == n && self.last_i() >= Some(i) {
                    out.push(Action::Send { to, msg: Msg::Accepted { n, i } });
                }
            }
            After::SelfPromise { n } => {
                if let Role::Candidate { n: mine, self_promised, .. } = &mut self.role {
                    if *mine == n {
                        *self_promised = true;
                        self.try_win(now_ms, out);
                    }
                }
            }
            After::SelfAck { n, i } => {
                if let Role::Master(m) = &mut self.role {
                    if let Some(f) = &mut m.in_flight {
                        if m.n == n && f.i == i {
                            f.self_durable = true;
                        }
                    }
                }
                self.check_commit(now_ms, out);
            }
        }
    }

    fn on_caught_up(
        &mut self,
        now_ms: u64,
        last: Option<(u64, Value)>,
        prev: Option<(u64, Value)>,
        applied: Option<u64>,
    ) {
        if let Some((i, v)) = last {
            // Caught-up slots are chosen: any ballot may be reported for them.
            self.prev = prev.filter(|(p, _)| p + 1 == i).map(|(p, pv)| Slot::new(p, Some(0), pv));
            self.last = Some(Slot::new(i, Some(0), v));
            self.committed = self.committed.max(Some(i));
        }
        self.applied = self.applied.max(applied);
        if matches!(self.role, Role::CatchingUp { .. }) {
            let at = now_ms + self.jitter();
            self.role = Role::Slave { election_at_ms: at };
        }
    }

    fn on_client_update(
        &mut self,
        now_ms: u64,
        id: ClientReqId,
        update: Update,
        out: &mut Vec<Action>,
    ) {
        let master = self.master(now_ms);
        let queue_max = self.cfg.queue_max;
        let Role::Master(m) = &mut self.role else {
            out.push(Action::Reply { id, result: Err(Refusal::NotMaster { master }) });
            return;
        };
        if m.queue.len() >= queue_max {
            out.push(Action::Reply { id, result: Err(Refusal::QueueFull) });
            return;
        }
        m.queue.push_back((id, update));
        if m.lease_t0.is_some() {
            self.propose_next(now_ms, out);
        }
    }

    fn on_drop_master(&mut self, now_ms: u64, id: ClientReqId, out: &mut Vec<Action>) {
        if self.single() {
            out.push(Action::Reply { id, result: Err(Refusal::SoleNode) });
            return;
        }
        if !matches!(self.role, Role::Master(_)) {
            let master = self.master(now_ms);
            out.push(Action::Reply { id, result: Err(Refusal::NotMaster { master }) });
            return;
        }
        // Stay out of the next election so that another node takes over.
        self.quiet_until_ms = now_ms + 2 * self.cfg.lease_ms;
        self.lease = None;
        self.become_slave(now_ms, out);
        out.push(Action::Reply { id, result: Ok(()) });
    }
}
