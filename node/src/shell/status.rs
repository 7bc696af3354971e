//! What a node says about itself: the private `node_state`'s typed answer (Arakoon's
//! `current_state` names are shell/state_name.rs; its `statistics`, shell/statistics.rs).

use super::Shell;
use crate::protocol::node_state::NodeState;
use crate::store::Store;

impl<S: Store, W> Shell<S, W> {
    /// `node_state`: role, master, lease, ballot and slots.
    pub fn node_state(&self, now_ms: u64) -> NodeState {
        NodeState {
            name: self.config.names[self.config.me].clone(),
            role: self.machine.role(),
            master: self.master_name(now_ms),
            lease_valid: self.machine.lease_valid(now_ms),
            promised: self.machine.promised(),
            last: self.machine.last_i(),
            committed: self.machine.committed_i(),
            applied: self.store.applied(),
            learner: self.machine.is_learner(),
        }
    }
}
