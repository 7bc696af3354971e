//! The persister: what writes the TLog and the ballot record, and who drives it.
//!
//! The work itself is in [`group`]: the jobs waiting become one group (group commit), written
//! with one fsync, the newest ballot record after the entries, and only then reported durable.
//! That code is synchronous and knows nothing of threads; the tier-A simulator runs it directly.
//!
//! Who drives it is a [`Driver`], chosen when the persister is made:
//! - [`Threaded`] (production): fsync blocks, so the work runs on a thread of its own, never on
//!   the async runtime. The thread takes every job waiting as one group.
//! - [`Inline`] (tier B, turmoil): each request is carried out when it is made, on the core's
//!   own task, and reported through the same channel, so the core sees it on its next turn. No
//!   thread races the simulated clock, and a seed gives the same order of reports every time.
//!
//! The ordering rule is the same under both: a token is reported only once its entry and ballot
//! record are durable. After any failed group the persister reports it and stops: what reached
//! the disk is unknown, and a node must restart (and validate its TLog) rather than go on.

pub mod group;

pub use self::group::{merge, Group, GroupWriter, GROUP_JOBS_MAX};
pub use crate::shell::PersistJob;

use self::group::stopped;
use crate::tlog::{LogDir, TlogError, TlogWriter};
use crate::value::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;

/// What the persister reports back.
#[derive(Debug)]
pub enum Persisted {
    /// These tokens are durable, in order.
    Done(Vec<u64>),
    /// Writing failed; nothing more will be written.
    Failed(TlogError),
}

/// What the persister is asked to do, in order.
pub enum Request {
    Job(PersistJob),
    /// Entries fetched from a peer during catch-up.
    Import(Vec<(u64, Value)>, oneshot::Sender<Result<(), TlogError>>),
    RollOver(oneshot::Sender<Result<(), TlogError>>),
    Close(oneshot::Sender<Result<(), TlogError>>),
}

