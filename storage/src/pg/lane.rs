//! Lanes: the threads that talk to PostgreSQL. Each lane is a thread with its own monoio
//! runtime and its connections: shared ones, taken in turn, on which the reads of concurrent
//! tasks pipeline; writer connections, on which the writes that arrive while a group is being
//! committed are run together as the next group, in one transaction with one commit; and an
//! exclusive one (one task at a time) for the meta writes that need a transaction of their own.
//! Callers on any thread hand a lane a job and await its answer.
//!
//! Why groups: a backend answers a connection's statements one after the other and each commit
//! waits for its WAL flush, so writes committed one by one are bounded by the flush latency
//! times the connections. Measured with `PG=1 loadtest/run.sh` on this machine's disk: refresh
//! rotations, one statement and one commit each, 859/s on one connection and 903/s on fifteen
//! (`docs/design.md` §5.2 has the run with groups).
//!
//! Invariants of a group: every write in it succeeds and the commit succeeds, then each gets
//! its own answer; otherwise every write in it fails (nothing of the group is acknowledged: a
//! failed statement rolls the whole group back; a lost connection or commit is "may or may not
//! have happened", which the interface allows for every error).
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
    /// Writes per group commit, per [`crate::BATCH_BUCKETS`], and their sum.
    pub group_hist: [AtomicU64; 11],
    pub group_writes: AtomicU64,
    /// Token lookups per statement, per [`crate::BATCH_BUCKETS`], and their sum.
    pub lookup_hist: [AtomicU64; 11],
    pub lookup_keys: AtomicU64,
}

impl PgStats {
    pub(crate) fn lookups(&self, keys: usize) {
        self.lookup_hist[crate::commit::bucket(&crate::BATCH_BUCKETS, keys as u64)].fetch_add(1, Relaxed);
        self.lookup_keys.fetch_add(keys as u64, Relaxed);
    }

    pub(crate) fn group(&self, writes: usize) {
        self.group_hist[crate::commit::bucket(&crate::BATCH_BUCKETS, writes as u64)].fetch_add(1, Relaxed);
        self.group_writes.fetch_add(writes as u64, Relaxed);
    }

    pub(crate) fn batch(&self, rows: usize) {
        self.batch_hist[crate::commit::bucket(&crate::BATCH_BUCKETS, rows as u64)].fetch_add(1, Relaxed);
        self.batch_rows.fetch_add(rows as u64, Relaxed);
    }
}

/// After a failed connection attempt, jobs fail at once for this long instead of trying again.
pub(crate) const RETRY: Duration = Duration::from_millis(250);

/// A statement (or a prepare) not answered within this long fails (`Unavailable`: it may or may
/// not have happened) and every connection of its lane is replaced: a database that stopped
/// answering (a cut network drops packets, no reset) must not hold requests forever, nor make
/// each connection's next caller wait out a timeout of its own. Every statement is bounded (token
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
    opened: Instant,
    /// The lane's generation when this connection opened. A timeout on any connection of the
    /// lane starts a new generation: the database is probably unreachable, and every older
    /// connection would make its next caller wait out a timeout of its own.
    generation: u64,
    lane_generation: Rc<Cell<u64>>,
}

impl Conn {
    /// The prepared form of `sql` (a `'static` text: its address is the cache key).
    async fn statement(&self, sql: &'static str) -> Result<Statement, StoreError> {
        let key = sql.as_ptr() as usize;
        if let Some(s) = self.prepared.borrow().get(&key) {
            return Ok(s.clone());
        }
        // Bounded like a statement: a connection that went silent must not hold its caller.
        let s = match monoio::time::timeout(STATEMENT_TIMEOUT, self.client.prepare(sql)).await {
            Ok(r) => r.map_err(|e| pg_error("prepare", &e))?,
            Err(_) => {
                self.timed_out();
                return Err(StoreError::Unavailable);
            }
        };
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
            self.timed_out();
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
        self.client.is_closed() || self.broken.get() || self.generation != self.lane_generation.get()
    }

