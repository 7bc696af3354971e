//! Models: the sequential specifications that histories are checked against.
//!
//! A [`Model`] is a deterministic state machine. The search calls [`Model::step`] at most once
//! per distinct (state, operation) pair and keeps every state it meets, so a model may use plain
//! owned types and clone freely; what matters is that equal states compare and hash equal.
//! [`FromRaw`] turns the operations of a file into the model's own types.

pub mod kv;
pub mod map_reads;
pub mod multi_key;
pub mod mutex;
pub mod register;
pub mod set;

use crate::history::{History, HistoryError, Malformed, Operation, Outcome};
use crate::import::{RawCall, RawHistory};
use crate::value::Value;
use std::fmt::Debug;
use std::hash::Hash;

/// A sequential specification.
pub trait Model: Sync {
    type Input: Clone + Debug + Send + Sync;
    type Output: Clone + Debug + Send + Sync;
    type State: Clone + Eq + Hash + Debug + Send + Sync;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The state after `input` takes effect in `state` and answers `output`, or `None` when that
    /// answer is impossible there. `output` is `None` when the operation answers nothing or the
    /// answer was not seen (an unknown outcome): then any answer goes. An operation of unknown
    /// outcome whose effect here would be nothing at all may return `None` too: it then counts
    /// as never having happened, which is the same.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// A failed operation did not take effect, unless failing is itself an observation for its
    /// kind (a compare-and-set that found another value): then this returns the output it
    /// observed, and the operation is checked like a successful one with that output.
    fn failure(
        &self,
        _input: &Self::Input,
        _output: Option<&Self::Output>,
    ) -> Option<Self::Output> {
        None
    }

    /// Whether `input` never changes the state (a read): such an operation of unknown outcome
    /// is the same as none, so a counterexample can drop it.
    fn is_read_only(&self, _input: &Self::Input) -> bool {
        false
    }

    /// Independent sub-histories (P-compositionality): the history is linearizable exactly when
    /// each is. The default is one partition holding everything.
    fn partitions(&self, history: &History<Self::Input, Self::Output>) -> Vec<Partition> {
        vec![Partition { name: String::new(), ops: (0..history.len()).collect() }]
    }

    /// An operation as people read it: `cas(1, 2)`, `get("k") -> "v"`.
    fn describe(&self, input: &Self::Input, output: Option<&Self::Output>) -> String {
        match output {
            Some(output) => format!("{input:?} -> {output:?}"),
            None => format!("{input:?}"),
        }
    }

    /// A state as people read it.
    fn describe_state(&self, state: &Self::State) -> String {
        format!("{state:?}")
    }
}

/// The operations (indices into the history) of one independent sub-history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// What the partition is, for reports: the key, or empty for the whole history.
    pub name: String,
    pub ops: Vec<usize>,
}

/// Why an operation of a history file makes no sense to a model: what was found, and what was
/// expected instead. [`convert`] adds where (the line, or the operation's index) and the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RawError {
    /// `f` is not one of the model's functions; `known` lists them.
    #[error("unknown {model} function {f:?} ({known})")]
    UnknownFunction { model: &'static str, f: String, known: &'static str },
    /// The call names no key (`what`: "key", "prefix (the key)").
    #[error("no {0}")]
    Missing(&'static str),
    /// A value of the wrong shape.
    #[error("expected {expected}, found {found}")]
    Expected { expected: &'static str, found: String },
    /// A field of a map value (a range's `first_inclusive`) of the wrong shape or missing.
    #[error("{field}: expected {expected}, found {found}")]
    Field { field: String, expected: &'static str, found: String },
    /// An element of a list value (a transaction's step, a sequence's update, a range's entry)
    /// of the wrong shape.
    #[error("{what} {found}: expected {expected}")]
    Element { what: &'static str, found: String, expected: &'static str },
    /// A transaction answered with another number of steps than it was called with.
    #[error("{returned} steps returned for {called} called")]
    StepCount { returned: usize, called: usize },
    /// A `cas` given to the plain register model.
    #[error("cas on a plain register: use the cas-register model")]
    CasOnPlainRegister,
    /// A read of the key order given to a multi-key model that starts with every key present.
    #[error(
        "a range, prefix_keys or delete_prefix needs every key absent at first (run the check \
         with initial nil)"
    )]
    NeedsAbsentKeys,
}

impl RawError {
    /// `found` was not the `expected` value.
    pub fn expected(expected: &'static str, found: &Value) -> RawError {
        RawError::Expected { expected, found: found.to_string() }
    }

