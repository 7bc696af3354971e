//! Rule checks where the rule is kept, not only at the end of a run.
//!
//! The world knows what each node's simulated disk holds durably (what a power loss now would
//! leave). At every send of a Promise or an Accepted, and at every client acknowledgement of a
//! write, it asserts that the node names only durable state: "persist before promise/accept"
//! (docs/CONSENSUS.md) checked where it is kept, so that a node that answers before its fsync
//! fails at once, with the message that broke it, instead of waiting for an unlucky crash to
//! turn it into lost agreement. In the same way, at every Hold that reaches a slave which
//! promised or accepted its ballot for the Hold's sender, it asserts that the slave answers
//! with Held (lease rule 5): the sender is the master of that ballot as the world saw it, not as
//! the node infers it from the ballot. Each check has a name; the run counts how often each one
//! was exercised (`RunReport::exercised`), and so does the campaign report.
//!
//! Crash points go with them: the nemesis arms a crash at a point where a crash matters (see
//! [`CrashPoint`]) instead of only at a random instant, and the node crashes when it gets there.
//! Points inside the node's own writes (in the middle of a rollover, of the ballot record's
//! replacement) are armed on the simulated disk ([`Trip`]): the power is cut at that operation,
//! the writer sees an error, and the world crashes the node; the node's code has no hook.

use super::run::World;
use arakoon_node::consensus::{Msg, NodeIdx};
use arakoon_node::tlog::{self, BallotRecord, TlogError, Trip};

/// A Promise names a ballot (and a last slot) that is durable on the node's disk.
pub const PERSIST_BEFORE_PROMISE: &str = "persist-before-promise";
/// An Accepted names a ballot and a slot that are durable on the node's disk.
pub const PERSIST_BEFORE_ACCEPTED: &str = "persist-before-accepted";
/// A write acknowledged to a client is in the durable log of the node that acknowledged it.
pub const PERSIST_BEFORE_ACK: &str = "persist-before-ack";
/// A slot a node applies to its store is in its own durable log: the store, which outlives a
/// crash as far as it was flushed, is never ahead of the log that start-up replays it from.
pub const PERSIST_BEFORE_APPLY: &str = "persist-before-apply";
/// A node started from its store as last flushed, the log replayed after it (not a check: a
/// path the world counts, as it counts crash points).
pub const START_FROM_FLUSHED: &str = "start: from the store as last flushed";
/// A slave that promised ballot `n` to the master of `n` answers that master's Hold(n, t) with
/// Held(n, t) (lease rule 5): the master of `n` is the node the world saw it promise or accept
/// `n` for, whatever the node infers from the ballot.
pub const HOLD_ANSWERED: &str = "hold-answered";

/// Where an armed crash strikes: the points between two steps that a crash must not break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// A persist job is durable, and the Promise or Accepted it allows is not sent yet.
    AfterPersistBeforeSend,
    /// A chosen slot is in the TLog and the node applied it, before it answered the clients
    /// or told the slaves (the store, as last flushed, is brought up to the TLog at restart).
    AfterApplyBeforeReply,
    /// The write that rolled the TLog over to a new file, torn: part of what was not synced
    /// survives.
    AtRollover,
    /// In a rollover, the new file created and the directory not synced yet (a disk trip).
    RolloverBeforeDirSync,
    /// In a rollover, the new file named durably and its first entries not synced (a disk
    /// trip).
    RolloverBeforeFirstSync,
    /// The ballot record's new copy written and synced, not yet renamed into place (a disk
    /// trip).
    BeforeBallotRename,
    /// In a collapse, the head folded and its new copy written, not synced yet (a disk trip).
    CollapseBeforeHeadSync,
    /// In a collapse, the head durable, no TLog file removed yet (a disk trip).
    CollapseBeforeRemoval,
    /// In a collapse, a TLog file removed (durably only once the directory is synced, after
    /// the last), the next one not yet (a disk trip).
    CollapseBetweenRemovals,
    /// In an adoption of a peer's head, the fetched head exchanged with the node's own, the
    /// directory not synced yet (a disk trip).
    AdoptBeforeHeadSync,
    /// In an adoption, the new head durable, the empty TLog file the log restarts with created
    /// and its name not synced yet (a disk trip).
    AdoptBeforeRestartSync,
    /// In an adoption, the log restarted, none of the node's old TLog files removed yet (a disk
    /// trip).
    AdoptBeforeRemoval,
    /// In an adoption, an old TLog file removed, the next one not yet (a disk trip).
    AdoptBetweenRemovals,
}

