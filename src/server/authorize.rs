//! `GET/POST /oauth2/auth`: the authorization endpoint and its three legs (new request → login
//! app; login verifier → consent app; consent verifier → code, access token and/or ID token to
//! the client, per response type), plus the fallback pages under `/oauth2/fallbacks/`.
//!
//! Invariants: nothing is ever redirected to a URI that was not validated against the client's
//! registration (an unknown client or redirect URI goes to `urls.error`); every verifier is
//! checked against its CSRF cookie; a flow produces at most one grant (the store enforces it);
//! a code or access token is answered only after it is durable; tokens never go in a query.

use crate::http::form;
use crate::http::Request;
use crate::oauth2::authorization_code::{Grant, GrantExt};
use crate::oauth2::authorize::{self, html_escape, AuthError, AuthRequest, ClientView, Policy, ResponseMode};
use crate::oauth2::flow::{self, Flow, Outcome, Purpose};
use crate::oauth2::id_token::IdTokenClaims;
use crate::server::common::{form_body, too_old};
use crate::server::cookies::{self, Csrf, SetCookie};
use crate::server::flows::Step;
use crate::server::respond::Response;
use crate::server::sessions;
use crate::server::state::{unix_now, Worker};
use crate::token::{mint, TokenType};
use hydra_storage::{Storage, TokenKind, TokenRecord};
use ring::rand::SystemRandom;

/// Resolves `urls.login` and friends: a path is taken relative to the public URL.
pub fn absolute(w: &Worker, url: &str) -> String {
    if url.starts_with('/') {
        format!("{}{}", w.config().urls.public, url)
    } else {
        url.to_string()
    }
}

pub(crate) fn found(location: String) -> Response {
    Response::empty(302).header("Location", location)
}

/// An error that must not reach the client: to `urls.error` with the error in the query.
pub(crate) fn fatal(w: &Worker, error: &str, description: &str) -> Response {
    let url = absolute(w, &w.config().urls.error);
    found(authorize::redirect_url(&url, &[("error", error), ("error_description", description)]))
}

/// An answer to the client's validated redirect URI, in its response mode.
fn to_client(uri: &str, mode: ResponseMode, params: &[(&str, &str)]) -> Response {
    match mode {
        ResponseMode::Query => found(authorize::redirect_url(uri, params)),
        ResponseMode::Fragment => found(authorize::fragment_url(uri, params)),
        ResponseMode::FormPost => Response {
            status: 200,
            headers: vec![("Content-Type", "text/html; charset=utf-8".into())],
            body: authorize::form_post_html(uri, params).into_bytes(),
            close: false,
        },
    }
}

pub(crate) fn error_to_client(w: &Worker, r: &AuthRequest, error: &str, description: &str) -> Response {
    // A device flow has no redirect URI: its errors are answered as JSON (as Hydra), with the
    // status of the error.
    if r.redirect_uri.is_empty() {
        let status = match error {
            "request_forbidden" | "access_denied" => 403,
            "request_unauthorized" | "invalid_client" => 401,
            "server_error" => 500,
            "temporarily_unavailable" => 503,
            _ => 400,
        };
        return Response::generic_error(status, error, description);
    }
    let params = authorize::error_params(error, description, Some(&r.state), &w.config().urls.issuer);
    to_client(&r.redirect_uri, r.response_mode, &params)
}

pub(crate) fn csrf_ok(w: &Worker, req: &Request, name: &str, expected: &str) -> bool {
    // Compared as digests: constant time whatever the lengths.
    let digest = |s: &str| {
        let mut out = [0u8; 32];
        out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, s.as_bytes()).as_ref());
        out
    };
    crate::server::cookies::cookie_value(w, req, name)
        .is_some_and(|v| crate::token::same_signature(&digest(v), &digest(expected)))
}

