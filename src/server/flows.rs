//! The admin side of login and consent (`/admin/oauth2/auth/requests/{login,consent}[/accept|/reject]`):
//! a login or consent app reads a challenge and answers it; the answer is a verifier the
//! browser carries back to `/oauth2/auth`.
//!
//! Invariants: a challenge opens only for its own purpose; an expired one answers
//! `401 request_unauthorized`, a used one `410` with the original request URL, an invalid one
//! `404`; no state is written here (the flow lives in the blobs).

use crate::http::Request;
use crate::oauth2::authorize::redirect_url;
use crate::oauth2::flow::{self, Flow, Outcome, Purpose};
use crate::server::respond::store_error;
use crate::server::respond::Response;
use crate::server::state::{unix_now, Worker};
use hydra_storage::Storage;
use ring::rand::SystemRandom;
use serde_json::json;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Login,
    Consent,
}

impl Step {
    fn challenge_param(self) -> &'static str {
        match self {
            Step::Login => "login_challenge",
            Step::Consent => "consent_challenge",
        }
    }
    fn purpose(self) -> Purpose {
        match self {
            Step::Login => Purpose::LoginChallenge,
            Step::Consent => Purpose::ConsentChallenge,
        }
    }
}

fn challenge(req: &Request, step: Step) -> Option<String> {
    let q = crate::http::form::decode_multi(req.head.query().unwrap_or("").as_bytes()).ok()?;
    q.get(step.challenge_param()).or_else(|| q.get("challenge")).filter(|c| !c.is_empty()).map(String::from)
}

fn not_found() -> Response {
    Response::generic_error(404, "Not Found", "Unable to locate the requested resource")
}

/// Opens and checks a challenge, or answers why not.
async fn load(w: &Worker, req: &Request, step: Step) -> Result<(Flow, String), Response> {
    let Some(c) = challenge(req, step) else {
        return Err(Response::generic_error(
            400,
            "invalid_request",
            &format!("The {} parameter is missing.", step.challenge_param()),
        ));
    };
    let flow = flow::open_flow(&w.shared.flow_keys, step.purpose(), &c).map_err(|_| not_found())?;
    if crate::server::common::too_old(w, flow.requested_at) {
        return Err(Response::generic_error(401, "request_unauthorized", "The request has expired."));
    }
    let partition = w.partition_for(&flow.id);
    // Handled once its verifier came back: the flow produced its grant (or was refused at
    // consent), or this step's verifier was used (marked when the browser returned with it).
    let store = &w.shared.store;
    let used = match store.flow_used(grant_partition(w, &flow), &flow.id).await {
        Ok(true) => Ok(true),
        Ok(false) => store.flow_used(partition, &step_marker(&flow.id, step)).await,
        Err(e) => Err(e),
    };
    match used {
        Ok(false) => Ok((flow, c)),
        Ok(true) => Err(Response::json_value(410, &json!({"redirect_to": flow.request_url}))),
        Err(e) => Err(Response::oauth_error(&store_error(e))),
    }
}

/// The partition of a flow's single-use row (where its grant is stored): the device's for a
/// device flow, else the flow id's.
pub fn grant_partition(w: &Worker, flow: &Flow) -> u32 {
    match flow.device {
        Some(d) => d.partition,
        None => w.partition_for(&flow.id),
    }
}

/// The key of the row that records that a flow's login or consent verifier was used.
pub fn step_marker(flow_id: &str, step: Step) -> String {
    match step {
        Step::Login => format!("{flow_id}\0login"),
        Step::Consent => format!("{flow_id}\0consent"),
    }
}

fn client_json(w: &Worker, client_id: &str) -> serde_json::Value {
    match w.shared.clients.load().clients.get(client_id) {
        Some(e) => e.stored.client.to_json(None),
        None => json!({"client_id": client_id}),
    }
}

/// `GET …/requests/login` and `GET …/requests/consent`.
pub async fn get(w: &Worker, req: &Request, step: Step) -> Response {
    let (flow, c) = match load(w, req, step).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let client = client_json(w, &flow.request.client_id);
    let mut body = match step {
        Step::Login => flow::login_request_json(&flow, &c, client),
        Step::Consent => flow::consent_request_json(&flow, &c, client),
    };
    // The hint's claims, verified again (as Hydra shows them): the apps can tell whom the relying
    // party expects before they ask anyone to log in.
    let r = &flow.request;
    if let Some(claims) =
        r.id_token_hint.as_deref().and_then(|h| crate::server::keys::id_token_hint_claims(w, h, &r.client_id))
    {
        if let Some(ctx) = body.get_mut("oidc_context").and_then(|v| v.as_object_mut()) {
            ctx.insert("id_token_hint_claims".into(), serde_json::Value::Object(claims));
        }
    }
    Response::json_value(200, &body)
}

