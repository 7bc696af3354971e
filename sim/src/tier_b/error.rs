//! Why a tier-B run could not be carried out, as opposed to a run that was carried out and
//! failed a check (that is a verdict).

use arakoon_node::config::ConfigError;

/// Why a tier-B simulation did not run to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TierBError {
    /// The cluster configuration built for turmoil's hosts did not parse or validate: a drill's
    /// `config:` overrides are the usual cause.
    #[error(
        "the tier-B cluster configuration is invalid: {0}; check the drill's `config:` overrides"
    )]
    Config(#[source] ConfigError),
    /// Turmoil stopped the simulation (a host failed, or the run passed its time limit). The
    /// text is turmoil's own error's (a boxed error that is neither `Send` nor comparable).
    #[error("the simulation stopped: {0}")]
    Stopped(String),
    /// Code under test panicked; the message is the panic's, as the code that panicked wrote it.
    #[error("the simulation panicked: {0}")]
    Panicked(String),
}

impl TierBError {
    /// The error for a caught panic, with its message when it has one.
    pub fn from_panic(panic: &(dyn std::any::Any + Send)) -> TierBError {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".to_string());
        TierBError::Panicked(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_keeps_its_message() {
        let caught = std::panic::catch_unwind(|| panic!("disk {} gone", 3)).unwrap_err();
        assert_eq!(
            TierBError::from_panic(caught.as_ref()),
            TierBError::Panicked("disk 3 gone".into())
        );
        let caught = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert!(TierBError::from_panic(caught.as_ref()).to_string().contains("without a message"));
    }
}
