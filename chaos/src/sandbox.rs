//! The local sandbox: a cluster of real `arakoon` processes on loopback, whose peer links run
//! through fault proxies so that partitions need no root.
//!
//! Layout of a sandbox directory:
//!
//! ```text
//! D/sandbox.json        what runs: nodes (ports, pid, paused), proxies, the supervisor's pid
//! D/cluster.ini         the configuration clients and operators use (real ports)
//! D/net.json            the state of every directed peer link (links not named pass)
//! D/control.sock        the supervisor's control socket (while it runs)
//! D/supervisor.log      what the supervisor did
//! D/<node>/node.ini     the node's own view: its peers' messaging ports are its proxies
//! D/<node>/home/        store and TLogs
//! D/<node>/node.log     stdout and stderr of the node process (and of its catch-ups)
//! ```
//!
//! Node `a` reaches peer `b` through the proxy for the link `a->b` (each direction of a peer
//! link is its own TCP connection), so cutting that one proxy is a one-way partition. Clients
//! use the real client ports. How the processes are owned: [`crate::sandbox_supervisor`].
//!
//! This module is the plan and the files: what the sandbox looks like, not what runs it.

use crate::proxy::{LinkMode, LinkState};
use arakoon_node::config::{ClusterConfig, NodeConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// One node of the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxNode {
    pub name: String,
    pub client_port: u16,
    pub messaging_port: u16,
    /// The running process, if any.
    pub pid: Option<u32>,
    /// Stopped with SIGSTOP (`sandbox pause`).
    #[serde(default)]
    pub paused: bool,
    /// How the last process of this node ended, for `status` ("killed with SIGKILL by `sandbox
    /// kill`", "exited on its own with code 49", ...).
    #[serde(default)]
    pub last_exit: Option<String>,
}

/// One directed peer link and the proxy port that carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxLink {
    pub from: String,
    pub to: String,
    pub proxy_port: u16,
}

/// `sandbox.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxState {
    pub cluster_id: String,
    pub nodes: Vec<SandboxNode>,
    pub links: Vec<SandboxLink>,
    pub supervisor_pid: Option<u32>,
    pub lease_ms: u64,
    /// The `arakoon` binary the nodes run (found by `up`, reused by restarts).
    #[serde(default)]
    pub arakoon_bin: Option<PathBuf>,
    /// A process the sandbox lives no longer than (`up --exit-with-pid`, for tests and
    /// scripts): the supervisor shuts everything down once it is gone.
    #[serde(default)]
    pub owner_pid: Option<u32>,
}

/// `net.json`: link name `a->b` to its state; links not named pass.
pub type NetState = BTreeMap<String, LinkState>;

pub fn link_name(from: &str, to: &str) -> String {
    format!("{from}->{to}")
}

/// The most nodes a sandbox plans (one machine; 9 nodes make 72 proxies already).
pub const NODES_MAX: usize = 9;

/// The supervisor's control socket.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join("control.sock")
}

/// The longest path a Unix socket address can hold (`sun_path` less its terminating NUL).
pub const SOCKET_PATH_BYTES_MAX: usize = 107;

pub fn node_dir(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

pub fn node_home(dir: &Path, name: &str) -> PathBuf {
    dir.join(name).join("home")
}

pub fn node_tlog_dir(dir: &Path, name: &str) -> PathBuf {
    node_home(dir, name).join("tlogs")
}

pub fn node_ini(dir: &Path, name: &str) -> PathBuf {
    dir.join(name).join("node.ini")
}

pub fn node_log(dir: &Path, name: &str) -> PathBuf {
    dir.join(name).join("node.log")
}

/// The last `lines` lines of a log file, indented, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let tail = &all[all.len().saturating_sub(lines)..];
    if tail.is_empty() {
        return format!("  ({} is empty)", path.display());
    }
    let body: Vec<String> = tail.iter().map(|l| format!("  | {l}")).collect();
    format!("  last lines of {}:\n{}", path.display(), body.join("\n"))
}

pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Why a sandbox's state could not be read or planned, or a node or group named in it is wrong.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "{}: {source}; is there a sandbox here? start one with `arakoon-admin sandbox up`",
        path.display()
    )]
    NoState { path: PathBuf, source: io::Error },
    #[error("{}: {source}", path.display())]
    BadState { path: PathBuf, source: serde_json::Error },
    #[error("no node {name:?} in this sandbox (nodes: {known})")]
    UnknownNode { name: String, known: String },
    #[error("a sandbox has 1 to {NODES_MAX} nodes, not {nodes}")]
    NodeCount { nodes: usize },
    #[error("the lease must be at least 1 ms")]
    ZeroLease,
    /// A `[global]` setting (`--set`, a drill's `config:`) the node would refuse.
    #[error(transparent)]
    Setting(Box<arakoon_node::config::ConfigError>),
    #[error("a group names no node")]
    EmptyGroup,
    #[error("node {node} is named in two groups; each node belongs to one side")]
    TwoGroups { node: String },
    /// Creating the sandbox's directory, choosing its ports: the operating system's error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl SandboxState {
    pub fn load(dir: &Path) -> Result<SandboxState, SandboxError> {
        let path = dir.join("sandbox.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(source) => return Err(SandboxError::NoState { path, source }),
        };
        serde_json::from_str(&text).map_err(|source| SandboxError::BadState { path, source })
    }

    pub fn save(&self, dir: &Path) -> io::Result<()> {
        write_atomically(&dir.join("sandbox.json"), &serde_json::to_vec_pretty(self)?)
    }

    pub fn node(&self, name: &str) -> Result<&SandboxNode, SandboxError> {
        self.nodes.iter().find(|n| n.name == name).ok_or_else(|| self.unknown(name))
    }

    pub fn node_mut(&mut self, name: &str) -> Result<&mut SandboxNode, SandboxError> {
        let unknown = self.unknown(name);
        self.nodes.iter_mut().find(|n| n.name == name).ok_or(unknown)
    }

    fn unknown(&self, name: &str) -> SandboxError {
        SandboxError::UnknownNode { name: name.to_string(), known: self.names().join(", ") }
    }

    pub fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// The supervisor's pid, if it is alive (a recorded pid that now names another program,
    /// after a reboot or pid reuse, does not count).
    pub fn running_supervisor(&self) -> Option<u32> {
        let pid = self.supervisor_pid?;
        let args = crate::process::cmdline(pid)?;
        let is_supervisor = args.iter().any(|a| a == "supervise");
        (is_supervisor && crate::process::pid_alive(pid)).then_some(pid)
    }
}

/// Every live process that belongs to the sandbox in `dir`: its supervisor and its `arakoon`
/// nodes and catch-ups, known by their arguments (`--dir D`, `-config D/<node>/node.ini`).
pub fn processes_of(dir: &Path) -> Vec<u32> {
    let dir = dir.display().to_string();
    let under = format!("{dir}/");
    crate::process::pids_where(|args| {
        let mentions = args.iter().any(|a| *a == dir || a.starts_with(&under));
        let node = args.first().is_some_and(|a| a.ends_with("/arakoon") || a == "arakoon");
        let supervisor = args.iter().any(|a| a == "supervise");
        mentions && (node || supervisor)
    })
}

/// Writes a file through a temporary name and a rename, so readers never see half of it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

