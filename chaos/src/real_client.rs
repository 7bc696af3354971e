//! A drill's workload issued with the real client and recorded in the history, for the two tiers
//! that run the real client: turmoil (virtual time, one thread, a seed replays a run byte for
//! byte) and the sandbox (real processes, wall clock, tasks on several threads).
//!
//! What differs between them is only where a call and its answer go and which clock stamps
//! them; each tier says that with a [`Journal`]. Everything else — the draws from the seed,
//! the checker's form of each call, how a client error becomes `ok`, `fail` or `unknown`, the
//! questions that tell whether the nodes are in sync, how a run is judged — is here once, so
//! the two tiers' histories and verdicts mean the same thing. The draws are made in a fixed
//! order from the process's own RNG and nothing here reads a clock or iterates a hash map, so
//! the turmoil tier stays deterministic.

use crate::drill::{Condition, Drill, WorkloadSpec};
use crate::history::{
    multi_key_range, opt_value, outcome_of_refusal, range_as_reads, str_value, Space,
};
use arakoon_checker::import::RawCall;
use arakoon_checker::{Outcome, Value};
use arakoon_node::client::{Client, ClientError};
use arakoon_node::protocol::client::{Consistency, Payload, Reply, Request};
use arakoon_node::rc::Rc as ReturnCode;
use arakoon_node::server::env::Network;
use arakoon_node::value::Update;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::time::Duration;

/// The sequence keys `s0..s3`, which the sequences write and the ranges read.
const MULTI_KEYS: usize = 4;

/// Where a tier's operations are recorded and counted. Each event is stamped with the tier's
/// clock when it is handed over (virtual µs on turmoil, µs since the start on the sandbox).
pub trait Journal {
    /// Process `c` calls operation `op` now.
    fn call(&self, c: usize, op: u64, space: Space, raw: RawCall);
    /// Operation `op` of process `c` ended now with `outcome`: count it and record it.
    fn done(&self, c: usize, op: u64, outcome: Outcome, output: Option<Value>);
}

/// The operations of a workload, in the order of the mix's weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Get,
    Set,
    Delete,
    TestAndSet,
    Sequence,
    Range,
}

const OPS: [Op; 6] = [Op::Get, Op::Set, Op::Delete, Op::TestAndSet, Op::Sequence, Op::Range];

/// Whether a run met the drill's expectations, and the verdict line: the one judge of every
/// tier ([`crate::director::judge`]).
pub fn judge(drill: &Drill, broke: Option<String>, master_after_ms: Option<u64>) -> (bool, String) {
    let v = crate::director::judge(drill, broke, master_after_ms);
    (v.passed, v.verdict)
}

/// One process of the history: a client of the workload, or the final reader.
struct Process<'j, N: Network, J: Journal> {
    c: usize,
    client: Client<N>,
    rng: ChaCha8Rng,
    /// The last value this process saw per key: what its test_and_set expects.
    seen: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    journal: &'j J,
}

/// Client `c` of a workload: draws operations by the mix's weights and keys by its
/// distribution from `seed`, issues each with `client`, pauses a drawn time in `pause_us`
/// (min, max), and goes on while `go_on` says so.
pub async fn run_client<N: Network, J: Journal>(
    c: usize,
    client: Client<N>,
    workload: &WorkloadSpec,
    seed: u64,
    pause_us: (u64, u64),
    journal: &J,
    mut go_on: impl FnMut() -> bool,
) {
    let mut p = Process::new(c, client, seed, journal);
    let m = &workload.mix;
    let weights = [m.get, m.set, m.delete, m.test_and_set, m.sequence, m.range];
    let total: u32 = weights.iter().sum::<u32>().max(1);
    let mut op = 0u64;
    while go_on() {
        op += 1;
        let mut draw = p.rng.gen_range(0..total);
        let mut choice = 0;
        while choice < OPS.len() - 1 && draw >= weights[choice] {
            draw -= weights[choice];
            choice += 1;
        }
        let k = workload.key_distribution.pick(workload.keys, p.rng.gen::<f64>());
        let key = format!("k{k}").into_bytes();
        p.issue(op, OPS[choice], key, &format!("c{c}-{op}")).await;
        let pause = p.rng.gen_range(pause_us.0..=pause_us.1);
        tokio::time::sleep(Duration::from_micros(pause)).await;
    }
}

/// One consistent read of each of the `keys` keys and one range over the sequence keys, as
/// process `reader`, so that a lost acknowledged write shows in the history.
pub async fn final_reads<N: Network, J: Journal>(
    reader: usize,
    keys: usize,
    client: Client<N>,
    journal: &J,
) {
    // Reads draw nothing; the seed only fills the slot.
    let mut p = Process::new(reader, client, 0, journal);
    for (op, k) in (0..keys.max(1)).enumerate() {
        let key = format!("k{k}").into_bytes();
        p.issue(1_000_000 + op as u64, Op::Get, key, "").await;
    }
    p.issue(2_000_000, Op::Range, Vec::new(), "").await;
}

/// The last slot any node applied, as the nodes answer `client` (none if no node answers).
pub async fn committed_anywhere<N: Network>(client: &Client<N>) -> Option<u64> {
    let mut best = None;
    for k in 0..client.config().nodes.len() {
        if let Ok(Reply::Ok(Payload::Consistency(Consistency::AtLeast(i)))) =
            client.ask(k, &Request::GetTxid).await
        {
            best = best.max(Some(i));
        }
    }
    best
}

