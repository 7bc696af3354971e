//! Explaining verdicts: shrinking a violation to a counterexample small enough to read, and
//! rendering a report as text, JSON or a self-contained HTML timeline.

pub mod html;
pub(crate) mod shrink;
pub mod text;
