//! The write side of a commit: every table is bytes → bytes, and every change a job makes goes
//! through [`Tx`], which applies it to the redb transaction and appends it to the batch's redo
//! log (what the write-ahead log stores).
//!
//! Invariants: a logged change is absolute (put this value, remove this key), never relative, so
//! replaying a log over any state between the last checkpoint and the crash yields the same
//! result; each table is opened once per transaction and closed before the commit.

use crate::StoreError;
use redb::{ReadableTable, TableDefinition, WriteTransaction};

/// The tables of a partition database. The discriminant is the table's id in the redo log and
/// must never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Table {
    /// Tokens by per-partition sequence number (big-endian u64, so keys sort numerically).
    Tokens = 1,
    /// One row (key `[0]`): a sequence number above every deleted token of the partition.
    SeqFloor = 2,
    /// Clients by id: version byte + the client's JSON storage form.
    Clients = 3,
    /// Per-client token watermarks: little-endian u64 per partition.
    Watermarks = 4,
    /// Bookkeeping of the store itself (the write-ahead log's epoch).
    State = 5,
    /// JSON Web Keys by set name + 0x00 + key id: version byte, creation order (u64 LE), and the
    /// key sealed by the server (the store never sees key material in the clear).
    Jwks = 6,
    /// Completed login/consent flows by flow id: the sequence number of the code they produced.
    /// Makes a consent verifier single-use.
    Flows = 7,
    /// Grant families: family (u64 BE) → the sequence numbers of the grant's live tokens (u64 LE
    /// each). Every token of a grant (code, access and refresh tokens of every rotation) lives in
    /// one partition and is listed in its row while live, so revoking the grant reads one row.
    /// Directories written before one row per grant held family ‖ sequence (both BE) → nothing;
    /// opening one folds those rows in once (`rows::upgrade_families`).
    Families = 8,
    /// Remembered login sessions: subject ‖ 0 ‖ session id → JSON (the server's).
    LoginSessions = 9,
    /// Consent sessions: subject ‖ 0 ‖ client id ‖ 0 ‖ flow id → JSON (the server's).
    ConsentSessions = 10,
    /// Login sessions by session id, in the partition of the id: sid → JSON naming the subject
    /// (the server's, with `expires_at` for the janitor). Finds a session without its subject.
    SessionIds = 11,
    /// Revocations in progress, in the partition of the subject whose consents were revoked:
    /// subject ‖ 0 ‖ flow id → the grant to revoke (partition u32 LE ‖ family u64 LE). Written in
    /// the commit that deletes the consents, removed once the grant's tokens are deleted, and
    /// finished at start-up when a crash came in between.
    RevocationIntents = 12,
}

const TABLES: [Table; 12] = [
    Table::Tokens,
    Table::SeqFloor,
    Table::Clients,
    Table::Watermarks,
    Table::State,
    Table::Jwks,
    Table::Flows,
    Table::Families,
    Table::LoginSessions,
    Table::ConsentSessions,
    Table::SessionIds,
    Table::RevocationIntents,
];

impl Table {
    pub(crate) fn def(self) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
        TableDefinition::new(match self {
            Table::Tokens => "tokens",
            Table::SeqFloor => "seq_floor",
            Table::Clients => "clients",
            Table::Watermarks => "token_watermarks",
            Table::State => "state",
            Table::Jwks => "jwks",
            Table::Flows => "flows",
            Table::Families => "families",
            Table::LoginSessions => "login_sessions",
            Table::ConsentSessions => "consent_sessions",
            Table::SessionIds => "session_ids",
            Table::RevocationIntents => "revocation_intents",
        })
    }

    fn from_id(id: u8) -> Option<Table> {
        TABLES.into_iter().find(|t| *t as u8 == id)
    }

    /// Every table, so a new database can create them all up front.
    pub(crate) fn all() -> [Table; 12] {
        TABLES
    }
}

/// The single row of [`Table::SeqFloor`].
pub(crate) const FLOOR_KEY: &[u8] = &[0];

/// A little-endian u64 (0 when the slice is not 8 bytes).
pub(crate) fn decode_u64(b: &[u8]) -> u64 {
    b.try_into().map(u64::from_le_bytes).unwrap_or(0)
}

