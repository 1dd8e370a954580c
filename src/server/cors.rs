//! CORS on both listeners (`serve.{public,admin}.cors.*`) and, on the public one, each client's
//! `allowed_cors_origins` at the endpoints where Hydra honours them: token, revocation, userinfo,
//! discovery and the JWKS document.
//!
//! Invariants: nothing happens unless the listener's `cors.enabled` is set; a preflight is
//! answered here, before routing, from the policy and the client snapshot (never storage); an
//! actual request's answer gets its CORS headers after the handler ran, and only the userinfo
//! endpoint, whose client is known from its access token alone, costs a token read (and only for
//! an origin the listener's own list does not allow).

use crate::http::cors::{client_allows, Cors, Decision};
use crate::http::request::Method;
use crate::http::Request;
use crate::server::respond::Response;
use crate::server::router::{route, Api, Route};
use crate::server::state::Worker;

fn policy(w: &Worker, api: Api) -> Option<&Cors> {
    let serve = &w.config().serve;
    match api {
        Api::Public => serve.cors_public.as_ref(),
        Api::Admin => serve.cors_admin.as_ref(),
    }
}

/// Whether clients' `allowed_cors_origins` count on this route (Hydra's list).
fn per_client(api: Api, r: &Route) -> bool {
    api == Api::Public
        && matches!(r, Route::Token | Route::Revoke | Route::Userinfo | Route::Discovery | Route::WellKnownJwks)
}

fn log(cors: &Cors, origin: &str, what: &str, d: Decision) {
    if cors.debug {
        crate::info!("cors", "origin" = origin, "request" = what, "decision" = format!("{d:?}"));
    }
}

/// `OPTIONS` with `Origin` and `Access-Control-Request-Method`, on a listener with CORS enabled:
/// the preflight's answer (204). `None` for anything else (routed as usual).
pub fn preflight(w: &Worker, api: Api, req: &Request) -> Option<Response> {
    if req.head.method != Method::Options {
        return None;
    }
    let cors = policy(w, api)?;
    let origin = req.head.header("origin")?;
    let asked = req.head.header("access-control-request-method")?.trim();
    let mut d = cors.decide(origin);
    // Some client lets this origin in (an index of every client's patterns: two lookups); which
    // one is known from the actual request.
    if d == Decision::Refused
        && per_client(api, &route(api, Method::from_token(asked), req.head.path()))
        && w.shared.clients.load().cors_allows(origin)
    {
        d = Decision::Origin;
    }
    log(cors, origin, "preflight", d);
    let mut resp = Response::empty(204);
    for (k, v) in cors.preflight(origin, d, asked, req.head.header("access-control-request-headers")) {
        resp = resp.header(k, v);
    }
    Some(resp)
}

/// The CORS headers of an actual request's answer.
pub async fn decorate(w: &Worker, api: Api, r: &Route, req: &Request, mut resp: Response) -> Response {
    let Some(cors) = policy(w, api) else { return resp };
    let Some(origin) = req.head.header("origin") else { return resp };
    let mut d = cors.decide(origin);
    if d == Decision::Refused && per_client(api, r) && client_of(w, r, req).await == Some(true) {
        d = Decision::Origin;
    }
    log(cors, origin, req.head.path(), d);
    for (k, v) in cors.actual(origin, d, req.head.method.as_str()) {
        resp = resp.header(k, v);
    }
    resp
}

/// Whether the client a request names lets its origin in: the form's `client_id` or the Basic
/// user name (token, revocation; not authenticated here, as Hydra), or the client of the bearer
/// token (userinfo). `None` when no client is named.
async fn client_of(w: &Worker, r: &Route, req: &Request) -> Option<bool> {
    let origin = req.head.header("origin")?;
    let snapshot = w.shared.clients.load();
    let allows = |id: &str| {
        snapshot.clients.get(id).is_some_and(|e| client_allows(&e.stored.client.allowed_cors_origins, origin))
    };
    if *r == Route::Userinfo {
        let token = crate::server::oidc::bearer(req).ok().flatten()?;
        let (_, view) = crate::server::common::find_token(w, &token).await.ok().flatten()?;
        return Some(allows(view.get().client_id.as_str()));
    }
    if req.head.method != Method::Post {
        return None;
    }
    let form = crate::server::common::form_body(req, &["audience"]).ok()?;
    let authorization = crate::oauth2::client_auth::single_authorization(req.head.header_all("authorization")).ok()?;
    let presented = crate::oauth2::client_auth::extract(authorization, &form).ok()?;
    Some(allows(presented.id()))
}
