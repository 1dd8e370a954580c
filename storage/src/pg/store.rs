//! [`PgStore`]: the storage interface on PostgreSQL, for several stateless nodes on one database.
//!
//! Invariants (see `docs/design.md` §5.2):
//! - Every operation is one statement, or one transaction on a lane's exclusive connection, and
//!   resolves only after PostgreSQL answered (a write: after its commit, `synchronous_commit`
//!   on); nothing is cached across calls except blocks of token numbers, so a write committed
//!   by any node is seen by every read that starts after it.
//! - Token numbers come in blocks per partition from `hydra_rs_seq` and are never handed out
//!   twice, by any node, across restarts; they increase within a block only.
//! - Revoking every token of a client (`set_watermarks`, `delete_client`) raises the client's
//!   epoch: reads, exchanges and the janitor treat rows of an older epoch as gone. Sequence
//!   watermarks are not used ([`Storage::seq_marks`] answers zeros), because numbers taken in
//!   blocks do not follow time across nodes.
//! - Single use across nodes: exchanging a code or rotating a refresh token is one `UPDATE … WHERE
//!   kind = live`; the row lock lets one concurrent attempt win, and the others find the spent
//!   marker and revoke the grant in a statement of their own, which sees the winner's tokens.
//! - Meta writes (clients, epochs, keys) take the next feed version first, which serialises them:
//!   versions are in commit order, and the feed table lets every node learn of them.

use crate::api::*;
use crate::pg::lane::{Conn, Lanes, PgStats};
use crate::pg::{sql, PgOptions};
use crate::records::{encode_token, TokenKind, TokenRecord, TokenView};
use crate::{block_on, StoreError};
use std::sync::Mutex;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::Row;

/// How many token numbers one block holds: one statement per this many tokens of a partition
/// per node, and at most this many numbers skipped when a node stops.
pub const SEQ_BLOCK: u64 = 1024;

/// How many changes the feed table keeps; a node further behind reloads everything.
const FEED_KEEP: i64 = 4096;

/// What [`PgStore::open`] needs.
#[derive(Debug, Clone)]
pub struct PgStoreOptions {
    pub conn: PgOptions,
    /// Lanes (threads, each with `shared` pipelined connections for reads, `writers`
    /// connections for group commits and an exclusive one).
    pub lanes: usize,
    pub shared: usize,
    pub writers: usize,
    /// The partition count recorded on first open (later opens use the recorded one).
    pub partitions: u32,
}

/// The PostgreSQL backend.
pub struct PgStore {
    lanes: Lanes,
    partitions: u32,
    /// Per partition, the unused ranges `[next, end)` of the blocks this process holds.
    blocks: Vec<Mutex<Vec<(u64, u64)>>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("partitions", &self.partitions).finish_non_exhaustive()
    }
}

fn corrupt(_: tokio_postgres::Error) -> StoreError {
    StoreError::Corrupt("a PostgreSQL row does not have this release's schema")
}

/// Column `i` of a row, or a typed error (never a panic) when the schema is not ours.
fn col<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i).map_err(corrupt)
}

/// A bytea column holding a string (identifiers are stored as bytes; see the schema).
fn text(row: &Row, i: usize) -> Result<String> {
    String::from_utf8(col::<Vec<u8>>(row, i)?).map_err(|_| StoreError::Corrupt("a stored identifier is not UTF-8"))
}

fn opt_text(row: &Row, i: usize) -> Result<Option<String>> {
    col::<Option<Vec<u8>>>(row, i)?
        .map(|b| String::from_utf8(b).map_err(|_| StoreError::Corrupt("a stored identifier is not UTF-8")))
        .transpose()
}

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Database("a number is out of PostgreSQL's range".into()))
}

fn kind_code(k: TokenKind) -> i16 {
    k as u8 as i16
}

fn kind_of(code: i16) -> Result<TokenKind> {
    Ok(match code {
        0 => TokenKind::Access,
        1 => TokenKind::Refresh,
        2 => TokenKind::Code,
        3 => TokenKind::CodeUsed,
        4 => TokenKind::RefreshUsed,
        5 => TokenKind::Device,
        _ => return Err(StoreError::Corrupt("unknown token kind")),
    })
}

