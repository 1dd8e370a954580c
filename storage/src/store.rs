//! The store: P token partitions plus one meta partition, each a redb database with its own
//! committer thread.
//!
//! Invariants: the partition count is fixed when the data directory is created and recorded in
//! its manifest; token keys are per-partition sequence numbers handed out in increasing order
//! (append-friendly B-tree inserts); the meta partition holds clients and per-client token
//! watermarks; reads open a read transaction from any thread and never wait for a commit.

use crate::commit::{Committer, DbSlot, Durability, Opener, Pending, SyncMode};
use crate::disk::{Faults, SimDisk};
use crate::records::{decode_token, encode_token, TokenKind, TokenRecord, TokenView};
use crate::tx::{Table, Tx};
use crate::wal::{Wal, DEFAULT_WAL_BYTES};
use crate::StoreError;
use redb::{Database, ReadableDatabase, ReadableTable};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Version of the data-directory layout written in the manifest. 2: every table bytes → bytes,
/// one write-ahead log per database.
pub const FORMAT_VERSION: u32 = 2;
const MANIFEST: &str = "MANIFEST";

/// The single row of [`Table::SeqFloor`].
const FLOOR_KEY: &[u8] = &[0];

fn token_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Version byte in front of a stored client.
pub const CLIENT_RECORD_VERSION: u8 = 1;

/// How the store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Partitions to create in a new data directory (a power of two). Ignored when the
    /// directory already has a manifest.
    pub partitions: u32,
    pub durability: Durability,
    /// redb page cache per partition, in bytes.
    pub cache_bytes: usize,
    /// Size of each database's write-ahead log file. 0: no log, every batch is a durable redb
    /// commit (about twice the CPU per commit).
    pub wal_bytes: u64,
    /// A fault switch in front of every file write and sync (I/O-error tests only).
    pub faults: Option<Arc<Faults>>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            partitions: 16,
            durability: Durability::Immediate,
            cache_bytes: 32 << 20,
            wal_bytes: DEFAULT_WAL_BYTES,
            faults: None,
        }
    }
}

/// One redb database and its single writer.
#[derive(Debug)]
pub struct Partition {
    /// The open database; empty while the committer reopens it after an I/O error.
    pub(crate) db: Arc<DbSlot>,
    pub(crate) committer: Committer,
    next_seq: AtomicU64,
}

impl Partition {
    /// A read transaction on the partition's database (refused while it is being reopened).
    pub(crate) fn read(&self) -> Result<redb::ReadTransaction, StoreError> {
        let db = self.db.load();
        Ok(db.as_ref().ok_or(StoreError::Unavailable)?.begin_read()?)
    }

    fn new(name: String, db: Database, sync: SyncMode, opener: Option<Opener>) -> Result<Self, StoreError> {
        let db = Arc::new(db);
        // Create the tables up front so that read transactions never find them missing.
        let wtx = db.begin_write()?;
        for t in Table::all() {
            wtx.open_table(t.def())?;
        }
        wtx.commit()?;
        let slot = Arc::new(DbSlot::from(Some(db.clone())));
        let committer = Committer::start(name, slot.clone(), sync, opener)?;
        // After the log is replayed: the replayed tokens count.
        let last = {
            let rtx = db.begin_read()?;
            let table = rtx.open_table(Table::Tokens.def())?;
            let last = table.last()?.map(|(k, _)| decode_u64_be(k.value()) + 1).unwrap_or(1);
            let floor =
                rtx.open_table(Table::SeqFloor.def())?.get(FLOOR_KEY)?.map(|v| decode_u64(v.value())).unwrap_or(1);
            last.max(floor)
        };
        Ok(Partition { db: slot, committer, next_seq: AtomicU64::new(last) })
    }

    /// Commit counters of this partition.
    pub fn stats(&self) -> &crate::commit::CommitStats {
        &self.committer.stats
    }
}

/// What a client write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Written,
    /// Create: the id is taken.
    Exists,
    /// Replace: no such client.
    Missing,
    /// Replace: the stored client is no longer the one the change was computed from.
    Conflict,
}

/// Whether a client write may create or must replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutMode {
    /// Create a new client. If the id had token watermarks (an earlier client of that id was
    /// deleted), they are raised to the given marks in the same transaction, so that no token
    /// minted for the earlier client can become valid for the new one.
    Create { marks: Vec<u64> },
    /// Replace the client whose stored bytes are exactly `expected` (compare-and-set: a
    /// read-modify-write computed from an older version is refused).
    Replace { expected: Vec<u8> },
}

/// Token operations, coarse: one call is one transaction. The shape a SQL backend would also fit.
pub trait TokenStore: Send + Sync {
    fn partition_count(&self) -> u32;
    /// Hands out the next sequence number of a partition (increasing).
    fn next_seq(&self, partition: u32) -> u64;
    /// The next sequence number of every partition, in partition order.
    fn seq_marks(&self) -> Vec<u64>;
    /// Inserts several tokens of one partition in one job (one commit, one completion).
    fn insert_tokens(&self, partition: u32, records: Vec<(u64, TokenRecord)>) -> Pending<()>;
    fn insert_token(&self, partition: u32, seq: u64, record: &TokenRecord) -> Pending<()> {
        self.insert_tokens(partition, vec![(seq, record.clone())])
    }
    fn get_token(&self, partition: u32, seq: u64) -> Result<Option<TokenRecord>, StoreError>;
    /// Reads a token in place (validated, not deserialized): the read path of introspection.
    fn get_token_view(&self, partition: u32, seq: u64) -> Result<Option<TokenView>, StoreError>;
    /// Deletes one token; resolves to whether it existed.
    fn delete_token(&self, partition: u32, seq: u64) -> Pending<bool>;
}

