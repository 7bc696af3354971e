//! Tier B: the real tokio server and client over turmoil's simulated network.
//!
//! Each node is a turmoil host running [`arakoon_node::server::core::serve`] unchanged, with
//! [`net::TurmoilNet`] for its sockets, [`arakoon_node::server::env::TokioClock`] on the host's
//! virtual clock, and its TLog and store in memory ([`cluster`]). Client hosts run the real
//! [`arakoon_node::client::Client`] and record a history in tier A's form ([`workload`]); the
//! fault schedule ([`nemesis`]) is drawn from the seed before the run, or a drill's steps are
//! applied at their times ([`drill`]). At the end the cluster is healed, the clients read every
//! key, and the history is checked with the same checker as tier A; the nodes' TLogs must agree
//! on every slot two of them hold as committed.
//!
//! # Collapse and adoption
//!
//! With [`FaultSet::collapses`] (or a scripted schedule that names them), an operator host
//! ([`admin`]) asks nodes to collapse their TLog with the real client's `collapse_tlogs`, as
//! `arakoon-admin collapse` does, and the nodes run with short TLog files so that there is
//! something to collapse. The server's own collapse runs (server/collapse.rs): it folds the
//! older files into the node's head and removes them. A node in memory keeps its head as a file
//! on its simulated disk (`head::FileHead`, as the tier-A world's nodes do), behind the same
//! `HeadSpace` seam as production's sled head. A node that lags behind and finds the slots it
//! needs collapsed away at its peer fetches the peer's head (`fetch_head`, streamed by the
//! server's code from the peer's file head) into memory and adopts it through the server's
//! `catchup::adopt_fetched`, over its disk; then it fetches the entries after it. The report
//! counts the collapses (by their answers) and the adoptions (on the nodes' disks). The drills
//! on this tier ([`drill`]) apply the catalogue's `collapse` step the same way (the director
//! host asks, once or again and again for the step's duration).
//!
//! # Determinism
//!
//! A seed replays a run exactly: the same history, byte for byte, and the same fault log (the
//! tier-B tests run seeds twice and compare). What that takes:
//!
//! - **One thread.** Turmoil runs every host on its own current-thread tokio runtime with a
//!   paused clock, all on the calling thread, and advances them one tick (1 ms) at a time. Nothing
//!   of a node may run on another thread, because a thread races the simulated clock: a node
//!   runs with [`arakoon_node::server::storage::Storage::Memory`], so start-up, every TLog write
//!   (the persister runs inline instead of on its thread), and the TLog reads that serve a
//!   catch-up (the storage picks `server::blocking::OnTask` for them) all run on the node's
//!   task, and the store is a memory store (sled has threads of its own). Collapse,
//!   `get_db` and `fetch_head` run where the storage runs blocking reads too (on the task here,
//!   their results queued in a channel that never blocks: `server::blocking::channel`), and a
//!   node in memory fetches and adopts a peer's head on its tasks. What still uses
//!   `spawn_blocking` or a thread is on disk only: start-up, the persister, sled, and fetching
//!   a head to disk.
//! - **Seeded randomness.** Turmoil's RNG (`Builder::rng_seed`) draws the network delays and the
//!   order in which hosts are stepped (`enable_random_order`); the clients' choices and the
//!   schedule come from ChaCha RNGs seeded from the seed; each node's election jitter from
//!   `ServerOptions::seed`.
//! - **No unseeded choice in tokio.** `tokio::select!` picks among ready branches at random,
//!   from an RNG that only `RUSTFLAGS="--cfg tokio_unstable"` lets turmoil seed. The server's
//!   one `select!` (the core loop) is `biased`, and the client has none, so the ordinary build
//!   is deterministic; a new unbiased `select!` on these paths would break it (the determinism
//!   test would say so).
//! - **Virtual time only.** The server reads time through `TokioClock` (the runtime's paused
//!   clock), and a collapse times its steps with `tokio::time::Instant` (the same clock); the
//!   clients record `turmoil::sim_elapsed`; the epoch is fixed.
//!
//! The tokio configuration is turmoil's own: current-thread runtimes, time paused and enabled,
//! no I/O driver (turmoil's network is in memory).

pub mod admin;
pub mod cluster;
pub mod drill;
pub mod error;
pub mod nemesis;
pub mod net;
mod run;
pub mod workload;

pub use error::TierBError;
pub use nemesis::{Fault, FaultKind, FaultSet};
pub use run::{run_tier_b, TierBConfig, TierBReport, Verdict};