fn encode_audience(a: &[String]) -> String {
    if a.is_empty() {
        return "[]".into();
    }
    serde_json::to_string(a).unwrap_or_else(|_| "[]".into())
}

fn decode_audience(s: &str) -> Result<Vec<String>> {
    if s == "[]" {
        return Ok(Vec::new());
    }
    serde_json::from_str(s).map_err(|_| StoreError::Corrupt("token audience"))
}

/// A token record from the columns of `sql::record_columns!` starting at `at`.
fn record_at(row: &Row, at: usize) -> Result<TokenRecord> {
    let sig: &[u8] = col(row, at + 1)?;
    Ok(TokenRecord {
        kind: kind_of(col(row, at)?)?,
        signature: sig.try_into().map_err(|_| StoreError::Corrupt("token signature"))?,
        family: col::<i64>(row, at + 2)? as u64,
        client_id: text(row, at + 3)?,
        subject: text(row, at + 4)?,
        scope: text(row, at + 5)?,
        audience: decode_audience(col(row, at + 6)?)?,
        issued_at: col(row, at + 7)?,
        expires_at: col(row, at + 8)?,
        ext: col(row, at + 9)?,
    })
}

/// Token rows as the twelve column arrays `sql::insert_tokens!` takes.
#[derive(Default)]
struct Columns {
    part: Vec<i32>,
    seq: Vec<i64>,
    kind: Vec<i16>,
    signature: Vec<Vec<u8>>,
    family: Vec<i64>,
    client_id: Vec<Vec<u8>>,
    subject: Vec<Vec<u8>>,
    scope: Vec<Vec<u8>>,
    audience: Vec<String>,
    issued_at: Vec<i64>,
    expires_at: Vec<i64>,
    ext: Vec<String>,
}

impl Columns {
    /// The rows of one partition; a number given twice keeps its last record (one statement
    /// cannot write a row twice).
    fn of(partition: u32, records: Vec<(u64, TokenRecord)>) -> Result<Columns> {
        // Only a batch of several rows can name a number twice (the server never does; the
        // interface allows it): the common single row skips the map.
        let last: Option<std::collections::HashMap<u64, usize>> =
            (records.len() > 1).then(|| records.iter().enumerate().map(|(i, (seq, _))| (*seq, i)).collect());
        let mut c = Columns::default();
        for (i, (seq, r)) in records.into_iter().enumerate() {
            if last.as_ref().is_some_and(|l| l.get(&seq) != Some(&i)) {
                continue;
            }
            c.part.push(partition as i32);
            c.seq.push(to_i64(seq)?);
            c.kind.push(kind_code(r.kind));
            c.signature.push(r.signature.to_vec());
            c.family.push(to_i64(r.family)?);
            c.audience.push(encode_audience(&r.audience));
            c.client_id.push(r.client_id.into_bytes());
            c.subject.push(r.subject.into_bytes());
            c.scope.push(r.scope.into_bytes());
            c.issued_at.push(r.issued_at);
            c.expires_at.push(r.expires_at);
            c.ext.push(r.ext);
        }
        Ok(c)
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 12] {
        [
            &self.part,
            &self.seq,
            &self.kind,
            &self.signature,
            &self.family,
            &self.client_id,
            &self.subject,
            &self.scope,
            &self.audience,
            &self.issued_at,
            &self.expires_at,
            &self.ext,
        ]
    }
}

/// A feed change as stored: kind code and name.
fn change_row(c: &Change) -> (i16, &str) {
    match c {
        Change::Client(id) => (0, id),
        Change::Watermarks(id) => (1, id),
        Change::Keys(set) => (2, set),
    }
}

fn change_of(kind: i16, name: String) -> Result<Change> {
    Ok(match kind {
        0 => Change::Client(name),
        1 => Change::Watermarks(name),
        2 => Change::Keys(name),
        _ => return Err(StoreError::Corrupt("unknown change kind")),
    })
}

/// Appends the changes of the write holding version `v`, and now and then prunes the feed.
async fn record_changes(c: &Conn, v: i64, changes: &[Change]) -> Result<()> {
    for (n, ch) in changes.iter().enumerate() {
        let (kind, name) = change_row(ch);
        c.execute(sql::APPEND_CHANGE, &[&v, &(n as i16), &kind, &name.as_bytes()]).await?;
    }
    if v % 256 == 0 && v > FEED_KEEP {
        c.execute(sql::PRUNE_CHANGES, &[&(v - FEED_KEEP)]).await?;
    }
    Ok(())
}

