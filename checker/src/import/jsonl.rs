//! Our own format: JSON lines, one event per line, written as the events happen (so a recorder
//! that dies mid-run leaves a file that still reads: its open calls become unknown outcomes).
//! The format is described in the crate README.

use super::{process_of, to_json, Clock, Event, EventKind, RawHistory};
use crate::history::{HistoryError, Malformed, Outcome};
use crate::value::Value;
use std::io::Write;

pub(crate) fn events(text: &str) -> Result<(Vec<Event>, Clock), HistoryError> {
    let mut events = Vec::new();
    let (mut timed, mut untimed) = (0usize, 0usize);
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let at = |why: Malformed| HistoryError::AtLine { line, why };
        let json: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| at(Malformed::NotJson(e.to_string())))?;
        let object = json.as_object().ok_or_else(|| at(Malformed::NotJsonObject))?;
        let field = |name: &str| object.get(name).map(|v| from_json(v, line)).transpose();
        let process =
            field("process")?.ok_or_else(|| at(Malformed::Missing { field: "\"process\"" }))?;
        let Some(process) = process_of(&process, line)? else { continue };
        let kind =
            object.get("type").and_then(|t| t.as_str()).and_then(EventKind::parse).ok_or_else(
                || at(Malformed::NoneAmong { field: "\"type\"", among: "call, ok, fail, unknown" }),
            )?;
        let f = match object.get("f") {
            None => String::new(),
            Some(f) => f
                .as_str()
                .ok_or_else(|| at(Malformed::NotA { field: "\"f\"", expected: "a string" }))?
                .to_string(),
        };
        let time = match object.get("time") {
            None => None,
            Some(t) => Some(t.as_u64().ok_or_else(|| {
                at(Malformed::NotA { field: "\"time\"", expected: "a non-negative integer" })
            })?),
        };
        if time.is_some() {
            timed += 1;
        } else {
            untimed += 1;
        }
        if timed > 0 && untimed > 0 {
            return Err(at(Malformed::TimeOnSomeLines));
        }
        let key = field("key")?;
        let value = field("value")?.unwrap_or(Value::Nil);
        events.push(Event { line, process, kind, f, key, value, time });
    }
    Ok((events, if timed > 0 { Clock::Field } else { Clock::Order }))
}

/// A JSON value as a [`Value`]; numbers must be 64-bit integers.
fn from_json(json: &serde_json::Value, line: usize) -> Result<Value, HistoryError> {
    use serde_json::Value as J;
    Ok(match json {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => Value::Int(n.as_i64().ok_or_else(|| HistoryError::AtLine {
            line,
            why: Malformed::NotAnI64(n.to_string()),
        })?),
        J::String(s) => Value::Str(s.clone()),
        J::Array(items) => {
            Value::List(items.iter().map(|v| from_json(v, line)).collect::<Result<_, _>>()?)
        }
        J::Object(map) => Value::Map(
            map.iter()
                .map(|(k, v)| Ok((Value::Str(k.clone()), from_json(v, line)?)))
                .collect::<Result<_, HistoryError>>()?,
        ),
    })
}

/// Writes `history` in our JSON-lines format, events in time order with explicit times. At
/// equal times returns come before calls: a process may call again at the very time its previous
/// operation returned, and the reader pairs events by line; the explicit times keep operations
/// at equal times concurrent.
pub fn write_jsonl(history: &RawHistory, out: &mut impl Write) -> std::io::Result<()> {
    // (time, 0 return / 1 call, operation)
    let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(history.len() * 2);
    for (i, op) in history.ops().iter().enumerate() {
        events.push((op.call, 1, i));
        if let Some(ret) = op.ret {
            events.push((ret, 0, i));
        }
    }
    events.sort_unstable();
    for (time, phase, i) in events {
        let op = &history.ops()[i];
        let mut line = serde_json::Map::new();
        line.insert("process".into(), op.process.into());
        let kind = match (phase, op.outcome) {
            (1, _) => "call",
            (_, Outcome::Ok) => "ok",
            (_, Outcome::Fail) => "fail",
            (_, Outcome::Unknown) => "unknown",
        };
        line.insert("type".into(), kind.into());
        line.insert("f".into(), op.input.f.clone().into());
        if phase == 1 {
            if let Some(key) = &op.input.key {
                line.insert("key".into(), to_json(key));
            }
            line.insert("value".into(), to_json(&op.input.value));
        } else if let Some(output) = &op.output {
            line.insert("value".into(), to_json(output));
        }
        line.insert("time".into(), time.into());
        writeln!(out, "{}", serde_json::Value::Object(line))?;
    }
    Ok(())
}
