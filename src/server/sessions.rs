//! Remembered login sessions and consent sessions, stored in the partition of their subject,
//! and the admin API over them (`/admin/oauth2/auth/sessions/{login,consent}`).
//!
//! Invariants: the session cookie is sealed (it names the session and subject, the store says
//! whether it still holds), so a forged or foreign cookie is simply no session; revoking a
//! consent session revokes the tokens of its grant in the same call, after both are durable.

use crate::http::Request;
use crate::oauth2::flow::{self, Purpose};
use crate::oauth2::page_token;
use crate::server::respond::Response;
use crate::server::state::{unix_now, Worker};
use hydra_storage::{DocStore, GrantStore, Table, TokenStore};
use ring::rand::SystemRandom;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// How long a remembered login lasts when the login app gives no `remember_for` (Hydra's
/// `ttl.authentication_session` default, 30 days).
const DEFAULT_SESSION_SECS: i64 = 30 * 24 * 3600;

fn key(parts: &[&str]) -> Vec<u8> {
    parts.join("\0").into_bytes()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CookieBody {
    sid: String,
    sub: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginSession {
    pub subject: String,
    pub auth_time: i64,
    pub expires_at: i64,
}

pub fn cookie_name(w: &Worker) -> &'static str {
    if w.config().dev {
        "ory_hydra_session_dev"
    } else {
        "ory_hydra_session"
    }
}

/// The browser's remembered login session, if it still holds.
pub fn current(w: &Worker, req: &Request) -> Option<(String, LoginSession)> {
    let raw = crate::server::cookies::cookie_value(req, cookie_name(w))?;
    let c: CookieBody = flow::open_json(&w.shared.flow_keys, Purpose::SessionCookie, raw).ok()?;
    let bytes =
        w.shared.store.doc_get(w.partition_for(&c.sub), Table::LoginSessions, &key(&[&c.sub, &c.sid])).ok()??;
    let s: LoginSession = serde_json::from_slice(&bytes).ok()?;
    (s.subject == c.sub && unix_now() < s.expires_at).then_some((c.sid, s))
}

/// The row that finds a login session by its id alone ([`Table::SessionIds`], in the partition
/// of the id): `DELETE …/sessions/login?sid=` reads one row instead of scanning every partition.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionId {
    subject: String,
    /// For the janitor, which sweeps the row with its session.
    expires_at: i64,
}

/// Stores a remembered login durably; returns the `Set-Cookie` value.
pub async fn remember_login(
    w: &Worker,
    sid: &str,
    subject: &str,
    auth_time: i64,
    remember_for: i64,
) -> Result<String, ()> {
    let life = if remember_for > 0 { remember_for.min(180 * 24 * 3600) } else { DEFAULT_SESSION_SECS };
    let s = LoginSession { subject: subject.to_string(), auth_time, expires_at: unix_now() + life };
    let value = serde_json::to_vec(&s).map_err(|_| ())?;
    let index =
        serde_json::to_vec(&SessionId { subject: subject.to_string(), expires_at: s.expires_at }).map_err(|_| ())?;
    let store = &w.shared.store;
    // The index first: after a crash in between it names a session that does not exist (and
    // expires with it), never the other way round, so every session can be found by its id.
    store
        .doc_put(w.partition_for(sid), Table::SessionIds, vec![(sid.as_bytes().to_vec(), index)])
        .await
        .map_err(|_| ())?;
    store
        .doc_put(w.partition_for(subject), Table::LoginSessions, vec![(key(&[subject, sid]), value)])
        .await
        .map_err(|_| ())?;
    let body = CookieBody { sid: sid.to_string(), sub: subject.to_string() };
    let sealed =
        flow::seal_json(&w.shared.flow_keys, Purpose::SessionCookie, &body, &SystemRandom::new()).map_err(|_| ())?;
    Ok(crate::server::cookies::set_cookie(w.config().dev, cookie_name(w), &sealed, life))
}

/// A consent decision as stored (and listed by the admin API).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsentSession {
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
    /// Where the tokens of this consent live, to revoke them with it.
    pub grant_partition: u32,
    pub grant_family: u64,
}

impl ConsentSession {
    fn holds(&self, now: i64) -> bool {
        self.remember && (self.remember_for == 0 || now < self.handled_at + self.remember_for)
    }