/// `PUT …/accept` and `PUT …/reject`: seals the answer into a verifier.
pub async fn answer(w: &Worker, req: &Request, step: Step, accept: bool) -> Response {
    let (mut flow, _) = match load(w, req, step).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = unix_now();
    let outcome = if accept {
        match step {
            Step::Login => flow::parse_login_accept(&req.body, now).and_then(|mut l| {
                if flow.login_skip {
                    // A skipped login keeps the remembered session: same subject, same time.
                    if l.subject != flow.session_subject {
                        return Err("The subject does not match the subject of the remembered login session.".into());
                    }
                    l.auth_time = flow.session_auth_time;
                    l.remember = true;
                }
                flow.login = Some(Outcome::Accepted(l));
                Ok(())
            }),
            Step::Consent => flow::parse_consent_accept(&req.body, now).map(|c| {
                flow.consent = Some(Outcome::Accepted(c));
            }),
        }
    } else {
        flow::parse_reject(&req.body).map(|e| match step {
            Step::Login => flow.login = Some(Outcome::Rejected(e)),
            Step::Consent => flow.consent = Some(Outcome::Rejected(e)),
        })
    };
    if let Err(d) = outcome {
        return Response::generic_error(400, "invalid_request", &d);
    }
    if step == Step::Consent && !matches!(flow.login, Some(Outcome::Accepted(_))) {
        return Response::generic_error(400, "invalid_request", "The login of this flow was not accepted.");
    }
    let (purpose, param) = match step {
        Step::Login => (Purpose::LoginVerifier, "login_verifier"),
        Step::Consent => (Purpose::ConsentVerifier, "consent_verifier"),
    };
    match flow::seal_flow(&w.shared.flow_keys, purpose, &flow, &SystemRandom::new()) {
        Ok(v) => Response::json_value(200, &json!({"redirect_to": redirect_url(&flow.request_url, &[(param, &v)])})),
        Err(_) => Response::generic_error(500, "server_error", "The verifier could not be sealed."),
    }
}

/// Records that the device authorization a flow is for was refused (its login or consent was
/// rejected), so the device's next poll gets `access_denied`; nothing for other flows.
pub async fn deny_device(w: &Worker, flow: &Flow) -> Result<(), Response> {
    let Some(d) = flow.device else { return Ok(()) };
    // Kept as long as the device authorization can live.
    let until = unix_now() + w.config().ttl.device_user_code.as_secs() as i64;
    let key = crate::oauth2::device::denied_key(d.partition, d.seq);
    match w.shared.store.mark_flow(d.partition, &key, until).await {
        Ok(_) => Ok(()),
        Err(e) => Err(Response::oauth_error(&store_error(e))),
    }
}

/// The device authorization a user code names, if it is still waiting for its user: where it
/// is, the record, and the key of its user code. `Err` carries why not (for the log and tests,
/// never shown beyond Hydra's one message).
pub async fn pending_device(
    w: &Worker,
    typed: &str,
) -> Result<Result<(u32, u64, hydra_storage::TokenRecord, String), &'static str>, Response> {
    let gates = &w.shared.device;
    let code = w.config().oauth2.user_code.canonical(typed);
    if code.is_empty() || code.len() > 64 {
        return Ok(Err("malformed"));
    }
    let key = crate::oauth2::device::user_code_key(&gates.user_code_key, &code);
    let partition = w.partition_for(&key);
    let store = &w.shared.store;
    let found = async {
        let Some(seq) = store.flow_grant(partition, &key).await? else { return Ok(Err("unknown")) };
        if store.flow_used(partition, &crate::oauth2::device::used_key(&key)).await? {
            return Ok(Err("used"));
        }
        match crate::server::code_grant::live_record(w, partition, seq).await? {
            Some(rec) if rec.kind == hydra_storage::TokenKind::Device && rec.expires_at > unix_now() => {
                Ok(Ok((partition, seq, rec, key)))
            }
            Some(rec) if rec.kind == hydra_storage::TokenKind::Device => Ok(Err("expired")),
            _ => Ok(Err("gone")),
        }
    };
    found.await.map_err(|e: hydra_storage::StoreError| Response::oauth_error(&store_error(e)))
}

