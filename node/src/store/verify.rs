//! How a store's applied slot stands against its TLog (`arakoon-admin store verify`): the
//! comparisons, apart from the reading of the files and the wording of the repairs.

/// The slot the TLog has committed: its last, or the one before when the last entry is not
/// known to be committed (a node's open TLog ends with a slot still being decided).
pub fn committed(log_last: Option<u64>, last_is_committed: bool) -> Option<u64> {
    match (log_last, last_is_committed) {
        (Some(i), true) => Some(i),
        (Some(i), false) => i.checked_sub(1),
        (None, _) => None,
    }
}

/// What the store's applied slot and the TLog's slots say about each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Nothing to repair (a store at or past the committed slot, within the TLog).
    Agrees,
    /// The store has applied past the TLog's last slot: it belongs to another history.
    AheadOfTlog { applied: u64, last: u64 },
    /// The store has applied slots and the TLog is empty.
    AheadOfEmptyTlog { applied: u64 },
    /// The store needs slot `need` next and the TLog resumes only at `first`.
    Gap { need: u64, first: Option<u64> },
    /// The store is behind the committed slot; replaying the TLog closes it.
    Behind { applied: Option<u64>, committed: Option<u64> },
}

/// How a store that has applied up to `applied` stands against a TLog whose last slot is
/// `log_last` and committed slot `committed`; `log_first` reads the TLog's first slot, and is
/// called only for a store behind (to tell a gap from a replay).
pub fn standing<E>(
    applied: Option<u64>,
    log_last: Option<u64>,
    committed: Option<u64>,
    log_first: impl FnOnce() -> Result<Option<u64>, E>,
) -> Result<Standing, E> {
    Ok(match (applied, log_last) {
        (Some(a), Some(last)) if a > last => Standing::AheadOfTlog { applied: a, last },
        (Some(a), None) => Standing::AheadOfEmptyTlog { applied: a },
        (a, _) if committed.is_some_and(|c| a.is_none_or(|a| a < c)) => {
            let need = a.map_or(0, |a| a + 1);
            let first = log_first()?;
            if first.is_some_and(|f| f > need) {
                Standing::Gap { need, first }
            } else {
                Standing::Behind { applied: a, committed }
            }
        }
        _ => Standing::Agrees,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(
        applied: Option<u64>,
        last: Option<u64>,
        committed: Option<u64>,
        first: Option<u64>,
    ) -> Standing {
        standing::<()>(applied, last, committed, || Ok(first)).unwrap()
    }

    #[test]
    fn the_committed_slot_is_the_last_or_the_one_before() {
        assert_eq!(committed(Some(7), true), Some(7));
        assert_eq!(committed(Some(7), false), Some(6));
        assert_eq!(committed(Some(0), false), None);
        assert_eq!(committed(None, true), None);
    }

    #[test]
    fn each_standing_of_a_store_against_its_tlog() {
        assert_eq!(at(Some(5), Some(5), Some(5), Some(0)), Standing::Agrees);
        assert_eq!(at(None, None, None, None), Standing::Agrees);
        assert_eq!(
            at(Some(9), Some(5), Some(5), Some(0)),
            Standing::AheadOfTlog { applied: 9, last: 5 }
        );
        assert_eq!(at(Some(3), None, None, None), Standing::AheadOfEmptyTlog { applied: 3 });
        assert_eq!(
            at(Some(3), Some(20), Some(20), Some(10)),
            Standing::Gap { need: 4, first: Some(10) }
        );
        assert_eq!(
            at(None, Some(20), Some(20), Some(1)),
            Standing::Gap { need: 0, first: Some(1) }
        );
        assert_eq!(
            at(Some(3), Some(20), Some(19), Some(0)),
            Standing::Behind { applied: Some(3), committed: Some(19) }
        );
        // The first slot is read only for a store behind.
        let read = standing::<&str>(Some(5), Some(5), Some(5), || Err("read"));
        assert_eq!(read, Ok(Standing::Agrees));
        let read = standing::<&str>(Some(1), Some(5), Some(5), || Err("read"));
        assert_eq!(read, Err("read"));
    }
}
