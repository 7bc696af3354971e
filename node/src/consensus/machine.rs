//! The consensus machine: its state, its one entry point (`handle`), and the helpers every rule
//! shares (persist jobs, the last two slots, applying chosen slots in order). The rules of
//! docs/CONSENSUS.md live in one module per group, each with its tests beside it: `acceptor`
//! (promise and accept), `proposer` (candidate, commit, group commit), `lease`, `election`
//! (with bounded ballots), `learner` (restart and catch-up).

mod acceptor;
mod election;
mod learner;
mod lease;
mod proposer;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod value_hash_tests;

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

/// How long a master keeps its lease by Hold while one slot is on its way (lease rule 5), in
/// multiples of the time the slot's value takes at [`Config::link_bytes_per_s`]: a link this
/// many times slower than configured still carries it within the lease it keeps; a slot still
/// not chosen after that is stuck, and the master lets its lease lapse so that another node
/// can try.
pub const HOLD_SHIP_FACTOR: u64 = 16;

/// [`HOLD_SHIP_FACTOR`] times the time `bytes` take at `link_bytes_per_s`, ms
/// ([`Config::ship_allowance_ms`] of a configuration with that link speed).
pub fn ship_allowance_ms(bytes: usize, link_bytes_per_s: u64) -> u64 {
    let rate = u128::from(link_bytes_per_s.max(1));
    let ship_ms = (bytes as u128 * 1000).div_ceil(rate);
    let allowance = ship_ms.saturating_mul(u128::from(HOLD_SHIP_FACTOR));
    u64::try_from(allowance).unwrap_or(u64::MAX)
}

/// The default of [`Config::link_bytes_per_s`]: 64 MiB/s (node/src/limits_config.rs has the
/// configuration key).
pub const LINK_BYTES_PER_S_DEFAULT: u64 = 64 << 20;

/// The default of [`Config::batch_bytes_max`] (the `batch_max_bytes` key): 1 MiB. One slot is
/// decided at a time, and a slot's round (its TLog writes and fsyncs, its shipping, its apply)
/// grew faster than its bytes: with values of 1 MiB and 16 clients, slots of 4 MiB made 64 sets/s
/// and slots of one value 142 (docs/PERFORMANCE.md). A group of small updates stays bounded by
/// [`Config::batch_updates_max`] long before it reaches a MiB; an update larger than the bound
/// still goes, alone in its slot.
pub const BATCH_BYTES_MAX_DEFAULT: usize = 1 << 20;

/// Accepts a node catching up holds, to take in order once it has caught up. A slave that fell
/// a few slots behind once dropped every Accept while it caught up, so that it was behind again
/// when it had, for as long as the master outran a catch-up: a loop of catch-ups, each scanning
/// TLog files on both ends (a fifth of the nodes' CPU with 4 KiB values at 64 clients).
pub const HELD_ACCEPTS_MAX: usize = 16;

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
    /// What the slowest path from the master to a slave's TLog carries, network and disk
    /// together: how long the master may keep its lease by Hold while a large slot is shipped.
    pub link_bytes_per_s: u64,
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
            batch_bytes_max: BATCH_BYTES_MAX_DEFAULT,
            queue_max: 64 * 1024,
            retransmit_ms: (lease_ms / 8).max(1),
            link_bytes_per_s: LINK_BYTES_PER_S_DEFAULT,
        }
    }

    /// Until when (on the master's clock) a slot of `bytes` first sent at `first_sent_ms` may
    /// keep the master's lease by Hold: [`HOLD_SHIP_FACTOR`] times its shipping time at
    /// `link_bytes_per_s`. A small slot gets no Hold at all: it is chosen in a round trip.
    pub fn hold_until_ms(&self, first_sent_ms: u64, bytes: usize) -> u64 {
        first_sent_ms.saturating_add(self.ship_allowance_ms(bytes))
    }

    /// [`HOLD_SHIP_FACTOR`] times the time `bytes` take at `link_bytes_per_s`, ms: how long a
    /// value may be on its way before the node gives up on it.
    pub fn ship_allowance_ms(&self, bytes: usize) -> u64 {
        ship_allowance_ms(bytes, self.link_bytes_per_s)
    }

    fn nodes(&self) -> usize {
        self.names.len()
    }

    /// The clock error this configuration's lease margin covers (the lease rule in
    /// docs/CONSENSUS.md): beyond it, two nodes may both believe they hold a valid lease.
    ///
    /// Why this bound: the master's lease ends when its clock has counted `L - M` (lease minus
    /// margin) from `t0`, when it sent the MasterSet; a slave that accepted it after `t0` promises
    /// to no other candidate (and starts no election) before its own clock counted `L`, and every
    /// later master's lease starts after a promise from one such slave (quorums intersect). A
    /// clock that runs slow by at most `ρ` makes the master's `L - M` last at most
    /// `(L - M) / (1 - ρ)` of true time; a slave's clock that runs fast by at most `ρ` and steps
    /// forward by at most `S` (in total) during one lease counts `L` in at least
    /// `(L - S) / (1 + ρ)`. No overlap needs `(L - M)(1 + ρ) <= (L - S)(1 - ρ)`. Half the margin
    /// goes to steps (`S = M / 2`), the rest to rates: `ρ <= (M / 2) / (2L - 3M / 2)`. A step
    /// backwards is never allowed: a master whose clock steps back keeps its lease too long (the
    /// server reads a monotonic clock, which does not step back).
    pub fn clock_bound(&self) -> ClockBound {
        let (l, m) = (self.lease_ms as u128, self.lease_margin_ms.min(self.lease_ms) as u128);
        let step = m / 2;
        // 2L - 3M/2, in half-milliseconds to stay in integers: 4L - 3M over 2.
        let denominator = (4 * l).saturating_sub(3 * m).max(1);
        let drift_ppm = (1_000_000 * m / denominator) as u64;
        ClockBound { drift_ppm, step_ms: step as u64 }
    }
}

