//! The backend-neutral storage interface: everything the server persists, as domain operations
//! on typed records, async, one call one transaction.
//!
//! Invariants every backend keeps:
//! - A write resolves `Ok` only once it is durable; an error means nothing of it is acknowledged
//!   (it may or may not have happened, and repeating it is safe).
//! - Token sequence numbers are the backend's: [`Storage::next_seq`] never hands out a number
//!   twice (not after deletes, not across restarts or nodes); the embedded store's increase per
//!   partition and [`Storage::seq_marks`] is above every number handed out so far (its
//!   watermarks); PostgreSQL's come in blocks per node, revokes a client's tokens by epoch in
//!   every read, and answers zeros as marks.
//! - Partitions are the backend's placement: the server puts a grant's tokens in one partition
//!   (the one in its token handles) and names it in every call about them; sessions and consents
//!   are placed by the backend from their subject or id.
//! - Every change to clients, watermarks and keys is in the change feed
//!   ([`Storage::changes_since`]) in commit order, so a process learns of writes made by another
//!   process sharing the same database.
//!
//! The embedded store ([`crate::Store`]) implements it; the server holds a [`crate::Backend`].

use crate::records::{TokenRecord, TokenView};
use crate::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::future::Future;

pub type Result<T> = std::result::Result<T, StoreError>;

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

/// One stored JSON Web Key: its set, id, creation order and the sealed key (the store never
/// sees key material in the clear).
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
    /// Adds keys only if none of their ids is in the set (`POST /admin/keys/{set}` never
    /// replaces a key: tokens signed under it would stop verifying).
    Create(Vec<KeyRow>),
    /// Replaces the whole set with these keys.
    Replace(Vec<KeyRow>),
    DeleteSet,
    DeleteKey(String),
}

/// A remembered login (the browser's session cookie names `sid` and `subject`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginSession {
    /// The session id (stored in the row's key, not its value).
    #[serde(skip)]
    pub sid: String,
    pub subject: String,
    pub auth_time: i64,
    pub expires_at: i64,
    /// The identity provider's own session (the login app's `identity_provider_session_id`):
    /// revoked there when this session ends. Empty for none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub idp_session: String,
}

/// Where the tokens of a grant live: revoking a consent revokes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantRef {
    pub partition: u32,
    pub family: u64,
}

/// A consent decision, as stored and as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Consent {
    pub client_id: String,
    pub subject: String,
    pub flow_id: String,
    pub login_session_id: String,
    pub requested_scope: Vec<String>,
    pub requested_audience: Vec<String>,
    pub grant_scope: Vec<String>,
    pub grant_audience: Vec<String>,
    pub remember: bool,
    pub remember_for: i64,
    pub handled_at: i64,
    pub context: Value,
    pub access_token: Map<String, Value>,
    pub id_token: Map<String, Value>,
    /// Where the tokens of this consent live (see [`Consent::grant`]).
    pub grant_partition: u32,
    pub grant_family: u64,
    /// Given in a flow that skipped the consent app (a remembered consent, or the client's
    /// `skip_consent`): listed, but never the remembered consent of later flows, so re-accepting
    /// a skipped consent cannot prolong the one remembered (as Hydra).
    #[serde(default)]
    pub skipped: bool,
}

impl Consent {
    /// Whether later flows of the pair may be skipped by this decision (while it [`holds`]).
    ///
    /// [`holds`]: Consent::holds
    pub fn remembered_for_later(&self) -> bool {
        self.remember && !self.skipped
    }

    pub fn grant(&self) -> GrantRef {
        GrantRef { partition: self.grant_partition, family: self.grant_family }
    }

    /// Whether this decision is remembered and its `remember_for` has not run out at `now`.
    pub fn holds(&self, now: i64) -> bool {
        self.remember && (self.remember_for == 0 || now < self.handled_at.saturating_add(self.remember_for))
    }
}

/// One change in the feed of client, watermark and key writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A client was created, replaced or deleted.
    Client(String),
    /// A client's token watermarks rose.
    Watermarks(String),
    /// A key set changed.
    Keys(String),
}

/// What [`Storage::changes_since`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The version the answer is complete up to: pass it to the next call. Every write with a
    /// version up to this one is visible to reads started after this answer.
    pub version: u64,
    /// The changes after the asked version, in commit order (the same item may repeat).
    pub changes: Vec<Change>,
    /// The feed no longer holds every change after the asked version: reload everything.
    pub resync: bool,
}

