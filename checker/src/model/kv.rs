//! The key-value map, checked key by key: get, set, delete, test_and_set, replace, append.
//!
//! Each operation touches one key, so the history of each key is checked on its own
//! (P-compositionality) and the state is one optional value. A failed operation did not happen
//! (a delete fails when the key is absent). `test_and_set` and `replace` answer the value before
//! them. The same operations, plus multi-key ones, make up [`super::multi_key::MultiKey`].

use super::{
    bytes_of, opt_bytes_of, show_bytes, show_opt_bytes, FromRaw, Model, Partition, RawError,
};
use crate::history::History;
use crate::import::RawCall;
use crate::value::Value;
use std::collections::HashMap;

pub type Bytes = Vec<u8>;

/// One operation on one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KvOp {
    /// Answers the value, or nil when the key is absent.
    Get {
        key: Bytes,
    },
    Set {
        key: Bytes,
        value: Bytes,
    },
    /// Fails when the key is absent.
    Delete {
        key: Bytes,
    },
    /// Sets `wanted` (deletes on nil) when the value is `expected` (nil: absent); answers the
    /// value before.
    TestAndSet {
        key: Bytes,
        expected: Option<Bytes>,
        wanted: Option<Bytes>,
    },
    /// Sets `wanted` (deletes on nil) unconditionally; answers the value before.
    Replace {
        key: Bytes,
        wanted: Option<Bytes>,
    },
    /// Appends to the value (an absent key counts as empty).
    Append {
        key: Bytes,
        suffix: Bytes,
    },
}

impl KvOp {
    pub fn key(&self) -> &[u8] {
        match self {
            KvOp::Get { key }
            | KvOp::Set { key, .. }
            | KvOp::Delete { key }
            | KvOp::TestAndSet { key, .. }
            | KvOp::Replace { key, .. }
            | KvOp::Append { key, .. } => key,
        }
    }

    /// The value of the key after this operation, from the value `current` before it, given
    /// what it answered (`None`: not seen); `None` when that answer is impossible.
    pub fn apply(
        &self,
        current: &Option<Bytes>,
        answered: Option<&Option<Bytes>>,
    ) -> Option<Option<Bytes>> {
        let saw = |expected: &Option<Bytes>| answered.is_none_or(|a| a == expected);
        match self {
            KvOp::Get { .. } => saw(current).then(|| current.clone()),
            KvOp::Set { value, .. } => Some(Some(value.clone())),
            KvOp::Delete { .. } => current.is_some().then_some(None),
            KvOp::TestAndSet { expected, wanted, .. } => {
                if !saw(current) {
                    None
                } else if current == expected {
                    Some(wanted.clone())
                } else {
                    Some(current.clone())
                }
            }
            KvOp::Replace { wanted, .. } => saw(current).then(|| wanted.clone()),
            KvOp::Append { suffix, .. } => {
                let mut v = current.clone().unwrap_or_default();
                v.extend_from_slice(suffix);
                Some(Some(v))
            }
        }
    }

    /// `get("k") -> "v"` and so on.
    pub fn describe(&self, answered: Option<&Option<Bytes>>) -> String {
        let key = show_bytes(self.key());
        let ans = || answered.map_or_else(|| "?".to_string(), |a| show_opt_bytes(a.as_deref()));
        match self {
            KvOp::Get { .. } => format!("get({key}) -> {}", ans()),
            KvOp::Set { value, .. } => format!("set({key}, {})", show_bytes(value)),
            KvOp::Delete { .. } => format!("delete({key})"),
            KvOp::TestAndSet { expected, wanted, .. } => format!(
                "test_and_set({key}, {}, {}) -> {}",
                show_opt_bytes(expected.as_deref()),
                show_opt_bytes(wanted.as_deref()),
                ans()
            ),
            KvOp::Replace { wanted, .. } => {
                format!("replace({key}, {}) -> {}", show_opt_bytes(wanted.as_deref()), ans())
            }
            KvOp::Append { suffix, .. } => format!("append({key}, {})", show_bytes(suffix)),
        }
    }

