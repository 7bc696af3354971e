//! What a tier shows the director of its cluster when a fault's targets are resolved: which
//! nodes run, which are paused, who holds the lease.

/// The cluster as a tier sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    /// Per node: its process runs (paused or not).
    pub up: Vec<bool>,
    /// Per node: its process is frozen (SIGSTOP or the simulator's pause).
    pub paused: Vec<bool>,
    /// The node holding a valid lease, if one does.
    pub master: Option<usize>,
}

impl ClusterView {
    /// Every one of `nodes` nodes up, none paused, no master.
    pub fn all_up(nodes: usize) -> ClusterView {
        ClusterView { up: vec![true; nodes], paused: vec![false; nodes], master: None }
    }

    pub fn nodes(&self) -> usize {
        self.up.len()
    }

    pub fn is_up(&self, k: usize) -> bool {
        self.up.get(k).copied().unwrap_or(false)
    }
}