/// What the janitor deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepTarget {
    /// Expired tokens, codes and spent markers, and tokens below their client's watermark.
    Tokens,
    /// Single-use markers of flows whose challenges can no longer be presented.
    Flows,
    /// Expired login sessions.
    LoginSessions,
}

/// How long the janitor keeps a device authorization after it expired, seconds: a device that
/// polls late is told `expired_token` (RFC 8628 §3.5), which says "start again", rather than
/// `invalid_grant` for a record that is gone. Devices stop polling at the expiry they were
/// given, so an hour covers slow clocks and retries. An unexchanged code is kept as long: a
/// device authorization the user approved is a code, and its device may poll late too (a
/// browser's code exchanged late is refused as expired rather than as unknown).
pub const DEVICE_KEPT_AFTER_EXPIRY: i64 = 3600;

/// When rows are dead, as data (a SQL backend turns it into a `WHERE` clause).
#[derive(Debug, Clone, Default)]
pub struct SweepRules {
    /// Rows that died at or after this time (unix seconds) are kept.
    pub before: i64,
    /// Access tokens end this long after issue, if sooner than their expiry.
    pub access_lifespan: Option<i64>,
    /// Refresh tokens (and their spent markers) likewise.
    pub refresh_lifespan: Option<i64>,
    /// How long a flow's challenges stay valid, seconds.
    pub flow_lifespan: i64,
    /// Per client, one watermark per partition: a token below its partition's mark is dead.
    pub watermarks: HashMap<String, Vec<u64>>,
}

impl SweepRules {
    /// When a token's record may go: its expiry, or sooner by these lifespans; a device
    /// authorization or an unexchanged code [`DEVICE_KEPT_AFTER_EXPIRY`] later.
    pub fn token_end(&self, rec_kind: crate::TokenKind, issued_at: i64, expires_at: i64) -> i64 {
        use crate::TokenKind as K;
        let cap = match rec_kind {
            K::Access => self.access_lifespan,
            K::Refresh | K::RefreshUsed => self.refresh_lifespan,
            K::Device | K::Code => return expires_at.saturating_add(DEVICE_KEPT_AFTER_EXPIRY),
            K::CodeUsed => None,
        };
        cap.map_or(expires_at, |life| expires_at.min(issued_at.saturating_add(life)))
    }

    /// Whether the token `seq` of `partition` is dead.
    pub fn token_dead(&self, partition: u32, seq: u64, rec: &TokenRecord) -> bool {
        let mark = self.watermarks.get(&rec.client_id).and_then(|m| m.get(partition as usize));
        mark.is_some_and(|m| seq < *m) || self.token_end(rec.kind, rec.issued_at, rec.expires_at) <= self.before
    }

    /// Whether a flow that started at `started` can no longer be presented.
    pub fn flow_dead(&self, started: i64) -> bool {
        started.saturating_add(self.flow_lifespan) < self.before
    }
}

/// What one step of a janitor walk did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    pub examined: usize,
    pub deleted: usize,
    /// Where the next step starts (opaque to the caller); `None` when the walk is done.
    pub next: Option<Vec<u8>>,
}

/// What [`Storage::recover`] finished.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Grants whose consent revocation a crash had cut short, now revoked.
    pub revocations: usize,
    /// Rows an earlier release did not write, written now (login sessions indexed by id).
    pub upgraded: usize,
}

/// The partition that owns everything keyed by `key` (a flow id, a subject, a session id):
/// FNV-1a (64-bit) of the key modulo the partition count, so it is fixed by the key alone. Part
/// of the data-directory format: rows already stored are found only under this placement.
pub fn partition_of(partitions: u32, key: &str) -> u32 {
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (h % u64::from(partitions.max(1))) as u32
}

/// Everything the server persists. Each method is one transaction.
pub trait Storage: Send + Sync {
    // ---- Shape and identifiers ---------------------------------------------------------------

    /// How many token partitions there are (a power of two, fixed for the database's life).
    fn partition_count(&self) -> u32;
    /// The next token sequence number of a partition.
    fn next_seq(&self, partition: u32) -> impl Future<Output = Result<u64>>;
    /// Per partition, a number above every sequence number handed out so far: the watermarks
    /// that revoke every token of a client issued until now.
    fn seq_marks(&self) -> impl Future<Output = Result<Vec<u64>>>;

    // ---- Tokens ------------------------------------------------------------------------------

