//! OpenID Connect discovery (`/.well-known/openid-configuration`, also served as
//! `/.well-known/oauth-authorization-server`) and userinfo (`GET/POST /userinfo`).
//!
//! Invariants: discovery advertises only what this server does (no `plain` PKCE, never `none`
//! for ID tokens, `registration_endpoint` only when registration is enabled); a client registered with `userinfo_signed_response_alg: RS256` gets its userinfo as
//! a JWT signed by an RS256 key of the ID-token set, never plain JSON (OIDC Core §5.3.2).

use crate::http::Request;
use crate::oauth2::error::{ErrorCode, OAuthError};
use crate::server::common::find_token;
use crate::server::keys::ID_TOKEN_SET;
use crate::server::respond::Response;
use crate::server::state::{unix_now, ClientEntry, Worker};
use serde_json::json;
use std::sync::Arc;

pub fn discovery(w: &Worker) -> Response {
    let cfg = w.config();
    let public = &cfg.urls.public;
    let issuer = cfg.urls.issuer.trim_end_matches('/');
    // Every algorithm a key of the ID-token set signs with (the newest key's first): a client
    // may register any of them as its id_token_signed_response_alg.
    let snap = w.shared.keys.load();
    let mut algs: Vec<&str> = Vec::new();
    for a in snap
        .sets
        .get(ID_TOKEN_SET)
        .into_iter()
        .flat_map(|set| set.iter())
        .filter_map(|k| k.signer.as_ref())
        .map(|s| s.alg().as_str())
    {
        if !algs.contains(&a) {
            algs.push(a);
        }
    }
    if algs.is_empty() {
        algs.push("RS256");
    }
    let mut scopes = vec!["offline_access".to_string(), "offline".into(), "openid".into()];
    scopes.extend(cfg.oidc.discovery_scopes.iter().filter(|s| !scopes.contains(s)).cloned().collect::<Vec<_>>());
    let mut claims: Vec<String> =
        ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "at_hash"]
            .map(String::from)
            .to_vec();
    claims.extend(cfg.oidc.discovery_claims.iter().filter(|c| !claims.contains(c)).cloned().collect::<Vec<_>>());
    let mut subject_types = vec!["public"];
    if !cfg.oidc.pairwise_salt.is_empty() && cfg.oidc.subject_types.iter().any(|t| t == "pairwise") {
        subject_types.push("pairwise");
    }
    let mut doc = json!({
        "issuer": cfg.urls.issuer,
        "authorization_endpoint": format!("{public}/oauth2/auth"),
        "token_endpoint": format!("{public}/oauth2/token"),
        "device_authorization_endpoint": format!("{public}/oauth2/device/auth"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "userinfo_endpoint": format!("{public}/userinfo"),
        "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
        "subject_types_supported": subject_types,
        "response_types_supported": crate::oauth2::authorize::RESPONSE_TYPES,
        "response_modes_supported": ["query", "fragment", "form_post"],
        "grant_types_supported": ["authorization_code", "implicit", "client_credentials", "refresh_token", crate::oauth2::device::GRANT_TYPE, crate::oauth2::jwt_bearer::GRANT_TYPE],
        "scopes_supported": scopes,
        "claims_supported": claims,
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic", "private_key_jwt", "client_secret_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "HS256", "HS384", "HS512"],
        "id_token_signing_alg_values_supported": algs,
        "id_token_signed_response_alg": algs,
        "userinfo_signing_alg_values_supported": ["none", "RS256"],
        "userinfo_signed_response_alg": ["none", "RS256"],
        "request_object_signing_alg_values_supported": ["none", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"],
        "code_challenge_methods_supported": ["S256"],
        "request_parameter_supported": true,
        "request_uri_parameter_supported": true,
        "require_request_uri_registration": true,
        "claims_parameter_supported": true,
        "authorization_response_iss_parameter_supported": true,
        "end_session_endpoint": format!("{public}/oauth2/sessions/logout"),
        "frontchannel_logout_supported": true,
        "frontchannel_logout_session_supported": true,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    });
    if cfg.oidc.dynamic_registration {
        doc["registration_endpoint"] = json!(format!("{public}/oauth2/register"));
    }
    Response::json_value(200, &doc)
}