    fn to_json(&self, client: Value) -> Value {
        json!({
            "consent_request": {
                "challenge": self.flow_id,
                "client": client,
                "consent_request_id": self.flow_id,
                "login_session_id": self.login_session_id,
                "requested_access_token_audience": self.requested_audience,
                "requested_scope": self.requested_scope,
                "subject": self.subject,
            },
            "consent_request_id": self.flow_id,
            "context": self.context,
            "grant_access_token_audience": self.grant_audience,
            "grant_scope": self.grant_scope,
            "handled_at": crate::dates::rfc3339(self.handled_at),
            "remember": self.remember,
            "remember_for": self.remember_for,
            "session": {"access_token": self.access_token, "id_token": self.id_token},
        })
    }
}

/// Key of the latest remembered consent of a subject for a client: the per-flow prefix itself
/// (flow ids are never empty), so deleting that prefix removes it too, and deciding whether to
/// skip consent is one read however many flows the pair has had.
fn latest_key(subject: &str, client_id: &str) -> Vec<u8> {
    key(&[subject, client_id, ""])
}

/// Stores a consent decision (one row per flow, for listing and revocation) and, when it is
/// remembered, as the pair's latest remembered consent; one commit.
pub async fn store_consent(w: &Worker, c: &ConsentSession) -> Result<(), ()> {
    let value = serde_json::to_vec(c).map_err(|_| ())?;
    let mut rows = vec![(key(&[&c.subject, &c.client_id, &c.flow_id]), value.clone())];
    if c.remember {
        rows.push((latest_key(&c.subject, &c.client_id), value));
    }
    w.shared.store.doc_put(w.partition_for(&c.subject), Table::ConsentSessions, rows).await.map_err(|_| ())
}

/// Whether the latest remembered consent of this subject for this client still holds and covers
/// every requested scope and audience.
pub fn remembered_consent(w: &Worker, subject: &str, client_id: &str, scope: &[String], audience: &[String]) -> bool {
    let p = w.partition_for(subject);
    let Ok(Some(v)) = w.shared.store.doc_get(p, Table::ConsentSessions, &latest_key(subject, client_id)) else {
        return false;
    };
    serde_json::from_slice::<ConsentSession>(&v).is_ok_and(|c| {
        c.holds(unix_now())
            && scope.iter().all(|s| c.grant_scope.contains(s))
            && audience.iter().all(|a| c.grant_audience.contains(a))
    })
}

fn query(req: &Request) -> crate::http::form::Form {
    crate::http::form::decode_multi(req.head.query.as_deref().unwrap_or("").as_bytes()).unwrap_or_default()
}

/// `GET /admin/oauth2/auth/sessions/consent?subject=…[&login_session_id=…]`.
pub fn list_consent(w: &Worker, req: &Request) -> Response {
    let q = query(req);
    let Some(subject) = q.get("subject").filter(|s| !s.is_empty()) else {
        return Response::generic_error(400, "invalid_request", "The subject query parameter is required.");
    };
    let sid = q.get("login_session_id").filter(|s| !s.is_empty());
    let page_size: usize = match q.get("page_size").map(str::parse::<usize>) {
        None => 250,
        Some(Ok(n)) if (1..=500).contains(&n) => n,
        _ => return Response::generic_error(400, "invalid_request", "page_size must be between 1 and 500."),
    };
    // The page token seals the number of sessions already listed, bound to these filters.
    let mut bound = vec![("subject", subject)];
    if let Some(s) = sid {
        bound.push(("login_session_id", s));
    }
    let keys = &w.shared.flow_keys;
    let offset: usize = match q.get("page_token").filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => match page_token::open(keys, "consent_sessions", &bound, t).and_then(|c| c.parse().ok()) {
            Some(n) => n,
            None => {
                return Response::generic_error(
                    400,
                    "invalid_request",
                    "The page_token is invalid, or was issued for another listing.",
                )
            }
        },
    };
    let prefix = [subject.as_bytes(), &[0]].concat();
    let rows = match w.shared.store.doc_scan(w.partition_for(subject), Table::ConsentSessions, &prefix) {
        Ok(r) => r,
        Err(e) => return Response::oauth_error(&e.into()),
    };
    let snapshot = w.shared.clients.load();
    let now = unix_now();
    let all: Vec<Value> = rows
        .iter()
        // The latest-consent rows repeat a flow's row.
        .filter(|(k, _)| !k.ends_with(&[0]))
        .filter_map(|(_, v)| serde_json::from_slice::<ConsentSession>(v).ok())
        .filter(|c| c.holds(now) && sid.is_none_or(|s| c.login_session_id == s))
        .map(|c| {
            let client = snapshot.clients.get(&c.client_id).map(|e| e.stored.client.to_json(None)).unwrap_or(json!({}));
            c.to_json(client)
        })
        .collect();
    let list: Vec<Value> = all.iter().skip(offset).take(page_size).cloned().collect();
    let mut resp = Response::json_value(200, &Value::Array(list));
    if offset + page_size < all.len() {
        let mut filters = String::new();
        for (k, v) in &bound {
            filters.push_str(k);
            filters.push('=');
            crate::http::form::form_escape(v, &mut filters);
            filters.push('&');
        }
        let next = (offset + page_size).to_string();
        let Some(token) = page_token::seal(keys, "consent_sessions", &bound, &next, &SystemRandom::new()) else {
            return Response::generic_error(500, "server_error", "The page token could not be sealed.");
        };
        resp = resp.header(
            "Link",
            format!(
                "</admin/oauth2/auth/sessions/consent?{filters}page_size={page_size}&page_token={token}>; rel=\"next\""
            ),
        );
    }
    resp.header("X-Total-Count", all.len().to_string())
}

