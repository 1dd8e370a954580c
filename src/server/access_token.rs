//! Access tokens in the client's strategy: opaque (`ory_at_…`, `token::mint`) or a JWT signed by
//! the newest signing key of `hydra.jwt.access-token`, whose `jti` names its record
//! (`token::mint_jti`).
//!
//! Invariant: both kinds are stored alike (a `TokenKind::Access` record in the grant's partition,
//! written before the token is answered), so introspection, revocation, userinfo, grant
//! revocation and the janitor treat them alike; `locate` finds either, and a JWT only after its
//! signature verified with a key of the set.

use crate::oauth2::client::Client;
use crate::oauth2::error::{ErrorCode, OAuthError};
use crate::oauth2::jwt_access_token::{looks_like_jwt, AccessClaims};
use crate::server::keys::{self, ACCESS_TOKEN_SET};
use crate::server::state::Worker;
use crate::token::{jti_ref, mint as mint_opaque, mint_jti, verify, Minted, TokenRef, TokenType};
use serde_json::{Map, Value};

/// What an access token grants, as its record says.
pub struct Grant<'a> {
    pub subject: &'a str,
    /// Space-separated.
    pub scope: &'a str,
    pub audience: &'a [String],
    pub issued_at: i64,
    pub expires_at: i64,
    /// `session.access_token` as stored (JSON object text; empty for none).
    pub ext: &'a str,
}

/// Mints the access token of record `seq` in `partition` for `client`.
pub async fn mint(w: &Worker, client: &Client, partition: u32, seq: u64, g: &Grant<'_>) -> Result<Minted, OAuthError> {
    let random = w.rng.borrow_mut().next32();
    let cfg = w.config();
    if !client.jwt_access_tokens(cfg.strategies.jwt_access_tokens) {
        return Ok(mint_opaque(&w.shared.token_keys, TokenType::AccessToken, partition as u16, seq, &random));
    }
    let server_error = || OAuthError::new(ErrorCode::ServerError);
    let jti = mint_jti(partition as u16, seq, &random);
    let ext: Map<String, Value> =
        if g.ext.is_empty() { Map::new() } else { serde_json::from_str(g.ext).unwrap_or_default() };
    let claims = AccessClaims {
        issuer: &cfg.urls.issuer,
        subject: g.subject,
        client_id: &client.client_id,
        audience: g.audience,
        scope: g.scope,
        issued_at: g.issued_at,
        expires_at: g.expires_at,
        jti: &jti.token,
        ext: &ext,
    };
    let signer = keys::signer(w, ACCESS_TOKEN_SET).await.map_err(|_| server_error())?;
    let payload = serde_json::to_vec(&claims.to_json(&cfg.strategies.jwt)).map_err(|_| server_error())?;
    let token = signer.sign(&payload).map_err(|_| server_error())?;
    Ok(Minted { token, signature: jti.signature })
}

/// Where a presented access or refresh token's record lives: an opaque token by its MAC, a JWT
/// access token by its signature (any key of `hydra.jwt.access-token`) and then its `jti`. `None`
/// for anything forged, malformed, or signed by a key since deleted.
pub fn locate(w: &Worker, token: &str) -> Option<TokenRef> {
    if !looks_like_jwt(token) {
        return verify(&w.shared.token_keys, token);
    }
    let keys = keys::public_keys(w, ACCESS_TOKEN_SET);
    let verified = crate::jose::jws::verify(token, &keys).ok()?;
    #[derive(serde::Deserialize)]
    struct Jti {
        jti: String,
    }
    let claims: Jti = serde_json::from_slice(&verified.payload).ok()?;
    jti_ref(&claims.jti)
}