pub async fn handle(w: &Worker, req: &Request) -> Response {
    let params = match params(req) {
        Ok(p) => p,
        Err(d) => return fatal(w, "invalid_request", &d),
    };
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let r = if let Some(v) = get("consent_verifier") {
        consent_done(w, req, v, get("client_id")).await
    } else if let Some(v) = get("login_verifier") {
        login_done(w, req, v, false).await
    } else {
        start(w, req, &params).await
    };
    r.header("Cache-Control", "no-store")
}

/// The request parameters: the query of a GET, the form body of a POST (OIDC Core §3.1.2.1).
pub(crate) fn params(req: &Request) -> Result<Vec<(String, String)>, String> {
    if req.head.method == crate::http::request::Method::Post {
        return form_body(req, &[]).map(form::Form::into_pairs).map_err(|e| e.full_description());
    }
    let q = req.head.query().unwrap_or("");
    form::decode(q.as_bytes()).map(form::Form::into_pairs).map_err(|e| e.description().to_string())
}

/// A new authorization request: validate, then hand over to the login app.
async fn start(w: &Worker, req: &Request, params: &[(String, String)]) -> Response {
    let cfg = w.config();
    let snapshot = w.shared.clients.load();
    let client_id = params.iter().find(|(k, _)| k == "client_id").map(|(_, v)| v.as_str()).unwrap_or("");
    let entry = snapshot.clients.get(client_id);
    let view = entry.map(|e| {
        let c = &e.stored.client;
        ClientView {
            client_id: &c.client_id,
            redirect_uris: c.redirect_uris.as_deref().unwrap_or(&[]),
            response_types: c.response_types.as_deref().unwrap_or(&[]),
            grant_types: c.grant_types.as_deref().unwrap_or(&[]),
            scope: &c.scope,
            audience: &c.audience,
            public: c.is_public(),
        }
    });
    let strategy = cfg.strategies.scope;
    let allowed = move |allowed: &[&str], s: &str| strategy.matches(allowed.iter().copied(), s);
    let policy = Policy {
        allow_insecure_redirects: cfg.dev,
        pkce_enforced: cfg.oauth2.pkce_enforced,
        pkce_enforced_for_public_clients: cfg.oauth2.pkce_enforced_for_public_clients,
        scope_allowed: &allowed,
    };
    let object = crate::server::request_object::resolve(w, params, entry.map(|e| e.as_ref())).await;
    let r = match authorize::parse_with(params, &object, view.as_ref(), &policy) {
        Ok(r) => r,
        Err(AuthError::Fatal { error, description }) => return fatal(w, error, &description),
        Err(AuthError::Redirect { redirect_uri, response_mode, error, description, state }) => {
            let p = authorize::error_params(error, &description, state.as_deref(), &cfg.urls.issuer);
            return to_client(&redirect_uri, response_mode, &p);
        }
    };
    let request_url = match (&req.head.method, req.head.query()) {
        (crate::http::request::Method::Get, Some(q)) => format!("{}/oauth2/auth?{q}", cfg.urls.public),
        _ => {
            let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            authorize::redirect_url(&format!("{}/oauth2/auth", cfg.urls.public), &pairs)
        }
    };
    to_login(w, req, r, entry.map(|e| &e.stored.client), request_url, None).await
}

