//! The vocabulary of the consensus core: its inputs, its actions, and node-to-node messages.

use crate::tlog::BallotRecord;
use crate::value::{Update, Value};

/// A node, by its index in the cluster's node list.
pub type NodeIdx = usize;

/// An opaque client request id chosen by the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientReqId(pub u64);

/// Why a Prepare or an Accept was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NakReason {
    /// The ballot is not above the one promised.
    LowBallot,
    /// The acceptor knows a valid lease of another master.
    LeaseHeld,
    /// The candidate's log is behind the acceptor's committed slots.
    Behind,
    /// The acceptor restarted less than a lease ago, or does not know its last slot's ballot.
    Restarting,
}

/// A node-to-node message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// A candidate asks for promises; `last_i` is its log's last slot.
    Prepare { n: u64, last_i: Option<u64> },
    /// The sender promised `n`; it shows its last slot (slot, accepted ballot, value) and the
    /// hash of the value of the slot before it.
    Promise { n: u64, last: Option<(u64, u64, Value)>, prev_hash: Option<u64> },
    /// Refused; `promised` is the sender's promise, `last_i` its last slot.
    Nak { n: u64, reason: NakReason, promised: u64, last_i: Option<u64> },
    /// Accept `value` for slot `i` under ballot `n`; `prev_hash` is the hash of the master's
    /// value for slot `i-1`, which is chosen.
    Accept { n: u64, i: u64, value: Value, prev_hash: Option<u64> },
    /// The sender's entry for slot `i` under `n` is durable.
    Accepted { n: u64, i: u64 },
    /// Slot `i` is chosen, with the value whose hash is `hash`.
    Commit { n: u64, i: u64, hash: u64 },
}

impl Msg {
    pub fn ballot(&self) -> u64 {
        match self {
            Msg::Prepare { n, .. }
            | Msg::Promise { n, .. }
            | Msg::Nak { n, .. }
            | Msg::Accept { n, .. }
            | Msg::Accepted { n, .. }
            | Msg::Commit { n, .. } => *n,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Msg::Prepare { .. } => "prepare",
            Msg::Promise { .. } => "promise",
            Msg::Nak { .. } => "nak",
            Msg::Accept { .. } => "accept",
            Msg::Accepted { .. } => "accepted",
            Msg::Commit { .. } => "commit",
        }
    }
}

/// What the core is told.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Time passes.
    Tick,
    Message {
        from: NodeIdx,
        msg: Msg,
    },
    ClientUpdate {
        id: ClientReqId,
        update: Update,
    },
    /// The persist job with this token is durable (jobs complete in the order emitted).
    Persisted {
        token: u64,
    },
    /// A catch-up finished: the log now ends at `last` (committed), after `prev`; the store
    /// applied `applied`.
    CaughtUp {
        last: Option<(u64, Value)>,
        prev: Option<(u64, Value)>,
        applied: Option<u64>,
    },
    /// A catch-up failed; the node may try again later.
    CatchUpFailed,
    /// An operator asks the master to step down.
    DropMaster {
        id: ClientReqId,
    },
}

/// What the core asks the shell to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Send {
        to: NodeIdx,
        msg: Msg,
    },
    /// Make the entry durable in the TLog (if any), then the ballot record (if any), then feed
    /// back `Persisted { token }`. Jobs complete in the order they were emitted.
    Persist {
        token: u64,
        ballot: Option<BallotRecord>,
        entry: Option<(u64, Value)>,
    },
    /// Slot `i` is chosen: apply it to the store (slots arrive in order) and answer
    /// `clients[k]` with the result of the value's update `k`.
    Apply {
        i: u64,
        value: Value,
        clients: Vec<ClientReqId>,
    },
    /// Answer a client whose request ends here: a drop_master that succeeded, or a refusal.
    /// The shell turns it into the client protocol's return code (`crate::rc::reply_of`).
    Reply {
        id: ClientReqId,
        result: Result<(), Refusal>,
    },
    /// Fetch the committed entries up to `to_i` from `from`, append them, replay, then feed
    /// back `CaughtUp`.
    CatchUp {
        from: NodeIdx,
        to_i: u64,
    },
}

/// Why the core refused a client's update or drop_master. Consensus reasons only: the shell
/// maps them to return codes and texts (`crate::rc::reply_of`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This node is not master (the update never happened); `master` is the node it believes
    /// holds the lease, if any.
    NotMaster { master: Option<NodeIdx> },
    /// Mastership was lost while the update was in flight: a later master may still choose it,
    /// so its outcome is unknown.
    NoLongerMaster,
    /// The master's queue of updates waiting for a slot is full.
    QueueFull,
    /// A 1-node cluster has no other node to hand its mastership to.
    SoleNode,
}

/// What a read asks of the node that serves it (the lease rule decides a consistent read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadWant {
    /// Only a master inside its lease: the read sees every acknowledged update.
    Consistent,
    /// Any node whose store has applied this slot.
    AtLeast(u64),
    /// Any node, from its store as it is.
    Anywhere,
}

/// Why a read may not be served here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadRefusal {
    /// A consistent read needs a master inside its lease; `master` is the node this one
    /// believes holds the lease, if any.
    NotMaster { master: Option<NodeIdx> },
    /// The store has applied up to `applied`, short of the slot asked for.
    NotYetApplied { applied: Option<u64>, wanted: u64 },
}

/// A node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleName {
    Slave,
    Candidate,
    Master,
    CatchingUp,
}
