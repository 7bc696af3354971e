//! Collapse in the world: a node's TLog folded into its head and removed, on its simulated disk,
//! by the node crate's one collapse (`head::plan` and `head::collapse_planned`, the code the
//! server runs for `collapse_tlogs`), with the head kept as a file on the same disk
//! ([`FileHead`]): it loses what was not synced, tears it, and its fsync may fail, like the TLog.
//!
//! The collapse runs within one event of a running node, as the server's runs on a thread beside
//! the core, and with the node's catch-up readers' pins (`World::pins`): the world's catch-ups
//! stream in steps across events (super::catchup), so a collapse may fall between two reads of
//! a stream from this node, and keeps the files the stream pinned ([`COLLAPSE_KEPT_PINNED`]), as
//! the server's does. Crashes strike inside it through disk trips armed for it
//! ([`CrashPoint::COLLAPSE`]): before the head's sync (the fold is lost, the old head stays),
//! after the head is durable and before the first removal, and between two removals. A failed
//! fsync fails the collapse and nothing more, as on the server (the connection hears the error;
//! the core goes on: the TLog is untouched).
//!
//! A lagging node whose next slots its peer has collapsed away adopts the peer's head with the
//! server's own adoption (super::adopt). What is left here of restoring from a peer is the
//! operator's restore of a lost disk ([`World::restore_from`]): the node's disk replaced by a
//! copy of the peer's head and of the committed log after it, before the node starts.

use super::catchup::COLLAPSE_KEPT_PINNED;
use super::rules::CrashPoint;
use super::run::{World, CLUSTER_ID};
use arakoon_node::consensus::NodeIdx;
use arakoon_node::head::{self, CollapseError, FileHead, Pins, HEAD_FILE};
use arakoon_node::store::Store;
use arakoon_node::tlog::{
    self, for_each_committed, BallotRecord, FileKind, LogDir, MemDir, TlogConfig, TlogFile,
    TlogWriter, Trip,
};
use arakoon_node::value::Value;
use std::sync::Arc;

/// The name under which the report counts a collapse that removed files.
pub const COLLAPSED: &str = "collapse: files folded into the head and removed";
/// A collapse whose fsync failed: it removed nothing durably and the node went on.
pub const COLLAPSE_FSYNC_FAILED: &str = "collapse: an fsync failed, the node went on";
/// A catch-up whose slots were collapsed away at its peer adopted the peer's head (the server's
/// adoption, run by super::adopt).
pub const HEAD_ADOPTED: &str = "catch-up: a collapsed peer's head adopted";
/// A head damaged at rest (a flipped bit, a cut), refused at the node's start by its CRC.
pub const DAMAGED_HEAD_REFUSED: &str = "start: a damaged head refused";
/// A node restored from a peer that has a head (a lost disk, or a log refused at start).
pub const RESTORED_WITH_HEAD: &str = "restore: from a collapsed peer, head and log";

/// What a node restored from a peer gets: the peer's head (its file, as the peer has it) and the
/// committed entries after it.
pub(super) struct PeerCopy {
    head: Option<Vec<u8>>,
    /// The number of the copy's first TLog file: the peer's first, and never 0 with a head (a
    /// log starting at file 0 is a log that was never collapsed).
    first_file: u64,
    entries: Vec<(u64, Value)>,
}

impl PeerCopy {
    /// Reads what peer `disk` holds; `None` when its head is unreadable or its log does not
    /// resume where its head ends.
    pub(super) fn read(disk: &MemDir) -> Option<PeerCopy> {
        let head = disk.contents(HEAD_FILE);
        let head_next = match head {
            Some(_) => FileHead::new(Arc::new(disk.clone())).load(CLUSTER_ID).ok()??.next_i(),
            None => 0,
        };
        let mut entries = Vec::new();
        for_each_committed::<()>(disk, head_next, false, &mut |e| {
            entries.push((e.i, e.value));
            Ok(())
        })
        .ok()?
        .ok()?;
        if entries.first().is_some_and(|(i, _)| *i != head_next) {
            return None;
        }
        let first = tlog::list_files(disk).ok()?.first().map_or(0, |f| f.number);
        let first_file = if head.is_some() { first.max(1) } else { 0 };
        Some(PeerCopy { head, first_file, entries })
    }

    pub(super) fn has_head(&self) -> bool {
        self.head.is_some()
    }

    pub(super) fn slots(&self) -> usize {
        self.entries.len()
    }

    /// Writes the copy on the empty disk `disk`, with ballot record `ballot`. False if a write
    /// fails.
    pub(super) fn write(&self, disk: &MemDir, tlog: TlogConfig, ballot: BallotRecord) -> bool {
        if let Some(bytes) = &self.head {
            disk.put(HEAD_FILE, bytes);
        }
        if self.first_file > 0 {
            let name = TlogFile::new(self.first_file, FileKind::Tlog).name();
            if disk.create(&name).and_then(|_| disk.sync_dir()).is_err() {
                return false;
            }
        }
        let dir: Arc<dyn LogDir> = Arc::new(disk.clone());
        let Ok((mut w, _)) = TlogWriter::open(dir, tlog, "restore") else { return false };
        let refs: Vec<(u64, &Value)> = self.entries.iter().map(|(i, v)| (*i, v)).collect();
        w.append(&refs).is_ok() && ballot.store(disk).is_ok()
    }
}