impl CrashPoint {
    pub const ALL: [CrashPoint; 6] = [
        CrashPoint::AfterPersistBeforeSend,
        CrashPoint::AfterApplyBeforeReply,
        CrashPoint::AtRollover,
        CrashPoint::RolloverBeforeDirSync,
        CrashPoint::RolloverBeforeFirstSync,
        CrashPoint::BeforeBallotRename,
    ];

    /// The points inside a collapse, armed by the collapse fault itself ([`super::collapse`]),
    /// never drawn by a kill: a kill draws among [`CrashPoint::ALL`] as before they existed, so
    /// that a seed without collapses draws what it drew then.
    pub const COLLAPSE: [CrashPoint; 3] = [
        CrashPoint::CollapseBeforeHeadSync,
        CrashPoint::CollapseBeforeRemoval,
        CrashPoint::CollapseBetweenRemovals,
    ];

    /// The points inside an adoption of a peer's head (`arakoon_node::head::adopt_head`), armed
    /// by the catch-up that adopts ([`super::adopt`]), never drawn by a kill.
    pub const ADOPT: [CrashPoint; 4] = [
        CrashPoint::AdoptBeforeHeadSync,
        CrashPoint::AdoptBeforeRestartSync,
        CrashPoint::AdoptBeforeRemoval,
        CrashPoint::AdoptBetweenRemovals,
    ];

    /// The name the report counts it under.
    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::AfterPersistBeforeSend => "crash-after-persist-before-send",
            CrashPoint::AfterApplyBeforeReply => "crash-after-apply-before-reply",
            CrashPoint::AtRollover => "crash-at-rollover",
            CrashPoint::RolloverBeforeDirSync => "crash-at-rollover-before-dir-sync",
            CrashPoint::RolloverBeforeFirstSync => "crash-at-rollover-before-first-sync",
            CrashPoint::BeforeBallotRename => "crash-before-ballot-rename",
            CrashPoint::CollapseBeforeHeadSync => "crash-in-collapse-before-head-sync",
            CrashPoint::CollapseBeforeRemoval => "crash-in-collapse-before-removal",
            CrashPoint::CollapseBetweenRemovals => "crash-in-collapse-between-removals",
            CrashPoint::AdoptBeforeHeadSync => "crash-in-adoption-before-head-sync",
            CrashPoint::AdoptBeforeRestartSync => "crash-in-adoption-before-restart-sync",
            CrashPoint::AdoptBeforeRemoval => "crash-in-adoption-before-removal",
            CrashPoint::AdoptBetweenRemovals => "crash-in-adoption-between-removals",
        }
    }

    /// The disk trip that strikes at this point, for the points inside the node's writes.
    pub fn trip(self) -> Option<Trip> {
        match self {
            CrashPoint::RolloverBeforeDirSync => Some(Trip::CutBeforeNewTlogDirSync),
            CrashPoint::RolloverBeforeFirstSync => Some(Trip::CutBeforeNewTlogDataSync),
            CrashPoint::BeforeBallotRename => Some(Trip::CutBeforeBallotRename),
            CrashPoint::CollapseBeforeHeadSync => Some(Trip::CutBeforeHeadSync),
            CrashPoint::CollapseBeforeRemoval => Some(Trip::CutBeforeTlogRemoval { after: 0 }),
            CrashPoint::CollapseBetweenRemovals => Some(Trip::CutBeforeTlogRemoval { after: 1 }),
            CrashPoint::AdoptBeforeHeadSync => Some(Trip::CutBeforeHeadDirSync),
            CrashPoint::AdoptBeforeRestartSync => Some(Trip::CutBeforeNewTlogDirSync),
            CrashPoint::AdoptBeforeRemoval => Some(Trip::CutBeforeTlogRemoval { after: 0 }),
            CrashPoint::AdoptBetweenRemovals => Some(Trip::CutBeforeTlogRemoval { after: 1 }),
            _ => None,
        }
    }

    /// The point of a disk trip that cuts the power (the first that names it: an adoption's
    /// points share their trips with the rollover's and the collapse's, and the adoption names
    /// the one it armed itself).
    pub fn of_trip(trip: Trip) -> Option<CrashPoint> {
        let points = CrashPoint::ALL.into_iter().chain(CrashPoint::COLLAPSE);
        points.chain(CrashPoint::ADOPT).find(|p| p.trip() == Some(trip))
    }
}

