//! The device authorization grant (RFC 8628): `POST /oauth2/device/auth` (a device asks),
//! `GET /oauth2/device/verify` (the browser: challenge → user code → login → consent → approval)
//! and the token endpoint's `device_code` grant. The admin side (accepting a user code) is in
//! `flows`.
//!
//! Invariants: a device authorization is one record, in the partition its user code's key
//! names: kind `Device` while it waits, replaced in place (same signature) by the grant's `Code`
//! record when the user consents, and spent by the one exchange that wins (a replay revokes
//! the grant). Its user code is entered once (a durable marker), its approval is stored under
//! the flow's id (single use, like a consent verifier), a refusal is a durable marker the
//! device's poll reads, and nothing is answered before it is durable. Errors of the browser
//! leg are JSON (as Hydra): there is no redirect URI to send them to.

use crate::http::Request;
use crate::oauth2::authorization_code::GrantExt;
use crate::oauth2::authorize::{redirect_url, AuthRequest, ResponseMode};
use crate::oauth2::client::Client;
use crate::oauth2::client_auth;
use crate::oauth2::client_credentials::Policy;
use crate::oauth2::device::{self, DeviceChallenge, DeviceRef, DeviceVerifier, Poll};
use crate::oauth2::error::{ErrorCode, OAuthError};
use crate::oauth2::flow::{self, Purpose};
use crate::server::auth::authenticate;
use crate::server::authorize::{self, absolute, csrf_ok, found};
use crate::server::code_grant::{self, invalid_grant};
use crate::server::common::{read_form, too_old};
use crate::server::cookies::{self, Csrf, SetCookie};
use crate::server::respond::{Response, StoreResult};
use crate::server::state::{unix_now, Worker};
use crate::token::{mint, TokenType};
use hydra_storage::{Redeem, Storage, TokenKind, TokenRecord};
use ring::rand::SystemRandom;
use serde_json::json;

/// `POST /oauth2/device/auth`.
pub async fn authorize(w: &Worker, req: &Request) -> Response {
    match start(w, req).await {
        Ok(r) => r,
        Err(e) => Response::oauth_error(&e),
    }
    .no_store()
}

async fn start(w: &Worker, req: &Request) -> Result<Response, OAuthError> {
    let form = read_form(req)?;
    let presented =
        client_auth::extract(client_auth::single_authorization(req.head.header_all("authorization"))?, &form)?;
    let entry = authenticate(w, &presented).await?;
    let client = &entry.stored.client;
    let cfg = w.config();
    let audience: Vec<String> =
        form.get_all("audience").flat_map(|a| a.split(' ')).filter(|s| !s.is_empty()).map(String::from).collect();
    let policy = Policy {
        strategy: cfg.strategies.scope,
        default_grant_allowed_scope: false,
        access_token_ttl: cfg.ttl.access_token,
    };
    let (scope, audience) = device::check_request(client, form.get("client_id"), form.get("scope"), &audience, &policy)
        .map_err(|e| e.with_basic(presented.is_basic()))?;
    let store = &w.shared.store;
    let now = unix_now();
    let ttl = cfg.ttl.device_user_code.as_secs() as i64;
    let expires_at = now + ttl;
    let rng = SystemRandom::new();
    // A new user code can meet a pending one; three tries, as Hydra.
    for _ in 0..3 {
        let user_code = cfg.oauth2.user_code.generate(&rng).map_err(|_| OAuthError::new(ErrorCode::ServerError))?;
        let key = device::user_code_key(&w.shared.device.user_code_key, &cfg.oauth2.user_code.canonical(&user_code));
        let partition = w.partition_for(&key);
        let seq = store.next_seq(partition).await.oauth()?;
        let random = w.rng.borrow_mut().next32();
        let minted = mint(&w.shared.token_keys, TokenType::DeviceCode, partition as u16, seq, &random);
        let record = TokenRecord {
            kind: TokenKind::Device,
            signature: minted.signature,
            family: seq,
            client_id: client.client_id.clone(),
            subject: String::new(),
            scope: scope.clone(),
            audience: audience.clone(),
            issued_at: now,
            expires_at,
            ext: String::new(),
        };
        // The user code's row names the record; both are written at once, or neither when the
        // code is taken.
        if store.issue_grant(partition, &key, expires_at, vec![(seq, record)]).await.oauth()? {
            let uri = format!("{}/oauth2/device/verify", cfg.urls.public);
            let body = json!({
                "device_code": minted.token,
                "user_code": user_code,
                "verification_uri_complete": redirect_url(&uri, &[("user_code", &user_code)]),
                "verification_uri": uri,
                "expires_in": ttl,
                "interval": cfg.oauth2.device_polling_interval.as_secs().max(1),
            });
            return Ok(Response::json_value(200, &body));
        }
    }
    Err(OAuthError::hint(ErrorCode::ServerError, "No free user code was found; try again."))
}