/// Client and watermark operations on the meta partition.
pub trait ClientStore: Send + Sync {
    /// Every client, as stored bytes (without the version byte).
    fn load_clients(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Creates or replaces a client. Resolves to the outcome and a version number that increases
    /// in commit order, so callers can apply concurrent writes to an in-memory view in the order
    /// the disk saw them.
    fn put_client(&self, id: &str, body: Vec<u8>, mode: PutMode) -> Pending<(PutOutcome, u64)>;
    /// Deletes a client and raises its token watermarks in the same transaction. Resolves to
    /// whether it existed and the commit-ordered version.
    fn delete_client(&self, id: &str, marks: Vec<u64>) -> Pending<(bool, u64)>;
    fn set_watermarks(&self, client_id: &str, marks: Vec<u64>) -> Pending<()>;
    fn load_watermarks(&self) -> Result<Vec<(String, Vec<u64>)>, StoreError>;
    /// Checks that the store answers (readiness).
    fn ping(&self) -> Result<(), StoreError>;
}

/// What exchanging an authorization code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeem {
    /// The code was fresh: it is now spent and the tokens are stored. Carries the code record.
    Done(Box<TokenRecord>),
    /// The code was spent before: every token of its grant was revoked.
    Replayed,
    /// No such code (or the signature does not match).
    Missing,
}

/// What rotating a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotate {
    /// The token was active: it is now spent, the grant's earlier access tokens are revoked and
    /// the new tokens stored. Carries the old refresh record.
    Done(Box<TokenRecord>),
    /// The token was rotated before: every token of its grant was revoked.
    Reused,
    Missing,
}

/// Authorization-code grants: every token of one grant lives in the partition of its code.
pub trait GrantStore: Send + Sync {
    /// Stores a code for a completed flow unless that flow already produced one (resolves to
    /// `false`: the consent verifier was used before). `flow_started` (unix seconds) is kept with
    /// the flow's row so the janitor can tell when the flow can no longer be presented.
    fn issue_code(
        &self,
        partition: u32,
        flow_id: &str,
        flow_started: i64,
        seq: u64,
        code: TokenRecord,
    ) -> Pending<bool>;
    /// Spends a code and stores the tokens it buys, or revokes the grant on a replay.
    fn redeem_code(
        &self,
        partition: u32,
        seq: u64,
        signature: [u8; 32],
        tokens: Vec<(u64, TokenRecord)>,
    ) -> Pending<Redeem>;
    /// Spends a refresh token and stores its successors, or revokes the grant on a reuse.
    fn rotate_refresh(
        &self,
        partition: u32,
        seq: u64,
        signature: [u8; 32],
        tokens: Vec<(u64, TokenRecord)>,
    ) -> Pending<Rotate>;
    /// Deletes every live token of a grant; resolves to how many.
    fn revoke_family(&self, partition: u32, family: u64) -> Pending<usize>;
    /// Whether a flow already produced its code (a read; never waits for a commit). `flow_id`
    /// may also name a step marker written by [`GrantStore::mark_flow`].
    fn flow_used(&self, partition: u32, flow_id: &str) -> Result<bool, StoreError>;
    /// Records durably that a step of a flow was handled (a verifier used), unless it was
    /// already: resolves to `false` then. The row has the layout of a code's row (no sequence
    /// number), so the janitor sweeps it with the flow.
    fn mark_flow(&self, partition: u32, key: &str, flow_started: i64) -> Pending<bool>;
}

