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
    /// The master of `n` keeps its lease while a slot is still on its way (lease rule 5): a
    /// slave that promised `n` holds the lease for the sender as from now and answers Held
    /// with the same `t` (the master's clock when it sent this).
    Hold { n: u64, t: u64 },
    /// The answer to Hold: the sender holds the lease for the master of `n` as from Hold `t`.
    Held { n: u64, t: u64 },
}

impl Msg {
    pub fn ballot(&self) -> u64 {
        match self {
            Msg::Prepare { n, .. }
            | Msg::Promise { n, .. }
            | Msg::Nak { n, .. }
            | Msg::Accept { n, .. }
            | Msg::Accepted { n, .. }
            | Msg::Commit { n, .. }
            | Msg::Hold { n, .. }
            | Msg::Held { n, .. } => *n,
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
            Msg::Hold { .. } => "hold",
            Msg::Held { .. } => "held",
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

#[cfg(test)]
mod tests {
    //! docs/CONSENSUS.md lists the core's inputs, actions and messages; these tests fail when that
    //! list and the enums disagree. Each `*_shape` match names every variant and every field (no
    //! `..`), so a new variant or field does not compile until it is written here, and then the
    //! comparison with the document fails until the document says it too.

    use super::*;

    fn input_shape(input: &Input) -> &'static str {
        match input {
            Input::Tick => "Tick",
            Input::Message { from: _, msg: _ } => "Message { from, msg }",
            Input::ClientUpdate { id: _, update: _ } => "ClientUpdate { id, update }",
            Input::Persisted { token: _ } => "Persisted { token }",
            Input::CaughtUp { last: _, prev: _, applied: _ } => "CaughtUp { last, prev, applied }",
            Input::CatchUpFailed => "CatchUpFailed",
            Input::DropMaster { id: _ } => "DropMaster { id }",
        }
    }

    fn action_shape(action: &Action) -> &'static str {
        match action {
            Action::Send { to: _, msg: _ } => "Send { to, msg }",
            Action::Persist { token: _, ballot: _, entry: _ } => "Persist { token, ballot, entry }",
            Action::Apply { i: _, value: _, clients: _ } => "Apply { i, value, clients }",
            Action::Reply { id: _, result: _ } => "Reply { id, result }",
            Action::CatchUp { from: _, to_i: _ } => "CatchUp { from, to_i }",
        }
    }

    fn msg_shape(msg: &Msg) -> &'static str {
        match msg {
            Msg::Prepare { n: _, last_i: _ } => "Prepare { n, last_i }",
            Msg::Promise { n: _, last: _, prev_hash: _ } => "Promise { n, last, prev_hash }",
            Msg::Nak { n: _, reason: _, promised: _, last_i: _ } => {
                "Nak { n, reason, promised, last_i }"
            }
            Msg::Accept { n: _, i: _, value: _, prev_hash: _ } => {
                "Accept { n, i, value, prev_hash }"
            }
            Msg::Accepted { n: _, i: _ } => "Accepted { n, i }",
            Msg::Commit { n: _, i: _, hash: _ } => "Commit { n, i, hash }",
            Msg::Hold { n: _, t: _ } => "Hold { n, t }",
            Msg::Held { n: _, t: _ } => "Held { n, t }",
        }
    }

    fn every_msg() -> Vec<Msg> {
        vec![
            Msg::Prepare { n: 1, last_i: None },
            Msg::Promise { n: 1, last: None, prev_hash: None },
            Msg::Nak { n: 1, reason: NakReason::LowBallot, promised: 2, last_i: None },
            Msg::Accept { n: 1, i: 0, value: Value::client(vec![]), prev_hash: None },
            Msg::Accepted { n: 1, i: 0 },
            Msg::Commit { n: 1, i: 0, hash: 0 },
            Msg::Hold { n: 1, t: 0 },
            Msg::Held { n: 1, t: 0 },
        ]
    }

    fn every_input() -> Vec<Input> {
        let id = ClientReqId(1);
        vec![
            Input::Tick,
            Input::Message { from: 0, msg: Msg::Accepted { n: 1, i: 0 } },
            Input::ClientUpdate { id, update: Update::Nop },
            Input::Persisted { token: 1 },
            Input::CaughtUp { last: None, prev: None, applied: None },
            Input::CatchUpFailed,
            Input::DropMaster { id },
        ]
    }

    fn every_action() -> Vec<Action> {
        vec![
            Action::Send { to: 0, msg: Msg::Accepted { n: 1, i: 0 } },
            Action::Persist { token: 1, ballot: None, entry: None },
            Action::Apply { i: 0, value: Value::client(vec![]), clients: vec![] },
            Action::Reply { id: ClientReqId(1), result: Err(Refusal::NoLongerMaster) },
            Action::CatchUp { from: 0, to_i: 0 },
        ]
    }

    fn contract() -> String {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CONSENSUS.md");
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
    }

    /// The entries of the list under `### {heading}`: the code span that opens each `- ` line.
    fn listed(doc: &str, heading: &str) -> Vec<String> {
        let start = doc
            .find(&format!("### {heading}\n"))
            .unwrap_or_else(|| panic!("docs/CONSENSUS.md has no '### {heading}' section"));
        let section = &doc[start..];
        let section = &section[..section[4..].find("\n#").map_or(section.len(), |e| e + 4)];
        section
            .lines()
            .filter_map(|l| l.strip_prefix("- `"))
            .filter_map(|l| l.split('`').next())
            .map(str::to_string)
            .collect()
    }

    /// The message table's rows, as `Name { field, ... }`.
    fn tabled(doc: &str) -> Vec<String> {
        let start = doc.find("## Messages\n").expect("docs/CONSENSUS.md has no Messages section");
        doc[start..]
            .lines()
            .skip_while(|l| !l.starts_with("|---"))
            .skip(1)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                format!("{} {{ {} }}", cells[1], cells[2])
            })
            .collect()
    }

    #[test]
    fn the_contract_lists_every_input_with_its_fields() {
        let code: Vec<&str> = every_input().iter().map(input_shape).collect();
        assert_eq!(listed(&contract(), "Inputs"), code);
    }

    #[test]
    fn the_contract_lists_every_action_with_its_fields() {
        let code: Vec<&str> = every_action().iter().map(action_shape).collect();
        assert_eq!(listed(&contract(), "Actions"), code);
    }

    #[test]
    fn the_contract_lists_every_message_with_its_fields() {
        let code: Vec<&str> = every_msg().iter().map(msg_shape).collect();
        assert_eq!(tabled(&contract()), code);
    }
}
