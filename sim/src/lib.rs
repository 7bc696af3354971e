//! arakoon-sim: deterministic simulation of arakoon-rs clusters.
//!
//! Tier A ([`world`]) runs the pure consensus machines with memory stores, simulated disks,
//! network and clocks on one thread; every random choice comes from one ChaCha RNG seeded from
//! a `u64`, so a seed replays a run exactly.

pub mod campaign;
pub mod drill;
pub mod shrink;
pub mod tier_b;
pub mod world;

pub use world::{run_seed, FaultMix, Outcome, Reduction, RunReport, Shape, SimConfig};
