//! The entry point: split the history into independent partitions, search each (in parallel,
//! the first violation cancelling the rest), and combine the verdicts, within a budget of time
//! and memory. A search cut short never turns into a verdict: the check then answers
//! [`Verdict::Unknown`] with the reason and the partitions it did not finish.

use crate::explain::shrink::shrink;
use crate::history::{History, Outcome};
use crate::model::{Model, Partition};
use crate::search::{prepare, search, Deepest, Found, Limits, Stats, Stop};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How much a check may spend.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Wall-clock time for the whole check (shrinking excluded); `None`: no limit.
    pub time_limit: Option<Duration>,
    /// Memory of the search tables of all partitions together.
    pub memory_bytes_max: usize,
    /// Partitions searched at once; 0: one per available core.
    pub threads: usize,
    /// Whether to shrink a violation to a small counterexample.
    pub shrink: bool,
    /// Time for shrinking, on top of `time_limit`.
    pub shrink_time_limit: Duration,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            time_limit: Some(Duration::from_secs(60)),
            memory_bytes_max: 2 << 30,
            threads: 0,
            shrink: true,
            shrink_time_limit: Duration::from_secs(10),
        }
    }
}

/// The answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    /// The budget ran out first: no verdict (never a guess).
    Unknown,
}

/// One operation as reports show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpView {
    /// Its index in the history.
    pub index: usize,
    /// The line of its call in the history file, if read from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub process: u64,
    pub call: u64,
    pub ret: Option<u64>,
    pub outcome: Outcome,
    /// The operation and its answer, as the model writes them.
    pub text: String,
}

/// One operation of a linearizable prefix, with the state after it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrefixStep {
    pub index: usize,
    pub state_after: String,
}

/// Why a partition is not linearizable, as found by the search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stuck {
    /// The operation that cannot be placed: it returned while not linearized, after the
    /// longest linearizable prefix.
    pub blocking: usize,
    /// Whether the model refuses it right after the prefix (else it fits there, but nothing
    /// can follow).
    pub refused: bool,
    pub initial_state: String,
    /// The longest linearizable prefix, in linearization order.
    pub prefix: Vec<PrefixStep>,
}

/// A violation: where it is and how to read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    /// The partition (the key, for a partitioned model; empty for the whole history).
    pub partition: String,
    /// Every operation of the partition, by call time.
    pub ops: Vec<OpView>,
    pub stuck: Stuck,
    /// The operations that, as recorded, cannot all be explained, by call time: together with
    /// `context` still not linearizable, which proves the whole history is not.
    pub counterexample: Vec<OpView>,
    /// Operations taken as of unknown outcome for the counterexample: it stays not
    /// linearizable whether or not (and whenever after their call) they took effect.
    pub context: Vec<OpView>,
    /// Why the counterexample is not linearizable.
    pub counterexample_stuck: Stuck,
    /// Whether every operation of the counterexample is needed (shrinking finished); else
    /// shrinking ran out of time, or was not asked for.
    pub counterexample_minimal: bool,
}

/// A partition the check did not finish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionView {
    pub name: String,
    pub operations: usize,
}

/// Why there is no verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unfinished {
    pub reason: String,
    pub partitions: Vec<PartitionView>,
}

/// What the search cost, summed over partitions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CheckStats {
    pub iterations: u64,
    /// Distinct (linearized set, state) pairs seen.
    pub configurations: usize,
    /// Distinct states seen.
    pub states: usize,
    /// Largest memory of one partition's tables.
    pub partition_bytes_max: usize,
}

/// Everything a check found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub verdict: Verdict,
    pub operations: usize,
    pub partitions: usize,
    #[serde(serialize_with = "ser_ms")]
    pub elapsed: Duration,
    pub stats: CheckStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violation: Option<Violation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unfinished: Option<Unfinished>,
    /// For a linearizable history, one valid order per partition (history indices; skipped
    /// operations of unknown outcome are absent).
    #[serde(skip)]
    pub linearizations: Vec<Vec<usize>>,
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e3)
}

/// The views of operations `indices` of `history`, by call time.
pub fn views<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    indices: &[usize],
) -> Vec<OpView> {
    let mut views: Vec<OpView> = indices
        .iter()
        .map(|&index| {
            let op = &history.ops()[index];
            OpView {
                index,
                line: history.line(index),
                process: op.process,
                call: op.call,
                ret: op.ret,
                outcome: op.outcome,
                text: model.describe(&op.input, op.output.as_ref()),
            }
        })
        .collect();
    views.sort_by_key(|v| (v.call, v.index));
    views
}

pub(crate) fn stuck_of(deepest: &Deepest) -> Stuck {
    Stuck {
        blocking: deepest.blocking,
        refused: deepest.refused,
        initial_state: deepest.initial_state.clone(),
        prefix: deepest
            .prefix
            .iter()
            .map(|(index, state)| PrefixStep { index: *index, state_after: state.clone() })
            .collect(),
    }
}

