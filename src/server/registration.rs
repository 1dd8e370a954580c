//! Dynamic client registration, RFC 7591 and 7592 as Hydra serves it: `POST /oauth2/register`
//! and `GET/PUT/DELETE /oauth2/register/{id}` on the public port, only when
//! `oidc.dynamic_client_registration.enabled` (404 otherwise).
//!
//! Invariants: what a registering party may not set (admin-only fields, its own secret) is
//! refused before anything is stored (`client::prepare_dynamic_*`); the management endpoints
//! answer only to the client's current registration access token, compared as SHA-256 digests in
//! constant time, with one answer (401) for an unknown client and a wrong token; a PUT rotates
//! the token, so the previous one is dead once the new one is durable.

use crate::http::Request;
use crate::oauth2::client;
use crate::server::clients::{
    client_error, create_new, lookup, policy, registration_digest, registration_token, replace_with, with_registration,
};
use crate::server::respond::Response;
use crate::server::state::{unix_now, ClientEntry, Worker};
use ring::rand::SystemRandom;
use std::sync::Arc;

fn disabled(w: &Worker) -> bool {
    !w.config().oidc.dynamic_registration
}

/// `POST /oauth2/register`.
pub async fn create(w: &Worker, req: &Request) -> Response {
    if disabled(w) {
        return Response::not_found();
    }
    let nc = match client::prepare_dynamic_create(&req.body, &policy(w), &SystemRandom::new(), unix_now()) {
        Ok(nc) => nc,
        Err(e) => return client_error(e),
    };
    match create_new(w, nc).await {
        Ok(body) => Response::json_value(201, &body),
        Err(r) => r,
    }
}

/// The client named in the path, if the request carries its registration access token.
fn authorized(w: &Worker, req: &Request, id: &str) -> Result<Arc<ClientEntry>, Response> {
    let refused = || {
        Response::generic_error(
            401,
            "The request could not be authorized",
            "The requested OAuth 2.0 client does not exist or you provided incorrect credentials.",
        )
    };
    let token = req
        .head
        .header("authorization")
        .and_then(|h| h.get(..7).filter(|s| s.eq_ignore_ascii_case("bearer ")).and_then(|_| h.get(7..)))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let (Some(token), Some(entry)) = (token, lookup(w, id)) else { return Err(refused()) };
    let Some(stored) = entry.stored.registration_token_hash.as_deref() else { return Err(refused()) };
    let presented = registration_digest(token);
    // Constant time over the digest text (both are 64 hex characters).
    let same = presented.len() == stored.len()
        && presented.bytes().zip(stored.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if !same {
        return Err(refused());
    }
    Ok(entry)
}

/// The client as its registering party sees it: no secret, no admin metadata.
fn public_view(w: &Worker, entry: &ClientEntry) -> serde_json::Value {
    let mut body = entry.stored.client.to_json(None);
    if let serde_json::Value::Object(m) = &mut body {
        m.insert("metadata".into(), serde_json::json!({}));
    }
    with_registration(w, body, &entry.stored.client.client_id, None)
}

/// `GET /oauth2/register/{id}`.
pub fn get(w: &Worker, req: &Request, id: &str) -> Response {
    if disabled(w) {
        return Response::not_found();
    }
    match authorized(w, req, id) {
        Ok(entry) => Response::json_value(200, &public_view(w, &entry)),
        Err(r) => r,
    }
}

/// `PUT /oauth2/register/{id}`: a full update; the registration access token is rotated.
pub async fn put(w: &Worker, req: &Request, id: &str) -> Response {
    if disabled(w) {
        return Response::not_found();
    }
    let entry = match authorized(w, req, id) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let nc = match client::prepare_dynamic_update(&entry.stored, &req.body, &policy(w), unix_now()) {
        Ok(nc) => nc,
        Err(e) => return client_error(e),
    };
    let (token, digest) = match registration_token() {
        Ok(t) => t,
        Err(r) => return r,
    };
    match replace_with(w, &entry, nc, Some(digest)).await {
        Ok(mut body) => {
            if let serde_json::Value::Object(m) = &mut body {
                m.insert("metadata".into(), serde_json::json!({}));
            }
            Response::json_value(200, &with_registration(w, body, id, Some(&token)))
        }
        Err(r) => r,
    }
}

/// `DELETE /oauth2/register/{id}`: as the admin delete (the client's tokens die with it).
pub async fn delete(w: &Worker, req: &Request, id: &str) -> Response {
    if disabled(w) {
        return Response::not_found();
    }
    if let Err(r) = authorized(w, req, id) {
        return r;
    }
    crate::server::clients::delete(w, id).await
}
