//! `POST /admin/oauth2/introspect` (RFC 7662): find the record (`handlers::find_token`), check it
//! is still live, and project it.

use crate::oauth2::error::OAuthError;
use crate::oauth2::introspection::{active, has_required_scopes, inactive};
use crate::server::conn::Request;
use crate::server::handlers::{find_token, form_body, required_token};
use crate::server::respond::Response;
use crate::server::state::{unix_now, Worker};

pub async fn handle(w: &Worker, req: &Request) -> Response {
    match run(w, req) {
        Ok(v) => {
            w.metrics.introspections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Response::json_value(200, &v)
        }
        Err(e) => Response::oauth_error(&e),
    }
    .no_store()
}

fn run(w: &Worker, req: &Request) -> Result<serde_json::Value, OAuthError> {
    let form = form_body(req, &[])?;
    let token = required_token(&form)?;
    let Some((r, rec)) = find_token(w, token)? else { return Ok(inactive()) };
    let snapshot = w.shared.clients.load();
    let cfg = w.config();
    if rec.expires_at <= unix_now()
        || !snapshot.clients.contains_key(&rec.client_id)
        || snapshot.below_watermark(&rec.client_id, r.partition, r.seq)
        || !has_required_scopes(cfg.scope_strategy, &rec.scope, form.get("scope"))
    {
        return Ok(inactive());
    }
    Ok(active(&rec, &cfg.issuer))
}
