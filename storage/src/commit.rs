//! Group commit: one writer thread per redb database, batching every write that arrives while a
//! commit is in flight into the next one, made durable by one write-ahead log record.
//!
//! Invariants: only the committer thread opens write transactions on its database (single
//! writer); a job's reply is sent only after its batch is durable: its redo record is on disk
//! (O_DSYNC) before the batch commits to redb without fsync, or the batch itself is a durable
//! redb commit (a checkpoint); a checkpoint records a new log epoch in the same durable commit,
//! and only then does the log start over; if any job of a batch fails, the whole batch is
//! aborted and every caller in it sees an error.
//!
//! Why: a durable redb commit of 30 tokens costs about 235 µs of CPU on the reference VM (file
//! growth makes every fsync write metadata too), a log record write plus a non-durable redb
//! commit, checkpoints included, about 130 µs (`storage/examples/commit_cost --no-wal 30` vs
//! `--wal 30`); issuance under load went from 0.43 to 0.60 of the HTTP ceiling.
//!
//! Staged token rows: a batch made only of new tokens ([`Committer::stage`]) is acknowledged
//! once its log record is durable, without a redb commit; its rows wait in [`Staged`], where
//! readers find them, and reach the B-tree in bulk (every [`APPLY_AT`] rows, and first thing in
//! any other commit, checkpoints included). Invariants: a staged row is in a durable log record
//! of the current epoch, so a crash replays it; it leaves [`Staged`] only after a commit holding
//! it is visible to readers, and readers look in [`Staged`] before they open a read
//! transaction, so a token is never in neither place; every other write applies the staged rows
//! first, in the same transaction, so the B-tree sees writes in log order. Why: a redb commit
//! per small batch cost about 4.7 µs of CPU per token, in batches of 256 and more about 2.4 µs
//! (`storage/examples/commit_cost`), and the acknowledgement no longer waits for the B-tree.
//!
//! Deferred batches: a batch of exchanges, rotations and revocations
//! ([`Committer::submit_deferrable`], changing only token rows, grant rows and the sequence
//! floor) is acknowledged once its log record is durable, and stays in the open write
//! transaction; its token rows, removals included, go to [`Staged`] for readers. The next
//! commit of any other kind, a checkpoint, or [`DEFER_AT`] rows in [`Staged`] commit the
//! transaction. Invariants: as for staged rows; besides, a batch that fails aborts the open
//! transaction, and the deferred batches in it are replayed from their redo logs (kept in
//! memory) into a new one before the next batch runs.

use crate::tx::{decode_u64_be, for_each_change, log_put, token_key, Table, Tx};
use crate::wal::Wal;
use crate::StoreError;

/// A partition's database as readers find it (empty while the committer reopens it).
pub(crate) type DbSlot = arc_swap::ArcSwapOption<redb::Database>;
use futures_channel::oneshot;
use redb::Database;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How commits reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Durable before acknowledging (the default; the only mode for production).
    Immediate,
    /// No sync per commit; for benchmarks and development only. Data is flushed now and then
    /// and at shutdown.
    None,
}