/// Whether every node answers `GetTxid` now, and for `all_in_sync` has applied `target` (the
/// last slot committed anywhere when the wait began); for `all_up` an answer is enough.
pub async fn nodes_answer<N: Network>(
    client: &Client<N>,
    condition: Condition,
    target: Option<u64>,
) -> bool {
    for k in 0..client.config().nodes.len() {
        match client.ask(k, &Request::GetTxid).await {
            Ok(Reply::Ok(Payload::Consistency(Consistency::AtLeast(i)))) => {
                if condition == Condition::AllInSync && Some(i) < target {
                    return false;
                }
            }
            Ok(_) if condition == Condition::AllUp || target.is_none() => {}
            _ => return false,
        }
    }
    true
}

impl<'j, N: Network, J: Journal> Process<'j, N, J> {
    fn new(c: usize, client: Client<N>, seed: u64, journal: &'j J) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(seed);
        Process { c, client, rng, seen: BTreeMap::new(), journal }
    }

    /// Issues operation `op` of kind `kind` on `key` (a written value is `unique_base` and a
    /// tag) and records its call and outcome.
    async fn issue(&mut self, op: u64, kind: Op, key: Vec<u8>, unique_base: &str) {
        let (c, journal) = (self.c, self.journal);
        let unique = |tag: &str| format!("{unique_base}{tag}").into_bytes();
        let call = |space: Space, raw: RawCall| journal.call(c, op, space, raw);
        let kv = |f: &str, value: Value| RawCall { f: f.into(), key: Some(str_value(&key)), value };
        let client = &mut self.client;
        let seen = &mut self.seen;
        let result: Result<Option<Value>, ClientError> = match kind {
            Op::Get => {
                call(Space::Kv, kv("get", Value::Nil));
                match client.get(&key).await {
                    Ok(v) => {
                        seen.insert(key.clone(), Some(v.clone()));
                        Ok(Some(str_value(&v)))
                    }
                    Err(ClientError::Failed { rc: ReturnCode::NotFound, .. }) => {
                        seen.insert(key.clone(), None);
                        Ok(Some(Value::Nil))
                    }
                    Err(e) => Err(e),
                }
            }
            Op::Set => {
                let v = unique("");
                call(Space::Kv, kv("set", str_value(&v)));
                let r = client.set(&key, &v).await.map(|_| None);
                if r.is_ok() {
                    seen.insert(key.clone(), Some(v));
                }
                r
            }
            Op::Delete => {
                call(Space::Kv, kv("delete", Value::Nil));
                client.delete(&key).await.map(|_| None)
            }
            Op::TestAndSet => {
                let expected = seen.get(&key).cloned().flatten();
                let wanted = unique("t");
                let value = Value::List(vec![opt_value(expected.as_deref()), str_value(&wanted)]);
                call(Space::Kv, kv("test_and_set", value));
                client
                    .test_and_set(&key, expected.as_deref(), Some(&wanted))
                    .await
                    .map(|before| Some(opt_value(before.as_deref())))
            }
            Op::Sequence => {
                let rng = &mut self.rng;
                let a = rng.gen_range(0..MULTI_KEYS);
                let b = (a + rng.gen_range(1..MULTI_KEYS)) % MULTI_KEYS;
                let (ka, kb) = (format!("s{a}").into_bytes(), format!("s{b}").into_bytes());
                let (va, vb) = (unique("a"), unique("b"));
                let (second, raw_second) = if rng.gen_bool(0.5) {
                    let raw = Value::List(vec![str_value(b"delete"), str_value(&kb)]);
                    (Update::Delete { key: kb }, raw)
                } else {
                    let raw = Value::List(vec![str_value(b"set"), str_value(&kb), str_value(&vb)]);
                    (Update::Set { key: kb, value: vb }, raw)
                };
                let raw = Value::List(vec![
                    Value::List(vec![str_value(b"set"), str_value(&ka), str_value(&va)]),
                    raw_second,
                ]);
                call(Space::Multi, RawCall { f: "sequence".into(), key: None, value: raw });
                let updates = vec![Update::Set { key: ka, value: va }, second];
                client.sequence(updates, false).await.map(|_| None)
            }
            Op::Range => {
                let reads = (0..MULTI_KEYS)
                    .map(|k| {
                        let key = format!("s{k}");
                        Value::List(vec![str_value(b"read"), str_value(key.as_bytes()), Value::Nil])
                    })
                    .collect();
                call(
                    Space::Multi,
                    RawCall { f: "txn".into(), key: None, value: Value::List(reads) },
                );
                client
                    .range_entries(Consistency::Consistent, multi_key_range())
                    .await
                    .map(|entries| Some(range_as_reads(&entries, MULTI_KEYS)))
            }
        };
        let (outcome, output) = match result {
            Ok(out) => (Outcome::Ok, out),
            Err(ClientError::Failed { rc, .. }) if outcome_of_refusal(rc) == Outcome::Unknown => {
                (Outcome::Unknown, None)
            }
            // An answer of the wrong kind counts as a refusal, as it did when it came as
            // unknown_failure.
            Err(ClientError::Failed { .. })
            | Err(ClientError::NoMaster(_))
            | Err(ClientError::Unexpected { .. }) => (Outcome::Fail, None),
            Err(ClientError::Unknown(_)) => (Outcome::Unknown, None),
        };
        journal.done(c, op, outcome, output);
    }
}
