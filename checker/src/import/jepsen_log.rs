//! Jepsen log lines: `INFO  jepsen.util - 2 :invoke :cas [3 0]`, that is a prefix ending in
//! `jepsen.util -`, then the process, the type, the function and the value (EDN), separated by
//! tabs or runs of spaces. Blank lines are skipped; any other line is an error, so that a
//! truncated or mixed-up file is not checked as if it were complete.

use super::{process_of, Event, EventKind};
use crate::edn::read_one;
use crate::history::{HistoryError, Malformed};
use crate::value::Value;

pub(crate) fn events(text: &str) -> Result<Vec<Event>, HistoryError> {
    let mut events = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        if let Some(event) = parse_line(raw, line)? {
            events.push(event);
        }
    }
    Ok(events)
}

/// Splits off the next whitespace-separated field.
fn field(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start();
    if text.is_empty() {
        return None;
    }
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    Some((&text[..end], &text[end..]))
}

fn parse_line(raw: &str, line: usize) -> Result<Option<Event>, HistoryError> {
    let at = |why: Malformed| HistoryError::AtLine { line, why };
    let found = |field, found: &str, wrong| {
        at(Malformed::Found { field, found: format!("{found:?}"), wrong })
    };
    let after = raw
        .find("jepsen.util")
        .map(|i| &raw[i + "jepsen.util".len()..])
        .ok_or_else(|| at(Malformed::NotJepsenLine))?;
    let rest =
        after.trim_start().strip_prefix('-').ok_or_else(|| at(Malformed::NoDashAfterUtil))?;
    let (process, rest) = field(rest).ok_or_else(|| at(Malformed::Missing { field: "process" }))?;
    let (kind, rest) = field(rest).ok_or_else(|| at(Malformed::Missing { field: "type" }))?;
    let (f, rest) = field(rest).ok_or_else(|| at(Malformed::Missing { field: "function" }))?;
    let process = if process == ":nemesis" {
        Value::Keyword("nemesis".into())
    } else {
        Value::Int(process.parse().map_err(|_| found("process", process, "not a number"))?)
    };
    let Some(process) = process_of(&process, line)? else { return Ok(None) };
    let kind = kind
        .strip_prefix(':')
        .and_then(EventKind::parse)
        .ok_or_else(|| found("type", kind, "none of :invoke, :ok, :fail, :info"))?;
    let f = f.strip_prefix(':').ok_or_else(|| found("function", f, "not a keyword"))?;
    let rest = rest.trim();
    let value = if rest.is_empty() {
        Value::Nil
    } else {
        read_one(rest)
            .map_err(|e| at(Malformed::NotEdn { value: Some(rest.to_string()), why: e.kind }))?
    };
    Ok(Some(Event { line, process, kind, f: f.to_string(), key: None, value, time: None }))
}