/// How wrong each node's clock may be for the lease to stay safe: its rate within
/// `±drift_ppm` of true time, and its forward steps within any one lease period adding up to
/// at most `step_ms`; never a step backwards. See [`Config::clock_bound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockBound {
    pub drift_ppm: u64,
    pub step_ms: u64,
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

/// How nodes compare one slot's value without sending it (Commit, prev_hash): XXH3-64 of the
/// value's TLog encoding, read as it is encoded (no copy of the value). It was FNV-1a a byte at
/// a time over a copy, which with 1 MiB values took a fifth of a node's CPU (docs/PERFORMANCE.md);
/// nodes of the two versions do not mix (the peer hello's magic says which).
pub fn value_hash(value: &Value) -> u64 {
    struct Sink(xxhash_rust::xxh3::Xxh3);
    impl crate::llio::Put for Sink {
        fn put_raw(&mut self, v: &[u8]) {
            self.0.update(v);
        }
    }
    let mut sink = Sink(xxhash_rust::xxh3::Xxh3::new());
    value.encode(&mut sink);
    sink.0.digest()
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
    /// The value's hash, taken once when its slot was kept (the Commit names it).
    hash: u64,
    value: Value,
    clients: Vec<ClientReqId>,
    acks: BTreeSet<NodeIdx>,
    self_durable: bool,
    first_sent_ms: u64,
    last_sent_ms: u64,
    /// The size of the value, which bounds how long it may keep the lease by Hold.
    bytes: usize,
}

/// A round of Hold: sent at `t`, answered by `acks`.
#[derive(Debug)]
struct HoldRound {
    t: u64,
    acks: BTreeSet<NodeIdx>,
}

#[derive(Debug)]
struct MasterState {
    n: u64,
    /// When the committed MasterSet or the quorum's Held behind the current lease was sent.
    lease_t0: Option<u64>,
    in_flight: Option<InFlight>,
    queue: VecDeque<(ClientReqId, Update)>,
    /// The round of Hold waiting for a quorum.
    hold: Option<HoldRound>,
    /// Before the first lease (recovering a slot): when the last Hold a quorum answered was
    /// sent. The slaves hold off elections meanwhile; the master serves no read.
    held_t: Option<u64>,
}

