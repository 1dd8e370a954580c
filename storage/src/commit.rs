//! Group commit: one writer thread per redb database, batching every write that arrives while a
//! commit is in flight into the next one.
//!
//! Invariants: only the committer thread opens write transactions on its database (single
//! writer); a job's reply is sent only after the transaction holding it has committed at the
//! configured durability, so a caller that sees `Ok` may acknowledge the write; if any job of a
//! batch fails, the whole batch is aborted and every caller in it sees an error.

use crate::StoreError;
use futures_channel::oneshot;
use redb::{Database, WriteTransaction};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::JoinHandle;

/// How commits reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync before acknowledging (the default; the only mode for production).
    Immediate,
    /// No fsync per commit; for benchmarks and development only. Data is flushed at shutdown.
    None,
}

type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Job = Box<dyn FnOnce(&WriteTransaction) -> Result<Completion, StoreError> + Send>;

/// The largest batch one commit takes; bounds the latency of the first request in it.
const MAX_BATCH: usize = 4096;

/// Counters a committer keeps, read by metrics and tests.
#[derive(Debug, Default)]
pub struct CommitStats {
    pub commits: std::sync::atomic::AtomicU64,
    pub jobs: std::sync::atomic::AtomicU64,
    pub failures: std::sync::atomic::AtomicU64,
}

/// Handle to a database's committer thread.
pub struct Committer {
    sender: Option<crossbeam_channel::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<CommitStats>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer").finish_non_exhaustive()
    }
}

impl Committer {
    pub fn start(name: String, db: Arc<Database>, durability: Durability) -> Result<Self, StoreError> {
        let (sender, receiver) = crossbeam_channel::unbounded::<Job>();
        let stats = Arc::new(CommitStats::default());
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || run(&db, &receiver, durability, &thread_stats))
            .map_err(|e| StoreError::Database(format!("cannot start committer thread: {e}")))?;
        Ok(Committer { sender: Some(sender), thread: Some(thread), stats })
    }

    /// Queues `f` to run inside the next write transaction. The returned future resolves after
    /// that transaction is durable (or failed).
    pub fn submit<T, F>(&self, f: F) -> Pending<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |wtx| {
            let value = f(wtx)?;
            Ok(Box::new(move |committed: Result<(), StoreError>| {
                let _ = tx.send(committed.map(|()| value));
            }) as Completion)
        });
        if let Some(sender) = &self.sender {
            // A closed channel drops the job and so the reply sender: the caller sees an error.
            let _ = sender.send(job);
        }
        Pending { rx }
    }

    /// Stops accepting jobs, lets the thread finish what is queued (with a final durable commit)
    /// and joins it.
    pub fn shutdown(&mut self) {
        self.sender = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(db: &Database, receiver: &crossbeam_channel::Receiver<Job>, durability: Durability, stats: &CommitStats) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut batch: Vec<Job> = Vec::new();
    let mut completions: Vec<Completion> = Vec::new();
    while let Ok(first) = receiver.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        let result = commit_batch(db, &mut batch, &mut completions, durability);
        if result.is_err() {
            stats.failures.fetch_add(1, Relaxed);
        }
        // Counted before anyone is told, so a caller that saw its write done sees it counted.
        stats.commits.fetch_add(1, Relaxed);
        stats.jobs.fetch_add(n, Relaxed);
        for done in completions.drain(..) {
            done(result.clone());
        }
        // Jobs that never ran (the batch aborted early) are dropped here; their callers see
        // the reply channel close, which `Pending` reports as an aborted commit.
        batch.clear();
    }
    if durability == Durability::None {
        // Make everything committed without fsync durable before the process goes away.
        let flushed = db.begin_write().map(|mut w| {
            let _ = w.set_durability(redb::Durability::Immediate);
            w
        });
        if let Ok(w) = flushed {
            let _ = w.commit();
        }
    }
}

fn commit_batch(
    db: &Database,
    batch: &mut Vec<Job>,
    completions: &mut Vec<Completion>,
    durability: Durability,
) -> Result<(), StoreError> {
    let mut wtx = db.begin_write()?;
    let d = match durability {
        Durability::Immediate => redb::Durability::Immediate,
        Durability::None => redb::Durability::None,
    };
    wtx.set_durability(d).map_err(|e| StoreError::Database(e.to_string()))?;
    for job in batch.drain(..) {
        match job(&wtx) {
            Ok(done) => completions.push(done),
            Err(e) => {
                let _ = wtx.abort();
                return Err(e);
            }
        }
    }
    wtx.commit()?;
    Ok(())
}

/// A write that has been queued; resolves once its transaction is durable.
#[derive(Debug)]
pub struct Pending<T> {
    rx: oneshot::Receiver<Result<T, StoreError>>,
}

impl<T> Future for Pending<T> {
    type Output = Result<T, StoreError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(r)) => Poll::Ready(r),
            Poll::Ready(Err(_)) => {
                Poll::Ready(Err(StoreError::Commit("the batch was aborted or the store is closed".into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Pending<T> {
    /// Blocks the calling thread until the write is durable. For CLI tools, tests and helper
    /// threads; never call this on a worker thread.
    pub fn wait(self) -> Result<T, StoreError> {
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut fut = self;
        loop {
            if let Poll::Ready(r) = Pin::new(&mut fut).poll(&mut cx) {
                return r;
            }
            std::thread::park();
        }
    }
}
