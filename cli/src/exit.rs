//! The exit codes of `arakoon-admin`, named once: every failure picks one of these, and the
//! README's table lists the same codes (a test below keeps the two in step). Codes 40 to 50 are
//! the original Arakoon's for the same problems; 42 is ours.

use arakoon_chaos::sandbox_control::Refusal;
use arakoon_chaos::sandbox_lifecycle::LifecycleError;
use arakoon_chaos::sandbox_up::UpError;

/// Why `arakoon-admin` stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Exit {
    /// Success; for `verify`, a clean log.
    Ok = 0,
    /// The operator declined, or a confirmation was needed (`--yes`); also a check that found
    /// a problem (`tlog verify`, `rebuild --check`, a drill or simulated seed that failed).
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
    /// `soak`: a node's resident memory passed its bound, or its descriptors passed theirs or
    /// did not come back after the load.
    OverBound = 8,
    /// `soak`: an acknowledged write was lost (or a deleted key came back).
    LostWrite = 9,
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

// The sandbox library's errors and refusals say what happened; which code that is, is said here.

impl From<Refusal> for Exit {
    fn from(r: Refusal) -> Exit {
        match r {
            Refusal::BadRequest => Exit::Usage,
            Refusal::BadInput => Exit::BadInput,
            Refusal::Unreachable => Exit::Unreachable,
        }
    }
}

impl From<&LifecycleError> for Exit {
    fn from(e: &LifecycleError) -> Exit {
        match e {
            LifecycleError::PathTooLong { .. } => Exit::Usage,
            _ => Exit::BadInput,
        }
    }
}

impl From<&UpError> for Exit {
    fn from(e: &UpError) -> Exit {
        match e {
            UpError::Dir(e) => e.into(),
            UpError::NoMaster { .. } => Exit::Unreachable,
            UpError::Interrupted => Exit::Interrupted,
            UpError::DetachRefused { refusal, .. } => refusal.map_or(Exit::BadInput, Exit::from),
            _ => Exit::BadInput,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sandbox's errors exit as the README's table says: a bad --dir is a bad argument (2),
    /// a directory of someone's files bad input (3), no master or no peer unreachable (5).
    #[test]
    fn the_sandboxs_errors_exit_with_the_codes_of_the_table() {
        let dir = std::path::PathBuf::from("/x");
        let too_long = LifecycleError::PathTooLong { dir: dir.clone(), socket: dir.clone() };
        assert_eq!(Exit::from(&too_long), Exit::Usage);
        assert_eq!(Exit::from(&LifecycleError::NotEmpty { dir: dir.clone() }), Exit::BadInput);
        let no_master =
            UpError::NoMaster { timeout: std::time::Duration::ZERO, logs: String::new() };
        assert_eq!(Exit::from(&no_master), Exit::Unreachable);
        assert_eq!(Exit::from(&UpError::Interrupted), Exit::Interrupted);
        assert_eq!(Exit::from(&UpError::Dir(too_long)), Exit::Usage);
        let refused =
            UpError::DetachRefused { refusal: Some(Refusal::BadRequest), message: "".into() };
        assert_eq!(Exit::from(&refused), Exit::Usage);
        assert_eq!(Exit::from(Refusal::Unreachable).code(), 5);
        assert_eq!(Exit::from(Refusal::BadInput).code(), 3);
    }

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
            Exit::OverBound,
            Exit::LostWrite,
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