/// `PUT /admin/oauth2/auth/requests/device/accept?device_challenge=…` with `{"user_code": …}`:
/// the verification page found the device the user means; the answer sends the browser back to
/// `/oauth2/device/verify` with a verifier, on to login and consent.
///
/// A challenge may be answered with a wrong user code [`crate::oauth2::device::MAX_GUESSES`]
/// times; after that it is refused whatever the code. A node takes at most
/// `engine.device_user_code_failures_per_minute` wrong codes over all challenges (new challenges
/// cost nothing to make), then answers 429 for the rest of the minute. Both are counted in
/// `hydra_device_user_code_failures_total{reason="locked"}`, wrong codes in `{reason="wrong"}`.
pub async fn accept_device(w: &Worker, req: &Request) -> Response {
    use crate::oauth2::device::{DeviceChallenge, DeviceVerifier, Guess};
    use crate::server::metrics::{DEVICE_LOCKED, DEVICE_WRONG_CODES};
    use std::sync::atomic::Ordering::Relaxed;
    let q = crate::http::form::decode_multi(req.head.query().unwrap_or("").as_bytes()).ok();
    let Some(c) = q.as_ref().and_then(|q| q.get("device_challenge")).filter(|c| !c.is_empty()) else {
        return Response::generic_error(
            400,
            "invalid_request",
            "Query parameter 'device_challenge' is not defined but should have been.",
        );
    };
    let Ok(challenge) = flow::open_json::<DeviceChallenge>(&w.shared.flow_keys, Purpose::DeviceChallenge, c) else {
        return not_found();
    };
    if crate::server::common::too_old(w, challenge.requested_at) {
        return Response::generic_error(
            401,
            "request_unauthorized",
            "The device request has expired, please try again.",
        );
    }
    let typed = match serde_json::from_slice::<serde_json::Value>(&req.body) {
        Ok(serde_json::Value::Object(m)) => match m.get("user_code") {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
            Some(serde_json::Value::String(_)) | None | Some(serde_json::Value::Null) => {
                return Response::generic_error(400, "invalid_request", "Field 'user_code' must not be empty.")
            }
            Some(_) => return Response::generic_error(400, "invalid_request", "Field 'user_code' must be a string."),
        },
        _ => return Response::generic_error(400, "invalid_request", "Unable to decode request body as a JSON object."),
    };
    let gates = &w.shared.device;
    let (now, now_ms) = (unix_now(), crate::server::state::monotonic_ms());
    let until = challenge.requested_at + w.config().ttl.login_consent_request.as_secs() as i64;
    let per_minute = w.config().engine.device_guesses_per_minute;
    let guess = match gates.guesses.lock() {
        Ok(mut g) => g.reserve(&challenge.id, now, until, now_ms, per_minute),
        Err(_) => Guess::Busy,
    };
    match guess {
        Guess::Go => {}
        Guess::ChallengeSpent => {
            DEVICE_LOCKED.fetch_add(1, Relaxed);
            return Response::generic_error(
                400,
                "invalid_request",
                "Too many wrong user codes were entered for this device challenge; start again.",
            );
        }
        Guess::Busy => {
            DEVICE_LOCKED.fetch_add(1, Relaxed);
            return Response::generic_error(
                429,
                "too_many_requests",
                "Too many wrong user codes were entered on this server; try again in a minute.",
            )
            .header("Retry-After", "60");
        }
    }
    let refund = || {
        if let Ok(mut g) = gates.guesses.lock() {
            g.refund(&challenge.id);
        }
    };
    let (partition, seq, rec, user_code_key) = match pending_device(w, &typed).await {
        Ok(Ok(found)) => {
            refund();
            found
        }
        Ok(Err(why)) => {
            DEVICE_WRONG_CODES.fetch_add(1, Relaxed);
            crate::debug!("a user code was refused", "reason" = why);
            return Response::generic_error(
                400,
                "invalid_request",
                "The 'user_code' session could not be found or has expired or is otherwise malformed.",
            );
        }
        Err(resp) => {
            refund();
            return resp;
        }
    };
    let verifier = DeviceVerifier { challenge, client_id: rec.client_id.clone(), partition, seq, user_code_key };
    match flow::seal_json(&w.shared.flow_keys, Purpose::DeviceVerifier, &verifier, &SystemRandom::new()) {
        Ok(v) => {
            let url = format!("{}/oauth2/device/verify", w.config().urls.public);
            let to = redirect_url(&url, &[("client_id", &rec.client_id), ("device_verifier", &v)]);
            Response::json_value(200, &json!({"redirect_to": to}))
        }
        Err(_) => Response::generic_error(500, "server_error", "The verifier could not be sealed."),
    }
}
