//! Histories: what each client asked, when, and what came back.
//!
//! An [`Operation`] spans from its call to its return. Its [`Outcome`] says what is known:
//! `Ok` (it took effect once, somewhere between call and return, and answered `output`), `Fail`
//! (it did not take effect; some kinds observe something when they fail, which their model
//! says), or `Unknown` (the client never learnt: it may have taken effect at any time after its
//! call, or never). Times are any non-decreasing clock (nanoseconds, simulated ticks, line
//! numbers); an operation precedes another only when it returned strictly before the other was
//! called, so equal times count as concurrent and a coarse clock never makes a correct history
//! look wrong.

use crate::model::RawError;
use crate::value::Value;
use serde::Serialize;

/// What the caller learnt about an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It took effect between call and return, and answered `output`.
    Ok,
    /// It did not take effect (unless its model says its kind observes something on failure).
    Fail,
    /// It may have taken effect at any time after its call, or never.
    Unknown,
}

/// One operation of one process.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation<I, O> {
    pub process: u64,
    pub call: u64,
    /// When the answer came; `None` when none ever came (outcome `Unknown`).
    pub ret: Option<u64>,
    pub input: I,
    /// What it answered; `None` when it answers nothing (a write) or nobody saw it.
    pub output: Option<O>,
    pub outcome: Outcome,
}

/// Most operations a history may hold: indices are `u32` in the search.
pub const HISTORY_OPS_MAX: usize = 1 << 28;

/// A history that is well formed: every `Ok` and `Fail` operation returned, no return before
/// its call.
#[derive(Debug, Clone)]
pub struct History<I, O> {
    ops: Vec<Operation<I, O>>,
    /// For each operation, the file line of its call; empty for a history built in memory.
    lines: Vec<usize>,
}

/// Why a history cannot be checked, with the line (or operation index) at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    #[error("line {line}: {why}")]
    AtLine { line: usize, why: Malformed },
    #[error("operation {index}: {why}")]
    AtOperation { index: usize, why: Malformed },
    #[error("{ops} operations; at most {HISTORY_OPS_MAX} are checked")]
    TooLong { ops: usize },
    #[error("one line number per operation is needed")]
    LinesMismatch,
    #[error("initial value for {model}: {why}")]
    BadInitial { model: &'static str, why: RawError },
    #[error("initial value for {model}: this model has no initial value to set")]
    NoInitial { model: &'static str },
}

/// What is wrong with one line (or operation) of a history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// The JSON parser's text.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// What the EDN reader could not read (in the file, or in `value` when `value` is `Some`).
    #[error("{}{why}", value.as_ref().map(|v| format!("value {v:?}: ")).unwrap_or_default())]
    NotEdn { value: Option<String>, why: crate::edn::EdnErrorKind },
    #[error("not a JSON object")]
    NotJsonObject,
    #[error("number {0} is not a 64-bit integer")]
    NotAnI64(String),
    #[error("expected an operation map, found {0}")]
    NotAMap(Value),
    #[error("not a Jepsen operation line (no `jepsen.util -`)")]
    NotJepsenLine,
    #[error("expected `-` after jepsen.util")]
    NoDashAfterUtil,
    /// A field is absent; `field` is spelled as the format spells it (`"process"`, `:process`).
    #[error("no {field}")]
    Missing { field: &'static str },
    /// A field is absent or none of the values it may take (`among`).
    #[error("no {field} among {among}")]
    NoneAmong { field: &'static str, among: &'static str },
    #[error("{field} is not {expected}")]
    NotA { field: &'static str, expected: &'static str },
    /// A field that holds what it may not: `{field} {found} is {wrong}` (`wrong`: "not a
    /// number", "none of :invoke, ...").
    #[error("{field} {found} is {wrong}")]
    Found { field: &'static str, found: String, wrong: &'static str },
    #[error("process {0} is neither a non-negative integer nor the nemesis")]
    BadProcess(Value),
    #[error("\"time\" must be on every line or on none")]
    TimeOnSomeLines,
    #[error("process {process} calls again while its call on line {open_line} is still open")]
    CallsAgain { process: u64, open_line: usize },
    #[error("a call without a function name")]
    CallWithoutFunction,
    #[error("a return for process {process} without a call")]
    ReturnWithoutCall { process: u64 },
    #[error("returns {f} for process {process} whose call on line {call_line} was {call_f}")]
    ReturnOfAnotherFunction { f: String, process: u64, call_line: usize, call_f: String },
    #[error("returns at time {ret}, before its call at {call}")]
    ReturnsBeforeCall { ret: u64, call: u64 },
    #[error("an ok or failed operation needs a return time")]
    NoReturnTime,
    /// The model cannot read the call of `f` (boxed, as is [`Malformed::BadReturn`]'s, to keep
    /// every `Result` of the importers small).
    #[error("{f}: {why}")]
    BadCall { f: String, why: Box<RawError> },
    /// The model cannot read what `f` returned.
    #[error("{f} returned {value}: {why}")]
    BadReturn { f: String, value: Box<Value>, why: Box<RawError> },
}

impl HistoryError {
    /// The error for operation `index` of a history whose call lines are `lines`.
    pub(crate) fn at(lines: &[usize], index: usize, why: Malformed) -> HistoryError {
        match lines.get(index) {
            Some(&line) => HistoryError::AtLine { line, why },
            None => HistoryError::AtOperation { index, why },
        }
    }
}

impl<I, O> History<I, O> {
    /// A history built in memory (by the simulator, a drill, a test).
    pub fn new(ops: Vec<Operation<I, O>>) -> Result<History<I, O>, HistoryError> {
        History::with_lines(ops, Vec::new())
    }

    /// A history read from a file: `lines[i]` is the line where operation `i` was called.
    pub fn with_lines(
        ops: Vec<Operation<I, O>>,
        lines: Vec<usize>,
    ) -> Result<History<I, O>, HistoryError> {
        if ops.len() > HISTORY_OPS_MAX {
            return Err(HistoryError::TooLong { ops: ops.len() });
        }
        if !lines.is_empty() && lines.len() != ops.len() {
            return Err(HistoryError::LinesMismatch);
        }
        for (index, op) in ops.iter().enumerate() {
            match (op.outcome, op.ret) {
                (Outcome::Ok | Outcome::Fail, None) => {
                    return Err(HistoryError::at(&lines, index, Malformed::NoReturnTime));
                }
                (_, Some(ret)) if ret < op.call => {
                    let why = Malformed::ReturnsBeforeCall { ret, call: op.call };
                    return Err(HistoryError::at(&lines, index, why));
                }
                _ => {}
            }
        }
        Ok(History { ops, lines })
    }

    pub fn ops(&self) -> &[Operation<I, O>] {
        &self.ops
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The file line where operation `index` was called, when read from a file.
    pub fn line(&self, index: usize) -> Option<usize> {
        self.lines.get(index).copied()
    }

    /// The sub-history of the operations `indices` (in that order), keeping their lines.
    pub fn select(&self, indices: &[usize]) -> History<I, O>
    where
        I: Clone,
        O: Clone,
    {
        History {
            ops: indices.iter().map(|&i| self.ops[i].clone()).collect(),
            lines: if self.lines.is_empty() {
                Vec::new()
            } else {
                indices.iter().map(|&i| self.lines[i]).collect()
            },
        }
    }
}
