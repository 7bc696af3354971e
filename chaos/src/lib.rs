//! arakoon-chaos: the fault catalogue ([`faults`]), YAML failure drills ([`drill`]), the one
//! drill engine that plays them on every tier ([`director`]: targets resolved once, one judge, a
//! `Backend` per tier), the history every real-client tier records ([`history`], with the
//! workload of [`real_client`], shared by turmoil and the sandbox), and the local multi-process
//! sandbox ([`sandbox`]): real `arakoon` processes whose peer links pass through fault proxies
//! ([`proxy`]), brought up by [`sandbox_up`], supervised by [`sandbox_supervisor`] (steered with
//! [`sandbox_control`], files damaged by [`sandbox_corrupt`]), seen through [`sandbox_view`] and
//! taken down by [`sandbox_lifecycle`]. [`sandbox_drill`] runs a drill on such a sandbox, seed by
//! seed, and reports its progress to a [`watch::Watch`]. [`soak`] runs a sandbox for long under
//! a mixed load and seeded faults, sampling each node's memory and descriptors. Every tier's runner turns a seed into
//! the one outcome type ([`outcome::DrillOutcome`]), from which the report folder and its HTML
//! timeline are written ([`outcome::folder`], [`outcome::timeline`]).
//!
//! Where things go:
//! - a new fault: the catalogue ([`faults`], its YAML key in [`drill`]), its targets in
//!   [`director::resolve`], and one primitive per backend: tier A in `sim/src/world/script.rs`,
//!   turmoil in `sim/src/tier_b/drill.rs`, the sandbox in `sandbox_drill/backend.rs` (the list
//!   is in [`director`]);
//! - a new sandbox operation: a [`sandbox_control::Request`] the supervisor carries out, then
//!   the CLI's `sandbox` subcommand that sends it (`cli/src/sandbox_cmd.rs`: arguments, printing);
//! - a new way to show a running drill: a [`watch::Watch`] (the CLI's live display is one);
//! - a new file in a drill's report, or a new mark on its timeline: [`outcome`] (filled by
//!   every tier's runner, so the field goes into [`outcome::DrillOutcome`] first).
//!
//! The library returns typed errors (`thiserror`); the CLI turns them into messages and exit
//! codes (`cli/src/exit.rs` names every code of `arakoon-admin`).

pub mod director;
pub mod drill;
pub mod faults;
pub mod history;
pub mod outcome;
pub mod process;
pub mod proxy;
pub mod real_client;
pub mod sandbox;
pub mod sandbox_control;
pub mod sandbox_corrupt;
pub mod sandbox_drill;
pub mod sandbox_lifecycle;
pub mod sandbox_supervisor;
pub mod sandbox_up;
pub mod sandbox_view;
pub mod soak;
pub mod watch;
