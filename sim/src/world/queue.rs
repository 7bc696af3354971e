//! The world's agenda: events ordered by (true time, sequence number). The sequence number
//! breaks ties in the order events were scheduled, so the same seed always replays the same
//! order, with no dependence on hashing or memory addresses.

use std::collections::BTreeMap;

#[derive(Debug)]
pub struct Agenda<E> {
    events: BTreeMap<(u64, u64), E>,
    next_seq: u64,
}

impl<E> Default for Agenda<E> {
    fn default() -> Self {
        Agenda { events: BTreeMap::new(), next_seq: 0 }
    }
}

impl<E> Agenda<E> {
    /// Schedules `event` at true time `at_us`.
    pub fn push(&mut self, at_us: u64, event: E) {
        self.events.insert((at_us, self.next_seq), event);
        self.next_seq += 1;
    }

    /// The earliest event, if any, with its time.
    pub fn pop(&mut self) -> Option<(u64, E)> {
        self.events.pop_first().map(|((at, _), e)| (at, e))
    }

    pub fn peek_time(&self) -> Option<u64> {
        self.events.keys().next().map(|(at, _)| *at)
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Drops every event `keep` rejects (e.g. deliveries to a node that crashed).
    pub fn retain(&mut self, mut keep: impl FnMut(&E) -> bool) {
        self.events.retain(|_, e| keep(e));
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
        assert_eq!(a.pop(), Some((10, "a")));
        assert_eq!(a.pop(), Some((10, "b")));
        assert_eq!(a.pop(), Some((20, "c")));
        assert_eq!(a.pop(), None);
    }
}
