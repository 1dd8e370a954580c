//! Lanes: the threads that talk to PostgreSQL. Each lane is a thread with its own monoio
//! runtime and two connections: a shared one on which every task's statements pipeline, and an
//! exclusive one (one task at a time) for the few writes that need a multi-statement
//! transaction. Callers on any thread hand a lane a job and await its answer.
//!
//! Invariants: a connection lives and dies on its lane's thread; a lost connection fails the
//! statements in flight on it (`StoreError::Unavailable`, which the server answers with 503)
//! and the next job opens a new one, at most one attempt per [`RETRY`] while the database
//! stays away, so an outage costs a failed job, not a storm of connection attempts; prepared
//! statements are cached per connection and die with it.

use crate::pg::{connect, PgOptions};
use crate::StoreError;
use futures_channel::{mpsc, oneshot};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};

/// What the backend counts, for `/admin/metrics/prometheus` (`hydra_pg_*`).
#[derive(Debug, Default)]
pub struct PgStats {
    /// Statements sent (each one round trip, pipelined with others on its connection).
    pub statements: AtomicU64,
    /// Statements that failed (the database refused them or the connection broke).
    pub failures: AtomicU64,
    /// Transactions committed on the exclusive connections (meta writes).
    pub transactions: AtomicU64,
    /// Statements sent and not yet answered: how much of the pool is in use.
    pub in_flight: AtomicI64,
    /// Connections opened, and attempts that failed.
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
    /// Statement round trips by latency, per [`crate::SYNC_BUCKETS_US`], and their sum.
    pub rtt_hist: [AtomicU64; 11],
    pub rtt_micros: AtomicU64,
    /// Token rows per multi-row insert, per [`crate::BATCH_BUCKETS`], and their sum.
    pub batch_hist: [AtomicU64; 11],
    pub batch_rows: AtomicU64,
}

impl PgStats {
    pub(crate) fn batch(&self, rows: usize) {
        self.batch_hist[crate::commit::bucket(&crate::BATCH_BUCKETS, rows as u64)].fetch_add(1, Relaxed);
        self.batch_rows.fetch_add(rows as u64, Relaxed);
    }
}

/// After a failed connection attempt, jobs fail at once for this long instead of trying again.
pub(crate) const RETRY: Duration = Duration::from_millis(250);

/// A statement not answered within this long fails (`Unavailable`: it may or may not have
/// happened) and its connection is replaced: a database that stopped answering (a cut network
/// drops packets, no reset) must not hold requests forever. Every statement is bounded (token
/// batches, janitor steps of `--batch-size` rows), so a healthy database answers far sooner.
pub(crate) const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long opening a connection may take when the DSN gives no `connect_timeout`.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

