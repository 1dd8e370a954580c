//! Client authentication against the worker's client snapshot, with the secret-digest cache of
//! DESIGN.md §5.
//!
//! Invariants: a PBKDF2 check runs on the helper pool, never on the worker; an unknown client
//! costs one PBKDF2 of a dummy hash made with the configured iteration count, the same as a wrong
//! secret of a client without rotated secrets, so the two are not told apart by timing. Known
//! exceptions: a client with rotated secrets costs one more PBKDF2 per rotated secret on a wrong
//! secret (until `DELETE …/secrets/rotate`), and a method mismatch answers at once naming the
//! registered method, exactly as Hydra does, which tells that the id exists. After a secret
//! verifies, an HMAC of it (keyed per process) is cached per client and client version, compared
//! in constant time, and ignored once the client changes. A `private_key_jwt` client presents a
//! signed assertion instead, checked against its keys (or, for `client_secret_jwt`, its sealed
//! secret) and made single use (`assertion_auth`).

use crate::oauth2::client_auth::{check_method, Presented};
use crate::oauth2::error::{ErrorCode, OAuthError};
use crate::oauth2::hasher::verify_secret;
use crate::server::state::{ClientEntry, Worker};
use crate::token::same_signature;
use hydra_storage::Storage;
use ring::hmac;
use std::sync::Arc;

fn invalid_client(basic: bool) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClient).with_basic(basic)
}

/// Authenticates the presented credentials; returns the client on success.
pub async fn authenticate(w: &Worker, presented: &Presented) -> Result<Arc<ClientEntry>, OAuthError> {
    let basic = presented.is_basic();
    let entry = w.shared.clients.load().clients.get(presented.id()).cloned();
    let Some(entry) = entry else {
        // Spend what a wrong secret costs.
        let secret = presented.secret().unwrap_or("").to_string();
        let dummy = w.shared.dummy_hash.clone();
        // A full pool answers 503 here too, or saturation would tell unknown ids apart.
        w.shared.pool.run(move || verify_secret(&dummy, secret.as_bytes())).await?;
        return Err(invalid_client(basic));
    };
    check_method(entry.stored.client.auth_method(), presented)?;
    if let Presented::Assertion { assertion, .. } = presented {
        return assertion_auth(w, entry, assertion).await;
    }
    let Some(secret) = presented.secret() else {
        // `none`: a public client, identified but not authenticated.
        return Ok(entry);
    };
    let id = presented.id();
    let cached = w.secret_cache.borrow().get(id).copied();
    if let Some((version, digest)) = cached {
        if version == entry.version && same_signature(&cache_digest(&w.shared.secret_cache_key, id, secret), &digest) {
            return Ok(entry);
        }
    }
    let current = entry.stored.secret_hash.clone();
    let rotated = entry.stored.rotated_secret_hashes.clone();
    let owned = secret.to_string();
    let dummy = w.shared.dummy_hash.clone();
    let ok = w
        .shared
        .pool
        .run(move || {
            let s = owned.as_bytes();
            match current {
                Some(h) => verify_secret(&h, s) || rotated.iter().any(|r| verify_secret(r, s)),
                None => {
                    verify_secret(&dummy, s);
                    false
                }
            }
        })
        .await?;
    if !ok {
        return Err(invalid_client(basic));
    }
    let digest = cache_digest(&w.shared.secret_cache_key, id, secret);
    w.secret_cache.borrow_mut().insert(id.to_string(), (entry.version, digest));
    Ok(entry)
}

