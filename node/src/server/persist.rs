//! The persister: the one thread that writes the TLog and the ballot record.
//!
//! fsync blocks, so it runs on a thread of its own, never on the async runtime. Jobs arrive in
//! the order the consensus core emitted them; the thread takes every job waiting, appends all
//! their entries with one call (one fsync), then writes the newest ballot record (if any job
//! carries one), and only then reports every job's token as durable. Entries go first so that a
//! durable record never names an entry a crash lost; since no token is reported before the whole
//! group is durable, writing only the newest record is equivalent to writing each.
//!
//! After any failure the persister reports it and stops: what reached the disk is unknown, and a
//! node must restart (and validate its TLog) rather than go on.
//!
//! Under simulation (tier B) the persister runs *inline* instead ([`Persister::inline`]): each
//! job is written when it is submitted, on the core's own task, and reported through the same
//! channel, so the core sees it on its next turn. No thread races the simulated clock, and a
//! seed gives the same order of reports every time. The ordering rule is the same: a token is
//! reported only once its entry and ballot are durable.

use crate::tlog::{LogDir, TlogError, TlogWriter};
use crate::value::Value;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;

pub use crate::shell::PersistJob;

/// What the persister reports back.
#[derive(Debug)]
pub enum Persisted {
    /// These tokens are durable, in order.
    Done(Vec<u64>),
    /// Writing failed; nothing more will be written.
    Failed(TlogError),
}

enum Request {
    Job(PersistJob),
    /// Entries fetched from a peer during catch-up.
    Import(Vec<(u64, Value)>, oneshot::Sender<Result<(), TlogError>>),
    RollOver(oneshot::Sender<Result<(), TlogError>>),
    Close(oneshot::Sender<Result<(), TlogError>>),
}

/// Jobs taken in one group at most (bounds the memory of one write).
const GROUP_JOBS_MAX: usize = 4096;

/// The handle to the persister: a thread of its own, or inline on the core's task.
pub struct Persister {
    mode: Mode,
}

enum Mode {
    Thread { tx: mpsc::Sender<Request>, thread: Option<JoinHandle<()>> },
    // A mutex only so that `submit` keeps taking `&self`; nothing else ever holds it.
    Inline(Mutex<Inline>),
}

/// The inline persister's state: the writer, and `None` once a failure stopped it.
struct Inline {
    writer: Option<TlogWriter>,
    dir: Arc<dyn LogDir>,
    done: UnboundedSender<Persisted>,
}

fn stopped() -> TlogError {
    TlogError::Refused {
        path: "persister".into(),
        reason: "the TLog writer stopped after an earlier failure; restart the node".into(),
    }
}

impl Persister {
    /// The production persister: a thread named `persister` that groups jobs and fsyncs.
    pub fn spawn(
        writer: TlogWriter,
        dir: Arc<dyn LogDir>,
        done: UnboundedSender<Persisted>,
    ) -> Persister {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("persister".into())
            .spawn(move || run(writer, dir, rx, done))
            .expect("the persister thread starts");
        Persister { mode: Mode::Thread { tx, thread: Some(thread) } }
    }

    /// The simulation's persister: every request is carried out when it is made, on the
    /// caller's task; job reports still go through `done`.
    pub fn inline(
        writer: TlogWriter,
        dir: Arc<dyn LogDir>,
        done: UnboundedSender<Persisted>,
    ) -> Persister {
        Persister { mode: Mode::Inline(Mutex::new(Inline { writer: Some(writer), dir, done })) }
    }

    /// Queues a job; its token comes back through `done` once durable.
    pub fn submit(&self, job: PersistJob) {
        match &self.mode {
            // A send fails only once the thread stopped after a failure it already reported.
            Mode::Thread { tx, .. } => {
                let _ = tx.send(Request::Job(job));
            }
            Mode::Inline(inline) => {
                let mut inline = lock(inline);
                let Inline { writer, dir, done } = &mut *inline;
                let Some(w) = writer.as_mut() else { return };
                match write_group(w, dir.as_ref(), std::slice::from_ref(&job)) {
                    Ok(()) => {
                        let _ = done.send(Persisted::Done(vec![job.token]));
                    }
                    Err(e) => {
                        *writer = None;
                        let _ = done.send(Persisted::Failed(e));
                    }
                }
            }
        }
    }