/// An error of the browser leg: JSON with Hydra's status for the code.
fn browser_error(status: u16, error: &str, description: &str) -> Response {
    Response::generic_error(status, error, description).header("Cache-Control", "no-store")
}

/// `GET /oauth2/device/verify`.
pub async fn verify(w: &Worker, req: &Request) -> Response {
    let Ok(q) = crate::http::form::decode_multi(req.head.query().unwrap_or("").as_bytes()) else {
        return browser_error(400, "invalid_request", "The query string is malformed.");
    };
    let get = |k: &str| q.get(k).map(str::trim).filter(|v| !v.is_empty());
    let client_id = get("client_id");
    let r = if let Some(v) = get("consent_verifier") {
        approve(w, req, v, client_id).await
    } else if let Some(v) = get("login_verifier") {
        authorize::login_done(w, req, v, true).await
    } else if let Some(v) = get("device_verifier") {
        verified(w, req, v, client_id).await
    } else {
        challenge(w, q.get("user_code"))
    };
    r.header("Cache-Control", "no-store")
}

/// A browser arrives (perhaps with the user code from `verification_uri_complete`): a challenge
/// for the verification page, and the CSRF cookie its verifier will be checked against.
fn challenge(w: &Worker, user_code: Option<&str>) -> Response {
    let cfg = w.config();
    let rng = SystemRandom::new();
    let (Ok(id), Ok(csrf)) = (flow::random_id(&rng), flow::random_id(&rng)) else {
        return browser_error(500, "server_error", "No randomness available.");
    };
    let c = DeviceChallenge { id, csrf, requested_at: unix_now() };
    let Ok(blob) = flow::seal_json(&w.shared.flow_keys, Purpose::DeviceChallenge, &c, &rng) else {
        return browser_error(500, "server_error", "The device challenge could not be sealed.");
    };
    let mut params = vec![("device_challenge", blob.as_str())];
    if let Some(u) = user_code {
        params.push(("user_code", u));
    }
    let ttl = cfg.ttl.login_consent_request.as_secs() as i64;
    found(redirect_url(&absolute(w, &cfg.urls.device_verification), &params)).set_cookie(
        w,
        &cookies::csrf_name(w, Csrf::Device, ""),
        &c.csrf,
        ttl,
    )
}