/// `private_key_jwt`: the assertion verifies with the client's keys (refetched once from its
/// `jwks_uri` when it names a key not seen before); `client_secret_jwt`: with the client's
/// secret, opened from its sealed copy; either way its claims hold, and its `jti` was never
/// used: a durable marker recorded as a flow row that "started" at the assertion's `exp`, which
/// the janitor drops only once `exp + ttl.login_consent_request` has passed (whatever that TTL is
/// set to later), so neither a replay nor a restart reopens the window.
async fn assertion_auth(w: &Worker, entry: Arc<ClientEntry>, jwt: &str) -> Result<Arc<ClientEntry>, OAuthError> {
    use crate::oauth2::client_assertion::{check, Refused};
    let c = &entry.stored.client;
    let cfg = w.config();
    let token_url = format!("{}/oauth2/token", cfg.urls.public);
    // Exactly as advertised: the token endpoint URL or the issuer identifier, nothing close to them.
    let audiences = [token_url.as_str(), cfg.urls.issuer.as_str()];
    let now = crate::server::state::unix_now();
    let refuse = |why: &'static str| OAuthError::hint(ErrorCode::InvalidClient, why);
    if c.auth_method() == "client_secret_jwt" {
        let Some(secret) = open_secret(w, &entry) else {
            return Err(refuse("The client has no usable secret for client_secret_jwt; set a new client_secret."));
        };
        let checked = crate::oauth2::client_assertion::check_hmac(
            jwt,
            &secret,
            &c.client_id,
            c.auth_signing_alg(),
            &audiences,
            now,
        );
        return match checked {
            Ok(x) => single_use(w, entry, &x).await,
            Err(Refused::Signature { .. }) => {
                Err(refuse("The client_assertion is not signed with the client's secret."))
            }
            Err(Refused::Claims(why)) => Err(refuse(why)),
        };
    }
    let keys = crate::server::client_keys::keys(w, &entry, false).await?;
    let mut checked = check(jwt, &keys, &c.client_id, c.auth_signing_alg(), &audiences, now);
    if let Err(Refused::Signature { kid: Some(kid) }) = &checked {
        if !c.jwks_uri.is_empty() && !keys.iter().any(|k| &k.kid == kid) {
            let keys = crate::server::client_keys::keys(w, &entry, true).await?;
            checked = check(jwt, &keys, &c.client_id, c.auth_signing_alg(), &audiences, now);
        }
    }
    let checked = match checked {
        Ok(x) => x,
        Err(Refused::Signature { .. }) => {
            return Err(refuse("The client_assertion is not signed by a key of the client."))
        }
        Err(Refused::Claims(why)) => return Err(refuse(why)),
    };
    single_use(w, entry, &checked).await
}

/// Makes a verified assertion's `jti` single use (see `assertion_auth`).
async fn single_use(
    w: &Worker,
    entry: Arc<ClientEntry>,
    checked: &crate::oauth2::client_assertion::Checked,
) -> Result<Arc<ClientEntry>, OAuthError> {
    let marker = format!("jti\0{}\0{}", entry.stored.client.client_id, checked.jti);
    // The marker outlives every moment the assertion is still accepted (its exp plus the clock
    // leeway), whatever the janitor's flow lifespan.
    let until = checked.exp.saturating_add(crate::oauth2::client_assertion::LEEWAY_SECS);
    match w.shared.store.mark_flow(w.partition_for(&marker), &marker, until).await {
        Ok(true) => Ok(entry),
        Ok(false) => {
            Err(OAuthError::hint(ErrorCode::InvalidClient, "The client_assertion's jti has been used before."))
        }
        Err(e) => Err(crate::server::respond::store_error(e)),
    }
}

/// The secret of a `client_secret_jwt` client, opened from its sealed copy.
fn open_secret(w: &Worker, entry: &ClientEntry) -> Option<Vec<u8>> {
    let sealed = entry.stored.sealed_secret.as_deref()?;
    crate::server::clients::open_client_secret(&w.shared.key_seal, &entry.stored.client.client_id, sealed)
}

/// Whether `client` is still the registered client of its id: a sequence number taken after a
/// deletion (or a deletion and re-creation) raised the id's watermarks must not become a token
/// of the old client. Checked after `next_seq` by the grants that mint without a prior record.
pub(crate) fn still_registered(w: &Worker, client: &ClientEntry) -> bool {
    w.shared.clients.load().clients.get(&client.stored.client.client_id).is_some_and(|now| {
        now.stored.client.created_at == client.stored.client.created_at
            && now.stored.secret_hash == client.stored.secret_hash
    })
}

/// The cached digest binds the client id, so one client's digest never vouches for another.
/// Fed to the MAC piece by piece: no buffer per request.
fn cache_digest(key: &hmac::Key, id: &str, secret: &str) -> [u8; 32] {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(&(id.len() as u64).to_le_bytes());
    ctx.update(id.as_bytes());
    ctx.update(secret.as_bytes());
    let mut digest = [0u8; 32];
    digest.copy_from_slice(ctx.sign().as_ref());
    digest
}
