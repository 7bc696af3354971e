//! The persister's work, without its thread: group commit over the TLog writer.
//!
//! The jobs waiting when the persister turns to its work become one group: their entries are
//! appended with one call to the TLog writer (one fsync; the writer rolls over to a new file when
//! one is due, between two slots), then the newest ballot record of the group (if any job carries
//! one) is written, and only then are the group's tokens durable. Entries go first, so that a
//! durable record never names an entry a crash lost; no token is reported before the whole group
//! is durable, so writing only the newest record is the same as writing each in turn.
//!
//! Nothing here reads a clock, spawns a thread or waits: [`GroupWriter`] is synchronous and runs
//! over any [`LogDir`]. The server drives it from a thread of its own (or inline on the core's
//! task in tier B, see the parent module); the tier-A world drives it directly over its simulated
//! disk, deciding only *when* a group is written, never *what*.

use crate::shell::PersistJob;
use crate::tlog::{BallotRecord, LogDir, TlogError, TlogFile, TlogWriter};
use crate::value::Value;
use std::sync::Arc;

/// Jobs taken in one group at most (bounds the memory of one write).
pub const GROUP_JOBS_MAX: usize = 4096;

/// What one group writes: every entry of its jobs in order, one ballot record, and the tokens
/// that are durable once both are.
#[derive(Debug, PartialEq, Eq)]
pub struct Group<'a> {
    pub entries: Vec<(u64, &'a Value)>,
    pub ballot: Option<BallotRecord>,
    pub tokens: Vec<u64>,
}

/// Merges jobs (in the order the consensus core emitted them) into one group.
pub fn merge(jobs: &[PersistJob]) -> Group<'_> {
    let entries = jobs.iter().filter_map(|j| j.entry.as_ref().map(|(i, v)| (*i, v))).collect();
    // The newest record: it supersedes every older one of the group.
    let newest = jobs.iter().rev().find_map(|j| j.ballot);
    // Planted bug PersisterBatchOldestBallot, at the edge of the choice of the record.
    let ballot = if crate::planted!(PersisterBatchOldestBallot) {
        jobs.iter().find_map(|j| j.ballot)
    } else {
        newest
    };
    Group { entries, ballot, tokens: jobs.iter().map(|j| j.token).collect() }
}

/// The TLog writer and the ballot record's directory, as the persister uses them: it writes
/// groups, imports fetched entries, rolls over and closes, and after a failed group it stops for
/// good (what reached the disk is unknown; only a restart, which validates the log, can tell).
pub struct GroupWriter {
    writer: TlogWriter,
    dir: Arc<dyn LogDir>,
    stopped: bool,
}

/// The refusal of a stopped writer.
pub fn stopped() -> TlogError {
    TlogError::WriterStopped { path: "persister".into() }
}

impl GroupWriter {
    pub fn new(writer: TlogWriter, dir: Arc<dyn LogDir>) -> GroupWriter {
        GroupWriter { writer, dir, stopped: false }
    }

    /// Writes `jobs` as one group; returns their tokens, now durable, in order. A failure stops
    /// the writer.
    pub fn write(&mut self, jobs: &[PersistJob]) -> Result<Vec<u64>, TlogError> {
        if self.stopped {
            return Err(stopped());
        }
        assert!(jobs.len() <= GROUP_JOBS_MAX, "a group of {} jobs", jobs.len());
        let group = merge(jobs);
        let written = self.write_group(&group);
        match written {
            Ok(()) => Ok(group.tokens),
            Err(e) => {
                self.stopped = true;
                Err(e)
            }
        }
    }

    fn write_group(&mut self, group: &Group<'_>) -> Result<(), TlogError> {
        if !group.entries.is_empty() {
            self.writer.append(&group.entries)?;
        }
        if let Some(ballot) = group.ballot {
            ballot.store(self.dir.as_ref())?;
        }
        Ok(())
    }

