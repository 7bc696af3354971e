//! One drill engine for the three tiers. A [`Director`] is a pure state machine, like the
//! consensus core: fed the time and what the cluster looks like ([`ClusterView`]), it answers
//! which fault to apply on which nodes, what to look at, how long to wait and when the drill is
//! over ([`Command`]). Targets are resolved once, here ([`resolve`]), from a seeded RNG handed in
//! and the view, so one seed strikes the same nodes on every tier that shows the same cluster.
//! Each tier is a [`Backend`]: it applies a [`Resolved`] fault with its own primitives and
//! answers the director's questions. Every tier's run is judged by one function ([`judge`]).
//!
//! Adding a fault means:
//! 1. the catalogue: a variant of [`crate::faults::Fault`] (its name, its tiers, its display)
//!    and its YAML key in [`crate::drill`];
//! 2. its targets here, in [`resolve::Resolver::resolve`] (nothing to do for a fault whose
//!    targets are plain [`crate::faults::Target`]s);
//! 3. one primitive per backend that can apply it: the simulator's (`sim/src/world/script.rs`),
//!    turmoil's (`sim/src/tier_b/drill.rs`), the sandbox's (`apply` in
//!    `chaos/src/sandbox_drill/backend.rs`, with a [`crate::sandbox_drill::StepError`] variant
//!    for each new way it can fail).
//!
//! Edge cases are decided here once, for every tier: `drop_master` while no node holds the
//! lease is a note in the log ("no master"), not a failure; the targets of one fault never name
//! a node twice (a `one_way master -> slave` with no master takes its `slave` among the nodes
//! its `master` did not take); a target that names no node is a note, nothing is applied.

mod backend;
mod machine;
pub mod resolve;
mod shapes;
mod verdict;
mod view;

pub use backend::{drive, now_or_never, Backend, BackendError};
pub use machine::{Broke, Command, Director, Input, POLL_MS};
pub use resolve::{Resolved, Resolver, Strikes};
pub use shapes::{bridge_link, bridge_node, link_matrix, ring_link};
pub use verdict::{judge, Verdict};
pub use view::ClusterView;
