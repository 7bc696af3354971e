//! Multi-Paxos with a master lease, one slot in flight, as a pure state machine.
//!
//! ```text
//!  Tick, Message, ClientUpdate,        ┌──────────┐      Send, Persist, Apply,
//!  Persisted, CaughtUp, DropMaster ──▶ │ Machine  │ ──▶  Reply, CatchUp
//!  (each with the node's now_ms)       └──────────┘
//! ```
//!
//! No I/O, no clock, no randomness but the seed it is handed: the server, the simulator and the
//! unit tests drive the same code. The contract (rules, inputs, actions) is docs/CONSENSUS.md.

mod machine;
mod msg;
mod rng;

pub use machine::{value_hash, Config, Durable, Machine, BALLOT_REACH, MAX_BALLOT};
pub use msg::{
    Action, ClientReqId, Input, Msg, NakReason, NodeIdx, ReadRefusal, ReadWant, Refusal, RoleName,
};
