//! Each node's persister in the world: the server's own group commit
//! ([`arakoon_node::server::persist::GroupWriter`]) run on the world's thread.
//!
//! The world decides only *when* the persister works, as a thread on a real machine would: it
//! wakes some microseconds after a job arrives at an idle persister, takes every job waiting then
//! (up to [`GROUP_JOBS_MAX`]) as one group, and the group completes after the disk's latency.
//! Jobs that arrive meanwhile wait for the next group, so groups of several jobs form whenever
//! the core hands over jobs faster than the disk completes them. *What* a group writes (its
//! entries, the newest ballot record, a rollover when one is due) and which tokens it makes
//! durable is the node's code. The wake-up and the latency are drawn from the world's RNG.
//!
//! A paused process's persister is paused with it: a group already written completes (the disk
//! does not stop), and the process learns of it when it resumes; no new group starts meanwhile.

use super::keyed::Draw;
use super::rules::CrashPoint;
use super::run::{Event, World};
use arakoon_node::consensus::{Input, NodeIdx};
use arakoon_node::server::persist::{PersistJob, GROUP_JOBS_MAX};
use arakoon_node::tlog::TlogError;
use rand::Rng;
use std::collections::VecDeque;

/// The name under which the report counts groups of more than one job.
pub const GROUP_OF_SEVERAL: &str = "persister: a group of several jobs";

/// A node's persister queue, as the world keeps it.
#[derive(Debug, Default)]
pub(super) struct PersistQueue {
    /// Jobs handed over by the shell and not yet taken into a group, in order.
    waiting: VecDeque<PersistJob>,
    /// The group being written, once the persister took it.
    writing: Option<Vec<PersistJob>>,
    /// A wake-up of the persister is scheduled.
    waking: bool,
    /// When the persister's scheduled work ends (µs): the wake-up, or the group's completion.
    pub(super) busy_until_us: u64,
}

impl PersistQueue {
    /// Whether nothing waits and nothing is being written.
    pub(super) fn idle(&self) -> bool {
        self.waiting.is_empty() && self.writing.is_none() && !self.waking
    }

    /// A crash: every job handed over and not written is lost with the process.
    pub(super) fn clear(&mut self) {
        *self = PersistQueue::default();
    }
}

impl World {
    /// The shell of node `k` handed its persister a job.
    pub(super) fn persist_job(&mut self, k: NodeIdx, job: PersistJob) {
        self.persists[k].waiting.push_back(job);
        self.wake_persister(k);
    }

    /// An idle persister with jobs waiting wakes up a few microseconds later.
    pub(super) fn wake_persister(&mut self, k: NodeIdx) {
        let q = &self.persists[k];
        if q.waking || q.writing.is_some() || q.waiting.is_empty() {
            return;
        }
        if !self.nodes[k].is_up() || self.nodes[k].paused {
            return;
        }
        let at = self.now_us
            + self.keyed.rng(self.now_us, Draw::PersistWake, k as u64).gen_range(0..300);
        let epoch = self.nodes[k].epoch;
        let q = &mut self.persists[k];
        q.waking = true;
        q.busy_until_us = at;
        self.agenda.push(at, Event::PersistStart { node: k, epoch });
    }

    /// The persister takes every job waiting as one group and hands it to the disk.
    pub(super) fn persist_start(&mut self, k: NodeIdx) {
        self.persists[k].waking = false;
        if self.nodes[k].paused {
            // Stopped with its process: it takes the group when the process resumes.
            return;
        }
        let q = &mut self.persists[k];
        let n = q.waiting.len().min(GROUP_JOBS_MAX);
        if n == 0 {
            return; // a catch-up's chunk had the persister write them (write_handed_over)
        }
        let group: Vec<PersistJob> = q.waiting.drain(..n).collect();
        q.writing = Some(group);
        if n > 1 {
            self.exercised(GROUP_OF_SEVERAL);
        }
        let mut rng = self.keyed.rng(self.now_us, Draw::DiskLatency, k as u64);
        let latency = if self.mix.slow_disk && rng.gen_bool(0.1) {
            rng.gen_range(1_000..30_000)
        } else {
            rng.gen_range(50..400)
        };
        let at = self.now_us + latency;
        self.persists[k].busy_until_us = at;
        let epoch = self.nodes[k].epoch;
        self.agenda.push(at, Event::PersistDone { node: k, epoch });
    }

    /// The persister writes every job handed over and not yet durable (the group being written,
    /// then those waiting, in groups), as the server's persister does before a catch-up's chunk
    /// handed to it after them; returns their tokens, which the caller tells the node later.
    pub(super) fn write_handed_over(&mut self, k: NodeIdx) -> Result<Vec<u64>, TlogError> {
        let q = &mut self.persists[k];
        let mut jobs: Vec<PersistJob> = q.writing.take().unwrap_or_default();
        jobs.extend(q.waiting.drain(..));
        let Some(state) = self.nodes[k].state.as_mut() else { return Ok(Vec::new()) };
        let mut tokens = Vec::with_capacity(jobs.len());
        for group in jobs.chunks(GROUP_JOBS_MAX) {
            tokens.extend(state.persister.write(group)?);
        }
        Ok(tokens)
    }

    /// The disk completes the group: the node's code writes it; its tokens are reported to the
    /// shell, in order (later, if the process is paused).
    pub(super) fn persist_done(&mut self, k: NodeIdx) {
        let Some(jobs) = self.persists[k].writing.take() else { return };
        let Some(state) = self.nodes[k].state.as_mut() else { return };
        let file = state.persister.current_file().clone();
        let tokens = match state.persister.write(&jobs) {
            Ok(tokens) => tokens,
            Err(e) => return self.write_failed(k, &e),
        };
        let epoch = self.nodes[k].epoch;
        if self.nodes[k].paused {
            self.unnotified[k].extend(tokens.into_iter().map(|t| (epoch, t)));
            return;
        }
        let rolled =
            self.nodes[k].state.as_ref().is_some_and(|s| *s.persister.current_file() != file);
        // The group that rolled the TLog over to a new file is written; the node has not yet
        // learnt it.
        if rolled && self.crash_point(k, CrashPoint::AtRollover) {
            return self.crash_at_point(k, true);
        }
        if self.crash_point(k, CrashPoint::AfterPersistBeforeSend) {
            return self.crash_at_point(k, false);
        }
        for token in tokens {
            if self.nodes[k].epoch != epoch {
                return;
            }
            self.feed(k, Input::Persisted { token });
        }
        self.wake_persister(k);
    }
}
