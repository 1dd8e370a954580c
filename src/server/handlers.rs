//! Dispatch from a route to its handler, plus the trivial endpoints (health, version).

use crate::server::conn::Request;
use crate::server::respond::Response;
use crate::server::router::{route, Api, Route};
use crate::server::state::Worker;
use crate::server::{clients, introspect, revoke, token, VERSION};
use hydra_storage::ClientStore;
use serde_json::json;

pub async fn dispatch(w: &Worker, api: Api, req: &Request) -> Response {
    let r = route(api, req.head.method, &req.head.path);
    let resp = match r {
        Route::HealthAlive => Response::json_value(200, &json!({"status": "ok"})),
        Route::HealthReady => ready(w, api),
        Route::Version => Response::json_value(200, &json!({"version": VERSION})),
        Route::Token => token::handle(w, req).await,
        Route::Revoke => revoke::handle(w, req).await,
        Route::Introspect => introspect::handle(w, req).await,
        Route::DeleteTokens => clients::delete_tokens(w, req).await,
        Route::ListClients => clients::list(w, req),
        Route::CreateClient => clients::create(w, req).await,
        Route::GetClient(id) => clients::get(w, &id),
        Route::PutClient(id) => clients::put(w, req, &id).await,
        Route::PatchClient(id) => clients::patch(w, req, &id).await,
        Route::DeleteClient(id) => clients::delete(w, &id).await,
        Route::ClientLifespans(id) => clients::lifespans(w, req, &id).await,
        Route::RotateSecret(id) => clients::rotate(w, &id).await,
        Route::DeleteRotatedSecrets(id) => clients::delete_rotated(w, &id).await,
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
fn ready(w: &Worker, api: Api) -> Response {
    match w.shared.store.ping() {
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

/// Whether the request declares a form body (`application/x-www-form-urlencoded`, parameters
/// such as `charset` allowed).
pub fn is_form(req: &Request) -> bool {
    req.head.header("content-type").is_some_and(|ct| {
        ct.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    })
}
