//! Jepsen EDN histories: one map per event, `{:process 7, :type :invoke, :f :cas, :value [2 3]}`,
//! in a vector, a list, or as a stream. The order of the entries is the order of events (Jepsen's
//! `:time` fields are not always monotonic across processes and are not used). Entries of the
//! nemesis are fault events and are skipped.

use super::{process_of, Event, EventKind};
use crate::edn::read_entries;
use crate::history::HistoryError;
use crate::value::Value;

pub(crate) fn events(text: &str) -> Result<Vec<Event>, HistoryError> {
    let entries =
        read_entries(text).map_err(|e| HistoryError::AtLine { line: e.line, reason: e.message })?;
    let mut events = Vec::with_capacity(entries.len());
    for (line, entry) in entries {
        let at = |reason: String| HistoryError::AtLine { line, reason };
        if !matches!(entry, Value::Map(_)) {
            return Err(at(format!("expected an operation map, found {entry}")));
        }
        let process = entry.get("process").ok_or_else(|| at("no :process".into()))?;
        let Some(process) = process_of(process, line)? else { continue };
        let kind = entry
            .get("type")
            .and_then(Value::as_name)
            .and_then(EventKind::parse)
            .ok_or_else(|| at("no :type among :invoke, :ok, :fail, :info".into()))?;
        let f = match entry.get("f") {
            Some(f) => f.as_name().ok_or_else(|| at(format!(":f {f} is not a name")))?.to_string(),
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