/// Back from the verification page with a verifier: the user code is spent (once, durably) and
/// the device's request goes to the login app.
async fn verified(w: &Worker, req: &Request, verifier: &str, client_id: Option<&str>) -> Response {
    let cfg = w.config();
    let invalid = || {
        browser_error(
            403,
            "access_denied",
            "The device verifier has already been used, has not been granted, or is invalid.",
        )
    };
    let Ok(v) = flow::open_json::<DeviceVerifier>(&w.shared.flow_keys, Purpose::DeviceVerifier, verifier) else {
        return invalid();
    };
    if too_old(w, v.challenge.requested_at) {
        return browser_error(401, "request_unauthorized", "The device request has expired, please try again.");
    }
    let csrf_name = cookies::csrf_name(w, Csrf::Device, "");
    if !csrf_ok(w, req, &csrf_name, &v.challenge.csrf) {
        return browser_error(
            403,
            "request_forbidden",
            "The CSRF value from the token does not match the CSRF value from the data store.",
        );
    }
    match client_id {
        None => return browser_error(401, "invalid_client", "Query parameter 'client_id' is missing."),
        Some(c) if c != v.client_id => {
            return browser_error(
                401,
                "invalid_client",
                "The flow client id does not match the device request client id.",
            )
        }
        Some(_) => {}
    }
    let store = &w.shared.store;
    let rec = match code_grant::live_record(w, v.partition, v.seq).await {
        Ok(Some(rec)) if rec.kind == TokenKind::Device && rec.client_id == v.client_id => rec,
        Ok(_) => return invalid(),
        Err(e) => return Response::oauth_error(&crate::server::respond::store_error(e)),
    };
    if rec.expires_at <= unix_now() {
        return browser_error(400, "expired_token", "The device code has expired; start again on the device.");
    }
    let snapshot = w.shared.clients.load();
    let Some(entry) = snapshot.clients.get(&rec.client_id) else {
        return browser_error(401, "invalid_client", "Client does not exist");
    };
    // Spent last, once nothing else can refuse: a refused verifier leaves the code usable.
    match store.mark_flow(v.partition, &device::used_key(&v.user_code_key), rec.expires_at).await {
        Ok(true) => {}
        Ok(false) => return invalid(),
        Err(e) => return Response::oauth_error(&crate::server::respond::store_error(e)),
    }
    let r = AuthRequest {
        client_id: rec.client_id.clone(),
        redirect_uri: String::new(),
        redirect_uri_given: false,
        response_type: String::new(),
        response_mode: ResponseMode::Query,
        scope: rec.scope.split(' ').filter(|s| !s.is_empty()).map(String::from).collect(),
        audience: rec.audience.clone(),
        state: String::new(),
        nonce: None,
        prompt: Vec::new(),
        max_age: None,
        id_token_hint: None,
        login_hint: None,
        acr_values: Vec::new(),
        ui_locales: Vec::new(),
        display: None,
        code_challenge: None,
        code_challenge_method: None,
        claims: None,
    };
    let back = format!("{}/oauth2/device/verify", cfg.urls.public);
    let request_url = redirect_url(&back, &[("client_id", &rec.client_id)]);
    let device = Some(DeviceRef { partition: v.partition, seq: v.seq });
    authorize::to_login(w, req, r, Some(&entry.stored.client), request_url, device)
        .await
        .set_cookie(w, &csrf_name, "", 0)
}

/// Back from the consent app: the device authorization becomes the grant's code record (same
/// key, same signature), which the device's next poll exchanges.
async fn approve(w: &Worker, req: &Request, verifier: &str, client_id: Option<&str>) -> Response {
    let c = match authorize::consented(w, req, verifier, client_id, true).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let Some(d) = c.flow.device else {
        return browser_error(500, "server_error", "The flow is not a device flow.");
    };
    let store = &w.shared.store;
    let gone = || browser_error(400, "invalid_request", "The device authorization no longer exists or has expired.");
    let used = || {
        browser_error(
            403,
            "access_denied",
            "The consent verifier has already been used, has not been granted, or is invalid.",
        )
    };
    let rec = match code_grant::live_record(w, d.partition, d.seq).await {
        Ok(Some(rec)) if rec.kind == TokenKind::Device && rec.client_id == c.flow.request.client_id => rec,
        Ok(Some(rec)) if matches!(rec.kind, TokenKind::Code | TokenKind::CodeUsed) => return used(),
        Ok(_) => return gone(),
        Err(e) => return Response::oauth_error(&crate::server::respond::store_error(e)),
    };
    let now = unix_now();
    if rec.expires_at <= now {
        return gone();
    }
    let ext = match w.seal_ext(d.partition, d.seq, c.ext.encode()) {
        Ok(ext) => ext,
        Err(e) => return Response::oauth_error(&e),
    };
    let code = TokenRecord {
        kind: TokenKind::Code,
        signature: rec.signature,
        family: d.seq,
        client_id: rec.client_id.clone(),
        subject: c.login.subject.clone(),
        scope: c.scope.join(" "),
        audience: c.audience.clone(),
        issued_at: now,
        expires_at: rec.expires_at,
        ext,
    };
    match store.issue_grant(d.partition, &c.flow.id, c.flow.requested_at, vec![(d.seq, code)]).await {
        Ok(true) => {}
        Ok(false) => return used(),
        Err(e) => return Response::oauth_error(&crate::server::respond::store_error(e)),
    }
    if let Err(resp) = authorize::remember_consent(w, &c, d.partition, d.seq).await {
        return resp;
    }
    let success = absolute(w, &w.config().urls.device_success);
    found(redirect_url(&success, &[("client_id", &rec.client_id)])).set_cookie(w, &c.cookie, "", 0)
}

