//! The clients' history, recorded in the checker's own form and checked at the end of a run.
//!
//! Two histories are kept apart so that each is checked with the model that fits it: single-key
//! operations (get, set, delete, test_and_set) on the `k*` keys, checked per key; the operations
//! that span keys or read their order on the `a*` keys of the tier-A world (`s*` for the real
//! client), checked as one map with the multi-key model (see `arakoon_sim::world::workload`). Keeping the
//! key spaces apart is what makes the two checks independent: no operation touches both.
//!
//! Outcomes follow the client protocol: an answer is `ok`; a refusal that guarantees nothing
//! happened (not_master, a failed sequence, a full queue) is `fail`; a refusal that answers the
//! question (a get's not_found, an assert's assertion_failed) is an `ok` observation; a timeout,
//! and `no_longer_master` (the master lost its lease with the update in flight), are `unknown`.

use arakoon_checker::import::{write_jsonl, RawCall, RawHistory};
use arakoon_checker::{check_raw, Budget, History, ModelKind, Operation, Outcome, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Which history an operation belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// Single-key operations on `k*` keys: the per-key model.
    Kv,
    /// Sequences and ranges on `s*` keys: the multi-key model.
    Multi,
}

type RawOp = Operation<RawCall, Value>;

#[derive(Debug, Default)]
pub struct Recorder {
    kv: Vec<RawOp>,
    multi: Vec<RawOp>,
    open: BTreeMap<(usize, u64), (Space, usize)>,
    clients: usize,
    /// The process id of each client: as in Jepsen, a client whose operation ended unknown goes
    /// on as a new process (its old one may still be acting), so no process has two open calls.
    process: Vec<u64>,
}

/// A recorded history the checker refuses (a call without its return, two open calls of one
/// process): a bug of the recorder, named with the history it is in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{which} history: {source}")]
pub struct RecordError {
    /// "kv" or "sequence".
    pub which: &'static str,
    pub source: arakoon_checker::HistoryError,
}

/// The range read over the `s*` keys (the sequence history's keys).
pub fn multi_key_range() -> arakoon_node::store::Range {
    arakoon_node::store::Range {
        first: Some(b"s".to_vec()),
        first_inclusive: true,
        last: Some(b"t".to_vec()),
        last_inclusive: false,
        max: None,
    }
}

/// A range read over `s0..s{n-1}` as the transaction of reads the multi-key model checks: every
/// key read, present or absent.
pub fn range_as_reads(entries: &[(Vec<u8>, Vec<u8>)], n: usize) -> Value {
    let found: BTreeMap<&[u8], &[u8]> =
        entries.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
    Value::List(
        (0..n)
            .map(|k| {
                let key = format!("s{k}");
                let value = opt_value(found.get(key.as_bytes()).copied());
                Value::List(vec![str_value(b"read"), str_value(key.as_bytes()), value])
            })
            .collect(),
    )
}

/// What a refusal means for the history: `no_longer_master` and `going_down` leave the update
/// possibly chosen (unknown); every other refusal guarantees nothing happened (fail).
pub fn outcome_of_refusal(rc: arakoon_node::rc::Rc) -> Outcome {
    use arakoon_node::rc::Rc;
    match rc {
        Rc::NoLongerMaster | Rc::GoingDown => Outcome::Unknown,
        _ => Outcome::Fail,
    }
}

/// One operation, as a report's timeline shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpSummary {
    pub process: u64,
    /// Simulated µs.
    pub call_us: u64,
    pub ret_us: Option<u64>,
    pub label: String,
    /// "ok", "fail" or "unknown".
    pub outcome: &'static str,
}

/// What a check of both histories found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linearizability {
    Linearizable,
    /// The budget ran out: no verdict.
    Unknown(String),
    Violated(Violated),
}