impl World {
    /// Collapses running node `k`'s TLog keeping the open file and `keep` sealed ones, with a
    /// crash at `point` if it is reached. Returns a note for the trace and the drill's log.
    pub(super) fn collapse(&mut self, k: NodeIdx, keep: u64, point: Option<CrashPoint>) -> String {
        if !self.nodes[k].is_up() || self.nodes[k].paused {
            return format!("n{k} is not running");
        }
        let disk = self.nodes[k].disk.clone();
        let pins = self.pins[k].clone();
        let result = collapse_disk(&disk, keep, point, Some(&pins));
        if result.as_ref().is_ok_and(|r| !r.kept_pinned.is_empty()) {
            self.exercised(COLLAPSE_KEPT_PINNED);
        }
        match result {
            Ok(report) if report.removed.is_empty() => "nothing to collapse".into(),
            Ok(report) => {
                self.exercised(COLLAPSED);
                let (first, last) = (&report.removed[0], &report.removed[report.removed.len() - 1]);
                let n = report.removed.len();
                format!("head at {:?}, removed {first}..{last} ({n} files)", report.head_i)
            }
            Err(e) => match disk.take_struck() {
                Some(Trip::FailNextSync) => {
                    self.exercised(COLLAPSE_FSYNC_FAILED);
                    format!("failed, the node goes on: {e}")
                }
                Some(trip) => {
                    let point =
                        CrashPoint::of_trip(trip).expect("every power cut is a crash point");
                    self.exercised(point.name());
                    let torn = self.mix.torn_writes;
                    self.crash_at_point(k, torn);
                    format!("crashed at {}", point.name())
                }
                None if self.nodes[k].disk_full => format!("failed on a full disk: {e}"),
                None => {
                    self.fail("collapse", format!("n{k}: {e}"));
                    format!("failed: {e}")
                }
            },
        }
    }

    /// Replaces node `k`'s disk (its process stopped) with a copy of peer `p`'s head and
    /// committed log, with ballot record `ballot`. False when `p` holds nothing to copy from or a
    /// write fails.
    pub(super) fn restore_from(&mut self, k: NodeIdx, p: NodeIdx, ballot: BallotRecord) -> bool {
        let Some(copy) = PeerCopy::read(&self.nodes[p].disk) else { return false };
        self.write_copy(k, p, &copy, ballot)
    }

    fn write_copy(
        &mut self,
        k: NodeIdx,
        p: NodeIdx,
        copy: &PeerCopy,
        ballot: BallotRecord,
    ) -> bool {
        self.nodes[k].wipe_disk();
        if !copy.write(&self.nodes[k].disk, self.cluster.tlog(), ballot) {
            return false;
        }
        if copy.has_head() {
            self.exercised(RESTORED_WITH_HEAD);
        }
        let n = copy.slots();
        let head = if copy.has_head() { " and its head" } else { "" };
        self.trace(|| format!("n{k} restored {n} slots{head} from n{p}"), 5);
        true
    }
}

/// The node crate's collapse of the TLog on `disk` (a running node's), keeping the open file and
/// `keep` sealed ones, into the head kept on the same disk; with the power cut at `point` if the
/// collapse gets there (a trip armed already, a failing fsync or a rollover's, stays instead and
/// may strike here).
pub fn collapse_disk(
    disk: &MemDir,
    keep: u64,
    point: Option<CrashPoint>,
    pins: Option<&Pins>,
) -> Result<head::Report, CollapseError> {
    let trip = point.and_then(CrashPoint::trip).filter(|_| disk.armed().is_none());
    if trip.is_some() {
        disk.arm(trip);
    }
    let dir: Arc<dyn LogDir> = Arc::new(disk.clone());
    let head = FileHead::new(dir.clone());
    let result = head::plan(dir.as_ref(), keep).map_err(CollapseError::from).and_then(|plan| {
        head::collapse_planned(dir.as_ref(), &head, CLUSTER_ID, &plan, pins, &mut |_| {})
    });
    if trip.is_some() && disk.armed() == trip {
        // The collapse ended before the point (fewer files to remove): nothing struck.
        disk.arm(None);
    }
    result
}

#[cfg(test)]
pub(in crate::world) mod tests {
    use super::*;
    use crate::world::clock::SimClock;
    use crate::world::node::{tlog_config, SimNode, StartRefused};
    use arakoon_node::config::ClusterConfig;
    use arakoon_node::server::startup::StartError;
    use arakoon_node::shell::ShellConfig;
    use arakoon_node::value::Update;

