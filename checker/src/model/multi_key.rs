//! The whole key-value map as one state: the single-key operations of [`super::kv`], atomic
//! sequences of updates, multi-register transactions (Knossos's `:txn`), delete_prefix, and
//! the reads of [`super::map_reads`] (ranges, prefix_keys, multi_get and the asserts).
//! Operations may span keys, so nothing is partitioned: this is the model to use when sequences,
//! transactions or range reads are in the history, and the stress case when they are not.
//! Reads that order the keys (ranges, prefixes) need every key absent at first (initial nil).

use super::kv::{Bytes, KvOp};
use super::map_reads::{self, MapRead, ReadOut};
use super::{bytes_of, opt_bytes_of, show_bytes, show_opt_bytes, FromRaw, Model, RawError};
use crate::import::RawCall;
use crate::value::Value;
use std::collections::BTreeMap;

/// One step of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TxnStep {
    /// Reads the key; the value read is in the output, in order with the other reads.
    Read {
        key: Bytes,
    },
    Write {
        key: Bytes,
        value: Bytes,
    },
}

/// One update of an atomic sequence; the first that fails aborts the whole sequence.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SeqUpdate {
    Set {
        key: Bytes,
        value: Bytes,
    },
    /// Fails when the key is absent.
    Delete {
        key: Bytes,
    },
    /// Fails unless the key's value is `value` (nil: absent).
    Assert {
        key: Bytes,
        value: Option<Bytes>,
    },
    /// Fails when the key is absent.
    AssertExists {
        key: Bytes,
    },
    /// Sets `wanted` (deletes on nil).
    Replace {
        key: Bytes,
        wanted: Option<Bytes>,
    },
}

/// An operation on the map.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MultiOp {
    Kv(KvOp),
    /// Reads and writes in order, atomically.
    Txn(Vec<TxnStep>),
    /// Updates applied atomically; a failed sequence did not happen.
    Sequence(Vec<SeqUpdate>),
    /// A read of the map; it changes nothing.
    Read(MapRead),
    /// Deletes every key starting with `prefix`; answers how many.
    DeletePrefix {
        prefix: Bytes,
    },
}

/// What an operation on the map answered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MultiOut {
    /// The answer of a single-key operation.
    Value(Option<Bytes>),
    /// The values a transaction read, in order.
    Reads(Vec<Option<Bytes>>),
    /// What a read of the map answered.
    Read(ReadOut),
    /// How many keys a delete_prefix deleted.
    Count(i64),
}

/// The map: the keys whose value differs from the initial one. Kept canonical (a key back at
/// the initial value is removed) so that equal maps are equal states.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MapState {
    changed: BTreeMap<Bytes, Option<Bytes>>,
}

/// The multi-key model.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiKey {
    /// The value of every key before any operation; `None`: absent.
    pub initial: Option<Bytes>,
}

impl MultiKey {
    fn get(&self, state: &MapState, key: &[u8]) -> Option<Bytes> {
        state.changed.get(key).cloned().unwrap_or_else(|| self.initial.clone())
    }

    fn put(&self, state: &mut MapState, key: &[u8], value: Option<Bytes>) {
        if value == self.initial {
            state.changed.remove(key);
        } else {
            state.changed.insert(key.to_vec(), value);
        }
    }

    fn sequence(&self, state: &MapState, updates: &[SeqUpdate]) -> Option<MapState> {
        let mut next = state.clone();
        for update in updates {
            match update {
                SeqUpdate::Set { key, value } => self.put(&mut next, key, Some(value.clone())),
                SeqUpdate::Delete { key } => {
                    self.get(&next, key)?;
                    self.put(&mut next, key, None);
                }
                SeqUpdate::Assert { key, value } => {
                    if self.get(&next, key) != *value {
                        return None;
                    }
                }
                SeqUpdate::AssertExists { key } => {
                    self.get(&next, key)?;
                }
                SeqUpdate::Replace { key, wanted } => self.put(&mut next, key, wanted.clone()),
            }
        }
        Some(next)
    }

