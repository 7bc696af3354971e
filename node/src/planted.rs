//! Planted bugs: realistic mistakes that can be switched on at run time, so that a test can show
//! the simulator finds each of them. Compiled only with the `planted-bugs` feature; without it
//! [`planted!`] is `false` and the bug code disappears.
//!
//! Each switch sits at the edge of the rule it breaks, as its own statement after the rule's
//! check (`let ok = ok || planted!(Bug)`) or after the rule's actions, so that the check itself
//! reads as the rule and a reader never steps around a bug inside it.
//!
//! The switch is per thread: the simulator runs one seed on one thread, and tests that run in
//! parallel do not see each other's bugs.

use std::cell::Cell;

/// A named bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bug {
    /// The master commits (and answers clients) once its own entry is durable, without a quorum.
    AckBeforeQuorum,
    /// A slave answers Accepted before its entry is durable.
    SkipFsyncBeforeAccepted,
    /// A slave accepts values under a ballot lower than the one it promised.
    AcceptLowerBallot,
    /// A slave applies a value as soon as it accepts it, before it is chosen.
    ApplyBeforeCommit,
    /// A master keeps serving consistent reads after its lease expired.
    ReadAfterLeaseExpired,
    /// A slave treats its last slot as chosen when the next Accept arrives, without checking
    /// that it holds the master's value for it.
    CommitUnverifiedSlot,
    /// Reading the TLog skips the CRC check.
    SkipCrcCheck,
    /// An acceptor promises to a candidate that is behind.
    LaggingMaster,
    /// The shell's read gate asks for the lease on consistent reads but lets range_entries
    /// through on any node (node/src/shell/reads.rs): a slave serves a stale range.
    RangeReadWithoutLease,
    /// The default quorum is rounded down for even cluster sizes (`n / 2` instead of
    /// `n / 2 + 1`): two halves of a 4-node cluster may both elect a master.
    EvenQuorumRoundedDown,
    /// A candidate waits for one promise more than its quorum: safe, but a cluster missing a
    /// minority never elects a master again.
    PromiseBeyondQuorum,
    /// The store reads a range's inclusive flags the wrong way round (inclusive as exclusive
    /// and back) in range, range_entries and rev_range_entries: unseen while no bound falls on
    /// a stored key.
    RangeBoundsSwapped,
    /// A restarted node promises at once, without its lease wait (rule 7): it may have
    /// forgotten a lease it granted just before it went down.
    NoLeaseWaitAfterRestart,
    /// Group commit (rule 8) hands each client of a batch the result of the next one's update.
    GroupCommitRepliesShifted,
    /// The master's lease ignores the margin (lease bound, rule 5): it runs as long as the
    /// slaves' timers, so a slow clock outlives them.
    LeaseWithoutMargin,
    /// At a TLog rollover the old file's last entries are written but not fsynced: a crash
    /// later loses them while the newer file's entries survive.
    RolloverSkipsFsync,
    /// An acceptor sends its Promise as soon as it decides to promise, before the ballot
    /// record that holds the promise is durable.
    PromiseBeforeDurable,
    /// Every node draws its ballots from the same sequence (the node's index left out of the
    /// next ballot, rule 6): two candidates can win the same ballot.
    BallotsNotUnique,
    /// The persister's group records the oldest ballot record of its jobs instead of the
    /// newest (server/persist/group.rs): a Promise or Accepted sent once the group is durable
    /// names a ballot the disk does not hold.
    PersisterBatchOldestBallot,
    /// A slave answers Held without holding the lease for the master (lease rule 5, Hold): the
    /// master renews a lease that its slaves do not keep, and another node may be elected.
    HeldWithoutLease,
    /// A node heeds a message whatever its ballot (the ballot reach check of rule 10 off): one
    /// forged ballot of 2^63 - 1 leaves it, and every node that hears of it, no higher ballot
    /// to pick, and the node refuses every master's Accept from then on.
    BallotReachUnchecked,
    /// A catch-up writes only the fetched slots past the log's last one
    /// (server/persist/group.rs): an uncommitted last slot that held a value never chosen stays
    /// in the TLog, marked committed, while the store applies the chosen one.
    CatchUpKeepsStaleSlot,
    /// A collapse removes the TLog files it folded before it flushes the head
    /// (node/src/head.rs): a crash between leaves a log that starts past what the durable head
    /// holds, and the node refuses its own files.
    HeadFlushedAfterRemoval,
    /// A collapse removes the files it folded whatever the catch-up readers pinned
    /// (node/src/head.rs): a catch-up streaming from those files finds them gone mid-stream.
    CollapseIgnoresPins,
    /// A node applies a chosen slot as soon as it learns it is chosen, before its own entry of
    /// it is durable (the apply rule, rule 4): its store, flushed meanwhile, is ahead of the log
    /// a crash leaves, and start-up refuses it.
    ApplyBeforeDurable,
    /// A catch-up's import takes every fetched entry as new (server/persist/group.rs): a slave
    /// whose log runs ahead of its store (it wrote Accepts whose slots it has not applied yet)
    /// refuses the entries its log holds, and the node stops.
    ImportRefusesHeldSlots,
}