type Job = Box<dyn FnOnce(Rc<Lane>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// Statement parameters.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Maps a driver error: a broken connection is "unavailable" (retry later), anything else a
/// database error. Messages name the statement's purpose, never parameter values.
pub(crate) fn pg_error(what: &str, e: &tokio_postgres::Error) -> StoreError {
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io {
        StoreError::Unavailable
    } else if let Some(db) = e.as_db_error() {
        StoreError::Database(format!("PostgreSQL: {what}: {} (SQLSTATE {})", db.message(), db.code().code()))
    } else {
        StoreError::Database(format!("PostgreSQL: {what}: {e}"))
    }
}

/// One open connection and its prepared statements.
pub(crate) struct Conn {
    client: Client,
    prepared: RefCell<HashMap<usize, Statement>>,
    stats: Arc<PgStats>,
    /// A statement timed out: the connection is not trusted any more.
    broken: Cell<bool>,
}

impl Conn {
    /// The prepared form of `sql` (a `'static` text: its address is the cache key).
    async fn statement(&self, sql: &'static str) -> Result<Statement, StoreError> {
        let key = sql.as_ptr() as usize;
        if let Some(s) = self.prepared.borrow().get(&key) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).await.map_err(|e| pg_error("prepare", &e))?;
        self.prepared.borrow_mut().insert(key, s.clone());
        Ok(s)
    }

    /// Runs one statement, counted and timed.
    async fn timed<T>(
        &self,
        what: &str,
        run: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, StoreError> {
        let st = &self.stats;
        st.statements.fetch_add(1, Relaxed);
        st.in_flight.fetch_add(1, Relaxed);
        let t0 = Instant::now();
        let r = monoio::time::timeout(STATEMENT_TIMEOUT, run).await;
        st.in_flight.fetch_sub(1, Relaxed);
        let Ok(r) = r else {
            self.broken.set(true);
            st.failures.fetch_add(1, Relaxed);
            return Err(StoreError::Unavailable);
        };
        let us = t0.elapsed().as_micros() as u64;
        st.rtt_micros.fetch_add(us, Relaxed);
        st.rtt_hist[crate::commit::bucket(&crate::SYNC_BUCKETS_US, us)].fetch_add(1, Relaxed);
        r.map_err(|e| {
            st.failures.fetch_add(1, Relaxed);
            pg_error(what, &e)
        })
    }

    pub(crate) async fn query(&self, sql: &'static str, params: Params<'_>) -> Result<Vec<Row>, StoreError> {
        let s = self.statement(sql).await?;
        self.timed("query", self.client.query(&s, params)).await
    }

    pub(crate) async fn query_one(&self, sql: &'static str, params: Params<'_>) -> Result<Row, StoreError> {
        let s = self.statement(sql).await?;
        self.timed("query", self.client.query_one(&s, params)).await
    }

    pub(crate) async fn query_opt(&self, sql: &'static str, params: Params<'_>) -> Result<Option<Row>, StoreError> {
        let s = self.statement(sql).await?;
        self.timed("query", self.client.query_opt(&s, params)).await
    }

    pub(crate) async fn execute(&self, sql: &'static str, params: Params<'_>) -> Result<u64, StoreError> {
        let s = self.statement(sql).await?;
        self.timed("statement", self.client.execute(&s, params)).await
    }

    pub(crate) fn stats(&self) -> &PgStats {
        &self.stats
    }

    async fn simple(&self, sql: &str) -> Result<(), StoreError> {
        self.timed("transaction", self.client.batch_execute(sql)).await
    }

    /// The driver's client, for what runs outside the statement cache (migrations).
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    fn closed(&self) -> bool {
        self.client.is_closed() || self.broken.get()
    }
}

/// An open transaction on the exclusive connection, held by one task at a time. Dropped without
/// [`TxGuard::commit`], it closes the connection, which makes PostgreSQL roll back.
pub(crate) struct TxGuard<'a> {
    slot: tokio::sync::MutexGuard<'a, Option<Rc<Conn>>>,
    conn: Rc<Conn>,
    committed: bool,
}

impl TxGuard<'_> {
    /// Commits; resolves once the commit is durable (`synchronous_commit` on, the default).
    pub(crate) async fn commit(mut self) -> Result<(), StoreError> {
        self.conn.simple("COMMIT").await?;
        self.committed = true;
        self.conn.stats.transactions.fetch_add(1, Relaxed);
        Ok(())
    }
}

impl std::ops::Deref for TxGuard<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl Drop for TxGuard<'_> {
    fn drop(&mut self) {
        if !self.committed {
            *self.slot = None;
        }
    }
}

/// A lane's state on its own thread.
pub(crate) struct Lane {
    opts: PgOptions,
    shared: tokio::sync::Mutex<Option<Rc<Conn>>>,
    exclusive: tokio::sync::Mutex<Option<Rc<Conn>>>,
    /// When the last connection attempt failed.
    failed_at: Cell<Option<Instant>>,
    stats: Arc<PgStats>,
}

