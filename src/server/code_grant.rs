//! `POST /oauth2/token` for `authorization_code` and `refresh_token`: exchange a code, rotate a
//! refresh token; access, refresh and ID tokens of one grant are written with the spent code or
//! refresh token in one commit, in the grant's partition.
//!
//! Invariants: the checks of `oauth2::authorization_code` run before any write; the store decides
//! single use (a replayed code or a reused refresh token revokes the whole grant and answers
//! `invalid_grant`); tokens are answered only after they are durable.

use crate::oauth2::authorization_code::{self, ExchangeError, GrantExt};
use crate::oauth2::client::{Client, IssuedBy, TokenLifespans};
use crate::oauth2::error::{ErrorCode, OAuthError};
use crate::oauth2::id_token::IdTokenClaims;
use crate::oauth2::token_response;
use crate::server::access_token::{self, Grant};
use crate::server::keys;
use crate::server::respond::StoreResult;
use crate::server::state::{unix_now, Worker};
use crate::token::{mint, verify, TokenType};
use hydra_storage::{Redeem, Rotate, Storage, StoreError, TokenKind, TokenRecord};
use serde_json::Value;

pub(crate) fn invalid_grant(hint: &'static str) -> OAuthError {
    OAuthError::hint(ErrorCode::InvalidGrant, hint)
}

/// What one exchange issues.
pub(crate) struct Issued {
    pub records: Vec<(u64, TokenRecord)>,
    /// The token response, written.
    pub body: Vec<u8>,
}

/// Mints the access token, a refresh token when the grant allows one, and an ID token for
/// `openid`, all in the family and partition of `grant` (the code or refresh token spent), for
/// `client` through grant `by`, whose client lifespans they live by (else the global TTLs);
/// `scope` is the access token's, the grant's own scope goes to the refresh token. `parsed` is
/// the grant's `ext` when the caller has decoded it already; otherwise only what is needed is:
/// the refresh token carries the grant's `ext` as stored, and the grant itself is decoded only
/// for an ID token. `sealed_grant_ext` is that `ext` as the store holds it, sealed (from
/// [`stored`]): unless a token hook is configured (a hook may have changed the claims), the
/// refresh token takes it as it is instead of sealing them again (one seal less per rotation;
/// `loadtest/runs/2026-12-07T19*-threads-at-rest*.md`).
pub(crate) async fn issue(
    w: &Worker,
    (client, by): (&Client, IssuedBy),
    partition: u32,
    grant: &TokenRecord,
    scope: &[String],
    parsed: Option<&GrantExt>,
    sealed_grant_ext: Option<String>,
) -> Result<Issued, OAuthError> {
    let (family, subject, refresh_scope, audience) = (grant.family, &grant.subject, &grant.scope, &grant.audience);
    let sealed_grant_ext = sealed_grant_ext.filter(|_| !crate::server::hooks::configured(w));
    let cfg = w.config();
    let store = &w.shared.store;
    let now = unix_now();
    let life = client.token_lifespans(by, global_lifespans(cfg));
    let at_life = secs(life.access);
    let at_seq = store.next_seq(partition).await.oauth()?;
    let at_ext = match parsed {
        Some(p) => serde_json::to_string(&p.at).unwrap_or_default(),
        None => GrantExt::access_claims(&grant.ext)?,
    };
    let scope = scope.join(" ");
    let at_grant = Grant { subject, scope: &scope, audience, issued_at: now, expires_at: now + at_life, ext: &at_ext };
    let at = access_token::mint(w, client, partition, at_seq, &at_grant).await?;
    let base = TokenRecord {
        kind: TokenKind::Access,
        signature: at.signature,
        family,
        client_id: client.client_id.clone(),
        subject: subject.clone(),
        scope: scope.clone(),
        audience: audience.to_vec(),
        issued_at: now,
        expires_at: now + at_life,
        ext: w.seal_ext(partition, family, at_ext)?,
    };
    let mut refresh = None;
    let refresh_grant: Vec<String> = refresh_scope.split(' ').filter(|s| !s.is_empty()).map(String::from).collect();
    if authorization_code::issues_refresh(&refresh_grant, client.has_grant("refresh_token")) {
        let rt_seq = store.next_seq(partition).await.oauth()?;
        let rt =
            mint(&w.shared.token_keys, TokenType::RefreshToken, partition as u16, rt_seq, &w.rng.borrow_mut().next32());
        let rt_life = secs(life.refresh);
        let record = (
            rt_seq,
            TokenRecord {
                kind: TokenKind::Refresh,
                signature: rt.signature,
                family,
                client_id: base.client_id.clone(),
                subject: base.subject.clone(),
                scope: refresh_scope.clone(),
                audience: base.audience.clone(),
                issued_at: now,
                expires_at: now.saturating_add(rt_life),
                ext: match sealed_grant_ext {
                    Some(sealed) => sealed,
                    None => w.seal_ext(partition, family, grant.ext.clone())?,
                },
            },
        );
        refresh = Some((record, rt.token));
    }
    let mut id_token = None;
    if scope.split(' ').any(|s| s == "openid") {
        let decoded;
        let ext = match parsed {
            Some(p) => p,
            None => {
                decoded = GrantExt::parse(&grant.ext)?;
                &decoded
            }
        };
        let signer = keys::id_token_signer(w, client).await.map_err(|_| {
            OAuthError::hint(ErrorCode::ServerError, "No key signs ID tokens with the client's algorithm.")
        })?;
        let jti = crate::oauth2::client::generate_uuid_v4(&ring::rand::SystemRandom::new())
            .map_err(|_| OAuthError::new(ErrorCode::ServerError))?;
        let g = &ext.g;
        let claims = IdTokenClaims {
            issuer: &cfg.urls.issuer,
            subject: &g.client_subject,
            client_id: &client.client_id,
            now,
            lifespan_secs: secs(life.id),
            requested_at: g.requested_at,
            auth_time: g.auth_time,
            nonce: g.nonce.as_deref(),
            acr: &g.acr,
            amr: &g.amr,
            sid: &g.sid,
            jti: &jti,
            access_token: Some(at.token.as_str()),
            code: None,
            alg: signer.alg(),
            extra: &g.id_token,
        };
        let payload = serde_json::to_vec(&claims.to_json()).map_err(|_| OAuthError::new(ErrorCode::ServerError))?;
        id_token = Some(signer.sign(&payload).map_err(|_| OAuthError::new(ErrorCode::ServerError))?);
    }
    let refresh_token = refresh.as_ref().map(|(_, t)| t.as_str());
    let body = token_response(&at.token, at_life, id_token.as_deref(), refresh_token, &scope);
    let records = std::iter::once((at_seq, base)).chain(refresh.map(|(r, _)| r)).collect();
    Ok(Issued { records, body })
}

