//! Where the server's blocking reads run: the TLog files that a catch-up streams and the pins
//! that keep them from a collapse. On disk they run on tokio's blocking pool ([`ThreadPool`]), so
//! a long read never holds a connection's task; in memory (tier B of the simulator) they run at
//! once on the calling task ([`OnTask`]), because a thread would race the simulated time and the
//! files are in memory anyway. Start-up picks one with the storage (server/storage.rs); the
//! connection code calls it without knowing which, so the server has no simulated code path.
//! Listing and multi-key reads of the store run here too, beside the consensus core
//! (shell/read_job.rs), and so do a collapse and the streaming of a head (server/collapse.rs),
//! whose results come back through [`channel`]: bounded on a thread, queued on the task.

use tokio::sync::{mpsc, oneshot};

/// One encoded entry of a catch-up stream and its slot, or why reading stopped.
pub type EntryItem = Result<(u64, Vec<u8>), crate::tlog::TlogError>;

/// Work that may block on file I/O.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// Reads entries into its sink until the sink returns false or the entries end.
pub type Producer = Box<dyn FnOnce(&mut dyn FnMut(EntryItem) -> bool) + Send + 'static>;

/// Entries queued between a reading thread and the socket: the bound that paces the reader.
/// One: an entry may be as large as the largest update, and the node's memory bound counts one
/// per stream (README, "Limits").
const QUEUED_ENTRIES: usize = 1;

/// The threads of tokio's blocking pool at most (the runtime is built with it: bin/arakoon.rs).
/// Every listing or multi-key read of the store runs there (issue 15 item 4; reads of one key are
/// answered on the core), one job per waiting client: beyond
/// this many, jobs wait in the pool's queue (each client has one request in flight, so the queue
/// is bounded by the connections) instead of each taking a thread and its stack. Listing reads
/// run one at a time anyway; the rest are single-key reads of microseconds.
pub const BLOCKING_THREADS_MAX: usize = 32;

/// The most a node in memory reads for one stream before it answers: it reads all at once, so
/// this bounds its memory; a short stream is fine (the catcher asks again from where it got).
pub const ON_TASK_READ_BYTES_MAX: usize = 64 << 20;

/// A way to run blocking reads, chosen at start-up.
pub trait BlockingReads: Send + Sync {
    /// Runs `job`, now or on a thread.
    fn run(&self, job: Job);

    /// Runs `produce`, handing its items to the returned receiver in order.
    fn stream(&self, produce: Producer) -> mpsc::Receiver<EntryItem>;

    /// Whether [`BlockingReads::run`] runs its job at once on the calling task (then a job must
    /// never wait for the task: see [`channel`]).
    fn on_task(&self) -> bool;
}

/// The sending end of a [`channel`]: what a job that [`BlockingReads::run`] runs hands back
/// to the task waiting for it (a collapse's steps, a head's frames).
pub struct Sink<T>(SinkInner<T>);

enum SinkInner<T> {
    Thread(mpsc::Sender<T>),
    Task(mpsc::UnboundedSender<T>),
}

impl<T> Sink<T> {
    /// Hands `item` on; false once the receiver is gone. On a thread it waits for room (the
    /// bound paces the job); on the task it queues the item, since the job runs to its end
    /// before the task reads anything.
    pub fn send(&self, item: T) -> bool {
        match &self.0 {
            SinkInner::Thread(tx) => tx.blocking_send(item).is_ok(),
            SinkInner::Task(tx) => tx.send(item).is_ok(),
        }
    }
}

/// The receiving end of a [`channel`].
pub struct Source<T>(SourceInner<T>);

enum SourceInner<T> {
    Thread(mpsc::Receiver<T>),
    Task(mpsc::UnboundedReceiver<T>),
}

impl<T> Source<T> {
    pub async fn recv(&mut self) -> Option<T> {
        match &mut self.0 {
            SourceInner::Thread(rx) => rx.recv().await,
            SourceInner::Task(rx) => rx.recv().await,
        }
    }
}

/// A channel from a job of `reads` to the task: bounded by `queued` when the job runs on a
/// thread (`blocking_send` waits for room, as production always did); on the task (tier B of
/// the simulator) it cannot wait, since nothing reads until the job has ended, so it queues
/// everything the job sends: the job's own output bounds it (a collapse's steps, one per file;
/// a head kept in memory, already whole in memory, as frames).
pub fn channel<T>(reads: &dyn BlockingReads, queued: usize) -> (Sink<T>, Source<T>) {
    if reads.on_task() {
        let (tx, rx) = mpsc::unbounded_channel();
        (Sink(SinkInner::Task(tx)), Source(SourceInner::Task(rx)))
    } else {
        let (tx, rx) = mpsc::channel(queued);
        (Sink(SinkInner::Thread(tx)), Source(SourceInner::Thread(rx)))
    }
}