impl Lane {
    async fn open(&self, slot: &mut Option<Rc<Conn>>) -> Result<Rc<Conn>, StoreError> {
        if let Some(c) = slot.as_ref().filter(|c| !c.closed()) {
            return Ok(c.clone());
        }
        *slot = None;
        if self.failed_at.get().is_some_and(|t| t.elapsed() < RETRY) {
            return Err(StoreError::Unavailable);
        }
        let mut opts = self.opts.clone();
        opts.connect_timeout = opts.connect_timeout.or(Some(CONNECT_TIMEOUT));
        match connect(&opts).await {
            Ok(client) => {
                self.failed_at.set(None);
                self.stats.connects.fetch_add(1, Relaxed);
                let c = Rc::new(Conn {
                    client,
                    prepared: RefCell::new(HashMap::new()),
                    stats: self.stats.clone(),
                    broken: Cell::new(false),
                });
                *slot = Some(c.clone());
                Ok(c)
            }
            Err(_) => {
                // The reason is not kept: the job's caller sees "unavailable" and readiness
                // fails; an operator finds the cause in PostgreSQL's own log.
                self.failed_at.set(Some(Instant::now()));
                self.stats.connect_failures.fetch_add(1, Relaxed);
                Err(StoreError::Unavailable)
            }
        }
    }

    /// The shared connection (statements of concurrent tasks pipeline on it).
    pub(crate) async fn conn(&self) -> Result<Rc<Conn>, StoreError> {
        let mut slot = self.shared.lock().await;
        self.open(&mut slot).await
    }

    /// Begins a transaction on the exclusive connection.
    pub(crate) async fn begin(&self) -> Result<TxGuard<'_>, StoreError> {
        let mut slot = self.exclusive.lock().await;
        let conn = self.open(&mut slot).await?;
        let tx = TxGuard { slot, conn, committed: false };
        tx.simple("BEGIN").await?;
        Ok(tx)
    }
}

/// The lanes of one store: where jobs go.
pub(crate) struct Lanes {
    pub(crate) stats: Arc<PgStats>,
    senders: Vec<mpsc::UnboundedSender<Job>>,
    threads: Vec<JoinHandle<()>>,
    next: std::sync::atomic::AtomicUsize,
}

impl Lanes {
    /// Starts `n` lanes (threads named `pg-lane-<i>`); connections open on first use.
    pub(crate) fn start(opts: &PgOptions, n: usize) -> Result<Lanes, StoreError> {
        let mut senders = Vec::new();
        let mut threads = Vec::new();
        let stats = Arc::new(PgStats::default());
        for i in 0..n.max(1) {
            let (tx, mut rx) = mpsc::unbounded::<Job>();
            let opts = opts.clone();
            let stats = stats.clone();
            let thread = std::thread::Builder::new()
                .name(format!("pg-lane-{i}"))
                .spawn(move || {
                    let built = monoio::RuntimeBuilder::<monoio::FusionDriver>::new().enable_timer().build();
                    let Ok(mut rt) = built else { return };
                    rt.block_on(async move {
                        let lane = Rc::new(Lane {
                            opts,
                            shared: tokio::sync::Mutex::new(None),
                            exclusive: tokio::sync::Mutex::new(None),
                            failed_at: Cell::new(None),
                            stats,
                        });
                        while let Some(job) =
                            std::future::poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut rx), cx)).await
                        {
                            monoio::spawn(job(lane.clone()));
                        }
                    });
                })
                .map_err(|e| StoreError::Database(format!("cannot start a PostgreSQL lane: {e}")))?;
            senders.push(tx);
            threads.push(thread);
        }
        Ok(Lanes { stats, senders, threads, next: Default::default() })
    }

    /// Runs `f` on a lane (round robin) and resolves to its answer.
    pub(crate) fn run<T, F, Fut>(&self, f: F) -> impl Future<Output = Result<T, StoreError>>
    where
        T: Send + 'static,
        F: FnOnce(Rc<Lane>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + 'static,
    {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.senders.len();
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |lane| {
            Box::pin(async move {
                let _ = tx.send(f(lane).await);
            })
        });
        let sent = self.senders[i].unbounded_send(job);
        async move {
            sent.map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        }
    }
}

impl Drop for Lanes {
    fn drop(&mut self) {
        // Closing the channels ends each lane's loop; its connections close with its runtime.
        self.senders.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
