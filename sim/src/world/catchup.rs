//! Catch-up in the world: a lagging node streams committed entries from a peer in steps, across
//! events, as the server's catch-up task does over the network (server/catchup.rs
//! `fetch_for_core`, the serving side server/conn.rs `last_entries`); and when the peer has
//! collapsed the slots it needs into its head, it fetches that head and adopts it with the
//! server's own adoption.
//!
//! **The stream.** The first step pins the files the peer will read, through the peer's
//! [`Pins`] (the server's mechanism: a `last_entries` reader pins before it reads, and the
//! collapse keeps every pinned file and those after it); each step then reads up to
//! [`STEP_ENTRIES`] committed entries at the peer and hands them to the catcher's persister
//! and shell (`importable`, `import`), as the server's core takes a chunk. Other events run
//! between two steps: the peer's collapse among them (the nemesis' and the drills'; with
//! collapses in the mix, one step in three draws one at the serving peer first), as on the
//! server the collapse runs on a thread beside a stream. The pin holds the stream's files, so
//! the stream goes on ([`CAUGHT_UP_ACROSS_COLLAPSE`]); a pinned stream that finds a slot missing
//! is a violation ("catch-up pin"). A peer that stops or restarts, or a cut link, ends the
//! stream (the catcher's shell hears a failed catch-up and tries again), and drops its pin.
//!
//! **The head.** When the pin says the slots asked for are collapsed away, the catcher fetches
//! the peer's head and adopts it with the server's own adoption (super::adopt), then streams on
//! from the slot after the head.

use super::keyed::Draw;
use super::node::Effects;
use super::run::{Event, World};
use arakoon_node::consensus::{Input, NodeIdx};
use arakoon_node::head::{PinGuard, Pinned};
use arakoon_node::server::catchup::CatchUpError;
use arakoon_node::shell::{CatchUpVerdict, ShellError};
use arakoon_node::tlog::{for_each_committed, LogDir, TlogError};
use arakoon_node::value::Value;
use rand::Rng;
use std::sync::Arc;

/// A catch-up whose peer collapsed files while the stream read them, and that caught up.
pub const CAUGHT_UP_ACROSS_COLLAPSE: &str =
    "catch-up: the peer collapsed mid-stream, the pinned files stayed";
/// A chunk imported while the catcher's log ran ahead of its store: the slots its log held
/// below its last were passed over (server/persist/group.rs).
pub const IMPORTED_BEHIND_THE_LOG: &str =
    "catch-up: a chunk met a log ahead of the store, the slots it held passed over";
/// A collapse that kept files because a catch-up stream had pinned them.
pub const COLLAPSE_KEPT_PINNED: &str = "collapse: kept files a catch-up stream pinned";

/// The most committed entries one step of a stream carries (a quarter of one of the world's
/// TLog files: a stream of a few files has steps enough for a collapse to fall between).
pub const STEP_ENTRIES: usize = 16;
/// The time between two steps of a stream, µs.
const STEP_US: u64 = 500;

/// A node's catch-up stream in progress.
pub(super) struct Fetch {
    /// The shell's number for this catch-up.
    job: u64,
    /// The catcher's incarnation.
    epoch: u64,
    from: NodeIdx,
    to_i: u64,
    /// The next slot the stream wants.
    next: u64,
    /// The peer's pin on the files the stream reads, and the peer's incarnation then.
    pin: Option<(PinGuard, u64)>,
    /// The peer's head was adopted by this catch-up (a second collapse ends it).
    adopted: bool,
    /// A collapse at the peer removed files while the stream held its pin.
    collapsed_under: bool,
    slots: usize,
    last: Option<u64>,
}