impl PgStore {
    /// Starts the lanes, checks that the schema is current (else: run `hydra migrate sql up`)
    /// and reads the partition count (recording `partitions` on first open).
    pub fn open(o: &PgStoreOptions) -> Result<PgStore> {
        let lanes = Lanes::start(&o.conn, o.lanes, o.shared, o.writers)?;
        let requested = i64::from(o.partitions.max(1));
        let partitions = block_on(lanes.run(move |lane| async move {
            let c = lane.conn().await?;
            if crate::pg::migrate::behind(c.client()).await? {
                return Err(StoreError::Database(
                    "the database schema is behind this release: run `hydra migrate sql up`".into(),
                ));
            }
            let row = c.query_one(sql::PARTITIONS, &[&requested]).await?;
            col::<i64>(&row, 0)
        }))
        .map_err(|e| match e {
            StoreError::Unavailable => StoreError::Database("PostgreSQL: cannot connect".into()),
            e => e,
        })?;
        let partitions = u32::try_from(partitions)
            .ok()
            .filter(|p| p.is_power_of_two())
            .ok_or(StoreError::Corrupt("recorded partition count"))?;
        let blocks = (0..partitions).map(|_| Mutex::new(Vec::new())).collect();
        Ok(PgStore { lanes, partitions, blocks })
    }

    /// What the backend counted so far.
    pub fn stats(&self) -> &PgStats {
        &self.lanes.stats
    }

    fn check(&self, partition: u32) -> Result<i32> {
        if partition < self.partitions {
            Ok(partition as i32)
        } else {
            Err(StoreError::Corrupt("partition out of range"))
        }
    }

    fn take_seq(&self, partition: u32) -> Option<u64> {
        let mut blocks = self.blocks[partition as usize].lock().unwrap_or_else(|p| p.into_inner());
        let (next, end) = blocks.first_mut()?;
        let seq = *next;
        *next += 1;
        if *next == *end {
            blocks.remove(0);
        }
        Some(seq)
    }

    /// One statement on the shared connection of some lane.
    fn on<T, F>(&self, f: F) -> impl std::future::Future<Output = Result<T>>
    where
        T: Send + 'static,
        F: AsyncFnOnce(&Conn) -> Result<T> + Send + 'static,
    {
        self.lanes.run(move |lane| async move {
            let c = lane.conn().await?;
            f(&c).await
        })
    }

    /// A write, committed with the other writes of its lane's next group.
    fn write<T, F>(&self, f: F) -> impl std::future::Future<Output = Result<T>>
    where
        T: Send + 'static,
        F: AsyncFnOnce(&Conn) -> Result<T> + Send + 'static,
    {
        self.lanes.run(move |lane| async move { lane.write(f).await })
    }

    /// A meta write: one transaction that first takes the next feed version, then runs `f`,
    /// which answers and names its changes; resolves after the commit.
    fn meta<T, F>(&self, f: F) -> impl std::future::Future<Output = Result<(T, u64)>>
    where
        T: Send + 'static,
        F: AsyncFnOnce(&Conn) -> Result<(T, Vec<Change>)> + Send + 'static,
    {
        self.lanes.run(move |lane| async move {
            let tx = lane.begin().await?;
            let v: i64 = col(&tx.query_one(sql::NEXT_VERSION, &[]).await?, 0)?;
            let (answer, changes) = f(&*tx).await?;
            record_changes(&tx, v, &changes).await?;
            tx.commit().await?;
            Ok((answer, v as u64))
        })
    }

