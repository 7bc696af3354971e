//! The exit codes of the `arakoon` node process: one enum holds each code and its meaning, so
//! that the errors that choose a code and the `--help` text that explains it cannot disagree
//! (the help once called 49 "TLog files out of order" and 50 "bad ballot record", while the
//! code returned them for a corrupt entry and a missing file). Codes 40 to 50 are Arakoon 1.x's
//! for the same problems (ARAKOON-FORMATS §TLog).

/// Why the node process stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum NodeExit {
    /// A clean stop (SIGTERM, SIGINT) or a finished `-catchup-only`.
    Ok = 0,
    /// A bad command line or configuration, or another collapse already running.
    Usage = 1,
    /// A port of this node is taken.
    PortTaken = 2,
    /// `-catchup-only` reached no peer, or a peer failed during the catch-up.
    CatchUpPeer = 3,
    /// `-catchup-only` could not write the node's TLog or store.
    CatchUpWrite = 4,
    /// SIGTERM or SIGINT came, or the node failed, and it did not finish stopping in time.
    StopTimedOut = 5,
    StoreAhead = 40,
    Gap = 41,
    TlogDir = 43,
    Home = 44,
    Store = 45,
    Head = 47,
    TornTail = 48,
    CorruptTlog = 49,
    MissingTlog = 50,
}

impl NodeExit {
    /// Every code, in the order `--help` lists them.
    pub const ALL: [NodeExit; 15] = [
        NodeExit::StoreAhead,
        NodeExit::Gap,
        NodeExit::TlogDir,
        NodeExit::Home,
        NodeExit::Store,
        NodeExit::Head,
        NodeExit::TornTail,
        NodeExit::CorruptTlog,
        NodeExit::MissingTlog,
        NodeExit::Ok,
        NodeExit::Usage,
        NodeExit::PortTaken,
        NodeExit::CatchUpPeer,
        NodeExit::CatchUpWrite,
        NodeExit::StopTimedOut,
    ];

    pub fn code(self) -> i32 {
        self as i32
    }

    /// What the code means, for `--help` and the README.
    pub fn meaning(self) -> &'static str {
        match self {
            NodeExit::Ok => "stopped cleanly",
            NodeExit::Usage => "bad command line or configuration",
            NodeExit::PortTaken => "a port is taken",
            NodeExit::CatchUpPeer => "catch-up reached no peer, or the peer failed",
            NodeExit::CatchUpWrite => "catch-up could not write the TLog or store",
            NodeExit::StopTimedOut => "did not finish stopping within 8 s",
            NodeExit::StoreAhead => "store ahead of the TLog",
            NodeExit::Gap => "gap between store and TLog",
            NodeExit::TlogDir => "TLog directory unusable",
            NodeExit::Home => "home directory unusable",
            NodeExit::Store => "store unusable or of another cluster",
            NodeExit::Head => "head database unusable",
            NodeExit::TornTail => "torn TLog tail",
            NodeExit::CorruptTlog => "TLog checksum, length or sequence error",
            NodeExit::MissingTlog => "an expected TLog file is missing",
        }
    }

    /// The table for `--help`: two codes a line.
    pub fn table() -> String {
        let cells: Vec<String> =
            Self::ALL.iter().map(|e| format!("{:>3} {:<38}", e.code(), e.meaning())).collect();
        let mut s = String::new();
        for pair in cells.chunks(2) {
            s += "   ";
            s += pair.join(" ").trim_end();
            s += "\n";
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::NodeExit;

    #[test]
    fn codes_are_distinct_and_all_listed() {
        let codes: Vec<i32> = NodeExit::ALL.iter().map(|e| e.code()).collect();
        for (k, c) in codes.iter().enumerate() {
            assert!(!codes[..k].contains(c), "{c} twice");
        }
        let table = NodeExit::table();
        assert!(table.contains(" 49 TLog checksum, length or sequence error"), "{table}");
        assert!(table.contains(" 50 an expected TLog file is missing"), "{table}");
        assert_eq!(table.lines().count(), NodeExit::ALL.len().div_ceil(2));
    }
}