type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// Opens a partition's database and log again (after an I/O error latched the old one).
pub(crate) type Opener = Box<dyn Fn() -> Result<(Database, SyncMode), StoreError> + Send>;
type Job = Box<dyn FnOnce(&mut Tx<'_>) -> Result<Completion, StoreError> + Send>;

/// New token rows (sequence number, encoded record) and who waits for them.
pub(crate) struct Stage {
    rows: Vec<(u64, Vec<u8>)>,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// What reaches a committer thread.
enum Msg {
    /// A job whose batch is committed to redb before anyone hears of it.
    Job(Job),
    /// A job whose batch may stay in the open write transaction once logged
    /// ([`Committer::submit_deferrable`]).
    Deferrable(Job),
    Stage(Stage),
}

/// The tables a batch may change and still stay uncommitted in the open write transaction:
/// readers outside the committer find token rows in [`Staged`]; the other two are read only
/// by jobs, inside the transaction.
const DEFERRABLE_TABLES: [Table; 3] = [Table::Tokens, Table::Families, Table::SeqFloor];

/// Staged rows of at least this many tokens are applied to the B-tree in one commit without a
/// log record of its own. Past about 256 rows a commit's cost per row stops falling
/// (`storage/examples/commit_cost`); the bound also caps how long one apply holds the committer.
pub(crate) const APPLY_AT: usize = 512;

/// Token rows in [`Staged`] (staged or deferred) at which the open write transaction is
/// committed. Refresh rotation, server CPU per rotation (`SCENARIO=refresh ROUNDS=3
/// loadtest/threads.sh`, `loadtest/runs/2026-12-07T204841Z-3ab48e3-threads-refresh-defer-bounds.md`): a commit per
/// batch 32.5 µs, deferred up to 128 rows 32.8, 512 rows 31.5, 2048 rows 30.1, 8192 rows 30.5.
/// Staged issuance rows keep their own bound ([`APPLY_AT`]): at 2048 issuance's p99 rose from
/// 2.4 to 3.4 ms (`…-205018Z-3ab48e3-threads-issuance-defer-bounds.md`).
const DEFER_AT: usize = 2048;

/// Token rows acknowledged (their log record is durable) but not yet in the B-tree, by
/// sequence number (a removal as `None`), and the token table as readers last opened it. Shared by the committer,
/// which fills and drains the rows and publishes every commit, and readers.
///
/// The shared snapshot: opening a read transaction and its token table cost more than the
/// lookup itself (`loadtest/callgrind.sh`, introspection: `begin_read` and `open_table` about
/// 4,700 of 36,600 instructions per request), so readers share one opened table until the next
/// commit. Invariants: `generation` rises after every commit is visible and before its callers
/// hear of it or its staged rows leave the map; a snapshot is tagged with the generation read
/// *before* its transaction began, so its contents are at least that new; a reader uses a
/// snapshot only when its tag equals the current generation, read after the map was consulted.
/// So a reader after an acknowledged write, or one that missed a row in the map, never reads
/// an older table. The committer lets the shared snapshot go at every commit, so it never pins
/// pages that later commits could reuse.
#[derive(Default)]
pub struct Staged {
    /// Token rows by sequence number: `None` is a row removed (a tombstone over the B-tree).
    rows: std::sync::Mutex<std::collections::HashMap<u64, Option<Arc<[u8]>>>>,
    generation: std::sync::atomic::AtomicU64,
    tokens: arc_swap::ArcSwapOption<TokenSnapshot>,
}

impl std::fmt::Debug for Staged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staged").field("rows", &self.len()).finish_non_exhaustive()
    }
}