/// RFC 6750 §3: a bearer error with `WWW-Authenticate`; a request that presented no token at
/// all gets the bare challenge (§3.1: no error code then).
fn bearer_error(e: &OAuthError, presented: bool) -> Response {
    let mut header = String::from("Bearer");
    if presented && matches!(e.code, ErrorCode::InvalidToken | ErrorCode::InsufficientScope | ErrorCode::InvalidRequest)
    {
        header.push_str(&format!(" error=\"{}\"", e.code.as_str()));
    }
    Response::oauth_error(e).header("WWW-Authenticate", header)
}

/// The bearer token: the `Authorization` header, or (POST) the `access_token` form field
/// (RFC 6750 §2.1–2.2); never both, never the query string.
pub(crate) fn bearer(req: &Request) -> Result<Option<String>, OAuthError> {
    let header = req.head.header("authorization").and_then(|h| {
        let (scheme, rest) = h.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim().to_string())
    });
    let query_token = req.head.query().is_some_and(|q| q.split('&').any(|p| p.starts_with("access_token=")));
    if query_token {
        return Err(OAuthError::hint(ErrorCode::InvalidRequest, "Access tokens must not be sent in the URL."));
    }
    // Only a form-encoded body can carry the token (§2.2); any other body is not ours to read.
    let form = req.head.header("content-type").is_some_and(|c| {
        c.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    });
    let form_token = if req.head.method == crate::http::request::Method::Post && !req.body.is_empty() && form {
        crate::server::common::form_body(req, &[])?.get("access_token").map(String::from)
    } else {
        None
    };
    match (header, form_token) {
        (Some(_), Some(_)) => Err(OAuthError::hint(ErrorCode::InvalidRequest, "Send the access token once.")),
        (h, f) => Ok(h.or(f).filter(|t| !t.is_empty())),
    }
}

pub async fn userinfo(w: &Worker, req: &Request) -> Response {
    let (claims, client) = match userinfo_claims(w, req).await {
        Ok(x) => x,
        Err(e) => return bearer_error(&e, !matches!(bearer(req), Ok(None))),
    };
    if client.stored.client.userinfo_signed_response_alg != "RS256" {
        return Response::json_value(200, &claims).no_store();
    }
    match signed_userinfo(w, claims, &client.stored.client.client_id) {
        Ok(jwt) => Response {
            status: 200,
            headers: vec![("Content-Type", "application/jwt".into())],
            body: jwt.into_bytes(),
            close: false,
        }
        .no_store(),
        Err(e) => Response::oauth_error(&e),
    }
}

/// Userinfo as a JWT (OIDC Core §5.3.2): the claims plus `iss` and `aud`, signed by the newest
/// RS256 key of the ID-token set.
fn signed_userinfo(w: &Worker, mut claims: serde_json::Value, client_id: &str) -> Result<String, OAuthError> {
    let signer = w
        .shared
        .keys
        .load()
        .signer_for(ID_TOKEN_SET, crate::jose::jwk::Alg::RS256)
        .ok_or_else(|| OAuthError::hint(ErrorCode::ServerError, "No RS256 key signs userinfo responses."))?;
    if let Some(m) = claims.as_object_mut() {
        m.insert("iss".into(), json!(w.config().urls.issuer));
        m.insert("aud".into(), json!([client_id]));
    }
    let payload = serde_json::to_vec(&claims).map_err(|_| OAuthError::new(ErrorCode::ServerError))?;
    signer.sign(&payload).map_err(|_| OAuthError::new(ErrorCode::ServerError))
}

/// The userinfo claims of the presented access token, and the client it was issued to.
async fn userinfo_claims(w: &Worker, req: &Request) -> Result<(serde_json::Value, Arc<ClientEntry>), OAuthError> {
    let Some(token) = bearer(req)? else { return Err(OAuthError::new(ErrorCode::InvalidToken)) };
    let Some((tref, view)) = find_token(w, &token).await? else { return Err(OAuthError::new(ErrorCode::InvalidToken)) };
    let rec = view.get();
    let client_id = rec.client_id.as_str();
    let snapshot = w.shared.clients.load();
    let revoked = snapshot.below_watermark(client_id, tref.partition, tref.seq);
    let live = rec.kind.native() == hydra_storage::TokenKind::Access && unix_now() < rec.expires_at.to_native();
    let Some(client) = snapshot.clients.get(client_id).filter(|_| live && !revoked).cloned() else {
        return Err(OAuthError::new(ErrorCode::InvalidToken));
    };
    let claims = crate::server::code_grant::userinfo_claims(
        w,
        rec.scope.as_str(),
        rec.family.to_native(),
        u32::from(tref.partition),
    )
    .await?;
    Ok((claims, client))
}
