//! Multi-Paxos with a master lease, one slot in flight, as a pure state machine.
//!
//! ```text
//!  Tick, Message, ClientUpdate,        ┌──────────┐      Send, Persist, Apply,
//!  Persisted, CaughtUp, CatchUpFailed, │ Machine  │ ──▶  Reply (a consensus reason),
//!  DropMaster (each with now_ms)   ──▶ └──────────┘      CatchUp
//! ```
//!
//! No I/O, no clock, no randomness but the seed it is handed: the server, the simulator and the
//! unit tests drive the same code. The contract (rules, inputs, actions) is docs/CONSENSUS.md,
//! and `msg`'s tests fail when its lists of inputs, actions and messages and the enums disagree.
//! Reads ask `Machine::read_permission` (the lease rule); return codes live in `crate::rc`.

mod machine;
mod msg;
mod rng;

pub use machine::{
    ship_allowance_ms, value_hash, ClockBound, Config, Durable, Machine, BALLOT_REACH,
    BATCH_BYTES_MAX_DEFAULT, HOLD_SHIP_FACTOR, LINK_BYTES_PER_S_DEFAULT, MAX_BALLOT,
};
pub use msg::{
    Action, ClientReqId, Input, Msg, NakReason, NodeIdx, ReadRefusal, ReadWant, Refusal, RoleName,
};
