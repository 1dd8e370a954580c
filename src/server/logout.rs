//! Logout: `GET/POST /oauth2/sessions/logout` (RP-initiated with an `id_token_hint`, or
//! OP-initiated for the browser's own session), the admin logout requests
//! (`/admin/oauth2/auth/requests/logout[/accept|/reject]`), the built-in logout page, and what
//! accepting does: the login session ends, the cookie is cleared, and every client holding a
//! consent in that session is told (front-channel iframes, back-channel logout tokens).
//!
//! Invariants: the browser is redirected only where `oauth2::logout::start` allowed (anything
//! else is the error page); a logout challenge and its verifier are sealed, expire with
//! `ttl.login_consent_request`, and are single use (a durable flow marker, taken before the
//! session is deleted); the verifier is honoured only in the browser that started the logout
//! (the logout CSRF cookie); back-channel notices are queued, never sent from a worker.

use crate::http::Request;
use crate::oauth2::authorize::{html_escape, redirect_url};
use crate::oauth2::flow::{self, Purpose};
use crate::oauth2::logout::{self as rules, LogoutParams, LogoutRequest, Start};
use crate::server::authorize::{absolute, csrf_ok, fatal, found};
use crate::server::backchannel;
use crate::server::common::too_old;
use crate::server::cookies::SetCookie;
use crate::server::keys;
use crate::server::respond::{store_error, Response};
use crate::server::sessions;
use crate::server::state::{unix_now, Worker};
use hydra_storage::Storage;
use ring::rand::SystemRandom;
use serde_json::json;

fn csrf_cookie_name(w: &Worker) -> String {
    crate::server::cookies::csrf_name(w, crate::server::cookies::Csrf::Logout, "")
}

/// The key of the flow marker that makes a logout single use.
fn marker(id: &str) -> String {
    format!("{id}\0logout")
}

fn verifier_url(w: &Worker, verifier: &str) -> String {
    redirect_url(&format!("{}/oauth2/sessions/logout", w.config().urls.public), &[("logout_verifier", verifier)])
}

/// `GET/POST /oauth2/sessions/logout`.
pub async fn handle(w: &Worker, req: &Request) -> Response {
    let p = match crate::server::authorize::params(req) {
        Ok(p) => LogoutParams::from_pairs(p),
        Err(d) => return fatal(w, "invalid_request", &d),
    };
    let r = match &p.logout_verifier {
        Some(v) => finish(w, req, v).await,
        None => begin(w, req, &p).await,
    };
    r.header("Cache-Control", "no-store")
}

async fn begin(w: &Worker, req: &Request, p: &LogoutParams) -> Response {
    let cfg = w.config();
    let now = unix_now();
    let hint = p.id_token_hint.as_ref().map(|h| {
        let keys = keys::id_token_public_keys(w);
        rules::verify_hint(h, &keys, &cfg.urls.issuer, now)
    });
    let snapshot = w.shared.clients.load();
    let registered = |id: &str| snapshot.clients.get(id).map(|e| e.stored.client.post_logout_redirect_uris.clone());
    let default = absolute(w, &cfg.urls.post_logout_redirect);
    let (subject, sid, client_id, redirect) = match rules::start(p, hint, &registered, &default) {
        Start::Refuse(why) => return fatal(w, "invalid_request", &why),
        Start::Op { redirect } => match sessions::current(w, req).await {
            Some(s) => (s.subject, s.sid, String::new(), redirect),
            // Nobody is logged in here: nothing to ask.
            None => return found(redirect),
        },
        Start::Rp { client_id, sid, redirect } => match w.shared.store.find_login_session(&sid).await {
            Ok(Some(s)) if s.expires_at > now => (s.subject, sid, client_id, redirect),
            // The session ended already (or was never remembered): nothing to log out.
            Ok(_) => return found(redirect),
            Err(e) => return fatal(w, "temporarily_unavailable", &store_error(e).full_description()),
        },
    };
    let skip = !client_id.is_empty()
        && snapshot.clients.get(&client_id).is_some_and(|e| e.stored.client.skip_logout_consent == Some(true));
    let rng = SystemRandom::new();
    let (Ok(id), Ok(csrf)) = (flow::random_id(&rng), flow::random_id(&rng)) else {
        return fatal(w, "server_error", "No randomness available.");
    };
    let request_url = match req.head.query() {
        Some(q) if req.head.method == crate::http::request::Method::Get => {
            format!("{}/oauth2/sessions/logout?{q}", cfg.urls.public)
        }
        _ => format!("{}/oauth2/sessions/logout", cfg.urls.public),
    };
    let lr = LogoutRequest {
        id,
        subject,
        sid,
        request_url,
        rp_initiated: !client_id.is_empty(),
        client_id,
        requested_at: now,
        redirect,
        csrf,
    };
    // A client with `skip_logout_consent` does not ask the logout app: accepted at once.
    let purpose = if skip { Purpose::LogoutVerifier } else { Purpose::LogoutChallenge };
    let Ok(blob) = flow::seal_json(&w.shared.flow_keys, purpose, &lr, &rng) else {
        return fatal(w, "server_error", "The logout request could not be sealed.");
    };
    let location = if skip {
        verifier_url(w, &blob)
    } else {
        redirect_url(&absolute(w, &cfg.urls.logout), &[("logout_challenge", &blob)])
    };
    let ttl = cfg.ttl.login_consent_request.as_secs() as i64;
    found(location).set_cookie(w, &csrf_cookie_name(w), &lr.csrf, ttl)
}

