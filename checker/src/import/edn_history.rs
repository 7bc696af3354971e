//! Jepsen EDN histories: one map per event, `{:process 7, :type :invoke, :f :cas, :value [2 3]}`,
//! in a vector, a list, or as a stream. The order of the entries is the order of events (Jepsen's
//! `:time` fields are not always monotonic across processes and are not used). Entries of the
//! nemesis are fault events and are skipped.

use super::{process_of, Event, EventKind};
use crate::edn::read_entries;
use crate::history::{HistoryError, Malformed};
use crate::value::Value;

pub(crate) fn events(text: &str) -> Result<Vec<Event>, HistoryError> {
    let entries = read_entries(text).map_err(|e| HistoryError::AtLine {
        line: e.line,
        why: Malformed::NotEdn { value: None, why: e.kind },
    })?;
    let mut events = Vec::with_capacity(entries.len());
    for (line, entry) in entries {
        let at = |why: Malformed| HistoryError::AtLine { line, why };
        if !matches!(entry, Value::Map(_)) {
            return Err(at(Malformed::NotAMap(entry)));
        }
        let process =
            entry.get("process").ok_or_else(|| at(Malformed::Missing { field: ":process" }))?;
        let Some(process) = process_of(process, line)? else { continue };
        let kind =
            entry.get("type").and_then(Value::as_name).and_then(EventKind::parse).ok_or_else(
                || at(Malformed::NoneAmong { field: ":type", among: ":invoke, :ok, :fail, :info" }),
            )?;
        let f = match entry.get("f") {
            Some(f) => f
                .as_name()
                .ok_or_else(|| {
                    at(Malformed::Found { field: ":f", found: f.to_string(), wrong: "not a name" })
                })?
                .to_string(),
            None => String::new(),
        };
        events.push(Event {
            line,
            process,
            kind,
            f,
            key: entry.get("key").cloned(),
            value: entry.get("value").cloned().unwrap_or(Value::Nil),
            time: None,
        });
    }
    Ok(events)
}