    /// A one-node cluster (its last slot is committed too), with the world's small TLog files.
    pub(in crate::world) fn cluster() -> ClusterConfig {
        let mut c = arakoon_chaos::drill::sample_config(1);
        c.cluster_id = CLUSTER_ID.into();
        c.tlog_max_entries = tlog_config().entries_per_file_max;
        c.tlog_max_size = tlog_config().file_bytes_max;
        c
    }

    pub(in crate::world) fn start(node: &mut SimNode) -> Result<Option<String>, StartRefused> {
        let c = cluster();
        node.start(c.consensus(0), ShellConfig::new(&c, 0), c.tlog(), CLUSTER_ID, 0, 7)
    }

    /// A node whose log holds slots `0..slots` (about five sealed files and an open one), synced.
    pub(in crate::world) fn node_with_log(slots: u64) -> SimNode {
        let node = SimNode::new("n0".into(), SimClock::default());
        let dir: Arc<dyn LogDir> = Arc::new(node.disk.clone());
        let (mut w, _) = TlogWriter::open(dir, tlog_config(), "n0").unwrap();
        for i in 0..slots {
            let v = Value::client(vec![Update::Set {
                key: format!("k{}", i % 23).into_bytes(),
                value: format!("v{i}").into_bytes(),
            }]);
            w.append(&[(i, &v)]).unwrap();
        }
        drop(w);
        node.disk.sync_dir().unwrap();
        node
    }

    /// A store's applied slot and its user pairs.
    pub(in crate::world) type Held = (Option<u64>, Vec<(Vec<u8>, Vec<u8>)>);

    pub(in crate::world) fn store_of(node: &SimNode) -> Held {
        let s = &node.state.as_ref().expect("running").store;
        (s.applied(), s.entries().iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    /// A node collapsed, crashed at each point inside the collapse (or not at all), restarts with
    /// every committed slot: its store equals that of a node that never collapsed, whatever
    /// part of the unsynced bytes survived.
    #[test]
    fn a_node_crashed_anywhere_in_a_collapse_restarts_with_every_committed_slot() {
        const SLOTS: u64 = 400;
        let mut never = node_with_log(SLOTS);
        start(&mut never).unwrap();
        let expected = store_of(&never);
        assert_eq!(expected.0, Some(SLOTS - 1));
        let points = [None].into_iter().chain(CrashPoint::COLLAPSE.map(Some));
        for (point, torn) in points.flat_map(|p| [(p, 0usize), (p, 5), (p, usize::MAX)]) {
            let mut node = node_with_log(SLOTS);
            start(&mut node).unwrap();
            let before = tlog::list_files(&node.disk).unwrap().len();
            let result = collapse_disk(&node.disk, 1, point, None);
            match point {
                None => {
                    let report = result.unwrap();
                    assert_eq!(report.removed.len(), before - 2, "keeps 1 sealed and the open");
                    assert!(node.disk.struck().is_none());
                }
                Some(p) => {
                    assert!(result.is_err(), "{p:?} strikes");
                    assert_eq!(node.disk.take_struck(), p.trip(), "{p:?}");
                }
            }
            node.crash(|unsynced| torn.min(unsynced));
            start(&mut node).unwrap_or_else(|e| panic!("{point:?}, torn {torn}: {e}"));
            assert_eq!(store_of(&node), expected, "{point:?}, torn {torn}");
            let collapsed = head::log_start(&node.disk).unwrap().unwrap().first_file > 0;
            assert_eq!(collapsed, point.is_none(), "{point:?}: only a whole collapse removes");
        }
    }

    /// A head that does not cover the log's first slot is refused at start, with the server's
    /// error, as a collapsed log without its head is.
    #[test]
    fn a_head_that_does_not_cover_the_log_is_refused_at_start() {
        let mut node = node_with_log(400);
        start(&mut node).unwrap();
        collapse_disk(&node.disk, 1, None, None).unwrap();
        // Another node's head, folded to an earlier slot than this log's first.
        let other = node_with_log(400);
        let dir: Arc<dyn LogDir> = Arc::new(other.disk.clone());
        head::fold(dir.as_ref(), &FileHead::new(dir.clone()), CLUSTER_ID, 9, &mut |_| {}).unwrap();
        node.disk.put(HEAD_FILE, &other.disk.contents(HEAD_FILE).unwrap());
        node.crash(|_| 0);
        let err = start(&mut node).unwrap_err();
        assert!(
            matches!(&err, StartRefused::Start(StartError::Collapsed(p)) if p.to_string().contains("slots between are lost")),
            "{err}"
        );
        node.disk.remove(HEAD_FILE).unwrap();
        node.disk.sync_dir().unwrap();
        let err = start(&mut node).unwrap_err();
        assert!(err.to_string().contains("there is no head"), "{err}");
        // A bit flipped in the head: refused too, never read.
        let mut node = node_with_log(400);
        start(&mut node).unwrap();
        collapse_disk(&node.disk, 1, None, None).unwrap();
        node.crash(|_| 0);
        assert!(node.disk.flip_bit(HEAD_FILE, 20, 1));
        let err = start(&mut node).unwrap_err();
        assert!(matches!(err, StartRefused::Start(StartError::Head(_))), "{err}");
    }
}
