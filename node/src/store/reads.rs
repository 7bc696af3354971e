//! Range bounds shared by both stores.
//!
//! `range` and `range_entries` run from `first` up to `last`; `rev_range_entries` runs from
//! `first` (the high bound) down to `last`. `None` is unbounded. A range whose bounds cross is
//! empty (never a panic).

use super::Range;
use std::ops::Bound;

pub(crate) type Bounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

fn bound(key: &Option<Vec<u8>>, inclusive: bool) -> Bound<&[u8]> {
    match key {
        None => Bound::Unbounded,
        Some(k) if inclusive => Bound::Included(k.as_slice()),
        Some(k) => Bound::Excluded(k.as_slice()),
    }
}

pub(crate) fn non_empty(lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> bool {
    use Bound::*;
    match (lo, hi) {
        (Included(a), Included(b)) => a <= b,
        (Included(a), Excluded(b)) | (Excluded(a), Included(b)) | (Excluded(a), Excluded(b)) => {
            a < b
        }
        _ => true,
    }
}

/// The low bound: an open one that is not inclusive still excludes the empty key, as in Arakoon's
/// store, where an open low bound is the key prefix itself, taken with the inclusive flag.
fn low_bound(key: &Option<Vec<u8>>, inclusive: bool) -> Bound<&[u8]> {
    match key {
        None if !inclusive => Bound::Excluded(&[]),
        _ => bound(key, inclusive),
    }
}

/// The inclusive flags of `range`'s first and last bound, as every read takes them.
fn flags(range: &Range) -> (bool, bool) {
    let flags = (range.first_inclusive, range.last_inclusive);
    if crate::planted!(RangeBoundsSwapped) {
        return (!flags.0, !flags.1);
    }
    flags
}

/// (low, high) for an ascending read, `None` when empty.
pub(crate) fn ascending(range: &Range) -> Option<Bounds<'_>> {
    let (first_inclusive, last_inclusive) = flags(range);
    let lo = low_bound(&range.first, first_inclusive);
    let hi = bound(&range.last, last_inclusive);
    non_empty(lo, hi).then_some((lo, hi))
}

/// (low, high) for a descending read, `None` when empty.
pub(crate) fn descending(range: &Range) -> Option<Bounds<'_>> {
    let (first_inclusive, last_inclusive) = flags(range);
    let hi = bound(&range.first, first_inclusive);
    let lo = low_bound(&range.last, last_inclusive);
    non_empty(lo, hi).then_some((lo, hi))
}

/// The number of items a read may return.
pub(crate) fn limit(range: &Range) -> usize {
    range.max.unwrap_or(usize::MAX)
}
