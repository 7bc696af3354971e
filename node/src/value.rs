//! Updates and Paxos values (ARAKOON-FORMATS §3 and the value part of §4).
//!
//! An [`Update`] is one client operation as it travels in a `sequence` payload and in the TLog.
//! A [`Value`] is what Multi-Paxos decides for one slot `i`: either a batch of client updates
//! (group commit puts many clients' updates into one value) or a MasterSet, which is how
//! mastership itself is decided.

use std::sync::Arc;

use crate::llio::{DecodeError, Put, Reader};

pub type Key = Vec<u8>;
pub type Bytes = Vec<u8>;

/// The tag that opens a modern value; anything else is a legacy bare update.
pub const VALUE_MAGIC: i32 = 0xff;

/// The smallest encoded update (a tag); used to bound list counts.
const UPDATE_BYTES_MIN: usize = 4;

/// One update, tagged as in ARAKOON-FORMATS §3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// 1
    Set { key: Key, value: Bytes },
    /// 2: fails with not_found when the key is absent.
    Delete { key: Key },
    /// 3: sets `wanted` (or deletes on `None`) when the current value equals `expected`;
    /// returns the value before.
    TestAndSet { key: Key, expected: Option<Bytes>, wanted: Option<Bytes> },
    /// 4
    MasterSet { master: String, lease_start: i64 },
    /// 5: atomic; the first failing sub-update aborts all of it.
    Sequence(Vec<Update>),
    /// 6
    Nop,
    /// 7: a named, deterministic function compiled into the binary.
    UserFunction { name: String, arg: Option<Bytes> },
    /// 8: fails with assertion_failed unless the key's value is `value` (`None`: absent).
    Assert { key: Key, value: Option<Bytes> },
    /// 9: internal keys.
    AdminSet { key: Key, value: Option<Bytes> },
    /// 10: nursery.
    SetInterval { bounds: [Option<Bytes>; 4] },
    /// 12: nursery.
    SetRoutingDelta { left: Bytes, sep: Bytes, right: Bytes },
    /// 13: a sequence whose value is fsynced on every node.
    SyncedSequence(Vec<Update>),
    /// 14: returns the number of keys deleted.
    DeletePrefix { prefix: Key },
    /// 15
    AssertExists { key: Key },
    /// 16: sets (or deletes on `None`) unconditionally, returns the value before.
    Replace { key: Key, value: Option<Bytes> },
    /// 17: the keys under `prefix` are exactly `keys`.
    AssertRange { prefix: Key, keys: Vec<Key> },
}

/// The only AssertRange kind the format knows: "contains exactly".
const ASSERT_RANGE_CONTAINS_EXACTLY: i32 = 1;

impl Update {
    pub fn tag(&self) -> i32 {
        match self {
            Update::Set { .. } => 1,
            Update::Delete { .. } => 2,
            Update::TestAndSet { .. } => 3,
            Update::MasterSet { .. } => 4,
            Update::Sequence(_) => 5,
            Update::Nop => 6,
            Update::UserFunction { .. } => 7,
            Update::Assert { .. } => 8,
            Update::AdminSet { .. } => 9,
            Update::SetInterval { .. } => 10,
            Update::SetRoutingDelta { .. } => 12,
            Update::SyncedSequence(_) => 13,
            Update::DeletePrefix { .. } => 14,
            Update::AssertExists { .. } => 15,
            Update::Replace { .. } => 16,
            Update::AssertRange { .. } => 17,
        }
    }

    /// The first part of this update that only a node may write, at any depth of a sequence:
    /// a MasterSet (the lease) or an AdminSet (the node's own keys). A client sending one could
    /// install a master or rewrite the node's bookkeeping.
    pub fn node_only_part(&self) -> Option<&Update> {
        match self {
            Update::MasterSet { .. } | Update::AdminSet { .. } => Some(self),
            Update::Sequence(members) | Update::SyncedSequence(members) => {
                members.iter().find_map(Update::node_only_part)
            }
            _ => None,
        }
    }

