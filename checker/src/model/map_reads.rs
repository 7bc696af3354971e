//! Reads over the whole ordered map, as Arakoon's client serves them: exists, assert,
//! assert_exists, multi_get, multi_get_option, range, range_entries, rev_range_entries and
//! prefix_keys. Each is answered from the map's state and the history's answer must equal it,
//! down to the order of the keys, the bounds' inclusive flags and the limit.
//!
//! A range's bounds follow the store's contract (`node/src/store/reads.rs` implements it; this
//! is the specification it is checked against): `first` up to `last`, or for the reverse read
//! `first` (the high bound) down to `last`; a missing bound is unbounded, except that an open
//! low bound that is not inclusive still leaves out the empty key; bounds that cross give
//! nothing; `max` keeps the first `max` keys in the read's direction.

use super::kv::Bytes;
use super::{bytes_of, opt_bytes_of, show_bytes, show_opt_bytes, RawError};
use crate::value::Value;
use std::collections::BTreeMap;

/// A range read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scan {
    pub first: Option<Bytes>,
    pub first_inclusive: bool,
    pub last: Option<Bytes>,
    pub last_inclusive: bool,
    /// `None`: every key (the wire's -1).
    pub max: Option<usize>,
    /// rev_range_entries: descending, `first` is the high bound.
    pub reverse: bool,
    /// range: keys without their values.
    pub keys_only: bool,
}

/// A read of the map.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MapRead {
    Exists {
        key: Bytes,
    },
    /// Whether the key's value is `value` (nil: absent).
    Assert {
        key: Bytes,
        value: Option<Bytes>,
    },
    AssertExists {
        key: Bytes,
    },
    /// Every value, or the key Arakoon names as missing.
    MultiGet {
        keys: Vec<Bytes>,
    },
    MultiGetOption {
        keys: Vec<Bytes>,
    },
    Scan(Scan),
    PrefixKeys {
        prefix: Bytes,
        max: Option<usize>,
    },
}

/// What a read answered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReadOut {
    Bool(bool),
    Values(Vec<Option<Bytes>>),
    /// multi_get refused with not_found, naming this key.
    Missing(Bytes),
    Keys(Vec<Bytes>),
    Entries(Vec<(Bytes, Bytes)>),
}

/// The present keys of a map whose absent keys are all absent initially: `(key, value)` in
/// ascending order.
pub type Present<'a> = dyn DoubleEndedIterator<Item = (&'a Bytes, &'a Bytes)> + 'a;

impl Scan {
    /// Whether `key` lies above the low bound and below the high one.
    fn holds(&self, key: &[u8]) -> bool {
        let (low, low_inc, high, high_inc) = if self.reverse {
            (&self.last, self.last_inclusive, &self.first, self.first_inclusive)
        } else {
            (&self.first, self.first_inclusive, &self.last, self.last_inclusive)
        };
        let above = match low {
            None => low_inc || !key.is_empty(),
            Some(b) => key > b.as_slice() || (low_inc && key == b.as_slice()),
        };
        let below = match high {
            None => true,
            Some(b) => key < b.as_slice() || (high_inc && key == b.as_slice()),
        };
        above && below
    }

    fn answer<'a>(&self, present: Box<Present<'a>>) -> ReadOut {
        let max = self.max.unwrap_or(usize::MAX);
        let found: Vec<(&Bytes, &Bytes)> = if self.reverse {
            present.rev().filter(|(k, _)| self.holds(k)).take(max).collect()
        } else {
            present.filter(|(k, _)| self.holds(k)).take(max).collect()
        };
        if self.keys_only {
            ReadOut::Keys(found.into_iter().map(|(k, _)| k.clone()).collect())
        } else {
            ReadOut::Entries(found.into_iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        }
    }

    fn name(&self) -> &'static str {
        match (self.reverse, self.keys_only) {
            (true, _) => "rev_range_entries",
            (false, true) => "range",
            (false, false) => "range_entries",
        }
    }
}

impl MapRead {
    /// Whether this read needs the map's whole key order (and so every key initially absent).
    pub fn orders_keys(&self) -> bool {
        matches!(self, MapRead::Scan(_) | MapRead::PrefixKeys { .. })
    }

