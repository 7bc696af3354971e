//! The state names Arakoon 1.9's `current_state` (0x32) reports, mapped from the core's role.
//!
//! Arakoon answers with the name of its Multi-Paxos state machine's current transition
//! (`show_transition` in its `multi_paxos_type.ml`). Our core has fewer, coarser states; each maps
//! to the Arakoon state a node in the same situation is in. Our own detailed text (ballots,
//! slots, lease) is answered by the private `node_state` command (0x102).

use crate::consensus::RoleName;

/// Arakoon's state name for a node in `role`; `master_known` says whether a slave sees a master
/// inside its lease (steady) or waits for one (a prepare).
pub fn arakoon_state_name(role: RoleName, master_known: bool) -> &'static str {
    match role {
        RoleName::Master => "Stable_master",
        RoleName::Slave if master_known => "Slave_steady_state",
        RoleName::Slave => "Slave_waiting_for_prepare",
        // A candidate has sent its prepares and counts the promises.
        RoleName::Candidate => "Wait_for_promises",
        // A node that learnt of a master ahead of it catches up first.
        RoleName::CatchingUp => "Slave_discovered_other_master",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_has_an_arakoon_name() {
        assert_eq!(arakoon_state_name(RoleName::Master, true), "Stable_master");
        assert_eq!(arakoon_state_name(RoleName::Slave, true), "Slave_steady_state");
        assert_eq!(arakoon_state_name(RoleName::Slave, false), "Slave_waiting_for_prepare");
        assert_eq!(arakoon_state_name(RoleName::Candidate, false), "Wait_for_promises");
        assert_eq!(arakoon_state_name(RoleName::CatchingUp, true), "Slave_discovered_other_master");
    }
}
