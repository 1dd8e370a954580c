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
//! in constant time, and ignored once the client changes.

use crate::oauth2::client_auth::{check_method, Presented};
use crate::oauth2::error::{ErrorCode, OAuthError};
use crate::oauth2::hasher::verify_secret;
use crate::server::state::{ClientEntry, Worker};
use crate::token::same_signature;
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