    /// A short name for logs and dumps.
    pub fn name(&self) -> &'static str {
        match self {
            Update::Set { .. } => "set",
            Update::Delete { .. } => "delete",
            Update::TestAndSet { .. } => "test_and_set",
            Update::MasterSet { .. } => "master_set",
            Update::Sequence(_) => "sequence",
            Update::Nop => "nop",
            Update::UserFunction { .. } => "user_function",
            Update::Assert { .. } => "assert",
            Update::AdminSet { .. } => "admin_set",
            Update::SetInterval { .. } => "set_interval",
            Update::SetRoutingDelta { .. } => "set_routing_delta",
            Update::SyncedSequence(_) => "synced_sequence",
            Update::DeletePrefix { .. } => "delete_prefix",
            Update::AssertExists { .. } => "assert_exists",
            Update::Replace { .. } => "replace",
            Update::AssertRange { .. } => "assert_range",
        }
    }

    /// How many leaf updates this holds (a sequence counts its members); for throughput figures.
    pub fn leaf_count(&self) -> usize {
        match self {
            Update::Sequence(us) | Update::SyncedSequence(us) => {
                us.iter().map(Update::leaf_count).sum()
            }
            _ => 1,
        }
    }

    /// The encoded size, without encoding.
    pub fn encoded_len(&self) -> usize {
        let s = |b: &[u8]| 4 + b.len();
        let o = |b: &Option<Bytes>| 1 + b.as_ref().map_or(0, |b| 4 + b.len());
        4 + match self {
            Update::Set { key, value } => s(key) + s(value),
            Update::Delete { key } | Update::AssertExists { key } => s(key),
            Update::DeletePrefix { prefix } => s(prefix),
            Update::TestAndSet { key, expected, wanted } => s(key) + o(expected) + o(wanted),
            Update::MasterSet { master, .. } => s(master.as_bytes()) + 8,
            Update::Sequence(us) | Update::SyncedSequence(us) => {
                4 + us.iter().map(Update::encoded_len).sum::<usize>()
            }
            Update::Nop => 0,
            Update::UserFunction { name, arg } => s(name.as_bytes()) + o(arg),
            Update::Assert { key, value }
            | Update::AdminSet { key, value }
            | Update::Replace { key, value } => s(key) + o(value),
            Update::SetInterval { bounds } => bounds.iter().map(o).sum(),
            Update::SetRoutingDelta { left, sep, right } => s(left) + s(sep) + s(right),
            Update::AssertRange { prefix, keys } => {
                s(prefix) + 4 + 4 + keys.iter().map(|k| s(k)).sum::<usize>()
            }
        }
    }

    pub fn encode<P: Put>(&self, buf: &mut P) {
        buf.put_i32(self.tag());
        match self {
            Update::Set { key, value } => {
                buf.put_bytes(key);
                buf.put_bytes(value);
            }
            Update::Delete { key } | Update::AssertExists { key } => buf.put_bytes(key),
            Update::DeletePrefix { prefix } => buf.put_bytes(prefix),
            Update::TestAndSet { key, expected, wanted } => {
                buf.put_bytes(key);
                buf.put_option(expected.as_deref());
                buf.put_option(wanted.as_deref());
            }
            Update::MasterSet { master, lease_start } => {
                buf.put_bytes(master.as_bytes());
                buf.put_i64(*lease_start);
            }
            Update::Sequence(us) | Update::SyncedSequence(us) => {
                buf.put_list_in_order(us, |b, u| u.encode(b));
            }
            Update::Nop => {}
            Update::UserFunction { name, arg } => {
                buf.put_bytes(name.as_bytes());
                buf.put_option(arg.as_deref());
            }
            Update::Assert { key, value }
            | Update::AdminSet { key, value }
            | Update::Replace { key, value } => {
                buf.put_bytes(key);
                buf.put_option(value.as_deref());
            }
            Update::SetInterval { bounds } => {
                for b in bounds {
                    buf.put_option(b.as_deref());
                }
            }
            Update::SetRoutingDelta { left, sep, right } => {
                buf.put_bytes(left);
                buf.put_bytes(sep);
                buf.put_bytes(right);
            }
            Update::AssertRange { prefix, keys } => {
                buf.put_bytes(prefix);
                buf.put_i32(ASSERT_RANGE_CONTAINS_EXACTLY);
                buf.put_list_reversed(keys, |b, k| b.put_bytes(k));
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.encoded_len());
        self.encode(&mut buf);
        buf
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Update, DecodeError> {
        Self::decode_nested(r, 0)
    }

    /// Sequences may nest, but not without bound: a hostile payload must not blow the stack.
    fn decode_nested(r: &mut Reader<'_>, depth: u32) -> Result<Update, DecodeError> {
        const NESTING_MAX: u32 = 16;
        let at = r.position();
        let tag = r.i32()?;
        let update = match tag {
            1 => Update::Set { key: r.bytes()?, value: r.bytes()? },
            2 => Update::Delete { key: r.bytes()? },
            3 => Update::TestAndSet { key: r.bytes()?, expected: r.option()?, wanted: r.option()? },
            4 => Update::MasterSet { master: r.string("master name")?, lease_start: r.i64()? },
            5 | 13 => {
                if depth >= NESTING_MAX {
                    let max = NESTING_MAX as usize;
                    return Err(DecodeError::TooDeep { at, what: "sequence", max });
                }
                let us =
                    r.list_in_order(UPDATE_BYTES_MIN, |r| Self::decode_nested(r, depth + 1))?;
                if tag == 5 {
                    Update::Sequence(us)
                } else {
                    Update::SyncedSequence(us)
                }
            }
            6 => Update::Nop,
            7 => Update::UserFunction { name: r.string("user function name")?, arg: r.option()? },
            8 => Update::Assert { key: r.bytes()?, value: r.option()? },
            9 => Update::AdminSet { key: r.bytes()?, value: r.option()? },
            10 => {
                Update::SetInterval { bounds: [r.option()?, r.option()?, r.option()?, r.option()?] }
            }
            12 => Update::SetRoutingDelta { left: r.bytes()?, sep: r.bytes()?, right: r.bytes()? },
            14 => Update::DeletePrefix { prefix: r.bytes()? },
            15 => Update::AssertExists { key: r.bytes()? },
            16 => Update::Replace { key: r.bytes()?, value: r.option()? },
            17 => {
                let prefix = r.bytes()?;
                let kind_at = r.position();
                let kind = r.i32()?;
                if kind != ASSERT_RANGE_CONTAINS_EXACTLY {
                    return Err(DecodeError::BadTag {
                        at: kind_at,
                        what: "assert_range kind",
                        tag: i64::from(kind),
                    });
                }
                Update::AssertRange { prefix, keys: r.list_reversed(4, Reader::bytes)? }
            }
            11 => {
                return Err(DecodeError::Unsupported {
                    at,
                    what: "update",
                    name: "nursery SetRouting (tag 11)",
                })
            }
            other => return Err(DecodeError::BadTag { at, what: "update", tag: i64::from(other) }),
        };
        Ok(update)
    }

    /// Decodes one whole buffer holding exactly one update.
    pub fn from_bytes(buf: &[u8]) -> Result<Update, DecodeError> {
        let mut r = Reader::new(buf);
        let u = Update::decode(&mut r)?;
        r.finish("update")?;
        Ok(u)
    }
}

/// The value Multi-Paxos decides for one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A batch of client updates; `synced` asks every node to fsync it (synced_sequence).
    /// Shared, not copied, by the clones a slot's value goes through on its way (the slot kept
    /// in memory, an Accept to each peer, the TLog job, the apply): with values of a MiB each
    /// copy cost as much as the rest of the slot's handling.
    Client { synced: bool, updates: Arc<[Update]> },
    /// Mastership: `master` holds the lease from `lease_start` (0 on the wire).
    MasterSet { master: String, lease_start: i64 },
}