/// A validated request (from `/oauth2/auth`, or a device's from `/oauth2/device/verify`) handed
/// to the login app, or past it when a remembered session may stand in for the login.
pub(crate) async fn to_login(
    w: &Worker,
    req: &Request,
    r: AuthRequest,
    client: Option<&crate::oauth2::client::Client>,
    request_url: String,
    device: Option<crate::oauth2::device::DeviceRef>,
) -> Response {
    let cfg = w.config();
    let now = unix_now();
    let prompt = |p: &str| r.prompt.iter().any(|x| x == p);
    let session = sessions::current(w, req).await;
    // Whether the remembered session may stand in for a login (OIDC Core §3.1.2.1).
    let mut skip = session.as_ref().is_some_and(|s| {
        // A max_age past i64 means any age, not a negative one.
        !prompt("login")
            && !prompt("select_account")
            && r.max_age.is_none_or(|m| now.saturating_sub(s.auth_time) <= i64::try_from(m).unwrap_or(i64::MAX))
    });
    // Every hint is verified, with or without a session: a hint that is not one of our ID tokens
    // for this client never leads on to a login (OIDC Core §3.1.2.2).
    let hinted = match &r.id_token_hint {
        None => None,
        Some(hint) => match hinted_subject(w, hint, &r.client_id) {
            Some(sub) => Some(sub),
            None => {
                return error_to_client(
                    w,
                    &r,
                    "invalid_request",
                    "The id_token_hint is not an ID token this server issued to this client.",
                )
            }
        },
    };
    if let (Some(sub), Some(s)) = (&hinted, &session) {
        let ours = client.and_then(|c| c.subject_for(&s.subject, &cfg.oidc.pairwise_salt));
        // The client's identifier for the session's user, or (as Hydra) the subject itself.
        if ours.as_deref() != Some(sub.as_str()) && s.subject != *sub {
            skip = false;
            if prompt("none") {
                return error_to_client(w, &r, "login_required", "The id_token_hint names another user.");
            }
        }
    }
    if prompt("none") && !skip {
        return error_to_client(
            w,
            &r,
            "login_required",
            "The user is not logged in and prompt=none forbids a login page.",
        );
    }
    let rng = SystemRandom::new();
    let ids = (flow::random_id(&rng), flow::random_id(&rng), flow::random_id(&rng), flow::random_id(&rng));
    let (Ok(id), Ok(session_id), Ok(login_csrf), Ok(consent_csrf)) = ids else {
        return error_to_client(w, &r, "server_error", "No randomness available.");
    };
    let (session_id, session_subject, session_auth_time) = match (&session, skip) {
        (Some(s), true) => (s.sid.clone(), s.subject.clone(), s.auth_time),
        _ => (session_id, String::new(), 0),
    };
    let flow = Flow {
        id,
        request: r,
        request_url,
        requested_at: now,
        session_id,
        login_csrf,
        login: None,
        consent_csrf,
        consent: None,
        login_skip: skip,
        session_subject,
        session_auth_time,
        consent_skip: false,
        device,
    };
    let Ok(challenge) = flow::seal_flow(&w.shared.flow_keys, Purpose::LoginChallenge, &flow, &rng) else {
        return error_to_client(w, &flow.request, "server_error", "The login challenge could not be sealed.");
    };
    let name = cookies::csrf_name(w, Csrf::Login, &flow.request.client_id);
    let ttl = cfg.ttl.login_consent_request.as_secs() as i64;
    found(authorize::redirect_url(&absolute(w, &cfg.urls.login), &[("login_challenge", &challenge)])).set_cookie(
        w,
        &name,
        &flow.login_csrf,
        ttl,
    )
}

/// The subject an `id_token_hint` names, if it is an ID token this server signed (our key set,
/// our `iss`) for this client (`aud` holds it); expired ones count (OIDC Core §3.1.2.1).
fn hinted_subject(w: &Worker, hint: &str, client_id: &str) -> Option<String> {
    crate::server::keys::id_token_hint_claims(w, hint, client_id)?.get("sub")?.as_str().map(String::from)
}

/// Whether the user the login app accepted is the one an `id_token_hint` names: by the subject
/// itself, the identifier the login forced, or the client's (pairwise) identifier for it, as
/// Hydra matches them (OIDC Core §3.1.2.1).
fn login_matches_hint(
    w: &Worker,
    client: Option<&crate::oauth2::client::Client>,
    login: &flow::LoginResult,
    hinted: &str,
) -> bool {
    if hinted == login.subject
        || (!login.force_subject_identifier.is_empty() && hinted == login.force_subject_identifier)
    {
        return true;
    }
    let cfg = w.config();
    client.and_then(|c| c.subject_for(&login.subject, &cfg.oidc.pairwise_salt)).is_some_and(|s| s == hinted)
}