/// `DELETE /admin/oauth2/auth/sessions/consent?subject=…&client=…` or `…&all=true`: forgets the
/// consents and revokes the tokens issued under them, all or nothing across a crash: the commit
/// that deletes the consents writes, for each, the intent to revoke its grant; the grants are
/// revoked next, each intent removed once its grant is; a call cut short (a 503, a crash) leaves
/// intents that the next call for the subject, or the next start, finishes.
pub async fn revoke_consent(w: &Worker, req: &Request) -> Response {
    let q = query(req);
    let subject = q.get("subject").filter(|s| !s.is_empty());
    let client = q.get("client").filter(|s| !s.is_empty());
    let all = q.get("all") == Some("true");
    let (subject, prefix) = match (subject, client, all) {
        (Some(s), Some(c), false) => (s, [key(&[s, c]), vec![0]].concat()),
        (Some(s), None, true) => (s, [s.as_bytes(), &[0]].concat()),
        _ => return Response::generic_error(400, "invalid_request", "Invalid combination of query parameters."),
    };
    let p = w.partition_for(subject);
    let to_intent: hydra_storage::RowMap = Box::new(|_, v| {
        let c = serde_json::from_slice::<ConsentSession>(v).ok()?;
        Some((intent_key(&c.subject, &c.flow_id), intent_value(c.grant_partition, c.grant_family)))
    });
    let moved =
        w.shared.store.doc_move_prefix(p, Table::ConsentSessions, prefix, Table::RevocationIntents, to_intent).await;
    if let Err(e) = moved {
        return Response::oauth_error(&e.into());
    }
    match finish_revocations(&w.shared.store, p, subject.as_bytes()).await {
        Ok(_) => Response::empty(204),
        Err(e) => Response::oauth_error(&e.into()),
    }
}

fn intent_key(subject: &str, flow_id: &str) -> Vec<u8> {
    key(&[subject, flow_id])
}

fn intent_value(partition: u32, family: u64) -> Vec<u8> {
    [partition.to_le_bytes().as_slice(), &family.to_le_bytes()].concat()
}

/// Revokes the grant of every revocation intent of `partition` whose key starts with
/// `subject` ‖ 0 (every intent of the partition when `subject` is empty), removing each intent
/// once its grant's tokens are deleted. Revoking a grant twice is harmless, so a crash anywhere
/// here loses nothing. Resolves to how many grants were revoked.
pub async fn finish_revocations(
    store: &hydra_storage::Store,
    partition: u32,
    subject: &[u8],
) -> Result<usize, hydra_storage::StoreError> {
    let prefix = if subject.is_empty() { Vec::new() } else { [subject, &[0]].concat() };
    let mut n = 0;
    for (k, v) in store.doc_scan(partition, Table::RevocationIntents, &prefix)? {
        if let (Some(p), Some(f)) = (v.get(..4), v.get(4..12)) {
            let grant_partition = u32::from_le_bytes(p.try_into().unwrap_or_default());
            let family = u64::from_le_bytes(f.try_into().unwrap_or_default());
            store.revoke_family(grant_partition, family).await?;
            n += 1;
        }
        store.doc_delete_keys(partition, Table::RevocationIntents, vec![k]).await?;
    }
    Ok(n)
}

