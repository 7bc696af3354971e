//! The exit codes of `arakoon-admin`, named once: every failure picks one of these, and the
//! README's table lists the same codes (a test below keeps the two in step). Codes 40 to 50 are
//! the original Arakoon's for the same problems; 42 is ours.

/// Why `arakoon-admin` stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Exit {
    /// Success; for `verify`, a clean log.
    Ok = 0,
    /// The operator declined, or a confirmation was needed (`--yes`); also a check that found
    /// a problem (`tlog verify`, `rebuild --check`).
    Declined = 1,
    /// A bad command line.
    Usage = 2,
    /// Bad input: a path that is not a TLog file, a bad configuration, an unknown node, ...
    BadInput = 3,
    /// The cluster refused the request (not_found, assertion_failed, ...).
    Refused = 4,
    /// No master, or no node or peer reachable (or a peer failed during catch-up).
    Unreachable = 5,
    /// The outcome of an update is unknown.
    Unknown = 6,
    /// Catch-up could not write the node's TLog or store.
    CatchUpWrite = 7,
    StoreAhead = 40,
    Gap = 41,
    StoreBehind = 42,
    TlogDir = 43,
    Store = 45,
    /// The head (the collapsed state) is unusable.
    Head = 47,
    TornTail = 48,
    CorruptTlog = 49,
    MissingTlog = 50,
    /// Interrupted (Ctrl-C on `sandbox up`, which then stops what it started).
    Interrupted = 130,
}

impl Exit {
    pub const fn code(self) -> i32 {
        self as i32
    }
}

impl From<Exit> for i32 {
    fn from(e: Exit) -> i32 {
        e.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code is in the README's table, and the table has no code that is not here.
    #[test]
    fn the_readme_lists_every_code() {
        let all = [
            Exit::Ok,
            Exit::Declined,
            Exit::Usage,
            Exit::BadInput,
            Exit::Refused,
            Exit::Unreachable,
            Exit::Unknown,
            Exit::CatchUpWrite,
            Exit::StoreAhead,
            Exit::Gap,
            Exit::StoreBehind,
            Exit::TlogDir,
            Exit::Store,
            Exit::Head,
            Exit::TornTail,
            Exit::CorruptTlog,
            Exit::MissingTlog,
            Exit::Interrupted,
        ];
        let readme = include_str!("../../README.md");
        let start = readme.find("### Exit codes").expect("README has an exit code section");
        let table: Vec<i32> = readme[start..]
            .lines()
            .skip_while(|l| !l.starts_with("| code"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| l.trim_start_matches('|').split('|').next()?.trim().parse().ok())
            .collect();
        let codes: Vec<i32> = all.iter().map(|e| e.code()).collect();
        assert_eq!(table, codes, "README's exit codes and cli/src/exit.rs disagree");
    }
}
