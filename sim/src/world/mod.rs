//! The tier-A world: a whole cluster on one thread, driven by one seed.

pub mod clock;
pub mod net;
pub mod queue;
