//! The world's agenda: events ordered by (true time, sequence number). The sequence number
//! breaks ties in the order events were scheduled, so the same seed always replays the same
//! order, with no dependence on hashing or memory addresses.
//!
//! A 4-ary heap of small keys over a slab of events: every event is pushed once and popped
//! once, and the heap does both in place, moving keys rather than whole events (a `BTreeMap` of
//! events spent an eighth of a campaign's time allocating and moving its nodes). A key is one
//! `u128`: the time in the high 64 bits, then the sequence number, then the event's slot in the
//! low 24 bits, so one integer comparison orders by (time, sequence number); the keys are
//! unique, so the order is total and any heap pops what the map popped. Four children a node
//! halve the depth of a binary heap: a pop, the most frequent operation (a seventh of a
//! campaign's CPU with `std`'s binary heap of 24-byte keys), does fewer moves.

/// Bits of a key that hold the event's slot in the slab.
const SLOT_BITS: u32 = 24;
/// Bits of a key that hold the sequence number, below the time's 64.
const SEQ_BITS: u32 = 64 - SLOT_BITS;

fn key(at_us: u64, seq: u64, slot: u32) -> u128 {
    (u128::from(at_us) << 64) | (u128::from(seq) << SLOT_BITS) | u128::from(slot)
}

fn key_time(key: u128) -> u64 {
    (key >> 64) as u64
}

fn key_slot(key: u128) -> usize {
    (key as usize) & ((1 << SLOT_BITS) - 1)
}

/// A min-heap of keys, four children a node.
#[derive(Debug, Default)]
struct Heap {
    keys: Vec<u128>,
}

impl Heap {
    fn push(&mut self, key: u128) {
        self.keys.push(key);
        let mut i = self.keys.len() - 1;
        while i > 0 {
            let parent = (i - 1) / 4;
            if self.keys[parent] <= key {
                break;
            }
            self.keys[i] = self.keys[parent];
            i = parent;
        }
        self.keys[i] = key;
    }

    fn pop(&mut self) -> Option<u128> {
        let last = self.keys.pop()?;
        let Some(&top) = self.keys.first() else { return Some(last) };
        self.sift_down(0, last);
        Some(top)
    }

    /// Places `key` at `i` or below, moving smaller children up.
    fn sift_down(&mut self, mut i: usize, key: u128) {
        let n = self.keys.len();
        loop {
            let first = 4 * i + 1;
            if first >= n {
                break;
            }
            let mut least = first;
            for c in first + 1..(first + 4).min(n) {
                if self.keys[c] < self.keys[least] {
                    least = c;
                }
            }
            if self.keys[least] >= key {
                break;
            }
            self.keys[i] = self.keys[least];
            i = least;
        }
        self.keys[i] = key;
    }

