//! The reply of our private `node_state` (0x102): what a node says about itself, in a fixed
//! binary layout that tools decode instead of parsing text (the sandbox reads a node's role and
//! lease from it; `arakoon-admin client node-state` prints its [`Display`](std::fmt::Display)).
//!
//! After rc 0: string name, int32 role (0 slave, 1 candidate, 2 master, 3 catching up), option
//! string master (the master this node sees inside a lease), bool lease_valid (this node holds a
//! valid master lease), int64 promised ballot, int64 last slot in the log, int64 committed slot,
//! int64 applied slot (-1 for none, each), bool learner. Arakoon's public `current_state` (0x32)
//! is untouched: it answers Arakoon's state names (shell/state_name.rs).

use crate::consensus::RoleName;
use crate::llio::{DecodeError, Put, Reader};

/// A node's view of itself, as `node_state` answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    pub name: String,
    pub role: RoleName,
    /// The master this node sees inside a lease, if any.
    pub master: Option<String>,
    /// Whether this node is master with a valid lease.
    pub lease_valid: bool,
    pub promised: u64,
    pub last: Option<u64>,
    pub committed: Option<u64>,
    pub applied: Option<u64>,
    pub learner: bool,
}

/// A role's code on the wire.
fn role_code(role: RoleName) -> i32 {
    match role {
        RoleName::Slave => 0,
        RoleName::Candidate => 1,
        RoleName::Master => 2,
        RoleName::CatchingUp => 3,
    }
}

/// A role's name as the node reports it to people.
pub fn role_name(role: RoleName) -> &'static str {
    match role {
        RoleName::Master => "master",
        RoleName::Slave => "slave",
        RoleName::Candidate => "candidate",
        RoleName::CatchingUp => "catching_up",
    }
}

fn put_slot(buf: &mut Vec<u8>, slot: Option<u64>) {
    // Slots stay far below i64::MAX (one per update); saturate rather than wrap if not.
    buf.put_i64(slot.map_or(-1, |i| i64::try_from(i).unwrap_or(i64::MAX)));
}

fn slot(r: &mut Reader<'_>, what: &'static str) -> Result<Option<u64>, DecodeError> {
    let at = r.position();
    match r.i64()? {
        -1 => Ok(None),
        i => u64::try_from(i).map(Some).map_err(|_| DecodeError::NotASlot { at, what, value: i }),
    }
}

impl NodeState {
    pub fn encode(&self, buf: &mut Vec<u8>) {
        buf.put_bytes(self.name.as_bytes());
        buf.put_i32(role_code(self.role));
        buf.put_option(self.master.as_deref().map(str::as_bytes));
        buf.put_bool(self.lease_valid);
        buf.put_i64(i64::try_from(self.promised).unwrap_or(i64::MAX));
        put_slot(buf, self.last);
        put_slot(buf, self.committed);
        put_slot(buf, self.applied);
        buf.put_bool(self.learner);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<NodeState, DecodeError> {
        let name = r.string("node name")?;
        let at = r.position();
        let role = match r.i32()? {
            0 => RoleName::Slave,
            1 => RoleName::Candidate,
            2 => RoleName::Master,
            3 => RoleName::CatchingUp,
            code => return Err(DecodeError::BadTag { at, what: "role", tag: i64::from(code) }),
        };
        let master = r.option_string("master name")?;
        let lease_valid = r.bool()?;
        let at = r.position();
        let promised = r.i64()?;
        let promised = u64::try_from(promised).map_err(|_| DecodeError::Negative {
            at,
            what: "promised ballot",
            value: promised,
        })?;
        Ok(NodeState {
            name,
            role,
            master,
            lease_valid,
            promised,
            last: slot(r, "last slot")?,
            committed: slot(r, "committed slot")?,
            applied: slot(r, "applied slot")?,
            learner: r.bool()?,
        })
    }
}

/// One line for people: `n0 master: master=n0 lease_valid=true promised=3 last=4 ...`.
impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opt = |x: Option<u64>| x.map_or("none".to_string(), |i| i.to_string());
        write!(
            f,
            "{} {}: master={} lease_valid={} promised={} last={} committed={} applied={} learner={}",
            self.name,
            role_name(self.role),
            self.master.as_deref().unwrap_or("None"),
            self.lease_valid,
            self.promised,
            opt(self.last),
            opt(self.committed),
            opt(self.applied),
            self.learner,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NodeState {
        NodeState {
            name: "n1".into(),
            role: RoleName::Master,
            master: Some("n1".into()),
            lease_valid: true,
            promised: 7,
            last: Some(12),
            committed: Some(11),
            applied: None,
            learner: false,
        }
    }

    #[test]
    fn the_layout_is_byte_exact() {
        let mut buf = Vec::new();
        sample().encode(&mut buf);
        let mut want = Vec::new();
        want.extend_from_slice(&2i32.to_le_bytes());
        want.extend_from_slice(b"n1");
        want.extend_from_slice(&2i32.to_le_bytes()); // master
        want.push(1);
        want.extend_from_slice(&2i32.to_le_bytes());
        want.extend_from_slice(b"n1");
        want.push(1); // lease_valid
        want.extend_from_slice(&7i64.to_le_bytes());
        want.extend_from_slice(&12i64.to_le_bytes());
        want.extend_from_slice(&11i64.to_le_bytes());
        want.extend_from_slice(&(-1i64).to_le_bytes());
        want.push(0);
        assert_eq!(buf, want);
        let mut r = Reader::new(&buf);
        assert_eq!(NodeState::decode(&mut r).unwrap(), sample());
        assert_eq!(r.position(), buf.len());
    }

    #[test]
    fn every_role_round_trips_and_a_bad_code_is_refused() {
        for role in [RoleName::Slave, RoleName::Candidate, RoleName::Master, RoleName::CatchingUp] {
            let state = NodeState { role, master: None, ..sample() };
            let mut buf = Vec::new();
            state.encode(&mut buf);
            assert_eq!(NodeState::decode(&mut Reader::new(&buf)).unwrap(), state);
        }
        let mut buf = Vec::new();
        sample().encode(&mut buf);
        buf[6..10].copy_from_slice(&9i32.to_le_bytes());
        let err = NodeState::decode(&mut Reader::new(&buf)).unwrap_err();
        assert!(matches!(err, DecodeError::BadTag { what: "role", tag: 9, .. }), "{err:?}");
    }

    #[test]
    fn a_slot_below_minus_one_is_refused() {
        let mut buf = Vec::new();
        NodeState { committed: None, ..sample() }.encode(&mut buf);
        let at = buf.len() - 1 - 8 - 8;
        buf[at..at + 8].copy_from_slice(&(-5i64).to_le_bytes());
        let err = NodeState::decode(&mut Reader::new(&buf)).unwrap_err();
        assert!(err.to_string().contains("-5"), "{err}");
    }

    #[test]
    fn the_text_names_every_field() {
        assert_eq!(
            sample().to_string(),
            "n1 master: master=n1 lease_valid=true promised=7 last=12 committed=11 \
             applied=none learner=false"
        );
    }
}
