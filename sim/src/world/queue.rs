//! The world's agenda: events ordered by (true time, sequence number). The sequence number
//! breaks ties in the order events were scheduled, so the same seed always replays the same
//! order, with no dependence on hashing or memory addresses.
//!
//! A binary heap: every event is pushed once and popped once, and a heap does both in place
//! (a `BTreeMap` spent an eighth of a campaign's time allocating and moving its nodes). The
//! keys are unique, so the order is total and the heap's pops are the map's.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

#[derive(Debug)]
struct Entry<E> {
    at_us: u64,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at_us, self.seq) == (other.at_us, other.seq)
    }
}

impl<E> Eq for Entry<E> {}

impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Entry<E> {
    /// Reversed: the heap's greatest is the earliest event.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_us, other.seq).cmp(&(self.at_us, self.seq))
    }
}

#[derive(Debug)]
pub struct Agenda<E> {
    events: BinaryHeap<Entry<E>>,
    next_seq: u64,
}

impl<E> Default for Agenda<E> {
    fn default() -> Self {
        Agenda { events: BinaryHeap::with_capacity(256), next_seq: 0 }
    }
}

impl<E> Agenda<E> {
    /// Schedules `event` at true time `at_us`.
    pub fn push(&mut self, at_us: u64, event: E) {
        self.events.push(Entry { at_us, seq: self.next_seq, event });
        self.next_seq += 1;
    }

    /// The earliest event, if any, with its time.
    pub fn pop(&mut self) -> Option<(u64, E)> {
        self.events.pop().map(|e| (e.at_us, e.event))
    }

    pub fn peek_time(&self) -> Option<u64> {
        self.events.peek().map(|e| e.at_us)
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Drops every event `keep` rejects (e.g. deliveries to a node that crashed).
    pub fn retain(&mut self, mut keep: impl FnMut(&E) -> bool) {
        self.events.retain(|e| keep(&e.event));
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
}