/// A big-endian u64 (0 when the slice is not 8 bytes).
pub(crate) fn decode_u64_be(b: &[u8]) -> u64 {
    b.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

/// A [`Table::Tokens`] key: the big-endian sequence number, so keys sort numerically.
pub(crate) fn token_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

const OP_PUT: u8 = 1;
const OP_REMOVE: u8 = 2;

type OpenTable<'t> = redb::Table<'t, &'static [u8], &'static [u8]>;

/// A batch's view of its write transaction.
pub struct Tx<'t> {
    wtx: &'t WriteTransaction,
    open: [Option<OpenTable<'t>>; TABLES.len()],
    /// The redo log of everything changed so far, or `None` when nothing is logged (checkpoint
    /// commits, replay, in-memory stores).
    log: Option<Vec<u8>>,
    /// The tables changed so far, one bit per table id.
    changed: u16,
}

impl<'t> Tx<'t> {
    pub(crate) fn new(wtx: &'t WriteTransaction, logged: bool) -> Self {
        Tx { wtx, open: Default::default(), log: logged.then(Vec::new), changed: 0 }
    }

    /// Whether every table changed so far is one of `tables`.
    pub(crate) fn changed_only(&self, tables: &[Table]) -> bool {
        let allowed = tables.iter().fold(0u16, |m, t| m | 1 << (*t as u8));
        self.changed & !allowed == 0
    }

    fn table(&mut self, t: Table) -> Result<&mut OpenTable<'t>, StoreError> {
        let slot = &mut self.open[t as usize - 1];
        if slot.is_none() {
            *slot = Some(self.wtx.open_table(t.def())?);
        }
        slot.as_mut().ok_or(StoreError::Corrupt("table slot"))
    }

    pub fn get(&mut self, t: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.table(t)?.get(key)?.map(|v| v.value().to_vec()))
    }

    pub fn insert(&mut self, t: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.table(t)?.insert(key, value)?;
        self.changed |= 1 << (t as u8);
        if let Some(log) = &mut self.log {
            log_put(log, t, key, value);
        }
        Ok(())
    }

    /// Inserts a row whose change is already in a durable log record (a staged row).
    pub(crate) fn insert_unlogged(&mut self, t: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.table(t)?.insert(key, value)?;
        self.changed |= 1 << (t as u8);
        Ok(())
    }

    /// Every key of a table that starts with `prefix`, in order.
    pub fn keys_with_prefix(&mut self, t: Table, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        for row in self.table(t)?.range(prefix..)? {
            let (k, _) = row?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push(k.value().to_vec());
        }
        Ok(out)
    }

    /// Up to `limit` keys of a table after `after` (from the first when `None`), in order.
    pub(crate) fn keys_after(
        &mut self,
        t: Table,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        use std::ops::Bound;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut out = Vec::new();
        for row in self.table(t)?.range::<&[u8]>((from, Bound::Unbounded))?.take(limit) {
            out.push(row?.0.value().to_vec());
        }
        Ok(out)
    }

    /// Removes a key; returns whether it was there.
    pub fn remove(&mut self, t: Table, key: &[u8]) -> Result<bool, StoreError> {
        let existed = self.table(t)?.remove(key)?.is_some();
        self.log_remove(t, key, existed);
        Ok(existed)
    }

    /// Removes a key and returns the value it had (one B-tree descent instead of a read and
    /// then a removal; only callers that need the value pay for its copy).
    pub fn take(&mut self, t: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let old = self.table(t)?.remove(key)?.map(|v| v.value().to_vec());
        self.log_remove(t, key, old.is_some());
        Ok(old)
    }

    /// Logs the removal of a key that was there.
    fn log_remove(&mut self, t: Table, key: &[u8], existed: bool) {
        if existed {
            self.changed |= 1 << (t as u8);
        }
        if let (true, Some(log)) = (existed, &mut self.log) {
            log.push(t as u8);
            log.push(OP_REMOVE);
            put_bytes(log, key);
        }
    }

    /// The length of the redo log so far (0 when not logging).
    pub(crate) fn log_len(&self) -> usize {
        self.log.as_ref().map_or(0, Vec::len)
    }

    /// Closes every table (so the transaction can commit) and hands back the redo log.
    pub(crate) fn finish(self) -> Vec<u8> {
        self.log.unwrap_or_default()
    }

    /// Applies a redo log written by [`Tx::insert`] and [`Tx::remove`].
    pub(crate) fn replay(&mut self, log: &[u8]) -> Result<(), StoreError> {
        for_each_change(log, |t, key, value| {
            match value {
                Some(value) => self.insert_unlogged(t, key, value)?,
                None => {
                    if self.table(t)?.remove(key)?.is_some() {
                        self.changed |= 1 << (t as u8);
                    }
                }
            }
            Ok(())
        })
    }
}

