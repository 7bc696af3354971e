//! The world's agenda: events ordered by (true time, sequence number). The sequence number
//! breaks ties in the order events were scheduled, so the same seed always replays the same
//! order, with no dependence on hashing or memory addresses.
//!
//! A binary heap of small keys (time, sequence number, slot) over a slab of events: every
//! event is pushed once and popped once, and the heap does both in place, moving 24-byte keys
//! rather than whole events (a `BTreeMap` of events spent an eighth of a campaign's time
//! allocating and moving its nodes). The keys are unique, so the order is total and the heap
//! pops what the map popped.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

#[derive(Debug, Clone, Copy)]
struct Key {
    at_us: u64,
    seq: u64,
    slot: u32,
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        (self.at_us, self.seq) == (other.at_us, other.seq)
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    /// Reversed: the heap's greatest is the earliest event.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_us, other.seq).cmp(&(self.at_us, self.seq))
    }
}

#[derive(Debug)]
pub struct Agenda<E> {
    keys: BinaryHeap<Key>,
    /// The events, at their keys' slots; `None` where a slot is free.
    slots: Vec<Option<E>>,
    /// Free slots, reused before the slab grows.
    free: Vec<u32>,
    next_seq: u64,
}

impl<E> Default for Agenda<E> {
    fn default() -> Self {
        Agenda {
            keys: BinaryHeap::with_capacity(256),
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
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 events pending")
            }
        };
        self.keys.push(Key { at_us, seq: self.next_seq, slot });
        self.next_seq += 1;
    }

    /// The earliest event, if any, with its time.
    pub fn pop(&mut self) -> Option<(u64, E)> {
        let key = self.keys.pop()?;
        let event = self.slots[key.slot as usize].take().expect("a key's slot holds its event");
        self.free.push(key.slot);
        Some((key.at_us, event))
    }

    pub fn peek_time(&self) -> Option<u64> {
        self.keys.peek().map(|k| k.at_us)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Drops every event `keep` rejects (e.g. deliveries to a node that crashed).
    pub fn retain(&mut self, mut keep: impl FnMut(&E) -> bool) {
        let (slots, free) = (&mut self.slots, &mut self.free);
        self.keys.retain(|k| {
            let event = slots[k.slot as usize].as_ref().expect("a key's slot holds its event");
            if keep(event) {
                return true;
            }
            slots[k.slot as usize] = None;
            free.push(k.slot);
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
}
