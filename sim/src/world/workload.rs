//! The clients' workload: what each call asks, the request that carries it to a node, and what
//! its answer means in the history the checker reads.
//!
//! Two key spaces, checked apart (see [`super::history`]): the single-key operations (get, set,
//! delete, test_and_set) on `k0`..`k{keys-1}`, checked key by key; and every operation that spans
//! keys or reads the key order on `a0`..`a{multi_keys-1}`, checked as one map: sequences (set,
//! delete, assert, assert_exists, replace), delete_prefix, replace, the built-in user function
//! `arakoon.append`, and the reads exists, assert, assert_exists, multi_get, multi_get_option,
//! range, range_entries, rev_range_entries and prefix_keys. The `a` keys sort before the `k`
//! keys, so a range read's low bound may be open while its high bound, drawn from `a`, `a{i}`
//! (on a key), `a{i}5` (between two) and `az` (above them all), keeps it out of the single-key
//! space. Bounds and limits are drawn so that each inclusive flag decides what a read returns.
//!
//! A refusal that answers the question is an observation, not a failure: a get or a multi_get
//! refused with not_found, an assert refused with assertion_failed.

use super::run::{OpResult, SimConfig};
use arakoon_chaos::drill::KeyDistribution;
use arakoon_chaos::history::{opt_value, outcome_of_refusal, str_value, Space};
use arakoon_checker::import::RawCall;
use arakoon_checker::{Outcome, Value as HValue};
use arakoon_node::protocol::client::{Consistency, Payload, Request};
use arakoon_node::rc::Rc;
use arakoon_node::store::Range;
use arakoon_node::value::Update;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// Relative weights of the operations on the `a` keys. [`SimConfig::op_weights`] says how often
/// a multi-key update (its "sequence" weight) and a multi-key read (its "range" weight) are
/// drawn; these split each among its kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultiWeights {
    /// sequence, delete_prefix, replace, user function (`arakoon.append`).
    pub updates: [u32; 4],
    /// range_entries, range, rev_range_entries, prefix_keys, exists, multi_get,
    /// multi_get_option, assert, assert_exists.
    pub reads: [u32; 9],
}

impl Default for MultiWeights {
    fn default() -> Self {
        // Sequences most (they were the only multi-key update); delete_prefix rarely, as it
        // empties a whole stretch of keys. Range reads most among reads: their bounds are what
        // the single-key history never exercises.
        MultiWeights { updates: [4, 1, 2, 1], reads: [3, 2, 3, 2, 1, 1, 1, 1, 1] }
    }
}

/// What a call does.
#[derive(Debug, Clone)]
pub(super) enum OpKind {
    Get,
    Set(Vec<u8>),
    Delete,
    TestAndSet {
        expected: Option<Vec<u8>>,
        wanted: Vec<u8>,
    },
    /// An operation on the `a` keys: the request, and how its answer reads.
    Multi {
        request: Request,
        answer: Answer,
    },
}

/// How a multi-key call's answer goes into the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// An update that answers nothing the model checks (a sequence, a user function).
    Nothing,
    /// replace: the value before.
    Previous,
    /// delete_prefix: how many keys went.
    Count,
    /// exists, assert, assert_exists: true or false (an assertion_failed is false).
    Bool,
    /// multi_get: the values, or the key named missing.
    Values,
    /// multi_get_option: a value or nil per key.
    OptionValues,
    /// range, prefix_keys.
    Keys,
    /// range_entries, rev_range_entries.
    Entries,
}

impl OpKind {
    /// Whether the call only reads.
    pub(super) fn is_read(&self) -> bool {
        match self {
            OpKind::Get => true,
            OpKind::Multi { answer, .. } => {
                !matches!(answer, Answer::Nothing | Answer::Previous | Answer::Count)
            }
            _ => false,
        }
    }