impl MasterState {
    fn new(n: u64) -> MasterState {
        MasterState {
            n,
            lease_t0: None,
            in_flight: None,
            queue: VecDeque::new(),
            hold: None,
            held_t: None,
        }
    }
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
    /// The highest ballot promised or accepted for another node, or led as master: where a
    /// failed candidacy goes back to (never below a ballot this node accepted under).
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
    /// The Accept that sent this node to catch up and the ones that followed it in order while
    /// it caught up, handled again once it has (at most [`HELD_ACCEPTS_MAX`], and beyond the
    /// first at most [`Machine::held_bytes_max`] bytes of values).
    held_accepts: VecDeque<(NodeIdx, Msg)>,
    /// Messages dropped because their ballot was beyond [`Machine::ballot_horizon`].
    refused_ballots: u64,
    /// The entries handed to the persister and not yet durable: token and slot.
    entries_in_flight: BTreeMap<u64, u64>,
    /// Chosen slots waiting for this node's own entry of them to be durable before they are
    /// applied, in order, with the clients to answer (the apply rule: the store never holds
    /// a slot its own log could lose, or a crash leaves a store ahead of its log, which
    /// start-up refuses). At most the slots in flight to the persister.
    to_apply: std::collections::VecDeque<(u64, Value, Vec<ClientReqId>)>,
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
            held_accepts: VecDeque::new(),
            refused_ballots: 0,
            entries_in_flight: BTreeMap::new(),
            to_apply: std::collections::VecDeque::new(),
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
                let beyond = msg.ballot() > self.ballot_horizon();
                // Planted bug BallotReachUnchecked, at the edge of rule 10: any ballot is heard.
                let beyond = beyond && !crate::planted!(BallotReachUnchecked);
                if beyond {
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
                // In order; one that finds this node behind again holds itself and the rest.
                for (from, msg) in std::mem::take(&mut self.held_accepts) {
                    self.on_message(now_ms, from, msg, out);
                }
            }
            Input::CatchUpFailed => {
                self.held_accepts.clear();
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
        if let Some((i, _)) = &entry {
            self.entries_in_flight.insert(token, *i);
        }
        out.push(Action::Persist { token, ballot, entry });
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

    /// Marks slot `i` chosen and applies every chosen slot not yet applied, in order, as far
    /// as this node's own entries of them are durable; the rest wait for their persist.
    fn commit_through(&mut self, i: u64, clients: Vec<ClientReqId>, out: &mut Vec<Action>) {
        self.committed = self.committed.max(Some(i));
        let mut queued = self.to_apply.back().map(|(j, _, _)| *j).or(self.applied);
        while opt_lt(queued, self.committed) {
            let next = queued.map_or(0, |a| a + 1);
            let slot = [&self.prev, &self.last]
                .into_iter()
                .flatten()
                .find(|s| s.i == next)
                .unwrap_or_else(|| panic!("slot {next} to apply is not in memory"));
            let clients = if next == i { clients.clone() } else { Vec::new() };
            self.to_apply.push_back((next, slot.value.clone(), clients));
            queued = Some(next);
        }
        self.apply_durable(out);
    }

    /// Applies the chosen slots whose entries on this node are durable: every slot below the
    /// lowest one still in flight to the persister (the persister keeps the order of its jobs).
    fn apply_durable(&mut self, out: &mut Vec<Action>) {
        let in_flight = self.entries_in_flight.values().min().copied();
        // Planted bug ApplyBeforeDurable, at the edge of the rule: what is in flight is ignored.
        let in_flight = in_flight.filter(|_| !crate::planted!(ApplyBeforeDurable));
        while let Some((next, _, _)) = self.to_apply.front() {
            if in_flight.is_some_and(|f| f <= *next) {
                break;
            }
            let (next, value, clients) = self.to_apply.pop_front().expect("a slot to apply");
            out.push(Action::Apply { i: next, value, clients });
            self.applied = Some(next);
        }
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
            Msg::Hold { n, t } => self.on_hold(now_ms, from, n, t, out),
            Msg::Held { n, t } => self.on_held(from, n, t),
        }
    }

    fn on_persisted(&mut self, now_ms: u64, token: u64, out: &mut Vec<Action>) {
        if self.entries_in_flight.remove(&token).is_some() {
            self.apply_durable(out);
        }
        let Some(after) = self.after.remove(&token) else { return };
        match after {
            After::Promise { to, n } => {
                // An Accept under n arrived meanwhile: n's candidate has won and reads no more
                // promises, and this one would name that Accept's slot before it is durable
                // (the simulator's check persist-before-promise caught it).
                let superseded = self.last.as_ref().is_some_and(|s| s.n == Some(n));
                if self.promised == n && !superseded {
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
}
