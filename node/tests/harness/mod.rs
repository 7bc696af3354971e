//! Real clusters for the integration tests: the workspace's shared harness (arakoon-testkit)
//! running this crate's `arakoon` binary.

#![allow(dead_code)] // Each test file uses a different part of this module.

pub use arakoon_testkit::Cluster;
use std::path::Path;

/// `n` nodes of cluster "itest" with a lease of `lease_ms`; `extra` lines go into [global].
pub fn cluster(n: usize, lease_ms: u64, extra: &str) -> Cluster {
    Cluster::new(Path::new(env!("CARGO_BIN_EXE_arakoon")), "itest", n, lease_ms, extra)
}