    /// The keys present, ascending, with their values (exact when `initial` is nil).
    fn present<'a>(&self, state: &'a MapState) -> Box<map_reads::Present<'a>> {
        Box::new(state.changed.iter().filter_map(|(k, v)| v.as_ref().map(|v| (k, v))))
    }

    fn read(
        &self,
        state: &MapState,
        read: &MapRead,
        output: Option<&MultiOut>,
    ) -> Option<MapState> {
        match output {
            None => Some(state.clone()),
            Some(MultiOut::Read(seen)) => {
                let answer = read.answer(&|k| self.get(state, k), self.present(state));
                (answer == *seen).then(|| state.clone())
            }
            Some(_) => None,
        }
    }

    fn delete_prefix(
        &self,
        state: &MapState,
        prefix: &[u8],
        output: Option<&MultiOut>,
    ) -> Option<MapState> {
        let doomed: Vec<Bytes> = map_reads::with_prefix(&state.changed, prefix)
            .into_iter()
            .filter(|k| self.get(state, k).is_some())
            .cloned()
            .collect();
        match output {
            None => {}
            Some(MultiOut::Count(n)) if usize::try_from(*n).ok() == Some(doomed.len()) => {}
            Some(_) => return None,
        }
        let mut next = state.clone();
        for k in &doomed {
            self.put(&mut next, k, None);
        }
        Some(next)
    }

    fn txn(
        &self,
        state: &MapState,
        steps: &[TxnStep],
        reads: Option<&[Option<Bytes>]>,
    ) -> Option<MapState> {
        let mut next = state.clone();
        let mut read_index = 0;
        for step in steps {
            match step {
                TxnStep::Read { key } => {
                    if let Some(reads) = reads {
                        if reads.get(read_index) != Some(&self.get(&next, key)) {
                            return None;
                        }
                    }
                    read_index += 1;
                }
                TxnStep::Write { key, value } => self.put(&mut next, key, Some(value.clone())),
            }
        }
        Some(next)
    }
}

impl Model for MultiKey {
    type Input = MultiOp;
    type Output = MultiOut;
    type State = MapState;

    fn init(&self) -> MapState {
        MapState::default()
    }

    fn step(
        &self,
        state: &MapState,
        input: &MultiOp,
        output: Option<&MultiOut>,
    ) -> Option<MapState> {
        match (input, output) {
            (MultiOp::Kv(op), out) => {
                let answered = match out {
                    Some(MultiOut::Value(v)) => Some(v),
                    Some(_) => return None,
                    None => None,
                };
                let current = self.get(state, op.key());
                let after = op.apply(&current, answered)?;
                if after == current {
                    return Some(state.clone());
                }
                let mut next = state.clone();
                self.put(&mut next, op.key(), after);
                Some(next)
            }
            (MultiOp::Txn(steps), Some(MultiOut::Reads(reads))) => {
                self.txn(state, steps, Some(reads))
            }
            (MultiOp::Txn(steps), None) => self.txn(state, steps, None),
            (MultiOp::Txn(_), Some(_)) => None,
            (MultiOp::Sequence(updates), _) => self.sequence(state, updates),
            (MultiOp::Read(read), out) => self.read(state, read, out),
            (MultiOp::DeletePrefix { prefix }, out) => self.delete_prefix(state, prefix, out),
        }
    }

    fn is_read_only(&self, input: &MultiOp) -> bool {
        match input {
            MultiOp::Kv(op) => matches!(op, KvOp::Get { .. }),
            MultiOp::Txn(steps) => steps.iter().all(|s| matches!(s, TxnStep::Read { .. })),
            MultiOp::Sequence(updates) => updates
                .iter()
                .all(|u| matches!(u, SeqUpdate::Assert { .. } | SeqUpdate::AssertExists { .. })),
            MultiOp::Read(_) => true,
            MultiOp::DeletePrefix { .. } => false,
        }
    }

    fn describe(&self, input: &MultiOp, output: Option<&MultiOut>) -> String {
        match input {
            MultiOp::Kv(op) => match output {
                Some(MultiOut::Value(v)) => op.describe(Some(v)),
                _ => op.describe(None),
            },
            MultiOp::Txn(steps) => {
                let reads = match output {
                    Some(MultiOut::Reads(r)) => Some(r),
                    _ => None,
                };
                let mut read_index = 0;
                let parts: Vec<String> = steps
                    .iter()
                    .map(|s| match s {
                        TxnStep::Read { key } => {
                            let v = reads.and_then(|r| r.get(read_index));
                            read_index += 1;
                            format!(
                                "r {} {}",
                                show_bytes(key),
                                v.map_or_else(|| "?".into(), |v| show_opt_bytes(v.as_deref()))
                            )
                        }
                        TxnStep::Write { key, value } => {
                            format!("w {} {}", show_bytes(key), show_bytes(value))
                        }
                    })
                    .collect();
                format!("txn[{}]", parts.join(", "))
            }
            MultiOp::Sequence(updates) => {
                let parts: Vec<String> = updates
                    .iter()
                    .map(|u| match u {
                        SeqUpdate::Set { key, value } => {
                            format!("set {} {}", show_bytes(key), show_bytes(value))
                        }
                        SeqUpdate::Delete { key } => format!("delete {}", show_bytes(key)),
                        SeqUpdate::Assert { key, value } => {
                            format!(
                                "assert {} {}",
                                show_bytes(key),
                                show_opt_bytes(value.as_deref())
                            )
                        }
                        SeqUpdate::AssertExists { key } => {
                            format!("assert_exists {}", show_bytes(key))
                        }
                        SeqUpdate::Replace { key, wanted } => {
                            format!(
                                "replace {} {}",
                                show_bytes(key),
                                show_opt_bytes(wanted.as_deref())
                            )
                        }
                    })
                    .collect();
                format!("sequence[{}]", parts.join(", "))
            }
            MultiOp::Read(read) => match output {
                Some(MultiOut::Read(out)) => read.describe(Some(out)),
                _ => read.describe(None),
            },
            MultiOp::DeletePrefix { prefix } => match output {
                Some(MultiOut::Count(n)) => format!("delete_prefix({}) -> {n}", show_bytes(prefix)),
                _ => format!("delete_prefix({}) -> ?", show_bytes(prefix)),
            },
        }
    }

