//! Adopting a collapsed peer's head in the world, with the server's own adoption.
//!
//! When a stream's pin says the slots asked for are collapsed away, the catcher fetches
//! the peer's head (`get_db`: the head as the peer holds it on its disk, [`FileHead`]) and
//! writes it where a fetched head waits (`head.db.incoming`, synced), leftovers of an earlier
//! try removed first, as `fetch_head` does; the store's copy is built in memory. Then, as the
//! server's core does (server/event_loop.rs `adopt_head`), its TLog writer is closed and the
//! node crate's adoption runs over its simulated disk: `arakoon_node::server::catchup::
//! adopt_fetched`, the same steps as production's `adopt_closed` (the head exchanged in, the
//! directory synced, the old head removed, an empty TLog file created after the last, the old
//! files removed lowest first, the store replaced, the writer opened again). The node keeps
//! running, its ballot record untouched; the stream then goes on from the slot after the head.
//! Crashes strike inside the adoption through disk trips ([`CrashPoint::ADOPT`], one adoption
//! in two), and a failed fsync fails it: the server then stops ([`ADOPT_FSYNC_FAILED`]), as
//! after any failed write. The node's start-up must accept what any of those leaves. The
//! fetch and the adoption run within one event: on the server, the catcher's head lock keeps
//! its own collapse out meanwhile, and the peer's `get_db` waits for its running collapse.
//!
//! What the world does not exercise of this: the store's step on disk (`replace_store`'s
//! `remove_dir_all` and rename of sled directories, and sled's own behaviour in a crash: the
//! world's store is in memory and its step 4 swaps it, its start-up rebuilding the store from
//! head and log as if the store were lost; node/src/head/tests.rs crashes production's steps on
//! the real file system), `get_db` streaming the peer's head while the peer collapses and the
//! catcher's head lock (both within the one event here), the reads of the old store that the
//! server's core waits for before it replaces the store. Tier B runs the running server's
//! side of it (`get_db`/`fetch_head` streaming a head while collapses run, the head lock, the
//! core's adoption) with nodes in memory (sim/src/tier_b/mod.rs).

use super::catchup::CopyError;
use super::collapse::HEAD_ADOPTED;
use super::keyed::Draw;
use super::node::SimNode;
use super::rules::CrashPoint;
use super::run::{World, CLUSTER_ID};
use arakoon_node::consensus::NodeIdx;
use arakoon_node::head::{FileHead, HeadSpace};
use arakoon_node::server::catchup::{adopt_fetched, CatchUpError};
use arakoon_node::server::persist::GroupWriter;
use arakoon_node::store::{MemoryStore, Store};
use arakoon_node::tlog::{LogDir, MemDir, TlogConfig, Trip};
use rand::Rng;
use std::sync::Arc;

/// An adoption of a peer's head whose fsync failed: the node stopped, as the server does.
pub const ADOPT_FSYNC_FAILED: &str = "adoption: an fsync failed, the node stopped";
/// A fetched head whose fsync failed: the catch-up failed, the node went on.
pub const FETCHED_HEAD_FSYNC_FAILED: &str =
    "adoption: the fetched head's fsync failed, the node went on";

