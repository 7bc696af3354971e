//! The soak's clients: one connection each, a mixed load drawn from the seed, and a ledger of
//! every key the client wrote, so that a write it was told succeeded and then cannot find is
//! seen, during the run (a consistent get, a delete) and in the read-back at the end.
//!
//! Each client writes only fresh keys under a prefix of its own (`soak/007/000000000042`): no
//! other client touches them, so the ledger alone says what each key must hold. A key's value
//! is a function of the client, the key's number and its length ([`value`]); the ledger keeps
//! the length and the key's state, never the bytes. An update whose outcome is unknown (a
//! timeout, the master gone) leaves its keys `Maybe`: either outcome is accepted.

use arakoon_node::client::{Client, ClientConfig, ClientError};
use arakoon_node::protocol::client::Consistency;
use arakoon_node::rc::Rc as ReturnCode;
use arakoon_node::store::Range;
use arakoon_node::value::Update;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The operations of the mix, with their weights (out of 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Set,
    Get,
    Delete,
    Range,
    RangeEntries,
    Sequence,
}

impl OpKind {
    pub const ALL: [OpKind; 6] = [
        OpKind::Set,
        OpKind::Get,
        OpKind::Delete,
        OpKind::Range,
        OpKind::RangeEntries,
        OpKind::Sequence,
    ];
    const WEIGHTS: [u32; 6] = [30, 25, 15, 10, 10, 10];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Set => "set",
            OpKind::Get => "get",
            OpKind::Delete => "delete",
            OpKind::Range => "range",
            OpKind::RangeEntries => "range_entries",
            OpKind::Sequence => "sequence",
        }
    }

    fn draw(rng: &mut ChaCha8Rng) -> OpKind {
        let mut x = rng.gen_range(0..Self::WEIGHTS.iter().sum::<u32>());
        for (k, w) in Self::ALL.iter().zip(Self::WEIGHTS) {
            if x < w {
                return *k;
            }
            x -= w;
        }
        OpKind::Set
    }
}

/// The most keys a `range` asks for.
pub const RANGE_KEYS_MAX: usize = 100;
/// The most bytes of values a `range_entries` asks for (its `max` is this over the largest
/// value), well under the node's `reply_bytes_max`.
pub const RANGE_ENTRIES_BYTES_MAX: usize = 4 << 20;
/// The most keys a client's ledger tracks (about 40 bytes each); later keys are written but
/// not checked, and counted.
pub const LEDGER_KEYS_MAX: usize = 1 << 21;
/// The smallest value written.
pub const VALUE_BYTES_MIN: usize = 16;

/// What the clients do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadSpec {
    pub clients: usize,
    /// Values are drawn from [`VALUE_BYTES_MIN`] to this many bytes, evenly over the powers of
    /// two (as many small values as large ones).
    pub value_bytes_max: usize,
    /// A client pauses between 0 and this many µs after each answer.
    pub pause_us_max: u64,
}

impl WorkloadSpec {
    /// The `max` of a `range_entries`.
    pub fn entries_max(&self) -> usize {
        (RANGE_ENTRIES_BYTES_MAX / self.value_bytes_max.max(1)).clamp(1, RANGE_KEYS_MAX)
    }
}

/// Operations done, per kind, shared by every client.
#[derive(Debug, Default)]
pub struct Tally {
    ok: [AtomicU64; 6],
    failed: [AtomicU64; 6],
    unknown: [AtomicU64; 6],
}

/// One kind's count in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpCount {
    pub kind: OpKind,
    pub ok: u64,
    /// Refused by the cluster, or no master found: the operation did not take effect.
    pub failed: u64,
    /// An update whose outcome is unknown.
    pub unknown: u64,
}