/// The token table of one read transaction, opened at `generation`.
pub(crate) struct TokenSnapshot {
    generation: u64,
    pub(crate) table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl Staged {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, Option<Arc<[u8]>>>> {
        // Nothing panics while holding the lock; a poisoned map is still consistent.
        self.rows.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Token `seq` as the rows not yet committed have it, read in place: `None` when they do
    /// not name it (the B-tree decides), `Some(None)` when they removed it.
    pub(crate) fn get<R>(&self, seq: u64, read: impl FnOnce(&[u8]) -> R) -> Option<Option<R>> {
        self.lock().get(&seq).map(|v| v.as_deref().map(read))
    }

    /// How many rows wait.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The token table as of the latest visible commit: the shared snapshot when it is
    /// current, else one opened now through `open` (and shared). Call after [`Staged::get`].
    pub(crate) fn tokens(
        &self,
        open: impl FnOnce() -> Result<redb::ReadOnlyTable<&'static [u8], &'static [u8]>, StoreError>,
    ) -> Result<Arc<TokenSnapshot>, StoreError> {
        let generation = self.generation.load(std::sync::atomic::Ordering::Acquire);
        if let Some(snap) = self.tokens.load_full().filter(|s| s.generation == generation) {
            return Ok(snap);
        }
        let snap = Arc::new(TokenSnapshot { generation, table: open()? });
        self.tokens.store(Some(snap.clone()));
        Ok(snap)
    }

    /// After a commit is visible, before anyone hears of it or its staged rows leave the map:
    /// snapshots opened before it are no longer used, and the shared one is let go.
    fn publish(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::Release);
        self.tokens.store(None);
    }
}

/// The largest batch one commit takes; bounds the latency of the first request in it.
const MAX_BATCH: usize = 4096;
/// Log-backed redb commits between two checkpoints. A checkpoint's cost grows with the commits
/// since the previous one (redb settles their freed pages then), and writes wait for it, so this
/// sets the tail latency of writes that commit every batch. Refresh rotation at 64 connections
/// (`bench` flowload, one core), p99 by this bound at the same rate: 64 → 5.3–5.5 ms, 32 → 4.0–4.6
/// ms (5.9 in one round of nine), 16 → 3.5–4.0 ms; at 16 issuance's p99 rose from 1.8–2.0 to
/// 3.9–4.1 ms, at 8 refresh lost 5–10 % of its rate
/// (`loadtest/runs/2026-12-07T105500Z-ef4f235-checkpoint-bound.md`). Staged batches make no redb
/// commit and are not counted: counted, they made steady issuance checkpoint 25 to 40 times a
/// second (`docs/design.md` §5, write-ahead log).
const CHECKPOINT_COMMITS: u32 = 32;
/// The longest stretch without a checkpoint while writes arrive; also how long an idle
/// committer waits before checkpointing what the log holds.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);
/// How often a failed committer tries to reopen its database.
const REOPEN_INTERVAL: Duration = Duration::from_millis(200);
/// Key of the log epoch in [`Table::State`].
const EPOCH_KEY: &[u8] = b"wal_epoch";

/// Upper bounds (µs) of the durable-write latency histogram; one more slot counts the rest.
pub const SYNC_BUCKETS_US: [u64; 10] = [50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000];
/// Upper bounds of the batch-size histogram (jobs per commit); one more slot counts the rest.
pub const BATCH_BUCKETS: [u64; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 512, 2048];

pub(crate) fn bucket(bounds: &[u64], v: u64) -> usize {
    bounds.iter().position(|b| v <= *b).unwrap_or(bounds.len())
}

/// Counters a committer keeps, read by metrics and tests.
#[derive(Debug, Default)]
pub struct CommitStats {
    /// Durable writes (one per commit that made one) by latency, per [`SYNC_BUCKETS_US`].
    pub sync_hist: [std::sync::atomic::AtomicU64; 11],
    /// Commits by the number of jobs they carried, per [`BATCH_BUCKETS`].
    pub batch_hist: [std::sync::atomic::AtomicU64; 11],
    pub commits: std::sync::atomic::AtomicU64,
    pub jobs: std::sync::atomic::AtomicU64,
    pub failures: std::sync::atomic::AtomicU64,
    /// Durable redb commits (checkpoints, and every commit without a log).
    pub checkpoints: std::sync::atomic::AtomicU64,
    /// Log records replayed when the database was opened.
    pub replayed: std::sync::atomic::AtomicU64,
    /// Microseconds spent making commits durable (log writes, durable commits).
    pub sync_micros: std::sync::atomic::AtomicU64,
    /// Times the database was reopened after an I/O error.
    pub reopens: std::sync::atomic::AtomicU64,
    /// Whether the partition is refusing writes until its database is reopened.
    pub failed: std::sync::atomic::AtomicBool,
}

/// Handle to a database's committer thread.
pub struct Committer {
    sender: Option<crossbeam_channel::Sender<Msg>>,
    /// Where staged token rows wait.
    staged: Arc<Staged>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<CommitStats>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer").finish_non_exhaustive()
    }
}

/// What makes a commit durable.
pub(crate) enum SyncMode {
    /// A write-ahead log record per batch, checkpoints now and then.
    Log(Wal),
    /// Every batch is a durable redb commit (no log file; `StoreOptions::wal_bytes` 0).
    Each,
    /// Nothing per batch (`Durability::None`, in-memory stores): a durable commit now and then.
    Lazy,
}

impl Committer {
    /// Starts the committer. With a log, first replays what the log holds on top of the
    /// database's durable state and checkpoints it.
    pub(crate) fn start(
        name: String,
        slot: Arc<DbSlot>,
        mut sync: SyncMode,
        opener: Option<Opener>,
    ) -> Result<Self, StoreError> {
        let staged = Arc::new(Staged::default());
        let stats = Arc::new(CommitStats::default());
        let db = slot.load_full().ok_or(StoreError::Closed)?;
        if let SyncMode::Log(wal) = &mut sync {
            let replayed = recover(&db, wal)?;
            stats.replayed.store(replayed, std::sync::atomic::Ordering::Relaxed);
        }
        let (sender, receiver) = crossbeam_channel::unbounded::<Msg>();
        let thread_stats = stats.clone();
        let thread_staged = staged.clone();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || run(Some(db), &slot, opener, &receiver, sync, &thread_stats, &thread_staged))
            .map_err(|e| StoreError::Database(format!("cannot start committer thread: {e}")))?;
        Ok(Committer { sender: Some(sender), staged, thread: Some(thread), stats })
    }

    /// Queues `f` to run inside the next write transaction. The returned future resolves after
    /// that transaction is durable (or failed).
    pub fn submit<T, F>(&self, f: F) -> Pending<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit_then(f, |_: &T| {})
    }

    /// As [`Committer::submit`], and `then` runs on the committer thread once the batch is
    /// committed and visible to readers, before the caller hears of it (the change feed
    /// publishes a version there).
    pub fn submit_then<T, F, A>(&self, f: F, then: A) -> Pending<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, StoreError> + Send + 'static,
        A: FnOnce(&T) + Send + 'static,
    {
        let (job, pending) = job(f, then);
        self.send(Msg::Job(job));
        pending
    }

    /// As [`Committer::submit`] for a job that changes only [`DEFERRABLE_TABLES`]: once its
    /// batch's log record is durable, the batch may stay in the open write transaction (its
    /// token rows readable from [`Staged`]) and reach redb with later batches in one commit.
    pub fn submit_deferrable<T, F>(&self, f: F) -> Pending<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (job, pending) = job(f, |_: &T| {});
        self.send(Msg::Deferrable(job));
        pending
    }

    fn send(&self, msg: Msg) {
        if let Some(sender) = &self.sender {
            // A closed channel drops the job and so the reply sender: the caller sees an error.
            let _ = sender.send(msg);
        }
    }

    /// Queues new token rows (`Table::Tokens`, keyed by sequence number): resolves once they are
    /// durable, which for a batch of nothing but staged rows means once its log record is.
    pub(crate) fn stage(&self, rows: Vec<(u64, Vec<u8>)>) -> Pending<()> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Stage(Stage { rows, reply }));
        Pending { rx }
    }

    /// The rows waiting to reach the B-tree (for readers).
    pub fn staged(&self) -> &Staged {
        &self.staged
    }

    /// Stops accepting jobs, lets the thread finish what is queued (with a final checkpoint)
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