    pub async fn import(&self, entries: Vec<(u64, Value)>) -> Result<(), TlogError> {
        match &self.mode {
            Mode::Thread { tx, .. } => call(tx, |reply| Request::Import(entries, reply)).await,
            Mode::Inline(inline) => {
                let mut inline = lock(inline);
                let writer = inline.writer.as_mut().ok_or_else(stopped)?;
                check_import(writer, &entries)?;
                let refs: Vec<(u64, &Value)> = entries.iter().map(|(i, v)| (*i, v)).collect();
                writer.append(&refs)
            }
        }
    }

    pub async fn roll_over(&self) -> Result<(), TlogError> {
        match &self.mode {
            Mode::Thread { tx, .. } => call(tx, Request::RollOver).await,
            Mode::Inline(inline) => lock(inline).writer.as_mut().ok_or_else(stopped)?.roll_over(),
        }
    }

    /// Writes the closed marker and stops the thread.
    pub async fn close(self) -> Result<(), TlogError> {
        match self.mode {
            Mode::Thread { tx, mut thread } => {
                let result = call(&tx, Request::Close).await;
                if let Some(t) = thread.take() {
                    let _ = tokio::task::spawn_blocking(move || t.join()).await;
                }
                result
            }
            Mode::Inline(inline) => {
                let writer = inline.into_inner().unwrap_or_else(|e| e.into_inner()).writer;
                writer.ok_or_else(stopped)?.close()
            }
        }
    }
}

async fn call(
    tx: &mpsc::Sender<Request>,
    make: impl FnOnce(oneshot::Sender<Result<(), TlogError>>) -> Request,
) -> Result<(), TlogError> {
    let (reply, rx) = oneshot::channel();
    tx.send(make(reply)).map_err(|_| stopped())?;
    rx.await.unwrap_or_else(|_| Err(stopped()))
}

fn lock(inline: &Mutex<Inline>) -> MutexGuard<'_, Inline> {
    // Never contended (one task owns the persister); a poisoned lock means a panic elsewhere
    // already failed the node.
    inline.lock().unwrap_or_else(|e| e.into_inner())
}

