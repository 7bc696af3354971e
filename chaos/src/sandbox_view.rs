//! What a sandbox looks like: each node's process (from the supervisor's state and /proc) and
//! what the node says of itself, read from its typed `node_state` (0x102), never parsed from
//! text. [`status`] gathers it for `sandbox status`; the sandbox drill's observer asks the nodes
//! with [`ask_state`] as it goes.

use crate::process;
use crate::sandbox::{self, NetState, SandboxNode, SandboxState};
use arakoon_node::client::{AskError, Client};
use arakoon_node::config::ClusterConfig;
use arakoon_node::protocol::node_state::{role_name, NodeState};
use std::io;
use std::path::{Path, PathBuf};

/// A node's process, as the status table names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    Running(u32),
    /// SIGSTOPped (by `pause`, or by someone else: /proc says `T`).
    Paused(u32),
    Stopped,
}

impl Process {
    pub fn name(self) -> &'static str {
        match self {
            Process::Running(_) => "running",
            Process::Paused(_) => "paused",
            Process::Stopped => "stopped",
        }
    }

    pub fn pid(self) -> Option<u32> {
        match self {
            Process::Running(p) | Process::Paused(p) => Some(p),
            Process::Stopped => None,
        }
    }
}

/// One node of a sandbox's status.
#[derive(Debug)]
pub struct NodeStatus {
    /// What the supervisor recorded of it: name, ports, how it last ended.
    pub node: SandboxNode,
    pub process: Process,
    /// What it answered; a paused or stopped node is not asked (the default view).
    pub view: Result<NodeView, AskError>,
}

/// A sandbox as `sandbox status` shows it.
#[derive(Debug)]
pub struct SandboxStatus {
    /// The canonical directory.
    pub dir: PathBuf,
    pub state: SandboxState,
    /// The supervisor's pid, if it runs.
    pub supervisor: Option<u32>,
    pub nodes: Vec<NodeStatus>,
    /// The nodes that say they are master with a valid lease (more than one is a bug).
    pub masters: Vec<String>,
    /// The links the proxies cut or slow.
    pub net: NetState,
}

/// Why a sandbox's status could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// No sandbox in `dir`, or its state unreadable (the error names the file and what to do).
    #[error("{source}")]
    State { dir: PathBuf, source: crate::sandbox::SandboxError },
    #[error(transparent)]
    Config(#[from] arakoon_node::config::ConfigError),
    #[error("cannot start the runtime: {0}")]
    Runtime(io::Error),
}

/// The status of the sandbox in `dir`: each node's process and, for a running one, its answer.
pub fn status(dir: &Path) -> Result<SandboxStatus, StatusError> {
    let state = SandboxState::load(dir)
        .map_err(|source| StatusError::State { dir: dir.to_path_buf(), source })?;
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let config = ClusterConfig::load(&dir.join("cluster.ini"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StatusError::Runtime)?;
    let client = Client::new(crate::sandbox_up::poll_config(&config));
    let mut nodes = Vec::new();
    for (k, n) in state.nodes.iter().enumerate() {
        let proc = match n.pid.filter(|&p| process::pid_alive(p)) {
            None => Process::Stopped,
            Some(p) if n.paused || process::pid_state(p) == Some('T') => Process::Paused(p),
            Some(p) => Process::Running(p),
        };
        // A paused node would only time out; a stopped one has nothing to say.
        let view = match proc {
            Process::Running(_) => runtime.block_on(ask_state(&client, k)),
            _ => Ok(NodeView::default()),
        };
        nodes.push(NodeStatus { node: n.clone(), process: proc, view });
    }
    let masters = nodes
        .iter()
        .filter(|s| matches!(&s.view, Ok(v) if v.holds_the_lease()))
        .map(|s| s.node.name.clone())
        .collect();
    let supervisor = state.running_supervisor();
    let net = sandbox::load_net(&dir);
    Ok(SandboxStatus { dir, state, supervisor, nodes, masters, net })
}

/// What one node says of itself (its typed `node_state`); the drill runner polls it too.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub role: Option<String>,
    pub master: Option<String>,
    pub lease_valid: Option<bool>,
    pub applied: Option<u64>,
    pub committed: Option<u64>,
    pub learner: Option<bool>,
}

impl From<NodeState> for NodeView {
    fn from(s: NodeState) -> NodeView {
        NodeView {
            role: Some(role_name(s.role).to_string()),
            master: s.master,
            lease_valid: Some(s.lease_valid),
            applied: s.applied,
            committed: s.committed,
            learner: Some(s.learner),
        }
    }
}

impl NodeView {
    /// It says it is master and its lease is valid.
    pub fn holds_the_lease(&self) -> bool {
        self.role.as_deref() == Some("master") && self.lease_valid == Some(true)
    }
}

/// Node `k`'s typed `node_state` (0x102), as the status table shows it.
pub async fn ask_state(client: &Client, k: usize) -> Result<NodeView, AskError> {
    client.node_state_of(k).await.map(NodeView::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arakoon_node::consensus::RoleName;

    #[test]
    fn a_node_view_carries_the_typed_state() {
        let state = NodeState {
            name: "n0".into(),
            role: RoleName::Master,
            master: Some("n0".into()),
            lease_valid: true,
            promised: 3,
            last: Some(5),
            committed: Some(4),
            applied: Some(4),
            learner: false,
        };
        let v = NodeView::from(state.clone());
        assert_eq!(v.role.as_deref(), Some("master"));
        assert_eq!(v.master.as_deref(), Some("n0"));
        assert_eq!(
            (v.lease_valid, v.applied, v.committed, v.learner),
            (Some(true), Some(4), Some(4), Some(false))
        );
        let v = NodeView::from(NodeState {
            role: RoleName::CatchingUp,
            master: None,
            applied: None,
            ..state
        });
        assert_eq!(v.role.as_deref(), Some("catching_up"));
        assert_eq!((v.master, v.applied), (None, None));
    }
}