    /// Spends a code or refresh token (see the module's single-use invariant).
    async fn exchange(
        &self,
        partition: u32,
        seq: u64,
        signature: [u8; 32],
        tokens: Vec<(u64, TokenRecord)>,
        live: TokenKind,
    ) -> Result<Spent> {
        let Ok(part) = self.check(partition) else { return Ok(Spent::Missing) };
        let seq = to_i64(seq)?;
        let cols = Columns::of(partition, tokens)?;
        let (statement, spent) = match live {
            TokenKind::Code => (sql::REDEEM, TokenKind::CodeUsed),
            _ => (sql::ROTATE, TokenKind::RefreshUsed),
        };
        self.write(async move |c: &Conn| {
            let sig = signature.to_vec();
            let (live_code, spent_code) = (kind_code(live), kind_code(spent));
            let mut params = cols.params().to_vec();
            params.extend_from_slice(&[&part, &seq, &sig, &live_code, &spent_code]);
            if let Some(row) = c.query_opt(statement, &params).await? {
                let mut rec = record_at(&row, 0)?;
                rec.kind = live;
                return Ok(Spent::Done(Box::new(rec)));
            }
            let Some(found) = c.query_opt(sql::PRESENTED, &[&part, &seq, &sig]).await? else {
                return Ok(Spent::Missing);
            };
            if kind_of(col(&found, 0)?)? != spent {
                return Ok(Spent::Missing);
            }
            // A statement of its own: it sees the tokens of the attempt that won.
            let family: i64 = col(&found, 1)?;
            c.execute(sql::REVOKE_FAMILY, &[&part, &family]).await?;
            Ok(Spent::Again)
        })
        .await
    }
}

/// A login-session cursor: a 4-byte length, the subject, the sid.
fn split_cursor(c: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = c.split_first_chunk::<4>()?;
    let n = u32::from_be_bytes(*len) as usize;
    (rest.len() >= n).then(|| rest.split_at(n))
}

enum Spent {
    Done(Box<TokenRecord>),
    Again,
    Missing,
}

impl Storage for PgStore {
    fn partition_count(&self) -> u32 {
        self.partitions
    }

    async fn next_seq(&self, partition: u32) -> Result<u64> {
        let part = self.check(partition)?;
        if let Some(seq) = self.take_seq(partition) {
            return Ok(seq);
        }
        let size = SEQ_BLOCK as i64;
        let first: i64 =
            self.on(async move |c: &Conn| col(&c.query_one(sql::SEQ_BLOCK, &[&part, &size]).await?, 0)).await?;
        let first = first as u64;
        let mut blocks = self.blocks[partition as usize].lock().unwrap_or_else(|p| p.into_inner());
        blocks.push((first + 1, first + SEQ_BLOCK));
        blocks.sort_unstable();
        Ok(first)
    }

    async fn seq_marks(&self) -> Result<Vec<u64>> {
        Ok(vec![0; self.partitions as usize])
    }

    async fn insert_tokens(&self, partition: u32, records: Vec<(u64, TokenRecord)>) -> Result<()> {
        self.check(partition)?;
        if records.is_empty() {
            return Ok(());
        }
        let cols = Columns::of(partition, records)?;
        self.write(async move |c: &Conn| {
            c.stats().batch(cols.seq.len());
            c.execute(sql::INSERT_TOKENS, &cols.params()).await.map(|_| ())
        })
        .await
    }

    async fn get_token(&self, partition: u32, seq: u64) -> Result<Option<TokenRecord>> {
        let part = self.check(partition)?;
        let seq = to_i64(seq)?;
        self.lanes
            .run(move |lane| async move { lane.lookup(part, seq).await?.map(|r| record_at(&r, 1)).transpose() })
            .await
    }

    async fn get_token_view(&self, partition: u32, seq: u64) -> Result<Option<TokenView>> {
        match self.get_token(partition, seq).await? {
            Some(rec) => Ok(Some(TokenView::new(&encode_token(&rec)?)?)),
            None => Ok(None),
        }
    }

    async fn delete_token(&self, partition: u32, seq: u64) -> Result<bool> {
        let Ok(part) = self.check(partition) else { return Ok(false) };
        let seq = to_i64(seq)?;
        self.write(async move |c: &Conn| Ok(c.execute(sql::DELETE_TOKEN, &[&part, &seq]).await? > 0)).await
    }

    async fn issue_grant(
        &self,
        partition: u32,
        flow_id: &str,
        started: i64,
        tokens: Vec<(u64, TokenRecord)>,
    ) -> Result<bool> {
        let part = self.check(partition)?;
        if tokens.is_empty() {
            return Err(StoreError::Corrupt("a grant without records"));
        }
        let first = to_i64(tokens[0].0)?;
        let cols = Columns::of(partition, tokens)?;
        let flow = flow_id.as_bytes().to_vec();
        self.write(async move |c: &Conn| {
            let mut params = cols.params().to_vec();
            params.extend_from_slice(&[&part, &flow, &started, &first]);
            Ok(c.execute(sql::ISSUE_CODE, &params).await? > 0)
        })
        .await
    }