/// Checks `history` against `model` within `budget`.
pub fn check<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    budget: &Budget,
) -> Report {
    let start = Instant::now();
    let partitions = model.partitions(history);
    let cancel = AtomicBool::new(false);
    let memory = AtomicUsize::new(0);
    let limits = Limits {
        cancel: &cancel,
        deadline: budget.time_limit.map(|t| start + t),
        memory: &memory,
        memory_max: budget.memory_bytes_max,
    };
    // Largest first, so that the last one to finish is small.
    let mut order: Vec<usize> = (0..partitions.len()).collect();
    order.sort_by_key(|&p| std::cmp::Reverse(partitions[p].ops.len()));
    let results: Vec<Mutex<Option<(Found, Stats)>>> =
        partitions.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || loop {
        let k = next.fetch_add(1, Ordering::Relaxed);
        let Some(&p) = order.get(k) else { return };
        if cancel.load(Ordering::Relaxed) {
            return;
        }
        let ops = prepare(model, history, &partitions[p].ops);
        let (found, stats) = search(model, &ops, &limits);
        if matches!(found, Found::NotLinearizable(_)) {
            cancel.store(true, Ordering::Relaxed);
        }
        *results[p].lock().unwrap_or_else(|e| e.into_inner()) = Some((found, stats));
    };
    let threads = match budget.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(partitions.len())
    .max(1);
    if threads == 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(work);
            }
        });
    }
    let results: Vec<Option<(Found, Stats)>> =
        results.into_iter().map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner())).collect();
    combine(model, history, budget, &partitions, results, start)
}

fn combine<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    budget: &Budget,
    partitions: &[Partition],
    results: Vec<Option<(Found, Stats)>>,
    start: Instant,
) -> Report {
    let mut stats = CheckStats::default();
    for (_, s) in results.iter().flatten() {
        stats.iterations += s.iterations;
        stats.configurations += s.configurations;
        stats.states += s.states;
        stats.partition_bytes_max = stats.partition_bytes_max.max(s.bytes);
    }
    let mut report = Report {
        verdict: Verdict::Linearizable,
        operations: history.len(),
        partitions: partitions.len(),
        elapsed: Duration::ZERO,
        stats,
        violation: None,
        unfinished: None,
        linearizations: Vec::new(),
    };
    let violated = results.iter().enumerate().find_map(|(p, r)| match r {
        Some((Found::NotLinearizable(deepest), _)) => Some((p, deepest)),
        _ => None,
    });
    if let Some((p, deepest)) = violated {
        report.verdict = Verdict::NotLinearizable;
        report.violation = Some(violation(model, history, budget, &partitions[p], deepest));
    } else {
        let mut reason = None;
        let mut unfinished = Vec::new();
        for (p, r) in results.iter().enumerate() {
            match r {
                Some((Found::Linearizable(order), _)) => report.linearizations.push(order.clone()),
                Some((Found::Stopped(why), _)) => {
                    reason = reason.or(match why {
                        Stop::Time => Some(format!(
                            "the time budget of {:.1} s ran out",
                            budget.time_limit.unwrap_or_default().as_secs_f64()
                        )),
                        Stop::Memory => Some(format!(
                            "the memory budget of {} MiB ran out",
                            budget.memory_bytes_max >> 20
                        )),
                        Stop::Cancelled => None,
                    });
                    unfinished.push(p);
                }
                _ => unfinished.push(p),
            }
        }
        if !unfinished.is_empty() {
            report.verdict = Verdict::Unknown;
            report.linearizations.clear();
            report.unfinished = Some(Unfinished {
                reason: reason.unwrap_or_else(|| "the check was cancelled".into()),
                partitions: unfinished
                    .into_iter()
                    .map(|p| PartitionView {
                        name: partitions[p].name.clone(),
                        operations: partitions[p].ops.len(),
                    })
                    .collect(),
            });
        }
    }
    report.elapsed = start.elapsed();
    report
}

fn violation<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    budget: &Budget,
    partition: &Partition,
    deepest: &Deepest,
) -> Violation {
    let stuck = stuck_of(deepest);
    let (kept, context, kept_deepest, minimal) = if budget.shrink {
        let shrunk = shrink(model, history, &partition.ops, deepest, budget);
        (shrunk.kept, shrunk.context, shrunk.deepest, shrunk.minimal)
    } else {
        (partition.ops.clone(), Vec::new(), deepest.clone(), false)
    };
    Violation {
        partition: partition.name.clone(),
        ops: views(model, history, &partition.ops),
        stuck,
        counterexample: views(model, history, &kept),
        context: views(model, history, &context),
        counterexample_stuck: stuck_of(&kept_deepest),
        counterexample_minimal: minimal,
    }
}