/// Back from the login app: check the verifier and its cookie, remember the login if asked,
/// then hand over to the consent app (or skip it when a remembered consent covers the request).
pub(crate) async fn login_done(w: &Worker, req: &Request, verifier: &str, device: bool) -> Response {
    let cfg = w.config();
    let Ok(mut flow) = flow::open_flow(&w.shared.flow_keys, Purpose::LoginVerifier, verifier) else {
        return fatal(w, "invalid_request", "The login verifier is invalid.");
    };
    let r = &flow.request;
    if flow.device.is_some() != device {
        return fatal(w, "invalid_request", "The login verifier belongs to another kind of flow.");
    }
    if too_old(w, flow.requested_at) {
        return error_to_client(w, r, "request_unauthorized", "The login request has expired.");
    }
    let login_cookie = cookies::csrf_name(w, Csrf::Login, &r.client_id);
    if !csrf_ok(w, req, &login_cookie, &flow.login_csrf) {
        return error_to_client(w, r, "request_forbidden", "The login CSRF cookie is missing or does not match.");
    }
    // A refused device is recorded before the verifier is spent: a failed write leaves the
    // verifier usable for a retry instead of the device pending for good.
    if let Some(Outcome::Rejected(_)) = &flow.login {
        if let Err(resp) = crate::server::flows::deny_device(w, &flow).await {
            return resp;
        }
    }
    // The verifier is single use, and once used its login request answers 410.
    if let Err(resp) = mark_step(w, &flow, Step::Login).await {
        return resp;
    }
    let login = match &flow.login {
        Some(Outcome::Accepted(l)) => l.clone(),
        Some(Outcome::Rejected(e)) => return error_to_client(w, r, &e.error, &e.error_description),
        None => return error_to_client(w, r, "server_error", "The login request was not handled."),
    };
    let snapshot = w.shared.clients.load();
    let client = snapshot.clients.get(&r.client_id).map(|e| &e.stored.client);
    // The hint named a user; another one logging in must not finish the relying party's request
    // (as Hydra: login_required, and nothing of this login is remembered).
    if let Some(hint) = &r.id_token_hint {
        let hinted = hinted_subject(w, hint, &r.client_id);
        if !hinted.is_some_and(|h| login_matches_hint(w, client, &login, &h)) {
            return error_to_client(
                w,
                r,
                "login_required",
                "The user who logged in is not the one the id_token_hint names.",
            );
        }
    }
    let mut session_cookie = None;
    if !flow.login_skip {
        // A new login ends the session this browser held (its cookie is replaced or cleared), so
        // a copy of the old cookie cannot log in as that user again (as Hydra).
        if let Some(old) = sessions::current(w, req).await.filter(|s| s.sid != flow.session_id) {
            if w.shared.store.delete_login_session(&old.sid).await.is_err() {
                return error_to_client(
                    w,
                    r,
                    "temporarily_unavailable",
                    "The previous login session could not be ended.",
                );
            }
        }
        if login.remember {
            let idp = &login.identity_provider_session_id;
            match sessions::remember_login(
                w,
                &flow.session_id,
                &login.subject,
                login.auth_time,
                login.remember_for,
                idp,
            )
            .await
            {
                Ok(c) => session_cookie = Some(c),
                Err(()) => {
                    return error_to_client(w, r, "temporarily_unavailable", "The login session could not be stored.")
                }
            }
        } else {
            session_cookie = Some((String::new(), 0));
        }
    }
    let client_skips = client.is_some_and(|c| c.skip_consent);
    // A public client's device flow always asks: anyone can start one for a code they show a
    // victim (as Hydra).
    let must_ask = flow.device.is_some() && client.is_none_or(|c| c.is_public());
    // Nor does an earlier consent stand in for a public client whose redirect URI another app
    // could claim (a custom scheme): its identity is not assured (RFC 6749 §10.2, RFC 8252
    // §8.6; as Hydra). The client's own `skip_consent` is its administrator's call.
    let unproven = client.is_none_or(|c| c.is_public()) && !crate::oauth2::uri::redirect_proves_client(&r.redirect_uri);
    flow.consent_skip = !must_ask
        && !r.prompt.iter().any(|p| p == "consent")
        && (client_skips
            || (!unproven
                && sessions::remembered_consent(w, &login.subject, &r.client_id, &r.scope, &r.audience).await));
    let r = &flow.request;
    if r.prompt.iter().any(|p| p == "none") && !flow.consent_skip {
        return error_to_client(
            w,
            r,
            "consent_required",
            "The user has not consented and prompt=none forbids a consent page.",
        );
    }
    let rng = SystemRandom::new();
    let Ok(challenge) = flow::seal_flow(&w.shared.flow_keys, Purpose::ConsentChallenge, &flow, &rng) else {
        return error_to_client(w, r, "server_error", "The consent challenge could not be sealed.");
    };
    let name = cookies::csrf_name(w, Csrf::Consent, &r.client_id);
    let ttl = cfg.ttl.login_consent_request.as_secs() as i64;
    let mut resp =
        found(authorize::redirect_url(&absolute(w, &cfg.urls.consent), &[("consent_challenge", &challenge)]))
            .set_cookie(w, &name, &flow.consent_csrf, ttl)
            .set_cookie(w, &login_cookie, "", 0);
    if let Some((value, life)) = session_cookie {
        resp = resp.set_cookie(w, &cookies::session_name(w), &value, life);
    }
    resp
}