    async fn redeem_code(
        &self,
        partition: u32,
        seq: u64,
        signature: [u8; 32],
        tokens: Vec<(u64, TokenRecord)>,
    ) -> Result<Redeem> {
        Ok(match self.exchange(partition, seq, signature, tokens, TokenKind::Code).await? {
            Spent::Done(r) => Redeem::Done(r),
            Spent::Again => Redeem::Replayed,
            Spent::Missing => Redeem::Missing,
        })
    }

    async fn rotate_refresh(
        &self,
        partition: u32,
        seq: u64,
        signature: [u8; 32],
        tokens: Vec<(u64, TokenRecord)>,
    ) -> Result<Rotate> {
        Ok(match self.exchange(partition, seq, signature, tokens, TokenKind::Refresh).await? {
            Spent::Done(r) => Rotate::Done(r),
            Spent::Again => Rotate::Reused,
            Spent::Missing => Rotate::Missing,
        })
    }

    async fn revoke_family(&self, partition: u32, family: u64) -> Result<usize> {
        let Ok(part) = self.check(partition) else { return Ok(0) };
        let family = to_i64(family)?;
        self.write(async move |c: &Conn| Ok(c.execute(sql::REVOKE_FAMILY, &[&part, &family]).await? as usize)).await
    }

    async fn flow_used(&self, partition: u32, key: &str) -> Result<bool> {
        let part = self.check(partition)?;
        let key = key.as_bytes().to_vec();
        self.on(async move |c: &Conn| Ok(c.query_opt(sql::FLOW_USED, &[&part, &key]).await?.is_some())).await
    }

    async fn flow_grant(&self, partition: u32, key: &str) -> Result<Option<u64>> {
        let part = self.check(partition)?;
        let key = key.as_bytes().to_vec();
        let row = self.on(async move |c: &Conn| c.query_opt(sql::FLOW_GRANT, &[&part, &key]).await).await?;
        row.map(|r| col::<i64>(&r, 0).map(|s| s.max(0) as u64)).transpose()
    }

    async fn mark_flow(&self, partition: u32, key: &str, started: i64) -> Result<bool> {
        let part = self.check(partition)?;
        let key = key.as_bytes().to_vec();
        self.write(async move |c: &Conn| Ok(c.execute(sql::MARK_FLOW, &[&part, &key, &started]).await? > 0)).await
    }

    async fn put_login_session(&self, s: LoginSession) -> Result<()> {
        self.write(async move |c: &Conn| {
            let params: [&(dyn ToSql + Sync); 5] =
                [&s.subject.as_bytes(), &s.sid.as_bytes(), &s.auth_time, &s.expires_at, &s.idp_session.as_bytes()];
            c.execute(sql::PUT_LOGIN, &params).await.map(|_| ())
        })
        .await
    }

    async fn get_login_session(&self, subject: &str, sid: &str) -> Result<Option<LoginSession>> {
        let (subject, sid) = (subject.to_string(), sid.to_string());
        self.on(async move |c: &Conn| {
            let Some(row) = c.query_opt(sql::GET_LOGIN, &[&subject.as_bytes(), &sid.as_bytes()]).await? else {
                return Ok(None);
            };
            Ok(Some(LoginSession {
                sid,
                subject,
                auth_time: col(&row, 0)?,
                expires_at: col(&row, 1)?,
                idp_session: text(&row, 2)?,
            }))
        })
        .await
    }

    async fn find_login_session(&self, sid: &str) -> Result<Option<LoginSession>> {
        let sid = sid.to_string();
        self.on(async move |c: &Conn| {
            let Some(row) = c.query_opt(sql::FIND_LOGIN, &[&sid.as_bytes()]).await? else { return Ok(None) };
            Ok(Some(LoginSession {
                sid,
                subject: text(&row, 0)?,
                auth_time: col(&row, 1)?,
                expires_at: col(&row, 2)?,
                idp_session: text(&row, 3)?,
            }))
        })
        .await
    }

