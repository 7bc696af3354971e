//! Reading histories from files: our JSON-lines format, Jepsen EDN histories and Jepsen log
//! lines. Each format yields a stream of events (a call, or a completion: ok, fail, unknown);
//! [`pair`] matches each completion with the open call of its process and rejects what cannot be
//! a history: a completion without a call, a second call while one is open. A call still open at
//! the end is an operation whose outcome is unknown (the client crashed or gave up).
//!
//! The result is a raw history: operations with the function name, key and value as written.
//! A model turns it into its own operations with [`crate::model::FromRaw`].

mod edn_history;
mod jepsen_log;
mod jsonl;

use crate::history::{History, HistoryError, Malformed, Operation, Outcome};
use crate::value::Value;
use serde::Serialize;
use std::collections::HashMap;

pub use jsonl::write_jsonl;

/// What a raw operation asked: the function, the key (for key-value histories) and the argument.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RawCall {
    pub f: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::import::ser_opt_value"
    )]
    pub key: Option<Value>,
    #[serde(serialize_with = "crate::import::ser_value")]
    pub value: Value,
}

/// A history as read from a file, before a model interprets it; outputs are the completion's
/// value as written.
pub type RawHistory = History<RawCall, Value>;

/// The file formats that [`read`] understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Our own: one JSON object per line, see the crate README.
    Jsonl,
    /// Jepsen EDN: operation maps, in a vector or as a stream.
    Edn,
    /// Jepsen log lines: `INFO jepsen.util - 2 :invoke :cas [3 0]`.
    JepsenLog,
}

impl Format {
    /// The format of a file, from its first line that is neither blank nor a comment.
    pub fn detect(text: &str) -> Format {
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with(';'))
            .unwrap_or("");
        if first.contains("jepsen.util") {
            Format::JepsenLog
        } else if first.strip_prefix('{').is_some_and(|rest| rest.trim_start().starts_with('"')) {
            Format::Jsonl
        } else {
            Format::Edn
        }
    }
}

/// The raw history held in `text`.
pub fn read(text: &str, format: Format) -> Result<RawHistory, HistoryError> {
    let (events, clock) = match format {
        Format::Jsonl => jsonl::events(text)?,
        Format::Edn => (edn_history::events(text)?, Clock::Order),
        Format::JepsenLog => (jepsen_log::events(text)?, Clock::Order),
    };
    pair(events, clock)
}

/// What happened at one point of a history file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Call,
    Ok,
    Fail,
    Unknown,
}

impl EventKind {
    /// Our names and Jepsen's (`invoke`, `info`).
    pub(crate) fn parse(name: &str) -> Option<EventKind> {
        Some(match name {
            "call" | "invoke" => EventKind::Call,
            "ok" => EventKind::Ok,
            "fail" => EventKind::Fail,
            "unknown" | "info" => EventKind::Unknown,
            _ => return None,
        })
    }
}

/// One line's worth of history.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub line: usize,
    pub process: u64,
    pub kind: EventKind,
    /// Empty on a completion that does not repeat its call's function.
    pub f: String,
    pub key: Option<Value>,
    pub value: Value,
    pub time: Option<u64>,
}

/// Where the times of operations come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clock {
    /// The position of the event in the file: the order in which the recorder saw them.
    Order,
    /// The `time` field of each event.
    Field,
}

/// The process of an entry: a non-negative integer, or `None` for the nemesis, whose entries are
/// fault events and not client operations.
pub(crate) fn process_of(value: &Value, line: usize) -> Result<Option<u64>, HistoryError> {
    match value {
        Value::Int(p) if *p >= 0 => Ok(Some(*p as u64)),
        v if v.as_name() == Some("nemesis") => Ok(None),
        v => Err(HistoryError::AtLine { line, why: Malformed::BadProcess(v.clone()) }),
    }
}

/// Matches each completion with its call.
pub(crate) fn pair(events: Vec<Event>, clock: Clock) -> Result<RawHistory, HistoryError> {
    let mut ops: Vec<Operation<RawCall, Value>> = Vec::new();
    let mut lines = Vec::new();
    let mut open: HashMap<u64, usize> = HashMap::new();
    for (index, event) in events.into_iter().enumerate() {
        let at = |why: Malformed| HistoryError::AtLine { line: event.line, why };
        let time = match clock {
            Clock::Order => index as u64,
            Clock::Field => event.time.ok_or_else(|| at(Malformed::Missing { field: "time" }))?,
        };
        if event.kind == EventKind::Call {
            if let Some(&other) = open.get(&event.process) {
                let why = Malformed::CallsAgain { process: event.process, open_line: lines[other] };
                return Err(at(why));
            }
            if event.f.is_empty() {
                return Err(at(Malformed::CallWithoutFunction));
            }
            open.insert(event.process, ops.len());
            lines.push(event.line);
            let call = RawCall { f: event.f, key: event.key, value: event.value };
            ops.push(Operation {
                process: event.process,
                call: time,
                ret: None,
                input: call,
                output: None,
                outcome: Outcome::Unknown,
            });
            continue;
        }
        let Some(i) = open.remove(&event.process) else {
            return Err(at(Malformed::ReturnWithoutCall { process: event.process }));
        };
        let op = &mut ops[i];
        if !event.f.is_empty() && event.f != op.input.f {
            return Err(at(Malformed::ReturnOfAnotherFunction {
                f: event.f,
                process: event.process,
                call_line: lines[i],
                call_f: op.input.f.clone(),
            }));
        }
        if time < op.call {
            return Err(at(Malformed::ReturnsBeforeCall { ret: time, call: op.call }));
        }
        op.ret = Some(time);
        op.output = Some(event.value);
        op.outcome = match event.kind {
            EventKind::Ok => Outcome::Ok,
            EventKind::Fail => Outcome::Fail,
            _ => Outcome::Unknown,
        };
    }
    History::with_lines(ops, lines)
}

/// Serializes a [`Value`] as JSON for the JSON-lines writer and the reports.
pub(crate) fn to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Nil => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Str(s) | Value::Keyword(s) | Value::Other(s) => J::String(s.clone()),
        Value::List(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    (k.as_name().map_or_else(|| k.to_string(), str::to_string), to_json(v))
                })
                .collect(),
        ),
    }
}

pub(crate) fn ser_value<S: serde::Serializer>(value: &Value, s: S) -> Result<S::Ok, S::Error> {
    to_json(value).serialize(s)
}

pub(crate) fn ser_opt_value<S: serde::Serializer>(
    value: &Option<Value>,
    s: S,
) -> Result<S::Ok, S::Error> {
    value.as_ref().map(to_json).serialize(s)
}