fn family_key(family: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&family.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn put_family_token(tx: &mut Tx<'_>, seq: u64, rec: &TokenRecord) -> Result<(), StoreError> {
    tx.insert(Table::Tokens, &token_key(seq), &encode_token(rec)?)?;
    tx.insert(Table::Families, &family_key(rec.family, seq), &[])
}

fn get_record(tx: &mut Tx<'_>, seq: u64) -> Result<Option<TokenRecord>, StoreError> {
    tx.get(Table::Tokens, &token_key(seq))?.map(|b| decode_token(&b)).transpose()
}

/// Deletes the family's tokens of the given kinds (all live kinds when `None`); spent-code and
/// spent-refresh markers stay, so a later replay is still recognised.
fn delete_family(tx: &mut Tx<'_>, family: u64, only: Option<TokenKind>) -> Result<usize, StoreError> {
    let mut n = 0;
    for k in tx.keys_with_prefix(Table::Families, &family.to_be_bytes())? {
        let seq = k.get(8..16).map(decode_u64_be).unwrap_or(0);
        let Some(rec) = get_record(tx, seq)? else {
            tx.remove(Table::Families, &k)?;
            continue;
        };
        let live = matches!(rec.kind, TokenKind::Access | TokenKind::Refresh | TokenKind::Code);
        if live && only.is_none_or(|kind| kind == rec.kind) {
            tx.remove(Table::Tokens, &token_key(seq))?;
            tx.remove(Table::Families, &k)?;
            raise_floor(tx, seq)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Keeps the partition's sequence floor above a deleted token, so that deleting the newest
/// tokens never lets a restart hand their numbers out again.
fn raise_floor(tx: &mut Tx<'_>, seq: u64) -> Result<(), StoreError> {
    let current = tx.get(Table::SeqFloor, FLOOR_KEY)?.map(|v| decode_u64(&v)).unwrap_or(1);
    if seq + 1 > current {
        tx.insert(Table::SeqFloor, FLOOR_KEY, &(seq + 1).to_le_bytes())?;
    }
    Ok(())
}

/// Marks a record spent in place (same key, new kind) and takes it out of the family index: the
/// marker only has to be found by its own key (to recognise a replay), and the index keeps
/// listing live tokens only, so a long rotation chain does not make every rotation slower.
fn spend(tx: &mut Tx<'_>, seq: u64, rec: &TokenRecord, kind: TokenKind) -> Result<(), StoreError> {
    let spent = TokenRecord { kind, ..rec.clone() };
    tx.insert(Table::Tokens, &token_key(seq), &encode_token(&spent)?)?;
    tx.remove(Table::Families, &family_key(rec.family, seq))?;
    Ok(())
}

/// A [`Table::Flows`] row: the code's sequence number, then when the flow started (both LE).
/// Rows of one day's earlier layout hold the sequence number only.
fn flow_row(seq: u64, started: i64) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&seq.to_le_bytes());
    v[8..].copy_from_slice(&started.to_le_bytes());
    v
}

/// When the flow of a [`Table::Flows`] row started; `None` for rows of the earlier layout, which
/// the janitor leaves alone.
pub fn flow_started(row: &[u8]) -> Option<i64> {
    row.get(8..16).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(i64::from_le_bytes)
}

/// Deletes a token row the way a revocation does: out of its family index, and the sequence
/// floor raised above it. `key` and `value` are the row as stored.
pub(crate) fn forget_token(tx: &mut Tx<'_>, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
    let seq = decode_u64_be(key);
    if let Ok(rec) = decode_token(value) {
        tx.remove(Table::Families, &family_key(rec.family, seq))?;
    }
    tx.remove(Table::Tokens, key)?;
    raise_floor(tx, seq)
}

/// Key–value rows as stored.
pub type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Documents the server keeps per subject (login and consent sessions), in the partition of the
/// subject: keys and values are the server's; only the session tables are reachable.
pub trait DocStore: Send + Sync {
    fn doc_get(&self, partition: u32, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every (key, value) whose key starts with `prefix`.
    fn doc_scan(&self, partition: u32, table: Table, prefix: &[u8]) -> Result<Rows, StoreError>;
    /// Writes every row in one commit.
    fn doc_put(&self, partition: u32, table: Table, rows: Rows) -> Pending<()>;
    /// Deletes every key starting with `prefix`; resolves to the deleted (key, value) pairs.
    fn doc_delete_prefix(&self, partition: u32, table: Table, prefix: Vec<u8>) -> Pending<Rows>;
    /// Deletes exactly these keys; resolves to how many existed.
    fn doc_delete_keys(&self, partition: u32, table: Table, keys: Vec<Vec<u8>>) -> Pending<usize>;
    /// In ONE commit: deletes every row of `from` whose key starts with `prefix` and writes what
    /// `map` makes of each (if anything) into `to`, so the rows and what replaces them are
    /// never both present or both absent. Resolves to the deleted rows.
    fn doc_move_prefix(&self, partition: u32, from: Table, prefix: Vec<u8>, to: Table, map: RowMap) -> Pending<Rows>;
}

/// Turns a deleted row into the row that replaces it (see [`DocStore::doc_move_prefix`]).
pub type RowMap = Box<dyn Fn(&[u8], &[u8]) -> Option<(Vec<u8>, Vec<u8>)> + Send>;

fn doc_table(t: Table) -> Result<Table, StoreError> {
    match t {
        Table::LoginSessions | Table::ConsentSessions | Table::SessionIds | Table::RevocationIntents => Ok(t),
        _ => Err(StoreError::Corrupt("not a document table")),
    }
}

/// One stored JSON Web Key: its set, id, creation order and the sealed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub set: String,
    pub kid: String,
    /// Larger is newer (the caller's clock, in microseconds).
    pub created: u64,
    pub sealed: Vec<u8>,
}

/// A change to one key set; each is one transaction.
#[derive(Debug, Clone)]
pub enum KeyWrite {
    /// Adds keys (replacing any with the same id).
    Add(Vec<KeyRow>),
    /// Adds keys only if the set is empty (two first-use generations race harmlessly).
    AddIfEmpty(Vec<KeyRow>),
    /// Replaces the whole set with these keys.
    Replace(Vec<KeyRow>),
    DeleteSet,
    DeleteKey(String),
}

/// JSON Web Key operations on the meta partition.
pub trait KeyStore: Send + Sync {
    fn load_keys(&self) -> Result<Vec<KeyRow>, StoreError>;
    /// Resolves to whether anything was there before (delete: the set or key existed;
    /// `AddIfEmpty`: the set was empty and the keys were written) and the commit-ordered
    /// version shared with client writes.
    fn write_keys(&self, set: &str, write: KeyWrite) -> Pending<(bool, u64)>;
}

/// Version byte in front of a stored key row.
const KEY_RECORD_VERSION: u8 = 1;

fn key_row_key(set: &str, kid: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(set.len() + kid.len() + 1);
    k.extend_from_slice(set.as_bytes());
    k.push(0);
    k.extend_from_slice(kid.as_bytes());
    k
}

fn put_key_row(tx: &mut Tx<'_>, row: &KeyRow) -> Result<(), StoreError> {
    let mut v = Vec::with_capacity(9 + row.sealed.len());
    v.push(KEY_RECORD_VERSION);
    v.extend_from_slice(&row.created.to_le_bytes());
    v.extend_from_slice(&row.sealed);
    tx.insert(Table::Jwks, &key_row_key(&row.set, &row.kid), &v)
}

fn decode_key_row(k: &[u8], v: &[u8]) -> Result<KeyRow, StoreError> {
    const BAD: StoreError = StoreError::Corrupt("key row");
    let at = k.iter().position(|b| *b == 0).ok_or(BAD)?;
    let set = String::from_utf8(k[..at].to_vec()).map_err(|_| BAD)?;
    let kid = String::from_utf8(k[at + 1..].to_vec()).map_err(|_| BAD)?;
    match v.split_first() {
        Some((&KEY_RECORD_VERSION, rest)) if rest.len() >= 8 => {
            Ok(KeyRow { set, kid, created: decode_u64(&rest[..8]), sealed: rest[8..].to_vec() })
        }
        _ => Err(BAD),
    }
}

/// The embedded store.
#[derive(Debug)]
pub struct Store {
    partitions: Vec<Partition>,
    meta: Partition,
    dir: Option<PathBuf>,
    /// Bumped inside meta write jobs, which the single committer runs in commit order.
    meta_version: Arc<AtomicU64>,
}

impl Store {
    /// Opens (or creates) a data directory.
    pub fn open(dir: &Path, opts: &StoreOptions) -> Result<Store, StoreError> {
        // A new data directory is private to its owner: it holds client secret hashes.
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| StoreError::Manifest(format!("cannot create {}: {e}", dir.display())))?;
        }
        let count = read_or_write_manifest(dir, opts.partitions)?;
        Store::assemble(Medium::Dir(dir.to_path_buf()), count, opts)
    }

    /// Opens (or creates) a store on a simulated disk, for power-loss and I/O-error tests. The
    /// partition count comes from `opts` (there is no manifest).
    pub fn open_sim(disk: &Arc<SimDisk>, opts: &StoreOptions) -> Result<Store, StoreError> {
        Store::assemble(Medium::Sim(disk.clone()), valid_partition_count(opts.partitions)?, opts)
    }

    fn assemble(medium: Medium, count: u32, opts: &StoreOptions) -> Result<Store, StoreError> {
        let part = |file: String, name: String| -> Result<Partition, StoreError> {
            let (db, sync) = open_db(&medium, &file, opts)?;
            let (medium, opts) = (medium.clone(), opts.clone());
            let opener: Opener = Box::new(move || open_db(&medium, &file, &opts));
            Partition::new(name, db, sync, Some(opener))
        };
        let meta = part("meta".into(), "commit-meta".into())?;
        let mut partitions = Vec::with_capacity(count as usize);
        for p in 0..count {
            partitions.push(part(format!("p{p:04}"), format!("commit-p{p}"))?);
        }
        let dir = match &medium {
            Medium::Dir(d) => Some(d.clone()),
            Medium::Sim(_) => None,
        };
        let store = Store { partitions, meta, dir, meta_version: Arc::default() };
        // Sequence numbers must never fall back below a watermark: if the newest tokens of a
        // partition were deleted before a restart, the last stored key alone would hand out
        // numbers that a watermark already revoked.
        for (_, marks) in store.load_watermarks()? {
            for (p, mark) in store.partitions.iter().zip(marks) {
                p.next_seq.fetch_max(mark, Ordering::Relaxed);
            }
        }
        Ok(store)
    }

    /// An in-memory store (`DSN=memory`): the same code path on redb's in-memory backend.
    pub fn memory(opts: &StoreOptions) -> Result<Store, StoreError> {
        let count = valid_partition_count(opts.partitions)?;
        let open = || -> Result<Database, StoreError> {
            Ok(redb::Builder::new().create_with_backend(redb::backends::InMemoryBackend::new())?)
        };
        let meta = Partition::new("commit-meta".into(), open()?, SyncMode::Lazy, None)?;
        let mut partitions = Vec::with_capacity(count as usize);
        for p in 0..count {
            partitions.push(Partition::new(format!("commit-p{p}"), open()?, SyncMode::Lazy, None)?);
        }
        Ok(Store { partitions, meta, dir: None, meta_version: Arc::default() })
    }

    /// The data directory, when on disk.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// A partition's commit counters.
    pub fn partition_stats(&self, partition: u32) -> Option<&crate::commit::CommitStats> {
        self.partitions.get(partition as usize).map(Partition::stats)
    }

    /// Stops every committer after it has flushed what is queued.
    pub fn shutdown(&mut self) {
        for p in &mut self.partitions {
            p.committer.shutdown();
        }
        self.meta.committer.shutdown();
    }

    pub(crate) fn part(&self, partition: u32) -> Result<&Partition, StoreError> {
        self.partitions.get(partition as usize).ok_or(StoreError::Corrupt("partition out of range"))
    }
}