/// A job for the committer and the future its caller waits on.
fn job<T, F, A>(f: F, then: A) -> (Job, Pending<T>)
where
    T: Send + 'static,
    F: FnOnce(&mut Tx<'_>) -> Result<T, StoreError> + Send + 'static,
    A: FnOnce(&T) + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move |wtx| {
        let value = f(wtx)?;
        Ok(Box::new(move |committed: Result<(), StoreError>| {
            if committed.is_ok() {
                then(&value);
            }
            let _ = tx.send(committed.map(|()| value));
        }) as Completion)
    });
    (job, Pending { rx })
}

fn read_epoch(db: &Database) -> Result<u64, StoreError> {
    let w = db.begin_write()?;
    let epoch = Tx::new(&w, false).get(Table::State, EPOCH_KEY)?;
    w.abort()?;
    Ok(match epoch.as_deref().map(<[u8; 8]>::try_from) {
        None => 0,
        Some(Ok(b)) => u64::from_le_bytes(b),
        Some(Err(_)) => return Err(StoreError::Corrupt("log epoch")),
    })
}

/// Replays the current epoch's records in one durable commit that also starts the next epoch.
pub(crate) fn recover(db: &Database, wal: &mut Wal) -> Result<u64, StoreError> {
    let epoch = read_epoch(db)?;
    let records = wal.records(epoch)?;
    let mut w = db.begin_write()?;
    {
        let mut tx = Tx::new(&w, false);
        for r in &records {
            tx.replay(r)?;
        }
        tx.insert(Table::State, EPOCH_KEY, &(epoch + 1).to_le_bytes())?;
    }
    w.set_durability(redb::Durability::Immediate).map_err(|e| StoreError::Database(e.to_string()))?;
    w.commit()?;
    wal.reset(epoch + 1);
    Ok(records.len() as u64)
}

/// How [`State::commit`] may end a batch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum How {
    /// Deferred when the batch allows it, else committed (checkpointed when one is due).
    MayDefer,
    /// Committed, the open transaction with it (checkpointed when one is due).
    Commit,
    /// A checkpoint.
    Checkpoint,
}

struct State {
    sync: SyncMode,
    /// Log-backed redb commits since the last checkpoint.
    since: u32,
    /// Staged batches (log records without a redb commit) since the last checkpoint.
    appends: u32,
    /// Checkpoints made (read by `run` to count them).
    checkpoints: u64,
    last_checkpoint: Instant,
    /// A log append or a commit after it failed: the log's tail is unknown until a checkpoint.
    broken: bool,
    /// Microseconds spent in durable writes since the counters were last read.
    synced_us: u64,
    /// Staged rows not yet in a write transaction, in log order (also in [`Staged`]).
    pending: Vec<(u64, Arc<[u8]>)>,
    /// The write transaction deferred batches stay in until a commit (see [`State::commit`]).
    open: Option<redb::WriteTransaction>,
    /// The redo log of everything in `open`, all of it acknowledged: replayed into a new
    /// transaction when a later batch fails and `open` has to be aborted.
    open_log: Vec<u8>,
}