/// Records durably that this step's verifier was used; a second use is `invalid_request` at the
/// client.
async fn mark_step(w: &Worker, flow: &Flow, step: Step) -> Result<(), Response> {
    let key = crate::server::flows::step_marker(&flow.id, step);
    let r = &flow.request;
    match w.shared.store.mark_flow(w.partition_for(&flow.id), &key, flow.requested_at).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(error_to_client(w, r, "invalid_request", "The verifier has already been used.")),
        Err(e) => {
            crate::warn!("a flow step could not be stored", "error" = e);
            Err(error_to_client(w, r, "temporarily_unavailable", "The flow could not be stored; retry later."))
        }
    }
}

/// A consent verifier that came back with its cookie, and what it grants.
pub(crate) struct Consented {
    pub flow: Flow,
    pub login: flow::LoginResult,
    pub consent: flow::ConsentResult,
    /// Granted and asked for: only what was asked for is issued, whatever the app grants beyond.
    pub scope: Vec<String>,
    pub audience: Vec<String>,
    pub ext: GrantExt,
    /// The consent CSRF cookie's name (cleared by the answer).
    pub cookie: String,
}

/// Opens a consent verifier for `/oauth2/auth` (`device: false`) or `/oauth2/device/verify`
/// (`device: true`), checks its cookie and age, and works out the grant; a rejection is
/// recorded (single use) and answered.
pub(crate) async fn consented(
    w: &Worker,
    req: &Request,
    verifier: &str,
    client_id: Option<&str>,
    device: bool,
) -> Result<Consented, Response> {
    let cfg = w.config();
    let Ok(flow) = flow::open_flow(&w.shared.flow_keys, Purpose::ConsentVerifier, verifier) else {
        return Err(fatal(w, "invalid_request", "The consent verifier is invalid."));
    };
    let r = &flow.request;
    if client_id.is_some_and(|c| c != r.client_id) {
        return Err(fatal(w, "invalid_request", "The client_id does not match the consent verifier."));
    }
    if flow.device.is_some() != device {
        return Err(fatal(w, "invalid_request", "The consent verifier belongs to another kind of flow."));
    }
    if too_old(w, flow.requested_at) {
        return Err(error_to_client(w, r, "request_unauthorized", "The consent request has expired."));
    }
    let consent_cookie = cookies::csrf_name(w, Csrf::Consent, &r.client_id);
    if !csrf_ok(w, req, &consent_cookie, &flow.consent_csrf) {
        return Err(error_to_client(
            w,
            r,
            "request_forbidden",
            "The consent CSRF cookie is missing or does not match.",
        ));
    }
    let (Some(Outcome::Accepted(login)), Some(consent)) = (&flow.login, &flow.consent) else {
        return Err(error_to_client(w, r, "server_error", "The consent request was not handled."));
    };
    let consent = match consent {
        Outcome::Accepted(c) => c,
        Outcome::Rejected(e) => {
            // The refusal takes the flow's single-use row, where an accepted consent would store
            // its grant: an accept verifier of the same flow can then never issue anything.
            crate::server::flows::deny_device(w, &flow).await?;
            let partition = crate::server::flows::grant_partition(w, &flow);
            match w.shared.store.mark_flow(partition, &flow.id, flow.requested_at).await {
                Ok(true) => {}
                Ok(false) => {
                    return Err(error_to_client(w, r, "invalid_request", "The verifier has already been used."))
                }
                Err(e) => return Err(Response::oauth_error(&crate::server::respond::store_error(e))),
            }
            return Err(error_to_client(w, r, &e.error, &e.error_description));
        }
    };
    let snapshot = w.shared.clients.load();
    let Some(entry) = snapshot.clients.get(&r.client_id) else {
        return Err(error_to_client(w, r, "invalid_client", "The client no longer exists."));
    };
    let client = &entry.stored.client;
    let scope: Vec<String> = consent.grant_scope.iter().filter(|s| r.scope.contains(s)).cloned().collect();
    let audience: Vec<String> =
        consent.grant_access_token_audience.iter().filter(|a| r.audience.contains(a)).cloned().collect();
    let subject = if login.force_subject_identifier.is_empty() {
        match client.subject_for(&login.subject, &cfg.oidc.pairwise_salt) {
            Some(s) => s,
            None => {
                return Err(error_to_client(
                    w,
                    r,
                    "server_error",
                    "The pairwise subject cannot be computed for this client.",
                ))
            }
        }
    } else {
        login.force_subject_identifier.clone()
    };
    let ext = GrantExt {
        at: consent.access_token.clone(),
        g: Grant {
            redirect_uri: r.redirect_uri.clone(),
            redirect_uri_given: r.redirect_uri_given,
            code_challenge: r.code_challenge.clone(),
            nonce: r.nonce.clone(),
            auth_time: login.auth_time,
            requested_at: flow.requested_at,
            acr: login.acr.clone(),
            amr: login.amr.clone(),
            sid: flow.session_id.clone(),
            client_subject: subject,
            id_token: consent.id_token.clone(),
            flow: flow.id.clone(),
        },
    };
    let (login, consent) = (login.clone(), consent.clone());
    Ok(Consented { flow, login, consent, scope, audience, ext, cookie: consent_cookie })
}

