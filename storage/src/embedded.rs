//! The embedded store's side of the storage interface: [`Storage`] for [`Store`], mapping each
//! domain operation onto bytes → bytes tables of the partition databases.
//!
//! Invariants: every write is one job of one partition's committer (one transaction), except
//! where a comment says why two are safe in their order; login sessions and consents live in the
//! partition of their subject, the session-id index in the partition of the id; the change feed
//! publishes a version only after the commit that made the change is visible.

use crate::api::*;
use crate::commit::Pending;
use crate::records::{decode_token, encode_token, TokenKind, TokenRecord, TokenView};
use crate::rows::{
    delete_family, flow_row, flow_seq, flow_started, get_record, put_tokens, raise_floor, revoke_family, spend, Family,
    Rows,
};
use crate::store::{decode_marks, raise_marks, Store, CLIENT_RECORD_VERSION};
use crate::sweep::DeadRule;
use crate::tx::{decode_u64, decode_u64_be, token_key, Table, Tx};
use crate::StoreError;
use redb::ReadableTable;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The tables reachable as raw rows: the session tables only.
fn doc_table(t: Table) -> Result<Table> {
    match t {
        Table::LoginSessions | Table::ConsentSessions | Table::SessionIds | Table::RevocationIntents => Ok(t),
        _ => Err(StoreError::Corrupt("not a document table")),
    }
}

/// Key of a document row: its parts joined by 0 bytes.
fn doc_key(parts: &[&str]) -> Vec<u8> {
    parts.join("\0").into_bytes()
}