/// The configured TTLs of access, ID and refresh tokens (what a client without its own
/// lifespans gets).
pub(crate) fn global_lifespans(cfg: &crate::config::Config) -> TokenLifespans {
    TokenLifespans { access: cfg.ttl.access_token, id: cfg.ttl.id_token, refresh: cfg.ttl.refresh_token }
}

/// Whole seconds of a lifespan, bounded so that adding it to a time cannot overflow.
pub(crate) fn secs(d: std::time::Duration) -> i64 {
    d.as_secs().min(i64::MAX as u64 / 4) as i64
}

/// A grant's record (code, refresh token, device authorization) as the grant paths may use it:
/// none when its client's watermark (`DELETE /admin/oauth2/tokens`, client deletion) revoked it.
/// The embedded store keeps such a record until the janitor deletes it; PostgreSQL's reads
/// already leave it out (its marks are zeros).
pub(crate) async fn live_record(w: &Worker, partition: u32, seq: u64) -> Result<Option<TokenRecord>, StoreError> {
    let rec = w.shared.store.get_token(partition, seq).await?;
    Ok(rec.filter(|r| !revoked_by_client(w, partition, seq, r)))
}

fn revoked_by_client(w: &Worker, partition: u32, seq: u64, rec: &TokenRecord) -> bool {
    u16::try_from(partition).is_ok_and(|p| w.shared.clients.load().below_watermark(&rec.client_id, p, seq))
}