impl Value {
    pub fn client(updates: Vec<Update>) -> Value {
        Value::Client { synced: false, updates: updates.into() }
    }

    pub fn is_master_set(&self) -> bool {
        matches!(self, Value::MasterSet { .. })
    }

    /// Leaf updates in this value (for throughput figures and batching budgets).
    pub fn update_count(&self) -> usize {
        match self {
            Value::Client { updates, .. } => updates.iter().map(Update::leaf_count).sum(),
            Value::MasterSet { .. } => 1,
        }
    }

    pub fn encoded_len(&self) -> usize {
        4 + 1
            + match self {
                Value::Client { updates, .. } => {
                    1 + 4 + updates.iter().map(Update::encoded_len).sum::<usize>()
                }
                Value::MasterSet { master, .. } => 4 + master.len() + 8,
            }
    }

    pub fn encode<P: Put>(&self, buf: &mut P) {
        buf.put_i32(VALUE_MAGIC);
        match self {
            Value::Client { synced, updates } => {
                buf.put_u8(b'c');
                buf.put_bool(*synced);
                buf.put_list_reversed(updates, |b, u| u.encode(b));
            }
            Value::MasterSet { master, lease_start } => {
                buf.put_u8(b'm');
                buf.put_bytes(master.as_bytes());
                buf.put_i64(*lease_start);
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.encoded_len());
        self.encode(&mut buf);
        buf
    }

    /// Decodes a value, accepting the legacy form where the value is one bare update.
    pub fn decode(r: &mut Reader<'_>) -> Result<Value, DecodeError> {
        let at = r.position();
        let mut peek = r.clone();
        if peek.i32()? != VALUE_MAGIC {
            return Ok(match Update::decode(r)? {
                Update::MasterSet { master, lease_start } => {
                    Value::MasterSet { master, lease_start }
                }
                update => Value::Client { synced: false, updates: Arc::new([update]) },
            });
        }
        *r = peek;
        let kind_at = r.position();
        match r.u8()? {
            b'c' => {
                let synced = r.bool()?;
                let updates = r.list_reversed(UPDATE_BYTES_MIN, Update::decode)?;
                Ok(Value::Client { synced, updates: updates.into() })
            }
            b'm' => {
                Ok(Value::MasterSet { master: r.string("master name")?, lease_start: r.i64()? })
            }
            other => {
                let _ = at;
                Err(DecodeError::BadTag { at: kind_at, what: "value kind", tag: i64::from(other) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn every_update() -> Vec<Update> {
        vec![
            Update::Set { key: b"k".to_vec(), value: b"v".to_vec() },
            Update::Delete { key: b"k".to_vec() },
            Update::TestAndSet { key: b"k".to_vec(), expected: None, wanted: Some(b"w".to_vec()) },
            Update::MasterSet { master: "n0".into(), lease_start: 0 },
            Update::Sequence(vec![
                Update::Set { key: b"a".to_vec(), value: b"1".to_vec() },
                Update::Sequence(vec![Update::Nop]),
            ]),
            Update::Nop,
            Update::UserFunction { name: "incr".into(), arg: Some(b"x".to_vec()) },
            Update::Assert { key: b"k".to_vec(), value: None },
            Update::AdminSet { key: b"*i".to_vec(), value: Some(b"1".to_vec()) },
            Update::SetInterval { bounds: [None, Some(b"a".to_vec()), None, Some(b"z".to_vec())] },
            Update::SetRoutingDelta {
                left: b"l".to_vec(),
                sep: b"s".to_vec(),
                right: b"r".to_vec(),
            },
            Update::SyncedSequence(vec![Update::Delete { key: b"q".to_vec() }]),
            Update::DeletePrefix { prefix: b"p/".to_vec() },
            Update::AssertExists { key: b"k".to_vec() },
            Update::Replace { key: b"k".to_vec(), value: Some(b"r".to_vec()) },
            Update::AssertRange {
                prefix: b"p".to_vec(),
                keys: vec![b"p1".to_vec(), b"p2".to_vec()],
            },
        ]
    }

    #[test]
    fn every_update_round_trips_and_knows_its_size() {
        for u in every_update() {
            let bytes = u.to_bytes();
            assert_eq!(bytes.len(), u.encoded_len(), "{}", u.name());
            assert_eq!(Update::from_bytes(&bytes).unwrap(), u);
        }
    }

    #[test]
    fn every_value_form_round_trips() {
        let values = vec![
            Value::client(every_update()),
            Value::Client { synced: true, updates: Arc::new([]) },
            Value::MasterSet { master: "n1".into(), lease_start: 0 },
        ];
        for v in values {
            let bytes = v.to_bytes();
            assert_eq!(bytes.len(), v.encoded_len());
            let mut r = Reader::new(&bytes);
            assert_eq!(Value::decode(&mut r).unwrap(), v);
            r.finish("value").unwrap();
        }
    }

    #[test]
    fn a_set_is_laid_out_as_the_spec_says() {
        let bytes = Update::Set { key: b"k".to_vec(), value: b"vv".to_vec() }.to_bytes();
        assert_eq!(bytes, [1, 0, 0, 0, 1, 0, 0, 0, b'k', 2, 0, 0, 0, b'v', b'v']);
    }

    #[test]
    fn a_client_value_lists_its_updates_last_first() {
        let v = Value::client(vec![Update::Nop, Update::Delete { key: b"d".to_vec() }]);
        let bytes = v.to_bytes();
        #[rustfmt::skip]
        let expected = [
            0xff, 0, 0, 0, b'c', 0, // magic, client, not synced
            2, 0, 0, 0, // two updates, last first:
            2, 0, 0, 0, 1, 0, 0, 0, b'd', // delete "d"
            6, 0, 0, 0, // nop
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn a_bare_update_is_a_legacy_client_value() {
        let bytes = Update::Set { key: b"k".to_vec(), value: b"v".to_vec() }.to_bytes();
        let v = Value::decode(&mut Reader::new(&bytes)).unwrap();
        assert_eq!(
            v,
            Value::client(vec![Update::Set { key: b"k".to_vec(), value: b"v".to_vec() }])
        );
    }

    #[test]
    fn unknown_tags_and_deep_nesting_are_typed_errors() {
        let mut buf = Vec::new();
        buf.put_i32(99);
        assert!(matches!(Update::from_bytes(&buf), Err(DecodeError::BadTag { tag: 99, .. })));
        let mut deep = Update::Nop;
        for _ in 0..40 {
            deep = Update::Sequence(vec![deep]);
        }
        assert!(matches!(
            Update::from_bytes(&deep.to_bytes()),
            Err(DecodeError::TooDeep { what: "sequence", .. })
        ));
    }
}
