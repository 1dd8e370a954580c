//! Dispatch from a route to its handler, plus the trivial endpoints (health, version, metrics):
//! the top of the server's module graph (handlers import leaf modules, never this one).

use crate::http::Request;
use crate::server::respond::Response;
use crate::server::router::{route, Api, Route};
use crate::server::state::Worker;
use crate::server::{
    authorize, backup, clients, cors, device, flows, introspect, keys, logout, oidc, registration, revoke, sessions,
    token, trust,
};
use hydra_storage::Storage;
use serde_json::json;

/// Server version reported by `/version` and `hydra version`.
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

pub async fn dispatch(w: &Worker, api: Api, req: &Request) -> Response {
    let started = std::time::Instant::now();
    let r = route(api, req.head.method, req.head.path());
    let metric = crate::server::metrics::route_index(&r);
    let resp = match cors::preflight(w, api, req) {
        Some(p) => p,
        None => {
            let resp = answer(w, api, req, &r).await;
            cors::decorate(w, api, &r, req, resp).await
        }
    };
    let micros = started.elapsed().as_micros() as u64;
    w.metrics.record(metric, resp.status, micros);
    let id = request_id(w, req);
    let cfg = w.config();
    let quiet = if api == Api::Public { cfg.serve.quiet_health.0 } else { cfg.serve.quiet_health.1 };
    if !(quiet && matches!(r, Route::HealthAlive | Route::HealthReady)) {
        let api_name = if api == Api::Public { "public" } else { "admin" };
        // The path only, unless log.leak_sensitive_values: queries carry challenges, verifiers
        // and codes, and even then their values never reach a log.
        match req.head.query().filter(|_| cfg.log.leak_sensitive_values) {
            None => crate::log::request(api_name, req.head.method.as_str(), req.head.path(), resp.status, micros, &id),
            Some(q) => {
                let full = format!("{}?{}", req.head.path(), crate::log::redacted_query(q, &cfg.log.redaction_text));
                crate::log::request(api_name, req.head.method.as_str(), &full, resp.status, micros, &id)
            }
        }
    }
    resp.header("X-Request-Id", id)
}

/// The caller's `X-Request-Id` when it is a plain token (at most 128 of `A-Za-z0-9._:-`), or a
/// new random one: a value that goes into every log line must not be able to forge log syntax.
fn request_id(w: &Worker, req: &Request) -> String {
    let given = req.head.header("x-request-id").filter(|v| {
        !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
    });
    match given {
        Some(v) => v.to_string(),
        None => crate::token::hex(&w.next_request_id()),
    }
}

async fn answer(w: &Worker, api: Api, req: &Request, r: &Route) -> Response {
    let resp = match r {
        Route::HealthAlive => Response::json_value(200, &json!({"status": "ok"})),
        Route::HealthReady => ready(w, api).await,
        Route::Version => Response::json_value(200, &json!({"version": VERSION})),
        Route::Token => token::handle(w, req).await,
        Route::Revoke => revoke::handle(w, req).await,
        Route::Introspect => introspect::handle(w, req).await,
        Route::DeleteTokens => clients::delete_tokens(w, req).await,
        Route::ListClients => clients::list(w, req),
        Route::CreateClient => clients::create(w, req).await,
        Route::GetClient(id) => clients::get(w, id),
        Route::PutClient(id) => clients::put(w, req, id).await,
        Route::PatchClient(id) => clients::patch(w, req, id).await,
        Route::DeleteClient(id) => clients::delete(w, id).await,
        Route::ClientLifespans(id) => clients::lifespans(w, req, id).await,
        Route::RotateSecret(id) => clients::rotate(w, id).await,
        Route::DeleteRotatedSecrets(id) => clients::delete_rotated(w, id).await,
        Route::GetKeySet(set) => keys::get_set(w, set),
        Route::CreateKey(set) => keys::create(w, req, set).await,
        Route::PutKeySet(set) => keys::put_set(w, req, set).await,
        Route::DeleteKeySet(set) => keys::delete_set(w, set).await,
        Route::GetKey(set, kid) => keys::get_key(w, set, kid),
        Route::PutKey(set, kid) => keys::put_key(w, req, set, kid).await,
        Route::DeleteKey(set, kid) => keys::delete_key(w, set, kid).await,
        Route::WellKnownJwks => keys::well_known(w).await,
        Route::Authorize => authorize::handle(w, req).await,
        Route::Fallback(which) => authorize::fallback(req, which),
        Route::Discovery => oidc::discovery(w),
        Route::Userinfo => oidc::userinfo(w, req).await,
        Route::Metrics => crate::server::metrics::answer(&w.shared.metrics, &w.shared.janitor, &w.shared.store),
        Route::ListConsentSessions => sessions::list_consent(w, req).await,
        Route::RevokeConsentSessions => sessions::revoke_consent(w, req).await,
        Route::RevokeLoginSessions => sessions::revoke_login(w, req).await,
        Route::FlowRequest(consent, action) => {
            let step = if *consent { flows::Step::Consent } else { flows::Step::Login };
            match action {
                None => flows::get(w, req, step).await,
                Some(accept) => flows::answer(w, req, step, *accept).await,
            }
        }
        Route::Logout => logout::handle(w, req).await,
        Route::LogoutFallback => logout::fallback(w, req).await,
        Route::LogoutRequest(None) => logout::get(w, req).await,
        Route::LogoutRequest(Some(accept)) => logout::answer(w, req, *accept).await,
        Route::ListTrust => trust::list(w, req),
        Route::CreateTrust => trust::create(w, req).await,
        Route::GetTrust(id) => trust::get(w, id),
        Route::DeleteTrust(id) => trust::delete(w, id).await,
        Route::Register => registration::create(w, req).await,
        Route::GetRegistered(id) => registration::get(w, req, id),
        Route::PutRegistered(id) => registration::put(w, req, id).await,
        Route::DeleteRegistered(id) => registration::delete(w, req, id).await,
        // Not built: say so plainly rather than answer 404 (docs/compat.md).
        Route::Credentials => Response::generic_error(
            501,
            "unsupported_request",
            "Verifiable credentials (OpenID for Verifiable Credential Issuance, draft 00) are not served by this server.",
        )
        .no_store(),
        Route::Backup => backup::create(w, req).await,
        Route::DeviceAuth => device::authorize(w, req).await,
        Route::DeviceVerify => device::verify(w, req).await,
        Route::DeviceAccept => flows::accept_device(w, req).await,
        Route::NotFound => Response::not_found(),
        Route::MethodNotAllowed(allow) => Response::method_not_allowed(allow),
    };
    if matches!(req.head.method, crate::http::request::Method::Get | crate::http::request::Method::Head)
        && !resp.headers.iter().any(|(k, _)| *k == "Cache-Control")
    {
        // Hydra marks every GET answer uncacheable.
        return resp.header("Cache-Control", "private, no-cache, no-store, must-revalidate");
    }
    resp
}

/// Readiness: the store answers a read. The public port hides the reason (as Hydra).
async fn ready(w: &Worker, api: Api) -> Response {
    match w.shared.store.ping().await {
        Ok(()) => Response::json_value(200, &json!({"status": "ok"})),
        Err(e) => {
            let reason = match api {
                Api::Admin => e.to_string(),
                Api::Public => "the database is not reachable".to_string(),
            };
            Response::json_value(503, &json!({"errors": {"database": reason}}))
        }
    }
}
