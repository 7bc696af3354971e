//! Liveness: after the last fault heals, the cluster must come back. The nemesis stops at the
//! run's end; everything heals and restarts, except, drawn per seed, up to as many nodes as the
//! quorum can spare (`nodes - quorum`), which stay down: a cluster must serve without a
//! minority. From the heal on, a master must be elected and a client's write acknowledged
//! within [`LIVENESS_LEASES`] leases, or the run fails the check "liveness" with the reason;
//! the nodes held down are then started again so that the end checks see every node.
//!
//! The bound, in leases: one for the old master's lease to run out, one for an election and
//! its retries, one for catching up the voters that lag and committing; two more for a
//! client's timeout (2 s) and its retry on another node. A cluster that needs longer than that
//! after a clean heal is not available in any sense an operator would accept.

use super::run::World;
use arakoon_node::consensus::NodeIdx;
use rand::Rng;

/// How long after the heal a write must be acknowledged, in leases (see the module doc).
pub const LIVENESS_LEASES: u64 = 5;

/// The liveness check's state during the run's settle period.
#[derive(Debug, Default)]
pub(super) struct Liveness {
    /// When the last fault healed (µs); `None` before, and in drills (their steps say what
    /// stays down).
    pub(super) healed_at_us: Option<u64>,
    /// Nodes kept down through the check.
    pub(super) held_down: Vec<NodeIdx>,
    /// When the first write after the heal was acknowledged (µs).
    pub(super) write_at_us: Option<u64>,
}

impl Liveness {
    /// Whether node `k` is kept down by the check (a scheduled restart waits for the release).
    pub(super) fn holds(&self, k: NodeIdx) -> bool {
        self.held_down.contains(&k)
    }
}

impl World {
    /// Draws the nodes held down for the check, among the voters, so that at least a quorum
    /// of voters stays: a node rebuilt after a lost disk (a learner) counts as one that cannot
    /// vote. Call once the heal restarted the nodes, so that their roles are known.
    pub(super) fn start_liveness(&mut self, quorum: usize) {
        let n = self.cfg.nodes;
        let spare = n.saturating_sub(quorum);
        let can_vote: Vec<NodeIdx> = (0..n).filter(|k| self.healthy(*k)).collect();
        let non_voters = n - can_vote.len();
        let down = self.rng.gen_range(0..=spare).saturating_sub(non_voters);
        let mut pool = can_vote;
        let mut held = Vec::new();
        for _ in 0..down.min(pool.len()) {
            held.push(pool.remove(self.rng.gen_range(0..pool.len())));
        }
        held.sort_unstable();
        for &k in &held {
            self.crash_node(k);
        }
        let now = self.now_us;
        self.trace(|| format!("liveness: heal at {now}µs, held down {held:?}"), 60);
        self.liveness = Liveness { healed_at_us: Some(now), held_down: held, write_at_us: None };
    }

    /// A client's write was acknowledged: the first after the heal passes the check and
    /// releases the nodes held down.
    pub(super) fn note_write_acknowledged(&mut self) {
        if self.liveness.healed_at_us.is_none() || self.liveness.write_at_us.is_some() {
            return;
        }
        self.liveness.write_at_us = Some(self.now_us);
        let healed = self.liveness.healed_at_us.unwrap_or(self.now_us);
        self.report.write_after_heal_ms = Some((self.now_us - healed) / 1000);
        self.release_held_down();
    }

    /// Past the bound with no write acknowledged: fails the run with what the cluster looked
    /// like, then releases the nodes held down.
    pub(super) fn check_liveness(&mut self) {
        let Some(healed) = self.liveness.healed_at_us else { return };
        let bound_us = LIVENESS_LEASES * self.cfg.lease_ms * 1000;
        if self.liveness.write_at_us.is_some() || self.now_us < healed + bound_us {
            return;
        }
        let roles: Vec<String> =
            (0..self.cfg.nodes).map(|k| format!("n{k} {}", self.role_name(k))).collect();
        let detail = format!(
            "no write acknowledged within {} ms ({LIVENESS_LEASES} leases) after the last fault healed at {} ms; held down (a minority the quorum spares): {:?}; roles at the bound: {}",
            bound_us / 1000,
            healed / 1000,
            self.liveness.held_down,
            roles.join(", ")
        );
        self.fail("liveness", detail);
        self.liveness.write_at_us = Some(self.now_us);
        self.release_held_down();
    }

    fn release_held_down(&mut self) {
        for k in std::mem::take(&mut self.liveness.held_down) {
            self.trace(|| format!("liveness: release n{k}"), 61);
            self.restart(k);
        }
    }
}