impl State {
    fn new(sync: SyncMode) -> State {
        State {
            sync,
            since: 0,
            appends: 0,
            checkpoints: 0,
            last_checkpoint: Instant::now(),
            broken: false,
            synced_us: 0,
            pending: Vec::new(),
            open: None,
            open_log: Vec::new(),
        }
    }

    /// Acknowledges a batch of nothing but new token rows once its log record is durable,
    /// without a redb commit. `None` when the batch cannot go that way (no log, a checkpoint is
    /// due, the record does not fit): the caller commits it the ordinary way.
    fn stage(
        &mut self,
        batch: &mut Vec<Msg>,
        done: &mut Vec<Completion>,
        staged: &Staged,
    ) -> Option<Result<(), StoreError>> {
        if self.due() || batch.iter().any(|m| !matches!(m, Msg::Stage(_))) {
            return None;
        }
        let SyncMode::Log(wal) = &mut self.sync else { return None };
        let mut log = Vec::new();
        for m in batch.iter() {
            if let Msg::Stage(s) = m {
                for (seq, value) in &s.rows {
                    log_put(&mut log, Table::Tokens, &token_key(*seq), value);
                }
            }
        }
        if log.is_empty() || !wal.fits(log.len()) {
            return None;
        }
        let t0 = Instant::now();
        let appended = wal.append(&log);
        self.synced_us += t0.elapsed().as_micros() as u64;
        let mut rows = Vec::new();
        for m in batch.drain(..) {
            if let Msg::Stage(s) = m {
                rows.extend(s.rows);
                let reply = s.reply;
                done.push(Box::new(move |r: Result<(), StoreError>| {
                    let _ = reply.send(r);
                }));
            }
        }
        if let Err(e) = appended {
            self.broken = true;
            return Some(Err(e));
        }
        let mut map = staged.lock();
        for (seq, value) in rows {
            let value: Arc<[u8]> = value.into();
            map.insert(seq, Some(value.clone()));
            self.pending.push((seq, value));
        }
        drop(map);
        self.appends += 1;
        Some(Ok(()))
    }

    fn due(&self) -> bool {
        match &self.sync {
            SyncMode::Log(wal) => {
                self.broken
                    || self.since >= CHECKPOINT_COMMITS
                    || wal.used() * 2 >= wal.size()
                    || (self.since + self.appends > 0 && self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL)
            }
            // redb cannot reuse pages freed by non-durable commits until a durable one lands,
            // so a long run of them grows the file and slows every commit (measured: 207
            // issuances/s after a few seconds of load).
            SyncMode::Each => true,
            SyncMode::Lazy => self.since > 0 && self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL / 2,
        }
    }