/// Who carries out the persister's requests, in the order they are handed over, with a
/// [`GroupWriter`]; jobs are reported through the channel the driver was made with.
pub trait Driver: Send + Sync {
    /// Hands over a request. Once the writer stopped, the request is dropped (with its reply
    /// channel: the caller hears that the writer stopped).
    fn hand(&self, request: Request);
    /// After `Close` was answered: lets the driver end (a thread is joined).
    fn finish(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// The handle to the persister.
pub struct Persister {
    driver: Box<dyn Driver>,
}

impl Persister {
    pub fn new(driver: Box<dyn Driver>) -> Persister {
        Persister { driver }
    }

    /// The production persister: a thread named `persister` that groups jobs and fsyncs.
    pub fn spawn(
        writer: TlogWriter,
        dir: Arc<dyn LogDir>,
        done: UnboundedSender<Persisted>,
    ) -> Persister {
        Persister::new(Box::new(Threaded::spawn(GroupWriter::new(writer, dir), done)))
    }

    /// The simulation's persister: every request is carried out when it is made, on the
    /// caller's task; job reports still go through `done`.
    pub fn inline(
        writer: TlogWriter,
        dir: Arc<dyn LogDir>,
        done: UnboundedSender<Persisted>,
    ) -> Persister {
        Persister::new(Box::new(Inline::new(GroupWriter::new(writer, dir), done)))
    }

    /// Queues a job; its token comes back through `done` once durable.
    pub fn submit(&self, job: PersistJob) {
        self.driver.hand(Request::Job(job));
    }

    pub async fn import(&self, entries: Vec<(u64, Value)>) -> Result<(), TlogError> {
        self.call(|reply| Request::Import(entries, reply)).await
    }

    pub async fn roll_over(&self) -> Result<(), TlogError> {
        self.call(Request::RollOver).await
    }

    /// Writes the closed marker and stops the driver.
    pub async fn close(self) -> Result<(), TlogError> {
        let result = self.call(Request::Close).await;
        self.driver.finish().await;
        result
    }

    async fn call(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), TlogError>>) -> Request,
    ) -> Result<(), TlogError> {
        let (reply, rx) = oneshot::channel();
        self.driver.hand(make(reply));
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// Carries out a request other than a job; false once the writer is closed.
fn answer(writer: &mut Option<GroupWriter>, request: Request) -> bool {
    let reply = |r: oneshot::Sender<_>, result| {
        let _ = r.send(result);
    };
    match request {
        Request::Job(_) => unreachable!("jobs are written in groups"),
        Request::Import(entries, r) => {
            reply(r, writer.as_mut().ok_or_else(stopped).and_then(|w| w.import(&entries)))
        }
        Request::RollOver(r) => {
            reply(r, writer.as_mut().ok_or_else(stopped).and_then(|w| w.roll_over()))
        }
        Request::Close(r) => {
            reply(r, writer.take().ok_or_else(stopped).and_then(GroupWriter::close));
            return false;
        }
    }
    true
}

/// Writes one group and reports it; a failure is reported once and stops the writer.
fn write_and_report(
    writer: &mut Option<GroupWriter>,
    jobs: &[PersistJob],
    done: &UnboundedSender<Persisted>,
) {
    let Some(w) = writer.as_mut() else { return };
    match w.write(jobs) {
        Ok(tokens) => {
            let _ = done.send(Persisted::Done(tokens));
        }
        Err(e) => {
            *writer = None;
            let _ = done.send(Persisted::Failed(e));
        }
    }
}

/// A request and when it was handed over (with spans on: the `persist.wait` stage).
type Handed = (Request, Option<std::time::Instant>);

/// Production: a thread of its own takes the requests from a channel.
pub struct Threaded {
    tx: mpsc::Sender<Handed>,
    thread: JoinHandle<()>,
}

impl Threaded {
    pub fn spawn(writer: GroupWriter, done: UnboundedSender<Persisted>) -> Threaded {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("persister".into())
            .spawn(move || run(Some(writer), rx, done))
            .expect("the persister thread starts");
        Threaded { tx, thread }
    }
}

impl Driver for Threaded {
    fn hand(&self, request: Request) {
        // A send fails only once the thread stopped after a failure it already reported.
        let _ = self.tx.send((request, crate::spans::start()));
    }

    fn finish(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let Threaded { tx, thread } = *self;
        drop(tx);
        Box::pin(async move {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        })
    }
}

fn run(
    mut writer: Option<GroupWriter>,
    rx: mpsc::Receiver<Handed>,
    done: UnboundedSender<Persisted>,
) {
    let mut pending: Option<Request> = None;
    while writer.is_some() {
        let (first, handed) = match pending.take() {
            Some(r) => (r, None),
            None => match rx.recv() {
                Ok(r) => r,
                Err(_) => return,
            },
        };
        let mut jobs = match first {
            Request::Job(job) => {
                // The group's first job waited longest: from its hand-over to here.
                crate::spans::PERSIST_WAIT.since(handed);
                vec![job]
            }
            other => {
                if !answer(&mut writer, other) {
                    return;
                }
                continue;
            }
        };
        // Group every job already waiting; anything else waits for the next turn.
        while jobs.len() < GROUP_JOBS_MAX {
            match rx.try_recv() {
                Ok((Request::Job(job), _)) => jobs.push(job),
                Ok((other, _)) => {
                    pending = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let started = crate::spans::start();
        write_and_report(&mut writer, &jobs, &done);
        crate::spans::PERSIST_GROUP.since(started);
    }
}

/// Tier B: every request is carried out when it is handed over, on the caller's task; a job is
/// a group of one.
pub struct Inline {
    // A mutex only because `hand` takes `&self`; nothing else ever holds it.
    state: Mutex<(Option<GroupWriter>, UnboundedSender<Persisted>)>,
}

impl Inline {
    pub fn new(writer: GroupWriter, done: UnboundedSender<Persisted>) -> Inline {
        Inline { state: Mutex::new((Some(writer), done)) }
    }

    fn lock(&self) -> MutexGuard<'_, (Option<GroupWriter>, UnboundedSender<Persisted>)> {
        // Never contended (one task owns the persister); a poisoned lock means a panic
        // elsewhere already failed the node.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Driver for Inline {
    fn hand(&self, request: Request) {
        let mut state = self.lock();
        let (writer, done) = &mut *state;
        match request {
            Request::Job(job) => write_and_report(writer, std::slice::from_ref(&job), done),
            other => {
                answer(writer, other);
            }
        }
    }

    fn finish(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async {})
    }
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