    /// Reads a single-key operation: `f` with `key` and `value` as our format and Jepsen's
    /// key-value histories write them (`put` is `set`; `cas` is `test_and_set`).
    pub fn from_raw(call: &RawCall) -> Result<KvOp, RawError> {
        let key = bytes_of(call.key.as_ref().ok_or(RawError::Missing("key"))?)?;
        let value = &call.value;
        Ok(match call.f.as_str() {
            "get" | "read" => KvOp::Get { key },
            "set" | "put" | "write" => KvOp::Set { key, value: bytes_of(value)? },
            "delete" => KvOp::Delete { key },
            "test_and_set" | "cas" => match value.as_list() {
                Some([expected, wanted]) => KvOp::TestAndSet {
                    key,
                    expected: opt_bytes_of(expected)?,
                    wanted: opt_bytes_of(wanted)?,
                },
                _ => return Err(RawError::expected("[expected wanted]", value)),
            },
            "replace" => KvOp::Replace { key, wanted: opt_bytes_of(value)? },
            "append" => KvOp::Append { key, suffix: bytes_of(value)? },
            other => {
                return Err(RawError::UnknownFunction {
                    model: "key-value",
                    f: other.to_string(),
                    known: "get, set, delete, test_and_set, replace, append",
                })
            }
        })
    }

    /// What a successful operation answered: the value for get, test_and_set and replace.
    pub fn output_from_raw(&self, value: &Value) -> Result<Option<Option<Bytes>>, RawError> {
        match self {
            KvOp::Get { .. } | KvOp::TestAndSet { .. } | KvOp::Replace { .. } => {
                opt_bytes_of(value).map(Some)
            }
            _ => Ok(None),
        }
    }
}

/// The key-value model, partitioned per key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Kv {
    /// The value of every key before any operation; `None`: absent.
    pub initial: Option<Bytes>,
}

impl Model for Kv {
    type Input = KvOp;
    type Output = Option<Bytes>;
    type State = Option<Bytes>;

    fn init(&self) -> Option<Bytes> {
        self.initial.clone()
    }

    fn step(
        &self,
        state: &Option<Bytes>,
        input: &KvOp,
        output: Option<&Option<Bytes>>,
    ) -> Option<Option<Bytes>> {
        input.apply(state, output)
    }

    fn partitions(&self, history: &History<KvOp, Option<Bytes>>) -> Vec<Partition> {
        let mut by_key: HashMap<&[u8], usize> = HashMap::new();
        let mut partitions: Vec<Partition> = Vec::new();
        for (i, op) in history.ops().iter().enumerate() {
            let key = op.input.key();
            let p = *by_key.entry(key).or_insert_with(|| {
                partitions.push(Partition { name: show_bytes(key), ops: Vec::new() });
                partitions.len() - 1
            });
            partitions[p].ops.push(i);
        }
        partitions
    }

    fn is_read_only(&self, input: &KvOp) -> bool {
        matches!(input, KvOp::Get { .. })
    }

    fn describe(&self, input: &KvOp, output: Option<&Option<Bytes>>) -> String {
        input.describe(output)
    }

    fn describe_state(&self, state: &Option<Bytes>) -> String {
        show_opt_bytes(state.as_deref())
    }
}

impl FromRaw for Kv {
    fn input(&self, call: &RawCall) -> Result<KvOp, RawError> {
        KvOp::from_raw(call)
    }

    fn output(&self, input: &KvOp, value: &Value) -> Result<Option<Option<Bytes>>, RawError> {
        input.output_from_raw(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Option<Bytes> {
        Some(s.as_bytes().to_vec())
    }

    #[test]
    fn test_and_set_answers_the_value_before_and_sets_only_on_a_match() {
        let tas = KvOp::TestAndSet { key: b"k".to_vec(), expected: b("a"), wanted: b("b") };
        assert_eq!(tas.apply(&b("a"), Some(&b("a"))), Some(b("b")));
        assert_eq!(tas.apply(&b("c"), Some(&b("c"))), Some(b("c")));
        assert_eq!(tas.apply(&b("a"), Some(&b("c"))), None);
        assert_eq!(tas.apply(&None, None), Some(None));
    }

    #[test]
    fn delete_needs_the_key_and_append_starts_from_empty() {
        let del = KvOp::Delete { key: b"k".to_vec() };
        assert_eq!(del.apply(&None, None), None);
        assert_eq!(del.apply(&b("x"), None), Some(None));
        let app = KvOp::Append { key: b"k".to_vec(), suffix: b"yz".to_vec() };
        assert_eq!(app.apply(&None, None), Some(b("yz")));
        assert_eq!(app.apply(&b("x"), None), Some(b("xyz")));
    }
}