/// Back from the logout app with a verifier: end the session and tell the clients.
async fn finish(w: &Worker, req: &Request, verifier: &str) -> Response {
    let Ok(lr) = flow::open_json::<LogoutRequest>(&w.shared.flow_keys, Purpose::LogoutVerifier, verifier) else {
        return fatal(w, "invalid_request", "The logout verifier is invalid.");
    };
    if too_old(w, lr.requested_at) {
        return fatal(w, "request_unauthorized", "The logout request has expired.");
    }
    if !csrf_ok(w, req, &csrf_cookie_name(w), &lr.csrf) {
        return fatal(w, "request_forbidden", "The logout CSRF cookie is missing or does not match.");
    }
    let store = &w.shared.store;
    match store.mark_flow(w.partition_for(&lr.id), &marker(&lr.id), lr.requested_at).await {
        Ok(true) => {}
        Ok(false) => return fatal(w, "invalid_request", "The logout verifier has already been used."),
        Err(e) => return fatal(w, "temporarily_unavailable", &store_error(e).full_description()),
    }
    let session = match store.find_login_session(&lr.sid).await {
        Ok(s) => s,
        Err(e) => return fatal(w, "temporarily_unavailable", &store_error(e).full_description()),
    };
    let current = sessions::current(w, req).await;
    let held = current.as_ref().is_some_and(|s| s.sid == lr.sid);
    // The browser's cookie is cleared unless it now names another live session (someone else
    // logged in here meanwhile: that session is not the one being ended).
    let clear_cookie = held || current.is_none();
    let done = |resp: Response| {
        let resp = resp.set_cookie(w, &csrf_cookie_name(w), "", 0);
        if clear_cookie {
            resp.set_cookie(w, &crate::server::cookies::session_name(w), "", 0)
        } else {
            resp
        }
    };
    // A session that ended meanwhile had its clients told then; an OP-initiated logout ends the
    // browser's own session only, so once the browser holds another (or none) there is nothing
    // to end here. Either way: no second round of notices (as Hydra).
    let Some(session) = session.filter(|_| lr.rp_initiated || held) else {
        return done(found(lr.redirect.clone()));
    };
    // The identity provider's session is named in ours: read before it goes.
    let idp_session = session.idp_session;
    if let Err(e) = store.delete_login_session(&lr.sid).await {
        return fatal(w, "temporarily_unavailable", &store_error(e).full_description());
    }
    crate::server::idp::revoke(w, &idp_session);
    let front = match backchannel::session_ended(w, &lr.subject, &lr.sid).await {
        Ok(front) => front,
        // The session is over either way; the clients could not be listed.
        Err(e) => {
            crate::warn!("the clients of a logged-out session could not be listed", "error" = e);
            Vec::new()
        }
    };
    done(if front.is_empty() {
        found(lr.redirect.clone())
    } else {
        Response {
            status: 200,
            headers: vec![("Content-Type", "text/html; charset=utf-8".into())],
            body: rules::frontchannel_page(&front, &lr.redirect).into_bytes(),
            close: false,
        }
    })
}

fn challenge(req: &Request) -> Option<String> {
    let q = crate::http::form::decode_multi(req.head.query().unwrap_or("").as_bytes()).ok()?;
    q.get("logout_challenge").or_else(|| q.get("challenge")).filter(|c| !c.is_empty()).map(String::from)
}

