//! Access tokens in the client's strategy: opaque (`ory_at_…`, `token::mint`) or a JWT signed by
//! the newest signing key of `hydra.jwt.access-token`, whose `jti` names its record
//! (`token::mint_jti`).
//!
//! Invariant: both kinds are stored alike (a `TokenKind::Access` record in the grant's partition,
//! written before the token is answered), so introspection, revocation, userinfo, grant
//! revocation and the janitor treat them alike; `locate` finds either, and a JWT only after its
//! signature verified with a key of the set.

use crate::oauth2::client::Client;
use crate::oauth2::client_credentials::{response_body, IssuePlan};
use crate::oauth2::error::{ErrorCode, OAuthError};
use crate::oauth2::jwt_access_token::{looks_like_jwt, AccessClaims};
use crate::server::keys::{self, ACCESS_TOKEN_SET};
use crate::server::respond::StoreResult;
use crate::server::state::{unix_now, ClientEntry, Worker};
use crate::token::{jti_ref, mint as mint_opaque, mint_jti, verify, Minted, TokenRef, TokenType};
use hydra_storage::{Storage, TokenKind, TokenRecord};
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

/// Issues an access token of a grant without a user's authorization (client credentials, JWT
/// bearer) for `subject`: a record of its own in the worker's next partition, durable before the
/// token response is returned, counted.
pub async fn issue_lone(
    w: &Worker,
    entry: &ClientEntry,
    subject: &str,
    plan: IssuePlan,
    ext: &str,
) -> Result<Vec<u8>, OAuthError> {
    let store = &w.shared.store;
    let partition = w.next_partition();
    let seq = store.next_seq(partition).await.oauth()?;
    // The client may have been deleted, or deleted and re-created, while this request waited
    // for authentication. Deletion and re-creation raise the id's watermarks from the sequence
    // counters; a number taken after that must not become a token of the old client, so the
    // client must still be the one that authenticated.
    if !crate::server::auth::still_registered(w, entry) {
        return Err(OAuthError::new(ErrorCode::InvalidClient));
    }
    let client = &entry.stored.client;
    let now = unix_now();
    let lifespan = plan.lifespan.as_secs().min(i64::MAX as u64 / 2) as i64;
    let expires_at = now.saturating_add(lifespan);
    let g = Grant { subject, scope: &plan.scope, audience: &plan.audience, issued_at: now, expires_at, ext };
    let minted = mint(w, client, partition, seq, &g).await?;
    let body = response_body(&minted.token, lifespan, &plan.scope);
    let record = TokenRecord {
        kind: TokenKind::Access,
        signature: minted.signature,
        family: seq,
        client_id: client.client_id.clone(),
        subject: subject.to_string(),
        scope: plan.scope,
        audience: plan.audience,
        issued_at: now,
        expires_at,
        ext: w.seal_ext(partition, seq, ext.to_string())?,
    };
    // Acknowledge only after the record is durable.
    w.batcher.insert(store, partition, seq, record).await.oauth()?;
    w.metrics.tokens_issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(body)
}

/// Where a presented access or refresh token's record lives: an opaque token by its MAC, a JWT
/// access token by its signature (any key of `hydra.jwt.access-token`) and then its `jti`. `None`
/// for anything forged, malformed, or signed by a key since deleted.
pub fn locate(w: &Worker, token: &str) -> Option<TokenRef> {
    if !looks_like_jwt(token) {
        return verify(&w.shared.token_keys, token);
    }
    // The snapshot's keys are borrowed, not copied: this runs on every JWT introspection.
    let snap = w.shared.keys.load();
    let set = snap.sets.get(ACCESS_TOKEN_SET)?;
    // A token this worker verified under this very set: its signature holds (see `JwtRefs`).
    let digest: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref().try_into().ok()?;
    if let Some(r) = w.jwt_refs.borrow_mut().get(set, &digest) {
        return Some(r);
    }
    let keys: Vec<&crate::jose::jwk::Jwk> =
        set.iter().map(|k| &k.jwk).filter(|k| k.use_.as_deref() != Some("enc")).collect();
    let verified = crate::jose::jws::verify(token, &keys).ok()?;
    #[derive(serde::Deserialize)]
    struct Jti {
        jti: String,
    }
    let claims: Jti = serde_json::from_slice(&verified.payload).ok()?;
    let r = jti_ref(&claims.jti)?;
    w.jwt_refs.borrow_mut().put(set, digest, r);
    Some(r)
}
