//! The search for a linearization of one partition: the Wing-Gong algorithm with Lowe's
//! memoization, as porcupine runs it, made compact.
//!
//! The calls and returns of the operations form a doubly linked list in time order (calls
//! before returns at equal times: they overlap). An operation may be linearized next exactly
//! when its call comes before the first return still in the list. The search walks the list:
//! at a call, it tries the operation; if the model accepts it and the resulting configuration
//! (set of linearized operations, state) has never been seen, it takes it, unlinks its call and
//! return, and starts over from the head. At a return, the operation it belongs to should
//! already be linearized: the search backtracks. The history is linearizable when no required
//! return remains; not linearizable when it must backtrack with nothing to undo.
//!
//! What makes it fast:
//! - states are interned: the search handles `u32` ids; the model's `step` is memoized per
//!   (state, operation), so each distinct step runs once;
//! - the set of linearized operations is a bitset with a Zobrist hash kept up to date by XOR;
//! - the cache of seen configurations is one flat open-addressing index over flat vectors;
//! - operations of unknown outcome have no return: they may be linearized late or never, and
//!   one that would change nothing is never tried.

pub(crate) mod hash;
pub(crate) mod table;

use crate::history::{History, Outcome};
use crate::model::Model;
use hash::{hash_of, mix64, zobrist};
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;
use table::IdIndex;

const NIL: u32 = u32::MAX;
/// Marks a stack entry as a bounded operation skipped at its return (node numbers stay below).
const SKIP: u32 = 1 << 31;
/// A memoized step the model refused.
const REFUSED: u32 = u32::MAX;
/// Check the budget every this many iterations.
const POLL_MASK: u64 = (1 << 12) - 1;

/// One operation as the search sees it.
pub(crate) struct SearchOp<'h, M: Model> {
    /// Its index in the history.
    pub index: usize,
    pub input: &'h M::Input,
    pub output: Option<Cow<'h, M::Output>>,
    /// Must be linearized (ok, or failed with an observation); else it may be skipped.
    pub required: bool,
    /// Optional, but only within its call and return: if it has not taken effect when its
    /// return comes, it never does (an operation relaxed for shrinking).
    pub bounded: bool,
    pub call: u64,
    /// `u64::MAX` for an operation that may take effect at any time after its call.
    pub ret: u64,
}

/// The operations of one partition that the search must place: failed operations that did not
/// happen are left out.
pub(crate) fn prepare<'h, M: Model>(
    model: &M,
    history: &'h History<M::Input, M::Output>,
    indices: &[usize],
) -> Vec<SearchOp<'h, M>> {
    prepare_relaxed(model, history, indices, &|_| false)
}

/// Like [`prepare`], with the operations for which `relaxed(index)` holds taken as of unknown
/// outcome: they may have taken effect at any time after their call, or never. A history that
/// is not linearizable with some operations relaxed is not linearizable as recorded either
/// (every linearization of the recorded history is one of the relaxed history), which is what
/// makes relaxing a sound way to shrink a counterexample.
pub(crate) fn prepare_relaxed<'h, M: Model>(
    model: &M,
    history: &'h History<M::Input, M::Output>,
    indices: &[usize],
    relaxed: &dyn Fn(usize) -> bool,
) -> Vec<SearchOp<'h, M>> {
    let mut ops = Vec::with_capacity(indices.len());
    for &index in indices {
        let op = &history.ops()[index];
        let (required, output) = match op.outcome {
            // A failure that only observed something changed nothing: relaxed, it is nothing.
            Outcome::Fail => match model.failure(&op.input, op.output.as_ref()) {
                Some(_) if relaxed(index) => continue,
                Some(observed) => (true, Some(Cow::Owned(observed))),
                None => continue,
            },
            Outcome::Ok if !relaxed(index) => (true, op.output.as_ref().map(Cow::Borrowed)),
            Outcome::Ok | Outcome::Unknown => (false, None),
        };
        // A relaxed operation keeps its return: it happened within its call and return, or not
        // at all, which is still every way it could have happened as recorded. Bounded, the
        // search stays as small as with the operation required.
        let bounded = !required && op.outcome != Outcome::Unknown;
        let ret = if required || bounded { op.ret.unwrap_or(u64::MAX) } else { u64::MAX };
        ops.push(SearchOp {
            index,
            input: &op.input,
            output,
            required,
            bounded,
            call: op.call,
            ret,
        });
    }
    ops
}

/// What stops a search early; shared by all the searches of one check.
pub(crate) struct Limits<'a> {
    pub cancel: &'a AtomicBool,
    pub deadline: Option<Instant>,
    /// Bytes held by all running searches.
    pub memory: &'a AtomicUsize,
    pub memory_max: usize,
}

/// Why a search stopped without a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Time,
    Memory,
    Cancelled,
}

