//! A linearizability checker for histories of concurrent operations.
//!
//! A history records, for each operation, the process that ran it, when it was called and when
//! it returned, what it asked and what it answered, and whether it succeeded, failed or ended
//! unknown ([`history`]). A [`model::Model`] is the sequential specification. [`check`] decides
//! whether some order of the operations, consistent with real time, explains every answer;
//! when none does it explains why (the operation that cannot be placed, the longest
//! linearizable prefix, a shrunk counterexample) as text, JSON or an HTML timeline
//! ([`explain`]). Histories come from memory (the simulator builds them) or from files:
//! our JSON-lines format and Jepsen's EDN and log lines ([`import`]).
//!
//! See `checker/README.md` for the file format and the models.

mod check;
pub mod edn;
pub mod explain;
pub mod history;
pub mod import;
pub mod model;
pub mod run;
mod search;
pub mod value;

pub use check::{
    check, views, Budget, CheckStats, OpView, PartitionView, PrefixStep, Report, Stuck, Unfinished,
    Verdict, Violation,
};
pub use explain::{html::render_html, text::render_text};
pub use history::{History, HistoryError, Malformed, Operation, Outcome};
pub use model::{FromRaw, Model, Partition, RawError};
pub use run::{check_raw, Checked, ModelKind};
pub use value::Value;
