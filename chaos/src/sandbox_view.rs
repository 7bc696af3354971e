//! What a sandbox's node says of itself, as `sandbox status` shows it and the sandbox drill's
//! observer draws it: read from the node's typed `node_state` (0x102), never parsed from text.

use arakoon_node::client::{AskError, Client};
use arakoon_node::protocol::node_state::{role_name, NodeState};

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
