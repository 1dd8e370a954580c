//! The store: P token partitions plus one meta partition, each a redb database with its own
//! committer thread.
//!
//! Invariants: the partition count is fixed when the data directory is created and recorded in
//! its manifest; token keys are per-partition sequence numbers handed out in increasing order
//! (append-friendly B-tree inserts); the meta partition holds clients and per-client token
//! watermarks; reads open a read transaction from any thread and never wait for a commit.

use crate::commit::{Committer, DbSlot, Durability, Opener, SyncMode};
use crate::disk::{Faults, SimDisk};
use crate::feed::Feed;
use crate::tx::{decode_u64, decode_u64_be, Table, Tx, FLOOR_KEY};
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
    pub(crate) next_seq: AtomicU64,
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
        upgrade_family_index(&db)?;
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

/// Folds a family index of the earlier layout (one row per token) into one row per grant, once
/// per database. Its commits are durable and bypass the committer: it runs after the log was
/// replayed and a new epoch started, before any job, so no log record older than these commits
/// can be replayed over them, and jobs' counters start from zero.
fn upgrade_family_index(db: &Database) -> Result<(), StoreError> {
    if db.begin_read()?.open_table(Table::State.def())?.get(crate::rows::FAMILY_ROWS_FLAG)?.is_some() {
        return Ok(());
    }
    let mut after: Option<Vec<u8>> = None;
    loop {
        let w = db.begin_write()?;
        let next = crate::rows::upgrade_families(&mut Tx::new(&w, false), after.as_deref(), 4096)?;
        w.commit()?;
        match next {
            Some(k) => after = Some(k),
            None => return Ok(()),
        }
    }
}

/// The embedded store.
#[derive(Debug)]
pub struct Store {
    pub(crate) partitions: Vec<Partition>,
    pub(crate) meta: Partition,
    dir: Option<PathBuf>,
    /// Versions of meta writes (taken inside jobs, which the single committer runs in commit
    /// order) and the change feed.
    pub(crate) feed: Arc<Feed>,
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
        let store = Store { partitions, meta, dir, feed: Arc::default() };
        // Sequence numbers must never fall back below a watermark: if the newest tokens of a
        // partition were deleted before a restart, the last stored key alone would hand out
        // numbers that a watermark already revoked.
        for (_, marks) in store.watermarks()? {
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
        Ok(Store { partitions, meta, dir: None, feed: Arc::default() })
    }

    /// The data directory, when on disk.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// A partition's commit counters.
    pub fn partition_stats(&self, partition: u32) -> Option<&crate::commit::CommitStats> {
        self.partitions.get(partition as usize).map(Partition::stats)
    }

    /// How many of a partition's token rows (removals included) are acknowledged but not yet
    /// committed to its B-tree (see `commit.rs`, staged rows and deferred batches).
    pub fn staged_rows(&self, partition: u32) -> Option<usize> {
        self.partitions.get(partition as usize).map(|p| p.committer.staged().len())
    }

    /// Copies the data directory into `dest`, which must not exist yet (it is created, mode
    /// 0700; removed again when the backup fails), while the store keeps serving. Files that are
    /// not databases (the manifest, a generated system secret) go first; then each database with
    /// its write-ahead log is copied by a job on that database's committer thread, so no write to
    /// it runs during its copy: every write acknowledged before the backup began is in its log or
    /// its file, and each database's copy opens like that database after a power cut at the
    /// moment of its copy (the log is replayed). The databases are copied one after the other
    /// (clients and keys first), so the copy as a whole is not one instant: a write that spans
    /// databases may be in one copy and not the other, as the store already allows across a
    /// crash (a session's id row is written before its row; tokens of a client missing from the
    /// copy are never served). Writes to a database wait while it is copied; the others go on; a
    /// failed copy fails the backup only.
    pub async fn backup(&self, dest: &Path) -> Result<BackupReport, StoreError> {
        let Some(dir) = self.dir.clone() else {
            return Err(StoreError::Io("an in-memory store has no files to back up".into()));
        };
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dest)
                .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", dest.display())))?;
        }
        let mut report = BackupReport::default();
        let io = |what: &Path, e: std::io::Error| StoreError::Io(format!("{}: {e}", what.display()));
        for entry in std::fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
            let entry = entry.map_err(|e| io(&dir, e))?;
            let path = entry.path();
            let is_db = path.extension().is_some_and(|x| x == "redb" || x == "wal");
            let name = entry.file_name();
            if is_db || !entry.file_type().is_ok_and(|t| t.is_file()) || name.to_string_lossy().ends_with(".tmp") {
                continue;
            }
            match copy_synced(&path, &dest.join(&name)) {
                Ok(n) => report.bytes += n,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(dest);
                    return Err(e);
                }
            }
            report.files += 1;
        }
        let names = std::iter::once("meta".to_string()).chain((0..self.partitions.len()).map(|p| format!("p{p:04}")));
        for (name, part) in names.zip(std::iter::once(&self.meta).chain(self.partitions.iter())) {
            let (src, dst) = (dir.clone(), dest.to_path_buf());
            // The copy's own failure is the job's answer, never the batch's: the other writes of
            // the batch and the partition go on whatever happens to the backup disk.
            let copied = part
                .committer
                .submit(move |_tx| {
                    let copy = || -> Result<(usize, u64), StoreError> {
                        let mut copied = (0usize, 0u64);
                        for ext in ["redb", "wal"] {
                            let from = src.join(format!("{name}.{ext}"));
                            if from.exists() {
                                copied.1 += copy_synced(&from, &dst.join(format!("{name}.{ext}")))?;
                                copied.0 += 1;
                            }
                        }
                        Ok(copied)
                    };
                    Ok(copy())
                })
                .await;
            let (files, bytes) = match copied.and_then(|c| c) {
                Ok(c) => c,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(dest);
                    return Err(e);
                }
            };
            report.files += files;
            report.bytes += bytes;
        }
        std::fs::File::open(dest).and_then(|d| d.sync_all()).map_err(|e| io(dest, e))?;
        Ok(report)
    }

    /// Stops every committer after it has flushed what is queued.
    pub fn shutdown(&mut self) {
        for p in &mut self.partitions {
            p.committer.shutdown();
        }
        self.meta.committer.shutdown();
    }

    /// Every client's token watermarks.
    pub(crate) fn watermarks(&self) -> Result<Vec<(String, Vec<u64>)>, StoreError> {
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

    pub(crate) fn part(&self, partition: u32) -> Result<&Partition, StoreError> {
        self.partitions.get(partition as usize).ok_or(StoreError::Corrupt("partition out of range"))
    }
}

/// What [`Store::backup`] copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupReport {
    pub files: usize,
    pub bytes: u64,
}

/// Copies one file (keeping its mode) and syncs the copy.
fn copy_synced(from: &Path, to: &Path) -> Result<u64, StoreError> {
    let io = |e: std::io::Error| StoreError::Io(format!("copying {} to {}: {e}", from.display(), to.display()));
    let n = std::fs::copy(from, to).map_err(io)?;
    std::fs::File::open(to).and_then(|f| f.sync_all()).map_err(io)?;
    Ok(n)
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
pub(crate) fn raise_marks(tx: &mut Tx<'_>, id: &str, marks: &[u64], create: bool) -> Result<(), StoreError> {
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

pub(crate) fn decode_marks(bytes: &[u8]) -> Vec<u64> {
    bytes.chunks_exact(8).map(decode_u64).collect()
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
