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
    // Handled once its verifier came back: the flow produced its code, or this step's verifier
    // was used (marked when the browser returned with it).
    let store = &w.shared.store;
    let used = match store.flow_used(partition, &flow.id).await {
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
    match step {
        Step::Login => Response::json_value(200, &flow::login_request_json(&flow, &c, client)),
        Step::Consent => Response::json_value(200, &flow::consent_request_json(&flow, &c, client)),
    }
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