    async fn delete_login_session(&self, sid: &str) -> Result<bool> {
        let sid = sid.as_bytes().to_vec();
        self.write(async move |c: &Conn| Ok(c.execute(sql::DELETE_LOGIN, &[&sid]).await? > 0)).await
    }

    async fn delete_login_sessions(&self, subject: &str) -> Result<usize> {
        let subject = subject.as_bytes().to_vec();
        self.write(async move |c: &Conn| Ok(c.execute(sql::DELETE_LOGINS, &[&subject]).await? as usize)).await
    }

    async fn put_consent(&self, consent: Consent) -> Result<()> {
        let body = serde_json::to_vec(&consent).map_err(|_| StoreError::Corrupt("consent session"))?;
        let (part, family) = (consent.grant_partition as i32, to_i64(consent.grant_family)?);
        let latest = consent.remembered_for_later();
        self.write(async move |c: &Conn| {
            let k = &consent;
            let params: [&(dyn ToSql + Sync); 7] =
                [&k.subject.as_bytes(), &k.client_id.as_bytes(), &k.flow_id.as_bytes(), &part, &family, &body, &latest];
            c.execute(sql::PUT_CONSENT, &params).await.map(|_| ())
        })
        .await
    }

    async fn latest_consent(&self, subject: &str, client_id: &str) -> Result<Option<Consent>> {
        let (subject, client) = (subject.as_bytes().to_vec(), client_id.as_bytes().to_vec());
        self.on(async move |c: &Conn| {
            let Some(row) = c.query_opt(sql::LATEST_CONSENT, &[&subject, &client]).await? else { return Ok(None) };
            serde_json::from_slice(col(&row, 0)?).map(Some).map_err(|_| StoreError::Corrupt("consent session"))
        })
        .await
    }

    async fn list_consents(&self, subject: &str) -> Result<Vec<Consent>> {
        let subject = subject.as_bytes().to_vec();
        self.on(async move |c: &Conn| {
            let rows = c.query(sql::LIST_CONSENTS, &[&subject]).await?;
            rows.iter()
                .map(|r| serde_json::from_slice(col(r, 0)?).map_err(|_| StoreError::Corrupt("consent session")))
                .collect()
        })
        .await
    }

    async fn revoke_consents(&self, subject: &str, client_id: Option<&str>) -> Result<usize> {
        let (subject, client) = (subject.as_bytes().to_vec(), client_id.map(|c| c.as_bytes().to_vec()));
        self.write(async move |c: &Conn| {
            let row = c.query_one(sql::REVOKE_CONSENTS, &[&subject, &client]).await?;
            Ok(col::<i64>(&row, 0)? as usize)
        })
        .await
    }

    async fn load_clients(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.on(async move |c: &Conn| {
            let rows = c.query(sql::LOAD_CLIENTS, &[]).await?;
            rows.iter().map(|r| Ok((text(r, 0)?, col(r, 1)?))).collect()
        })
        .await
    }

    async fn get_client(&self, id: &str) -> Result<Option<Vec<u8>>> {
        let id = id.as_bytes().to_vec();
        self.on(async move |c: &Conn| c.query_opt(sql::GET_CLIENT, &[&id]).await?.map(|r| col(&r, 0)).transpose()).await
    }

    async fn put_client(&self, id: &str, body: Vec<u8>, mode: PutMode) -> Result<(PutOutcome, u64)> {
        let id = id.to_string();
        self.meta(async move |c: &Conn| {
            let current: Option<Vec<u8>> =
                c.query_opt(sql::CLIENT_FOR_UPDATE, &[&id.as_bytes()]).await?.map(|r| col(&r, 0)).transpose()?;
            let refused = match (&mode, current) {
                (PutMode::Create { .. }, Some(_)) => Some(PutOutcome::Exists),
                (PutMode::Replace { .. }, None) => Some(PutOutcome::Missing),
                (PutMode::Replace { expected }, Some(cur)) if cur != *expected => Some(PutOutcome::Conflict),
                // A create needs no watermarks: a deleted client's epoch outlives it.
                _ => None,
            };
            if let Some(outcome) = refused {
                return Ok((outcome, Vec::new()));
            }
            c.execute(sql::PUT_CLIENT, &[&id.as_bytes(), &body]).await?;
            Ok((PutOutcome::Written, vec![Change::Client(id)]))
        })
        .await
    }