/// Calls `f` with every change of a redo log in order: the table, the key, and the value put
/// (`None` for a removal). Fails on a malformed log, after the changes before the fault.
pub(crate) fn for_each_change(
    mut log: &[u8],
    mut f: impl FnMut(Table, &[u8], Option<&[u8]>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    const BAD: StoreError = StoreError::Corrupt("malformed write-ahead log entry");
    while let [id, op, rest @ ..] = log {
        let t = Table::from_id(*id).ok_or(BAD)?;
        let (key, rest) = take_bytes(rest).ok_or(BAD)?;
        match *op {
            OP_PUT => {
                let (value, rest) = take_bytes(rest).ok_or(BAD)?;
                f(t, key, Some(value))?;
                log = rest;
            }
            OP_REMOVE => {
                f(t, key, None)?;
                log = rest;
            }
            _ => return Err(BAD),
        }
    }
    if log.is_empty() {
        Ok(())
    } else {
        Err(BAD)
    }
}

/// Appends "put `value` at `key` in `t`" to a redo log, as [`Tx::insert`] logs it.
pub(crate) fn log_put(log: &mut Vec<u8>, t: Table, key: &[u8], value: &[u8]) {
    log.push(t as u8);
    log.push(OP_PUT);
    put_bytes(log, key);
    put_bytes(log, value);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn take_bytes(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = b.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// An in-memory database with every table created, for unit tests.
#[cfg(test)]
pub(crate) fn memory_db() -> redb::Database {
    let db = redb::Database::builder().create_with_backend(redb::backends::InMemoryBackend::new()).unwrap();
    let w = db.begin_write().unwrap();
    for t in Table::all() {
        w.open_table(t.def()).unwrap();
    }
    w.commit().unwrap();
    db
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{Database, ReadableDatabase};

    fn db() -> Database {
        memory_db()
    }

    fn dump(db: &Database, t: Table) -> Vec<(Vec<u8>, Vec<u8>)> {
        let r = db.begin_read().unwrap();
        let table = r.open_table(t.def()).unwrap();
        table.iter().unwrap().map(|e| e.map(|(k, v)| (k.value().to_vec(), v.value().to_vec())).unwrap()).collect()
    }

    #[test]
    fn replaying_the_log_reproduces_the_changes() {
        let a = db();
        let w = a.begin_write().unwrap();
        let mut tx = Tx::new(&w, true);
        tx.insert(Table::Tokens, b"k1", b"v1").unwrap();
        tx.insert(Table::Clients, b"c", b"x").unwrap();
        tx.insert(Table::Tokens, b"k2", b"v2").unwrap();
        assert!(tx.remove(Table::Tokens, b"k1").unwrap());
        assert!(!tx.remove(Table::Tokens, b"absent").unwrap());
        tx.insert(Table::Clients, b"c", b"y").unwrap();
        let log = tx.finish();
        w.commit().unwrap();

        // Replayed on a fresh database, and replayed twice (a crash after a partial
        // checkpoint): the same final state.
        let b = db();
        for _ in 0..2 {
            let w = b.begin_write().unwrap();
            let mut tx = Tx::new(&w, false);
            tx.replay(&log).unwrap();
            assert_eq!(tx.finish(), Vec::<u8>::new());
            w.commit().unwrap();
        }
        for t in [Table::Tokens, Table::Clients] {
            assert_eq!(dump(&a, t), dump(&b, t));
        }
        assert_eq!(dump(&b, Table::Tokens), vec![(b"k2".to_vec(), b"v2".to_vec())]);
    }

    /// What decides whether a batch may stay in the open transaction (`commit.rs`, deferred
    /// batches): the tables it changed, not those it only read or removed nothing from.
    #[test]
    fn changed_tables_are_tracked() {
        let a = db();
        let w = a.begin_write().unwrap();
        let mut tx = Tx::new(&w, true);
        let deferrable = [Table::Tokens, Table::Families, Table::SeqFloor];
        assert!(tx.changed_only(&deferrable));
        tx.insert(Table::Tokens, b"k", b"v").unwrap();
        tx.insert(Table::Families, b"f", b"1").unwrap();
        assert!(tx.get(Table::Flows, b"x").unwrap().is_none());
        assert!(!tx.remove(Table::Clients, b"absent").unwrap());
        assert!(tx.changed_only(&deferrable), "reads and removals of nothing change nothing");
        assert!(!tx.changed_only(&[Table::Tokens]));
        tx.insert(Table::Clients, b"c", b"x").unwrap();
        assert!(tx.take(Table::Clients, b"c").unwrap().is_some());
        assert!(!tx.changed_only(&deferrable), "a client was written");
    }

    #[test]
    fn truncated_or_unknown_entries_are_refused() {
        let a = db();
        let w = a.begin_write().unwrap();
        let mut tx = Tx::new(&w, true);
        tx.insert(Table::Tokens, b"key", b"value").unwrap();
        let log = tx.finish();
        w.abort().unwrap();
        for bad in [&log[..log.len() - 1], &[99u8, 1, 0, 0, 0, 0, 0, 0, 0, 0][..], &[1u8, 7, 0, 0, 0, 0][..]] {
            let w = a.begin_write().unwrap();
            let mut tx = Tx::new(&w, false);
            assert!(tx.replay(bad).is_err(), "{bad:?}");
        }
    }
}