/// Where a store's files are.
#[derive(Debug, Clone)]
enum Medium {
    Dir(PathBuf),
    Sim(Arc<SimDisk>),
}

impl Medium {
    /// Whether the database `file` has a write-ahead log file.
    fn has_log(&self, file: &str) -> bool {
        match self {
            Medium::Dir(dir) => dir.join(format!("{file}.wal")).exists(),
            Medium::Sim(disk) => disk.exists(&format!("{file}.wal")),
        }
    }

    /// Opens (or creates, `size` bytes) the write-ahead log of the database `file`.
    fn open_log(&self, file: &str, size: u64, faults: Option<Arc<Faults>>) -> Result<Wal, StoreError> {
        match self {
            Medium::Dir(dir) => Wal::open(&dir.join(format!("{file}.wal")), size, faults),
            Medium::Sim(disk) => Wal::open_sim(disk, &format!("{file}.wal"), size),
        }
    }
}

/// A database another process holds is [`StoreError::InUse`].
fn in_use(e: redb::DatabaseError) -> StoreError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse,
        e => e.into(),
    }
}

/// Opens one database of the store and its write-ahead log, replaying a log left behind.
fn open_db(medium: &Medium, file: &str, opts: &StoreOptions) -> Result<(Database, SyncMode), StoreError> {
    let mut b = redb::Builder::new();
    b.set_cache_size(opts.cache_bytes);
    let db = match medium {
        Medium::Dir(dir) => {
            let path = dir.join(format!("{file}.redb"));
            let fresh = !path.exists();
            let db = match &opts.faults {
                None => b.create(&path).map_err(in_use)?,
                Some(faults) => {
                    let f = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .open(&path)
                        .map_err(|e| StoreError::Io(format!("opening {}: {e}", path.display())))?;
                    let backend = crate::disk::FaultyFile::new(f, faults.clone()).map_err(in_use)?;
                    b.create_with_backend(backend).map_err(in_use)?
                }
            };
            if fresh {
                // Whatever the umask: the files hold client secret hashes.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| StoreError::Manifest(format!("cannot restrict {}: {e}", path.display())))?;
            }
            db
        }
        Medium::Sim(disk) => b.create_with_backend(disk.backend(&format!("{file}.redb"))).map_err(in_use)?,
    };
    let sync = match opts.durability {
        Durability::Immediate if opts.wal_bytes > 0 => {
            SyncMode::Log(medium.open_log(file, opts.wal_bytes, opts.faults.clone())?)
        }
        Durability::Immediate => SyncMode::Each,
        Durability::None => SyncMode::Lazy,
    };
    // A log left by a run with the log on is replayed all the same.
    if !matches!(sync, SyncMode::Log(_)) && medium.has_log(file) {
        crate::commit::recover(&db, &mut medium.open_log(file, 0, opts.faults.clone())?)?;
    }
    Ok((db, sync))
}

