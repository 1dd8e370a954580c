//! The backend the server runs on, chosen at start-up from the DSN: a closed enum over every
//! implementation of [`Storage`], so calls are static dispatch (no boxed futures on the hot path).
//!
//! Invariant: this file only forwards; each backend's behaviour is in its own module.

use crate::api::*;
use crate::pg::PgStore;
use crate::records::{TokenRecord, TokenView};
use crate::store::Store;

/// A storage backend.
#[derive(Debug)]
pub enum Backend {
    /// The embedded redb store (`DSN=memory` or a data directory).
    Embedded(Store),
    /// PostgreSQL (`DSN=postgres://…`), shared by several nodes.
    Postgres(PgStore),
}

impl Backend {
    /// The embedded store, for what only it has (commit counters, its data directory).
    pub fn embedded(&self) -> Option<&Store> {
        match self {
            Backend::Embedded(s) => Some(s),
            Backend::Postgres(_) => None,
        }
    }
}

impl Backend {
    /// The PostgreSQL backend, for what only it has (its statement counters).
    pub fn postgres(&self) -> Option<&PgStore> {
        match self {
            Backend::Postgres(s) => Some(s),
            Backend::Embedded(_) => None,
        }
    }
}

impl From<PgStore> for Backend {
    fn from(s: PgStore) -> Self {
        Backend::Postgres(s)
    }
}

impl From<Store> for Backend {
    fn from(s: Store) -> Self {
        Backend::Embedded(s)
    }
}

/// `each!(self, s => expr)`: `expr` with `s` bound to the backend inside.
macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Backend::Embedded($s) => $e,
            Backend::Postgres($s) => $e,
        }
    };
}