/// What node `k` holds durably: its ballot record and its log's last slot.
struct DurableView {
    record: Result<BallotRecord, TlogError>,
    last_i: Result<Option<u64>, TlogError>,
}

impl World {
    /// Counts one exercise of the named check.
    pub(super) fn exercised(&mut self, check: &'static str) {
        // Some checks run at every event: a short scan of a few names, most often a hit on the
        // first comparison of lengths; the report's map of `String`s is filled at the run's end.
        match self.exercised_counts.iter_mut().find(|(name, _)| *name == check) {
            Some((_, count)) => *count += 1,
            None => self.exercised_counts.push((check, 1)),
        }
    }

    /// The writer's last slot when node `k`'s disk holds nothing unsynced: then the disk is
    /// what survives, and the writer wrote all of it (`None`: a durable copy must be read).
    fn synced_last_i(&self, k: NodeIdx) -> Option<Option<u64>> {
        let last = self.nodes[k].state.as_ref().map(|s| s.persister.last_i())?;
        self.nodes[k].disk.all_synced().then_some(last)
    }

    /// The last slot of node `k`'s durable log, without reading its ballot record (an apply
    /// and an acknowledgement name a slot, not a ballot).
    fn durable_last_i(&self, k: NodeIdx) -> Result<Option<u64>, TlogError> {
        match self.synced_last_i(k) {
            Some(last) => Ok(last),
            None => tlog::last_i(&self.nodes[k].disk.durable_copy()),
        }
    }

    fn durable_view(&self, k: NodeIdx) -> DurableView {
        let disk = &self.nodes[k].disk;
        match self.synced_last_i(k) {
            Some(last) => DurableView { record: BallotRecord::load(disk), last_i: Ok(last) },
            None => {
                let durable = disk.durable_copy();
                DurableView { record: BallotRecord::load(&durable), last_i: tlog::last_i(&durable) }
            }
        }
    }

    /// Node `k` is about to send `msg`: a Promise or an Accepted names only durable state.
    pub(super) fn check_send(&mut self, k: NodeIdx, to: NodeIdx, msg: &Msg) {
        let (check, n, slot) = match msg {
            Msg::Promise { n, last, .. } => {
                self.promised_to[k] = Some((*n, to));
                (PERSIST_BEFORE_PROMISE, *n, last.as_ref().map(|l| l.0))
            }
            Msg::Accepted { n, i } => {
                self.promised_to[k] = Some((*n, to));
                (PERSIST_BEFORE_ACCEPTED, *n, Some(*i))
            }
            Msg::Held { n, t } => {
                // Not a durability rule (a lease is volatile); counted to show the world
                // exercises the lease kept by Hold, which its lease check then judges.
                self.exercised("lease held by Hold");
                if self.hold_due == Some((k, to, *n, *t)) {
                    self.hold_due = None;
                }
                return;
            }
            _ => return,
        };
        self.exercised(check);
        let view = self.durable_view(k);
        let problem = match (&view.record, &view.last_i) {
            (Err(e), _) | (_, Err(e)) => Some(format!("its durable state does not read: {e}")),
            (Ok(r), _) if r.promised < n => {
                Some(format!("its durable ballot record promised only {}", r.promised))
            }
            (Ok(r), _) if check == PERSIST_BEFORE_ACCEPTED && r.accepted_n < n => {
                Some(format!("its durable ballot record accepted only under {}", r.accepted_n))
            }
            (_, Ok(last)) if slot.is_some() && *last < slot => {
                Some(format!("its durable log ends at {last:?}"))
            }
            _ => None,
        };
        if let Some(problem) = problem {
            self.fail(check, format!("n{k} sent n{to} {msg:.80?}, but {problem}"));
        }
    }