/// Finishes every revocation a crash interrupted; run at start-up before any request is served.
pub fn finish_all_revocations(store: &hydra_storage::Store) -> Result<usize, hydra_storage::StoreError> {
    let mut n = 0;
    for p in 0..store.partition_count() {
        n += hydra_storage::block_on(finish_revocations(store, p, b""))?;
    }
    Ok(n)
}

/// Indexes, once per data directory, the login sessions stored before sessions were indexed by
/// id (so `DELETE …?sid=` finds them too). Start-up only.
pub fn index_session_ids(store: &hydra_storage::Store, partition_for: &dyn Fn(&str) -> u32) -> Result<usize, String> {
    const FLAG: &str = "session_ids_v1";
    if store.flag(FLAG).map_err(|e| e.to_string())? {
        return Ok(0);
    }
    let mut n = 0;
    for p in 0..store.partition_count() {
        for (k, v) in store.doc_scan(p, Table::LoginSessions, b"").map_err(|e| e.to_string())? {
            let (Some(at), Ok(s)) = (k.iter().position(|b| *b == 0), serde_json::from_slice::<LoginSession>(&v)) else {
                continue;
            };
            let Ok(sid) = std::str::from_utf8(&k[at + 1..]) else { continue };
            let index = serde_json::to_vec(&SessionId { subject: s.subject.clone(), expires_at: s.expires_at })
                .map_err(|e| e.to_string())?;
            store
                .doc_put(partition_for(sid), Table::SessionIds, vec![(sid.as_bytes().to_vec(), index)])
                .wait()
                .map_err(|e| e.to_string())?;
            n += 1;
        }
    }
    store.set_flag(FLAG).wait().map_err(|e| e.to_string())?;
    Ok(n)
}

/// `DELETE /admin/oauth2/auth/sessions/login?subject=…` (every session of the subject) or
/// `?sid=…` (one session, found through its id row).
pub async fn revoke_login(w: &Worker, req: &Request) -> Response {
    let q = query(req);
    let result = match (q.get("subject").filter(|s| !s.is_empty()), q.get("sid").filter(|s| !s.is_empty())) {
        (Some(subject), _) => revoke_subject_logins(w, subject).await,
        (None, Some(sid)) => revoke_sid_login(w, sid).await,
        (None, None) => return Response::generic_error(400, "invalid_request", "Either subject or sid is required."),
    };
    match result {
        Ok(()) => Response::empty(204),
        Err(e) => Response::oauth_error(&e.into()),
    }
}

/// Ends one login session, found through its id row; an unknown id is nothing to do.
async fn revoke_sid_login(w: &Worker, sid: &str) -> Result<(), hydra_storage::StoreError> {
    let store = &w.shared.store;
    let p = w.partition_for(sid);
    let Some(row) = store.doc_get(p, Table::SessionIds, sid.as_bytes())? else { return Ok(()) };
    if let Ok(id) = serde_json::from_slice::<SessionId>(&row) {
        let k = key(&[&id.subject, sid]);
        store.doc_delete_keys(w.partition_for(&id.subject), Table::LoginSessions, vec![k]).await?;
    }
    store.doc_delete_keys(p, Table::SessionIds, vec![sid.as_bytes().to_vec()]).await?;
    Ok(())
}

async fn revoke_subject_logins(w: &Worker, subject: &str) -> Result<(), hydra_storage::StoreError> {
    let store = &w.shared.store;
    let prefix = [subject.as_bytes(), &[0]].concat();
    let removed = store.doc_delete_prefix(w.partition_for(subject), Table::LoginSessions, prefix.clone()).await?;
    for (k, _) in removed {
        if let Some(sid) = k.get(prefix.len()..).and_then(|s| std::str::from_utf8(s).ok()) {
            store.doc_delete_keys(w.partition_for(sid), Table::SessionIds, vec![sid.as_bytes().to_vec()]).await?;
        }
    }
    Ok(())
}
