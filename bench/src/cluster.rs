//! The two clusters a comparison runs: three `arakoon` nodes and three etcd members, all on
//! loopback in one scratch directory, and the CPU time their processes spent.
//!
//! Both are started the way a user would start them, with fsync on and default settings but
//! for etcd's backend quota (raised, so that a run of large values does not fill it) and the
//! ports. Processes are killed when the cluster value is dropped (and by the kernel if this
//! process dies first).

use arakoon_chaos::process::{free_ports, locate_binary, Process};
use arakoon_node::client::ClientConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClusterError {
    #[error("{what}: {why}")]
    Io { what: String, why: std::io::Error },
    #[error(
        "etcd is not installed (looked for {0}): install Debian's package (`apt-get install \
         etcd-server`), pass --install-etcd to let this command do it, or name the binary with \
         --etcd-bin PATH"
    )]
    NoEtcd(String),
    #[error("installing etcd-server failed: {0}")]
    Install(String),
    #[error(
        "the {system} cluster did not serve within {seconds} s: {last}; its logs are in {logs}"
    )]
    NotReady { system: &'static str, seconds: u64, last: String, logs: String },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |why| ClusterError::Io { what, why }
}

/// Running server processes.
pub struct Servers {
    procs: Vec<Process>,
}

impl Servers {
    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(Process::pid).collect()
    }

    /// CPU time (user + system) the processes spent so far.
    pub fn cpu(&self) -> Duration {
        self.pids().into_iter().map(cpu_of).sum()
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
        }
    }
}

/// User + system CPU time of process `pid` (fields 14 and 15 of /proc/PID/stat); zero when it
/// cannot be read.
pub fn cpu_of(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let Some(rest) = stat.rfind(')').map(|at| &stat[at + 1..]) else { return Duration::ZERO };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12].iter().filter_map(|&k| fields.get(k)?.parse::<u64>().ok()).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// User + system CPU time of this process so far (`getrusage`, microseconds; /proc counts
/// ticks of 10 ms, too coarse for a short step's load generator); zero if it cannot be read.
pub fn own_cpu() -> Duration {
    // SAFETY: getrusage writes into the struct it is given, which outlives the call.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let us = |t: libc::timeval| t.tv_sec.max(0) as u64 * 1_000_000 + t.tv_usec.max(0) as u64;
    Duration::from_micros(us(usage.ru_utime) + us(usage.ru_stime))
}

/// Three arakoon nodes; clients find the master themselves.
pub struct ArakoonCluster {
    pub servers: Servers,
    pub client: ClientConfig,
    /// Where the nodes write their stage timings (`arakoon --spans`, node/src/spans.rs).
    pub spans: PathBuf,
}

/// Starts three `arakoon` nodes (the binary beside this program, or `ARAKOON_BIN`) under `dir`.
pub fn start_arakoon(dir: &Path) -> Result<ArakoonCluster, ClusterError> {
    let binary = locate_binary("arakoon").map_err(io("the arakoon binary"))?;
    let ports = free_ports(6).map_err(io("free ports"))?;
    let names = ["n0", "n1", "n2"];
    let mut ini = format!("[global]\ncluster = {}\ncluster_id = bench\n", names.join(", "));
    for (k, name) in names.iter().enumerate() {
        ini += &format!(
            "\n[{name}]\nip = 127.0.0.1\nclient_port = {}\nmessaging_port = {}\nhome = {}\n\
             log_level = warning\n",
            ports[2 * k],
            ports[2 * k + 1],
            dir.join(name).display()
        );
    }
    let config = dir.join("cluster.ini");
    std::fs::write(&config, ini).map_err(io(config.display().to_string()))?;
    let spans = dir.join("spans");
    let mut procs = Vec::new();
    for name in names {
        let args = vec![
            "--node".into(),
            name.into(),
            "-config".into(),
            path_arg(&config),
            "--spans".into(),
            path_arg(&spans),
        ];
        let log = dir.join(format!("{name}.log"));
        procs.push(Process::spawn(name, &binary, &args, &log).map_err(io("starting arakoon"))?);
    }
    let nodes = names
        .iter()
        .enumerate()
        .map(|(k, n)| (n.to_string(), SocketAddr::from(([127, 0, 0, 1], ports[2 * k]))))
        .collect();
    let client = ClientConfig::new("bench", nodes);
    Ok(ArakoonCluster { servers: Servers { procs }, client, spans })
}