    /// Hold(n, t) from `from` reaches node `k`: whether `k` must answer it with Held (it is a
    /// slave, its promise is `n`, and it promised or accepted `n` for `from`). Call before the
    /// node handles it, then [`World::hold_answered`] after.
    pub(super) fn expect_held(&mut self, k: NodeIdx, from: NodeIdx, msg: &Msg) {
        let Msg::Hold { n, t } = msg else { return };
        let Some(m) = self.nodes[k].state.as_ref().map(|s| &s.machine) else { return };
        let slave = m.role() == arakoon_node::consensus::RoleName::Slave;
        if slave && m.promised() == *n && self.promised_to[k] == Some((*n, from)) {
            self.exercised(HOLD_ANSWERED);
            self.hold_due = Some((k, from, *n, *t));
        }
    }

    /// Node `k` handled a Hold: fails the check if it owed a Held and did not send it.
    pub(super) fn hold_answered(&mut self, k: NodeIdx) {
        let Some((slave, master, n, t)) = self.hold_due.take() else { return };
        if slave == k && self.nodes[k].is_up() {
            let detail = format!(
                "n{k} promised {n} to n{master}, its master, and did not answer its Hold(n: {n}, t: {t}) with Held"
            );
            self.fail(HOLD_ANSWERED, detail);
        }
    }

    /// Node `k` is about to acknowledge a client's write chosen in slot `i`.
    /// Node `k` applies slot `i` to its store: its durable log holds `i`.
    pub(super) fn check_apply(&mut self, k: NodeIdx, i: u64) {
        self.exercised(PERSIST_BEFORE_APPLY);
        let broken = match self.durable_last_i(k) {
            Err(e) => Some(format!("its durable log does not read: {e}")),
            Ok(last) if last < Some(i) => Some(format!("its durable log ends at {last:?}")),
            Ok(_) => None,
        };
        if let Some(why) = broken {
            self.fail(
                PERSIST_BEFORE_APPLY,
                format!("n{k} applied slot {i} to its store, but {why}"),
            );
        }
    }

    pub(super) fn check_ack(&mut self, k: NodeIdx, client: usize, i: u64) {
        self.exercised(PERSIST_BEFORE_ACK);
        let problem = match self.durable_last_i(k) {
            Err(e) => Some(format!("its durable log does not read: {e}")),
            Ok(last) if last < Some(i) => Some(format!("its durable log ends at {last:?}")),
            Ok(_) => None,
        };
        if let Some(problem) = problem {
            let detail =
                format!("n{k} acknowledged client {client}'s write of slot {i}, but {problem}");
            self.fail(PERSIST_BEFORE_ACK, detail);
        }
    }

    /// Whether node `k` crashes at `point` now: once, if the nemesis armed that point on it.
    pub(super) fn crash_point(&mut self, k: NodeIdx, point: CrashPoint) -> bool {
        if self.armed[k] != Some(point) || !self.nodes[k].is_up() {
            return false;
        }
        self.armed[k] = None;
        self.exercised(point.name());
        self.trace(|| format!("crash n{k} at {}", point.name()), 17);
        true
    }
}