    /// The element `found` of a list was not the `expected` shape.
    pub fn element(what: &'static str, found: &Value, expected: &'static str) -> RawError {
        RawError::Element { what, found: found.to_string(), expected }
    }
}

/// A model that can read the operations of a history file.
pub trait FromRaw: Model {
    /// The operation asked for, or why it makes no sense to this model.
    fn input(&self, call: &RawCall) -> Result<Self::Input, RawError>;

    /// What a successful `input` answered, from the completion's value.
    fn output(&self, input: &Self::Input, value: &Value) -> Result<Option<Self::Output>, RawError>;
}

/// The raw history read from a file, as the operations of `model`.
pub fn convert<M: FromRaw>(
    model: &M,
    raw: &RawHistory,
) -> Result<History<M::Input, M::Output>, HistoryError> {
    let mut ops = Vec::with_capacity(raw.len());
    let mut lines = Vec::with_capacity(raw.len());
    for (i, op) in raw.ops().iter().enumerate() {
        let at = |why: Malformed| match raw.line(i) {
            Some(line) => HistoryError::AtLine { line, why },
            None => HistoryError::AtOperation { index: i, why },
        };
        let f = || op.input.f.clone();
        let input = model
            .input(&op.input)
            .map_err(|why| at(Malformed::BadCall { f: f(), why: Box::new(why) }))?;
        let output = match (&op.output, op.outcome) {
            (Some(value), Outcome::Ok) => model.output(&input, value).map_err(|why| {
                let (value, why) = (Box::new(value.clone()), Box::new(why));
                at(Malformed::BadReturn { f: f(), value, why })
            })?,
            _ => None,
        };
        ops.push(Operation {
            process: op.process,
            call: op.call,
            ret: op.ret,
            input,
            output,
            outcome: op.outcome,
        });
        lines.push(raw.line(i).unwrap_or(0));
    }
    History::with_lines(ops, if raw.line(0).is_some() { lines } else { Vec::new() })
}

/// A value that a model stores as bytes: strings as their UTF-8, keywords as their name,
/// integers as their decimal text (so the EDN `0` and the JSON `"0"` are the same value).
pub fn bytes_of(value: &Value) -> Result<Vec<u8>, RawError> {
    match value {
        Value::Str(s) | Value::Keyword(s) => Ok(s.as_bytes().to_vec()),
        Value::Int(i) => Ok(i.to_string().into_bytes()),
        other => Err(RawError::expected("a string or an integer", other)),
    }
}

/// Like [`bytes_of`], with nil for "absent".
pub fn opt_bytes_of(value: &Value) -> Result<Option<Vec<u8>>, RawError> {
    match value {
        Value::Nil => Ok(None),
        v => bytes_of(v).map(Some),
    }
}

/// Bytes as text for descriptions: UTF-8 quoted, anything else escaped.
pub fn show_bytes(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// An optional value as text: `nil` for absent.
pub fn show_opt_bytes(bytes: Option<&[u8]>) -> String {
    bytes.map_or_else(|| "nil".to_string(), show_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kv::KvOp;
    use crate::model::register::Register;
    use crate::model::set::Set;

    fn call(f: &str, key: Option<&str>, value: Value) -> RawCall {
        RawCall { f: f.into(), key: key.map(|k| Value::Str(k.into())), value }
    }

    /// An operation a model cannot read is refused with what was found and what was expected,
    /// so that the person with the history file knows which field to fix.
    #[test]
    fn an_operation_a_model_cannot_read_says_what_was_expected_and_what_was_found() {
        let cas = KvOp::from_raw(&call("cas", Some("k"), Value::Int(3))).unwrap_err();
        assert_eq!(cas, RawError::Expected { expected: "[expected wanted]", found: "3".into() });
        assert_eq!(cas.to_string(), "expected [expected wanted], found 3");
        let keyless = KvOp::from_raw(&call("get", None, Value::Nil)).unwrap_err();
        assert_eq!(keyless.to_string(), "no key");
        let pop = Set.input(&call("pop", None, Value::Nil)).unwrap_err();
        assert_eq!(pop.to_string(), "unknown set function \"pop\" (add, read)");
        let plain = Register::plain(None);
        let cas = plain.input(&call("cas", None, Value::List(vec![Value::Int(0), Value::Int(1)])));
        assert_eq!(cas.unwrap_err(), RawError::CasOnPlainRegister);
        let write = plain.input(&call("write", None, Value::Str("x".into()))).unwrap_err();
        assert_eq!(write.to_string(), "expected an integer, found \"x\"");
    }
}
