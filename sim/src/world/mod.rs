//! The tier-A world: a whole cluster on one thread, driven by one seed.
//!
//! The world owns true time (µs), an agenda of events, the network, the disks and the clocks.
//! Nodes run the real consensus machine and the real TLog code; only the environment is
//! simulated. Every random choice comes from one ChaCha RNG seeded from the run's `u64`, and
//! events at the same time are ordered by when they were scheduled, so a seed replays a run
//! exactly, down to the trace.

pub mod adopt;
pub mod aimed;
pub mod catchup;
pub mod checks;
pub mod clock;
pub mod collapse;
pub mod faults;
mod keyed;
pub mod liveness;
pub mod net;
pub mod node;
pub mod persister;
pub mod queue;
pub mod rules;
mod run;
pub mod script;
pub mod workload;

pub use aimed::Aimed;
pub use faults::FaultMix;
pub use run::{
    run_seed, Held, Outcome, Redirect, Reduction, RunReport, Shape, SimConfig,
    FSYNC_FAILED_NODE_STOPPED, FSYNC_FAILED_THEN_POWER_LOSS, HELD_WHILE_PAUSED, VOTE_GUARD_DAMAGED,
};
pub use workload::MultiWeights;
