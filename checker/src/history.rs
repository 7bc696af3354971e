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
    #[error("line {line}: {reason}")]
    AtLine { line: usize, reason: String },
    #[error("operation {index}: {reason}")]
    AtOperation { index: usize, reason: String },
    #[error("{0}")]
    Whole(String),
}

impl HistoryError {
    /// The error for operation `index` of a history whose call lines are `lines`.
    pub(crate) fn at(lines: &[usize], index: usize, reason: impl Into<String>) -> HistoryError {
        match lines.get(index) {
            Some(&line) => HistoryError::AtLine { line, reason: reason.into() },
            None => HistoryError::AtOperation { index, reason: reason.into() },
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
            return Err(HistoryError::Whole(format!(
                "{} operations; at most {HISTORY_OPS_MAX} are checked",
                ops.len()
            )));
        }
        if !lines.is_empty() && lines.len() != ops.len() {
            return Err(HistoryError::Whole("one line number per operation is needed".into()));
        }
        for (index, op) in ops.iter().enumerate() {
            match (op.outcome, op.ret) {
                (Outcome::Ok | Outcome::Fail, None) => {
                    return Err(HistoryError::at(
                        &lines,
                        index,
                        "an ok or failed operation needs a return time",
                    ));
                }
                (_, Some(ret)) if ret < op.call => {
                    return Err(HistoryError::at(
                        &lines,
                        index,
                        format!("returns at {ret}, before its call at {}", op.call),
                    ));
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
