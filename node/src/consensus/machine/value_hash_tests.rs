//! The hash nodes name a slot's value by: XXH3-64 of the value's encoding, read as it is written.

use super::value_hash;
use crate::value::{Update, Value};

fn set(key: &str, len: usize) -> Update {
    Update::Set { key: key.into(), value: (0..len).map(|x| (x * 7 % 256) as u8).collect() }
}

/// The streamed hash is the one-shot XXH3-64 of the bytes a TLog or an Accept carries, for
/// every value kind and for a value of a MiB; peers of this version agree on it byte for byte.
#[test]
fn the_value_hash_is_xxh3_of_the_encoding() {
    let values = [
        Value::client(vec![]),
        Value::client(vec![set("k", 3), Update::Delete { key: b"d".to_vec() }]),
        Value::Client { synced: true, updates: vec![Update::Sequence(vec![set("a", 1)])].into() },
        Value::client(vec![set("big", 1 << 20)]),
        Value::MasterSet { master: "n0".into(), lease_start: 0 },
    ];
    for v in &values {
        assert_eq!(value_hash(v), xxhash_rust::xxh3::xxh3_64(&v.to_bytes()), "{v:?}");
    }
    // Values that differ in one byte of a large value, or only in their order, hash apart.
    let mut other = set("big", 1 << 20);
    if let Update::Set { value, .. } = &mut other {
        value[700_000] ^= 1;
    }
    assert_ne!(value_hash(&values[3]), value_hash(&Value::client(vec![other])));
    let ab = Value::client(vec![set("a", 1), set("b", 1)]);
    let ba = Value::client(vec![set("b", 1), set("a", 1)]);
    assert_ne!(value_hash(&ab), value_hash(&ba));
}