    /// Appends entries fetched from a peer during catch-up; they must continue the log. Those
    /// below the log's last slot are passed over: the log holds them already (see
    /// [`held_below_last`]).
    pub fn import(&mut self, entries: &[(u64, Value)]) -> Result<(), TlogError> {
        if self.stopped {
            return Err(stopped());
        }
        let held = held_below_last(&self.writer, entries);
        // Planted bug ImportRefusesHeldSlots, past the end of the rule: every fetched entry is
        // taken as new, so a log that runs ahead of the store refuses the catch-up.
        let held = if crate::planted!(ImportRefusesHeldSlots) { 0 } else { held };
        let entries = &entries[held..];
        check_import(&self.writer, entries)?;
        let mut refs: Vec<(u64, &Value)> = entries.iter().map(|(i, v)| (*i, v)).collect();
        // Planted bug CatchUpKeepsStaleSlot, past the end of the continuity check: the fetched
        // entry for the log's last slot is taken to be the one the log holds, and not written.
        if crate::planted!(CatchUpKeepsStaleSlot) {
            let last = self.writer.last_i();
            refs.retain(|(i, _)| Some(*i) != last);
        }
        self.writer.append(&refs)
    }

    pub fn roll_over(&mut self) -> Result<(), TlogError> {
        if self.stopped {
            return Err(stopped());
        }
        self.writer.roll_over()
    }

    /// Writes the closed marker.
    pub fn close(self) -> Result<(), TlogError> {
        if self.stopped {
            return Err(stopped());
        }
        self.writer.close()
    }

    /// The log's last slot, as written.
    pub fn last_i(&self) -> Option<u64> {
        self.writer.last_i()
    }

    /// The file being appended to.
    pub fn current_file(&self) -> &TlogFile {
        self.writer.current_file()
    }

    /// Whether a failed group stopped it.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }
}

/// How many of the fetched `entries` (in order, without a gap) the log holds already: those
/// below its last slot. A catch-up fetches from the store's next slot, and the log may run ahead
/// of the store: a slave writes the Accepts it takes and applies each slot once the next one
/// proves it chosen and its own entry is durable, so a catch-up that starts meanwhile fetches
/// slots the log has. Each of them is the chosen value: the acceptor writes slot i + 1 only
/// once it knows slot i chosen (accept rule 3), so every slot below the last is. The last slot
/// itself may hold a value never chosen, and is written again.
fn held_below_last(writer: &TlogWriter, entries: &[(u64, Value)]) -> usize {
    match writer.last_i() {
        Some(last) => entries.iter().take_while(|(i, _)| *i < last).count(),
        None => 0,
    }
}