/// Runs `f` as a blocking read and returns its result; `None` if it panicked.
pub async fn call<T: Send + 'static>(
    reads: &dyn BlockingReads,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    reads.run(Box::new(move || {
        let _ = tx.send(f());
    }));
    rx.await.ok()
}

/// Tokio's blocking pool: production.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadPool;

impl BlockingReads for ThreadPool {
    fn run(&self, job: Job) {
        // Detached: `call` hears the result (or the job's end) through its channel.
        drop(tokio::task::spawn_blocking(job));
    }

    fn stream(&self, produce: Producer) -> mpsc::Receiver<EntryItem> {
        let (tx, rx) = mpsc::channel(QUEUED_ENTRIES);
        drop(tokio::task::spawn_blocking(move || {
            produce(&mut |item| tx.blocking_send(item).is_ok());
        }));
        rx
    }

    fn on_task(&self) -> bool {
        false
    }
}

/// At once on the calling task: a node in memory under simulation.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnTask;

impl BlockingReads for OnTask {
    fn run(&self, job: Job) {
        job();
    }

    fn stream(&self, produce: Producer) -> mpsc::Receiver<EntryItem> {
        let (mut items, mut bytes) = (Vec::new(), 0usize);
        produce(&mut |item| {
            bytes += item.as_ref().map_or(0, |(_, b)| b.len());
            items.push(item);
            bytes < ON_TASK_READ_BYTES_MAX
        });
        let (tx, rx) = mpsc::channel(items.len().max(1));
        for item in items {
            // The channel holds every item: it was made as large as the list.
            let _ = tx.try_send(item);
        }
        rx
    }

    fn on_task(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: u64, size: usize) -> Producer {
        Box::new(move |sink: &mut dyn FnMut(EntryItem) -> bool| {
            for i in 0..n {
                if !sink(Ok((i, vec![0; size]))) {
                    return;
                }
            }
        })
    }

    async fn drain(mut rx: mpsc::Receiver<EntryItem>) -> Vec<u64> {
        let mut got = Vec::new();
        while let Some(item) = rx.recv().await {
            got.push(item.unwrap().0);
        }
        got
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn both_ways_deliver_every_entry_in_order() {
        let want: Vec<u64> = (0..500).collect();
        assert_eq!(drain(ThreadPool.stream(entries(500, 10))).await, want);
        assert_eq!(drain(OnTask.stream(entries(500, 10))).await, want);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn on_task_stops_at_its_byte_bound_and_runs_at_once() {
        let size = ON_TASK_READ_BYTES_MAX / 4;
        // The fourth entry reaches the bound: the sink says stop, the rest is never read.
        assert_eq!(drain(OnTask.stream(entries(100, size))).await, vec![0, 1, 2, 3]);
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let r = ran.clone();
        OnTask.run(Box::new(move || r.store(true, std::sync::atomic::Ordering::SeqCst)));
        assert!(ran.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(call(&OnTask, || 7).await, Some(7));
    }

    /// A job that sends more than the channel's bound: on a thread it waits for the reader; on
    /// the task (where `blocking_send` would panic) everything is queued before the read.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_channel_delivers_a_jobs_items_both_ways() {
        async fn sent(reads: &dyn BlockingReads) -> Vec<u32> {
            let (tx, mut rx) = channel::<u32>(reads, 2);
            reads.run(Box::new(move || {
                for k in 0..50 {
                    assert!(tx.send(k));
                }
            }));
            let mut got = Vec::new();
            while let Some(k) = rx.recv().await {
                got.push(k);
            }
            got
        }
        let want: Vec<u32> = (0..50).collect();
        assert_eq!(sent(&ThreadPool).await, want);
        assert_eq!(sent(&OnTask).await, want);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn on_task_a_channel_never_blocks_the_task() {
        let (tx, mut rx) = channel::<u32>(&OnTask, 1);
        OnTask.run(Box::new(move || {
            assert!(tx.send(1) && tx.send(2) && tx.send(3));
        }));
        assert_eq!((rx.recv().await, rx.recv().await), (Some(1), Some(2)));
        assert_eq!((rx.recv().await, rx.recv().await), (Some(3), None));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_panicking_job_is_none_not_a_hang() {
        assert_eq!(call(&ThreadPool, || 7).await, Some(7));
        let r: Option<u8> = call(&ThreadPool, || panic!("job fails")).await;
        assert_eq!(r, None);
    }
}
