//! Hydra's trust API for the JWT bearer grant, `/admin/trust/grants/jwt-bearer/issuers[/{id}]`:
//! create, get, list (by `issuer`, paged) and delete trust relationships.
//!
//! Invariants: a relationship is validated (`jwt_bearer::parse_create`, public key only) before
//! it is stored, and answered only once durable; the relationships live in the key store's
//! reserved set (`keys::TRUST_SET`), so every worker and node sees a change in commit order.

use crate::http::{form, Request};
use crate::oauth2::error::{ErrorCode, OAuthError};
use crate::oauth2::jwt_bearer::{parse_create, TrustGrant};
use crate::oauth2::page_token;
use crate::server::keys::write_trust;
use crate::server::respond::Response;
use crate::server::state::{unix_now, Worker};
use ring::rand::SystemRandom;
use std::sync::Arc;

const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 500;

fn not_found() -> Response {
    Response::generic_error(404, "Unable to locate the resource", "")
}

fn find(w: &Worker, id: &str) -> Option<Arc<TrustGrant>> {
    w.shared.keys.load().trust.iter().find(|g| g.id == id).cloned()
}

/// `POST …/issuers`: 201 with the relationship; 409 if one with the same issuer, subject and key
/// id exists.
pub async fn create(w: &Worker, req: &Request) -> Response {
    let mut grant = match parse_create(&req.body, String::new(), unix_now()) {
        Ok(g) => g,
        Err(e) => return Response::json_value(e.status, &e.to_json()),
    };
    grant.id = grant.derived_id();
    if w.shared.keys.load().trust.iter().any(|g| g.same_as(&grant)) {
        return Response::generic_error(
            409,
            "The resource could not be created due to a conflict",
            "A trust relationship with the same issuer, subject and key id exists already.",
        );
    }
    match write_trust(w, &grant.id, Some(&grant)).await {
        Ok(_) => Response::json_value(201, &grant.to_json()),
        Err(r) => r,
    }
}

/// `GET …/issuers/{id}`.
pub fn get(w: &Worker, id: &str) -> Response {
    match find(w, id) {
        Some(g) => Response::json_value(200, &g.to_json()),
        None => not_found(),
    }
}

/// `DELETE …/issuers/{id}`: 204, or 404 for an unknown id.
pub async fn delete(w: &Worker, id: &str) -> Response {
    if find(w, id).is_none() {
        return not_found();
    }
    match write_trust(w, id, None).await {
        Ok(_) => Response::empty(204),
        Err(r) => r,
    }
}

/// `GET …/issuers[?issuer=…&page_size=…&page_token=…]`: by id, with a `Link` header to the next
/// page (the token is sealed and bound to the filter).
pub fn list(w: &Worker, req: &Request) -> Response {
    let bad = |why: &str| Response::oauth_error(&OAuthError::hint(ErrorCode::InvalidRequest, why.to_string()));
    let q = match form::decode_multi(req.head.query().unwrap_or("").as_bytes()) {
        Ok(q) => q,
        Err(e) => return bad(e.description()),
    };
    let page_size = match q.get("page_size").map(str::parse::<i64>) {
        None => DEFAULT_PAGE_SIZE,
        Some(Ok(n)) if n <= 0 => DEFAULT_PAGE_SIZE,
        Some(Ok(n)) => (n as usize).min(MAX_PAGE_SIZE),
        Some(Err(_)) => return bad("page_size must be an integer."),
    };
    let issuer = q.get("issuer").filter(|i| !i.is_empty());
    let bound: Vec<(&str, &str)> = issuer.map(|i| ("issuer", i)).into_iter().collect();
    let keys = &w.shared.flow_keys;
    let after = match q.get("page_token").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => match page_token::open(keys, "trust", &bound, t) {
            Some(id) => Some(id),
            None => return bad("The page_token is invalid, or was issued for another listing."),
        },
    };
    let snap = w.shared.keys.load();
    let mut all: Vec<&Arc<TrustGrant>> = snap
        .trust
        .iter()
        .filter(|g| issuer.is_none_or(|i| g.issuer == i) && after.as_deref().is_none_or(|a| g.id.as_str() > a))
        .collect();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    let has_next = all.len() > page_size;
    all.truncate(page_size);
    let body: Vec<serde_json::Value> = all.iter().map(|g| g.to_json()).collect();
    let mut filters = String::new();
    if let Some(i) = issuer {
        filters.push_str("&issuer=");
        form::form_escape(i, &mut filters);
    }
    let base = "/admin/trust/grants/jwt-bearer/issuers";
    let mut link = format!("<{base}?page_size={page_size}{filters}>; rel=\"first\"");
    if let (true, Some(last)) = (has_next, all.last()) {
        let Some(token) = page_token::seal(keys, "trust", &bound, &last.id, &SystemRandom::new()) else {
            return Response::oauth_error(&OAuthError::new(ErrorCode::ServerError));
        };
        link.push_str(&format!(",<{base}?page_size={page_size}&page_token={token}{filters}>; rel=\"next\""));
    }
    Response::json_value(200, &serde_json::Value::Array(body)).header("Link", link)
}
