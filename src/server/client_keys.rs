//! The keys that verify a client's `private_key_jwt` assertions: its inline `jwks`, or the
//! document at its `jwks_uri`, fetched under the outbound guard on a thread of its own (never on
//! a worker) and cached per client version.
//!
//! Invariants: a cached document serves at most `TTL` and only the client version (and URI) it
//! was fetched for; a refetch asked for by an unknown `kid` (a client that rotated its keys)
//! happens at once, then at most once per `REFETCH_EVERY` per client, so a stream of bad assertions cannot make the server hammer the
//! client's host; a fetch that failed is not tried again for that client (version and URI)
//! within `REFETCH_EVERY` either, so assertions naming a client whose host is down or slow cost
//! neither that host nor the outbound pool one fetch each; the caches hold at most
//! `MAX_CLIENTS` entries; fetched documents are parsed into public signing keys only and never
//! logged.

use crate::jose::jwk::Jwk;
use crate::oauth2::client_assertion::parse_key_set;
use crate::oauth2::error::{ErrorCode, OAuthError};
use crate::server::state::{ClientEntry, Worker};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(3600);
const REFETCH_EVERY: Duration = Duration::from_secs(10);
const MAX_CLIENTS: usize = 10_000;

struct Cached {
    version: u64,
    uri: String,
    keys: Arc<Vec<Jwk>>,
    fetched: Instant,
    /// When an unknown `kid` last made us fetch again.
    refetched: Option<Instant>,
}

fn cache() -> &'static Mutex<HashMap<String, Cached>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Cached>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The last failed fetch of a client's document: the client version, the URI, when.
type Failed = (u64, String, Instant);

fn failures() -> &'static Mutex<HashMap<String, Failed>> {
    static FAILED: OnceLock<Mutex<HashMap<String, Failed>>> = OnceLock::new();
    FAILED.get_or_init(|| Mutex::new(HashMap::new()))
}

fn unavailable() -> OAuthError {
    OAuthError::hint(ErrorCode::InvalidClient, "The client's jwks_uri could not be fetched.")
}

/// The client's verification keys. `refresh`: an assertion named a key the cached document did
/// not have; fetch again unless that was done within `REFETCH_EVERY`.
pub async fn keys(w: &Worker, entry: &ClientEntry, refresh: bool) -> Result<Arc<Vec<Jwk>>, OAuthError> {
    let c = &entry.stored.client;
    if c.jwks_uri.is_empty() {
        return Ok(Arc::new(parse_key_set(&c.jwks)));
    }
    if let Ok(map) = cache().lock() {
        if let Some(hit) = map.get(&c.client_id).filter(|h| h.version == entry.version && h.uri == c.jwks_uri) {
            let fresh = if refresh {
                hit.refetched.is_some_and(|t| t.elapsed() < REFETCH_EVERY)
            } else {
                hit.fetched.elapsed() < TTL
            };
            if fresh {
                return Ok(hit.keys.clone());
            }
        }
    }
    let failed_lately = failures().lock().ok().is_some_and(|f| {
        f.get(&c.client_id)
            .is_some_and(|(v, uri, t)| *v == entry.version && *uri == c.jwks_uri && t.elapsed() < REFETCH_EVERY)
    });
    if failed_lately {
        return Err(unavailable());
    }
    let allow_private = w.config().clients_http.allows_private(&c.jwks_uri);
    let fetched = match crate::server::outbound::fetch(&c.jwks_uri, allow_private).await {
        Ok(body) => serde_json::from_slice::<serde_json::Value>(&body).map_err(|_| {
            OAuthError::hint(ErrorCode::InvalidClient, "The client's jwks_uri did not serve a JSON Web Key Set.")
        }),
        Err(e) => {
            crate::warn!("a client's jwks_uri could not be fetched", "client_id" = c.client_id, "error" = e);
            Err(unavailable())
        }
    };
    if let Ok(mut f) = failures().lock() {
        if fetched.is_ok() {
            f.remove(&c.client_id);
        } else {
            if f.len() >= MAX_CLIENTS {
                f.clear();
            }
            f.insert(c.client_id.clone(), (entry.version, c.jwks_uri.clone(), Instant::now()));
        }
    }
    let doc = fetched?;
    let keys = Arc::new(parse_key_set(&doc));
    if let Ok(mut map) = cache().lock() {
        if map.len() >= MAX_CLIENTS {
            map.clear();
        }
        let now = Instant::now();
        let cached = Cached {
            version: entry.version,
            uri: c.jwks_uri.clone(),
            keys: keys.clone(),
            fetched: now,
            refetched: refresh.then_some(now),
        };
        map.insert(c.client_id.clone(), cached);
    }
    Ok(keys)
}
