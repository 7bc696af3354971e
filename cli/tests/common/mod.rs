//! Real clusters of `arakoon` processes for the `arakoon-admin` tests: loopback only, free ports,
//! a temporary home per node, every process killed when the cluster is dropped (and by the
//! kernel, through PR_SET_PDEATHSIG, if the test process dies first).
//!
//! The `arakoon` binary is the node crate's; it is looked for beside `arakoon-admin` in the same
//! target directory (`cargo test --workspace` builds both). When it is not there, it is built
//! once with `cargo build -p arakoon-node --bin arakoon` into that target directory.

#![allow(dead_code)] // Each test file uses a different part of this module.

use arakoon_node::client::{Client, ClientConfig};
use arakoon_node::config::ClusterConfig;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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

/// A free loopback port (bound and released; the kernel does not hand it out again at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub config: ClusterConfig,
    procs: Vec<Option<Child>>,
}

impl Cluster {
    /// Writes the configuration of `n` nodes (n0, n1, ...); `extra` lines go into [global].
    pub fn new(n: usize, extra: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..n).map(|k| format!("n{k}")).collect();
        let mut ini = format!(
            "[global]\ncluster = {}\ncluster_id = admintest\nlease_period_ms = 1000\n{extra}\n",
            names.join(", ")
        );
        for name in &names {
            ini += &format!(
                "\n[{name}]\nip = 127.0.0.1\nclient_port = {}\nmessaging_port = {}\nhome = {}\n\
                 log_level = info\n",
                free_port(),
                free_port(),
                dir.path().join(name).display()
            );
        }
        let config_path = dir.path().join("cluster.ini");
        std::fs::write(&config_path, &ini).unwrap();
        let config = ClusterConfig::parse(&ini, "cluster.ini").unwrap();
        Cluster { dir, config_path, config, procs: (0..n).map(|_| None).collect() }
    }

    pub fn config_arg(&self) -> &str {
        self.config_path.to_str().unwrap()
    }

    pub fn log(&self, k: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("n{k}.log"))).unwrap_or_default()
    }

    pub fn start(&mut self, k: usize) {
        assert!(self.procs[k].is_none(), "n{k} is already running");
        let mut cmd = Command::new(arakoon_binary());
        cmd.args(["--node", &format!("n{k}"), "-config"]).arg(&self.config_path);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("n{k}.log")))
            .unwrap();
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        // SAFETY: prctl is async-signal-safe; it asks the kernel to kill the child when the
        // thread that spawned it ends.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        self.procs[k] = Some(cmd.spawn().unwrap());
    }

    pub fn start_all(&mut self) {
        for k in 0..self.procs.len() {
            self.start(k);
        }
    }

    /// SIGTERM (a clean stop: the store is flushed), then waits at most 10 s; SIGKILL after.
    pub fn stop(&mut self, k: usize) {
        let Some(mut c) = self.procs[k].take() else { return };
        // SAFETY: a signal to our own child.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::from_cluster(&self.config);
        c.request_timeout = Duration::from_secs(5);
        c.attempts = 60;
        c
    }

    pub fn client(&self) -> Client {
        Client::new(self.client_config())
    }

    /// Waits (at most `within`) until some node serves as a confirmed master.
    pub async fn wait_for_master(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        let mut client = self.client();
        loop {
            if let Ok(m) = client.find_master().await {
                return m;
            }
            assert!(Instant::now() < deadline, "no master within {within:?}\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn logs(&self) -> String {
        (0..self.procs.len()).map(|k| format!("--- n{k}.log ---\n{}", self.log(k))).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.procs.iter_mut().filter_map(Option::take) {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A current-thread runtime for the tests' own client calls.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}