pub fn load_net(dir: &Path) -> NetState {
    std::fs::read(dir.join("net.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub fn save_net(dir: &Path, net: &NetState) -> io::Result<()> {
    write_atomically(&dir.join("net.json"), &serde_json::to_vec_pretty(net)?)
}

/// Plans a sandbox of `nodes` nodes in `dir`: picks free ports, writes the configurations, and
/// returns the state (no process started yet).
pub fn plan(
    dir: &Path,
    nodes: usize,
    lease_ms: u64,
) -> Result<(SandboxState, ClusterConfig), SandboxError> {
    plan_with(dir, nodes, lease_ms, &[])
}

/// [`plan`], with `[global]` settings of the configuration set otherwise (`sandbox up --set`, a
/// drill's `config:`); a setting the node would refuse is refused here, naming the key.
pub fn plan_with(
    dir: &Path,
    nodes: usize,
    lease_ms: u64,
    overrides: &[(String, String)],
) -> Result<(SandboxState, ClusterConfig), SandboxError> {
    if !(1..=NODES_MAX).contains(&nodes) {
        return Err(SandboxError::NodeCount { nodes });
    }
    if lease_ms == 0 {
        return Err(SandboxError::ZeroLease);
    }
    std::fs::create_dir_all(dir)?;
    let links = nodes * (nodes - 1);
    let ports = crate::process::free_ports(2 * nodes + links)?;
    let names: Vec<String> = (0..nodes).map(|k| format!("n{k}")).collect();
    let dir = dir.canonicalize()?;
    let node_configs: Vec<NodeConfig> = names
        .iter()
        .enumerate()
        .map(|(k, name)| NodeConfig {
            name: name.clone(),
            ip: LOCALHOST,
            client_port: ports[2 * k],
            messaging_port: ports[2 * k + 1],
            home: dir.join(name).join("home"),
            tlog_dir: dir.join(name).join("home").join("tlogs"),
            log_level: "info".into(),
        })
        .collect();
    let config = ClusterConfig {
        cluster_id: "sandbox".into(),
        nodes: node_configs,
        lease_ms,
        quorum: None,
        forced_master: None,
        tlog_max_entries: 50_000,
        tlog_max_size: 32 * 1024 * 1024,
        max_value_size: 8 * 1024 * 1024,
        max_buffer_size: 32 * 1024 * 1024,
        batch_max_updates: 1024,
        batch_max_bytes: arakoon_node::consensus::BATCH_BYTES_MAX_DEFAULT,
        max_connections: 1024,
        client_stall_ms: 10_000,
        cluster_secret_file: None,
        limits: Default::default(),
    }
    .with_overrides(overrides, "--set")
    .map_err(|e| SandboxError::Setting(Box::new(e)))?;
    let mut link_list = Vec::with_capacity(links);
    let mut next = 2 * nodes;
    for a in &names {
        for b in &names {
            if a != b {
                link_list.push(SandboxLink {
                    from: a.clone(),
                    to: b.clone(),
                    proxy_port: ports[next],
                });
                next += 1;
            }
        }
    }
    std::fs::write(dir.join("cluster.ini"), config.to_ini())?;
    for (k, name) in names.iter().enumerate() {
        std::fs::create_dir_all(dir.join(name).join("home"))?;
        let mut own = config.clone();
        for (j, peer) in names.iter().enumerate() {
            if j != k {
                let link =
                    link_list.iter().find(|l| &l.from == name && &l.to == peer).expect("planned");
                own.nodes[j].messaging_port = link.proxy_port;
            }
        }
        std::fs::write(dir.join(name).join("node.ini"), own.to_ini())?;
    }
    let state = SandboxState {
        cluster_id: config.cluster_id.clone(),
        nodes: names
            .iter()
            .zip(&config.nodes)
            .map(|(name, n)| SandboxNode {
                name: name.clone(),
                client_port: n.client_port,
                messaging_port: n.messaging_port,
                pid: None,
                paused: false,
                last_exit: None,
            })
            .collect(),
        links: link_list,
        supervisor_pid: None,
        lease_ms,
        arakoon_bin: None,
        owner_pid: None,
    };
    state.save(&dir)?;
    save_net(&dir, &NetState::new())?;
    Ok((state, config))
}

/// The link states that cut the cluster into `groups` (nodes in no group are isolated).
pub fn partition(state: &SandboxState, groups: &[Vec<String>]) -> Result<NetState, SandboxError> {
    check_groups(state, groups)?;
    let mut net = NetState::new();
    for l in &state.links {
        let together = groups.iter().any(|g| g.contains(&l.from) && g.contains(&l.to));
        if !together {
            net.insert(link_name(&l.from, &l.to), LinkState { mode: LinkMode::Drop, delay_ms: 0 });
        }
    }
    Ok(net)
}

/// The link states that cut every link from a node of `from` to a node of `to`, and only those:
/// `to` still reaches `from`.
pub fn one_way(
    state: &SandboxState,
    from: &[String],
    to: &[String],
) -> Result<NetState, SandboxError> {
    check_groups(state, &[from.to_vec(), to.to_vec()])?;
    let mut net = NetState::new();
    for l in &state.links {
        if from.contains(&l.from) && to.contains(&l.to) {
            net.insert(link_name(&l.from, &l.to), LinkState { mode: LinkMode::Drop, delay_ms: 0 });
        }
    }
    Ok(net)
}

/// Why the groups an operator named do not make a partition.
#[derive(Debug, thiserror::Error)]
pub enum GroupsError {
    #[error("--one-way takes exactly two groups: FROM TO")]
    OneWayNotTwo,
    #[error("every node is in one group: nothing to cut; name at least two groups, e.g. `partition n0 n1,n2`")]
    OneGroup,
    /// A name that is no node, a node in two groups, an empty group.
    #[error(transparent)]
    Names(SandboxError),
}

/// The link states for groups as an operator writes them (each a comma-separated list of
/// nodes), and how to say what was cut: both ways between the groups, the nodes named in no
/// group forming one more; or, `one_way`, only from the first group to the second.
pub fn partition_of_groups(
    state: &SandboxState,
    groups: &[String],
    one_way: bool,
) -> Result<(NetState, String), GroupsError> {
    let mut groups: Vec<Vec<String>> = groups
        .iter()
        .map(|g| g.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
        .collect();
    if one_way {
        let [from, to] = groups.as_slice() else { return Err(GroupsError::OneWayNotTwo) };
        let links = self::one_way(state, from, to).map_err(GroupsError::Names)?;
        return Ok((links, format!("{{{}}} -> {{{}}} cut one way", from.join(","), to.join(","))));
    }
    let named: Vec<&String> = groups.iter().flatten().collect();
    let rest: Vec<String> = state.names().into_iter().filter(|n| !named.contains(&n)).collect();
    if !rest.is_empty() {
        groups.push(rest);
    }
    if groups.len() < 2 {
        return Err(GroupsError::OneGroup);
    }
    let links = partition(state, &groups).map_err(GroupsError::Names)?;
    let sides: Vec<String> = groups.iter().map(|g| format!("{{{}}}", g.join(","))).collect();
    Ok((links, sides.join(" | ")))
}

/// Every name is a node of the sandbox, and no node is in two groups.
fn check_groups(state: &SandboxState, groups: &[Vec<String>]) -> Result<(), SandboxError> {
    let mut seen: Vec<&String> = Vec::new();
    for g in groups {
        if g.is_empty() {
            return Err(SandboxError::EmptyGroup);
        }
        for n in g {
            state.node(n)?;
            if seen.contains(&n) {
                return Err(SandboxError::TwoGroups { node: n.clone() });
            }
            seen.push(n);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_gives_each_node_its_own_view_of_the_peers() {
        let tmp = tempfile::tempdir().unwrap();
        let (state, config) = plan(tmp.path(), 3, 1000).unwrap();
        assert_eq!(state.links.len(), 6);
        let own = ClusterConfig::load(&tmp.path().join("n0/node.ini")).unwrap();
        assert_eq!(
            own.nodes[0].messaging_port, config.nodes[0].messaging_port,
            "its own port is real"
        );
        let via = state.links.iter().find(|l| l.from == "n0" && l.to == "n1").unwrap();
        assert_eq!(own.nodes[1].messaging_port, via.proxy_port, "a peer is reached via its proxy");
        assert_eq!(own.nodes[1].client_port, config.nodes[1].client_port);
        assert_eq!(SandboxState::load(tmp.path()).unwrap(), state);
    }

    #[test]
    fn a_partition_cuts_exactly_the_links_between_groups() {
        let tmp = tempfile::tempdir().unwrap();
        let (state, _) = plan(tmp.path(), 3, 1000).unwrap();
        let net = partition(&state, &[vec!["n0".into(), "n1".into()], vec!["n2".into()]]).unwrap();
        let cut: Vec<&String> = net.keys().collect();
        assert_eq!(cut, ["n0->n2", "n1->n2", "n2->n0", "n2->n1"]);
        let err = partition(&state, &[vec!["n7".into()]]).unwrap_err();
        assert!(err.to_string().contains("n0, n1, n2"), "{err}");
        let err = partition(&state, &[vec!["n0".into()], vec!["n0".into()]]).unwrap_err();
        assert!(err.to_string().contains("two groups"), "{err}");
    }

    #[test]
    fn a_one_way_partition_cuts_one_direction_only() {
        let tmp = tempfile::tempdir().unwrap();
        let (state, _) = plan(tmp.path(), 3, 1000).unwrap();
        let net = one_way(&state, &["n0".into()], &["n1".into(), "n2".into()]).unwrap();
        let cut: Vec<&String> = net.keys().collect();
        assert_eq!(cut, ["n0->n1", "n0->n2"]);
    }

    #[test]
    fn groups_as_an_operator_writes_them_leave_the_rest_as_one_more_side() {
        let tmp = tempfile::tempdir().unwrap();
        let (state, _) = plan(tmp.path(), 3, 1000).unwrap();
        let (net, said) = partition_of_groups(&state, &["n0".into()], false).unwrap();
        assert_eq!(said, "{n0} | {n1,n2}");
        assert_eq!(net.len(), 4);
        let (net, said) =
            partition_of_groups(&state, &["n0".into(), " n1 ,".into()], true).unwrap();
        assert_eq!(said, "{n0} -> {n1} cut one way");
        assert_eq!(net.keys().collect::<Vec<_>>(), ["n0->n1"]);
        let all = ["n0,n1,n2".to_string()];
        assert!(matches!(partition_of_groups(&state, &all, false), Err(GroupsError::OneGroup)));
        let one = ["n0".to_string()];
        assert!(matches!(partition_of_groups(&state, &one, true), Err(GroupsError::OneWayNotTwo)));
        let bad = ["n9".to_string()];
        assert!(matches!(partition_of_groups(&state, &bad, false), Err(GroupsError::Names(_))));
    }

    #[test]
    fn a_plan_refuses_impossible_sizes() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(plan(tmp.path(), 0, 1000).unwrap_err().to_string().contains("1 to 9"));
        assert!(plan(tmp.path(), 10, 1000).is_err());
        assert!(plan(tmp.path(), 3, 0).is_err());
    }

    #[test]
    fn a_plan_takes_settings_and_refuses_bad_ones_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let set = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let (_, config) = plan_with(tmp.path(), 3, 1000, &set("tlog_max_entries", "10")).unwrap();
        assert_eq!(config.tlog_max_entries, 10);
        let written = std::fs::read_to_string(node_ini(tmp.path(), "n1")).unwrap();
        assert!(written.contains("tlog_max_entries = 10"), "{written}");
        let e = plan_with(tmp.path(), 3, 1000, &set("quorum", "5")).unwrap_err().to_string();
        assert!(e.contains("[global] quorum"), "{e}");
    }
}