/// The furthest the search got: a linearizable prefix that no continuation extends.
#[derive(Debug, Clone)]
pub(crate) struct Deepest {
    /// History indices, in linearization order, each with the state after it.
    pub prefix: Vec<(usize, String)>,
    pub initial_state: String,
    /// The operation whose return came with it not linearized.
    pub blocking: usize,
    /// Whether the model refuses it in the state after the prefix (else: it fits there, but
    /// every way on from there was tried and failed).
    pub refused: bool,
}

pub(crate) enum Found {
    /// History indices in a valid linearization order (skipped unknown operations are absent).
    Linearizable(Vec<usize>),
    NotLinearizable(Box<Deepest>),
    Stopped(Stop),
}

/// What one search cost.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stats {
    pub iterations: u64,
    pub configurations: usize,
    pub states: usize,
    pub bytes: usize,
}

/// Most entries of the dense step table (16 MiB); states past it use the hashed memo.
const DENSE_ENTRIES_MAX: usize = 1 << 22;
/// The longest row of the dense step table: partitions with more operations use the hashed
/// memo only. A row is filled whole when its state is interned, but a state is stepped only
/// with the few operations the search may take next (about as many as the clients), so a long
/// row costs more to fill than the lookups it saves: the simulator's heavy-load histories (6,000
/// to 9,000 operations in one partition, 3,000 states, 7,000 steps) filled 16 MiB a search to
/// save 7,000 hashed lookups, an eighth of the run's time. The recorded histories of the
/// checker's bench have at most 405 operations a partition and keep their table.
const DENSE_ROW_MAX: usize = 1024;
/// A dense step-table entry not computed yet.
const UNSET: u32 = u32::MAX - 1;

/// Interned states and memoized steps.
struct States<'m, M: Model> {
    model: &'m M,
    states: Vec<M::State>,
    index: IdIndex,
    /// Operations of the partition: the row length of `dense`.
    ops_len: usize,
    /// Steps of the first states, `state * ops_len + op`: one load where most models have few
    /// states (a register has a handful); [`UNSET`] until computed.
    dense: Vec<u32>,
    memo_keys: Vec<u64>,
    memo_vals: Vec<u32>,
    memo_index: IdIndex,
}

impl<'m, M: Model> States<'m, M> {
    fn intern(&mut self, state: M::State) -> u32 {
        let states = &self.states;
        let (id, new) = self.index.find_or_insert(hash_of(&state), |id| states[id] == state);
        if new {
            self.states.push(state);
            if self.ops_len <= DENSE_ROW_MAX && self.dense.len() + self.ops_len <= DENSE_ENTRIES_MAX
            {
                self.dense.resize(self.dense.len() + self.ops_len, UNSET);
            }
        }
        id as u32
    }

    /// The state after `op` in state `s`, or [`REFUSED`].
    #[inline]
    fn step(&mut self, s: u32, op: u32, search_op: &SearchOp<'_, M>) -> u32 {
        let slot = s as usize * self.ops_len + op as usize;
        if let Some(&known) = self.dense.get(slot) {
            if known != UNSET {
                return known;
            }
            let next = self.model.step(
                &self.states[s as usize],
                search_op.input,
                search_op.output.as_deref(),
            );
            let next = match next {
                Some(state) => self.intern(state),
                None => REFUSED,
            };
            self.dense[slot] = next;
            return next;
        }
        let key = (u64::from(s) << 32) | u64::from(op);
        let keys = &self.memo_keys;
        let (id, new) = self.memo_index.find_or_insert(mix64(key), |id| keys[id] == key);
        if !new {
            return self.memo_vals[id];
        }
        self.memo_keys.push(key);
        let next =
            self.model.step(&self.states[s as usize], search_op.input, search_op.output.as_deref());
        let next = match next {
            Some(state) => self.intern(state),
            None => REFUSED,
        };
        self.memo_vals.push(next);
        next
    }

    fn bytes(&self) -> usize {
        self.states.capacity() * std::mem::size_of::<M::State>()
            + self.index.bytes()
            + self.memo_keys.capacity() * 8
            + self.memo_vals.capacity() * 4
            + self.memo_index.bytes()
            + self.dense.capacity() * 4
    }
}

/// The seen configurations: (linearized set, state).
struct Cache {
    words_per_set: usize,
    sets: Vec<u64>,
    states: Vec<u32>,
    index: IdIndex,
}

impl Cache {
    /// Records (`set`, `state`) under `hash`; false if it was already there.
    #[inline]
    fn insert(&mut self, hash: u64, set: &[u64], state: u32) -> bool {
        let (w, sets, states) = (self.words_per_set, &self.sets, &self.states);
        // Word by word: sets are a few words, shorter than a call to memcmp.
        let same = |id: usize| {
            states[id] == state && sets[id * w..(id + 1) * w].iter().zip(set).all(|(a, b)| a == b)
        };
        let (_, new) = self.index.find_or_insert(hash, same);
        if new {
            self.sets.extend_from_slice(set);
            self.states.push(state);
        }
        new
    }