impl World {
    /// Node `k` fetches peer `p`'s head and adopts it, with a crash point drawn inside the
    /// adoption one time in two. `Ok(head_i)` once adopted; `Err(Some(e))` when the catch-up
    /// fails and the node goes on; `Err(None)` when the node crashed or stopped.
    pub(super) fn adopt_peer_head(
        &mut self,
        k: NodeIdx,
        p: NodeIdx,
    ) -> Result<u64, Option<CopyError>> {
        // get_db at the peer: its head as its disk holds it.
        let peer = FileHead::new(Arc::new(self.nodes[p].disk.clone()));
        let head = match peer.load(CLUSTER_ID) {
            Ok(Some(head)) if head.applied().is_some() => head,
            Ok(_) => return Err(Some(CopyError::Collapsed { from: p, start: 0 })),
            Err(e) => {
                let source = CatchUpError::CopyHead { path: peer.location().into(), source: e };
                return Err(Some(CopyError::Adopt { from: p, source: Box::new(source) }));
            }
        };
        // One adoption in two crashes inside or fails an fsync, while faults are drawn.
        let mut rng = self.keyed.rng(self.now_us, Draw::Adoption, k as u64);
        let fault = self.faulting() && rng.gen_bool(0.5);
        let drawn = fault.then(|| rng.gen_range(0..=CrashPoint::ADOPT.len()));
        let point = drawn.and_then(|d| CrashPoint::ADOPT.get(d).copied());
        let trip = match drawn {
            Some(_) if point.is_none() => Some(Trip::FailNextSync),
            _ => point.and_then(CrashPoint::trip),
        };
        let tlog = self.cluster.tlog();
        match adopt_on_node(&mut self.nodes[k], head, tlog, trip) {
            Ok(head_i) => {
                self.exercised(HEAD_ADOPTED);
                self.trace(|| format!("n{k} adopted n{p}'s head at {head_i}"), 5);
                Ok(head_i)
            }
            Err(AdoptFailed::Fetch(source)) => {
                if self.nodes[k].disk.struck() == Some(Trip::FailNextSync) {
                    // As a failed flush of the fetched head fails the server's fetch: its TLog
                    // untouched, the node goes on and catches up again.
                    self.nodes[k].disk.take_struck();
                    self.exercised(FETCHED_HEAD_FSYNC_FAILED);
                }
                Err(Some(CopyError::Adopt { from: p, source: Box::new(source) }))
            }
            Err(AdoptFailed::Adopt(e)) => {
                let disk = &self.nodes[k].disk;
                match disk.struck() {
                    Some(Trip::FailNextSync) => {
                        // The server's core stops on a failed adoption.
                        self.exercised(ADOPT_FSYNC_FAILED);
                        self.write_failed(k, &e);
                    }
                    Some(struck) => {
                        disk.take_struck();
                        // The point armed for this adoption, or one armed before it.
                        let point = point.filter(|p| p.trip() == Some(struck));
                        let point = point.or_else(|| CrashPoint::of_trip(struck));
                        let point = point.expect("every power cut is a crash point");
                        self.exercised(point.name());
                        self.trace(|| format!("crash n{k} at {}", point.name()), 17);
                        let torn = self.mix.torn_writes;
                        self.crash_at_point(k, torn);
                    }
                    None if self.nodes[k].disk_full => self.write_failed(k, &e),
                    None => self.fail("adoption", format!("n{k}: {e}")),
                }
                Err(None)
            }
        }
    }
}

/// Why [`adopt_on_node`] failed.
#[derive(Debug)]
pub enum AdoptFailed {
    /// Writing the fetched head failed: nothing of the node changed, the catch-up fails.
    Fetch(CatchUpError),
    /// The adoption failed midway (a crash point, a failed fsync, a full disk): the node's
    /// process stops, its files as the adoption left them.
    Adopt(CatchUpError),
}