    async fn delete_client(&self, id: &str, _marks: Vec<u64>) -> Result<(bool, u64)> {
        let id = id.to_string();
        self.meta(async move |c: &Conn| {
            if c.execute(sql::DELETE_CLIENT, &[&id.as_bytes()]).await? == 0 {
                return Ok((false, Vec::new()));
            }
            c.execute(sql::BUMP_EPOCH, &[&id.as_bytes()]).await?;
            Ok((true, vec![Change::Watermarks(id.clone()), Change::Client(id)]))
        })
        .await
    }

    async fn set_watermarks(&self, client_id: &str, _marks: Vec<u64>) -> Result<()> {
        let id = client_id.to_string();
        self.meta(async move |c: &Conn| {
            c.execute(sql::BUMP_EPOCH, &[&id.as_bytes()]).await?;
            Ok(((), vec![Change::Watermarks(id)]))
        })
        .await
        .map(|_| ())
    }

    async fn load_watermarks(&self) -> Result<Vec<(String, Vec<u64>)>> {
        // Revocation by client is the epochs' job, enforced in every read.
        Ok(Vec::new())
    }

    async fn get_watermarks(&self, _client_id: &str) -> Result<Option<Vec<u64>>> {
        Ok(None)
    }

    async fn load_keys(&self) -> Result<Vec<KeyRow>> {
        self.on(async move |c: &Conn| {
            let rows = c.query(sql::LOAD_KEYS, &[]).await?;
            rows.iter()
                .map(|r| {
                    Ok(KeyRow {
                        set: text(r, 0)?,
                        kid: text(r, 1)?,
                        created: col::<i64>(r, 2)? as u64,
                        sealed: col(r, 3)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn write_keys(&self, set: &str, write: KeyWrite) -> Result<(bool, u64)> {
        let set = set.to_string();
        self.meta(async move |c: &Conn| {
            let had: bool = col(&c.query_one(sql::SET_HAS_KEYS, &[&set.as_bytes()]).await?, 0)?;
            let (rows, clear) = match &write {
                KeyWrite::Add(rows) => (rows.as_slice(), false),
                KeyWrite::AddIfEmpty(rows) if !had => (rows.as_slice(), false),
                KeyWrite::AddIfEmpty(_) => return Ok((false, Vec::new())),
                KeyWrite::Create(rows) => {
                    for r in rows {
                        let taken: bool =
                            col(&c.query_one(sql::KEY_EXISTS, &[&set.as_bytes(), &r.kid.as_bytes()]).await?, 0)?;
                        if taken {
                            return Ok((false, Vec::new()));
                        }
                    }
                    (rows.as_slice(), false)
                }
                KeyWrite::Replace(rows) => (rows.as_slice(), true),
                KeyWrite::DeleteSet => (&[][..], true),
                KeyWrite::DeleteKey(kid) => {
                    let existed = c.execute(sql::DELETE_KEY, &[&set.as_bytes(), &kid.as_bytes()]).await? > 0;
                    return Ok((existed, vec![Change::Keys(set)]));
                }
            };
            if rows.iter().any(|r| r.set != set) {
                return Err(StoreError::Corrupt("key row of another set"));
            }
            if clear {
                c.execute(sql::DELETE_SET, &[&set.as_bytes()]).await?;
            }
            for r in rows {
                let params: [&(dyn ToSql + Sync); 4] =
                    [&r.set.as_bytes(), &r.kid.as_bytes(), &to_i64(r.created)?, &r.sealed];
                c.execute(sql::PUT_KEY, &params).await?;
            }
            let answer = matches!(write, KeyWrite::AddIfEmpty(_) | KeyWrite::Create(_)) || had;
            Ok((answer, vec![Change::Keys(set)]))
        })
        .await
    }

    async fn changes_since(&self, version: u64) -> Result<Changes> {
        let after = to_i64(version)?;
        self.on(async move |c: &Conn| {
            let rows = c.query(sql::CHANGES, &[&after]).await?;
            let first = rows.first().ok_or(StoreError::Corrupt("the feed counters are missing"))?;
            let (newest, pruned): (i64, i64) = (col(first, 0)?, col(first, 1)?);
            if after > newest || after < pruned {
                return Ok(Changes { version: newest as u64, changes: Vec::new(), resync: true });
            }
            let mut changes = Vec::new();
            for r in &rows {
                if let (Some(kind), Some(name)) = (col::<Option<i16>>(r, 3)?, opt_text(r, 4)?) {
                    changes.push(change_of(kind, name)?);
                }
            }
            Ok(Changes { version: newest as u64, changes, resync: false })
        })
        .await
    }

    async fn recover(&self) -> Result<Recovered> {
        // Every operation is one statement or one transaction: a crash leaves nothing half done.
        Ok(Recovered::default())
    }

    async fn sweep_step(
        &self,
        partition: u32,
        target: SweepTarget,
        after: Option<Vec<u8>>,
        limit: usize,
        rules: &SweepRules,
    ) -> Result<Step> {
        let part = self.check(partition)?;
        let limit = limit.clamp(1, 100_000) as i64;
        let before = rules.before;
        // Bounded so `issued_at + lifespan` cannot overflow in SQL.
        let cap = |l: Option<i64>| l.map(|l| l.clamp(0, 1 << 40));
        let (access, refresh) = (cap(rules.access_lifespan), cap(rules.refresh_lifespan));
        let kept = crate::api::DEVICE_KEPT_AFTER_EXPIRY;
        let flow_before = before.saturating_sub(rules.flow_lifespan);
        let step = move |examined: i64, deleted: i64, next: Option<Vec<u8>>| Step {
            examined: examined as usize,
            deleted: deleted as usize,
            next: if examined < limit { None } else { next },
        };
        match target {
            SweepTarget::Tokens => {
                let from = match after.as_deref().map(<[u8; 8]>::try_from) {
                    Some(Ok(b)) => i64::from_be_bytes(b),
                    _ => -1,
                };
                self.on(async move |c: &Conn| {
                    let r = c
                        .query_one(sql::SWEEP_TOKENS, &[&part, &from, &limit, &before, &access, &refresh, &kept])
                        .await?;
                    let last: Option<i64> = col(&r, 2)?;
                    let done = step(col(&r, 0)?, col(&r, 1)?, last.map(|s| s.to_be_bytes().to_vec()));
                    if done.next.is_none() {
                        // The walk of the partition is over: the markers of families now gone.
                        c.execute(sql::SWEEP_REVOKED, &[&part, &before.saturating_sub(3600)]).await?;
                    }
                    Ok(done)
                })
                .await
            }
            SweepTarget::Flows => {
                self.on(async move |c: &Conn| {
                    let r = c.query_one(sql::SWEEP_FLOWS, &[&part, &after, &limit, &flow_before]).await?;
                    Ok(step(col(&r, 0)?, col(&r, 1)?, col(&r, 2)?))
                })
                .await
            }
            SweepTarget::LoginSessions => {
                // Sessions are not placed in partitions here: partition 0's walk covers them.
                if partition != 0 {
                    return Ok(Step::default());
                }
                // The cursor is the last (subject, sid): the subject's length, the subject, the sid.
                let (subject, sid) = match after.as_deref().and_then(split_cursor) {
                    Some((s, i)) => (Some(s.to_vec()), Some(i.to_vec())),
                    None => (None, None),
                };
                self.on(async move |c: &Conn| {
                    let r = c.query_one(sql::SWEEP_LOGINS, &[&subject, &sid, &limit, &before]).await?;
                    let last = match (col::<Option<Vec<u8>>>(&r, 2)?, col::<Option<Vec<u8>>>(&r, 3)?) {
                        (Some(s), Some(i)) => Some([&(s.len() as u32).to_be_bytes()[..], &s, &i].concat()),
                        _ => None,
                    };
                    Ok(step(col(&r, 0)?, col(&r, 1)?, last))
                })
                .await
            }
        }
    }

    async fn janitor_lease(&self, holder: &str, secs: i64) -> Result<bool> {
        let holder = holder.as_bytes().to_vec();
        self.on(async move |c: &Conn| Ok(c.query_opt(sql::LEASE, &[&"janitor", &holder, &secs]).await?.is_some())).await
    }

    async fn ping(&self) -> Result<()> {
        self.on(async move |c: &Conn| c.query_one(sql::PING, &[]).await.map(|_| ())).await
    }
}