/// Opens a logout challenge for the admin API or the built-in page, or answers why not: invalid
/// 404, expired 401, already handled 410 (as Hydra).
async fn load(w: &Worker, challenge: Option<String>) -> Result<(LogoutRequest, String), Response> {
    let Some(c) = challenge else {
        return Err(Response::generic_error(400, "invalid_request", "The logout_challenge parameter is missing."));
    };
    let lr: LogoutRequest = flow::open_json(&w.shared.flow_keys, Purpose::LogoutChallenge, &c)
        .map_err(|_| Response::generic_error(404, "Not Found", "Unable to locate the requested resource"))?;
    if too_old(w, lr.requested_at) {
        return Err(Response::generic_error(401, "request_unauthorized", "The logout request has expired."));
    }
    match w.shared.store.flow_used(w.partition_for(&lr.id), &marker(&lr.id)).await {
        Ok(false) => Ok((lr, c)),
        Ok(true) => Err(Response::json_value(410, &json!({"redirect_to": lr.request_url}))),
        Err(e) => Err(Response::oauth_error(&store_error(e))),
    }
}

/// `GET /admin/oauth2/auth/requests/logout`.
pub async fn get(w: &Worker, req: &Request) -> Response {
    let (lr, c) = match load(w, challenge(req)).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let client = (!lr.client_id.is_empty()).then(|| match w.shared.clients.load().clients.get(&lr.client_id) {
        Some(e) => e.stored.client.to_json(None),
        None => json!({"client_id": lr.client_id}),
    });
    let ttl = w.config().ttl.login_consent_request.as_secs() as i64;
    Response::json_value(200, &rules::logout_request_json(&lr, &c, client, ttl))
}

/// Seals an accepted logout into its verifier URL.
fn accepted(w: &Worker, lr: &LogoutRequest) -> Result<String, Response> {
    flow::seal_json(&w.shared.flow_keys, Purpose::LogoutVerifier, lr, &SystemRandom::new())
        .map(|v| verifier_url(w, &v))
        .map_err(|_| Response::generic_error(500, "server_error", "The verifier could not be sealed."))
}

/// `PUT …/logout/accept` (200 `{redirect_to}`) and `PUT …/logout/reject` (204; the challenge
/// is spent, so its verifier can never be made).
pub async fn answer(w: &Worker, req: &Request, accept: bool) -> Response {
    let (lr, _) = match load(w, challenge(req)).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if accept {
        return match accepted(w, &lr) {
            Ok(url) => Response::json_value(200, &json!({"redirect_to": url})),
            Err(r) => r,
        };
    }
    match w.shared.store.mark_flow(w.partition_for(&lr.id), &marker(&lr.id), lr.requested_at).await {
        Ok(_) => Response::empty(204),
        Err(e) => Response::oauth_error(&store_error(e)),
    }
}

/// `GET/POST /oauth2/fallbacks/logout`: the logout page used when `urls.logout` is not set. GET
/// asks; POST answers (accepting redirects to the verifier, whose CSRF cookie ties it to the
/// browser that started the logout). With `urls.logout` set it decides nothing: the operator's
/// app does.
pub async fn fallback(w: &Worker, req: &Request) -> Response {
    if w.config().urls.logout != crate::config::FALLBACK_LOGOUT {
        return Response::html_page(
            "Logout",
            "<p>This server's logout page is configured elsewhere (<code>urls.logout</code>).</p>",
        );
    }
    let post = req.head.method == crate::http::request::Method::Post;
    let (c, yes) = if post {
        match crate::server::common::form_body(req, &[]) {
            Ok(f) => (f.get("logout_challenge").map(String::from), f.get("confirm") == Some("yes")),
            Err(e) => return fatal(w, "invalid_request", &e.full_description()),
        }
    } else {
        (challenge(req), false)
    };
    let (lr, c) = match load(w, c).await {
        Ok(x) => x,
        Err(_) => return fatal(w, "invalid_request", "The logout request is invalid, expired or already handled."),
    };
    if !post {
        let form = format!(
            "<p>Do you want to log out?</p><form method=\"post\" action=\"/oauth2/fallbacks/logout\">\
             <input type=\"hidden\" name=\"logout_challenge\" value=\"{}\">\
             <button type=\"submit\" name=\"confirm\" value=\"yes\">Log out</button> \
             <button type=\"submit\" name=\"confirm\" value=\"no\">Stay logged in</button></form>",
            html_escape(&c)
        );
        return Response::html_page("Log out", &form);
    }
    if !yes {
        return match w.shared.store.mark_flow(w.partition_for(&lr.id), &marker(&lr.id), lr.requested_at).await {
            Ok(_) => Response::html_page("Still logged in", "<p>You were not logged out.</p>"),
            Err(e) => fatal(w, "temporarily_unavailable", &store_error(e).full_description()),
        };
    }
    match accepted(w, &lr) {
        Ok(url) => found(url),
        Err(r) => r,
    }
}
