//! `POST /admin/oauth2/introspect` (RFC 7662): verify the MAC, read the record straight from its
//! partition (redb read transactions are safe from any thread), and project it.

use crate::http::form;
use crate::oauth2::error::{ErrorCode, OAuthError};
use crate::oauth2::introspection::{active, has_required_scopes, inactive};
use crate::server::conn::Request;
use crate::server::handlers::is_form;
use crate::server::respond::Response;
use crate::server::state::{unix_now, Worker};
use crate::token::{same_signature, verify, TokenType};
use hydra_storage::{TokenKind, TokenStore};

pub async fn handle(w: &Worker, req: &Request) -> Response {
    match run(w, req) {
        Ok(v) => Response::json_value(200, &v),
        Err(e) => Response::oauth_error(&e),
    }
    .no_store()
}

fn run(w: &Worker, req: &Request) -> Result<serde_json::Value, OAuthError> {
    if !is_form(req) {
        return Err(OAuthError::hint(
            ErrorCode::InvalidRequest,
            "The request must use the content type application/x-www-form-urlencoded.",
        ));
    }
    let form = form::decode(&req.body).map_err(|e| OAuthError::hint(ErrorCode::InvalidRequest, e.description()))?;
    let token = match form.get("token") {
        Some(t) if !t.is_empty() => t,
        _ => return Err(OAuthError::hint(ErrorCode::InvalidRequest, "The request is missing the 'token' parameter.")),
    };
    let Some(r) = verify(&w.shared.token_keys, token) else { return Ok(inactive()) };
    let Some(rec) = w.shared.store.get_token(r.partition as u32, r.seq)? else { return Ok(inactive()) };
    let kind_matches = matches!(
        (r.token_type, rec.kind),
        (TokenType::AccessToken, TokenKind::Access) | (TokenType::RefreshToken, TokenKind::Refresh)
    );
    let snapshot = w.shared.clients.load();
    let cfg = w.config();
    if !kind_matches
        || !same_signature(&rec.signature, &r.signature)
        || rec.expires_at <= unix_now()
        || !snapshot.clients.contains_key(&rec.client_id)
        || snapshot.below_watermark(&rec.client_id, r.partition, r.seq)
        || !has_required_scopes(cfg.scope_strategy, &rec.scope, form.get("scope"))
    {
        return Ok(inactive());
    }
    Ok(active(&rec, &cfg.issuer))
}