/// Why a catch-up ended without its slots.
#[derive(Debug, thiserror::Error)]
pub(super) enum CopyError {
    #[error("unreachable")]
    Unreachable,
    #[error("n{from} stopped or restarted during the stream")]
    PeerGone { from: NodeIdx },
    /// The peer folded slot `start` into its head again after its head was adopted.
    #[error("n{from} collapsed slot {start} into its head")]
    Collapsed { from: NodeIdx, start: u64 },
    #[error("reading n{from}'s TLog: {source}")]
    Read { from: NodeIdx, source: TlogError },
    #[error("adopting n{from}'s head: {source}")]
    Adopt { from: NodeIdx, source: Box<CatchUpError> },
    /// The catcher's TLog refused the entries (a full disk, say).
    #[error("{0}")]
    Tlog(#[source] TlogError),
    /// The catcher's shell (its store) refused the entries.
    #[error("{0}")]
    Shell(#[source] ShellError),
}

/// What one step did.
enum Stepped {
    /// More to read: the next step is due.
    More,
    /// The stream ended: the last slot received.
    Ended(Option<u64>),
    Failed(CopyError),
    /// The node crashed or stopped (an adoption's crash point or failed fsync), or the world
    /// failed a check: nothing more to do.
    Gone,
}

impl World {
    /// Node `k`'s shell asked for catch-up `job` from `from`, slots `from_i..=to_i`: a newer
    /// catch-up replaces an older one (its pin is dropped), as on the server.
    pub(super) fn start_catch_up(
        &mut self,
        k: NodeIdx,
        from: NodeIdx,
        from_i: u64,
        to_i: u64,
        job: u64,
    ) {
        let epoch = self.nodes[k].epoch;
        self.fetches[k] = Some(Fetch {
            job,
            epoch,
            from,
            to_i,
            next: from_i,
            pin: None,
            adopted: false,
            collapsed_under: false,
            slots: 0,
            last: None,
        });
        // On the server the fetch starts at once: its first chunk may come within a tenth of a
        // millisecond on a fast network, while the persister still writes.
        let delay = self.keyed.rng(self.now_us, Draw::CatchUpStart, k as u64).gen_range(100..5_000);
        self.agenda.push(self.now_us + delay, Event::CatchUpStep { node: k, epoch, job });
    }

    /// The next step of node `k`'s catch-up `job`.
    pub(super) fn catch_up_step(&mut self, k: NodeIdx, epoch: u64, job: u64) {
        let current = self.fetches[k].as_ref().is_some_and(|f| f.job == job && f.epoch == epoch);
        if !current {
            return;
        }
        if self.nodes[k].epoch != epoch || !self.nodes[k].is_up() {
            // The catcher went down: its connection, and the peer's pin, go with it.
            self.fetches[k] = None;
            return;
        }
        // The persister writes in order: fetched entries go after the jobs already handed over.
        // On the server the core hands a chunk to the persister and waits for it; the persister
        // writes the jobs handed over before, then the chunk, and the core hears that those jobs
        // are durable only afterwards: the log may then run ahead of the store when the chunk
        // is imported. Half the time the step does so (`told_after`); the other half it waits
        // until the persister is idle, as when the core took the jobs' reports before the chunk
        // came. A paused process's persister waits for it.
        let mut told_after = Vec::new();
        if !self.persists[k].idle() {
            if self.nodes[k].paused || self.chunk_rng.gen_bool(0.5) {
                let busy = self.persists[k].busy_until_us;
                let at = if self.nodes[k].paused {
                    self.now_us + 1_000
                } else {
                    busy.max(self.now_us) + 1
                };
                self.agenda.push(at, Event::CatchUpStep { node: k, epoch, job });
                return;
            }
            match self.write_handed_over(k) {
                Ok(tokens) => told_after = tokens,
                Err(e) => return self.write_failed(k, &e),
            }
        }
        let mut fetch = self.fetches[k].take().expect("checked above");
        match self.stream_step(k, &mut fetch) {
            Stepped::More => {
                self.fetches[k] = Some(fetch);
                self.agenda.push(self.now_us + STEP_US, Event::CatchUpStep { node: k, epoch, job });
            }
            Stepped::Ended(last) => self.catch_up_ended(k, fetch, Ok(last)),
            Stepped::Failed(e) => {
                // A TLog that refuses a chunk stops the server's node (a full disk or a failed
                // fsync is expected to; anything else is a bug, write_failed tells which).
                let disk = self.nodes[k].disk_full || self.nodes[k].disk.struck().is_some();
                if disk || matches!(e, CopyError::Tlog(_)) {
                    return self.write_failed(k, &e);
                }
                self.catch_up_ended(k, fetch, Err(e))
            }
            Stepped::Gone => {}
        }
        for token in told_after {
            if self.nodes[k].epoch != epoch {
                return;
            }
            self.feed(k, Input::Persisted { token });
        }
        self.wake_persister(k);
    }

    /// Whether peer `from` collapses its log beside node `k`'s catch-up stream now (one step in
    /// three, with collapses among the faults), and how many sealed files it keeps.
    fn peer_collapses_beside(&mut self, k: NodeIdx, from: NodeIdx) -> Option<u64> {
        if !(self.mix.collapses && self.faulting()) {
            return None;
        }
        let mut rng = self.keyed.rng(self.now_us, Draw::PeerCollapse, (k * 256 + from) as u64);
        rng.gen_bool(1.0 / 3.0).then(|| rng.gen_range(1..=2))
    }

    fn stream_step(&mut self, k: NodeIdx, fetch: &mut Fetch) -> Stepped {
        let from = fetch.from;
        let reachable =
            self.nodes[from].is_up() && self.net.connected(from, k) && self.net.connected(k, from);
        if !reachable {
            return Stepped::Failed(CopyError::Unreachable);
        }
        if fetch.pin.as_ref().is_some_and(|(_, e)| *e != self.nodes[from].epoch) {
            return Stepped::Failed(CopyError::PeerGone { from });
        }
        if fetch.next > fetch.to_i {
            return Stepped::Ended(fetch.last);
        }
        if fetch.pin.is_none() {
            let dir = self.nodes[from].disk.clone();
            match self.pins[from].pin(&dir, fetch.next) {
                Err(source) => return Stepped::Failed(CopyError::Read { from, source }),
                Ok(Pinned::Reading(guard)) => fetch.pin = Some((guard, self.nodes[from].epoch)),
                Ok(Pinned::Collapsed { .. }) if fetch.adopted => {
                    return Stepped::Failed(CopyError::Collapsed { from, start: fetch.next });
                }
                Ok(Pinned::Collapsed { .. }) => {
                    let head_i = match self.adopt_peer_head(k, from) {
                        Ok(head_i) => head_i,
                        Err(Some(e)) => return Stepped::Failed(e),
                        Err(None) => return Stepped::Gone,
                    };
                    fetch.adopted = true;
                    fetch.next = head_i + 1;
                    fetch.last = Some(head_i);
                    // The server asks for at least one slot after the head; a peer that
                    // committed none yet leaves the node at the head.
                    return if head_i >= fetch.to_i {
                        Stepped::Ended(Some(head_i))
                    } else {
                        Stepped::More
                    };
                }
            }
        } else if let Some(keep) = self.peer_collapses_beside(k, from) {
            // The peer's collapse runs beside the stream, between two of its reads.
            let removed = self.collapse_removed(from, keep);
            fetch.collapsed_under |= removed;
        }
        self.read_step(k, fetch)
    }

    /// Reads the next entries of `fetch` at its peer and imports them into `k`.
    fn read_step(&mut self, k: NodeIdx, fetch: &mut Fetch) -> Stepped {
        let from = fetch.from;
        let (start, to_i) = (fetch.next, fetch.to_i);
        let mut entries = Vec::new();
        let source: &dyn LogDir = &self.nodes[from].disk;
        let read = for_each_committed::<()>(source, start, false, &mut |e| {
            if e.i > to_i || entries.len() >= STEP_ENTRIES {
                return Err(());
            }
            entries.push((e.i, e.value));
            Ok(())
        });
        if let Err(source) = read {
            return Stepped::Failed(CopyError::Read { from, source });
        }
        let Some(&(first, _)) = entries.first() else {
            // The peer's committed log ends here: the stream ends.
            return Stepped::Ended(fetch.last);
        };
        if first != start {
            // The files holding `start` are gone: under a pin, a collapse removed what a
            // reader holds (the server answers with a short stream; here it is a bug).
            self.fail(
                "catch-up pin",
                format!("n{k}'s stream from n{from} wanted slot {start}, the peer's log resumes at {first}: a collapse removed files the stream had pinned"),
            );
            return Stepped::Gone;
        }
        let n = entries.len();
        let last = entries.last().map(|(i, _)| *i);
        if let Err(e) = self.import(k, entries) {
            return e;
        }
        fetch.slots += n;
        fetch.last = last;
        fetch.next = last.map_or(start, |l| l + 1);
        if fetch.next > to_i || n < STEP_ENTRIES {
            // Everything asked for, or all the peer holds committed.
            return Stepped::Ended(fetch.last);
        }
        Stepped::More
    }

    /// Hands fetched entries to `k`'s persister and shell, checking each against what `k`
    /// applied at its slot before (the agreement check).
    fn import(&mut self, k: NodeIdx, entries: Vec<(u64, Value)>) -> Result<(), Stepped> {
        let state = self.nodes[k].state.as_mut().expect("a catcher that steps is up");
        let entries = state.shell.importable(entries);
        let ahead = entries.first().is_some_and(|(i, _)| state.persister.last_i() > Some(*i));
        state.persister.import(&entries).map_err(|e| Stepped::Failed(CopyError::Tlog(e)))?;
        state.shell.import(&entries).map_err(|e| Stepped::Failed(CopyError::Shell(e)))?;
        if ahead {
            self.exercised(IMPORTED_BEHIND_THE_LOG);
        }
        for (i, v) in &entries {
            if let Some(old) = self.nodes[k].applied.get(i) {
                if **old != *v {
                    self.fail(
                        "agreement",
                        format!("AGREEMENT: n{k} re-applied slot {i} with another value"),
                    );
                    return Err(Stepped::Gone);
                }
            }
            let v = match self.slot_values.get(i) {
                Some(first) if **first == *v => Arc::clone(first),
                _ => Arc::clone(self.slot_values.entry(*i).or_insert_with(|| Arc::new(v.clone()))),
            };
            self.nodes[k].applied.insert(*i, v);
        }
        // The store holds the chunk now: the log must hold it durably (persist-before-apply),
        // and the store's flush may catch it.
        if let Some((last, _)) = entries.last() {
            self.check_apply(k, *last);
        }
        self.nodes[k].flush(self.now_us);
        Ok(())
    }

    /// The stream of `fetch` ended: its pin is dropped and `k`'s shell judges how.
    fn catch_up_ended(
        &mut self,
        k: NodeIdx,
        fetch: Fetch,
        fetched: Result<Option<u64>, CopyError>,
    ) {
        let Fetch { job, from, to_i, slots, collapsed_under, pin, .. } = fetch;
        drop(pin);
        let why = fetched.as_ref().err().map(ToString::to_string).unwrap_or_default();
        let now = self.node_now_ms(k);
        let Some(state) = self.nodes[k].state.as_mut() else { return };
        let mut fx = Effects::new(&self.slot_values);
        let verdict = state.shell.catch_up_done(now, job, fetched, &mut fx);
        let fx = fx.fx;
        match &verdict {
            Ok(CatchUpVerdict::CaughtUp) => {
                if collapsed_under {
                    self.exercised(CAUGHT_UP_ACROSS_COLLAPSE);
                }
                self.trace(|| format!("n{k} caught up from n{from} to {to_i} ({slots} slots)"), 4)
            }
            Ok(CatchUpVerdict::Short | CatchUpVerdict::Failed) => {
                self.trace(|| format!("n{k} catch-up from n{from} to {to_i} failed: {why}"), 3)
            }
            Ok(CatchUpVerdict::Stale) | Err(_) => {}
        }
        self.carry_out(k, fx, verdict.map(|_| ()));
    }

    /// Whether faults are still drawn: not once the liveness check healed the world.
    pub(super) fn faulting(&self) -> bool {
        self.liveness.healed_at_us.is_none()
    }

    /// Collapses peer `p` beside a stream; whether it removed files.
    fn collapse_removed(&mut self, p: NodeIdx, keep: u64) -> bool {
        let note = self.collapse(p, keep, None);
        self.trace(|| format!("collapse n{p} keep {keep} beside a stream: {note}"), 63);
        note.contains("removed")
    }
}