    fn describe_state(&self, state: &MapState) -> String {
        let parts: Vec<String> = state
            .changed
            .iter()
            .map(|(k, v)| format!("{}: {}", show_bytes(k), show_opt_bytes(v.as_deref())))
            .collect();
        let rest = match &self.initial {
            None => String::new(),
            Some(v) => format!(" (others {})", show_bytes(v)),
        };
        format!("{{{}}}{rest}", parts.join(", "))
    }
}

/// The steps of a transaction: `[[:read :x nil] [:write :y 2]]`.
fn txn_steps(value: &Value) -> Result<Vec<TxnStep>, RawError> {
    let steps = value
        .as_list()
        .ok_or_else(|| RawError::expected("a transaction (a list of steps)", value))?;
    steps
        .iter()
        .map(|step| match step.as_list() {
            Some([f, key, v]) => match f.as_name() {
                Some("read" | "r") => Ok(TxnStep::Read { key: bytes_of(key)? }),
                Some("write" | "w") => {
                    Ok(TxnStep::Write { key: bytes_of(key)?, value: bytes_of(v)? })
                }
                _ => Err(RawError::element("transaction step", step, "read or write")),
            },
            _ => Err(RawError::element("transaction step", step, "[f key value]")),
        })
        .collect()
}

fn seq_updates(value: &Value) -> Result<Vec<SeqUpdate>, RawError> {
    let updates = value
        .as_list()
        .ok_or_else(|| RawError::expected("a sequence (a list of updates)", value))?;
    updates
        .iter()
        .map(|u| {
            let parts = u.as_list().ok_or_else(|| RawError::element("update", u, "a list"))?;
            let name = parts.first().and_then(Value::as_name).unwrap_or("");
            Ok(match (name, &parts[1.min(parts.len())..]) {
                ("set", [k, v]) => SeqUpdate::Set { key: bytes_of(k)?, value: bytes_of(v)? },
                ("delete", [k]) => SeqUpdate::Delete { key: bytes_of(k)? },
                ("assert", [k, v]) => {
                    SeqUpdate::Assert { key: bytes_of(k)?, value: opt_bytes_of(v)? }
                }
                ("assert_exists", [k]) => SeqUpdate::AssertExists { key: bytes_of(k)? },
                ("replace", [k, v]) => {
                    SeqUpdate::Replace { key: bytes_of(k)?, wanted: opt_bytes_of(v)? }
                }
                _ => {
                    return Err(RawError::element(
                        "update",
                        u,
                        "[set k v], [delete k], [assert k v], [assert_exists k] or [replace k v]",
                    ))
                }
            })
        })
        .collect()
}

impl FromRaw for MultiKey {
    fn input(&self, call: &RawCall) -> Result<MultiOp, RawError> {
        match call.f.as_str() {
            "txn" => Ok(MultiOp::Txn(txn_steps(&call.value)?)),
            "sequence" => Ok(MultiOp::Sequence(seq_updates(&call.value)?)),
            "delete_prefix" => self.ordered(MultiOp::DeletePrefix {
                prefix: bytes_of(call.key.as_ref().ok_or(RawError::Missing("prefix (the key)"))?)?,
            }),
            f => match MapRead::from_raw(f, call.key.as_ref(), &call.value) {
                Some(read) => self.ordered(MultiOp::Read(read?)),
                None => KvOp::from_raw(call).map(MultiOp::Kv),
            },
        }
    }