impl Bug {
    pub const ALL: [Bug; 26] = [
        Bug::AckBeforeQuorum,
        Bug::SkipFsyncBeforeAccepted,
        Bug::AcceptLowerBallot,
        Bug::ApplyBeforeCommit,
        Bug::ReadAfterLeaseExpired,
        Bug::CommitUnverifiedSlot,
        Bug::SkipCrcCheck,
        Bug::LaggingMaster,
        Bug::RangeReadWithoutLease,
        Bug::EvenQuorumRoundedDown,
        Bug::PromiseBeyondQuorum,
        Bug::RangeBoundsSwapped,
        Bug::NoLeaseWaitAfterRestart,
        Bug::GroupCommitRepliesShifted,
        Bug::LeaseWithoutMargin,
        Bug::RolloverSkipsFsync,
        Bug::PromiseBeforeDurable,
        Bug::BallotsNotUnique,
        Bug::PersisterBatchOldestBallot,
        Bug::HeldWithoutLease,
        Bug::BallotReachUnchecked,
        Bug::CatchUpKeepsStaleSlot,
        Bug::HeadFlushedAfterRemoval,
        Bug::CollapseIgnoresPins,
        Bug::ApplyBeforeDurable,
        Bug::ImportRefusesHeldSlots,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bug::AckBeforeQuorum => "ack-before-quorum",
            Bug::SkipFsyncBeforeAccepted => "skip-fsync-before-accepted",
            Bug::AcceptLowerBallot => "accept-lower-ballot",
            Bug::ApplyBeforeCommit => "apply-before-commit",
            Bug::ReadAfterLeaseExpired => "read-after-lease-expired",
            Bug::CommitUnverifiedSlot => "commit-unverified-slot",
            Bug::SkipCrcCheck => "skip-crc-check",
            Bug::LaggingMaster => "lagging-master",
            Bug::RangeReadWithoutLease => "range-read-without-lease",
            Bug::EvenQuorumRoundedDown => "even-quorum-rounded-down",
            Bug::PromiseBeyondQuorum => "promise-beyond-quorum",
            Bug::RangeBoundsSwapped => "range-bounds-swapped",
            Bug::NoLeaseWaitAfterRestart => "no-lease-wait-after-restart",
            Bug::GroupCommitRepliesShifted => "group-commit-replies-shifted",
            Bug::LeaseWithoutMargin => "lease-without-margin",
            Bug::RolloverSkipsFsync => "rollover-skips-fsync",
            Bug::PromiseBeforeDurable => "promise-before-durable",
            Bug::BallotsNotUnique => "ballots-not-unique",
            Bug::PersisterBatchOldestBallot => "persister-batch-oldest-ballot",
            Bug::HeldWithoutLease => "held-without-lease",
            Bug::BallotReachUnchecked => "ballot-reach-unchecked",
            Bug::CatchUpKeepsStaleSlot => "catch-up-keeps-stale-slot",
            Bug::HeadFlushedAfterRemoval => "head-flushed-after-removal",
            Bug::CollapseIgnoresPins => "collapse-ignores-pins",
            Bug::ApplyBeforeDurable => "apply-before-durable",
            Bug::ImportRefusesHeldSlots => "import-refuses-held-slots",
        }
    }

    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|b| b.name() == name)
    }
}

thread_local! {
    static ACTIVE: Cell<u32> = const { Cell::new(0) };
}

/// Switches a bug on or off for this thread.
pub fn set(bug: Bug, on: bool) {
    ACTIVE.with(|a| {
        let bit = 1u32 << (bug as u32);
        a.set(if on { a.get() | bit } else { a.get() & !bit });
    });
}

/// Switches every bug off for this thread.
pub fn clear() {
    ACTIVE.with(|a| a.set(0));
}

/// Whether a bug is on for this thread.
pub fn on(bug: Bug) -> bool {
    ACTIVE.with(|a| a.get() & (1u32 << (bug as u32)) != 0)
}

/// `planted!(Name)`: whether the planted bug `Name` is switched on for this thread (the macro is
/// `false` when the crate is built without the `planted-bugs` feature).
#[macro_export]
macro_rules! planted {
    ($bug:ident) => {
        $crate::planted::on($crate::planted::Bug::$bug)
    };
}