/// After a grant's record was spent into new tokens: if its client's tokens were revoked while
/// the exchange was under way (the watermark rose after the record was read), the new tokens
/// must not outlive the revocation, so the grant goes and the request fails.
pub(crate) async fn revoked_meanwhile(
    w: &Worker,
    partition: u32,
    seq: u64,
    rec: &TokenRecord,
) -> Result<(), OAuthError> {
    if !revoked_by_client(w, partition, seq, rec) {
        return Ok(());
    }
    w.shared.store.revoke_family(partition, rec.family).await.oauth()?;
    Err(invalid_grant("The token is unknown or was revoked."))
}

/// Finds a presented token's record for a grant: MAC first, then the read.
/// The record's `ext` is in the clear; the last element is it as stored when it was sealed under
/// the current secret, which a refresh token of the same grant may carry as it is (the seal
/// binds the grant, not the row).
pub(crate) async fn stored(
    w: &Worker,
    token: &str,
    want: TokenType,
) -> Result<(u32, u64, TokenRecord, Option<String>), OAuthError> {
    let r = verify(&w.shared.token_keys, token).filter(|r| r.token_type == want);
    let Some(r) = r else { return Err(invalid_grant("The token is malformed, forged or of another kind.")) };
    let partition = u32::from(r.partition);
    let mut rec = live_record(w, partition, r.seq)
        .await
        .oauth()?
        .ok_or_else(|| invalid_grant("The token is unknown or was revoked."))?;
    if !crate::token::same_signature(&rec.signature, &r.signature) {
        return Err(invalid_grant("The token is unknown or was revoked."));
    }
    let mut sealed = None;
    if let (std::borrow::Cow::Owned(plain), keep) = w.open_ext_keeping(partition, rec.family, &rec.ext)? {
        let stored = std::mem::replace(&mut rec.ext, plain);
        sealed = keep.then_some(stored);
    }
    Ok((partition, r.seq, rec, sealed))
}

pub async fn exchange_code(
    w: &Worker,
    client: &Client,
    code: &str,
    redirect_uri: Option<&str>,
    code_verifier: Option<&str>,
    hook_form: &[(String, String)],
) -> Result<Vec<u8>, OAuthError> {
    if !client.has_grant("authorization_code") {
        return Err(OAuthError::hint(
            ErrorCode::UnauthorizedClient,
            "The client is not allowed to use the authorization_code grant.",
        ));
    }
    let (partition, seq, rec, sealed) = stored(w, code, TokenType::AuthorizeCode).await?;
    if rec.kind == TokenKind::CodeUsed {
        // A replay: the store revokes every token the code bought.
        w.shared.store.redeem_code(partition, seq, rec.signature, Vec::new()).await.oauth()?;
        return Err(invalid_grant("The authorization code has already been used."));
    }
    if rec.kind != TokenKind::Code {
        return Err(invalid_grant("The token is not an authorization code."));
    }
    let mut ext = GrantExt::parse(&rec.ext)?;
    let checked = authorization_code::check_exchange(
        &rec.client_id,
        rec.expires_at,
        &ext.g,
        &client.client_id,
        redirect_uri,
        code_verifier,
        unix_now(),
    );
    match checked {
        Ok(()) => {}
        Err(ExchangeError::Pkce(e)) => {
            // Burn the code (spent, nothing issued): the right verifier cannot follow a wrong one.
            w.shared.store.redeem_code(partition, seq, rec.signature, Vec::new()).await.oauth()?;
            return Err(e);
        }
        Err(ExchangeError::Other(e)) => return Err(e),
    }
    let scope: Vec<String> = rec.scope.split(' ').filter(|s| !s.is_empty()).map(String::from).collect();
    let rec = hooked(w, rec, "authorization_code", &scope, &mut ext, hook_form).await?;
    let issued = issue(w, (client, IssuedBy::AuthorizationCode), partition, &rec, &scope, Some(&ext), sealed).await?;
    let n = issued.records.len() as u64;
    match w.shared.store.redeem_code(partition, seq, rec.signature, issued.records).await.oauth()? {
        Redeem::Done(_) => {
            revoked_meanwhile(w, partition, seq, &rec).await?;
            w.metrics.tokens_issued.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            Ok(issued.body)
        }
        Redeem::Replayed => Err(invalid_grant("The authorization code has already been used.")),
        Redeem::Missing => Err(invalid_grant("The authorization code is unknown or was revoked.")),
    }
}

