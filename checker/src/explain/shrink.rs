//! Shrinking a violation: drop what is not needed for it, while the rest stays not
//! linearizable. First everything called after the blocking operation returned, then whole
//! processes, then runs of operations of halving length, and finally single operations until
//! none can go. The result is 1-minimal (every operation left is needed) unless the time for
//! shrinking ran out; each attempt is a full search, so attempts stop at the deadline.

use crate::check::Budget;
use crate::history::{History, Outcome};
use crate::model::Model;
use crate::search::{prepare, search, Deepest, Found, Limits};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Instant;

struct Shrinker<'a, M: Model> {
    model: &'a M,
    history: &'a History<M::Input, M::Output>,
    limits: Limits<'a>,
    deadline: Instant,
    /// Whether every attempt got an answer.
    complete: bool,
}

impl<M: Model> Shrinker<'_, M> {
    /// Why `ops` is not linearizable, or `None` if it is (or no answer came in time).
    fn violation(&mut self, ops: &[usize]) -> Option<Deepest> {
        if Instant::now() >= self.deadline {
            self.complete = false;
            return None;
        }
        let prepared = prepare(self.model, self.history, ops);
        match search(self.model, &prepared, &self.limits).0 {
            Found::NotLinearizable(deepest) => Some(*deepest),
            Found::Linearizable(_) => None,
            Found::Stopped(_) => {
                self.complete = false;
                None
            }
        }
    }

    /// Keeps `candidate` in place of `current` if it is still a violation.
    fn attempt(
        &mut self,
        current: &mut Vec<usize>,
        best: &mut Deepest,
        candidate: Vec<usize>,
    ) -> bool {
        if candidate.len() == current.len() {
            return false;
        }
        match self.violation(&candidate) {
            Some(deepest) => {
                *current = candidate;
                *best = deepest;
                true
            }
            None => false,
        }
    }
}

/// A small sub-history of `ops` that is still not linearizable, whether it is 1-minimal, and
/// why it is not linearizable.
pub(crate) fn shrink<M: Model>(
    model: &M,
    history: &History<M::Input, M::Output>,
    ops: &[usize],
    deepest: &Deepest,
    budget: &Budget,
) -> (Vec<usize>, bool, Deepest) {
    let cancel = AtomicBool::new(false);
    let memory = AtomicUsize::new(0);
    let deadline = Instant::now() + budget.shrink_time_limit;
    let mut s = Shrinker {
        model,
        history,
        limits: Limits {
            cancel: &cancel,
            deadline: Some(deadline),
            memory: &memory,
            memory_max: budget.memory_bytes_max,
        },
        deadline,
        complete: true,
    };
    let all = history.ops();
    let mut best = deepest.clone();
    // Failures that did not happen play no part: they go first, without a search.
    let mut current: Vec<usize> = ops
        .iter()
        .copied()
        .filter(|&i| {
            all[i].outcome != Outcome::Fail
                || model.failure(&all[i].input, all[i].output.as_ref()).is_some()
        })
        .collect();

    if let Some(end) = all[deepest.blocking].ret {
        let before: Vec<usize> = current.iter().copied().filter(|&i| all[i].call <= end).collect();
        s.attempt(&mut current, &mut best, before);
    }

    let mut processes: Vec<u64> = current.iter().map(|&i| all[i].process).collect();
    processes.sort_unstable();
    processes.dedup();
    for p in processes {
        let without: Vec<usize> =
            current.iter().copied().filter(|&i| all[i].process != p).collect();
        s.attempt(&mut current, &mut best, without);
    }

    let mut chunk = current.len() / 2;
    while chunk > 1 {
        let mut at = 0;
        while at < current.len() {
            let mut without = current.clone();
            without.drain(at..(at + chunk).min(current.len()));
            if !s.attempt(&mut current, &mut best, without) {
                at += chunk;
            }
        }
        chunk /= 2;
    }

    // Single operations until a whole pass removes nothing: then each one left is needed.
    s.complete = true;
    loop {
        let mut removed = false;
        let mut at = 0;
        while at < current.len() {
            let mut without = current.clone();
            without.remove(at);
            if s.attempt(&mut current, &mut best, without) {
                removed = true;
            } else {
                at += 1;
            }
        }
        if !removed || !s.complete {
            break;
        }
    }
    (current, s.complete, best)
}