    /// Runs a batch in the write transaction (the open one, else a new one) and makes it
    /// durable. A batch of nothing but deferrable jobs, logged and changing only
    /// [`DEFERRABLE_TABLES`], is *deferred*: once its log record is durable, its token changes go
    /// to [`Staged`] (where readers look first) and the transaction stays open for the next
    /// batch; any other batch, a checkpoint, or [`DEFER_AT`] rows in [`Staged`] commit it,
    /// and with it every deferred batch before. Invariants: what `open` holds is acknowledged
    /// only once it is in a durable log record of the current epoch (so a crash replays it), and
    /// it leaves [`Staged`] only after the commit holding it is visible; a failing batch aborts
    /// `open`, and the deferred batches are replayed from `open_log` into a new transaction.
    /// Why: a rotation changes four token rows and its grant's row; with a redb commit per batch
    /// of them the commits took 17 % of the committer's samples, deferred 5 %
    /// (`flamegraphs/2026-12-07-refresh-3ab48e3.svg`, `…-refresh-deferred.svg`); the committer's
    /// CPU per rotation fell 2–8 % in four runs (`docs/design.md` §5, deferred batches).
    fn commit(
        &mut self,
        db: &Database,
        batch: &mut Vec<Msg>,
        done: &mut Vec<Completion>,
        how: How,
        staged: &Staged,
    ) -> Result<(), StoreError> {
        let mut checkpoint = how == How::Checkpoint || self.due();
        let w = match self.open.take() {
            Some(w) => w,
            None => db.begin_write()?,
        };
        let logged = matches!(self.sync, SyncMode::Log(_)) && !checkpoint;
        let mut defer = logged && how == How::MayDefer;
        let log = {
            let mut tx = Tx::new(&w, logged);
            // Staged rows first: they are older than every job of this batch. Their log records
            // are already written, so they are not logged again.
            for (seq, value) in &self.pending {
                if let Err(e) = tx.insert_unlogged(Table::Tokens, &token_key(*seq), value) {
                    drop(tx);
                    return Err(self.abort(db, w, e));
                }
            }
            for msg in batch.drain(..) {
                let job = match msg {
                    Msg::Job(job) => {
                        defer = false;
                        job
                    }
                    Msg::Deferrable(job) => job,
                    Msg::Stage(s) => stage_job(s),
                };
                // A bug in one job must fail its batch, not end the partition's only writer
                // (every later write would then hang or fail).
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut tx)))
                    .unwrap_or_else(|_| Err(StoreError::Commit("a write job panicked".into())));
                match ran {
                    Ok(d) => done.push(d),
                    Err(e) => {
                        drop(tx);
                        return Err(self.abort(db, w, e));
                    }
                }
            }
            defer &= tx.changed_only(&DEFERRABLE_TABLES);
            if let SyncMode::Log(wal) = &self.sync {
                if logged && !wal.fits(tx.log_len()) {
                    checkpoint = true;
                }
                if checkpoint {
                    if let Err(e) = tx.insert(Table::State, EPOCH_KEY, &(wal.epoch() + 1).to_le_bytes()) {
                        drop(tx);
                        return Err(self.abort(db, w, e));
                    }
                }
            }
            tx.finish()
        };
        if checkpoint {
            let mut w = w;
            w.set_durability(redb::Durability::Immediate).map_err(|e| StoreError::Database(e.to_string()))?;
            let t0 = Instant::now();
            w.commit()?;
            self.synced_us += t0.elapsed().as_micros() as u64;
            if let SyncMode::Log(wal) = &mut self.sync {
                let next = wal.epoch() + 1;
                wal.reset(next);
            }
            self.since = 0;
            self.appends = 0;
            self.checkpoints += 1;
            self.broken = false;
            self.last_checkpoint = Instant::now();
            self.applied(staged);
            return Ok(());
        }
        // Read back before the log is written, so a deferred batch cannot fail once it is.
        let changes = if defer { token_changes(&log) } else { None };
        if let SyncMode::Log(wal) = &mut self.sync {
            if !log.is_empty() {
                let t0 = Instant::now();
                let appended = wal.append(&log);
                self.synced_us += t0.elapsed().as_micros() as u64;
                if let Err(e) = appended {
                    self.broken = true;
                    return Err(self.abort(db, w, e));
                }
            }
        }
        if let Some(changes) = changes {
            self.defer(w, &log, changes, staged);
            return Ok(());
        }
        let mut w = w;
        w.set_durability(redb::Durability::None).map_err(|e| StoreError::Database(e.to_string()))?;
        self.since += 1;
        w.commit().inspect_err(|_| self.broken = true)?;
        self.applied(staged);
        Ok(())
    }

    /// Keeps a logged batch in the open transaction: its token changes become readable from
    /// [`Staged`], and the rows staged before it, now in the transaction, join `open_log`.
    fn defer(&mut self, w: redb::WriteTransaction, log: &[u8], changes: TokenChanges, staged: &Staged) {
        for (seq, value) in self.pending.drain(..) {
            log_put(&mut self.open_log, Table::Tokens, &token_key(seq), &value);
        }
        staged.lock().extend(changes);
        self.open_log.extend_from_slice(log);
        self.open = Some(w);
        if !log.is_empty() {
            self.appends += 1;
        }
    }

    /// Aborts `w` after `e` failed its batch. The deferred batches it held were acknowledged:
    /// they are replayed into a new open transaction, and if that fails too the partition
    /// must be reopened (its log replays them), so the error becomes fatal.
    fn abort(&mut self, db: &Database, w: redb::WriteTransaction, e: StoreError) -> StoreError {
        let _ = w.abort();
        if self.open_log.is_empty() {
            return e;
        }
        let again = || -> Result<redb::WriteTransaction, StoreError> {
            let w = db.begin_write()?;
            Tx::new(&w, false).replay(&self.open_log)?;
            Ok(w)
        };
        match again() {
            Ok(w) => {
                self.open = Some(w);
                e
            }
            Err(again) => {
                self.open_log.clear();
                self.broken = true;
                StoreError::Commit(format!("{e}; the deferred batches could not be restored: {again}"))
            }
        }
    }

    /// After a commit is visible: readers stop using older snapshots, and every row in
    /// [`Staged`] (all of them were in it) leaves.
    fn applied(&mut self, staged: &Staged) {
        staged.publish();
        self.open_log.clear();
        self.pending.clear();
        staged.lock().clear();
    }
}

