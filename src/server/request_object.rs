//! Resolves an authorization request's request object (OIDC Core §6) for the sans-IO checks:
//! `request` by value, or `request_uri` fetched under the outbound guard (https, no redirects,
//! size and time caps, private ranges per `clients.http.disallow_private_ip_ranges`) on a thread
//! of its own, never on a worker; then verified with the client's keys (`client_keys`).
//!
//! Invariants: a `request_uri` is fetched only when the client registered it exactly
//! (`request_uris`, as Hydra requires), so this server never fetches a URL a stranger chose; at
//! most `PER_CLIENT` fetches per client and `TOTAL` in all run at once (half the outbound
//! budget), and a client whose fetch failed waits `BACKOFF` before the next, so anyone sending
//! authorization requests for a client with a slow host cannot take the outbound budget that
//! `jwks_uri` and sector documents need.

use crate::oauth2::request_object::{verify, RequestObject};
use crate::server::state::{unix_now, ClientEntry, Worker};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const PER_CLIENT: u32 = 2;
const TOTAL: usize = 8;
const BACKOFF: Duration = Duration::from_secs(10);
/// Clients tracked at once (entries go when idle and past their backoff).
const MAX_TRACKED: usize = 10_000;

#[derive(Default)]
struct Slot {
    in_flight: u32,
    blocked_until: Option<Instant>,
}

static TOTAL_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

fn slots() -> &'static Mutex<HashMap<String, Slot>> {
    static S: OnceLock<Mutex<HashMap<String, Slot>>> = OnceLock::new();
    S.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A running fetch's place in the budget; released on drop, with a backoff if it failed.
struct Permit {
    client: String,
    failed: bool,
}

impl Permit {
    fn acquire(client: &str) -> Option<Permit> {
        let mut map = slots().lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if map.len() >= MAX_TRACKED {
            map.retain(|_, s| s.in_flight > 0 || s.blocked_until.is_some_and(|t| t > now));
        }
        if map.len() >= MAX_TRACKED && !map.contains_key(client) {
            return None;
        }
        let slot = map.entry(client.to_string()).or_default();
        if slot.in_flight >= PER_CLIENT || slot.blocked_until.is_some_and(|t| t > now) {
            return None;
        }
        if TOTAL_IN_FLIGHT.fetch_add(1, Ordering::SeqCst) >= TOTAL {
            TOTAL_IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        slot.in_flight += 1;
        Some(Permit { client: client.to_string(), failed: false })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        TOTAL_IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
        let mut map = slots().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = map.get_mut(&self.client) {
            slot.in_flight = slot.in_flight.saturating_sub(1);
            if self.failed {
                slot.blocked_until = Some(Instant::now() + BACKOFF);
            }
        }
    }
}

/// Upper bound of a request object, by value or fetched (the fetch has its own response cap).
const MAX_OBJECT_BYTES: usize = 64 * 1024;

pub async fn resolve(w: &Worker, params: &[(String, String)], entry: Option<&ClientEntry>) -> RequestObject {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    let (by_value, by_ref) = (get("request"), get("request_uri"));
    if by_value.is_none() && by_ref.is_none() {
        return RequestObject::Absent;
    }
    // An unknown client fails later, before anything could be redirected.
    let Some(entry) = entry else { return RequestObject::Absent };
    let c = &entry.stored.client;
    let jwt = match (by_value, by_ref) {
        (Some(_), Some(_)) => {
            return RequestObject::refused("invalid_request", "Send either request or request_uri, not both.")
        }
        (Some(v), None) => v.to_string(),
        (None, Some(uri)) => {
            if !c.request_uris.iter().any(|r| r == uri) {
                return RequestObject::refused(
                    "invalid_request_uri",
                    "The request_uri is not one of the client's registered request_uris.",
                );
            }
            let Some(mut permit) = Permit::acquire(&c.client_id) else {
                return RequestObject::refused(
                    "invalid_request_uri",
                    "Too many request_uri fetches for this client right now, or its last one failed; retry later.",
                );
            };
            // The fragment is the client's (OIDC Core §6.2: often a hash of the contents); it
            // is matched as registered and never sent.
            let target = uri.split('#').next().unwrap_or(uri);
            let allow_private = w.config().clients_http.allows_private(target);
            let fetched = crate::server::outbound::fetch(target, allow_private).await;
            permit.failed = fetched.is_err();
            drop(permit);
            match fetched {
                Ok(body) if body.len() <= MAX_OBJECT_BYTES => match String::from_utf8(body) {
                    Ok(s) => s.trim().to_string(),
                    Err(_) => {
                        return RequestObject::refused("invalid_request_uri", "The request_uri document is not text.")
                    }
                },
                Ok(_) => {
                    return RequestObject::refused("invalid_request_uri", "The request_uri document is too large.")
                }
                Err(_) => {
                    return RequestObject::refused("invalid_request_uri", "The request_uri could not be fetched.")
                }
            }
        }
        (None, None) => return RequestObject::Absent,
    };
    if jwt.len() > MAX_OBJECT_BYTES {
        return RequestObject::refused("invalid_request_object", "The request object is too large.");
    }
    let cfg = w.config();
    let alg = crate::jose::jws::peek(&jwt, 0).and_then(|h| h.get("alg")?.as_str().map(String::from));
    // Unsigned objects need no keys; a signed one is checked with the client's, refetched once
    // from its jwks_uri when it names a key not seen before.
    let keys = if alg.as_deref() == Some("none") {
        std::sync::Arc::new(Vec::new())
    } else {
        match crate::server::client_keys::keys(w, entry, false).await {
            Ok(k) => k,
            Err(_) => return RequestObject::refused("invalid_request_object", "The client's keys could not be read."),
        }
    };
    let now = unix_now();
    let checked = verify(&jwt, &keys, &c.request_object_signing_alg, &c.client_id, &cfg.urls.issuer, now);
    if matches!(checked, RequestObject::Refused { .. }) && !c.jwks_uri.is_empty() && alg.as_deref() != Some("none") {
        let kid = crate::jose::jws::peek(&jwt, 0).and_then(|h| h.get("kid")?.as_str().map(String::from));
        if kid.is_some_and(|k| !keys.iter().any(|key| key.kid == k)) {
            if let Ok(fresh) = crate::server::client_keys::keys(w, entry, true).await {
                return verify(&jwt, &fresh, &c.request_object_signing_alg, &c.client_id, &cfg.urls.issuer, now);
            }
        }
    }
    checked
}