fn run(
    mut writer: TlogWriter,
    dir: Arc<dyn LogDir>,
    rx: mpsc::Receiver<Request>,
    done: UnboundedSender<Persisted>,
) {
    let mut pending: Option<Request> = None;
    loop {
        let first = match pending.take() {
            Some(r) => r,
            None => match rx.recv() {
                Ok(r) => r,
                Err(_) => return,
            },
        };
        let mut jobs = match first {
            Request::Job(job) => vec![job],
            Request::Import(entries, reply) => {
                if let Err(e) = check_import(&writer, &entries) {
                    let _ = reply.send(Err(e));
                    continue;
                }
                let refs: Vec<(u64, &Value)> = entries.iter().map(|(i, v)| (*i, v)).collect();
                let _ = reply.send(writer.append(&refs));
                continue;
            }
            Request::RollOver(reply) => {
                let _ = reply.send(writer.roll_over());
                continue;
            }
            Request::Close(reply) => {
                let _ = reply.send(writer.close());
                return;
            }
        };
        // Group every job already waiting; anything else waits for the next turn.
        while jobs.len() < GROUP_JOBS_MAX {
            match rx.try_recv() {
                Ok(Request::Job(job)) => jobs.push(job),
                Ok(other) => {
                    pending = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        if let Err(e) = write_group(&mut writer, dir.as_ref(), &jobs) {
            let _ = done.send(Persisted::Failed(e));
            return;
        }
        let _ = done.send(Persisted::Done(jobs.iter().map(|j| j.token).collect()));
    }
}

/// Imported entries must continue the log: start at its last slot (a rewrite of an uncommitted
/// slot) or right after it, without gaps.
fn check_import(writer: &TlogWriter, entries: &[(u64, Value)]) -> Result<(), TlogError> {
    let mut last = writer.last_i();
    for (i, _) in entries {
        if let Some(l) = last {
            if *i != l && *i != l + 1 {
                return Err(TlogError::Refused {
                    path: writer.dir().location(),
                    reason: format!("catch-up entry {i} does not continue the log at {l}"),
                });
            }
        }
        last = Some(*i);
    }
    Ok(())
}

fn write_group(
    writer: &mut TlogWriter,
    dir: &dyn LogDir,
    jobs: &[PersistJob],
) -> Result<(), TlogError> {
    let entries: Vec<(u64, &Value)> =
        jobs.iter().filter_map(|j| j.entry.as_ref().map(|(i, v)| (*i, v))).collect();
    if !entries.is_empty() {
        writer.append(&entries)?;
    }
    if let Some(ballot) = jobs.iter().rev().find_map(|j| j.ballot) {
        ballot.store(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::{self, BallotRecord, MemDir, TlogConfig};
    use crate::value::Update;

    #[tokio::test]
    async fn jobs_become_durable_in_order_and_the_log_closes() {
        let mem = MemDir::new("p");
        let dir: Arc<dyn LogDir> = Arc::new(mem.clone());
        let (writer, _) = TlogWriter::open(dir.clone(), TlogConfig::default(), "n0").unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let p = Persister::spawn(writer, dir.clone(), tx);
        let v = |i: u64| Value::client(vec![Update::Set { key: vec![i as u8], value: vec![] }]);
        p.submit(PersistJob {
            token: 1,
            ballot: Some(BallotRecord {
                promised: 3,
                accepted_n: 3,
                accepted_from: 0,
                learner: false,
            }),
            entry: Some((0, v(0))),
        });
        p.submit(PersistJob { token: 2, ballot: None, entry: Some((1, v(1))) });
        let mut tokens = Vec::new();
        while tokens.len() < 2 {
            match rx.recv().await.unwrap() {
                Persisted::Done(t) => tokens.extend(t),
                Persisted::Failed(e) => panic!("{e}"),
            }
        }
        assert_eq!(tokens, [1, 2]);
        assert_eq!(mem.unsynced_bytes(), 0);
        p.import(vec![(2, v(2))]).await.unwrap();
        p.close().await.unwrap();
        let validation = tlog::validate(dir.as_ref()).unwrap();
        assert!(validation.closed_cleanly());
        assert_eq!(validation.last_i(), Some(2));
        assert_eq!(BallotRecord::load(dir.as_ref()).unwrap().promised, 3);
    }

    /// Inline, a job is durable and reported before `submit` returns: the core reads the
    /// report on its next turn, whatever any scheduler does.
    #[tokio::test]
    async fn inline_jobs_are_durable_and_reported_when_submitted() {
        let mem = MemDir::new("p");
        let dir: Arc<dyn LogDir> = Arc::new(mem.clone());
        let (writer, _) = TlogWriter::open(dir.clone(), TlogConfig::default(), "n0").unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let p = Persister::inline(writer, dir.clone(), tx);
        let v = |i: u64| Value::client(vec![Update::Set { key: vec![i as u8], value: vec![] }]);
        let ballot = BallotRecord { promised: 4, accepted_n: 4, accepted_from: 1, learner: false };
        p.submit(PersistJob { token: 7, ballot: Some(ballot), entry: Some((0, v(0))) });
        assert!(matches!(rx.try_recv(), Ok(Persisted::Done(t)) if t == [7]));
        assert_eq!(mem.unsynced_bytes(), 0);
        p.submit(PersistJob { token: 8, ballot: None, entry: Some((1, v(1))) });
        assert!(matches!(rx.try_recv(), Ok(Persisted::Done(t)) if t == [8]));
        // A gap is refused, the log is left as it was.
        assert!(p.import(vec![(5, v(5))]).await.is_err());
        p.import(vec![(2, v(2)), (3, v(3))]).await.unwrap();
        p.close().await.unwrap();
        let validation = tlog::validate(dir.as_ref()).unwrap();
        assert!(validation.closed_cleanly());
        assert_eq!(validation.last_i(), Some(3));
        assert_eq!(BallotRecord::load(dir.as_ref()).unwrap().promised, 4);
    }

    #[tokio::test]
    async fn an_inline_failure_is_reported_once_and_stops_the_writer() {
        let mem = MemDir::new("p");
        let dir: Arc<dyn LogDir> = Arc::new(mem.clone());
        let (writer, _) = TlogWriter::open(dir.clone(), TlogConfig::default(), "n0").unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let p = Persister::inline(writer, dir.clone(), tx);
        let v = Value::client(vec![Update::Set { key: vec![1], value: vec![] }]);
        mem.set_failing(Some(std::io::ErrorKind::StorageFull));
        p.submit(PersistJob { token: 1, ballot: None, entry: Some((0, v.clone())) });
        assert!(matches!(rx.try_recv(), Ok(Persisted::Failed(_))));
        mem.set_failing(None);
        p.submit(PersistJob { token: 2, ballot: None, entry: Some((0, v.clone())) });
        assert!(rx.try_recv().is_err(), "nothing more is written or reported");
        assert!(p.import(vec![(0, v)]).await.is_err());
        assert!(p.close().await.is_err());
    }
}