    fn bytes(&self) -> usize {
        self.sets.capacity() * 8 + self.states.capacity() * 4 + self.index.bytes()
    }
}

/// The time-ordered list of calls and returns.
struct Events {
    next: Vec<u32>,
    prev: Vec<u32>,
    /// The operation of each node; node 0 is the head.
    op: Vec<u32>,
    is_call: Vec<bool>,
    /// The return node of each operation, or [`NIL`].
    ret_node: Vec<u32>,
    /// The call node of each operation.
    call_node: Vec<u32>,
}

impl Events {
    fn new<M: Model>(ops: &[SearchOp<'_, M>]) -> Events {
        let mut order: Vec<(u64, u8, u32)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            order.push((op.call, 0, i as u32));
            if op.required || op.bounded {
                order.push((op.ret, 1, i as u32));
            }
        }
        order.sort_unstable();
        let nodes = order.len() + 1;
        let mut events = Events {
            next: (1..=nodes as u32).collect(),
            prev: (0..nodes as u32).map(|i| i.wrapping_sub(1)).collect(),
            op: vec![NIL; nodes],
            is_call: vec![false; nodes],
            ret_node: vec![NIL; ops.len()],
            call_node: vec![NIL; ops.len()],
        };
        events.next[nodes - 1] = NIL;
        for (k, &(_, phase, op)) in order.iter().enumerate() {
            let node = k + 1;
            events.op[node] = op;
            events.is_call[node] = phase == 0;
            if phase == 1 {
                events.ret_node[op as usize] = node as u32;
            } else {
                events.call_node[op as usize] = node as u32;
            }
        }
        events
    }

    #[inline]
    fn unlink(&mut self, node: u32) {
        let (p, n) = (self.prev[node as usize], self.next[node as usize]);
        self.next[p as usize] = n;
        if n != NIL {
            self.prev[n as usize] = p;
        }
    }

    #[inline]
    fn relink(&mut self, node: u32) {
        let (p, n) = (self.prev[node as usize], self.next[node as usize]);
        self.next[p as usize] = node;
        if n != NIL {
            self.prev[n as usize] = node;
        }
    }

    /// Takes the call `node` and its return out of the list.
    #[inline]
    fn lift(&mut self, node: u32) {
        self.unlink(node);
        let ret = self.ret_node[self.op[node as usize] as usize];
        if ret != NIL {
            self.unlink(ret);
        }
    }

    /// Undoes [`Events::lift`].
    #[inline]
    fn unlift(&mut self, node: u32) {
        let ret = self.ret_node[self.op[node as usize] as usize];
        if ret != NIL {
            self.relink(ret);
        }
        self.relink(node);
    }
}

/// The furthest point reached: the stack (call node, state before it), the state after it, and
/// the operation whose return stopped it.
type Frontier = (Vec<(u32, u32)>, u32, u32);

