//! Remembered login sessions and consent sessions, stored in the partition of their subject,
//! and the admin API over them (`/admin/oauth2/auth/sessions/{login,consent}`).
//!
//! Invariants: the session cookie is sealed (it names the session and subject, the store says
//! whether it still holds), so a forged or foreign cookie is simply no session; revoking a
//! consent session revokes the tokens of its grant in the same call, after both are durable.

use crate::oauth2::flow::{self, Purpose};
use crate::server::conn::Request;
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
    let raw = crate::server::authorize::cookie_value(req, cookie_name(w))?;
    let c: CookieBody = flow::open_json(&w.shared.flow_keys, Purpose::SessionCookie, raw).ok()?;
    let bytes =
        w.shared.store.doc_get(w.partition_for(&c.sub), Table::LoginSessions, &key(&[&c.sub, &c.sid])).ok()??;
    let s: LoginSession = serde_json::from_slice(&bytes).ok()?;
    (s.subject == c.sub && unix_now() < s.expires_at).then_some((c.sid, s))
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
    w.shared
        .store
        .doc_put(w.partition_for(subject), Table::LoginSessions, vec![(key(&[subject, sid]), value)])
        .await
        .map_err(|_| ())?;
    let body = CookieBody { sid: sid.to_string(), sub: subject.to_string() };
    let sealed =
        flow::seal_json(&w.shared.flow_keys, Purpose::SessionCookie, &body, &SystemRandom::new()).map_err(|_| ())?;
    Ok(crate::server::authorize::cookie(w, cookie_name(w), &sealed, life))
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
            "handled_at": crate::oauth2::client::format_rfc3339(self.handled_at),
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
    // The page token is the number of sessions already listed (opaque to callers).
    let offset: usize = match q.get("page_token").filter(|t| !t.is_empty()).map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return Response::generic_error(400, "invalid_request", "The page_token is invalid."),
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
        let mut subject_q = String::new();
        crate::http::form::form_escape(subject, &mut subject_q);
        let next = offset + page_size;
        resp = resp.header(
            "Link",
            format!("</admin/oauth2/auth/sessions/consent?subject={subject_q}&page_size={page_size}&page_token={next}>; rel=\"next\""),
        );
    }
    resp.header("X-Total-Count", all.len().to_string())
}

/// `DELETE /admin/oauth2/auth/sessions/consent?subject=…&client=…` or `…&all=true`: forgets the
/// consents and revokes the tokens issued under them.
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
    let removed = match w.shared.store.doc_delete_prefix(w.partition_for(subject), Table::ConsentSessions, prefix).await
    {
        Ok(r) => r,
        Err(e) => return Response::oauth_error(&e.into()),
    };
    for (_, v) in removed {
        if let Ok(c) = serde_json::from_slice::<ConsentSession>(&v) {
            if let Err(e) = w.shared.store.revoke_family(c.grant_partition, c.grant_family).await {
                return Response::oauth_error(&e.into());
            }
        }
    }
    Response::empty(204)
}

/// `DELETE /admin/oauth2/auth/sessions/login?subject=…` (every session of the subject) or
/// `?sid=…` (one session).
pub async fn revoke_login(w: &Worker, req: &Request) -> Response {
    let q = query(req);
    let store = &w.shared.store;
    match (q.get("subject").filter(|s| !s.is_empty()), q.get("sid").filter(|s| !s.is_empty())) {
        (Some(subject), _) => {
            let prefix = [subject.as_bytes(), &[0]].concat();
            if let Err(e) = store.doc_delete_prefix(w.partition_for(subject), Table::LoginSessions, prefix).await {
                return Response::oauth_error(&e.into());
            }
        }
        (None, Some(sid)) => {
            // Sessions are keyed by subject: find the one with this id in every partition.
            for p in 0..store.partition_count() {
                let rows = match store.doc_scan(p, Table::LoginSessions, b"") {
                    Ok(r) => r,
                    Err(e) => return Response::oauth_error(&e.into()),
                };
                for (k, _) in rows.into_iter().filter(|(k, _)| {
                    k.ends_with(sid.as_bytes()) && k.len().checked_sub(sid.len() + 1).and_then(|i| k.get(i)) == Some(&0)
                }) {
                    if let Err(e) = store.doc_delete_prefix(p, Table::LoginSessions, k).await {
                        return Response::oauth_error(&e.into());
                    }
                }
            }
        }
        (None, None) => return Response::generic_error(400, "invalid_request", "Either subject or sid is required."),
    }
    Response::empty(204)
}