impl Tally {
    fn count(&self, kind: OpKind, outcome: Outcome) {
        let k = kind as usize;
        let counter = match outcome {
            Outcome::Ok => &self.ok[k],
            Outcome::Failed => &self.failed[k],
            Outcome::Unknown => &self.unknown[k],
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Operations so far: ok, failed, unknown.
    pub fn totals(&self) -> (u64, u64, u64) {
        let sum = |a: &[AtomicU64; 6]| a.iter().map(|x| x.load(Relaxed)).sum();
        (sum(&self.ok), sum(&self.failed), sum(&self.unknown))
    }

    pub fn counts(&self) -> Vec<OpCount> {
        OpKind::ALL
            .iter()
            .map(|&kind| {
                let k = kind as usize;
                OpCount {
                    kind,
                    ok: self.ok[k].load(Relaxed),
                    failed: self.failed[k].load(Relaxed),
                    unknown: self.unknown[k].load(Relaxed),
                }
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Failed,
    Unknown,
}

/// How an update is counted: refused or without a master is failed; the client's unknown
/// outcome is unknown.
fn update_outcome<T>(r: &Result<T, ClientError>) -> Outcome {
    match r {
        Ok(_) => Outcome::Ok,
        Err(ClientError::Failed { .. } | ClientError::NoMaster(_)) => Outcome::Failed,
        Err(ClientError::Unknown(_) | ClientError::Unexpected { .. }) => Outcome::Unknown,
    }
}

/// What an update left its keys as. Only a node's answer says for sure: acknowledged, or
/// refused (not applied). Anything else, even no master found, is taken as maybe applied, so
/// that the read-back never blames the cluster for the client's doubt.
fn state_after<T>(r: &Result<T, ClientError>) -> KeyState {
    match r {
        Ok(_) => KeyState::Present,
        Err(ClientError::Failed { .. }) => KeyState::Absent,
        Err(_) => KeyState::Maybe,
    }
}

/// What a key must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Acknowledged: present with its value.
    Present,
    /// Never written, or its delete acknowledged.
    Absent,
    /// Its last update's outcome is unknown: present with its value, or absent.
    Maybe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    len: u32,
    state: KeyState,
}

/// A client's keys and what each must hold.
#[derive(Debug, Clone)]
pub struct Ledger {
    c: usize,
    entries: BTreeMap<u64, Entry>,
    /// The keys known present, for gets and deletes to pick from.
    present: Vec<u64>,
    next: u64,
    /// Keys written beyond [`LEDGER_KEYS_MAX`], not tracked.
    pub untracked: u64,
    /// What contradicted an acknowledged write while the run went on (bounded, see
    /// [`Violations`]).
    pub violations: Violations,
}

/// Contradictions found: the first few in words, and how many in all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Violations {
    pub count: u64,
    pub first: Vec<String>,
}

/// How many contradictions are kept in words.
const VIOLATIONS_SHOWN: usize = 20;

impl Violations {
    pub fn add(&mut self, what: String) {
        self.count += 1;
        if self.first.len() < VIOLATIONS_SHOWN {
            self.first.push(what);
        }
    }

    pub fn merge(&mut self, other: Violations) {
        self.count += other.count;
        for w in other.first {
            if self.first.len() < VIOLATIONS_SHOWN {
                self.first.push(w);
            }
        }
    }
}

/// Client `c`'s key prefix.
pub fn prefix(c: usize) -> Vec<u8> {
    format!("soak/{c:03}/").into_bytes()
}

/// Key `n` of client `c`.
pub fn key(c: usize, n: u64) -> Vec<u8> {
    format!("soak/{c:03}/{n:012}").into_bytes()
}

/// The value of key `n` of client `c` with `len` bytes: its name, then bytes of a generator
/// seeded by both, so that a value read under another key shows.
pub fn value(c: usize, n: u64, len: usize) -> Vec<u8> {
    let mut v = format!("c{c}n{n}:").into_bytes();
    let mut x = (c as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ n.wrapping_add(1);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(b'a' + (x % 26) as u8);
    }
    v.truncate(len);
    v
}

/// A value length: a power of two drawn evenly from 16 up to `max`, then a length up to it.
fn draw_len(rng: &mut ChaCha8Rng, max: usize) -> usize {
    let max = max.max(VALUE_BYTES_MIN);
    let top = usize::BITS - 1 - max.leading_zeros();
    let bits = rng.gen_range(4..=top.max(4));
    let high = (1usize << bits).min(max);
    rng.gen_range((high / 2).max(VALUE_BYTES_MIN).min(high)..=high)
}

impl Ledger {
    pub fn new(c: usize) -> Ledger {
        Ledger {
            c,
            entries: BTreeMap::new(),
            present: Vec::new(),
            next: 0,
            untracked: 0,
            violations: Violations::default(),
        }
    }

    /// Keys tracked.
    pub fn keys(&self) -> usize {
        self.entries.len()
    }

    /// A fresh key number.
    fn fresh(&mut self) -> u64 {
        self.next += 1;
        self.next - 1
    }

    /// Records what an update left fresh key `n` of `len` bytes as.
    fn written(&mut self, n: u64, len: usize, state: KeyState) {
        if self.entries.len() >= LEDGER_KEYS_MAX {
            self.untracked += 1;
            return;
        }
        self.entries.insert(n, Entry { len: len as u32, state });
        if state == KeyState::Present {
            self.present.push(n);
        }
    }

    /// Takes a present key out of `present` (the caller deletes it).
    fn take_present(&mut self, rng: &mut ChaCha8Rng) -> Option<u64> {
        if self.present.is_empty() {
            return None;
        }
        let i = rng.gen_range(0..self.present.len());
        Some(self.present.swap_remove(i))
    }

    /// Records what a delete of present key `n` left it as (present: the delete was refused).
    fn deleted(&mut self, n: u64, state: KeyState) {
        let Some(e) = self.entries.get_mut(&n) else { return };
        e.state = state;
        if state == KeyState::Present {
            self.present.push(n);
        }
    }

    fn expected(&self, n: u64) -> Option<Entry> {
        self.entries.get(&n).copied()
    }

    /// Checks one page of the final read-back (`entries` in key order); `seen` collects the
    /// numbers found.
    fn check_page(&mut self, entries: &[(Vec<u8>, Vec<u8>)], seen: &mut Vec<u64>) {
        let prefix = prefix(self.c);
        for (k, v) in entries {
            let shown = String::from_utf8_lossy(k).into_owned();
            let n = k
                .strip_prefix(prefix.as_slice())
                .and_then(|rest| std::str::from_utf8(rest).ok()?.parse::<u64>().ok());
            let Some(n) = n else {
                self.violations.add(format!("{shown}: a key no client wrote"));
                continue;
            };
            seen.push(n);
            match self.expected(n) {
                None if n >= self.next => {
                    self.violations.add(format!("{shown}: a key this client never wrote"));
                }
                None => {} // written beyond the ledger's bound: not tracked
                Some(Entry { state: KeyState::Absent, .. }) => self.violations.add(format!(
                    "{shown}: present, but its delete was acknowledged or its write refused"
                )),
                Some(Entry { len, .. }) if *v != value(self.c, n, len as usize) => {
                    self.violations.add(format!(
                        "{shown}: holds {} bytes that are not the value written ({len} bytes)",
                        v.len()
                    ));
                }
                Some(_) => {}
            }
        }
    }

    /// After the read-back: every key acknowledged present must have been seen.
    fn check_missing(&mut self, seen: &[u64]) -> u64 {
        let mut missing = Vec::new();
        let mut s = seen.to_vec();
        s.sort_unstable();
        for (n, e) in &self.entries {
            if e.state == KeyState::Present && s.binary_search(n).is_err() {
                missing.push(*n);
            }
        }
        for n in &missing {
            let shown = String::from_utf8_lossy(&key(self.c, *n)).into_owned();
            self.violations.add(format!("{shown}: acknowledged, and gone"));
        }
        missing.len() as u64
    }
}

/// One client's run: operations drawn from `seed` until `stop`, counted in `tally`; returns its
/// ledger (what it wrote, and what contradicted it meanwhile).
pub async fn client_loop(
    c: usize,
    cfg: ClientConfig,
    spec: WorkloadSpec,
    seed: u64,
    tally: &Tally,
    stop: &AtomicBool,
) -> Ledger {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut client = Client::new(cfg);
    let mut ledger = Ledger::new(c);
    while !stop.load(Relaxed) {
        let mut kind = OpKind::draw(&mut rng);
        if ledger.present.is_empty() && matches!(kind, OpKind::Get | OpKind::Delete) {
            // Nothing acknowledged yet to read or delete.
            kind = OpKind::Set;
        }
        let outcome = one_op(kind, &mut client, &mut ledger, &spec, &mut rng).await;
        tally.count(kind, outcome);
        let pause = rng.gen_range(0..=spec.pause_us_max);
        if pause > 0 {
            tokio::time::sleep(Duration::from_micros(pause)).await;
        }
    }
    ledger
}

async fn one_op(
    kind: OpKind,
    client: &mut Client,
    ledger: &mut Ledger,
    spec: &WorkloadSpec,
    rng: &mut ChaCha8Rng,
) -> Outcome {
    let c = ledger.c;
    let read = |r: Result<(), ClientError>| if r.is_ok() { Outcome::Ok } else { Outcome::Failed };
    match kind {
        OpKind::Set => {
            let (n, len) = (ledger.fresh(), draw_len(rng, spec.value_bytes_max));
            let r = client.set(&key(c, n), &value(c, n, len)).await;
            ledger.written(n, len, state_after(&r));
            update_outcome(&r)
        }
        OpKind::Get => {
            let Some(&n) = ledger.present.get(rng.gen_range(0..ledger.present.len().max(1))) else {
                return Outcome::Failed;
            };
            let shown = String::from_utf8_lossy(&key(c, n)).into_owned();
            let len = ledger.expected(n).map_or(0, |e| e.len as usize);
            match client.get(&key(c, n)).await {
                Ok(v) if v == value(c, n, len) => Outcome::Ok,
                Ok(v) => {
                    ledger.violations.add(format!(
                        "{shown}: a consistent get read {} bytes that are not the value \
                         acknowledged ({len} bytes)",
                        v.len()
                    ));
                    Outcome::Ok
                }
                Err(ClientError::Failed { rc: ReturnCode::NotFound, .. }) => {
                    ledger.violations.add(format!(
                        "{shown}: acknowledged, and a consistent get found no such key"
                    ));
                    Outcome::Ok
                }
                Err(_) => Outcome::Failed,
            }
        }
        OpKind::Delete => {
            let Some(n) = ledger.take_present(rng) else { return Outcome::Failed };
            let r = client.delete(&key(c, n)).await;
            if let Err(ClientError::Failed { rc: ReturnCode::NotFound, .. }) = r {
                let shown = String::from_utf8_lossy(&key(c, n)).into_owned();
                ledger
                    .violations
                    .add(format!("{shown}: acknowledged, and its delete found no such key"));
                ledger.deleted(n, KeyState::Absent);
                return Outcome::Failed;
            }
            ledger.deleted(n, delete_state(&r));
            update_outcome(&r)
        }
        OpKind::Range | OpKind::RangeEntries => {
            let from = rng.gen_range(0..=ledger.next);
            let max = if kind == OpKind::Range { RANGE_KEYS_MAX } else { spec.entries_max() };
            let range = Range {
                first: Some(key(c, from)),
                first_inclusive: true,
                last: Some(prefix_end(c)),
                last_inclusive: false,
                max: Some(max),
            };
            let r = if kind == OpKind::Range {
                client.range(Consistency::Consistent, range).await.map(drop)
            } else {
                client.range_entries(Consistency::Consistent, range).await.map(drop)
            };
            read(r)
        }
        OpKind::Sequence => {
            let mut updates = Vec::new();
            let mut fresh = Vec::new();
            for _ in 0..rng.gen_range(2..=4) {
                let (n, len) = (ledger.fresh(), draw_len(rng, spec.value_bytes_max));
                updates.push(Update::Set { key: key(c, n), value: value(c, n, len) });
                fresh.push((n, len));
            }
            let gone = if rng.gen_bool(0.5) { ledger.take_present(rng) } else { None };
            if let Some(n) = gone {
                updates.push(Update::Delete { key: key(c, n) });
            }
            let r = client.sequence(updates, false).await;
            for (n, len) in fresh {
                ledger.written(n, len, state_after(&r));
            }
            if let Some(n) = gone {
                ledger.deleted(n, delete_state(&r));
            }
            update_outcome(&r)
        }
    }
}

/// What a delete of a present key left it as: gone, still there (refused), or either.
fn delete_state<T>(r: &Result<T, ClientError>) -> KeyState {
    match state_after(r) {
        KeyState::Present => KeyState::Absent,
        KeyState::Absent => KeyState::Present,
        KeyState::Maybe => KeyState::Maybe,
    }
}

/// The first key after client `c`'s keys (`soak/007/` ends in `/`; `0` follows it).
fn prefix_end(c: usize) -> Vec<u8> {
    let mut p = prefix(c);
    if let Some(last) = p.last_mut() {
        *last += 1;
    }
    p
}

/// What the final read-back found for one client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadBack {
    pub keys_read: u64,
    /// Acknowledged keys not found.
    pub missing: u64,
}

/// Reads every key of the client's prefix back in pages of `page` entries and checks each
/// against the ledger; contradictions go into the ledger's violations.
pub async fn read_back(
    client: &mut Client,
    ledger: &mut Ledger,
    page: usize,
) -> Result<ReadBack, ClientError> {
    let c = ledger.c;
    let mut first = prefix(c);
    let mut first_inclusive = true;
    let mut seen = Vec::new();
    loop {
        let range = Range {
            first: Some(first.clone()),
            first_inclusive,
            last: Some(prefix_end(c)),
            last_inclusive: false,
            max: Some(page.max(1)),
        };
        let entries = client.range_entries(Consistency::Consistent, range).await?;
        ledger.check_page(&entries, &mut seen);
        match entries.last() {
            Some((k, _)) if entries.len() >= page.max(1) => {
                first = k.clone();
                first_inclusive = false;
            }
            _ => break,
        }
    }
    let missing = ledger.check_missing(&seen);
    Ok(ReadBack { keys_read: seen.len() as u64, missing })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_a_function_of_client_key_and_length() {
        assert_eq!(value(1, 2, 40), value(1, 2, 40));
        assert_ne!(value(1, 2, 40), value(2, 1, 40));
        assert_eq!(value(3, 4, 5).len(), 5);
        assert_eq!(value(3, 4, 100_000).len(), 100_000);
        assert!(value(3, 4, 40).starts_with(b"c3n4:"));
        assert!(key(7, 42) > prefix(7) && key(7, 42) < prefix_end(7));
        assert!(key(7, 9) < key(7, 10), "keys sort by number");
    }

    #[test]
    fn lengths_span_the_powers_of_two_up_to_the_max() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let lens: Vec<usize> = (0..10_000).map(|_| draw_len(&mut rng, 65_536)).collect();
        assert!(lens.iter().all(|&l| (VALUE_BYTES_MIN..=65_536).contains(&l)));
        assert!(lens.iter().filter(|&&l| l <= 64).count() > 1000, "small values");
        assert!(lens.iter().filter(|&&l| l > 32_768).count() > 500, "large values");
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        assert!((0..100).all(|_| draw_len(&mut rng, 16) == 16));
        assert!((0..100).all(|_| draw_len(&mut rng, 20) <= 20));
    }

    #[test]
    fn the_mix_draws_every_kind() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut seen = [0u32; 6];
        for _ in 0..1000 {
            seen[OpKind::draw(&mut rng) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
    }

    fn page(ledger: &Ledger, ns: &[u64]) -> Vec<(Vec<u8>, Vec<u8>)> {
        ns.iter()
            .map(|&n| {
                let len = ledger.expected(n).map_or(10, |e| e.len as usize);
                (key(ledger.c, n), value(ledger.c, n, len))
            })
            .collect()
    }

    /// The read-back rules: an acknowledged key must be there with its value; a deleted or
    /// refused one must not; an unknown one may be either.
    #[test]
    fn the_read_back_finds_lost_resurrected_and_wrong_values_and_accepts_unknowns() {
        let mut l = Ledger::new(2);
        for (state, len) in [
            (KeyState::Present, 20), // 0
            (KeyState::Present, 30), // 1, then lost
            (KeyState::Absent, 40),  // 2 refused
            (KeyState::Maybe, 50),   // 3 maybe, absent
            (KeyState::Maybe, 60),   // 4 maybe, present
            (KeyState::Present, 70), // 5, deleted
        ] {
            let n = l.fresh();
            l.written(n, len, state);
        }
        l.present.retain(|&n| n != 5);
        l.deleted(5, KeyState::Absent);
        let mut seen = Vec::new();
        l.check_page(&page(&l, &[0, 4]), &mut seen);
        assert_eq!(l.violations.count, 0, "{:?}", l.violations);
        assert_eq!(l.check_missing(&seen), 1);
        assert!(l.violations.first[0].contains("soak/002/000000000001: acknowledged, and gone"));

        let mut l2 = l.clone();
        l2.violations = Violations::default();
        let mut seen = Vec::new();
        let mut wrong = page(&l2, &[0, 1, 2, 5]);
        wrong[0].1 = b"not it".to_vec();
        l2.check_page(&wrong, &mut seen);
        assert_eq!(l2.check_missing(&seen), 0);
        let all = l2.violations.first.join("\n");
        assert_eq!(l2.violations.count, 3, "{all}");
        assert!(all.contains("000000000000: holds 6 bytes"), "{all}");
        assert!(all.contains("000000000002: present, but"), "{all}");
        assert!(all.contains("000000000005: present, but"), "{all}");

        let mut l3 = Ledger::new(2);
        l3.check_page(&[(b"soak/002/000000000009".to_vec(), vec![])], &mut Vec::new());
        l3.check_page(&[(b"soak/002/x".to_vec(), vec![])], &mut Vec::new());
        assert_eq!(l3.violations.count, 2, "{:?}", l3.violations);
    }

    #[test]
    fn violations_keep_the_first_few_and_count_all() {
        let mut v = Violations::default();
        for k in 0..30 {
            v.add(format!("v{k}"));
        }
        let mut w = Violations::default();
        w.add("w".into());
        v.merge(w);
        assert_eq!(v.count, 31);
        assert_eq!(v.first.len(), VIOLATIONS_SHOWN);
        assert_eq!(v.first[0], "v0");
    }

    use arakoon_node::client::NoMaster;

    #[test]
    fn a_delete_that_fails_keeps_the_key_present() {
        let mut l = Ledger::new(0);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        l.written(0, 20, KeyState::Present);
        l.next = 1;
        let n = l.take_present(&mut rng).unwrap();
        assert!(l.take_present(&mut rng).is_none());
        let refused = ClientError::Failed { rc: ReturnCode::AssertionFailed, message: vec![] };
        l.deleted(n, delete_state::<()>(&Err(refused)));
        assert_eq!(l.present, vec![0]);
        let n = l.take_present(&mut rng).unwrap();
        l.deleted(n, delete_state::<()>(&Err(ClientError::NoMaster(NoMaster::NoAttempt))));
        assert_eq!(l.expected(0).unwrap().state, KeyState::Maybe);
        assert!(l.present.is_empty());
    }
}