/// Running node `node` adopts the fetched head `head` (a peer's): it is written where a fetched
/// head waits, then the TLog writer is closed and the node crate's adoption runs over the
/// node's disk ([`adopt_fetched`]), with `trip` armed for it (a crash point's power cut, or a
/// failing fsync; a trip armed already stays instead and may strike here). On success the
/// node runs on with the head's copy as its store and a writer after the head: the head's
/// last slot. On [`AdoptFailed::Adopt`] the node's process is gone (its state dropped); the
/// caller crashes or stops it.
pub fn adopt_on_node(
    node: &mut SimNode,
    head: MemoryStore,
    tlog: TlogConfig,
    trip: Option<Trip>,
) -> Result<u64, AdoptFailed> {
    let head_i = head.applied().expect("a fetched head holds a slot");
    let disk: MemDir = node.disk.clone();
    let dir: Arc<dyn LogDir> = Arc::new(disk.clone());
    let space = FileHead::new(dir.clone());
    let fetch_failed = |e: std::io::Error| {
        let source = arakoon_node::store::StoreError::Backend {
            path: space.incoming_location().into(),
            source: e,
        };
        AdoptFailed::Fetch(CatchUpError::CopyHead {
            path: space.incoming_location().into(),
            source,
        })
    };
    // fetch_head: a leftover of an earlier try removed, the head written and synced.
    if space.incoming_exists() {
        space.remove_incoming().map_err(fetch_failed)?;
    }
    space.write_incoming(&head).map_err(fetch_failed)?;
    // The core: its TLog writer closed, then the adoption (server/event_loop.rs adopt_head).
    let state = node.state.take().expect("a node that adopts is running");
    let (mut shell, persister) = (state.shell, state.persister);
    let trip = trip.filter(|_| disk.armed().is_none());
    let disarm = |disk: &MemDir| {
        if trip.is_some() && disk.armed() == trip {
            // The adoption ended before the point (fewer files to remove): nothing struck.
            disk.arm(None);
        }
    };
    if let Err(e) = persister.close() {
        return Err(AdoptFailed::Adopt(CatchUpError::OpenTlog(e)));
    }
    if trip.is_some() {
        disk.arm(trip);
    }
    let adopted = adopt_fetched(dir.clone(), &space, head_i, (tlog, &node.name), || Ok(head));
    disarm(&disk);
    let (writer, store) = adopted.map_err(AdoptFailed::Adopt)?;
    shell.store = store;
    // The store step on disk is left out: the node's store, if it crashes before its next
    // flush, is the head's copy again at its start.
    node.flushed = None;
    node.state = Some(super::node::Running { shell, persister: GroupWriter::new(writer, dir) });
    Ok(head_i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::collapse::collapse_disk;
    use crate::world::collapse::tests::{node_with_log, start, store_of, Held};
    use crate::world::node::tlog_config;
    use arakoon_node::head::HEAD_INCOMING_FILE;
    use arakoon_node::tlog;

    /// What a node that never collapsed holds once it applied every slot up to `applied`.
    fn expected(applied: u64) -> Held {
        let mut node = node_with_log(applied + 1);
        start(&mut node).unwrap();
        store_of(&node)
    }

    /// A peer that collapsed a log of 400 slots into its head: the head it sends.
    fn peer_head() -> MemoryStore {
        let mut peer = node_with_log(400);
        start(&mut peer).unwrap();
        let report = collapse_disk(&peer.disk, 1, None, None).unwrap();
        assert!(!report.removed.is_empty());
        FileHead::new(Arc::new(peer.disk.clone())).load(CLUSTER_ID).unwrap().unwrap()
    }

    /// The logs of running nodes behind the peer's head.
    #[derive(Debug, Clone, Copy)]
    enum Behind {
        /// 100 slots (files 000-001).
        Plain,
        /// 200 slots with a head of its own (files 000-001 collapsed away, 002-003 left).
        OwnHead,
        /// No slot at all: one empty 000 (a new or wiped node).
        Empty,
        /// 128 slots and an empty file after them (a rollover's, before its first entry).
        EmptyLast,
    }

    fn behind(kind: Behind) -> SimNode {
        let slots = match kind {
            Behind::Plain => 100,
            Behind::OwnHead => 200,
            Behind::Empty => 0,
            Behind::EmptyLast => 128,
        };
        let mut node = node_with_log(slots);
        if let Behind::EmptyLast = kind {
            let dir: Arc<dyn LogDir> = Arc::new(node.disk.clone());
            let (mut w, _) =
                arakoon_node::tlog::TlogWriter::open(dir, tlog_config(), "n0").unwrap();
            w.roll_over().unwrap();
            drop(w);
            assert_eq!(tlog::list_files(&node.disk).unwrap().len(), 3);
        }
        start(&mut node).unwrap();
        if let Behind::OwnHead = kind {
            let report = collapse_disk(&node.disk, 1, None, None).unwrap();
            assert_eq!(report.removed.len(), 2);
        }
        node
    }

    /// The node crate's adoption run over the simulated disk, crashed at each of its points
    /// (the head exchanged and not synced, the log restarted and not synced, before the first
    /// removal, between removals) or failing an fsync, whatever part of the unsynced bytes
    /// survives: the node's start-up accepts the files and its store is one the history held
    /// (its own, or the head's); adopting again then completes, and a restart starts from the
    /// head with one empty TLog file after it.
    #[test]
    fn an_adoption_crashed_or_failed_anywhere_leaves_files_that_start_up_accepts() {
        let head = peer_head();
        let head_i = head.applied().unwrap();
        assert_eq!(head_i, 319);
        let trips = [None, Some(Trip::FailNextSync)]
            .into_iter()
            .chain(CrashPoint::ADOPT.map(CrashPoint::trip));
        for kind in [Behind::Plain, Behind::OwnHead, Behind::Empty, Behind::EmptyLast] {
            let own = store_of(&behind(kind));
            for (trip, torn) in trips.clone().flat_map(|t| [(t, 0usize), (t, 5), (t, usize::MAX)]) {
                let case = format!("{kind:?}, {trip:?}, torn {torn}");
                let mut node = behind(kind);
                let result = adopt_on_node(&mut node, head.clone(), tlog_config(), trip);
                let struck = match result {
                    Ok(i) => {
                        assert_eq!(i, head_i, "{case}");
                        assert!(node.disk.take_struck().is_none(), "{case}");
                        None
                    }
                    Err(AdoptFailed::Adopt(_)) => {
                        assert!(!node.is_up(), "{case}: the process stopped");
                        node.disk.take_struck()
                    }
                    Err(AdoptFailed::Fetch(e)) => panic!("{case}: the fetch failed: {e}"),
                };
                // With old files to remove, every point is reached; an empty log (nothing to
                // remove, its 000 renamed) or an empty last file (kept as the restarted log)
                // skips the removals' points, and the restart's for the latter.
                if let Behind::Plain | Behind::OwnHead = kind {
                    assert_eq!(struck, trip, "{case}: every point reached");
                }
                assert!(struck.is_none() || struck == trip, "{case}: struck {struck:?}");
                node.crash(|unsynced| torn.min(unsynced));
                start(&mut node).unwrap_or_else(|e| panic!("{case}: start refused: {e}"));
                let held = store_of(&node);
                let adopted = held.0 == Some(head_i);
                assert!(held == own || (adopted && held == expected(head_i)), "{case}: {held:?}");
                // Until the exchanged head is durable, the node has its own files; after, its
                // start-up finishes the adoption when the head is past its log.
                let head_durable =
                    !matches!(trip, Some(Trip::FailNextSync | Trip::CutBeforeHeadDirSync));
                assert!(adopted == struck.is_none() || head_durable, "{case}: {held:?}");
                // The catch-up runs again and completes.
                assert_eq!(
                    adopt_on_node(&mut node, head.clone(), tlog_config(), None).unwrap(),
                    head_i
                );
                node.crash(|_| 0);
                start(&mut node).unwrap_or_else(|e| panic!("{case}: start after adopting: {e}"));
                assert_eq!(store_of(&node), expected(head_i), "{case}");
                assert_eq!(tlog::last_i(&node.disk).unwrap(), None, "{case}");
                assert_eq!(
                    tlog::list_files(&node.disk).unwrap().len(),
                    1,
                    "{case}: one empty file"
                );
                assert!(
                    node.disk.contents(HEAD_INCOMING_FILE).is_none(),
                    "{case}: old head removed"
                );
            }
        }
    }

    /// A fetched head whose fsync fails changes nothing of the node: it runs on, its store and
    /// log as they were, and the next try adopts.
    #[test]
    fn a_failed_fsync_of_the_fetched_head_leaves_the_node_running() {
        let head = peer_head();
        let mut node = behind(Behind::Plain);
        let before = store_of(&node);
        node.disk.arm(Some(Trip::FailNextSync));
        let result = adopt_on_node(&mut node, head.clone(), tlog_config(), None);
        assert!(matches!(result, Err(AdoptFailed::Fetch(_))), "{result:?}");
        assert_eq!(node.disk.take_struck(), Some(Trip::FailNextSync));
        assert!(node.is_up());
        assert_eq!(store_of(&node), before);
        assert_eq!(adopt_on_node(&mut node, head, tlog_config(), None).unwrap(), 319);
    }
}
