//! Shrinking a violation to a counterexample small enough to read, soundly.
//!
//! Dropping operations from a history can create a violation that was not there: drop the
//! acquire before a release, and the release alone is "not linearizable" while telling nothing
//! about the original history. So the shrinker only uses steps after which a violation still
//! proves the original is not linearizable:
//!
//! 1. **Cut** at the return of the operation that cannot be placed: drop what was called after
//!    it, and relax what was still running then (it may have taken effect after the cut, or
//!    never). Any linearization of the whole history, cut at that time, is one of the rest.
//! 2. **Relax** operations: take one as optional (it took effect within its call and return,
//!    with whatever answer, or never). Every linearization of the recorded history is one of
//!    the relaxed history, so if the relaxed one has none, neither has the recorded one.
//!    Keeping the return bound keeps each attempt as cheap as the first search.
//! 3. **Drop** relaxed operations that change nothing (reads): relaxed, they are nothing.
//!
//! The counterexample is what stays as recorded; the relaxed operations that can change the
//! state are its context ("these may or may not have happened"). Relaxing goes by halving runs
//! of operations, then one by one; the result is 1-minimal (relaxing any one more operation
//! makes it linearizable) unless the time for shrinking ran out. Each attempt is a search with
//! its own small budget: an attempt without an answer counts as "needed", never as a proof.

use crate::check::Budget;
use crate::history::{History, Outcome};
use crate::model::Model;
use crate::search::{prepare_relaxed, search, Deepest, Found, Limits};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::{Duration, Instant};

/// The most one attempt may take: relaxed operations can make a search much harder, and a
/// shrinker stuck on one attempt shows nothing.
const ATTEMPT_TIME_MAX: Duration = Duration::from_millis(500);

/// A shrunk violation.
pub(crate) struct Shrunk {
    /// Operations kept as recorded, history indices in call order.
    pub kept: Vec<usize>,
    /// Relaxed operations that can change the state: they may or may not have happened.
    pub context: Vec<usize>,
    /// Why kept + context is not linearizable.
    pub deepest: Deepest,
    /// Whether every kept operation is needed (shrinking finished).
    pub minimal: bool,
}

struct Shrinker<'a, M: Model> {
    model: &'a M,
    history: &'a History<M::Input, M::Output>,
    memory_max: usize,
    deadline: Instant,
    /// Whether every attempt got an answer in time.
    complete: bool,
}

impl<M: Model> Shrinker<'_, M> {
    /// Why `ops` with `relaxed` relaxed is not linearizable, or `None` if it is (or no answer
    /// came in time).
    fn violation(&mut self, ops: &[usize], relaxed: &BTreeSet<usize>) -> Option<Deepest> {
        let now = Instant::now();
        if now >= self.deadline {
            self.complete = false;
            return None;
        }
        let cancel = AtomicBool::new(false);
        let memory = AtomicUsize::new(0);
        let limits = Limits {
            cancel: &cancel,
            deadline: Some(self.deadline.min(now + ATTEMPT_TIME_MAX)),
            memory: &memory,
            memory_max: self.memory_max,
        };
        let prepared = prepare_relaxed(self.model, self.history, ops, &|i| relaxed.contains(&i));
        match search(self.model, &prepared, &limits).0 {
            Found::NotLinearizable(deepest) => Some(*deepest),
            Found::Linearizable(_) => None,
            Found::Stopped(_) => {
                self.complete = false;
                None
            }
        }
    }

    /// The operations worth searching: relaxed reads and failures that did not happen are
    /// nothing.
    fn live(&self, ops: &[usize], relaxed: &BTreeSet<usize>) -> Vec<usize> {
        let all = self.history.ops();
        ops.iter()
            .copied()
            .filter(|&i| {
                let op = &all[i];
                let gone = op.outcome == Outcome::Fail
                    && self.model.failure(&op.input, op.output.as_ref()).is_none();
                let nothing = (relaxed.contains(&i) || op.outcome == Outcome::Unknown)
                    && self.model.is_read_only(&op.input);
                !gone && !nothing
            })
            .collect()
    }
}

/// A counterexample for the violation `deepest` found in the operations `ops` of `history`.
pub(crate) fn shrink<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    ops: &[usize],
    deepest: &Deepest,
    budget: &Budget,
) -> Shrunk {
    let mut s = Shrinker {
        model,
        history,
        memory_max: budget.memory_bytes_max,
        deadline: Instant::now() + budget.shrink_time_limit,
        complete: true,
    };
    let all = history.ops();
    let mut relaxed: BTreeSet<usize> = BTreeSet::new();
    let mut current = s.live(ops, &relaxed);
    let mut best = deepest.clone();

    // 1. The cut.
    if let Some(end) = all[deepest.blocking].ret {
        let before: Vec<usize> = current.iter().copied().filter(|&i| all[i].call <= end).collect();
        let running: BTreeSet<usize> =
            before.iter().copied().filter(|&i| all[i].ret.is_none_or(|r| r > end)).collect();
        let cut = s.live(&before, &running);
        if let Some(d) = s.violation(&cut, &running) {
            current = cut;
            relaxed = running;
            best = d;
        }
    }

    // 2 and 3. Relax runs of halving length, then single operations until none can go.
    let mut chunk = current.len() / 2;
    loop {
        let chunk_len = chunk.max(1);
        if chunk_len == 1 {
            // Only a whole pass of single operations with every answer in time shows that each
            // one left is needed.
            s.complete = true;
        }
        let mut progressed = false;
        let mut at = 0;
        while at < current.len() {
            let candidates: Vec<usize> = current[at..]
                .iter()
                .copied()
                .filter(|i| !relaxed.contains(i))
                .take(chunk_len)
                .collect();
            let Some(&last) = candidates.last() else { break };
            let next_at = current.iter().position(|&i| i == last).map_or(current.len(), |p| p + 1);
            let mut trial = relaxed.clone();
            trial.extend(candidates.iter().copied());
            let trial_ops = s.live(&current, &trial);
            match s.violation(&trial_ops, &trial) {
                Some(d) => {
                    current = trial_ops;
                    relaxed = trial;
                    best = d;
                    progressed = true;
                    at = current.iter().position(|&i| i > last).unwrap_or(current.len());
                }
                None => at = next_at,
            }
        }
        if chunk > 1 {
            chunk /= 2;
            continue;
        }
        // Single operations: one more pass after any removal, so that each one left is needed.
        if !progressed || Instant::now() >= s.deadline {
            break;
        }
    }
    let mut kept: Vec<usize> = current.iter().copied().filter(|i| !relaxed.contains(i)).collect();
    let mut context: Vec<usize> = current.iter().copied().filter(|i| relaxed.contains(i)).collect();
    kept.sort_by_key(|&i| (all[i].call, i));
    context.sort_by_key(|&i| (all[i].call, i));
    Shrunk { kept, context, deepest: best, minimal: s.complete }
}
