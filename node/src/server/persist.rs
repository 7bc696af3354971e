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

use crate::tlog::{BallotRecord, LogDir, TlogError, TlogWriter};
use crate::value::Value;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;

/// One unit of durable work from the consensus core.
#[derive(Debug, Clone)]
pub struct PersistJob {
    pub token: u64,
    pub ballot: Option<BallotRecord>,
    pub entry: Option<(u64, Value)>,
}

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

/// The handle to the persister thread.
pub struct Persister {
    tx: mpsc::Sender<Request>,
    thread: Option<JoinHandle<()>>,
}

impl Persister {
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
        Persister { tx, thread: Some(thread) }
    }

    /// Queues a job; its token comes back through `done` once durable.
    pub fn submit(&self, job: PersistJob) {
        // A send fails only once the thread stopped after a failure it already reported.
        let _ = self.tx.send(Request::Job(job));
    }

    pub async fn import(&self, entries: Vec<(u64, Value)>) -> Result<(), TlogError> {
        self.call(|reply| Request::Import(entries, reply)).await
    }

    pub async fn roll_over(&self) -> Result<(), TlogError> {
        self.call(Request::RollOver).await
    }

    /// Writes the closed marker and stops the thread.
    pub async fn close(mut self) -> Result<(), TlogError> {
        let result = self.call(Request::Close).await;
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        result
    }

    async fn call(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), TlogError>>) -> Request,
    ) -> Result<(), TlogError> {
        let (reply, rx) = oneshot::channel();
        let stopped = || TlogError::Refused {
            path: "persister".into(),
            reason: "the TLog writer stopped after an earlier failure; restart the node".into(),
        };
        self.tx.send(make(reply)).map_err(|_| stopped())?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }
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
    use crate::tlog::{self, MemDir, TlogConfig};
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
}