fn valid_partition_count(n: u32) -> Result<u32, StoreError> {
    if n == 0 || !n.is_power_of_two() || n > 4096 {
        return Err(StoreError::Manifest(format!(
            "partition count must be a power of two between 1 and 4096, got {n}"
        )));
    }
    Ok(n)
}

/// Reads the manifest, or writes a new one atomically (temp file, fsync, rename, fsync dir).
fn read_or_write_manifest(dir: &Path, requested: u32) -> Result<u32, StoreError> {
    let path = dir.join(MANIFEST);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_manifest(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let count = valid_partition_count(requested)?;
            let body = format!("{{\"format\":{FORMAT_VERSION},\"partitions\":{count}}}\n");
            let tmp = dir.join("MANIFEST.tmp");
            let io = |e: std::io::Error| StoreError::Manifest(format!("writing manifest: {e}"));
            {
                use std::io::Write;
                let mut f = std::fs::File::create(&tmp).map_err(io)?;
                f.write_all(body.as_bytes()).map_err(io)?;
                f.sync_all().map_err(io)?;
            }
            std::fs::rename(&tmp, &path).map_err(io)?;
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
            Ok(count)
        }
        Err(e) => Err(StoreError::Manifest(format!("reading manifest: {e}"))),
    }
}

/// The format and partition count recorded in a data directory's manifest, without opening
/// the store (`hydra migrate status`). `None` when the directory has no manifest yet.
pub fn manifest_info(dir: &Path) -> Result<Option<(u32, u32)>, StoreError> {
    match std::fs::read_to_string(dir.join(MANIFEST)) {
        Ok(text) => {
            let field = |name: &str| manifest_field(&text, name);
            match (field("format"), field("partitions")) {
                (Some(f), Some(p)) => Ok(Some((f, p))),
                _ => Err(StoreError::Manifest("the manifest is unreadable".into())),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::Manifest(format!("reading manifest: {e}"))),
    }
}

fn manifest_field(text: &str, name: &str) -> Option<u32> {
    let at = text.find(&format!("\"{name}\""))?;
    let rest = text[at + name.len() + 2..].trim_start().strip_prefix(':')?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Parses `{"format":N,"partitions":P}` without a JSON dependency (the file is ours).
fn parse_manifest(text: &str) -> Result<u32, StoreError> {
    let field = |name: &str| manifest_field(text, name);
    let format = field("format").ok_or_else(|| StoreError::Manifest("manifest has no format".into()))?;
    if format != FORMAT_VERSION {
        return Err(StoreError::Manifest(format!(
            "data directory format {format} is not supported by this binary (expects {FORMAT_VERSION})"
        )));
    }
    let count = field("partitions").ok_or_else(|| StoreError::Manifest("manifest has no partitions".into()))?;
    valid_partition_count(count)
}

/// Raises a client's stored watermarks to at least `marks` (element-wise maximum, so concurrent
/// raises commute and a mark never goes down). With `create` false, only an existing row is
/// raised.
fn raise_marks(tx: &mut Tx<'_>, id: &str, marks: &[u64], create: bool) -> Result<(), StoreError> {
    let current = tx.get(Table::Watermarks, id.as_bytes())?.map(|v| decode_marks(&v));
    let merged: Vec<u64> = match current {
        None if !create => return Ok(()),
        None => marks.to_vec(),
        Some(cur) => (0..cur.len().max(marks.len()))
            .map(|i| cur.get(i).copied().unwrap_or(0).max(marks.get(i).copied().unwrap_or(0)))
            .collect(),
    };
    tx.insert(Table::Watermarks, id.as_bytes(), &encode_marks(&merged))
}

fn encode_marks(marks: &[u64]) -> Vec<u8> {
    marks.iter().flat_map(|m| m.to_le_bytes()).collect()
}

fn decode_marks(bytes: &[u8]) -> Vec<u64> {
    bytes.chunks_exact(8).map(decode_u64).collect()
}

/// A little-endian u64 (0 when the slice is not 8 bytes).
fn decode_u64(b: &[u8]) -> u64 {
    b.try_into().map(u64::from_le_bytes).unwrap_or(0)
}

fn decode_u64_be(b: &[u8]) -> u64 {
    b.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

impl TokenStore for Store {
    fn partition_count(&self) -> u32 {
        self.partitions.len() as u32
    }

    fn next_seq(&self, partition: u32) -> u64 {
        match self.partitions.get(partition as usize) {
            Some(p) => p.next_seq.fetch_add(1, Ordering::Relaxed),
            None => 0,
        }
    }

    fn seq_marks(&self) -> Vec<u64> {
        self.partitions.iter().map(|p| p.next_seq.load(Ordering::Relaxed)).collect()
    }

    fn insert_tokens(&self, partition: u32, records: Vec<(u64, TokenRecord)>) -> Pending<()> {
        let part = match self.part(partition) {
            Ok(p) => p,
            Err(_) => return Pending::ready(Err(StoreError::Corrupt("partition out of range"))),
        };
        part.committer.submit(move |tx| {
            for (seq, rec) in &records {
                tx.insert(Table::Tokens, &token_key(*seq), &encode_token(rec)?)?;
            }
            Ok(())
        })
    }

    fn get_token(&self, partition: u32, seq: u64) -> Result<Option<TokenRecord>, StoreError> {
        self.get_token_view(partition, seq)?.map(|v| v.to_record()).transpose()
    }

    fn get_token_view(&self, partition: u32, seq: u64) -> Result<Option<TokenView>, StoreError> {
        let part = self.part(partition)?;
        let rtx = part.read()?;
        let table = rtx.open_table(Table::Tokens.def())?;
        let found = table.get(&token_key(seq)[..])?;
        match found {
            Some(v) => Ok(Some(TokenView::new(v.value())?)),
            None => Ok(None),
        }
    }

    fn delete_token(&self, partition: u32, seq: u64) -> Pending<bool> {
        let part = match self.part(partition) {
            Ok(p) => p,
            Err(_) => return Pending::ready(Ok(false)),
        };
        part.committer.submit(move |tx| {
            let existed = tx.remove(Table::Tokens, &token_key(seq))?;
            if existed {
                raise_floor(tx, seq)?;
            }
            Ok(existed)
        })
    }
}

impl ClientStore for Store {
    fn load_clients(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let rtx = self.meta.read()?;
        let table = rtx.open_table(Table::Clients.def())?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            let id = String::from_utf8(k.value().to_vec()).map_err(|_| StoreError::Corrupt("client id"))?;
            match v.value().split_first() {
                Some((&CLIENT_RECORD_VERSION, body)) => out.push((id, body.to_vec())),
                _ => return Err(StoreError::Corrupt("unknown client record version")),
            }
        }
        Ok(out)
    }

    fn put_client(&self, id: &str, body: Vec<u8>, mode: PutMode) -> Pending<(PutOutcome, u64)> {
        let id = id.to_string();
        let version = self.meta_version.clone();
        self.meta.committer.submit(move |tx| {
            let v = version.fetch_add(1, Ordering::Relaxed) + 1;
            let current = tx.get(Table::Clients, id.as_bytes())?;
            match (&mode, current) {
                (PutMode::Create { .. }, Some(_)) => return Ok((PutOutcome::Exists, v)),
                (PutMode::Replace { .. }, None) => return Ok((PutOutcome::Missing, v)),
                (PutMode::Replace { expected }, Some(cur)) if cur.get(1..) != Some(expected.as_slice()) => {
                    return Ok((PutOutcome::Conflict, v))
                }
                (PutMode::Create { marks }, None) => raise_marks(tx, &id, marks, false)?,
                _ => {}
            }
            let mut value = Vec::with_capacity(body.len() + 1);
            value.push(CLIENT_RECORD_VERSION);
            value.extend_from_slice(&body);
            tx.insert(Table::Clients, id.as_bytes(), &value)?;
            Ok((PutOutcome::Written, v))
        })
    }

    fn delete_client(&self, id: &str, marks: Vec<u64>) -> Pending<(bool, u64)> {
        let id = id.to_string();
        let version = self.meta_version.clone();
        self.meta.committer.submit(move |tx| {
            let v = version.fetch_add(1, Ordering::Relaxed) + 1;
            let existed = tx.remove(Table::Clients, id.as_bytes())?;
            if existed {
                raise_marks(tx, &id, &marks, true)?;
            }
            Ok((existed, v))
        })
    }

    fn set_watermarks(&self, client_id: &str, marks: Vec<u64>) -> Pending<()> {
        let id = client_id.to_string();
        self.meta.committer.submit(move |tx| raise_marks(tx, &id, &marks, true))
    }

    fn load_watermarks(&self) -> Result<Vec<(String, Vec<u64>)>, StoreError> {
        let rtx = self.meta.read()?;
        let table = rtx.open_table(Table::Watermarks.def())?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            let id = String::from_utf8(k.value().to_vec()).map_err(|_| StoreError::Corrupt("client id"))?;
            out.push((id, decode_marks(v.value())));
        }
        Ok(out)
    }

    fn ping(&self) -> Result<(), StoreError> {
        // Not ready while any partition refuses writes after an I/O error.
        if self.partitions.iter().chain([&self.meta]).any(|p| p.stats().failed.load(Ordering::Relaxed)) {
            return Err(StoreError::Unavailable);
        }
        let rtx = self.meta.read()?;
        rtx.open_table(Table::Clients.def())?;
        Ok(())
    }
}

impl KeyStore for Store {
    fn load_keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        let rtx = self.meta.read()?;
        let table = rtx.open_table(Table::Jwks.def())?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.push(decode_key_row(k.value(), v.value())?);
        }
        Ok(out)
    }

    fn write_keys(&self, set: &str, write: KeyWrite) -> Pending<(bool, u64)> {
        let set = set.to_string();
        let version = self.meta_version.clone();
        self.meta.committer.submit(move |tx| {
            let v = version.fetch_add(1, Ordering::Relaxed) + 1;
            let prefix = key_row_key(&set, "");
            let existing = tx.keys_with_prefix(Table::Jwks, &prefix)?;
            let had = !existing.is_empty();
            let (rows, clear) = match &write {
                KeyWrite::Add(rows) => (rows.as_slice(), false),
                KeyWrite::AddIfEmpty(rows) if !had => (rows.as_slice(), false),
                KeyWrite::AddIfEmpty(_) => return Ok((false, v)),
                KeyWrite::Replace(rows) => (rows.as_slice(), true),
                KeyWrite::DeleteSet => (&[][..], true),
                KeyWrite::DeleteKey(kid) => return Ok((tx.remove(Table::Jwks, &key_row_key(&set, kid))?, v)),
            };
            if clear {
                for k in &existing {
                    tx.remove(Table::Jwks, k)?;
                }
            }
            for row in rows {
                if row.set != set {
                    return Err(StoreError::Corrupt("key row of another set"));
                }
                put_key_row(tx, row)?;
            }
            Ok((matches!(write, KeyWrite::AddIfEmpty(_)) || had, v))
        })
    }
}

