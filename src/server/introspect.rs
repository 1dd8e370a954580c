//! `POST /admin/oauth2/introspect` (RFC 7662): find the record (`common::find_token`), check it
//! is still live, and project it.

use crate::http::Request;
use crate::oauth2::error::OAuthError;
use crate::oauth2::introspection::{active, has_required_scopes, ActiveToken, INACTIVE};
use crate::server::common::{find_token, form_body, required_token};
use crate::server::respond::Response;
use crate::server::state::{unix_now, Worker};
use hydra_storage::TokenKind;

pub async fn handle(w: &Worker, req: &Request) -> Response {
    match run(w, req).await {
        Ok(body) => {
            w.metrics.introspections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Response::json(200, body)
        }
        Err(e) => Response::oauth_error(&e),
    }
    .no_store()
}

async fn run(w: &Worker, req: &Request) -> Result<Vec<u8>, OAuthError> {
    let form = form_body(req, &[])?;
    let token = required_token(&form)?;
    let inactive = || INACTIVE.to_vec();
    let Some((r, view)) = find_token(w, token).await? else { return Ok(inactive()) };
    // Read in place: the record is validated, never deserialized.
    let rec = view.get();
    let client_id = rec.client_id.as_str();
    let snapshot = w.shared.clients.load();
    let cfg = w.config();
    let Some(client) = snapshot.clients.get(client_id).map(|e| &e.stored.client) else { return Ok(inactive()) };
    if rec.expires_at.to_native() <= unix_now()
        || snapshot.below_watermark(client_id, r.partition, r.seq)
        || !has_required_scopes(cfg.strategies.scope, rec.scope.as_str(), form.get("scope"))
    {
        return Ok(inactive());
    }
    let ext = w.open_ext(u32::from(r.partition), rec.family.to_native(), rec.ext.as_str())?;
    // A pairwise client's subject, as its ID tokens name it (the sector's hash: recomputed, not
    // stored; a login's forced identifier is not known here).
    let obfuscated = (client.subject_type == "pairwise")
        .then(|| client.subject_for(rec.subject.as_str(), &cfg.oidc.pairwise_salt))
        .flatten();
    let t = ActiveToken {
        refresh: rec.kind.native() == TokenKind::Refresh,
        client_id,
        subject: rec.subject.as_str(),
        scope: rec.scope.as_str(),
        issued_at: rec.issued_at.to_native(),
        expires_at: rec.expires_at.to_native(),
        ext: &ext,
        obfuscated_subject: obfuscated.as_deref(),
    };
    Ok(active(&t, rec.audience.iter().map(|a| a.as_str()), &cfg.urls.issuer))
}