    fn peek(&self) -> Option<u128> {
        self.keys.first().copied()
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    fn retain(&mut self, keep: impl FnMut(&u128) -> bool) {
        self.keys.retain(keep);
        for i in (0..self.keys.len().div_ceil(4)).rev() {
            self.sift_down(i, self.keys[i]);
        }
    }
}

#[derive(Debug)]
pub struct Agenda<E> {
    keys: Heap,
    /// The events, at their keys' slots; `None` where a slot is free.
    slots: Vec<Option<E>>,
    /// Free slots, reused before the slab grows.
    free: Vec<u32>,
    next_seq: u64,
}

impl<E> Default for Agenda<E> {
    fn default() -> Self {
        Agenda {
            keys: Heap { keys: Vec::with_capacity(256) },
            slots: Vec::with_capacity(256),
            free: Vec::with_capacity(256),
            next_seq: 0,
        }
    }
}

impl<E> Agenda<E> {
    /// Schedules `event` at true time `at_us`.
    pub fn push(&mut self, at_us: u64, event: E) {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(event);
                slot
            }
            None => {
                self.slots.push(Some(event));
                let slot = self.slots.len() - 1;
                assert!(slot < 1 << SLOT_BITS, "fewer than 2^24 events pending");
                slot as u32
            }
        };
        assert!(self.next_seq < 1 << SEQ_BITS, "fewer than 2^40 events scheduled");
        self.keys.push(key(at_us, self.next_seq, slot));
        self.next_seq += 1;
    }

    /// The earliest event, if any, with its time.
    pub fn pop(&mut self) -> Option<(u64, E)> {
        let key = self.keys.pop()?;
        let slot = key_slot(key);
        let event = self.slots[slot].take().expect("a key's slot holds its event");
        self.free.push(slot as u32);
        Some((key_time(key), event))
    }

    pub fn peek_time(&self) -> Option<u64> {
        self.keys.peek().map(key_time)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.len() == 0
    }

    /// Drops every event `keep` rejects (e.g. deliveries to a node that crashed).
    pub fn retain(&mut self, mut keep: impl FnMut(&E) -> bool) {
        let (slots, free) = (&mut self.slots, &mut self.free);
        self.keys.retain(|k| {
            let slot = key_slot(*k);
            let event = slots[slot].as_ref().expect("a key's slot holds its event");
            if keep(event) {
                return true;
            }
            slots[slot] = None;
            free.push(slot as u32);
            false
        });
    }
}

#[cfg(test)]
mod tests {
    use super::Agenda;

    #[test]
    fn events_come_out_by_time_then_by_scheduling_order() {
        let mut a = Agenda::default();
        a.push(20, "c");
        a.push(10, "a");
        a.push(10, "b");
        a.push(20, "d");
        a.push(5, "z");
        assert_eq!(a.peek_time(), Some(5));
        assert_eq!(a.pop(), Some((5, "z")));
        assert_eq!(a.pop(), Some((10, "a")));
        assert_eq!(a.pop(), Some((10, "b")));
        assert_eq!(a.pop(), Some((20, "c")));
        assert_eq!(a.pop(), Some((20, "d")));
        assert_eq!(a.pop(), None);
    }

    #[test]
    fn retained_events_keep_their_order_and_freed_slots_are_reused() {
        let mut a = Agenda::default();
        for (at, e) in [(30, 3), (10, 1), (20, 2), (10, 4), (40, 5)] {
            a.push(at, e);
        }
        a.retain(|e| e % 2 == 1);
        a.push(15, 7);
        a.push(5, 9);
        assert_eq!(a.len(), 5);
        let order: Vec<_> = std::iter::from_fn(|| a.pop()).collect();
        assert_eq!(order, [(5, 9), (10, 1), (15, 7), (30, 3), (40, 5)]);
        assert!(a.is_empty());
    }

    /// The heap pops in (time, scheduling order), as a sorted map of the same keys does, through
    /// pushes, pops and retains interleaved.
    #[test]
    fn pops_what_a_sorted_map_pops() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut a = Agenda::default();
        let mut model = std::collections::BTreeMap::new();
        let (mut seq, mut now) = (0u64, 0u64);
        for round in 0..20_000 {
            match rng.gen_range(0..10) {
                0..=4 => {
                    let at = now + rng.gen_range(0..50);
                    a.push(at, seq);
                    model.insert((at, seq), seq);
                    seq += 1;
                }
                5..=8 => {
                    let want = model.pop_first().map(|((at, _), e)| (at, e));
                    assert_eq!(a.pop(), want);
                    if let Some((at, _)) = want {
                        now = at;
                    }
                }
                _ if round % 50 == 0 => {
                    let m = rng.gen_range(2..5);
                    a.retain(|e| e % m != 0);
                    model.retain(|_, e| *e % m != 0);
                }
                _ => {}
            }
            assert_eq!(a.len(), model.len());
            assert_eq!(a.peek_time(), model.keys().next().map(|(at, _)| *at));
        }
    }
}
