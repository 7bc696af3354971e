//! Real clusters of `arakoon` processes for the integration tests of the node and of
//! `arakoon-admin`: loopback only, free ports, a home per node under a temporary directory, real
//! stores and real fsync. Every process is killed when the cluster is dropped, and by the kernel
//! (PR_SET_PDEATHSIG) if the test process dies first.
//!
//! Each test crate says which `arakoon` binary to run (the node's tests have it from cargo, the
//! admin's look for it beside `arakoon-admin`) and what to call the cluster.

use arakoon_node::client::{Client, ClientConfig};
use arakoon_node::config::ClusterConfig;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long `stop` waits after SIGTERM before it kills.
const STOP_WAIT_MS: u64 = 10_000;

/// A loopback port for a node to listen on, free when handed out, never handed out twice by
/// one process, and outside the kernel's ephemeral range so that no `bind(0)` of a parallel
/// test and no outgoing connection takes it while its node is down or not started yet
/// ([`arakoon_node::ports`]).
pub fn free_port() -> u16 {
    match arakoon_node::ports::free_loopback_ports(1) {
        Ok(ports) => ports[0],
        Err(e) => panic!("{e}"),
    }
}

/// A current-thread runtime for the tests' own client calls.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub config: ClusterConfig,
    binary: PathBuf,
    procs: Vec<Option<Child>>,
}

impl Cluster {
    /// Writes the configuration of `n` nodes (n0, n1, ...) of cluster `cluster_id`, each to run
    /// `binary`; `extra` lines go into [global]. Nothing starts yet.
    pub fn new(binary: &Path, cluster_id: &str, n: usize, lease_ms: u64, extra: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..n).map(|k| format!("n{k}")).collect();
        let mut ini = format!(
            "[global]\ncluster = {}\ncluster_id = {cluster_id}\nlease_period_ms = {lease_ms}\n\
             {extra}\n",
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
        let procs = (0..n).map(|_| None).collect();
        Cluster { dir, config_path, config, binary: binary.to_path_buf(), procs }
    }

    pub fn size(&self) -> usize {
        self.procs.len()
    }

    pub fn config_arg(&self) -> &str {
        self.config_path.to_str().unwrap()
    }

    pub fn log_path(&self, k: usize) -> PathBuf {
        self.dir.path().join(format!("n{k}.log"))
    }

    pub fn log(&self, k: usize) -> String {
        std::fs::read_to_string(self.log_path(k)).unwrap_or_default()
    }

    fn command(&self, k: usize) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.args(["--node", &format!("n{k}"), "-config"]).arg(&self.config_path);
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.log_path(k)).unwrap();
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill the child when
        // the thread that spawned it ends.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        cmd
    }

    pub fn start(&mut self, k: usize) {
        assert!(self.procs[k].is_none(), "n{k} is already running");
        self.procs[k] = Some(self.command(k).spawn().unwrap());
    }

    pub fn start_all(&mut self) {
        for k in 0..self.size() {
            self.start(k);
        }
    }

    /// Runs `arakoon -catchup-only` for node `k` and returns its exit status and log.
    pub fn catchup_only(&self, k: usize) -> (ExitStatus, String) {
        let mut cmd = self.command(k);
        cmd.arg("-catchup-only");
        let status = cmd.status().unwrap();
        (status, self.log(k))
    }

    fn signal(&self, k: usize, sig: i32) {
        if let Some(c) = &self.procs[k] {
            // SAFETY: sending a signal to our own child's pid.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    /// SIGKILL: power loss for the process (the disk keeps what was fsynced).
    pub fn kill(&mut self, k: usize) {
        if let Some(mut c) = self.procs[k].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (a clean stop: the store is flushed), then waits at most 10 s for the exit
    /// status; SIGKILL after that (and `None`).
    pub fn stop(&mut self, k: usize) -> Option<ExitStatus> {
        self.signal(k, libc::SIGTERM);
        let mut c = self.procs[k].take()?;
        let deadline = Instant::now() + Duration::from_millis(STOP_WAIT_MS);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// Node `k`'s exit status if its process ended by itself (it is reaped then, and may be
    /// started again); None while it runs or when it was not started.
    pub fn exited(&mut self, k: usize) -> Option<ExitStatus> {
        let status = self.procs[k].as_mut()?.try_wait().ok()??;
        self.procs[k] = None;
        Some(status)
    }

    /// The process id of node `k`, while it runs.
    pub fn pid(&self, k: usize) -> Option<u32> {
        self.procs[k].as_ref().map(|c| c.id())
    }

    pub fn pause(&self, k: usize) {
        self.signal(k, libc::SIGSTOP);
    }

    pub fn resume(&self, k: usize) {
        self.signal(k, libc::SIGCONT);
    }

    /// Deletes node `k`'s home: a lost disk.
    pub fn wipe(&self, k: usize) {
        let _ = std::fs::remove_dir_all(&self.config.nodes[k].home);
    }

    pub fn client_addr(&self, k: usize) -> SocketAddr {
        let n = &self.config.nodes[k];
        SocketAddr::new(n.ip, n.client_port)
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

    /// A client that talks only to node `k` (for reads on a slave).
    pub fn client_of(&self, k: usize) -> Client {
        let mut c = self.client_config();
        c.nodes = vec![c.nodes[k].clone()];
        Client::new(c)
    }

    /// Waits (at most `within`) until some node serves as a confirmed master; returns its index.
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
        (0..self.size()).map(|k| format!("--- n{k}.log ---\n{}", self.log(k))).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for k in 0..self.size() {
            self.resume(k);
            self.kill(k);
        }
    }
}
