//! Helpers for the `arakoon-admin` tests: running the binary, and real clusters of `arakoon`
//! processes (the workspace's shared harness, arakoon-testkit, under the cluster id
//! "admintest").
//!
//! The `arakoon` binary is the node crate's; it is looked for beside `arakoon-admin` in the same
//! target directory (`cargo test --workspace` builds both). When it is not there, it is built
//! once with `cargo build -p arakoon-node --bin arakoon` into that target directory.

#![allow(dead_code, unused_imports)] // Each test file uses a different part of this module.

pub use arakoon_testkit::{free_port, runtime, Cluster};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The `arakoon-admin` under test: this build's, or `ARAKOON_ADMIN_BIN` (to measure a release
/// build with the ignored measurements).
pub fn admin_path() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::var("ARAKOON_ADMIN_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_arakoon-admin").to_string())
    })
}

/// Runs `arakoon-admin` with `args`, stdin closed (so confirmations need --yes).
pub fn admin(args: &[&str]) -> Output {
    Command::new(admin_path()).args(args).stdin(Stdio::null()).output().unwrap()
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts the exit code, showing the output when it differs.
#[track_caller]
pub fn expect_code(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "{}", text(o));
}

/// The `arakoon` binary, built if it is not beside `arakoon-admin`.
pub fn arakoon_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let admin = Path::new(env!("CARGO_BIN_EXE_arakoon-admin"));
        let binary = admin.with_file_name("arakoon");
        if binary.exists() {
            return binary;
        }
        // .../target/debug/arakoon-admin: the target directory is two levels up.
        let target = admin.parent().and_then(Path::parent).expect("a target directory");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "arakoon-node", "--bin", "arakoon", "--target-dir"])
            .arg(target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building arakoon failed; run cargo build -p arakoon-node");
        assert!(binary.exists(), "{} is missing after the build", binary.display());
        binary
    })
}

/// `n` nodes of cluster "admintest" (lease 1 s) running [`arakoon_binary`]; `extra` lines go
/// into [global].
pub fn cluster(n: usize, extra: &str) -> Cluster {
    Cluster::new(arakoon_binary(), "admintest", n, 1000, extra)
}