    fn output(&self, input: &MultiOp, value: &Value) -> Result<Option<MultiOut>, RawError> {
        match input {
            MultiOp::Kv(op) => Ok(op.output_from_raw(value)?.map(MultiOut::Value)),
            MultiOp::Txn(steps) => {
                let done = value.as_list().ok_or_else(|| RawError::expected("the steps", value))?;
                if done.len() != steps.len() {
                    return Err(RawError::StepCount { returned: done.len(), called: steps.len() });
                }
                let mut reads = Vec::new();
                for (step, d) in steps.iter().zip(done) {
                    if let TxnStep::Read { .. } = step {
                        match d.as_list() {
                            Some([_, _, v]) => reads.push(opt_bytes_of(v)?),
                            _ => return Err(RawError::element("step", d, "[read key value]")),
                        }
                    }
                }
                Ok(Some(MultiOut::Reads(reads)))
            }
            MultiOp::Sequence(_) => Ok(None),
            MultiOp::Read(read) => Ok(Some(MultiOut::Read(read.output_from_raw(value)?))),
            MultiOp::DeletePrefix { .. } => match value {
                Value::Int(n) => Ok(Some(MultiOut::Count(*n))),
                other => Err(RawError::expected("the number of keys deleted", other)),
            },
        }
    }
}

impl MultiKey {
    /// `op`, unless it needs the key order and the model starts with every key present.
    fn ordered(&self, op: MultiOp) -> Result<MultiOp, RawError> {
        let needs_order = match &op {
            MultiOp::Read(read) => read.orders_keys(),
            MultiOp::DeletePrefix { .. } => true,
            _ => false,
        };
        if needs_order && self.initial.is_some() {
            return Err(RawError::NeedsAbsentKeys);
        }
        Ok(op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Bytes {
        s.as_bytes().to_vec()
    }

    #[test]
    fn a_sequence_is_all_or_nothing() {
        let m = MultiKey::default();
        let s0 = m.init();
        let seq = MultiOp::Sequence(vec![
            SeqUpdate::Set { key: k("a"), value: k("1") },
            SeqUpdate::Delete { key: k("b") },
        ]);
        assert_eq!(m.step(&s0, &seq, None), None, "b is absent: the sequence cannot succeed");
        let with_b =
            m.step(&s0, &MultiOp::Kv(KvOp::Set { key: k("b"), value: k("2") }), None).unwrap();
        let after = m.step(&with_b, &seq, None).unwrap();
        assert_eq!(m.get(&after, b"a"), Some(k("1")));
        assert_eq!(m.get(&after, b"b"), None);
    }

    #[test]
    fn transactions_read_their_own_writes_and_states_stay_canonical() {
        let m = MultiKey { initial: Some(k("0")) };
        let s0 = m.init();
        let txn = MultiOp::Txn(vec![
            TxnStep::Write { key: k("x"), value: k("1") },
            TxnStep::Read { key: k("x") },
            TxnStep::Read { key: k("y") },
        ]);
        let ok = MultiOut::Reads(vec![Some(k("1")), Some(k("0"))]);
        let s1 = m.step(&s0, &txn, Some(&ok)).unwrap();
        let bad = MultiOut::Reads(vec![Some(k("0")), Some(k("0"))]);
        assert_eq!(m.step(&s0, &txn, Some(&bad)), None);
        let back =
            m.step(&s1, &MultiOp::Kv(KvOp::Set { key: k("x"), value: k("0") }), None).unwrap();
        assert_eq!(back, s0, "a key back at its initial value is the initial state");
    }

    #[test]
    fn range_reads_and_delete_prefix_answer_from_the_whole_map() {
        use super::map_reads::{MapRead, ReadOut, Scan};
        let m = MultiKey::default();
        let set = |s: &MapState, key: &str| {
            m.step(s, &MultiOp::Kv(KvOp::Set { key: k(key), value: k("v") }), None).unwrap()
        };
        let s = set(&set(&set(&m.init(), "a1"), "a2"), "b1");
        let range = MultiOp::Read(MapRead::Scan(Scan {
            first: Some(k("a1")),
            first_inclusive: true,
            last: Some(k("a2")),
            last_inclusive: false,
            max: None,
            reverse: false,
            keys_only: true,
        }));
        let answered =
            |keys: &[&str]| MultiOut::Read(ReadOut::Keys(keys.iter().map(|x| k(x)).collect()));
        assert!(m.step(&s, &range, Some(&answered(&["a1"]))).is_some());
        assert_eq!(m.step(&s, &range, Some(&answered(&["a2"]))), None, "bounds swapped");
        let del = MultiOp::DeletePrefix { prefix: k("a") };
        assert_eq!(m.step(&s, &del, Some(&MultiOut::Count(3))), None);
        let after = m.step(&s, &del, Some(&MultiOut::Count(2))).unwrap();
        assert_eq!(after, set(&m.init(), "b1"));
    }
}