    /// Stores tokens of one partition, all or none.
    fn insert_tokens(&self, partition: u32, records: Vec<(u64, TokenRecord)>) -> impl Future<Output = Result<()>>;
    /// Stores one token.
    fn insert_token(&self, partition: u32, seq: u64, record: &TokenRecord) -> impl Future<Output = Result<()>> {
        self.insert_tokens(partition, vec![(seq, record.clone())])
    }
    fn get_token(&self, partition: u32, seq: u64) -> impl Future<Output = Result<Option<TokenRecord>>>;
    /// A token read in place (validated, not deserialized): the read path of introspection.
    fn get_token_view(&self, partition: u32, seq: u64) -> impl Future<Output = Result<Option<TokenView>>>;
    /// Deletes one token; resolves to whether it existed.
    fn delete_token(&self, partition: u32, seq: u64) -> impl Future<Output = Result<bool>>;

    // ---- Grants (authorization code, refresh): every token of a grant in one partition -------

    /// Stores the first records of a completed flow's grant unless that flow already produced
    /// one (resolves to `false`: the consent verifier was used before), all in one transaction:
    /// `tokens[0]` is the code (or, without a code, the grant's spent anchor) and names the grant;
    /// the rest (an access token of the implicit or hybrid flow) join its family. `flow_started`
    /// (unix seconds) lets the janitor tell when the flow can no longer be presented.
    /// A number that holds a record already is written only when that record is a device
    /// authorization this code approves ([`TokenRecord::approved_as`]) and its client has not
    /// revoked it (PostgreSQL: its epoch is current; the embedded store's watermarks are by
    /// number, so the code stays below them); otherwise nothing is stored, the flow included,
    /// and it resolves to `false`. So an approval racing a revocation never revives the record.
    fn issue_grant(
        &self,
        partition: u32,
        flow_id: &str,
        flow_started: i64,
        tokens: Vec<(u64, TokenRecord)>,
    ) -> impl Future<Output = Result<bool>>;
    /// [`Storage::issue_grant`] with a code alone.
    fn issue_code(
        &self,
        partition: u32,
        flow_id: &str,
        flow_started: i64,
        seq: u64,
        code: TokenRecord,
    ) -> impl Future<Output = Result<bool>> {
        self.issue_grant(partition, flow_id, flow_started, vec![(seq, code)])
    }
    /// Spends a code and stores the tokens it buys, or revokes the grant on a replay.
    fn redeem_code(
        &self,
        partition: u32,
        seq: u64,
        signature: [u8; 32],
        tokens: Vec<(u64, TokenRecord)>,
    ) -> impl Future<Output = Result<Redeem>>;
    /// Spends a refresh token and stores its successors (revoking the grant's earlier access
    /// tokens), or revokes the grant on a reuse. The spent marker holds at least what
    /// [`TokenRecord::spent_as`] keeps; its other fields are the backend's to keep or drop.
    fn rotate_refresh(
        &self,
        partition: u32,
        seq: u64,
        signature: [u8; 32],
        tokens: Vec<(u64, TokenRecord)>,
    ) -> impl Future<Output = Result<Rotate>>;
    /// Deletes every live token of a grant; resolves to how many.
    fn revoke_family(&self, partition: u32, family: u64) -> impl Future<Output = Result<usize>>;
    /// Whether a flow (or a step marker written by [`Storage::mark_flow`]) was used.
    fn flow_used(&self, partition: u32, key: &str) -> impl Future<Output = Result<bool>>;
    /// The sequence number of the first record of the grant that [`Storage::issue_grant`] stored
    /// under flow key `key` (0 for a step marker of [`Storage::mark_flow`]); `None` when the key
    /// was never used. A device authorization is found by its user code this way.
    fn flow_grant(&self, partition: u32, key: &str) -> impl Future<Output = Result<Option<u64>>>;
    /// Records that a step of a flow was handled (a verifier used) unless it was already:
    /// resolves to `false` then. Swept with the flow.
    fn mark_flow(&self, partition: u32, key: &str, flow_started: i64) -> impl Future<Output = Result<bool>>;

    // ---- Login sessions ----------------------------------------------------------------------