    /// The request that carries the call to a node.
    pub(super) fn request(&self, key: &[u8]) -> Request {
        let key = key.to_vec();
        match self.clone() {
            OpKind::Get => Request::Get { c: Consistency::Consistent, key },
            OpKind::Set(value) => Request::Set { key, value },
            OpKind::Delete => Request::Delete { key },
            OpKind::TestAndSet { expected, wanted } => {
                Request::TestAndSet { key, expected, wanted: Some(wanted) }
            }
            OpKind::Multi { request, .. } => request,
        }
    }
}

/// A drawn call: its kind, its single key (if any), and its entry in the history.
pub(super) struct Drawn {
    pub kind: OpKind,
    pub key: Vec<u8>,
    pub space: Space,
    pub call: RawCall,
}

/// The liveness probe's call (a shrunk run's `probe`): client `c` sets key `k0` to a value of its
/// own, the write the check waits for.
pub(super) fn probe(c: usize, op: u64) -> Drawn {
    let key = b"k0".to_vec();
    let v = call_value(c, op, b"p");
    let call = RawCall { f: "set".into(), key: Some(str_value(&key)), value: str_value(&v) };
    Drawn { kind: OpKind::Set(v), key, space: Space::Kv, call }
}

/// `prefix` followed by `n` in decimal, as `format!` would write them, without its machinery:
/// a call's key and value names were 2.7% of a heavy run's instructions through `format!`.
fn named(prefix: &[u8], n: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 8);
    out.extend_from_slice(prefix);
    push_decimal(&mut out, n);
    out
}

