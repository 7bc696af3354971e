//! Arakoon's return codes (ARAKOON-FORMATS §2), shared by the store, the server and the client.

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

#[cfg(test)]
mod tests {
    use super::Rc;

    #[test]
    fn codes_round_trip() {
        for code in 0..=0xffu32 {
            if let Some(rc) = Rc::from_code(code) {
                assert_eq!(rc.code(), code);
            }
        }
        assert_eq!(Rc::from_code(0x02), None);
    }
}