    /// Stores a remembered login, findable by subject and by id.
    fn put_login_session(&self, session: LoginSession) -> impl Future<Output = Result<()>>;
    fn get_login_session(&self, subject: &str, sid: &str) -> impl Future<Output = Result<Option<LoginSession>>>;
    /// A login session found by its id alone (logout by `id_token_hint`, `DELETE …?sid=`),
    /// expired or not.
    fn find_login_session(&self, sid: &str) -> impl Future<Output = Result<Option<LoginSession>>>;
    /// Ends one login session found by its id alone; resolves to whether it existed.
    fn delete_login_session(&self, sid: &str) -> impl Future<Output = Result<bool>>;
    /// Ends every login session of a subject; resolves to how many.
    fn delete_login_sessions(&self, subject: &str) -> impl Future<Output = Result<usize>>;

    // ---- Consent sessions --------------------------------------------------------------------

    /// Stores a consent decision; a remembered one also becomes the pair's latest.
    fn put_consent(&self, consent: Consent) -> impl Future<Output = Result<()>>;
    /// The latest remembered consent of a subject for a client.
    fn latest_consent(&self, subject: &str, client_id: &str) -> impl Future<Output = Result<Option<Consent>>>;
    /// Every consent decision of a subject, by client and flow.
    fn list_consents(&self, subject: &str) -> impl Future<Output = Result<Vec<Consent>>>;
    /// Forgets the consents of a subject (for one client, or all) and revokes their grants' tokens,
    /// all or nothing across a crash (what a crash cuts short, [`Storage::recover`] finishes);
    /// resolves to how many grants were revoked.
    fn revoke_consents(&self, subject: &str, client_id: Option<&str>) -> impl Future<Output = Result<usize>>;

    // ---- Clients and watermarks --------------------------------------------------------------

    /// Every client, as stored bytes (the client's JSON storage form, the server's).
    fn load_clients(&self) -> impl Future<Output = Result<Vec<(String, Vec<u8>)>>>;
    fn get_client(&self, id: &str) -> impl Future<Output = Result<Option<Vec<u8>>>>;
    /// Creates or replaces a client. Resolves to the outcome and its version in the change feed
    /// (increasing in commit order), so callers apply concurrent writes in disk order.
    fn put_client(&self, id: &str, body: Vec<u8>, mode: PutMode) -> impl Future<Output = Result<(PutOutcome, u64)>>;
    /// Deletes a client and raises its watermarks to `marks` in the same transaction.
    fn delete_client(&self, id: &str, marks: Vec<u64>) -> impl Future<Output = Result<(bool, u64)>>;
    /// Revokes every token of a client issued until now: the embedded store raises its
    /// watermarks (element-wise maximum; they never fall), PostgreSQL its epoch.
    fn set_watermarks(&self, client_id: &str, marks: Vec<u64>) -> impl Future<Output = Result<()>>;
    fn load_watermarks(&self) -> impl Future<Output = Result<Vec<(String, Vec<u64>)>>>;
    fn get_watermarks(&self, client_id: &str) -> impl Future<Output = Result<Option<Vec<u64>>>>;

    // ---- JSON Web Keys -----------------------------------------------------------------------

    fn load_keys(&self) -> impl Future<Output = Result<Vec<KeyRow>>>;
    /// Resolves to whether anything was there before (delete: the set or key existed;
    /// `AddIfEmpty`: the set was empty and the keys were written; `Create`: the keys were written,
    /// false when one of their ids was taken and nothing was) and the change's version.
    fn write_keys(&self, set: &str, write: KeyWrite) -> impl Future<Output = Result<(bool, u64)>>;

    // ---- Change feed, recovery, janitor, health ------------------------------------------------

    /// The client, watermark and key changes after `version` (0: from the start).
    fn changes_since(&self, version: u64) -> impl Future<Output = Result<Changes>>;
    /// Finishes what a crash or an earlier release left undone. Run at start-up, before serving.
    fn recover(&self) -> impl Future<Output = Result<Recovered>>;
    /// One bounded step of a janitor walk over `target` in `partition`, starting at `after` (a
    /// previous step's `next`).
    fn sweep_step(
        &self,
        partition: u32,
        target: SweepTarget,
        after: Option<Vec<u8>>,
        limit: usize,
        rules: &SweepRules,
    ) -> impl Future<Output = Result<Step>>;
    /// Whether the store answers and takes writes (readiness).
    fn ping(&self) -> impl Future<Output = Result<()>>;
    /// Takes or renews the janitor's lease for `holder` for `secs` seconds (the backend's clock)
    /// unless another holder's lease has not run out; resolves to whether `holder` holds it.
    /// With several processes on one database only the holder's background janitor runs; the
    /// embedded store has one process and always answers `true`.
    fn janitor_lease(&self, holder: &str, secs: i64) -> impl Future<Output = Result<bool>>;
}