/// The grant's record as the token hooks leave it: its `ext` re-encoded when a hook changed it
/// (the new refresh token carries the changed session, as Hydra's does).
pub(crate) async fn hooked(
    w: &Worker,
    rec: TokenRecord,
    grant_type: &str,
    scope: &[String],
    ext: &mut GrantExt,
    hook_form: &[(String, String)],
) -> Result<TokenRecord, OAuthError> {
    if crate::server::hooks::with_user(w, &rec, grant_type, scope, ext, hook_form).await? {
        Ok(TokenRecord { ext: ext.encode(), ..rec })
    } else {
        Ok(rec)
    }
}

pub async fn refresh(
    w: &Worker,
    client: &Client,
    token: &str,
    scope: Option<&str>,
    hook_form: &[(String, String)],
) -> Result<Vec<u8>, OAuthError> {
    if !client.has_grant("refresh_token") {
        return Err(OAuthError::hint(
            ErrorCode::UnauthorizedClient,
            "The client is not allowed to use the refresh_token grant.",
        ));
    }
    let (partition, seq, rec, sealed) = stored(w, token, TokenType::RefreshToken).await?;
    if rec.client_id != client.client_id {
        return Err(invalid_grant("The refresh token was issued to another client."));
    }
    if rec.kind == TokenKind::RefreshUsed {
        w.shared.store.rotate_refresh(partition, seq, rec.signature, Vec::new()).await.oauth()?;
        return Err(invalid_grant("The refresh token has already been used; the grant is revoked."));
    }
    if rec.kind != TokenKind::Refresh || unix_now() >= rec.expires_at {
        return Err(invalid_grant("The refresh token is expired or invalid."));
    }
    authorization_code::check_grant_still_allowed(
        &rec.scope,
        &rec.audience,
        &client.scope,
        &client.audience,
        w.config().strategies.scope,
    )?;
    let new_scope = authorization_code::refreshed_scope(&rec.scope, scope)?;
    let issued = if crate::server::hooks::configured(w) {
        let mut ext = GrantExt::parse(&rec.ext)?;
        let rec = hooked(w, rec.clone(), "refresh_token", &new_scope, &mut ext, hook_form).await?;
        issue(w, (client, IssuedBy::RefreshToken), partition, &rec, &new_scope, Some(&ext), sealed).await?
    } else {
        issue(w, (client, IssuedBy::RefreshToken), partition, &rec, &new_scope, None, sealed).await?
    };
    let n = issued.records.len() as u64;
    match w.shared.store.rotate_refresh(partition, seq, rec.signature, issued.records).await.oauth()? {
        Rotate::Done(_) => {
            revoked_meanwhile(w, partition, seq, &rec).await?;
            w.metrics.tokens_issued.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            Ok(issued.body)
        }
        Rotate::Reused => Err(invalid_grant("The refresh token has already been used; the grant is revoked.")),
        Rotate::Missing => Err(invalid_grant("The refresh token is unknown or was revoked.")),
    }
}

/// `GET/POST /userinfo` (OIDC Core §5.3): the ID-token claims of the access token's grant.
pub async fn userinfo_claims(w: &Worker, scope: &str, family: u64, partition: u32) -> Result<Value, OAuthError> {
    if !scope.split(' ').any(|s| s == "openid") {
        return Err(OAuthError::hint(
            ErrorCode::InsufficientScope,
            "The access token was not granted the openid scope.",
        ));
    }
    // The grant's first record (its code) holds the claims.
    let code =
        w.shared.store.get_token(partition, family).await.oauth()?.ok_or(OAuthError::new(ErrorCode::InvalidToken))?;
    if !matches!(code.kind, TokenKind::Code | TokenKind::CodeUsed) {
        return Err(OAuthError::hint(
            ErrorCode::InsufficientScope,
            "The access token was not issued through a user's authorization.",
        ));
    }
    let ext = GrantExt::parse(&w.open_ext(partition, code.family, &code.ext)?)?;
    Ok(crate::oauth2::id_token::userinfo(&ext.g.client_subject, &ext.g.id_token))
}