/// Imported entries must continue the log: start at its last slot (a rewrite of an uncommitted
/// slot) or right after it, without gaps.
fn check_import(writer: &TlogWriter, entries: &[(u64, Value)]) -> Result<(), TlogError> {
    let mut last = writer.last_i();
    for (i, _) in entries {
        if let Some(l) = last {
            if *i != l && *i != l + 1 {
                return Err(TlogError::ImportGap { path: writer.dir().location(), i: *i, last: l });
            }
        }
        last = Some(*i);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::{self, MemDir, TlogConfig};
    use crate::value::Update;

    fn v(i: u64) -> Value {
        Value::client(vec![Update::Set { key: vec![i as u8], value: vec![] }])
    }

    /// A group writer over an empty TLog on a disk in memory.
    fn group_writer() -> (MemDir, GroupWriter) {
        let mem = MemDir::new("g");
        let dir: Arc<dyn LogDir> = Arc::new(mem.clone());
        let (writer, _) = TlogWriter::open(dir.clone(), TlogConfig::default(), "n0").unwrap();
        (mem, GroupWriter::new(writer, dir))
    }

    fn record(n: u64) -> BallotRecord {
        BallotRecord { promised: n, accepted_n: n, accepted_from: 0, learner: false }
    }

    #[test]
    fn a_group_holds_every_entry_in_order_and_the_newest_ballot_record() {
        let jobs = [
            PersistJob { token: 1, ballot: Some(record(3)), entry: None },
            PersistJob { token: 2, ballot: None, entry: Some((0, v(0))) },
            PersistJob { token: 3, ballot: Some(record(5)), entry: Some((1, v(1))) },
            PersistJob { token: 4, ballot: None, entry: Some((2, v(2))) },
        ];
        let (v0, v1, v2) = (v(0), v(1), v(2));
        assert_eq!(
            merge(&jobs),
            Group {
                entries: vec![(0, &v0), (1, &v1), (2, &v2)],
                ballot: Some(record(5)),
                tokens: vec![1, 2, 3, 4],
            }
        );
    }

    #[test]
    fn a_written_group_is_durable_and_a_failed_one_stops_the_writer() {
        let (mem, mut w) = group_writer();
        let jobs = [
            PersistJob { token: 1, ballot: Some(record(3)), entry: Some((0, v(0))) },
            PersistJob { token: 2, ballot: Some(record(4)), entry: Some((1, v(1))) },
        ];
        assert_eq!(w.write(&jobs).unwrap(), [1, 2]);
        assert_eq!(mem.unsynced_bytes(), 0);
        let durable = mem.durable_copy();
        assert_eq!(BallotRecord::load(&durable).unwrap(), record(4));
        assert_eq!(tlog::last_i(&durable).unwrap(), Some(1));
        mem.set_failing(Some(std::io::ErrorKind::StorageFull));
        let job = PersistJob { token: 3, ballot: None, entry: Some((2, v(2))) };
        assert!(w.write(std::slice::from_ref(&job)).is_err());
        mem.set_failing(None);
        assert!(w.is_stopped());
        assert!(w.write(&[job]).is_err(), "a stopped writer writes nothing more");
        assert!(w.close().is_err());
    }

    /// A catch-up fetches from the store's next slot while the log may run ahead of the store
    /// (a slave wrote Accepts whose slots it has not applied yet): the import passes over the
    /// entries the log holds below its last slot, writes its last slot again and appends the
    /// rest. It once refused them ("catch-up entry 1 does not continue the log at 3") and the
    /// node stopped (node/tests/cluster.rs, with a slave holding Accepts while it caught up).
    #[test]
    fn an_import_passes_over_the_slots_the_log_holds_below_its_last() {
        let (mem, mut w) = group_writer();
        let jobs: Vec<PersistJob> = (0..4)
            .map(|i| PersistJob { token: i + 1, ballot: None, entry: Some((i, v(i))) })
            .collect();
        assert_eq!(w.write(&jobs).unwrap(), [1, 2, 3, 4]);
        // The store applied slot 0: the catch-up fetches from slot 1. Slot 3, the log's last,
        // held a value that was not chosen.
        let chosen_3 = Value::client(vec![Update::Set { key: b"chosen".to_vec(), value: vec![] }]);
        let fetched = vec![(1, v(1)), (2, v(2)), (3, chosen_3.clone()), (4, v(4)), (5, v(5))];
        w.import(&fetched).unwrap();
        assert_eq!(w.last_i(), Some(5));
        let mut slots = Vec::new();
        let read = tlog::for_each_committed::<()>(&mem.durable_copy(), 0, true, &mut |e| {
            slots.push((e.i, e.value));
            Ok(())
        });
        read.unwrap().unwrap();
        let want = vec![(0, v(0)), (1, v(1)), (2, v(2)), (3, chosen_3), (4, v(4)), (5, v(5))];
        assert_eq!(slots, want, "each slot once, the last one rewritten with the chosen value");
        // A gap is still refused.
        let err = w.import(&[(7, v(7))]).unwrap_err();
        assert!(matches!(err, TlogError::ImportGap { i: 7, last: 5, .. }), "{err}");
    }

    /// A failed fsync is never reported durable, and the writer writes nothing after it: the
    /// node must stop (the server does, on `Persisted::Failed`) and validate its log at restart.
    #[test]
    fn a_failed_fsync_reports_no_token_and_stops_the_writer() {
        let (mem, mut w) = group_writer();
        let first = PersistJob { token: 1, ballot: None, entry: Some((0, v(0))) };
        assert_eq!(w.write(&[first]).unwrap(), [1]);
        mem.arm(Some(tlog::Trip::FailNextSync));
        let jobs = [
            PersistJob { token: 2, ballot: Some(record(2)), entry: Some((1, v(1))) },
            PersistJob { token: 3, ballot: None, entry: Some((2, v(2))) },
        ];
        assert!(w.write(&jobs).is_err());
        assert_eq!(mem.take_struck(), Some(tlog::Trip::FailNextSync));
        let durable = mem.durable_copy();
        assert_eq!(tlog::last_i(&durable).unwrap(), Some(0), "the failed group is not durable");
        assert_eq!(BallotRecord::load(&durable).unwrap(), BallotRecord::default());
        assert!(w.is_stopped());
        assert!(w.write(&jobs).is_err(), "nor is it written again by a later sync");
    }
}
