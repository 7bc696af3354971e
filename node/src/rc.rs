//! Arakoon's return codes (ARAKOON-FORMATS §2), shared by the store, the server and the client,
//! and the one place where the consensus core's reasons (a refused update, a refused read)
//! become return codes and texts: the core speaks of consensus, the shells speak Arakoon.

use crate::consensus::{NodeIdx, ReadRefusal, ReadWant, Refusal};
use crate::protocol::client::Consistency;

/// A return code on the client protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Rc {
    Ok = 0x00,
    NoMagic = 0x01,
    NoHello = 0x03,
    NotMaster = 0x04,
    NotFound = 0x05,
    WrongCluster = 0x06,
    AssertionFailed = 0x07,
    ReadOnly = 0x08,
    OutsideInterval = 0x09,
    GoingDown = 0x10,
    NotSupported = 0x20,
    NoLongerMaster = 0x21,
    BadInput = 0x26,
    InconsistentRead = 0x80,
    UserFunctionFailure = 0x81,
    UserHookNotFound = 0x82,
    MaxConnections = 0xfe,
    UnknownFailure = 0xff,
}

impl Rc {
    pub fn code(self) -> u32 {
        self as u32
    }

    pub fn from_code(code: u32) -> Option<Rc> {
        use Rc::*;
        Some(match code {
            0x00 => Ok,
            0x01 => NoMagic,
            0x03 => NoHello,
            0x04 => NotMaster,
            0x05 => NotFound,
            0x06 => WrongCluster,
            0x07 => AssertionFailed,
            0x08 => ReadOnly,
            0x09 => OutsideInterval,
            0x10 => GoingDown,
            0x20 => NotSupported,
            0x21 => NoLongerMaster,
            0x26 => BadInput,
            0x80 => InconsistentRead,
            0x81 => UserFunctionFailure,
            0x82 => UserHookNotFound,
            0xfe => MaxConnections,
            0xff => UnknownFailure,
            _ => return None,
        })
    }

    /// After these errors the server keeps the connection open; after any other it closes it.
    pub fn keeps_connection_open(self) -> bool {
        matches!(
            self,
            Rc::Ok
                | Rc::NotFound
                | Rc::AssertionFailed
                | Rc::NoLongerMaster
                | Rc::BadInput
                | Rc::InconsistentRead
        )
    }

    pub fn name(self) -> &'static str {
        use Rc::*;
        match self {
            Ok => "ok",
            NoMagic => "no_magic",
            NoHello => "no_hello",
            NotMaster => "not_master",
            NotFound => "not_found",
            WrongCluster => "wrong_cluster",
            AssertionFailed => "assertion_failed",
            ReadOnly => "read_only",
            OutsideInterval => "outside_interval",
            GoingDown => "going_down",
            NotSupported => "not_supported",
            NoLongerMaster => "no_longer_master",
            BadInput => "bad_input",
            InconsistentRead => "inconsistent_read",
            UserFunctionFailure => "userfunction_failure",
            UserHookNotFound => "userhook_not_found",
            MaxConnections => "max_connections",
            UnknownFailure => "unknown_failure",
        }
    }
}

impl std::fmt::Display for Rc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:#04x})", self.name(), self.code())
    }
}

/// The name of the node a not_master refusal points to: Arakoon answers "None" when it knows no
/// master.
fn master_text(master: Option<NodeIdx>, names: &[String]) -> String {
    master.and_then(|k| names.get(k).cloned()).unwrap_or_else(|| "None".to_string())
}

/// The return code and text for the core's answer to an update or a drop_master; `names` are
/// the cluster's node names in the core's order.
pub fn reply_of(result: &Result<(), Refusal>, names: &[String]) -> (Rc, String) {
    match result {
        Ok(()) => (Rc::Ok, String::new()),
        Err(Refusal::NotMaster { master }) => (Rc::NotMaster, master_text(*master, names)),
        Err(Refusal::NoLongerMaster) => {
            (Rc::NoLongerMaster, "mastership lost while the update was pending".into())
        }
        Err(Refusal::QueueFull) => {
            (Rc::UnknownFailure, "the master's update queue is full; retry later".into())
        }
        Err(Refusal::SoleNode) => {
            (Rc::NotSupported, "a 1-node cluster cannot drop its master".into())
        }
    }
}

/// The return code and text for a read the lease rule refused.
pub fn read_refusal_of(refusal: &ReadRefusal, names: &[String]) -> (Rc, String) {
    match refusal {
        ReadRefusal::NotMaster { master } => (Rc::NotMaster, master_text(*master, names)),
        // Arakoon's words; the node's log says how far it is.
        ReadRefusal::NotYetApplied { applied, wanted } => {
            tracing::debug!("at_least {wanted} refused: this node applied up to {applied:?}");
            (Rc::InconsistentRead, "store not fresh enough".to_string())
        }
    }
}

impl From<Consistency> for ReadWant {
    fn from(c: Consistency) -> ReadWant {
        match c {
            Consistency::Consistent => ReadWant::Consistent,
            Consistency::AtLeast(i) => ReadWant::AtLeast(i),
            Consistency::NoGuarantees => ReadWant::Anywhere,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in 0..=0xffu32 {
            if let Some(rc) = Rc::from_code(code) {
                assert_eq!(rc.code(), code);
            }
        }
        assert_eq!(Rc::from_code(0x02), None);
    }

    #[test]
    fn refusals_map_to_arakoon_codes_and_texts() {
        let names = vec!["a".to_string(), "b".to_string()];
        let not_master = Err(Refusal::NotMaster { master: Some(1) });
        assert_eq!(reply_of(&not_master, &names), (Rc::NotMaster, "b".into()));
        let nobody = Err(Refusal::NotMaster { master: None });
        assert_eq!(reply_of(&nobody, &names), (Rc::NotMaster, "None".into()));
        assert_eq!(reply_of(&Ok(()), &names), (Rc::Ok, String::new()));
        assert_eq!(reply_of(&Err(Refusal::NoLongerMaster), &names).0, Rc::NoLongerMaster);
        assert_eq!(reply_of(&Err(Refusal::QueueFull), &names).0, Rc::UnknownFailure);
        assert_eq!(reply_of(&Err(Refusal::SoleNode), &names).0, Rc::NotSupported);
        let behind = ReadRefusal::NotYetApplied { applied: None, wanted: 3 };
        assert_eq!(
            read_refusal_of(&behind, &names),
            (Rc::InconsistentRead, "store not fresh enough".into())
        );
    }
}