/// Three etcd members; `leader` is the client address of the member that leads.
pub struct EtcdCluster {
    pub servers: Servers,
    pub members: Vec<SocketAddr>,
    pub leader: SocketAddr,
}

/// The etcd binary: `given`, or on the PATH, or installed from Debian's package when
/// `install` is set.
pub fn find_etcd(given: Option<&Path>, install: bool) -> Result<PathBuf, ClusterError> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let on_path = || {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|d| d.join("etcd"))
            .find(|p| p.is_file())
    };
    if let Some(p) = on_path() {
        return Ok(p);
    }
    if !install {
        return Err(ClusterError::NoEtcd("etcd on the PATH".into()));
    }
    eprintln!("installing Debian's etcd-server (apt-get install -y etcd-server) ...");
    let status = std::process::Command::new("apt-get")
        .args(["install", "-y", "-q", "etcd-server"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| ClusterError::Install(format!("cannot run apt-get: {e}")))?;
    if !status.success() {
        return Err(ClusterError::Install(format!("apt-get ended with {status}")));
    }
    on_path().ok_or_else(|| ClusterError::NoEtcd("etcd on the PATH after installing".into()))
}

/// Starts three etcd members under `dir` and waits (up to `within`) for a leader.
pub async fn start_etcd(
    binary: &Path,
    dir: &Path,
    within: Duration,
) -> Result<EtcdCluster, ClusterError> {
    let ports = free_ports(6).map_err(io("free ports"))?;
    let url = |p: u16| format!("http://127.0.0.1:{p}");
    let initial: Vec<String> = (0..3).map(|k| format!("e{k}={}", url(ports[2 * k + 1]))).collect();
    let mut procs = Vec::new();
    for k in 0..3 {
        let (client, peer) = (url(ports[2 * k]), url(ports[2 * k + 1]));
        let args: Vec<String> = [
            "--name",
            &format!("e{k}"),
            "--data-dir",
            &path_arg(&dir.join(format!("e{k}"))),
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &initial.join(","),
            "--initial-cluster-token",
            "bench",
            "--initial-cluster-state",
            "new",
            "--quota-backend-bytes",
            "8589934592",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let log = dir.join(format!("e{k}.log"));
        let name = format!("e{k}");
        procs.push(Process::spawn(&name, binary, &args, &log).map_err(io("starting etcd"))?);
    }
    let servers = Servers { procs };
    let members: Vec<SocketAddr> =
        (0..3).map(|k| SocketAddr::from(([127, 0, 0, 1], ports[2 * k]))).collect();
    let deadline = Instant::now() + within;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        match etcd_leader(&members).await {
            Ok(Some(leader)) => return Ok(EtcdCluster { servers, members, leader }),
            Ok(None) => last = "no leader yet".into(),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let logs = dir.display().to_string();
    Err(ClusterError::NotReady { system: "etcd", seconds: within.as_secs(), last, logs })
}

/// The member that every member names as leader, once one is elected.
async fn etcd_leader(members: &[SocketAddr]) -> Result<Option<SocketAddr>, crate::etcd::EtcdError> {
    let mut statuses = Vec::new();
    for &addr in members {
        let mut conn = crate::etcd::EtcdConn::connect(addr).await?;
        statuses.push((addr, conn.status().await?));
    }
    let leader = statuses[0].1.leader;
    if leader == 0 || statuses.iter().any(|(_, s)| s.leader != leader) {
        return Ok(None);
    }
    Ok(statuses.iter().find(|(_, s)| s.member_id == leader).map(|(a, _)| *a))
}

fn path_arg(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_of_this_process_grows_with_work() {
        let me = std::process::id();
        let (before, own_before) = (cpu_of(me), own_cpu());
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(31).wrapping_add(std::hint::black_box(7));
        }
        std::hint::black_box(x);
        assert!(cpu_of(me) > before, "{:?} -> {:?}", before, cpu_of(me));
        // getrusage counts the same work (in microseconds; a loaded machine may give the loop
        // less than its 300 ms of wall clock, so no lower bound beyond one millisecond).
        let own = own_cpu().saturating_sub(own_before);
        assert!(own >= Duration::from_millis(1), "{own:?}");
        assert_eq!(cpu_of(u32::MAX), Duration::ZERO);
    }
}