/// Token rows a batch changed, in log order: the value put, or `None` for a removal.
type TokenChanges = Vec<(u64, Option<Arc<[u8]>>)>;

/// The token rows a redo log changes (`None` if it does not parse, which a log [`Tx`] wrote
/// always does).
fn token_changes(log: &[u8]) -> Option<TokenChanges> {
    let mut out = Vec::new();
    for_each_change(log, |t, key, value| {
        if t == Table::Tokens {
            out.push((decode_u64_be(key), value.map(Arc::from)));
        }
        Ok(())
    })
    .ok()?;
    Some(out)
}

/// A staged batch committed the ordinary way (with other jobs, or when it cannot be staged).
fn stage_job(s: Stage) -> Job {
    let Stage { rows, reply } = s;
    Box::new(move |tx| {
        for (seq, value) in &rows {
            tx.insert(Table::Tokens, &token_key(*seq), value)?;
        }
        Ok(Box::new(move |r: Result<(), StoreError>| {
            let _ = reply.send(r);
        }) as Completion)
    })
}

/// Whether a failed commit leaves the database unusable until it is reopened: redb latches
/// every I/O error (later calls answer `PreviousIo`), and a failed log write leaves the log's
/// tail unknown. A job's own refusal (a corrupt record, say) does not.
fn fatal(e: &StoreError) -> bool {
    matches!(e, StoreError::Database(_) | StoreError::Commit(_) | StoreError::Io(_))
}

/// Counts a failed commit; a fatal one latches the partition until it is reopened (when it can be).
/// Readers stop using a shared snapshot of the latched database, as they stop using it at the
/// reopen.
fn failed(stats: &CommitStats, staged: &Staged, e: &StoreError, reopenable: bool) {
    use std::sync::atomic::Ordering::Relaxed;
    stats.failures.fetch_add(1, Relaxed);
    if fatal(e) && reopenable {
        stats.failed.store(true, Relaxed);
        staged.publish();
    }
}

/// Closes the failed database and opens it again: readers are turned away first, the old
/// handle is dropped once in-flight readers let go of it, and the log is replayed over the
/// reopened database, so every acknowledged write is back before writes are taken again.
fn reopen(
    current: &mut Option<Arc<Database>>,
    slot: &DbSlot,
    opener: &Opener,
    staged: &Staged,
) -> Result<(Database, SyncMode), StoreError> {
    // Readers stop using tables of the old handle before it goes.
    staged.publish();
    slot.store(None);
    if let Some(old) = current.take() {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(old);
    }
    let (db, mut sync) = opener()?;
    if let SyncMode::Log(wal) = &mut sync {
        recover(&db, wal)?;
    }
    Ok((db, sync))
}

