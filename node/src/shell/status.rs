//! What a node says about itself: its role, `current_state`'s text and `statistics`.

use super::Shell;
use crate::consensus::RoleName;
use crate::llio::Put;
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

    /// Statistics as Arakoon's named-value tree: a list named "arakoon_stats".
    pub fn statistics(&self, now_ms: u64) -> Vec<u8> {
        const INT64: i32 = 2;
        const STRING: i32 = 4;
        const LIST: i32 = 5;
        let mut items: Vec<Vec<u8>> = Vec::new();
        let mut int64 = |name: &str, v: u64| {
            let mut b = Vec::new();
            b.put_i32(INT64);
            b.put_bytes(name.as_bytes());
            b.put_i64(i64::try_from(v).unwrap_or(i64::MAX));
            items.push(b);
        };
        int64("uptime_ms", now_ms.saturating_sub(self.started_ms));
        int64("applied", self.store.applied().map_or(0, |i| i + 1));
        int64("committed", self.machine.committed_i().map_or(0, |i| i + 1));
        int64("pending_updates", self.pending.len() as u64);
        let mut b = Vec::new();
        b.put_i32(STRING);
        b.put_bytes(b"role");
        b.put_bytes(role_name(self.machine.role()).as_bytes());
        items.push(b);
        let mut out = Vec::new();
        out.put_i32(LIST);
        out.put_bytes(b"arakoon_stats");
        out.put_i32(items.len() as i32);
        for item in items.iter().rev() {
            out.extend_from_slice(item);
        }
        out
    }
}