/// The value client `c`'s call `op` writes, `c{c}-{op}` and `tag`: unique to the call.
fn call_value(c: usize, op: u64, tag: &[u8]) -> Vec<u8> {
    let mut v = named(b"c", c as u64);
    v.push(b'-');
    push_decimal(&mut v, op);
    v.extend_from_slice(tag);
    v
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Draws an index by weight (the first when every weight is zero).
fn pick(rng: &mut ChaCha8Rng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum::<u32>().max(1);
    let mut draw = rng.gen_range(0..total);
    let mut choice = 0;
    while choice + 1 < weights.len() && draw >= weights[choice] {
        draw -= weights[choice];
        choice += 1;
    }
    choice
}

/// Client `c`'s operation `op`; `seen` is what the client last saw of each key.
pub(super) fn draw(
    rng: &mut ChaCha8Rng,
    cfg: &SimConfig,
    c: usize,
    op: u64,
    seen: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
) -> Drawn {
    let unique = |tag: &[u8]| call_value(c, op, tag);
    // 0 get, 1 set, 2 delete, 3 test_and_set, 4 multi-key update, 5 multi-key read.
    let choice = pick(rng, &cfg.op_weights);
    if choice >= 4 {
        let multi = Multi { n: cfg.multi_keys.max(2) };
        let (kind, call) = if choice == 4 {
            multi.update(rng, cfg.multi_weights.updates, &unique, seen)
        } else {
            multi.read(rng, cfg.multi_weights.reads, seen)
        };
        return Drawn { kind, key: Vec::new(), space: Space::Multi, call };
    }
    let k = match cfg.key_distribution {
        // A uniform draw stays the draw it always was, so that seeds keep their runs.
        KeyDistribution::Uniform => rng.gen_range(0..cfg.keys),
        d => d.pick(cfg.keys, rng.gen()),
    };
    let key = named(b"k", k as u64);
    let (kind, f, value) = match choice {
        1 => {
            let v = unique(b"");
            (OpKind::Set(v.clone()), "set", str_value(&v))
        }
        0 => (OpKind::Get, "get", HValue::Nil),
        2 => (OpKind::Delete, "delete", HValue::Nil),
        _ => {
            let expected = seen.get(&key).cloned().flatten();
            let wanted = unique(b"t");
            let value = HValue::List(vec![opt_value(expected.as_deref()), str_value(&wanted)]);
            (OpKind::TestAndSet { expected, wanted }, "test_and_set", value)
        }
    };
    let call = RawCall { f: f.into(), key: Some(str_value(&key)), value };
    Drawn { kind, key, space: Space::Kv, call }
}

/// The `a` key space of `n` keys.
struct Multi {
    n: usize,
}

fn raw(f: &str, key: Option<&[u8]>, value: HValue) -> RawCall {
    RawCall { f: f.into(), key: key.map(str_value), value }
}

fn keys_value(keys: &[Vec<u8>]) -> HValue {
    HValue::List(keys.iter().map(|k| str_value(k)).collect())
}

fn limit_value(max: Option<usize>) -> HValue {
    HValue::Int(max.map_or(-1, |m| m as i64))
}

impl Multi {
    fn key(&self, rng: &mut ChaCha8Rng) -> Vec<u8> {
        named(b"a", rng.gen_range(0..self.n) as u64)
    }

    /// A bound below every key, on one, between two, or above them all.
    fn bound(&self, rng: &mut ChaCha8Rng) -> Vec<u8> {
        let n = self.n;
        match rng.gen_range(0..2 * n + 2) {
            0 => b"a".to_vec(),
            x if x <= n => named(b"a", (x - 1) as u64),
            x if x < 2 * n + 1 => {
                let mut b = named(b"a", (x - n - 1) as u64);
                b.push(b'5');
                b
            }
            _ => b"az".to_vec(),
        }
    }

    /// A limit: all (-1) half the time, else 0 to 3.
    fn max(rng: &mut ChaCha8Rng) -> Option<usize> {
        rng.gen_bool(0.5).then(|| rng.gen_range(0..4))
    }

    /// A prefix: all the `a` keys, one key's, or one that holds no key.
    fn prefix(&self, rng: &mut ChaCha8Rng) -> Vec<u8> {
        match rng.gen_range(0..4) {
            0 => b"a".to_vec(),
            1 => b"a9x".to_vec(),
            _ => self.key(rng),
        }
    }

    fn update(
        &self,
        rng: &mut ChaCha8Rng,
        weights: [u32; 4],
        unique: &dyn Fn(&[u8]) -> Vec<u8>,
        seen: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    ) -> (OpKind, RawCall) {
        let nothing = |request| OpKind::Multi { request, answer: Answer::Nothing };
        match pick(rng, &weights) {
            0 => {
                let members = rng.gen_range(1..=3);
                let mut updates = Vec::with_capacity(members);
                for m in 0..members {
                    let key = self.key(rng);
                    let value = unique(&[b'a' + m as u8]);
                    updates.push(match rng.gen_range(0..6) {
                        0 | 1 => Update::Set { key, value },
                        2 => Update::Delete { key },
                        3 => Update::Replace { key, value: rng.gen_bool(0.7).then_some(value) },
                        4 => Update::Assert { value: seen.get(&key).cloned().flatten(), key },
                        _ => Update::AssertExists { key },
                    });
                }
                let value = HValue::List(updates.iter().map(sequence_member).collect());
                let call = raw("sequence", None, value);
                (nothing(Request::Sequence { updates, synced: false }), call)
            }
            1 => {
                let prefix = self.prefix(rng);
                let call = raw("delete_prefix", Some(&prefix), HValue::Nil);
                (
                    OpKind::Multi {
                        request: Request::DeletePrefix { prefix },
                        answer: Answer::Count,
                    },
                    call,
                )
            }
            2 => {
                let key = self.key(rng);
                let wanted = rng.gen_bool(0.7).then(|| unique(b"r"));
                let call = raw("replace", Some(&key), opt_value(wanted.as_deref()));
                let request = Request::Replace { key, wanted };
                (OpKind::Multi { request, answer: Answer::Previous }, call)
            }
            _ => {
                let key = self.key(rng);
                let suffix = unique(b"+");
                let mut arg = key.clone();
                arg.push(0);
                arg.extend_from_slice(&suffix);
                let call = raw("append", Some(&key), str_value(&suffix));
                let request =
                    Request::UserFunction { name: "arakoon.append".into(), arg: Some(arg) };
                (nothing(request), call)
            }
        }
    }

    fn read(
        &self,
        rng: &mut ChaCha8Rng,
        weights: [u32; 9],
        seen: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    ) -> (OpKind, RawCall) {
        let c = Consistency::Consistent;
        let kind = pick(rng, &weights);
        let (request, answer, call) = match kind {
            0..=2 => {
                // The high bound is always drawn (an open one would read the `k` keys); the
                // low one is open one time in six.
                let reverse = kind == 2;
                let low = (!rng.gen_bool(1.0 / 6.0)).then(|| self.bound(rng));
                let low_inclusive = rng.gen_bool(0.5);
                let high = Some(self.bound(rng));
                let high_inclusive = rng.gen_bool(0.5);
                let max = Multi::max(rng);
                let range = if reverse {
                    Range {
                        first: high,
                        first_inclusive: high_inclusive,
                        last: low,
                        last_inclusive: low_inclusive,
                        max,
                    }
                } else {
                    Range {
                        first: low,
                        first_inclusive: low_inclusive,
                        last: high,
                        last_inclusive: high_inclusive,
                        max,
                    }
                };
                let value = HValue::Map(vec![
                    (str_value(b"first"), opt_value(range.first.as_deref())),
                    (str_value(b"first_inclusive"), HValue::Bool(range.first_inclusive)),
                    (str_value(b"last"), opt_value(range.last.as_deref())),
                    (str_value(b"last_inclusive"), HValue::Bool(range.last_inclusive)),
                    (str_value(b"max"), limit_value(range.max)),
                ]);
                match kind {
                    0 => (
                        Request::RangeEntries { c, range },
                        Answer::Entries,
                        raw("range_entries", None, value),
                    ),
                    1 => (Request::Range { c, range }, Answer::Keys, raw("range", None, value)),
                    _ => (
                        Request::RevRangeEntries { c, range },
                        Answer::Entries,
                        raw("rev_range_entries", None, value),
                    ),
                }
            }
            3 => {
                let prefix = self.prefix(rng);
                let max = Multi::max(rng);
                let call = raw("prefix_keys", Some(&prefix), limit_value(max));
                (Request::PrefixKeys { c, prefix, max }, Answer::Keys, call)
            }
            4 => {
                let key = self.key(rng);
                let call = raw("exists", Some(&key), HValue::Nil);
                (Request::Exists { c, key }, Answer::Bool, call)
            }
            5 | 6 => {
                let keys: Vec<Vec<u8>> = (0..rng.gen_range(1..=3)).map(|_| self.key(rng)).collect();
                if kind == 5 {
                    let call = raw("multi_get", None, keys_value(&keys));
                    (Request::MultiGet { c, keys }, Answer::Values, call)
                } else {
                    let call = raw("multi_get_option", None, keys_value(&keys));
                    (Request::MultiGetOption { c, keys }, Answer::OptionValues, call)
                }
            }
            7 => {
                // What this client last saw there: a random guess would always fail.
                let key = self.key(rng);
                let value = seen.get(&key).cloned().flatten();
                let call = raw("assert", Some(&key), opt_value(value.as_deref()));
                (Request::Assert { c, key, value }, Answer::Bool, call)
            }
            _ => {
                let key = self.key(rng);
                let call = raw("assert_exists", Some(&key), HValue::Nil);
                (Request::AssertExists { c, key }, Answer::Bool, call)
            }
        };
        (OpKind::Multi { request, answer }, call)
    }
}

/// A sequence member in the history's form: `[set k v]`, `[assert k v|nil]`, ...
fn sequence_member(u: &Update) -> HValue {
    let s = |b: &[u8]| str_value(b);
    HValue::List(match u {
        Update::Set { key, value } => vec![s(b"set"), s(key), s(value)],
        Update::Delete { key } => vec![s(b"delete"), s(key)],
        Update::Replace { key, value } => vec![s(b"replace"), s(key), opt_value(value.as_deref())],
        Update::Assert { key, value } => vec![s(b"assert"), s(key), opt_value(value.as_deref())],
        Update::AssertExists { key } => vec![s(b"assert_exists"), s(key)],
        // Never drawn into a sequence.
        _ => vec![s(b"unsupported")],
    })
}

/// What the history records for a call's result: its outcome and, for an answer the model
/// checks, the answer.
pub(super) fn outcome(kind: &OpKind, result: &OpResult) -> (Outcome, Option<HValue>) {
    let ok = |v: HValue| (Outcome::Ok, Some(v));
    let list = |items: Vec<HValue>| HValue::List(items);
    match (kind, result) {
        (_, OpResult::Unknown) => (Outcome::Unknown, None),
        // Never sent: certainly not carried out.
        (_, OpResult::Refused(_)) => (Outcome::Fail, None),
        // Refusals that answer the question.
        (OpKind::Get, OpResult::Fail(Rc::NotFound, _)) => ok(HValue::Nil),
        (OpKind::Multi { answer: Answer::Values, .. }, OpResult::Fail(Rc::NotFound, key)) => {
            ok(HValue::Map(vec![(str_value(b"missing"), str_value(key.as_bytes()))]))
        }
        (
            OpKind::Multi { answer: Answer::Bool, request },
            OpResult::Fail(Rc::AssertionFailed, _),
        ) if !matches!(request, Request::Exists { .. }) => ok(HValue::Bool(false)),
        (_, OpResult::Fail(rc, _)) => (outcome_of_refusal(*rc), None),
        (OpKind::Get | OpKind::TestAndSet { .. }, OpResult::Ok(p)) => {
            ok(opt_value(single(p).as_deref()))
        }
        (OpKind::Set(_) | OpKind::Delete, OpResult::Ok(_)) => (Outcome::Ok, None),
        (OpKind::Multi { answer, .. }, OpResult::Ok(p)) => match (answer, p) {
            (Answer::Nothing, _) => (Outcome::Ok, None),
            (Answer::Previous, p) => ok(opt_value(single(p).as_deref())),
            (Answer::Count, Payload::Int32(n)) => ok(HValue::Int(i64::from(*n))),
            (Answer::Count, Payload::Int64(n)) => ok(HValue::Int(*n)),
            (Answer::Bool, Payload::Bool(b)) => ok(HValue::Bool(*b)),
            (Answer::Bool, Payload::Unit) => ok(HValue::Bool(true)),
            (Answer::Values, Payload::Values(vs)) => {
                ok(list(vs.iter().map(|v| str_value(v)).collect()))
            }
            (Answer::OptionValues, Payload::OptionValues(vs)) => {
                ok(list(vs.iter().map(|v| opt_value(v.as_deref())).collect()))
            }
            (Answer::Keys, Payload::Keys(ks)) => {
                ok(list(ks.iter().map(|k| str_value(k)).collect()))
            }
            (Answer::Entries, Payload::Entries(es)) => {
                ok(list(es.iter().map(|(k, v)| list(vec![str_value(k), str_value(v)])).collect()))
            }
            // An answer of another shape: recorded as such, so that the check fails on it.
            (_, other) => ok(HValue::Other(format!("{other:?}"))),
        },
    }
}

/// A single value's answer: a string, an optional one, or nothing.
fn single(p: &Payload) -> Option<Vec<u8>> {
    match p {
        Payload::String(v) => Some(v.clone()),
        Payload::OptionString(v) => v.clone(),
        _ => None,
    }
}

/// What the client now knows of the keys it touched: what its next test_and_set or assert
/// expects.
pub(super) fn learn(
    seen: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    kind: &OpKind,
    key: &[u8],
    outcome: Outcome,
    output: Option<&HValue>,
) {
    if outcome != Outcome::Ok {
        return;
    }
    let value = |v: Option<&HValue>| match v {
        Some(HValue::Str(s)) => Some(s.clone().into_bytes()),
        _ => None,
    };
    match kind {
        OpKind::Get => {
            seen.insert(key.to_vec(), value(output));
        }
        OpKind::Set(v) => {
            seen.insert(key.to_vec(), Some(v.clone()));
        }
        OpKind::TestAndSet { expected, wanted } => {
            let before = value(output);
            let now = if before == *expected { Some(wanted.clone()) } else { before };
            seen.insert(key.to_vec(), now);
        }
        OpKind::Multi { request: Request::Sequence { updates, .. }, .. } => {
            for u in updates {
                match u {
                    Update::Set { key, value } => seen.insert(key.clone(), Some(value.clone())),
                    Update::Delete { key } => seen.insert(key.clone(), None),
                    Update::Replace { key, value } => seen.insert(key.clone(), value.clone()),
                    _ => None,
                };
            }
        }
        OpKind::Multi { request: Request::Replace { key, wanted }, .. } => {
            seen.insert(key.clone(), wanted.clone());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::BTreeSet;

    #[test]
    fn names_are_written_as_format_writes_them() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, 1 << 40, u64::MAX] {
            assert_eq!(named(b"k", n), format!("k{n}").into_bytes(), "{n}");
            assert_eq!(named(b"", n), n.to_string().into_bytes(), "{n}");
            assert_eq!(call_value(7, n, b"t"), format!("c7-{n}t").into_bytes(), "{n}");
        }
    }

    /// The default workload draws every kind, and range bounds below, on, between and above the
    /// stored keys with both flags, an open low bound, and limits of all, 0 and more.
    #[test]
    fn the_default_workload_draws_every_kind_and_every_kind_of_bound() {
        let cfg = SimConfig::default();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let seen = BTreeMap::new();
        let (mut kinds, mut bounds, mut flags, mut maxes) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        let mut members = BTreeSet::new();
        for op in 0..20_000 {
            let d = draw(&mut rng, &cfg, 0, op, &seen);
            kinds.insert(d.call.f.clone());
            if let OpKind::Multi { request, .. } = &d.kind {
                match request {
                    Request::Range { range, .. }
                    | Request::RangeEntries { range, .. }
                    | Request::RevRangeEntries { range, .. } => {
                        for b in [&range.first, &range.last] {
                            bounds.insert(match b.as_deref() {
                                None => "open",
                                Some(b"a") => "below",
                                Some(b"az") => "above",
                                Some(b) if b.len() == 2 => "on",
                                Some(_) => "between",
                            });
                        }
                        flags.insert((range.first_inclusive, range.last_inclusive));
                        maxes.insert(range.max.map_or(-1, |m| m as i64));
                    }
                    Request::Sequence { updates, .. } => {
                        members.extend(updates.iter().map(|u| u.name().to_string()))
                    }
                    _ => {}
                }
            }
        }
        let want = [
            "get",
            "set",
            "delete",
            "test_and_set",
            "sequence",
            "delete_prefix",
            "replace",
            "append",
            "range",
            "range_entries",
            "rev_range_entries",
            "prefix_keys",
            "exists",
            "multi_get",
            "multi_get_option",
            "assert",
            "assert_exists",
        ];
        assert_eq!(kinds, want.iter().map(|s| s.to_string()).collect(), "kinds drawn");
        assert_eq!(bounds, ["above", "below", "between", "on", "open"].into());
        assert_eq!(flags.len(), 4, "every pair of inclusive flags");
        assert_eq!(maxes, [-1, 0, 1, 2, 3].into());
        assert_eq!(members.len(), 5, "sequence members drawn: {members:?}");
    }
}