    fn timed_out(&self) {
        self.broken.set(true);
        if self.generation == self.lane_generation.get() {
            self.lane_generation.set(self.generation + 1);
        }
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

/// One write of a group: runs its statements inside the group's transaction and reports
/// whether they succeeded (its answer waits in the write's own slot).
type WriteJob = Box<dyn FnOnce(Rc<Conn>) -> Pin<Box<dyn Future<Output = bool>>>>;
/// Hands a write its answer once its group's outcome is known.
type Finish = Box<dyn FnOnce(Result<(), StoreError>)>;

/// Writes per group at most (a bound on one transaction's size and time).
const MAX_GROUP: usize = 256;

/// Token lookups per statement at most, and statements of lookups in flight per lane.
const MAX_LOOKUPS: usize = 256;
const LOOKUP_STATEMENTS: usize = 2;

/// A token lookup waiting for its batch: (partition, number) and where its row goes.
type Lookup = ((i32, i64), oneshot::Sender<Result<Option<Row>, StoreError>>);

/// A lane's state on its own thread.
pub(crate) struct Lane {
    opts: PgOptions,
    /// Writer connections, and which of them no group is using.
    writers: Vec<RefCell<Option<Rc<Conn>>>>,
    free_writers: RefCell<Vec<usize>>,
    /// Writes waiting for the next group.
    pending: RefCell<Vec<(WriteJob, Finish)>>,
    /// Token lookups waiting for the next batch, and batches in flight.
    lookups: RefCell<Vec<Lookup>>,
    lookups_in_flight: Cell<usize>,
    shared: Vec<tokio::sync::Mutex<Option<Rc<Conn>>>>,
    /// The shared connection the next statement takes.
    turn: Cell<usize>,
    exclusive: tokio::sync::Mutex<Option<Rc<Conn>>>,
    /// When the last connection attempt failed.
    failed_at: Cell<Option<Instant>>,
    stats: Arc<PgStats>,
    /// See [`Conn::generation`].
    generation: Rc<Cell<u64>>,
}

impl Lane {
    async fn open(&self, slot: &mut Option<Rc<Conn>>) -> Result<Rc<Conn>, StoreError> {
        let expired = |c: &Conn| self.opts.max_lifetime.is_some_and(|l| c.opened.elapsed() > l);
        if let Some(c) = slot.as_ref().filter(|c| !c.closed() && !expired(c)) {
            return Ok(c.clone());
        }
        // A replaced connection finishes what is in flight on it and closes with its last user.
        *slot = None;
        if self.failed_at.get().is_some_and(|t| t.elapsed() < RETRY) {
            return Err(StoreError::Unavailable);
        }
        let mut opts = self.opts.clone();
        let limit = opts.connect_timeout.unwrap_or(CONNECT_TIMEOUT);
        opts.connect_timeout = Some(limit);
        let t0 = Instant::now();
        match connect(&opts).await {
            Ok(client) => {
                self.failed_at.set(None);
                self.stats.connects.fetch_add(1, Relaxed);
                let c = Rc::new(Conn {
                    client,
                    prepared: RefCell::new(HashMap::new()),
                    stats: self.stats.clone(),
                    broken: Cell::new(false),
                    opened: Instant::now(),
                    generation: self.generation.get(),
                    lane_generation: self.generation.clone(),
                });
                *slot = Some(c.clone());
                Ok(c)
            }
            Err(_) => {
                // The reason is not kept: the job's caller sees "unavailable" and readiness
                // fails; an operator finds the cause in PostgreSQL's own log.
                self.failed_at.set(Some(Instant::now()));
                self.stats.connect_failures.fetch_add(1, Relaxed);
                // An attempt that ran out of time (no refusal, no answer) means the database is
                // unreachable: the lane's open connections are as silent (see `Conn::generation`).
                if t0.elapsed() + Duration::from_millis(50) >= limit {
                    self.generation.set(self.generation.get() + 1);
                }
                Err(StoreError::Unavailable)
            }
        }
    }

    /// A shared connection, in turn (statements of concurrent tasks pipeline on each).
    pub(crate) async fn conn(&self) -> Result<Rc<Conn>, StoreError> {
        let i = self.turn.get();
        self.turn.set((i + 1) % self.shared.len());
        let mut slot = self.shared[i].lock().await;
        self.open(&mut slot).await
    }

    /// Runs `f` as part of the next write group (see the module's invariants); resolves after
    /// the group committed.
    pub(crate) async fn write<T, F>(self: &Rc<Self>, f: F) -> Result<T, StoreError>
    where
        T: 'static,
        F: AsyncFnOnce(&Conn) -> Result<T, StoreError> + 'static,
    {
        let slot: Rc<RefCell<Option<Result<T, StoreError>>>> = Rc::new(RefCell::new(None));
        let (tx, rx) = oneshot::channel();
        let mine = slot.clone();
        let job: WriteJob = Box::new(move |c: Rc<Conn>| {
            Box::pin(async move {
                let r = f(&c).await;
                let ok = r.is_ok();
                *mine.borrow_mut() = Some(r);
                ok
            })
        });
        let finish: Finish = Box::new(move |outcome| {
            let own = slot.borrow_mut().take();
            let answer = match (outcome, own) {
                (Ok(()), Some(r)) => r,
                // A write that failed keeps its own error; the others of its group get the group's.
                (Err(_), Some(Err(e))) | (Err(e), _) => Err(e),
                (Ok(()), None) => Err(StoreError::Unavailable),
            };
            let _ = tx.send(answer);
        });
        self.pending.borrow_mut().push((job, finish));
        self.kick();
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Looks up one token row (`sql::GET_TOKENS`'s columns): lookups that arrive while others
    /// are in flight go out together as one statement. Why: introspection reads one token per
    /// request, and a statement's fixed cost in PostgreSQL (parse of the message, executor
    /// start, the reply) dwarfs one index lookup (`docs/design.md` §5.2 has the measurements).
    pub(crate) async fn lookup(self: &Rc<Self>, part: i32, seq: i64) -> Result<Option<Row>, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.lookups.borrow_mut().push(((part, seq), tx));
        if self.lookups_in_flight.get() < LOOKUP_STATEMENTS {
            self.lookups_in_flight.set(self.lookups_in_flight.get() + 1);
            let lane = self.clone();
            monoio::spawn(async move {
                loop {
                    let batch: Vec<Lookup> = {
                        let mut p = lane.lookups.borrow_mut();
                        let n = p.len().min(MAX_LOOKUPS);
                        p.drain(..n).collect()
                    };
                    if batch.is_empty() {
                        break;
                    }
                    lane.look_up(batch).await;
                }
                lane.lookups_in_flight.set(lane.lookups_in_flight.get() - 1);
            });
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn look_up(&self, batch: Vec<Lookup>) {
        let parts: Vec<i32> = batch.iter().map(|((p, _), _)| *p).collect();
        let seqs: Vec<i64> = batch.iter().map(|((_, s), _)| *s).collect();
        self.stats.lookups(batch.len());
        let rows = match self.conn().await {
            Ok(c) => c.query(crate::pg::sql::GET_TOKENS, &[&parts, &seqs]).await,
            Err(e) => Err(e),
        };
        let mut found: Vec<Option<Row>> = (0..batch.len()).map(|_| None).collect();
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => return batch.into_iter().for_each(|(_, tx)| drop(tx.send(Err(e.clone())))),
        };
        for row in rows {
            let i = row.try_get::<_, i64>(0).ok().and_then(|i| usize::try_from(i - 1).ok());
            if let Some(slot) = i.and_then(|i| found.get_mut(i)) {
                *slot = Some(row);
            }
        }
        for ((_, tx), row) in batch.into_iter().zip(found) {
            let _ = tx.send(Ok(row));
        }
    }

    /// Starts a group on a free writer connection when writes wait.
    fn kick(self: &Rc<Self>) {
        if self.pending.borrow().is_empty() {
            return;
        }
        let Some(w) = self.free_writers.borrow_mut().pop() else { return };
        let lane = self.clone();
        monoio::spawn(async move {
            loop {
                let group: Vec<(WriteJob, Finish)> = {
                    let mut p = lane.pending.borrow_mut();
                    let n = p.len().min(MAX_GROUP);
                    p.drain(..n).collect()
                };
                if group.is_empty() {
                    break;
                }
                lane.commit_group(w, group).await;
            }
            lane.free_writers.borrow_mut().push(w);
        });
    }

    async fn commit_group(&self, w: usize, group: Vec<(WriteJob, Finish)>) {
        let conn = {
            let mut slot = self.writers[w].borrow_mut().take();
            let c = self.open(&mut slot).await;
            *self.writers[w].borrow_mut() = slot;
            c
        };
        let conn = match conn {
            Ok(c) => c,
            Err(e) => return group.into_iter().for_each(|(_, fin)| fin(Err(e.clone()))),
        };
        self.stats.group(group.len());
        // A write alone needs no transaction of its own: every write is one statement (an
        // exchange's replay path adds statements that stand on their own), atomic by itself.
        // Saves the BEGIN and COMMIT round trips when writes do not overlap.
        if group.len() == 1 {
            let Some((job, fin)) = group.into_iter().next() else { return };
            let ok = job(conn).await;
            return fin(if ok { Ok(()) } else { Err(StoreError::Commit("the write failed".into())) });
        }
        // BEGIN and the writes' first statements go out back to back (tasks run in the order
        // they were spawned), pipelined on the connection.
        let begin = {
            let conn = conn.clone();
            monoio::spawn(async move { conn.simple("BEGIN").await })
        };
        let running: Vec<_> = group.into_iter().map(|(job, fin)| (monoio::spawn(job(conn.clone())), fin)).collect();
        let began = begin.await;
        let mut done = Vec::with_capacity(running.len());
        let mut all_ok = began.is_ok();
        for (handle, fin) in running {
            all_ok &= handle.await;
            done.push(fin);
        }
        let outcome = if let Err(e) = began {
            // Without a transaction the writes ran on their own: each may or may not have
            // happened, which an error allows.
            Err(e)
        } else if all_ok {
            match conn.simple("COMMIT").await {
                Ok(()) => {
                    self.stats.transactions.fetch_add(1, Relaxed);
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else {
            // A rollback that fails leaves a broken connection, which the next group replaces.
            if conn.simple("ROLLBACK").await.is_err() {
                conn.broken.set(true);
            }
            Err(StoreError::Commit("another write of the same group failed; nothing of it was written".into()))
        };
        for fin in done {
            fin(outcome.clone());
        }
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
    /// Starts `n` lanes (threads named `pg-lane-<i>`), each with `shared` pipelined connections,
    /// `writers` group connections and one exclusive; connections open on first use.
    pub(crate) fn start(opts: &PgOptions, n: usize, shared: usize, writers: usize) -> Result<Lanes, StoreError> {
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
                            shared: (0..shared.max(1)).map(|_| tokio::sync::Mutex::new(None)).collect(),
                            writers: (0..writers.max(1)).map(|_| RefCell::new(None)).collect(),
                            free_writers: RefCell::new((0..writers.max(1)).collect()),
                            pending: RefCell::new(Vec::new()),
                            lookups: RefCell::new(Vec::new()),
                            lookups_in_flight: Cell::new(0),
                            turn: Cell::new(0),
                            exclusive: tokio::sync::Mutex::new(None),
                            failed_at: Cell::new(None),
                            stats,
                            generation: Rc::new(Cell::new(0)),
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