    /// The answer in a state where `get` reads a key and `present` lists the present keys.
    pub fn answer<'a>(
        &self,
        get: &dyn Fn(&[u8]) -> Option<Bytes>,
        present: Box<Present<'a>>,
    ) -> ReadOut {
        match self {
            MapRead::Exists { key } | MapRead::AssertExists { key } => {
                ReadOut::Bool(get(key).is_some())
            }
            MapRead::Assert { key, value } => ReadOut::Bool(get(key) == *value),
            // As Arakoon: the last missing key in request order is the one named.
            MapRead::MultiGet { keys } => match keys.iter().rev().find(|k| get(k).is_none()) {
                Some(missing) => ReadOut::Missing(missing.clone()),
                None => ReadOut::Values(keys.iter().map(|k| get(k)).collect()),
            },
            MapRead::MultiGetOption { keys } => {
                ReadOut::Values(keys.iter().map(|k| get(k)).collect())
            }
            MapRead::Scan(scan) => scan.answer(present),
            MapRead::PrefixKeys { prefix, max } => ReadOut::Keys(
                present
                    .filter(|(k, _)| k.starts_with(prefix))
                    .take(max.unwrap_or(usize::MAX))
                    .map(|(k, _)| k.clone())
                    .collect(),
            ),
        }
    }

    /// The read in the history's raw form: `f`, key and value; `None` when `f` is not a read.
    pub fn from_raw(f: &str, key: Option<&Value>, value: &Value) -> Option<Result<Self, RawError>> {
        let key = || bytes_of(key.ok_or(RawError::Missing("key"))?);
        let keys = || -> Result<Vec<Bytes>, RawError> {
            value
                .as_list()
                .ok_or_else(|| RawError::expected("a list of keys", value))?
                .iter()
                .map(bytes_of)
                .collect()
        };
        Some(match f {
            "exists" => key().map(|key| MapRead::Exists { key }),
            "assert" => {
                key().and_then(|key| Ok(MapRead::Assert { key, value: opt_bytes_of(value)? }))
            }
            "assert_exists" => key().map(|key| MapRead::AssertExists { key }),
            "multi_get" => keys().map(|keys| MapRead::MultiGet { keys }),
            "multi_get_option" => keys().map(|keys| MapRead::MultiGetOption { keys }),
            "prefix_keys" => {
                key().and_then(|prefix| Ok(MapRead::PrefixKeys { prefix, max: max_of(value)? }))
            }
            "range" | "range_entries" | "rev_range_entries" => scan_of(f, value).map(MapRead::Scan),
            _ => return None,
        })
    }

    /// What a successful read answered, from the completion's value.
    pub fn output_from_raw(&self, value: &Value) -> Result<ReadOut, RawError> {
        let list = || value.as_list().ok_or_else(|| RawError::expected("a list", value));
        match self {
            MapRead::Exists { .. } | MapRead::Assert { .. } | MapRead::AssertExists { .. } => {
                match value {
                    Value::Bool(b) => Ok(ReadOut::Bool(*b)),
                    other => Err(RawError::expected("true or false", other)),
                }
            }
            MapRead::MultiGet { .. } if value.get("missing").is_some() => {
                Ok(ReadOut::Missing(bytes_of(value.get("missing").unwrap_or(&Value::Nil))?))
            }
            MapRead::MultiGet { .. } | MapRead::MultiGetOption { .. } => {
                Ok(ReadOut::Values(list()?.iter().map(opt_bytes_of).collect::<Result<_, _>>()?))
            }
            MapRead::Scan(Scan { keys_only: false, .. }) => Ok(ReadOut::Entries(
                list()?
                    .iter()
                    .map(|e| match e.as_list() {
                        Some([k, v]) => Ok((bytes_of(k)?, bytes_of(v)?)),
                        _ => Err(RawError::element("entry", e, "[key value]")),
                    })
                    .collect::<Result<_, RawError>>()?,
            )),
            MapRead::Scan(_) | MapRead::PrefixKeys { .. } => {
                Ok(ReadOut::Keys(list()?.iter().map(bytes_of).collect::<Result<_, _>>()?))
            }
        }
    }

    /// `range_entries(["a1", "a3"), max 2) -> [...]` and so on.
    pub fn describe(&self, output: Option<&ReadOut>) -> String {
        let keys = |ks: &[Bytes]| ks.iter().map(|k| show_bytes(k)).collect::<Vec<_>>().join(" ");
        let call = match self {
            MapRead::Exists { key } => format!("exists({})", show_bytes(key)),
            MapRead::Assert { key, value } => {
                format!("assert({}, {})", show_bytes(key), show_opt_bytes(value.as_deref()))
            }
            MapRead::AssertExists { key } => format!("assert_exists({})", show_bytes(key)),
            MapRead::MultiGet { keys: ks } => format!("multi_get([{}])", keys(ks)),
            MapRead::MultiGetOption { keys: ks } => format!("multi_get_option([{}])", keys(ks)),
            MapRead::Scan(s) => {
                let bound = |b: &Option<Bytes>, inc: bool, open: char, closed: char| match b {
                    None => "..".to_string(),
                    Some(b) => format!("{}{}", if inc { closed } else { open }, show_bytes(b)),
                };
                format!(
                    "{}({} {}, max {})",
                    s.name(),
                    bound(&s.first, s.first_inclusive, '(', '['),
                    bound(&s.last, s.last_inclusive, ')', ']'),
                    s.max.map_or("all".into(), |m| m.to_string())
                )
            }
            MapRead::PrefixKeys { prefix, max } => format!(
                "prefix_keys({}, max {})",
                show_bytes(prefix),
                max.map_or("all".into(), |m| m.to_string())
            ),
        };
        let out = match output {
            None => "?".to_string(),
            Some(ReadOut::Bool(b)) => b.to_string(),
            Some(ReadOut::Missing(k)) => format!("not_found {}", show_bytes(k)),
            Some(ReadOut::Values(vs)) => format!(
                "[{}]",
                vs.iter().map(|v| show_opt_bytes(v.as_deref())).collect::<Vec<_>>().join(" ")
            ),
            Some(ReadOut::Keys(ks)) => format!("[{}]", keys(ks)),
            Some(ReadOut::Entries(es)) => format!(
                "[{}]",
                es.iter()
                    .map(|(k, v)| format!("{}={}", show_bytes(k), show_bytes(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        };
        format!("{call} -> {out}")
    }
}

/// A limit: a non-negative integer, or -1 (or nil) for all.
fn max_of(value: &Value) -> Result<Option<usize>, RawError> {
    const LIMIT: &str = "a limit (an integer, -1 for all)";
    match value {
        Value::Nil | Value::Int(-1) => Ok(None),
        Value::Int(n) => {
            usize::try_from(*n).map(Some).map_err(|_| RawError::expected(LIMIT, value))
        }
        other => Err(RawError::expected(LIMIT, other)),
    }
}

/// A range read's bounds: `{first, first_inclusive, last, last_inclusive, max}`.
fn scan_of(f: &str, value: &Value) -> Result<Scan, RawError> {
    let flag = |name: &str| match value.get(name) {
        Some(Value::Bool(b)) => Ok(*b),
        other => Err(RawError::Field {
            field: name.to_string(),
            expected: "true or false",
            found: other.map_or_else(|| "nothing".to_string(), Value::to_string),
        }),
    };
    Ok(Scan {
        first: opt_bytes_of(value.get("first").unwrap_or(&Value::Nil))?,
        first_inclusive: flag("first_inclusive")?,
        last: opt_bytes_of(value.get("last").unwrap_or(&Value::Nil))?,
        last_inclusive: flag("last_inclusive")?,
        max: max_of(value.get("max").unwrap_or(&Value::Nil))?,
        reverse: f == "rev_range_entries",
        keys_only: f == "range",
    })
}

/// The keys of `map` (present or not) that start with `prefix`.
pub fn with_prefix<'a, V>(map: &'a BTreeMap<Bytes, V>, prefix: &'a [u8]) -> Vec<&'a Bytes> {
    map.range(prefix.to_vec()..).map(|(k, _)| k).take_while(|k| k.starts_with(prefix)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        s.as_bytes().to_vec()
    }

    fn map() -> BTreeMap<Bytes, Bytes> {
        ["a1", "a2", "a3", "a4"].iter().map(|k| (b(k), b(&format!("v{k}")))).collect()
    }

    fn scan(first: Option<&str>, fi: bool, last: Option<&str>, li: bool, rev: bool) -> Scan {
        Scan {
            first: first.map(b),
            first_inclusive: fi,
            last: last.map(b),
            last_inclusive: li,
            max: None,
            reverse: rev,
            keys_only: true,
        }
    }

    fn keys(s: &Scan) -> Vec<String> {
        let m = map();
        match s.answer(Box::new(m.iter())) {
            ReadOut::Keys(ks) => ks.iter().map(|k| String::from_utf8_lossy(k).into()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bounds_on_stored_keys_honour_their_flags() {
        assert_eq!(keys(&scan(Some("a1"), true, Some("a3"), false, false)), ["a1", "a2"]);
        assert_eq!(keys(&scan(Some("a1"), false, Some("a3"), true, false)), ["a2", "a3"]);
        assert_eq!(keys(&scan(Some("a3"), true, Some("a1"), false, true)), ["a3", "a2"]);
        assert_eq!(keys(&scan(Some("a3"), false, Some("a1"), true, true)), ["a2", "a1"]);
        assert_eq!(keys(&scan(Some("a25"), true, None, false, false)), ["a3", "a4"]);
        assert_eq!(keys(&scan(None, false, Some("a2"), true, false)), ["a1", "a2"]);
        assert_eq!(keys(&scan(Some("a3"), false, Some("a1"), false, false)), Vec::<String>::new());
        let limited = Scan { max: Some(1), ..scan(Some("az"), true, None, true, true) };
        assert_eq!(keys(&limited), ["a4"]);
    }

    #[test]
    fn multi_get_names_the_last_missing_key() {
        let m = map();
        let get = |k: &[u8]| m.get(k).cloned();
        let read = MapRead::MultiGet { keys: vec![b("a0"), b("a1"), b("a9")] };
        assert_eq!(read.answer(&get, Box::new(m.iter())), ReadOut::Missing(b("a9")));
    }

    #[test]
    fn raw_reads_round_trip_their_bounds() {
        let value = Value::Map(vec![
            (Value::Str("first".into()), Value::Str("a1".into())),
            (Value::Str("first_inclusive".into()), Value::Bool(false)),
            (Value::Str("last".into()), Value::Nil),
            (Value::Str("last_inclusive".into()), Value::Bool(true)),
            (Value::Str("max".into()), Value::Int(-1)),
        ]);
        let read = MapRead::from_raw("rev_range_entries", None, &value).unwrap().unwrap();
        assert_eq!(
            read,
            MapRead::Scan(Scan { keys_only: false, ..scan(Some("a1"), false, None, true, true) })
        );
        assert!(MapRead::from_raw("get", None, &value).is_none());
    }
}