/// `grant_type=urn:ietf:params:oauth:grant-type:device_code` at the token endpoint.
pub async fn exchange(
    w: &Worker,
    client: &Client,
    device_code: &str,
    hook_form: &[(String, String)],
) -> Result<Vec<u8>, OAuthError> {
    if !client.has_grant(device::GRANT_TYPE) {
        return Err(OAuthError::hint(
            ErrorCode::UnauthorizedClient,
            format!("The OAuth 2.0 Client is not allowed to use authorization grant '{}'.", device::GRANT_TYPE),
        ));
    }
    let (partition, seq, rec, sealed) = code_grant::stored(w, device_code, TokenType::DeviceCode).await?;
    if rec.client_id != client.client_id {
        return Err(invalid_grant(
            "The OAuth 2.0 Client ID from this request does not match the one from the authorize request.",
        ));
    }
    let store = &w.shared.store;
    let now = unix_now();
    let expired = || OAuthError::hint(ErrorCode::ExpiredToken, "Start a new device authorization.");
    match rec.kind {
        TokenKind::Device => {
            if now >= rec.expires_at {
                return Err(expired());
            }
            if store.flow_used(partition, &device::denied_key(partition, seq)).await.oauth()? {
                return Err(OAuthError::hint(ErrorCode::AccessDenied, "The user refused the device authorization."));
            }
            let interval = w.config().oauth2.device_polling_interval.as_millis() as u64;
            let poll = match w.shared.device.polls.lock() {
                Ok(mut g) => {
                    g.poll((partition, seq), crate::server::state::monotonic_ms(), now, interval, rec.expires_at)
                }
                Err(_) => Poll::Ok,
            };
            Err(match poll {
                Poll::SlowDown => OAuthError::new(ErrorCode::SlowDown),
                Poll::Ok => OAuthError::new(ErrorCode::AuthorizationPending),
            })
        }
        TokenKind::Code => {
            if now >= rec.expires_at {
                return Err(expired());
            }
            let mut ext = GrantExt::parse(&rec.ext)?;
            let scope: Vec<String> = rec.scope.split(' ').filter(|s| !s.is_empty()).map(String::from).collect();
            let rec = code_grant::hooked(w, rec, device::GRANT_TYPE, &scope, &mut ext, hook_form).await?;
            let issued = code_grant::issue(
                w,
                (client, crate::oauth2::client::IssuedBy::DeviceCode),
                partition,
                &rec,
                &scope,
                Some(&ext),
                sealed,
            )
            .await?;
            let n = issued.records.len() as u64;
            match store.redeem_code(partition, seq, rec.signature, issued.records).await.oauth()? {
                Redeem::Done(_) => {
                    if let Ok(mut g) = w.shared.device.polls.lock() {
                        g.forget((partition, seq));
                    }
                    code_grant::revoked_meanwhile(w, partition, seq, &rec).await?;
                    w.metrics.tokens_issued.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    Ok(issued.body)
                }
                Redeem::Replayed => Err(invalid_grant("The device code has already been used.")),
                Redeem::Missing => Err(invalid_grant("The device code is unknown or was revoked.")),
            }
        }
        TokenKind::CodeUsed => {
            // A replay: the store revokes every token the device code bought.
            store.redeem_code(partition, seq, rec.signature, Vec::new()).await.oauth()?;
            Err(invalid_grant("The device code has already been used."))
        }
        _ => Err(invalid_grant("The token is not a device code.")),
    }
}
