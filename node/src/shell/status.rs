//! What a node says about itself: its role and `node_state`'s text (Arakoon's `current_state`
//! names are shell/state_name.rs; its `statistics`, shell/statistics.rs).

use super::Shell;
use crate::consensus::RoleName;
use crate::store::Store;

/// A role's name as the node reports it.
pub fn role_name(role: RoleName) -> &'static str {
    match role {
        RoleName::Master => "master",
        RoleName::Slave => "slave",
        RoleName::Candidate => "candidate",
        RoleName::CatchingUp => "catching_up",
    }
}

impl<S: Store, W> Shell<S, W> {
    /// `current_state`: one line for people.
    pub fn current_state(&self, now_ms: u64) -> String {
        let opt = |x: Option<u64>| x.map_or("none".to_string(), |i| i.to_string());
        format!(
            "{} {}: master={} lease_valid={} promised={} last={} committed={} applied={} learner={}",
            self.config.names[self.config.me],
            role_name(self.machine.role()),
            self.master_name(now_ms).unwrap_or_else(|| "None".into()),
            self.machine.lease_valid(now_ms),
            self.machine.promised(),
            opt(self.machine.last_i()),
            opt(self.machine.committed_i()),
            opt(self.store.applied()),
            self.machine.is_learner(),
        )
    }
}