fn run(
    mut current: Option<Arc<Database>>,
    slot: &DbSlot,
    opener: Option<Opener>,
    receiver: &crossbeam_channel::Receiver<Msg>,
    sync: SyncMode,
    stats: &CommitStats,
    staged: &Staged,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut state = State::new(sync);
    let mut batch: Vec<Msg> = Vec::new();
    let mut completions: Vec<Completion> = Vec::new();
    let mut last_reopen: Option<Instant> = None;
    loop {
        let wait = if stats.failed.load(Relaxed) { REOPEN_INTERVAL } else { CHECKPOINT_INTERVAL };
        let first = match receiver.recv_timeout(wait) {
            Ok(job) => Some(job),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        if stats.failed.load(Relaxed) {
            if let Some(opener) = opener.as_ref().filter(|_| last_reopen.is_none_or(|t| t.elapsed() >= REOPEN_INTERVAL))
            {
                last_reopen = Some(Instant::now());
                // The open transaction holds the old database's file; its batches are in the log.
                drop(state.open.take());
                if let Ok((db, sync)) = reopen(&mut current, slot, opener, staged) {
                    let db = Arc::new(db);
                    // The replayed log holds every staged row, now in the B-tree.
                    staged.lock().clear();
                    staged.publish();
                    slot.store(Some(db.clone()));
                    current = Some(db);
                    state = State::new(sync);
                    stats.failed.store(false, Relaxed);
                    stats.reopens.fetch_add(1, Relaxed);
                }
            }
        }
        let Some(db) = current.clone().filter(|_| !stats.failed.load(Relaxed)) else {
            // Refused, not queued: the caller answers "try again later" at once.
            drop(first);
            receiver.try_iter().take(MAX_BATCH).for_each(drop);
            continue;
        };
        if first.is_none() && !state.due() {
            continue;
        }
        batch.extend(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        let before = state.checkpoints;
        let result = match state.stage(&mut batch, &mut completions, staged) {
            Some(r) => r,
            None => state.commit(&db, &mut batch, &mut completions, How::MayDefer, staged),
        };
        if let Err(e) = &result {
            failed(stats, staged, e, opener.is_some());
        }
        // The batch's checkpoints, sync time and size are counted before anyone is told, so a
        // caller that saw its write done sees it counted.
        stats.checkpoints.fetch_add(state.checkpoints - before, Relaxed);
        // The bulk apply below counts its own checkpoint, if it makes one.
        let before = state.checkpoints;
        let synced = std::mem::take(&mut state.synced_us);
        if synced > 0 {
            stats.sync_hist[bucket(&SYNC_BUCKETS_US, synced)].fetch_add(1, Relaxed);
        }
        stats.sync_micros.fetch_add(synced, Relaxed);
        stats.batch_hist[bucket(&BATCH_BUCKETS, n)].fetch_add(1, Relaxed);
        stats.commits.fetch_add(1, Relaxed);
        stats.jobs.fetch_add(n, Relaxed);
        for done in completions.drain(..) {
            done(result.clone());
        }
        // Jobs that never ran (the batch aborted early) are dropped here; their callers see
        // the reply channel close, which `Pending` reports as an aborted commit.
        batch.clear();
        // Enough staged rows: into the B-tree in one commit (no caller waits on it; a failure
        // leaves them staged, and their log records replay them after a reopen).
        if result.is_ok() && (state.pending.len() >= APPLY_AT || staged.len() >= DEFER_AT) {
            if let Err(e) = state.commit(&db, &mut batch, &mut completions, How::Commit, staged) {
                failed(stats, staged, &e, opener.is_some());
            }
        }
        stats.checkpoints.fetch_add(state.checkpoints - before, Relaxed);
    }
    // A last checkpoint: whatever the log or non-durable commits hold becomes part of the
    // durable database, and the next start has nothing to replay.
    if let Some(db) = current.filter(|_| !stats.failed.load(Relaxed)) {
        if state.commit(&db, &mut batch, &mut completions, How::Checkpoint, staged).is_ok() {
            stats.checkpoints.fetch_add(1, Relaxed);
        }
    }
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
        block_on(self)
    }

    /// An answer known without a commit (a request for a partition that does not exist): no
    /// job reaches a committer, so no other write's batch can be failed by it.
    pub(crate) fn ready(result: Result<T, StoreError>) -> Pending<T> {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(result);
        Pending { rx }
    }
}

/// `.wait()` on any future of the store: [`block_on`] as a method, for CLI tools, tests and
/// helper threads (never on a worker thread).
pub trait Wait: Future + Sized {
    fn wait(self) -> Self::Output {
        block_on(self)
    }
}

impl<F: Future> Wait for F {}

/// Runs a future of the store (a [`Pending`], or async code made of them) to completion on the
/// calling thread: they complete from committer threads and need no runtime. Start-up, CLI
/// tools, tests and helper threads only; never on a worker thread.
pub fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(r) = f.as_mut().poll(&mut cx) {
            return r;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableDatabase;

    fn open(db: &Database) -> Result<redb::ReadOnlyTable<&'static [u8], &'static [u8]>, StoreError> {
        Ok(db.begin_read()?.open_table(Table::Tokens.def())?)
    }

    fn put(db: &Database, key: u64) {
        let w = db.begin_write().unwrap();
        w.open_table(Table::Tokens.def()).unwrap().insert(&token_key(key)[..], &b"v"[..]).unwrap();
        w.commit().unwrap();
    }

    /// The race the generation closes: a reader opens its table, a commit becomes visible, and
    /// only then does the reader share what it opened. Later readers must not use it.
    #[test]
    fn a_snapshot_opened_before_a_commit_is_never_shared_after_it() {
        let db = crate::tx::memory_db();
        let staged = Staged::default();
        let snap = staged
            .tokens(|| {
                let old = open(&db);
                put(&db, 7);
                staged.publish();
                old
            })
            .unwrap();
        assert!(snap.table.get(&token_key(7)[..]).unwrap().is_none(), "the reader's own view is older");
        let mut opened = false;
        let fresh = staged
            .tokens(|| {
                opened = true;
                open(&db)
            })
            .unwrap();
        assert!(opened, "the stale snapshot was reused");
        assert!(fresh.table.get(&token_key(7)[..]).unwrap().is_some());
        // Without a commit in between, the snapshot is shared.
        let again = staged.tokens(|| panic!("a current snapshot was opened again")).unwrap();
        assert!(Arc::ptr_eq(&fresh, &again));
    }
}