/// What spending a code or refresh token found (shared by `redeem_code` and `rotate_refresh`).
enum Spent {
    Done(Box<TokenRecord>),
    /// Spent before: the grant was revoked.
    Again,
    Missing,
}

impl Store {
    /// Spends the record `seq` of kind `live` (a code or a refresh token) and stores `tokens` in
    /// the same commit; a refresh also revokes the grant's earlier access tokens. Presenting an
    /// already spent record revokes the whole grant.
    fn exchange<T: Send + 'static>(
        &self,
        partition: u32,
        seq: u64,
        signature: [u8; 32],
        tokens: Vec<(u64, TokenRecord)>,
        live: TokenKind,
        answer: fn(Spent) -> T,
    ) -> Pending<T> {
        let Ok(part) = self.part(partition) else {
            return Pending::ready(Ok(answer(Spent::Missing)));
        };
        let spent = if live == TokenKind::Code { TokenKind::CodeUsed } else { TokenKind::RefreshUsed };
        part.committer.submit(move |tx| {
            let Some(rec) = get_record(tx, seq)?.filter(|r| r.signature == signature) else {
                return Ok(answer(Spent::Missing));
            };
            if rec.kind == live {
                spend(tx, seq, &rec, spent)?;
                if live == TokenKind::Refresh {
                    delete_family(tx, rec.family, Some(TokenKind::Access))?;
                }
                for (s, t) in &tokens {
                    put_family_token(tx, *s, t)?;
                }
                Ok(answer(Spent::Done(Box::new(rec))))
            } else if rec.kind == spent {
                delete_family(tx, rec.family, None)?;
                Ok(answer(Spent::Again))
            } else {
                Ok(answer(Spent::Missing))
            }
        })
    }
}

