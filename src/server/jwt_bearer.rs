//! `POST /oauth2/token` with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`
//! (RFC 7523 §2.1): an assertion from a trusted issuer buys an access token for its subject.
//!
//! Invariants: the client is authenticated and allowed the grant type, and asks only for scopes
//! and audiences it is allowed (`jwt_bearer::plan`) and the trust relationship allows
//! (`jwt_bearer::check`); the assertion's `jti` is single use until its `exp` (a durable marker,
//! as for client assertions, taken before anything is issued); the token is answered only after
//! its record is durable. No refresh or ID token is issued (as Hydra).

use crate::oauth2::client_credentials::Policy;
use crate::oauth2::error::{ErrorCode, OAuthError};
use crate::oauth2::jwt_bearer::{check, plan};
use crate::server::access_token;
use crate::server::state::{unix_now, ClientEntry, Worker};
use hydra_storage::Storage;

pub async fn exchange(
    w: &Worker,
    entry: &ClientEntry,
    assertion: &str,
    scope: Option<&str>,
    audience: &[String],
    hook_form: &[(String, String)],
) -> Result<Vec<u8>, OAuthError> {
    let client = &entry.stored.client;
    let cfg = w.config();
    let policy = Policy {
        strategy: cfg.strategies.scope,
        default_grant_allowed_scope: false,
        access_token_ttl: cfg.ttl.access_token,
    };
    let planned = plan(client, scope, audience, &policy)?;
    let now = unix_now();
    let token_url = format!("{}/oauth2/token", cfg.urls.public);
    let audiences = [token_url.as_str(), cfg.urls.issuer.as_str()];
    let requested: Vec<String> = planned.scope.split(' ').filter(|s| !s.is_empty()).map(String::from).collect();
    let snap = w.shared.keys.load();
    let asserted =
        check(assertion, &snap.trust, &audiences, &requested, cfg.strategies.scope, &cfg.oauth2.jwt_grant, now)?;
    if let Some(jti) = &asserted.jti {
        // One issuer's jti space: the same jti from another issuer is another assertion, and a
        // relationship deleted and created again does not reopen it.
        let marker = format!("jwt-bearer\0{}\0{jti}", asserted.issuer);
        // Kept past the assertion's exp plus the clock leeway, whatever the flow lifespan.
        let until = asserted.exp.saturating_add(crate::oauth2::jwt_bearer::LEEWAY_SECS);
        match w.shared.store.mark_flow(w.partition_for(&marker), &marker, until).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(OAuthError::hint(ErrorCode::InvalidGrant, "The assertion's jti has been used before."))
            }
            Err(e) => return Err(crate::server::respond::store_error(e)),
        }
    }
    let lone = crate::server::hooks::Lone {
        client_id: &client.client_id,
        grant_type: crate::oauth2::jwt_bearer::GRANT_TYPE,
        subject: &asserted.subject,
        requested: scope,
        granted: &planned.scope,
        audience: &planned.audience,
    };
    let ext = crate::server::hooks::lone(w, &lone, hook_form).await?;
    access_token::issue_lone(w, entry, &asserted.subject, planned, &ext).await
}
