//! Ending a login at the identity provider (Ory Kratos, `urls.identity_provider.url`): when a
//! login session that named an `identity_provider_session_id` ends (the logout verifier, or
//! `DELETE /admin/oauth2/auth/sessions/login?sid=`), `DELETE <url>/admin/sessions/<id>` with
//! `urls.identity_provider.headers`, as Hydra does.
//!
//! Invariants: the call runs on a thread of its own, after the session here is already gone, and
//! is tried once (as Hydra's); a failure is logged, never shown to the browser; the outbound rules
//! apply (private addresses only with `clients.http.private_ip_exception_urls` or the guard off);
//! at most `MAX_IN_FLIGHT` calls run at once, more are dropped and logged; header values are
//! never logged.

use crate::server::state::Worker;
use std::sync::atomic::{AtomicUsize, Ordering};

const MAX_IN_FLIGHT: usize = 16;
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Revokes the identity provider's session `id`, when one is named and a provider configured.
pub fn revoke(w: &Worker, id: &str) {
    let cfg = w.config();
    let Some(base) = cfg.urls.identity_provider.clone() else { return };
    if id.is_empty() {
        return;
    }
    let url = format!("{base}/admin/sessions/{}", crate::oauth2::uri::path_escape(id));
    if IN_FLIGHT.fetch_add(1, Ordering::SeqCst) >= MAX_IN_FLIGHT {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        crate::warn!("too many identity provider revocations at once: one was dropped", "url" = base);
        return;
    }
    let headers = cfg.urls.identity_provider_headers.clone();
    let allow_private = cfg.clients_http.allows_private(&url);
    let spawned = std::thread::Builder::new().name("idp-revoke".into()).spawn(move || {
        let method = crate::server::outbound::Method::Delete(&headers);
        let r = crate::server::outbound::exchange_blocking(&url, method, allow_private, true)
            .and_then(|raw| crate::server::outbound::status_of(&raw));
        match r {
            Ok(s) if (200..300).contains(&s) || s == 404 => {}
            Ok(s) => crate::warn!("the identity provider refused a session revocation", "status" = s),
            Err(e) => crate::warn!("a session revocation at the identity provider failed", "error" = e),
        }
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    });
    if spawned.is_err() {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        crate::warn!("could not start an identity provider revocation");
    }
}