/// The prefix of every row whose key starts with these parts.
fn doc_prefix(parts: &[&str]) -> Vec<u8> {
    let mut k = doc_key(parts);
    k.push(0);
    k
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

fn put_key_row(tx: &mut Tx<'_>, row: &KeyRow) -> Result<()> {
    let mut v = Vec::with_capacity(9 + row.sealed.len());
    v.push(KEY_RECORD_VERSION);
    v.extend_from_slice(&row.created.to_le_bytes());
    v.extend_from_slice(&row.sealed);
    tx.insert(Table::Jwks, &key_row_key(&row.set, &row.kid), &v)
}

fn decode_key_row(k: &[u8], v: &[u8]) -> Result<KeyRow> {
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

// ---------------------------------------------------------------------------------------------
// Reads and small writes of the session tables.

impl Store {
    fn doc_get(&self, partition: u32, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let rtx = self.part(partition)?.read()?;
        let t = rtx.open_table(table.def())?;
        let v = t.get(key)?.map(|v| v.value().to_vec());
        Ok(v)
    }

    /// Every row whose key starts with `prefix`.
    fn doc_scan(&self, partition: u32, table: Table, prefix: &[u8]) -> Result<Rows> {
        let rtx = self.part(partition)?.read()?;
        let t = rtx.open_table(table.def())?;
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
        self.on(partition, move |tx| rows.iter().try_for_each(|(k, v)| tx.insert(table, k, v)))
    }

    /// Deletes exactly these keys; resolves to how many existed.
    fn doc_delete_keys(&self, partition: u32, table: Table, keys: Vec<Vec<u8>>) -> Pending<usize> {
        self.on(partition, move |tx| {
            let mut n = 0;
            for k in &keys {
                if tx.remove(table, k)? {
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    /// Revokes the grant of every revocation intent of `partition` under `prefix` (every intent
    /// of the partition when empty), then removes those intents in one commit. Revoking a grant
    /// twice is harmless, so a crash anywhere here loses nothing. Resolves to how many grants.
    async fn finish_revocations(&self, partition: u32, prefix: &[u8]) -> Result<usize> {
        let intents = self.doc_scan(partition, Table::RevocationIntents, prefix)?;
        let mut done = Vec::with_capacity(intents.len());
        let mut n = 0;
        for (k, v) in intents {
            if let (Some(p), Some(f)) = (v.get(..4), v.get(4..12)) {
                let grant_partition = u32::from_le_bytes(p.try_into().unwrap_or_default());
                let family = u64::from_le_bytes(f.try_into().unwrap_or_default());
                self.revoke_family(grant_partition, family).await?;
                n += 1;
            }
            done.push(k);
        }
        if !done.is_empty() {
            self.doc_delete_keys(partition, Table::RevocationIntents, done).await?;
        }
        Ok(n)
    }

    /// Indexes, once per data directory, the login sessions an earlier release stored without
    /// their id row (so `DELETE …/sessions/login?sid=` finds them too).
    async fn index_session_ids(&self) -> Result<usize> {
        const FLAG: &str = "session_ids_v1";
        if self.flag(FLAG)? {
            return Ok(0);
        }
        let mut n = 0;
        for p in 0..self.partition_count() {
            let mut by_partition: BTreeMap<u32, Rows> = BTreeMap::new();
            for (k, v) in self.doc_scan(p, Table::LoginSessions, b"")? {
                let (Some(at), Ok(s)) = (k.iter().position(|b| *b == 0), serde_json::from_slice::<LoginSession>(&v))
                else {
                    continue;
                };
                let Ok(sid) = std::str::from_utf8(&k[at + 1..]) else { continue };
                let row = session_id_row(&s.subject, s.expires_at)?;
                by_partition.entry(self.place(sid)).or_default().push((sid.as_bytes().to_vec(), row));
                n += 1;
            }
            for (q, rows) in by_partition {
                self.doc_put(q, Table::SessionIds, rows).await?;
            }
        }
        self.set_flag(FLAG).await?;
        Ok(n)
    }

    /// The first commit of [`Storage::revoke_consents`] alone, as a crash right after it leaves
    /// the store: the consents deleted and, for each, the intent to revoke its grant recorded in
    /// the same commit (the rows and what replaces them are never both present or both absent).
    /// Public for crash tests.
    pub async fn begin_consent_revocation(&self, subject: &str, client_id: Option<&str>) -> Result<()> {
        let prefix = match client_id {
            Some(c) => doc_prefix(&[subject, c]),
            None => doc_prefix(&[subject]),
        };
        self.on(self.place(subject), move |tx| {
            for k in tx.keys_with_prefix(Table::ConsentSessions, &prefix)? {
                let Some(v) = tx.get(Table::ConsentSessions, &k)? else { continue };
                tx.remove(Table::ConsentSessions, &k)?;
                if let Ok(c) = serde_json::from_slice::<Consent>(&v) {
                    let g = c.grant();
                    let intent = [g.partition.to_le_bytes().as_slice(), &g.family.to_le_bytes()].concat();
                    tx.insert(Table::RevocationIntents, &doc_key(&[&c.subject, &c.flow_id]), &intent)?;
                }
            }
            Ok(())
        })
        .await
    }

    /// Every raw row of a session table under `prefix`, in the partition of `placed_by` (a
    /// subject or a session id). For upgrade tests, which write and read rows as an earlier
    /// release did.
    pub fn raw_scan(&self, table: Table, placed_by: &str, prefix: &[u8]) -> Result<Rows> {
        self.doc_scan(self.place(placed_by), doc_table(table)?, prefix)
    }

    /// Writes raw rows into a session table (see [`Store::raw_scan`]).
    pub fn raw_put(&self, table: Table, placed_by: &str, rows: Rows) -> Pending<()> {
        match doc_table(table) {
            Ok(t) => self.doc_put(self.place(placed_by), t, rows),
            Err(e) => Pending::ready(Err(e)),
        }
    }

    /// Queues a meta job that changes clients, watermarks or keys: it runs under the next
    /// change-feed version, the changes it returns are recorded under that version, and the
    /// version is published once the commit is visible. Resolves to the answer and the version.
    fn meta_write<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Tx<'_>) -> Result<(T, Vec<Change>)> + Send + 'static,
    ) -> Pending<(T, u64)> {
        let feed = self.feed.clone();
        let published = self.feed.clone();
        self.meta.committer.submit_then(
            move |tx| {
                let v = feed.next();
                let (answer, changes) = job(tx)?;
                Ok((answer, feed.take(v, changes)))
            },
            move |(_, v)| published.publish(*v),
        )
    }

    /// Queues a job on a partition's committer; a partition that does not exist is an error
    /// answered without a commit.
    fn on<T: Send + 'static>(
        &self,
        partition: u32,
        job: impl FnOnce(&mut Tx<'_>) -> Result<T> + Send + 'static,
    ) -> Pending<T> {
        match self.part(partition) {
            Ok(part) => part.committer.submit(job),
            Err(e) => Pending::ready(Err(e)),
        }
    }

    /// The partition of a subject's or id's documents.
    fn place(&self, key: &str) -> u32 {
        partition_of(self.partition_count(), key)
    }

    /// Whether a one-time upgrade step named `name` was done on this data directory.
    fn flag(&self, name: &str) -> Result<bool> {
        Ok(self.read_meta(Table::State, &flag_key(name), |_| Ok(()))?.is_some())
    }

    /// Records durably that the step `name` was done.
    fn set_flag(&self, name: &str) -> Pending<()> {
        let key = flag_key(name);
        self.meta.committer.submit(move |tx| tx.insert(Table::State, &key, &[1]))
    }

    fn read_meta<T>(&self, table: Table, key: &[u8], decode: impl FnOnce(&[u8]) -> Result<T>) -> Result<Option<T>> {
        let rtx = self.meta.read()?;
        let t = rtx.open_table(table.def())?;
        let found = t.get(key)?;
        found.map(|v| decode(v.value())).transpose()
    }
}

fn flag_key(name: &str) -> Vec<u8> {
    [b"flag:".as_slice(), name.as_bytes()].concat()
}

/// A [`Table::SessionIds`] row: JSON naming the subject, with `expires_at` for the janitor.
fn session_id_row(subject: &str, expires_at: i64) -> Result<Vec<u8>> {
    serde_json::to_vec(&serde_json::json!({"subject": subject, "expires_at": expires_at}))
        .map_err(|_| StoreError::Corrupt("session id row"))
}

#[derive(serde::Deserialize)]
struct SessionIdRow {
    subject: String,
}

#[derive(serde::Deserialize)]
struct Expiring {
    expires_at: i64,
}

fn decode_client(v: &[u8]) -> Result<Vec<u8>> {
    match v.split_first() {
        Some((&CLIENT_RECORD_VERSION, body)) => Ok(body.to_vec()),
        _ => Err(StoreError::Corrupt("unknown client record version")),
    }
}

fn utf8(k: &[u8], what: &'static str) -> Result<String> {
    String::from_utf8(k.to_vec()).map_err(|_| StoreError::Corrupt(what))
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
        // Token rows and the grant's row only: the batch may stay uncommitted once logged.
        part.committer.submit_deferrable(move |tx| {
            let Some(rec) = get_record(tx, seq)?.filter(|r| r.signature == signature) else {
                return Ok(answer(Spent::Missing));
            };
            if rec.kind == live {
                let mut family = Family::load(tx, rec.family)?;
                spend(tx, &mut family, seq, &rec, spent)?;
                if live == TokenKind::Refresh {
                    let newest = tokens.iter().map(|(s, _)| *s).max().unwrap_or(0);
                    delete_family(tx, &mut family, Some(TokenKind::Access), newest)?;
                }
                put_tokens(tx, Some(family), &tokens)?;
                Ok(answer(Spent::Done(Box::new(rec))))
            } else if rec.kind == spent {
                revoke_family(tx, rec.family)?;
                Ok(answer(Spent::Again))
            } else {
                Ok(answer(Spent::Missing))
            }
        })
    }
}

/// The janitor's rule for one target of one partition.
fn dead_rule(partition: u32, target: SweepTarget, rules: Arc<SweepRules>) -> DeadRule {
    match target {
        SweepTarget::Tokens => Arc::new(move |k, v| {
            let seq = decode_u64_be(k);
            decode_token(v).is_ok_and(|r| rules.token_dead(partition, seq, &r))
        }),
        SweepTarget::Flows => Arc::new(move |_, v| flow_started(v).is_some_and(|t| rules.flow_dead(t))),
        SweepTarget::LoginSessions => {
            Arc::new(move |_, v| serde_json::from_slice::<Expiring>(v).is_ok_and(|s| s.expires_at <= rules.before))
        }
    }
}

impl Storage for Store {
    fn partition_count(&self) -> u32 {
        self.partitions.len() as u32
    }

    async fn next_seq(&self, partition: u32) -> Result<u64> {
        Ok(self.part(partition)?.next_seq.fetch_add(1, Ordering::Relaxed))
    }

    async fn seq_marks(&self) -> Result<Vec<u64>> {
        Ok(self.partitions.iter().map(|p| p.next_seq.load(Ordering::Relaxed)).collect())
    }

    // Writes return the committer's `Pending`: the job is queued when the call is made, not
    // when the future is first polled, so callers can queue several before waiting.
    fn insert_tokens(&self, partition: u32, records: Vec<(u64, TokenRecord)>) -> impl Future<Output = Result<()>> {
        let part = match self.part(partition) {
            Ok(part) => part,
            Err(e) => return Pending::ready(Err(e)),
        };
        let rows: Result<Vec<(u64, Vec<u8>)>> =
            records.iter().map(|(seq, rec)| Ok((*seq, encode_token(rec)?))).collect();
        match rows {
            // Staged: acknowledged once logged, read from memory until it reaches the B-tree.
            Ok(rows) => part.committer.stage(rows),
            Err(e) => Pending::ready(Err(e)),
        }
    }

    async fn get_token(&self, partition: u32, seq: u64) -> Result<Option<TokenRecord>> {
        self.get_token_view(partition, seq).await?.map(|v| v.to_record()).transpose()
    }

    async fn get_token_view(&self, partition: u32, seq: u64) -> Result<Option<TokenView>> {
        let part = self.part(partition)?;
        // Staged rows first, then the B-tree: a row leaves the stage only once the B-tree
        // commit holding it is visible, so looking in this order never misses it.
        if let Some(found) = part.committer.staged().get(seq, TokenView::new) {
            return found.transpose();
        }
        let snap = part.committer.staged().tokens(|| Ok(part.read()?.open_table(Table::Tokens.def())?))?;
        let found = snap.table.get(&token_key(seq)[..])?;
        match found {
            Some(v) => Ok(Some(TokenView::new(v.value())?)),
            None => Ok(None),
        }
    }

    fn delete_token(&self, partition: u32, seq: u64) -> impl Future<Output = Result<bool>> {
        let Ok(part) = self.part(partition) else { return Pending::ready(Ok(false)) };
        part.committer.submit_deferrable(move |tx| {
            let existed = tx.remove(Table::Tokens, &token_key(seq))?;
            if existed {
                raise_floor(tx, seq)?;
            }
            Ok(existed)
        })
    }

    fn issue_grant(
        &self,
        partition: u32,
        flow_id: &str,
        flow_started: i64,
        tokens: Vec<(u64, TokenRecord)>,
    ) -> impl Future<Output = Result<bool>> {
        let flow = flow_id.as_bytes().to_vec();
        self.on(partition, move |tx| {
            let Some((seq, _)) = tokens.first() else { return Err(StoreError::Corrupt("a grant without records")) };
            if tx.get(Table::Flows, &flow)?.is_some() {
                return Ok(false);
            }
            for (seq, rec) in &tokens {
                if get_record(tx, *seq)?.is_some_and(|old| !old.approved_as(rec)) {
                    return Ok(false);
                }
            }
            tx.insert(Table::Flows, &flow, &flow_row(*seq, flow_started))?;
            put_tokens(tx, None, &tokens)?;
            Ok(true)
        })
    }

    fn redeem_code(
        &self,
        partition: u32,
        seq: u64,
        signature: [u8; 32],
        tokens: Vec<(u64, TokenRecord)>,
    ) -> impl Future<Output = Result<Redeem>> {
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
    ) -> impl Future<Output = Result<Rotate>> {
        self.exchange(partition, seq, signature, tokens, TokenKind::Refresh, |s| match s {
            Spent::Done(rec) => Rotate::Done(rec),
            Spent::Again => Rotate::Reused,
            Spent::Missing => Rotate::Missing,
        })
    }

    fn revoke_family(&self, partition: u32, family: u64) -> impl Future<Output = Result<usize>> {
        let Ok(part) = self.part(partition) else { return Pending::ready(Ok(0)) };
        part.committer.submit_deferrable(move |tx| revoke_family(tx, family))
    }

    async fn flow_used(&self, partition: u32, key: &str) -> Result<bool> {
        Ok(self.doc_get(partition, Table::Flows, key.as_bytes())?.is_some())
    }

    async fn flow_grant(&self, partition: u32, key: &str) -> Result<Option<u64>> {
        Ok(self.doc_get(partition, Table::Flows, key.as_bytes())?.map(|row| flow_seq(&row)))
    }

    fn mark_flow(&self, partition: u32, key: &str, flow_started: i64) -> impl Future<Output = Result<bool>> {
        let key = key.as_bytes().to_vec();
        self.on(partition, move |tx| {
            if tx.get(Table::Flows, &key)?.is_some() {
                return Ok(false);
            }
            tx.insert(Table::Flows, &key, &flow_row(0, flow_started))?;
            Ok(true)
        })
    }

    async fn put_login_session(&self, s: LoginSession) -> Result<()> {
        let value = serde_json::to_vec(&s).map_err(|_| StoreError::Corrupt("login session"))?;
        // The id row first: after a crash in between it names a session that does not exist
        // (and expires with it), never the other way round, so every session can be found by id.
        let index = session_id_row(&s.subject, s.expires_at)?;
        self.doc_put(self.place(&s.sid), Table::SessionIds, vec![(s.sid.as_bytes().to_vec(), index)]).await?;
        self.doc_put(self.place(&s.subject), Table::LoginSessions, vec![(doc_key(&[&s.subject, &s.sid]), value)]).await
    }

    async fn get_login_session(&self, subject: &str, sid: &str) -> Result<Option<LoginSession>> {
        let Some(v) = self.doc_get(self.place(subject), Table::LoginSessions, &doc_key(&[subject, sid]))? else {
            return Ok(None);
        };
        let mut s: LoginSession = serde_json::from_slice(&v).map_err(|_| StoreError::Corrupt("login session"))?;
        s.sid = sid.to_string();
        Ok(Some(s))
    }

    async fn find_login_session(&self, sid: &str) -> Result<Option<LoginSession>> {
        let Some(row) = self.doc_get(self.place(sid), Table::SessionIds, sid.as_bytes())? else { return Ok(None) };
        let id: SessionIdRow = serde_json::from_slice(&row).map_err(|_| StoreError::Corrupt("session id"))?;
        self.get_login_session(&id.subject, sid).await
    }

    async fn delete_login_session(&self, sid: &str) -> Result<bool> {
        let p = self.place(sid);
        let Some(row) = self.doc_get(p, Table::SessionIds, sid.as_bytes())? else { return Ok(false) };
        let mut existed = false;
        if let Ok(id) = serde_json::from_slice::<SessionIdRow>(&row) {
            let k = doc_key(&[&id.subject, sid]);
            existed = self.doc_delete_keys(self.place(&id.subject), Table::LoginSessions, vec![k]).await? > 0;
        }
        // The id row last, for the same reason it is written first.
        self.doc_delete_keys(p, Table::SessionIds, vec![sid.as_bytes().to_vec()]).await?;
        Ok(existed)
    }

    async fn delete_login_sessions(&self, subject: &str) -> Result<usize> {
        let prefix = doc_prefix(&[subject]);
        let table = Table::LoginSessions;
        let removed = self
            .on(self.place(subject), move |tx| {
                let mut out = Vec::new();
                for k in tx.keys_with_prefix(table, &prefix)? {
                    tx.remove(table, &k)?;
                    out.push(k[prefix.len()..].to_vec());
                }
                Ok(out)
            })
            .await?;
        let mut by_partition: BTreeMap<u32, Vec<Vec<u8>>> = BTreeMap::new();
        for sid in &removed {
            let p = std::str::from_utf8(sid).map(|s| self.place(s)).unwrap_or(0);
            by_partition.entry(p).or_default().push(sid.clone());
        }
        for (p, keys) in by_partition {
            self.doc_delete_keys(p, Table::SessionIds, keys).await?;
        }
        Ok(removed.len())
    }

    async fn put_consent(&self, c: Consent) -> Result<()> {
        let value = serde_json::to_vec(&c).map_err(|_| StoreError::Corrupt("consent session"))?;
        let mut rows = vec![(doc_key(&[&c.subject, &c.client_id, &c.flow_id]), value.clone())];
        if c.remembered_for_later() {
            rows.push((latest_key(&c.subject, &c.client_id), value));
        }
        self.doc_put(self.place(&c.subject), Table::ConsentSessions, rows).await
    }

    async fn latest_consent(&self, subject: &str, client_id: &str) -> Result<Option<Consent>> {
        let found = self.doc_get(self.place(subject), Table::ConsentSessions, &latest_key(subject, client_id))?;
        found.map(|v| serde_json::from_slice(&v).map_err(|_| StoreError::Corrupt("consent session"))).transpose()
    }

    async fn list_consents(&self, subject: &str) -> Result<Vec<Consent>> {
        let rows = self.doc_scan(self.place(subject), Table::ConsentSessions, &doc_prefix(&[subject]))?;
        Ok(rows
            .iter()
            // The latest-consent rows repeat a flow's row.
            .filter(|(k, _)| !k.ends_with(&[0]))
            .filter_map(|(_, v)| serde_json::from_slice::<Consent>(v).ok())
            .collect())
    }

    async fn revoke_consents(&self, subject: &str, client_id: Option<&str>) -> Result<usize> {
        let p = self.place(subject);
        self.begin_consent_revocation(subject, client_id).await?;
        // Intents left by an earlier call cut short are finished here too.
        self.finish_revocations(p, &doc_prefix(&[subject])).await
    }

    async fn load_clients(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let rtx = self.meta.read()?;
        let table = rtx.open_table(Table::Clients.def())?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.push((utf8(k.value(), "client id")?, decode_client(v.value())?));
        }
        Ok(out)
    }

    async fn get_client(&self, id: &str) -> Result<Option<Vec<u8>>> {
        self.read_meta(Table::Clients, id.as_bytes(), decode_client)
    }

    fn put_client(&self, id: &str, body: Vec<u8>, mode: PutMode) -> impl Future<Output = Result<(PutOutcome, u64)>> {
        let id = id.to_string();
        self.meta_write(move |tx| {
            let current = tx.get(Table::Clients, id.as_bytes())?;
            let refused = match (&mode, current) {
                (PutMode::Create { .. }, Some(_)) => Some(PutOutcome::Exists),
                (PutMode::Replace { .. }, None) => Some(PutOutcome::Missing),
                (PutMode::Replace { expected }, Some(cur)) if cur.get(1..) != Some(expected.as_slice()) => {
                    Some(PutOutcome::Conflict)
                }
                (PutMode::Create { marks }, None) => {
                    raise_marks(tx, &id, marks, false)?;
                    None
                }
                _ => None,
            };
            if let Some(outcome) = refused {
                return Ok((outcome, Vec::new()));
            }
            let mut value = Vec::with_capacity(body.len() + 1);
            value.push(CLIENT_RECORD_VERSION);
            value.extend_from_slice(&body);
            tx.insert(Table::Clients, id.as_bytes(), &value)?;
            Ok((PutOutcome::Written, vec![Change::Client(id)]))
        })
    }

    fn delete_client(&self, id: &str, marks: Vec<u64>) -> impl Future<Output = Result<(bool, u64)>> {
        let id = id.to_string();
        self.meta_write(move |tx| {
            let existed = tx.remove(Table::Clients, id.as_bytes())?;
            if !existed {
                return Ok((false, Vec::new()));
            }
            raise_marks(tx, &id, &marks, true)?;
            Ok((true, vec![Change::Watermarks(id.clone()), Change::Client(id)]))
        })
    }

    fn set_watermarks(&self, client_id: &str, marks: Vec<u64>) -> impl Future<Output = Result<()>> {
        let id = client_id.to_string();
        let queued = self.meta_write(move |tx| {
            raise_marks(tx, &id, &marks, true)?;
            Ok(((), vec![Change::Watermarks(id)]))
        });
        async move { queued.await.map(|_| ()) }
    }

    async fn load_watermarks(&self) -> Result<Vec<(String, Vec<u64>)>> {
        self.watermarks()
    }

    async fn get_watermarks(&self, client_id: &str) -> Result<Option<Vec<u64>>> {
        self.read_meta(Table::Watermarks, client_id.as_bytes(), |v| Ok(decode_marks(v)))
    }

    async fn load_keys(&self) -> Result<Vec<KeyRow>> {
        let rtx = self.meta.read()?;
        let table = rtx.open_table(Table::Jwks.def())?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.push(decode_key_row(k.value(), v.value())?);
        }
        Ok(out)
    }

    fn write_keys(&self, set: &str, write: KeyWrite) -> impl Future<Output = Result<(bool, u64)>> {
        let set = set.to_string();
        self.meta_write(move |tx| {
            let prefix = key_row_key(&set, "");
            let existing = tx.keys_with_prefix(Table::Jwks, &prefix)?;
            let had = !existing.is_empty();
            let (rows, clear) = match &write {
                KeyWrite::Add(rows) => (rows.as_slice(), false),
                KeyWrite::AddIfEmpty(rows) if !had => (rows.as_slice(), false),
                KeyWrite::AddIfEmpty(_) => return Ok((false, Vec::new())),
                KeyWrite::Create(rows) if rows.iter().any(|r| existing.contains(&key_row_key(&set, &r.kid))) => {
                    return Ok((false, Vec::new()))
                }
                KeyWrite::Create(rows) => (rows.as_slice(), false),
                KeyWrite::Replace(rows) => (rows.as_slice(), true),
                KeyWrite::DeleteSet => (&[][..], true),
                KeyWrite::DeleteKey(kid) => {
                    let existed = tx.remove(Table::Jwks, &key_row_key(&set, kid))?;
                    return Ok((existed, vec![Change::Keys(set)]));
                }
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
            let answer = matches!(write, KeyWrite::AddIfEmpty(_) | KeyWrite::Create(_)) || had;
            Ok((answer, vec![Change::Keys(set)]))
        })
    }

    async fn changes_since(&self, version: u64) -> Result<Changes> {
        Ok(self.feed.since(version))
    }

    async fn recover(&self) -> Result<Recovered> {
        let mut revocations = 0;
        for p in 0..self.partition_count() {
            revocations += self.finish_revocations(p, b"").await?;
        }
        let upgraded = self.index_session_ids().await?;
        Ok(Recovered { revocations, upgraded })
    }

    async fn sweep_step(
        &self,
        partition: u32,
        target: SweepTarget,
        after: Option<Vec<u8>>,
        limit: usize,
        rules: &SweepRules,
    ) -> Result<Step> {
        let rule = dead_rule(partition, target, Arc::new(rules.clone()));
        if target != SweepTarget::LoginSessions {
            let table = if target == SweepTarget::Tokens { Table::Tokens } else { Table::Flows };
            return self.sweep_table(partition, table, after.as_deref(), limit, &rule).await;
        }
        // Two tables, one walk: the sessions, then their id rows. The cursor's first byte says
        // which table it is in.
        let (phase, at) = match after.as_deref() {
            None => (0, None),
            Some([phase, rest @ ..]) => (*phase, Some(rest)),
            Some([]) => (0, None),
        };
        let table = if phase == 0 { Table::LoginSessions } else { Table::SessionIds };
        let mut step = self.sweep_table(partition, table, at, limit, &rule).await?;
        step.next = match (step.next.take(), phase) {
            (Some(k), _) => Some([&[phase][..], &k].concat()),
            (None, 0) => Some(vec![1]),
            (None, _) => None,
        };
        Ok(step)
    }

    async fn janitor_lease(&self, _holder: &str, _secs: i64) -> Result<bool> {
        // One process owns the data directory.
        Ok(true)
    }

    async fn ping(&self) -> Result<()> {
        // Not ready while any partition refuses writes after an I/O error.
        if self.partitions.iter().chain([&self.meta]).any(|p| p.stats().failed.load(Ordering::Relaxed)) {
            return Err(StoreError::Unavailable);
        }
        let rtx = self.meta.read()?;
        rtx.open_table(Table::Clients.def())?;
        Ok(())
    }
}

/// Key of the latest remembered consent of a subject for a client: the per-client prefix itself
/// (flow ids are never empty), so deleting that prefix removes it too, and deciding whether to
/// skip consent is one read however many flows the pair has had.
fn latest_key(subject: &str, client_id: &str) -> Vec<u8> {
    doc_prefix(&[subject, client_id])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::FEED_LEN;
    use crate::{StoreOptions, Wait};

    fn store(partitions: u32) -> Store {
        Store::memory(&StoreOptions { partitions, ..Default::default() }).unwrap()
    }

    #[test]
    fn a_sweep_commit_judges_the_stored_row_again() {
        let store = store(1);
        store.doc_put(0, Table::LoginSessions, vec![(b"s\0a".to_vec(), b"dead".to_vec())]).wait().unwrap();
        // Dead when read, alive by the time the commit looks (as if a writer had extended it in
        // between): the row must stay.
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = calls.clone();
        let rule: DeadRule = Arc::new(move |_, _| seen.fetch_add(1, Ordering::SeqCst) == 0);
        let step = store.sweep_table(0, Table::LoginSessions, None, 10, &rule).wait().unwrap();
        assert_eq!((step.examined, step.deleted), (1, 0));
        assert_eq!(calls.load(Ordering::SeqCst), 2, "read once, judged again in the commit");
        assert_eq!(store.doc_scan(0, Table::LoginSessions, b"s\0").unwrap().len(), 1);
        // Dead both times: deleted.
        let dead: DeadRule = Arc::new(|_, v| v == b"dead");
        assert_eq!(store.sweep_table(0, Table::LoginSessions, None, 10, &dead).wait().unwrap().deleted, 1);
        assert!(store.doc_scan(0, Table::LoginSessions, b"s\0").unwrap().is_empty());
        // Tables the janitor has no business in are refused.
        let all: DeadRule = Arc::new(|_, _| true);
        for t in [Table::Clients, Table::Jwks, Table::ConsentSessions, Table::Watermarks, Table::SeqFloor, Table::State]
        {
            assert!(store.sweep_table(0, t, None, 10, &all).wait().is_err(), "{t:?}");
        }
    }

    #[test]
    fn a_panicking_job_fails_its_commit_and_the_partition_keeps_writing() {
        let store = store(1);
        let r = store
            .on(0, |tx| {
                tx.insert(Table::ConsentSessions, b"s\0a", b"v")?;
                if tx.get(Table::ConsentSessions, b"s\0a")?.is_some() {
                    panic!("a bug in a job");
                }
                Ok(())
            })
            .wait();
        assert!(r.is_err(), "the panicking job's commit is refused");
        assert_eq!(store.doc_get(0, Table::ConsentSessions, b"s\0a").unwrap(), None, "nothing applied");
        store.doc_put(0, Table::ConsentSessions, vec![(b"s\0b".to_vec(), b"w".to_vec())]).wait().unwrap();
        assert_eq!(store.doc_get(0, Table::ConsentSessions, b"s\0b").unwrap(), Some(b"w".to_vec()));
    }

    #[test]
    fn the_change_feed_publishes_in_commit_order_and_asks_a_late_reader_to_resync() {
        let store = store(1);
        assert_eq!(store.changes_since(0).wait().unwrap(), Changes::default());
        let (_, v1) = store.put_client("a", b"{}".to_vec(), PutMode::Create { marks: vec![] }).wait().unwrap();
        let (_, v2) = store.write_keys("set", KeyWrite::DeleteSet).wait().unwrap();
        store.set_watermarks("a", vec![3]).wait().unwrap();
        let feed = store.changes_since(0).wait().unwrap();
        assert!(v1 < v2 && !feed.resync);
        assert_eq!(
            feed.changes,
            vec![Change::Client("a".into()), Change::Keys("set".into()), Change::Watermarks("a".into())]
        );
        assert_eq!(store.changes_since(v1).wait().unwrap().changes.len(), 2);
        assert_eq!(store.changes_since(feed.version).wait().unwrap().changes, vec![]);
        // A refused write takes a version but changes nothing.
        let (outcome, _) = store.put_client("a", b"{}".to_vec(), PutMode::Create { marks: vec![] }).wait().unwrap();
        assert_eq!(outcome, PutOutcome::Exists);
        assert_eq!(store.changes_since(feed.version).wait().unwrap().changes, vec![]);
        // A reader from another run of the counter, or one the feed has dropped, reloads.
        assert!(store.changes_since(feed.version + 100).wait().unwrap().resync);
        for i in 0..FEED_LEN {
            store.set_watermarks(&format!("c{i}"), vec![1]).wait().unwrap();
        }
        assert!(store.changes_since(v1).wait().unwrap().resync);
        let now = store.changes_since(0).wait().unwrap().version;
        assert!(!store.changes_since(now - 10).wait().unwrap().resync);
    }

    #[test]
    fn opening_a_directory_folds_its_earlier_family_index_in_once() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions { partitions: 1, ..Default::default() };
        let token = crate::rows::tests::token;
        let mut store = Store::open(dir.path(), &opts).unwrap();
        // As an earlier release left it: one index row per token, and no flag.
        store
            .on(0, move |tx| {
                for (seq, kind) in [(5u64, TokenKind::Access), (6, TokenKind::Refresh)] {
                    tx.insert(Table::Tokens, &token_key(seq), &encode_token(&token(kind, 5))?)?;
                    tx.insert(Table::Families, &[5u64.to_be_bytes(), seq.to_be_bytes()].concat(), &[])?;
                }
                tx.remove(Table::State, crate::rows::FAMILY_ROWS_FLAG)?;
                Ok(())
            })
            .wait()
            .unwrap();
        store.shutdown();
        drop(store);

        let store = Store::open(dir.path(), &opts).unwrap();
        let rows = store.on(0, |tx| tx.keys_with_prefix(Table::Families, b"")).wait().unwrap();
        assert_eq!(rows, [5u64.to_be_bytes().to_vec()]);
        assert_eq!(store.revoke_family(0, 5).wait().unwrap(), 2);
        assert!(store.get_token(0, 5).wait().unwrap().is_none() && store.get_token(0, 6).wait().unwrap().is_none());
    }
}