/// Searches for a linearization of `ops`.
pub(crate) fn search<M: Model>(
    model: &M,
    ops: &[SearchOp<'_, M>],
    limits: &Limits<'_>,
) -> (Found, Stats) {
    let mut states = States {
        model,
        states: Vec::new(),
        index: IdIndex::new(),
        ops_len: ops.len(),
        dense: Vec::new(),
        memo_keys: Vec::new(),
        memo_vals: Vec::new(),
        memo_index: IdIndex::new(),
    };
    let words = ops.len().div_ceil(64).max(1);
    let mut cache =
        Cache { words_per_set: words, sets: Vec::new(), states: Vec::new(), index: IdIndex::new() };
    let mut events = Events::new(ops);
    let zob: Vec<u64> = (0..ops.len()).map(zobrist).collect();
    let mut set = vec![0u64; words];
    let mut set_hash = 0u64;
    let mut state = states.intern(model.init());
    // (call node, state before it); the call node with [`SKIP`] for a bounded operation skipped
    // at its return.
    let mut stack: Vec<(u32, u32)> = Vec::new();
    let mut required_left = ops.iter().filter(|op| op.required).count();
    let mut deepest: Option<Frontier> = None;
    let mut stats = Stats::default();
    let mut reported_bytes = 0usize;
    let mut node = events.next[0];

    let end = loop {
        if required_left == 0 {
            let order = stack
                .iter()
                .filter(|&&(n, _)| n & SKIP == 0)
                .map(|&(n, _)| ops[events.op[n as usize] as usize].index)
                .collect();
            break Found::Linearizable(order);
        }
        stats.iterations += 1;
        if stats.iterations & POLL_MASK == 0 {
            let bytes = states.bytes() + cache.bytes() + stack.capacity() * 8;
            if let Some(why) = poll(limits, bytes, &mut reported_bytes) {
                break Found::Stopped(why);
            }
        }
        // With a required return still listed, the walk meets it before the end of the list.
        assert!(node != NIL, "the event list ended before a pending return");
        let op = events.op[node as usize];
        if events.is_call[node as usize] {
            let search_op = &ops[op as usize];
            let next = states.step(state, op, search_op);
            // An optional operation that changes nothing is the same as one that never happened.
            let worth_it = next != REFUSED && (search_op.required || next != state);
            if worth_it {
                let (word, bit) = (op as usize / 64, 1u64 << (op % 64));
                set[word] |= bit;
                let hash = set_hash ^ zob[op as usize] ^ mix64(u64::from(next) ^ 0x5bd1_e995);
                if cache.insert(hash, &set, next) {
                    set_hash ^= zob[op as usize];
                    stack.push((node, state));
                    state = next;
                    if search_op.required {
                        required_left -= 1;
                    }
                    events.lift(node);
                    node = events.next[0];
                    continue;
                }
                set[word] &= !bit;
            }
            node = events.next[node as usize];
        } else {
            if ops[op as usize].bounded {
                // Its return came and it has not taken effect: it never will. Deciding that is
                // a step like taking it, with the state unchanged.
                let (word, bit) = (op as usize / 64, 1u64 << (op % 64));
                set[word] |= bit;
                let hash = set_hash ^ zob[op as usize] ^ mix64(u64::from(state) ^ 0x5bd1_e995);
                if cache.insert(hash, &set, state) {
                    set_hash ^= zob[op as usize];
                    let call = events.call_node[op as usize];
                    stack.push((call | SKIP, state));
                    events.lift(call);
                    node = events.next[0];
                    continue;
                }
                set[word] &= !bit;
            }
            if deepest.as_ref().is_none_or(|d| stack.len() > d.0.len()) {
                deepest = Some((stack.clone(), state, op));
            }
            // Undo the last step; a skip had no other choice, so undo on until a step that had.
            let resume = loop {
                let Some((entry, before)) = stack.pop() else { break None };
                let call = entry & !SKIP;
                let op = events.op[call as usize];
                set[op as usize / 64] &= !(1u64 << (op % 64));
                set_hash ^= zob[op as usize];
                if ops[op as usize].required {
                    required_left += 1;
                }
                state = before;
                events.unlift(call);
                if entry & SKIP == 0 {
                    break Some(call);
                }
            };
            let Some(call) = resume else {
                let (stack, last, blocking) = deepest.take().expect("recorded just above");
                let why = explain(&mut states, ops, &events, &stack, last, blocking);
                break Found::NotLinearizable(Box::new(why));
            };
            node = events.next[call as usize];
        }
    };
    // This search's memory is about to go: the others may have it.
    limits.memory.fetch_sub(reported_bytes, Ordering::Relaxed);
    stats.configurations = cache.index.len();
    stats.states = states.states.len();
    stats.bytes = states.bytes() + cache.bytes();
    (end, stats)
}

/// Checks the budget; reports this search's memory to the shared count.
fn poll(limits: &Limits<'_>, bytes: usize, reported: &mut usize) -> Option<Stop> {
    if bytes > *reported {
        limits.memory.fetch_add(bytes - *reported, Ordering::Relaxed);
    } else {
        limits.memory.fetch_sub(*reported - bytes, Ordering::Relaxed);
    }
    *reported = bytes;
    if limits.cancel.load(Ordering::Relaxed) {
        Some(Stop::Cancelled)
    } else if limits.memory.load(Ordering::Relaxed) > limits.memory_max {
        Some(Stop::Memory)
    } else if limits.deadline.is_some_and(|d| Instant::now() >= d) {
        Some(Stop::Time)
    } else {
        None
    }
}

/// The deepest point as people read it.
fn explain<M: Model>(
    states: &mut States<'_, M>,
    ops: &[SearchOp<'_, M>],
    events: &Events,
    stack: &[(u32, u32)],
    last: u32,
    blocking: u32,
) -> Deepest {
    let model = states.model;
    let prefix = stack
        .iter()
        .enumerate()
        .filter(|(_, &(node, _))| node & SKIP == 0)
        .map(|(k, &(node, _))| {
            let after = stack.get(k + 1).map_or(last, |&(_, before)| before);
            let op = &ops[events.op[node as usize] as usize];
            (op.index, model.describe_state(&states.states[after as usize]))
        })
        .collect();
    let refused = states.step(last, blocking, &ops[blocking as usize]) == REFUSED;
    Deepest {
        prefix,
        initial_state: model.describe_state(&states.states[0]),
        blocking: ops[blocking as usize].index,
        refused,
    }
}