/// Why a check did not find the histories linearizable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violated {
    /// The recorder's histories are not well formed (a bug of the recorder).
    #[error("{0}")]
    Unrecorded(RecordError),
    /// The checker refused `history` ("single-key", "sequence") before searching it.
    #[error("{history} history: {source}")]
    Unchecked { history: &'static str, source: arakoon_checker::HistoryError },
    /// No linearization of `history` exists: the checker's explanation.
    #[error("{history} history:\n{explanation}")]
    NotLinearizable { history: &'static str, explanation: String },
}

pub fn str_value(bytes: &[u8]) -> Value {
    Value::Str(String::from_utf8_lossy(bytes).into_owned())
}

pub fn opt_value(bytes: Option<&[u8]>) -> Value {
    bytes.map_or(Value::Nil, str_value)
}

impl Recorder {
    pub fn new(clients: usize) -> Recorder {
        Recorder { clients, process: (0..clients as u64).collect(), ..Recorder::default() }
    }

    /// Client `client` calls operation `op` at `now_us`.
    pub fn call(&mut self, client: usize, op: u64, now_us: u64, space: Space, call: RawCall) {
        let process = self.process[client];
        let ops = self.ops_mut(space);
        ops.push(Operation {
            process,
            call: now_us,
            ret: None,
            input: call,
            output: None,
            outcome: Outcome::Unknown,
        });
        let index = ops.len() - 1;
        self.open.insert((client, op), (space, index));
    }

    /// Operation `op` of `client` completed at `now_us`.
    pub fn done(
        &mut self,
        client: usize,
        op: u64,
        now_us: u64,
        outcome: Outcome,
        output: Option<Value>,
    ) {
        let Some((space, index)) = self.open.remove(&(client, op)) else { return };
        let record = &mut self.ops_mut(space)[index];
        record.outcome = outcome;
        if outcome != Outcome::Unknown {
            record.ret = Some(now_us);
            record.output = output;
        } else {
            self.process[client] += self.clients as u64;
        }
    }

    fn ops_mut(&mut self, space: Space) -> &mut Vec<RawOp> {
        match space {
            Space::Kv => &mut self.kv,
            Space::Multi => &mut self.multi,
        }
    }

    /// Every operation, single-key and sequence ones, by call time.
    pub fn summaries(&self) -> Vec<OpSummary> {
        let mut all: Vec<OpSummary> = self
            .kv
            .iter()
            .chain(&self.multi)
            .map(|op| {
                let key = op.input.key.as_ref().map_or(String::new(), |k| format!(" {k}"));
                let out = op.output.as_ref().map_or(String::new(), |o| format!(" -> {o}"));
                OpSummary {
                    process: op.process,
                    call_us: op.call,
                    ret_us: op.ret,
                    label: format!("{}{key} {}{out}", op.input.f, op.input.value),
                    outcome: match op.outcome {
                        Outcome::Ok => "ok",
                        Outcome::Fail => "fail",
                        Outcome::Unknown => "unknown",
                    },
                }
            })
            .collect();
        all.sort_by_key(|o| (o.call_us, o.process));
        all
    }

    pub fn len(&self) -> usize {
        self.kv.len() + self.multi.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn histories(&self) -> Result<(RawHistory, RawHistory), RecordError> {
        Recorder { kv: self.kv.clone(), multi: self.multi.clone(), ..Recorder::default() }
            .into_histories()
    }

    fn into_histories(self) -> Result<(RawHistory, RawHistory), RecordError> {
        let kv = History::new(self.kv).map_err(|source| RecordError { which: "kv", source })?;
        let multi =
            History::new(self.multi).map_err(|source| RecordError { which: "sequence", source })?;
        Ok((kv, multi))
    }

    /// Both histories in the checker's JSON-lines format, one after the other.
    pub fn to_jsonl(&self) -> (String, String) {
        let write = |h: &RawHistory| {
            let mut out = Vec::new();
            let _ = write_jsonl(h, &mut out);
            String::from_utf8_lossy(&out).into_owned()
        };
        match self.histories() {
            Ok((kv, multi)) => (write(&kv), write(&multi)),
            Err(e) => (e.to_string(), e.to_string()),
        }
    }

    /// Checks both histories: the single-key one per key, the other as one map.
    pub fn check(self, time_limit: Duration) -> Linearizability {
        let (kv, multi) = match self.into_histories() {
            Ok(h) => h,
            Err(e) => return Linearizability::Violated(Violated::Unrecorded(e)),
        };
        // One thread: the verdict and the reported violation are then the same on every run.
        let budget = Budget {
            time_limit: Some(time_limit),
            memory_bytes_max: 1 << 30,
            threads: 1,
            shrink: true,
            shrink_time_limit: Duration::from_secs(5),
        };
        let mut unknown = Vec::new();
        for (name, kind, raw) in
            [("single-key", ModelKind::Kv, &kv), ("sequence", ModelKind::MultiKey, &multi)]
        {
            if raw.is_empty() {
                continue;
            }
            match check_raw(kind, Some(&Value::Nil), raw, &budget) {
                Err(source) => {
                    return Linearizability::Violated(Violated::Unchecked { history: name, source })
                }
                Ok(checked) => match checked.report.verdict {
                    arakoon_checker::Verdict::Linearizable => {}
                    arakoon_checker::Verdict::NotLinearizable => {
                        return Linearizability::Violated(Violated::NotLinearizable {
                            history: name,
                            explanation: checked.text(),
                        });
                    }
                    arakoon_checker::Verdict::Unknown => {
                        unknown.push(format!("{name}: {}", checked.text()));
                    }
                },
            }
        }
        if unknown.is_empty() {
            Linearizability::Linearizable
        } else {
            Linearizability::Unknown(unknown.join("; "))
        }
    }
}