impl GrantStore for Store {
    fn issue_code(
        &self,
        partition: u32,
        flow_id: &str,
        flow_started: i64,
        seq: u64,
        code: TokenRecord,
    ) -> Pending<bool> {
        let Ok(part) = self.part(partition) else {
            return Pending::ready(Err(StoreError::Corrupt("partition out of range")));
        };
        let flow = flow_id.as_bytes().to_vec();
        part.committer.submit(move |tx| {
            if tx.get(Table::Flows, &flow)?.is_some() {
                return Ok(false);
            }
            tx.insert(Table::Flows, &flow, &flow_row(seq, flow_started))?;
            put_family_token(tx, seq, &code)?;
            Ok(true)
        })
    }

    fn redeem_code(
        &self,
        partition: u32,
        seq: u64,
        signature: [u8; 32],
        tokens: Vec<(u64, TokenRecord)>,
    ) -> Pending<Redeem> {
        self.exchange(partition, seq, signature, tokens, TokenKind::Code, |s| match s {
            Spent::Done(rec) => Redeem::Done(rec),
            Spent::Again => Redeem::Replayed,
            Spent::Missing => Redeem::Missing,
        })
    }

    fn rotate_refresh(
        &self,
        partition: u32,
        seq: u64,
        signature: [u8; 32],
        tokens: Vec<(u64, TokenRecord)>,
    ) -> Pending<Rotate> {
        self.exchange(partition, seq, signature, tokens, TokenKind::Refresh, |s| match s {
            Spent::Done(rec) => Rotate::Done(rec),
            Spent::Again => Rotate::Reused,
            Spent::Missing => Rotate::Missing,
        })
    }