impl Storage for Backend {
    fn partition_count(&self) -> u32 {
        each!(self, s => s.partition_count())
    }
    async fn next_seq(&self, partition: u32) -> Result<u64> {
        each!(self, s => s.next_seq(partition).await)
    }
    async fn seq_marks(&self) -> Result<Vec<u64>> {
        each!(self, s => s.seq_marks().await)
    }
    async fn insert_tokens(&self, partition: u32, records: Vec<(u64, TokenRecord)>) -> Result<()> {
        each!(self, s => s.insert_tokens(partition, records).await)
    }
    async fn get_token(&self, partition: u32, seq: u64) -> Result<Option<TokenRecord>> {
        each!(self, s => s.get_token(partition, seq).await)
    }
    async fn get_token_view(&self, partition: u32, seq: u64) -> Result<Option<TokenView>> {
        each!(self, s => s.get_token_view(partition, seq).await)
    }
    async fn delete_token(&self, partition: u32, seq: u64) -> Result<bool> {
        each!(self, s => s.delete_token(partition, seq).await)
    }
    async fn issue_grant(
        &self,
        partition: u32,
        flow_id: &str,
        started: i64,
        tokens: Vec<(u64, TokenRecord)>,
    ) -> Result<bool> {
        each!(self, s => s.issue_grant(partition, flow_id, started, tokens).await)
    }
    async fn redeem_code(
        &self,
        partition: u32,
        seq: u64,
        signature: [u8; 32],
        tokens: Vec<(u64, TokenRecord)>,
    ) -> Result<Redeem> {
        each!(self, s => s.redeem_code(partition, seq, signature, tokens).await)
    }
    async fn rotate_refresh(
        &self,
        partition: u32,
        seq: u64,
        signature: [u8; 32],
        tokens: Vec<(u64, TokenRecord)>,
    ) -> Result<Rotate> {
        each!(self, s => s.rotate_refresh(partition, seq, signature, tokens).await)
    }
    async fn revoke_family(&self, partition: u32, family: u64) -> Result<usize> {
        each!(self, s => s.revoke_family(partition, family).await)
    }
    async fn flow_used(&self, partition: u32, key: &str) -> Result<bool> {
        each!(self, s => s.flow_used(partition, key).await)
    }
    async fn flow_grant(&self, partition: u32, key: &str) -> Result<Option<u64>> {
        each!(self, s => s.flow_grant(partition, key).await)
    }
    async fn mark_flow(&self, partition: u32, key: &str, started: i64) -> Result<bool> {
        each!(self, s => s.mark_flow(partition, key, started).await)
    }
    async fn put_login_session(&self, session: LoginSession) -> Result<()> {
        each!(self, s => s.put_login_session(session).await)
    }
    async fn get_login_session(&self, subject: &str, sid: &str) -> Result<Option<LoginSession>> {
        each!(self, s => s.get_login_session(subject, sid).await)
    }
    async fn find_login_session(&self, sid: &str) -> Result<Option<LoginSession>> {
        each!(self, s => s.find_login_session(sid).await)
    }
    async fn delete_login_session(&self, sid: &str) -> Result<bool> {
        each!(self, s => s.delete_login_session(sid).await)
    }
    async fn delete_login_sessions(&self, subject: &str) -> Result<usize> {
        each!(self, s => s.delete_login_sessions(subject).await)
    }
    async fn put_consent(&self, consent: Consent) -> Result<()> {
        each!(self, s => s.put_consent(consent).await)
    }
    async fn latest_consent(&self, subject: &str, client_id: &str) -> Result<Option<Consent>> {
        each!(self, s => s.latest_consent(subject, client_id).await)
    }
    async fn list_consents(&self, subject: &str) -> Result<Vec<Consent>> {
        each!(self, s => s.list_consents(subject).await)
    }
    async fn revoke_consents(&self, subject: &str, client_id: Option<&str>) -> Result<usize> {
        each!(self, s => s.revoke_consents(subject, client_id).await)
    }
    async fn load_clients(&self) -> Result<Vec<(String, Vec<u8>)>> {
        each!(self, s => s.load_clients().await)
    }
    async fn get_client(&self, id: &str) -> Result<Option<Vec<u8>>> {
        each!(self, s => s.get_client(id).await)
    }
    async fn put_client(&self, id: &str, body: Vec<u8>, mode: PutMode) -> Result<(PutOutcome, u64)> {
        each!(self, s => s.put_client(id, body, mode).await)
    }
    async fn delete_client(&self, id: &str, marks: Vec<u64>) -> Result<(bool, u64)> {
        each!(self, s => s.delete_client(id, marks).await)
    }
    async fn set_watermarks(&self, client_id: &str, marks: Vec<u64>) -> Result<()> {
        each!(self, s => s.set_watermarks(client_id, marks).await)
    }
    async fn load_watermarks(&self) -> Result<Vec<(String, Vec<u64>)>> {
        each!(self, s => s.load_watermarks().await)
    }
    async fn get_watermarks(&self, client_id: &str) -> Result<Option<Vec<u64>>> {
        each!(self, s => s.get_watermarks(client_id).await)
    }
    async fn load_keys(&self) -> Result<Vec<KeyRow>> {
        each!(self, s => s.load_keys().await)
    }
    async fn write_keys(&self, set: &str, write: KeyWrite) -> Result<(bool, u64)> {
        each!(self, s => s.write_keys(set, write).await)
    }
    async fn changes_since(&self, version: u64) -> Result<Changes> {
        each!(self, s => s.changes_since(version).await)
    }
    async fn recover(&self) -> Result<Recovered> {
        each!(self, s => s.recover().await)
    }
    async fn sweep_step(
        &self,
        partition: u32,
        target: SweepTarget,
        after: Option<Vec<u8>>,
        limit: usize,
        rules: &SweepRules,
    ) -> Result<Step> {
        each!(self, s => s.sweep_step(partition, target, after, limit, rules).await)
    }
    async fn ping(&self) -> Result<()> {
        each!(self, s => s.ping().await)
    }
    async fn janitor_lease(&self, holder: &str, secs: i64) -> Result<bool> {
        each!(self, s => s.janitor_lease(holder, secs).await)
    }
}