/// Stores the consent decision of a flow whose grant is now stored (listed by the admin API,
/// remembered for later flows when asked).
pub(crate) async fn remember_consent(w: &Worker, c: &Consented, partition: u32, family: u64) -> Result<(), Response> {
    let r = &c.flow.request;
    let remembered = sessions::ConsentSession {
        client_id: r.client_id.clone(),
        subject: c.login.subject.clone(),
        flow_id: c.flow.id.clone(),
        login_session_id: c.flow.session_id.clone(),
        requested_scope: r.scope.clone(),
        requested_audience: r.audience.clone(),
        grant_scope: c.scope.clone(),
        grant_audience: c.audience.clone(),
        remember: c.consent.remember,
        remember_for: c.consent.remember_for,
        handled_at: c.consent.handled_at,
        context: c.consent.context.clone(),
        access_token: c.consent.access_token.clone(),
        id_token: c.consent.id_token.clone(),
        grant_partition: partition,
        grant_family: family,
        skipped: c.flow.consent_skip,
    };
    sessions::store_consent(w, &remembered)
        .await
        .map_err(|_| error_to_client(w, r, "temporarily_unavailable", "The consent could not be stored; retry later."))
}

/// Back from the consent app: issue the code.
async fn consent_done(w: &Worker, req: &Request, verifier: &str, client_id: Option<&str>) -> Response {
    let cfg = w.config();
    let c = match consented(w, req, verifier, client_id, false).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let (flow, login, consent, ext) = (&c.flow, &c.login, &c.consent, &c.ext);
    let (scope, audience) = (&c.scope, &c.audience);
    let r = &flow.request;
    let snapshot = w.shared.clients.load();
    let Some(entry) = snapshot.clients.get(&r.client_id) else {
        return error_to_client(w, r, "invalid_client", "The client no longer exists.");
    };
    let client = &entry.stored.client;
    let store = &w.shared.store;
    let partition = w.partition_for(&flow.id);
    let unavailable =
        || error_to_client(w, r, "temporarily_unavailable", "The grant could not be stored; retry later.");
    let rt = r.response();
    // An ID token answers an OpenID request only: without `openid` granted there is none to give
    // (as Hydra, whose ID-token handlers then leave the response type unhandled).
    if rt.id_token && !scope.iter().any(|s| s == "openid") {
        return error_to_client(
            w,
            r,
            "unsupported_response_type",
            "The openid scope was not granted, so no ID token can be issued.",
        );
    }
    let Ok(seq) = store.next_seq(partition).await else { return unavailable() };
    let client_subject = ext.g.client_subject.clone();
    let random = w.rng.borrow_mut().next32();
    let minted = mint(&w.shared.token_keys, TokenType::AuthorizeCode, partition as u16, seq, &random);
    let now = unix_now();
    // Tokens from the authorization endpoint live as the client's implicit lifespans say.
    let life = client
        .token_lifespans(crate::oauth2::client::IssuedBy::Implicit, crate::server::code_grant::global_lifespans(cfg));
    let at_life = crate::server::code_grant::secs(life.access);
    // Every record of the grant: its family, client, subject, scope and audience.
    let grant_record = |kind, signature, life: i64, ext: String| TokenRecord {
        kind,
        signature,
        family: seq,
        client_id: r.client_id.clone(),
        subject: login.subject.clone(),
        scope: scope.join(" "),
        audience: audience.clone(),
        issued_at: now,
        expires_at: now + life,
        ext,
    };
    // The grant's first record holds the grant (userinfo reads it, revocation starts from it):
    // the code, or, when no code was asked for, a record already spent that nobody can present.
    let seal = |plain: String| w.seal_ext(partition, seq, plain);
    let unsealable = || error_to_client(w, r, "server_error", "The grant's session could not be sealed.");
    let Ok(sealed) = seal(ext.encode()) else { return unsealable() };
    let record = if rt.code {
        grant_record(TokenKind::Code, minted.signature, cfg.ttl.auth_code.as_secs() as i64, sealed)
    } else {
        grant_record(TokenKind::CodeUsed, minted.signature, at_life, sealed)
    };
    let mut records = vec![(seq, record)];
    // An access token from the authorization endpoint (implicit, hybrid): in the grant's family,
    // written in the same transaction, durable before the browser hears of it.
    let mut access_token = None;
    if rt.token {
        let Ok(at_seq) = store.next_seq(partition).await else { return unavailable() };
        let ext = serde_json::to_string(&consent.access_token).unwrap_or_else(|_| "{}".into());
        let scope = scope.join(" ");
        let g = crate::server::access_token::Grant {
            subject: &login.subject,
            scope: &scope,
            audience,
            issued_at: now,
            expires_at: now + at_life,
            ext: &ext,
        };
        let Ok(at) = crate::server::access_token::mint(w, client, partition, at_seq, &g).await else {
            return error_to_client(w, r, "server_error", "The access token could not be signed.");
        };
        let Ok(sealed) = seal(ext) else { return unsealable() };
        records.push((at_seq, grant_record(TokenKind::Access, at.signature, at_life, sealed)));
        access_token = Some(at.token);
    }
    // The ID token's key is found before the grant is written, so a client whose algorithm has
    // no key spends nothing.
    let signer = if rt.id_token {
        match crate::server::keys::id_token_signer(w, client).await {
            Ok(s) => Some(s),
            Err(_) => {
                return error_to_client(w, r, "server_error", "No key signs ID tokens with the client's algorithm.")
            }
        }
    } else {
        None
    };
    match store.issue_grant(partition, &flow.id, flow.requested_at, records).await {
        Ok(true) => {}
        Ok(false) => return error_to_client(w, r, "invalid_request", "The consent verifier has already been used."),
        Err(_) => return unavailable(),
    }
    if access_token.is_some() {
        w.metrics.tokens_issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let code = rt.code.then_some(minted.token);
    let mut id_token = None;
    if let Some(signer) = signer {
        let Ok(jti) = crate::oauth2::client::generate_uuid_v4(&SystemRandom::new()) else {
            return error_to_client(w, r, "server_error", "No randomness available.");
        };
        let claims = IdTokenClaims {
            issuer: &cfg.urls.issuer,
            subject: &client_subject,
            client_id: &r.client_id,
            now,
            lifespan_secs: crate::server::code_grant::secs(life.id),
            requested_at: flow.requested_at,
            auth_time: login.auth_time,
            nonce: r.nonce.as_deref(),
            acr: &login.acr,
            amr: &login.amr,
            sid: &flow.session_id,
            jti: &jti,
            access_token: access_token.as_deref(),
            code: code.as_deref(),
            alg: signer.alg(),
            extra: &consent.id_token,
        };
        match serde_json::to_vec(&claims.to_json()).map(|p| signer.sign(&p)) {
            Ok(Ok(t)) => id_token = Some(t),
            _ => return error_to_client(w, r, "server_error", "The ID token could not be signed."),
        }
    }
    if let Err(resp) = remember_consent(w, &c, partition, seq).await {
        return resp;
    }
    let scope = scope.join(" ");
    let expires_in = at_life.to_string();
    let mut params: Vec<(&str, &str)> = Vec::with_capacity(8);
    if let Some(c) = &code {
        params.push(("code", c));
    }
    if let Some(t) = &access_token {
        params.extend([("access_token", t.as_str()), ("token_type", "bearer"), ("expires_in", expires_in.as_str())]);
    }
    if let Some(t) = &id_token {
        params.push(("id_token", t));
    }
    params.extend([("scope", scope.as_str()), ("state", r.state.as_str()), ("iss", cfg.urls.issuer.as_str())]);
    to_client(&r.redirect_uri, r.response_mode, &params).set_cookie(w, &c.cookie, "", 0)
}

/// `/oauth2/fallbacks/{login,consent,logout,error}`: what runs when no app is configured.
pub fn fallback(req: &Request, which: &str) -> Response {
    let q = form::decode_multi(req.head.query().unwrap_or("").as_bytes()).ok();
    let get = |k: &str| q.as_ref().and_then(|q| q.get(k)).unwrap_or("").to_string();
    let (title, body) = match which {
        "error" => (
            "An error occurred",
            format!("<p><b>{}</b></p><p>{}</p>", html_escape(&get("error")), html_escape(&get("error_description"))),
        ),
        "login" | "consent" => (
            "No login and consent app is configured",
            format!(
                "<p>This server has no <code>urls.{which}</code> configured. Set <code>urls.login</code> and \
                 <code>urls.consent</code> to your app (for example <code>hydra example login-consent</code>).</p>"
            ),
        ),
        "device" => (
            "The request could not be executed because a mandatory configuration key is missing or malformed",
            "<p>You are seeing this page because configuration key <code>urls.device.verification</code> is not set              (for example <code>hydra example login-consent</code> serves a device page).</p>"
                .to_string(),
        ),
        "device/done" => (
            "You successfully authenticated on your device!",
            "<p>The Default Post Device URL is not set which is why you are seeing this fallback page. Your device              login request however succeeded.</p>"
                .to_string(),
        ),
        _ => ("You are logged out", "<p>You have been logged out.</p>".to_string()),
    };
    Response::html_page(title, &body)
}
