//! What several handlers share: strict form bodies and finding a presented token's record.
//!
//! Invariant: a token's MAC is verified before any storage read (`find_token`).

use crate::http::form::{self, Form, FormError};
use crate::http::Request;
use crate::oauth2::error::{ErrorCode, OAuthError};
use crate::server::respond::StoreResult;
use crate::server::state::Worker;
use crate::token::{same_signature, TokenRef, TokenType};
use hydra_storage::{Storage, TokenKind, TokenView};

/// Decodes a token or revocation request body, refusing credentials in the query string
/// (RFC 6749 §2.3.1: client credentials "MUST NOT be included in the request URI"). `audience`
/// may repeat: it is not an RFC 6749 parameter and Hydra documents it as repeatable.
pub fn read_form(req: &Request) -> Result<form::Form, OAuthError> {
    if let Some(q) = req.head.query() {
        let query = form::decode_multi(q.as_bytes())
            .map_err(|e| OAuthError::hint(ErrorCode::InvalidRequest, e.description()))?;
        if query.iter().any(|(k, _)| k == "client_secret" || k == "token" || k == "code" || k == "refresh_token") {
            return Err(OAuthError::hint(
                ErrorCode::InvalidRequest,
                "Credentials and tokens must be sent in the request body, not in the URL.",
            ));
        }
    }
    form_body(req, &["audience"])
}

/// Decodes a protocol endpoint's body: `application/x-www-form-urlencoded` (parameters such as
/// `charset` only `utf-8`) and strict form rules; a parameter may appear once, except the names in
/// `repeatable` (RFC 6749 §3.1 binds only its own parameters).
pub fn form_body(req: &Request, repeatable: &[&str]) -> Result<Form, OAuthError> {
    match req.head.header("content-type").map(form::form_content_type) {
        Some(Ok(())) => {}
        Some(Err(form::ContentTypeError::Charset)) => {
            return Err(OAuthError::hint(
                ErrorCode::InvalidRequest,
                "The form body must be encoded in UTF-8 (charset=utf-8 or no charset).",
            ))
        }
        _ => {
            return Err(OAuthError::hint(
                ErrorCode::InvalidRequest,
                "The request must use the content type application/x-www-form-urlencoded.",
            ))
        }
    }
    let form =
        form::decode_multi(&req.body).map_err(|e| OAuthError::hint(ErrorCode::InvalidRequest, e.description()))?;
    // At most 100 parameters (form decoding enforces it), usually three: a pairwise scan.
    for (i, (a, _)) in form.iter().enumerate() {
        if !repeatable.contains(&a) && form.iter().skip(i + 1).any(|(b, _)| b == a) {
            return Err(OAuthError::hint(ErrorCode::InvalidRequest, FormError::DuplicateParameter.description()));
        }
    }
    Ok(form)
}

/// The `token` parameter of revocation and introspection (required, non-empty).
pub fn required_token(form: &Form) -> Result<&str, OAuthError> {
    match form.get("token") {
        Some(t) if !t.is_empty() => Ok(t),
        _ => Err(OAuthError::hint(ErrorCode::InvalidRequest, "The request is missing the 'token' parameter.")),
    }
}

/// Finds the stored record of a presented token: the MAC (or a JWT access token's signature) is
/// verified first (no storage access for a forged token), then the record is read straight from its partition (redb read transactions
/// are safe from any thread) and must carry the same signature and kind. `None` for anything else.
pub async fn find_token(w: &Worker, token: &str) -> Result<Option<(TokenRef, TokenView)>, OAuthError> {
    let Some(r) = crate::server::access_token::locate(w, token) else { return Ok(None) };
    let Some(view) = w.shared.store.get_token_view(u32::from(r.partition), r.seq).await.oauth()? else {
        return Ok(None);
    };
    let rec = view.get();
    let kind_matches = matches!(
        (r.token_type, rec.kind.native()),
        (TokenType::AccessToken, TokenKind::Access) | (TokenType::RefreshToken, TokenKind::Refresh)
    );
    if !kind_matches || !same_signature(&rec.signature, &r.signature) {
        return Ok(None);
    }
    Ok(Some((r, view)))
}

/// Whether a login, consent or logout request that started at `requested_at` is past
/// `ttl.login_consent_request` (its challenge and verifier no longer count).
pub fn too_old(w: &Worker, requested_at: i64) -> bool {
    crate::server::state::unix_now() - requested_at > w.config().ttl.login_consent_request.as_secs() as i64
}