    fn revoke_family(&self, partition: u32, family: u64) -> Pending<usize> {
        let Ok(part) = self.part(partition) else { return Pending::ready(Ok(0)) };
        part.committer.submit(move |tx| delete_family(tx, family, None))
    }

    fn mark_flow(&self, partition: u32, key: &str, flow_started: i64) -> Pending<bool> {
        let Ok(part) = self.part(partition) else {
            return Pending::ready(Err(StoreError::Corrupt("partition out of range")));
        };
        let key = key.as_bytes().to_vec();
        part.committer.submit(move |tx| {
            if tx.get(Table::Flows, &key)?.is_some() {
                return Ok(false);
            }
            tx.insert(Table::Flows, &key, &flow_row(0, flow_started))?;
            Ok(true)
        })
    }

    fn flow_used(&self, partition: u32, flow_id: &str) -> Result<bool, StoreError> {
        let rtx = self.part(partition)?.read()?;
        let used = rtx.open_table(Table::Flows.def())?.get(flow_id.as_bytes())?.is_some();
        Ok(used)
    }
}

impl DocStore for Store {
    fn doc_get(&self, partition: u32, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let rtx = self.part(partition)?.read()?;
        let t = rtx.open_table(doc_table(table)?.def())?;
        let v = t.get(key)?.map(|v| v.value().to_vec());
        Ok(v)
    }

    fn doc_scan(&self, partition: u32, table: Table, prefix: &[u8]) -> Result<Rows, StoreError> {
        let rtx = self.part(partition)?.read()?;
        let t = rtx.open_table(doc_table(table)?.def())?;
        let mut out = Vec::new();
        for row in t.range(prefix..)? {
            let (k, v) = row?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn doc_put(&self, partition: u32, table: Table, rows: Rows) -> Pending<()> {
        let (Ok(part), Ok(table)) = (self.part(partition), doc_table(table)) else {
            return Pending::ready(Err(StoreError::Corrupt("bad document location")));
        };
        part.committer.submit(move |tx| rows.iter().try_for_each(|(k, v)| tx.insert(table, k, v)))
    }

    fn doc_delete_keys(&self, partition: u32, table: Table, keys: Vec<Vec<u8>>) -> Pending<usize> {
        let (Ok(part), Ok(table)) = (self.part(partition), doc_table(table)) else {
            return Pending::ready(Err(StoreError::Corrupt("bad document location")));
        };
        part.committer.submit(move |tx| {
            let mut n = 0;
            for k in &keys {
                if tx.remove(table, k)? {
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    fn doc_move_prefix(&self, partition: u32, from: Table, prefix: Vec<u8>, to: Table, map: RowMap) -> Pending<Rows> {
        let (Ok(part), Ok(from), Ok(to)) = (self.part(partition), doc_table(from), doc_table(to)) else {
            return Pending::ready(Err(StoreError::Corrupt("bad document location")));
        };
        part.committer.submit(move |tx| {
            let mut out = Vec::new();
            for k in tx.keys_with_prefix(from, &prefix)? {
                if let Some(v) = tx.get(from, &k)? {
                    tx.remove(from, &k)?;
                    if let Some((nk, nv)) = map(&k, &v) {
                        tx.insert(to, &nk, &nv)?;
                    }
                    out.push((k, v));
                }
            }
            Ok(out)
        })
    }

    fn doc_delete_prefix(&self, partition: u32, table: Table, prefix: Vec<u8>) -> Pending<Rows> {
        let (Ok(part), Ok(table)) = (self.part(partition), doc_table(table)) else {
            return Pending::ready(Err(StoreError::Corrupt("bad document location")));
        };
        part.committer.submit(move |tx| {
            let mut out = Vec::new();
            for k in tx.keys_with_prefix(table, &prefix)? {
                if let Some(v) = tx.get(table, &k)? {
                    tx.remove(table, &k)?;
                    out.push((k, v));
                }
            }
            Ok(out)
        })
    }
}

impl Store {
    /// Whether a one-time upgrade step named `name` was done on this data directory.
    pub fn flag(&self, name: &str) -> Result<bool, StoreError> {
        let rtx = self.meta.read()?;
        let t = rtx.open_table(Table::State.def())?;
        let found = t.get(flag_key(name).as_slice())?.is_some();
        Ok(found)
    }

    /// Records durably that the step `name` was done.
    pub fn set_flag(&self, name: &str) -> Pending<()> {
        let key = flag_key(name);
        self.meta.committer.submit(move |tx| tx.insert(Table::State, &key, &[1]))
    }
}

fn flag_key(name: &str) -> Vec<u8> {
    [b"flag:".as_slice(), name.as_bytes()].concat()
}

/// Compacts every database file of a data directory that no process has open (the janitor
/// command, after its walk), so that space freed by deletions goes back to the file system.
/// Returns the total size of the database files before and after.
pub fn compact_dir(dir: &Path) -> Result<(u64, u64), StoreError> {
    let io = |e: std::io::Error| StoreError::Io(format!("reading {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "redb"))
        .collect();
    files.sort();
    let total =
        |files: &[PathBuf]| -> u64 { files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum() };
    let before = total(&files);
    for f in &files {
        let mut db = Database::open(f).map_err(in_use)?;
        db.compact().map_err(|e| StoreError::Database(e.to_string()))?;
    }
    Ok((before, total(&files)))
}
