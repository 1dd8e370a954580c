//! Remembered login sessions and consent sessions, stored in the partition of their subject,
//! and the admin API over them (`/admin/oauth2/auth/sessions/{login,consent}`).
//!
//! Invariants: the session cookie is sealed (it names the session and subject, the store says
//! whether it still holds), so a forged or foreign cookie is simply no session; revoking a
//! consent session revokes the tokens of its grant in the same call, after both are durable.

use crate::http::Request;
use crate::oauth2::flow::{self, Purpose};
use crate::oauth2::page_token;
use crate::server::respond::store_error;
use crate::server::respond::Response;
use crate::server::state::{unix_now, Worker};
use hydra_storage::{LoginSession, Storage};
use ring::rand::SystemRandom;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// How long a remembered login lasts when the login app gives no `remember_for` (Hydra's
/// `ttl.authentication_session` default, 30 days).
const DEFAULT_SESSION_SECS: i64 = 30 * 24 * 3600;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CookieBody {
    sid: String,
    sub: String,
}

/// The browser's remembered login session, if it still holds.
pub async fn current(w: &Worker, req: &Request) -> Option<LoginSession> {
    let raw = crate::server::cookies::cookie_value(w, req, &crate::server::cookies::session_name(w))?;
    let c: CookieBody = flow::open_json(&w.shared.cookie_keys, Purpose::SessionCookie, raw).ok()?;
    let s = w.shared.store.get_login_session(&c.sub, &c.sid).await.ok()??;
    (s.subject == c.sub && unix_now() < s.expires_at).then_some(s)
}

/// Stores a remembered login durably; returns the session cookie's value and lifetime.
pub async fn remember_login(
    w: &Worker,
    sid: &str,
    subject: &str,
    auth_time: i64,
    remember_for: i64,
    idp_session: &str,
) -> Result<(String, i64), ()> {
    let life = if remember_for > 0 { remember_for.min(180 * 24 * 3600) } else { DEFAULT_SESSION_SECS };
    let s = LoginSession {
        sid: sid.to_string(),
        subject: subject.to_string(),
        auth_time,
        expires_at: unix_now() + life,
        idp_session: idp_session.to_string(),
    };
    w.shared.store.put_login_session(s).await.map_err(|_| ())?;
    let body = CookieBody { sid: sid.to_string(), sub: subject.to_string() };
    let sealed =
        flow::seal_json(&w.shared.cookie_keys, Purpose::SessionCookie, &body, &SystemRandom::new()).map_err(|_| ())?;
    Ok((sealed, life))
}

/// A consent decision as stored (and listed by the admin API).
pub use hydra_storage::Consent as ConsentSession;

/// A consent decision as the admin API lists it.
fn consent_json(c: &ConsentSession, client: Value) -> Value {
    json!({
        "consent_request": {
            "challenge": c.flow_id,
            "client": client,
            "consent_request_id": c.flow_id,
            "login_session_id": c.login_session_id,
            "requested_access_token_audience": c.requested_audience,
            "requested_scope": c.requested_scope,
            "subject": c.subject,
        },
        "consent_request_id": c.flow_id,
        "context": c.context,
        "grant_access_token_audience": c.grant_audience,
        "grant_scope": c.grant_scope,
        "handled_at": crate::dates::rfc3339(c.handled_at),
        "remember": c.remember,
        "remember_for": c.remember_for,
        "session": {"access_token": c.access_token, "id_token": c.id_token},
    })
}

/// Stores a consent decision durably (one row per flow, for listing and revocation; a
/// remembered one also as the pair's latest).
pub async fn store_consent(w: &Worker, c: &ConsentSession) -> Result<(), ()> {
    w.shared.store.put_consent(c.clone()).await.map_err(|_| ())
}

/// Whether the latest remembered consent of this subject for this client still holds and covers
/// every requested scope and audience.
pub async fn remembered_consent(
    w: &Worker,
    subject: &str,
    client_id: &str,
    scope: &[String],
    audience: &[String],
) -> bool {
    let Ok(Some(c)) = w.shared.store.latest_consent(subject, client_id).await else { return false };
    c.holds(unix_now())
        && scope.iter().all(|s| c.grant_scope.contains(s))
        && audience.iter().all(|a| c.grant_audience.contains(a))
}

fn query(req: &Request) -> crate::http::form::Form {
    crate::http::form::decode_multi(req.head.query().unwrap_or("").as_bytes()).unwrap_or_default()
}

/// `GET /admin/oauth2/auth/sessions/consent?subject=…[&login_session_id=…]`.
pub async fn list_consent(w: &Worker, req: &Request) -> Response {
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
    let consents = match w.shared.store.list_consents(subject).await {
        Ok(r) => r,
        Err(e) => return Response::oauth_error(&store_error(e)),
    };
    let snapshot = w.shared.clients.load();
    let now = unix_now();
    let all: Vec<Value> = consents
        .iter()
        .filter(|c| c.holds(now) && sid.is_none_or(|s| c.login_session_id == s))
        .map(|c| {
            let client = snapshot.clients.get(&c.client_id).map(|e| e.stored.client.to_json(None)).unwrap_or(json!({}));
            consent_json(c, client)
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
    let (subject, client) = match (subject, client, all) {
        (Some(s), Some(c), false) => (s, Some(c)),
        (Some(s), None, true) => (s, None),
        _ => return Response::generic_error(400, "invalid_request", "Invalid combination of query parameters."),
    };
    match w.shared.store.revoke_consents(subject, client).await {
        Ok(_) => Response::empty(204),
        Err(e) => Response::oauth_error(&store_error(e)),
    }
}

/// `DELETE /admin/oauth2/auth/sessions/login?sid=…` (one session, found through its id row; its
/// clients get back-channel notices) or `?subject=…` (every session of the subject, no notices);
/// `sid` wins when both are given (as Hydra).
pub async fn revoke_login(w: &Worker, req: &Request) -> Response {
    let q = query(req);
    let result = match (q.get("sid").filter(|s| !s.is_empty()), q.get("subject").filter(|s| !s.is_empty())) {
        (Some(sid), _) => revoke_sid_login(w, sid).await,
        (None, Some(subject)) => revoke_subject_logins(w, subject).await,
        (None, None) => return Response::generic_error(400, "invalid_request", "Either subject or sid is required."),
    };
    match result {
        Ok(()) => Response::empty(204),
        Err(e) => Response::oauth_error(&store_error(e)),
    }
}

/// Ends one login session, found through its id, and sends the back-channel notices of its
/// clients (as Hydra); an unknown id is nothing to do.
async fn revoke_sid_login(w: &Worker, sid: &str) -> Result<(), hydra_storage::StoreError> {
    let Some(s) = w.shared.store.find_login_session(sid).await? else { return Ok(()) };
    w.shared.store.delete_login_session(sid).await?;
    crate::server::idp::revoke(w, &s.idp_session);
    crate::server::backchannel::session_ended(w, &s.subject, sid).await.map(|_front| ())
}

async fn revoke_subject_logins(w: &Worker, subject: &str) -> Result<(), hydra_storage::StoreError> {
    w.shared.store.delete_login_sessions(subject).await.map(|_| ())
}
