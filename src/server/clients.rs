//! The admin client API (`/admin/clients…`) and `DELETE /admin/oauth2/tokens`.
//!
//! Invariants: validation lives in `oauth2::client` (sans-IO); a new secret is hashed on the
//! helper pool; every write is durable before the answer and before the client snapshot changes;
//! plaintext secrets appear only in the answers of create, rotate, and PUT/PATCH that set one.

use crate::http::form;
use crate::http::Request;
use crate::oauth2::client::{self, ClientError, ClientPolicy, NewClient, StoredClient};
use crate::oauth2::error::{ErrorCode, OAuthError};
use crate::oauth2::page_token;
use crate::server::respond::Response;
use crate::server::state::{unix_now, ClientEntry, Worker};
use hydra_storage::{PutMode, PutOutcome, Storage};
use ring::rand::{SecureRandom, SystemRandom};
use std::sync::Arc;

const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 500;

pub(crate) fn policy(w: &Worker) -> ClientPolicy {
    let c = w.config();
    ClientPolicy {
        default_scope: c.oidc.default_client_scope.clone(),
        subject_types_supported: c.oidc.subject_types.clone(),
        dev: c.dev,
        public_url: format!("{}/", c.urls.public),
    }
}

pub(crate) fn client_error(e: ClientError) -> Response {
    Response::json_value(e.status, &e.to_json())
}

fn not_found() -> Response {
    Response::generic_error(404, "Unable to locate the resource", "")
}

fn store_error(e: hydra_storage::StoreError) -> Response {
    Response::oauth_error(&crate::server::respond::store_error(e))
}

pub(crate) fn lookup(w: &Worker, id: &str) -> Option<Arc<ClientEntry>> {
    w.shared.clients.load().clients.get(id).cloned()
}

/// Hashes a new secret off the worker thread.
async fn hash(w: &Worker, secret: String) -> Result<String, Response> {
    let mut salt = [0u8; 16];
    SystemRandom::new().fill(&mut salt).map_err(|_| Response::oauth_error(&OAuthError::new(ErrorCode::ServerError)))?;
    let hasher = w.config().oauth2.hasher;
    w.shared
        .pool
        .run(move || hasher.hash(secret.as_bytes(), &salt))
        .await
        .map_err(|e| Response::oauth_error(&OAuthError::from(e)))
}

/// How a client write relates to what is stored.
enum Write<'a> {
    Create,
    /// Replace exactly this entry (compare-and-set on its stored bytes).
    Replace(&'a ClientEntry),
}

/// Writes a client durably, then publishes it to the snapshot.
async fn write(w: &Worker, stored: StoredClient, how: Write<'_>) -> Result<(), Response> {
    let id = stored.client.client_id.clone();
    let mode = match how {
        Write::Create => PutMode::Create { marks: w.shared.store.seq_marks().await.map_err(store_error)? },
        Write::Replace(e) => PutMode::Replace { expected: e.raw.clone() },
    };
    let raw = stored.to_bytes();
    let (outcome, version) = w.shared.store.put_client(&id, raw.clone(), mode).await.map_err(store_error)?;
    match outcome {
        PutOutcome::Written => {
            w.shared.apply_client(&id, version, Some((stored, raw)));
            Ok(())
        }
        PutOutcome::Conflict => Err(Response::generic_error(
            409,
            "conflict",
            "The OAuth 2.0 client was changed by another request while this one was processed; retry.",
        )),
        PutOutcome::Exists => Err(Response::exists_already()),
        PutOutcome::Missing => Err(not_found()),
    }
}

/// OpenID Connect Registration §5: a `sector_identifier_uri` must serve a JSON array that lists
/// every redirect URI of the client. Fetched at each write that keeps or sets one, under the
/// outbound rules (private addresses refused unless `clients.http.disallow_private_ip_ranges`
/// is off).
async fn check_sector(w: &Worker, c: &client::Client) -> Result<(), Response> {
    if c.sector_identifier_uri.is_empty() {
        return Ok(());
    }
    let allow_private = w.config().clients_http.allows_private(&c.sector_identifier_uri);
    let body = crate::server::outbound::fetch(&c.sector_identifier_uri, allow_private).await.map_err(|e| {
        client_error(client::ClientError::invalid_client_metadata(&format!(
            "Unable to read sector_identifier_uri: {e}."
        )))
    })?;
    client::check_sector_document(&body, c.redirect_uris.as_deref().unwrap_or(&[])).map_err(client_error)
}

pub async fn create(w: &Worker, req: &Request) -> Response {
    let nc = match client::prepare_create(&req.body, &policy(w), &SystemRandom::new(), unix_now()) {
        Ok(nc) => nc,
        Err(e) => return client_error(e),
    };
    let id = nc.client.client_id.clone();
    match create_new(w, nc).await {
        Ok(body) => Response::json_value(201, &body).header("Location", client::admin_location(&id)),
        Err(r) => r,
    }
}

/// Stores a new client (admin or dynamic registration) with its hashed secret, its sealed one
/// for `client_secret_jwt`, and a new registration access token; the answer carries the secret
/// and the token once.
pub(crate) async fn create_new(w: &Worker, nc: NewClient) -> Result<serde_json::Value, Response> {
    check_sector(w, &nc.client).await?;
    let secret_hash = match &nc.plaintext_secret {
        Some(s) => Some(hash(w, s.clone()).await?),
        None => None,
    };
    let mut stored = StoredClient::new(nc.client.clone(), secret_hash);
    seal_secret(w, &mut stored, nc.plaintext_secret.as_deref(), None)?;
    let (token, digest) = registration_token()?;
    stored.registration_token_hash = Some(digest);
    write(w, stored, Write::Create).await?;
    Ok(with_registration(w, nc.client.to_json(nc.plaintext_secret.as_deref()), &nc.client.client_id, Some(&token)))
}

/// A new registration access token (RFC 7592; `ory_at_` and 256 random bits, as Hydra shapes
/// it) and the digest stored in its place.
pub(crate) fn registration_token() -> Result<(String, String), Response> {
    use base64::Engine;
    let mut b = [0u8; 32];
    SystemRandom::new().fill(&mut b).map_err(|_| Response::oauth_error(&OAuthError::new(ErrorCode::ServerError)))?;
    let token = format!("ory_at_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b));
    let digest = registration_digest(&token);
    Ok((token, digest))
}

/// What a client's record keeps of its registration access token: a plain SHA-256 suffices for
/// 256 random bits.
pub(crate) fn registration_digest(token: &str) -> String {
    crate::token::hex(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref())
}

/// A client answer with `registration_client_uri` and, when one was just issued, the
/// `registration_access_token`.
pub(crate) fn with_registration(
    w: &Worker,
    mut body: serde_json::Value,
    client_id: &str,
    token: Option<&str>,
) -> serde_json::Value {
    if let serde_json::Value::Object(m) = &mut body {
        if let Some(t) = token {
            m.insert("registration_access_token".into(), t.into());
        }
        m.insert("registration_client_uri".into(), client::registration_client_uri(&policy(w), client_id).into());
    }
    body
}

/// The additional data a client's sealed secret is bound to: a sealed secret copied to another
/// client's row does not open.
fn secret_aad(client_id: &str) -> String {
    format!("hydra-rs/client-secret/v1\0{client_id}")
}

/// Seals a `client_secret_jwt` secret of `client_id` with `key` (base64url of the sealed bytes).
fn seal_client_secret(key: &[u8; 32], client_id: &str, secret: &[u8]) -> Result<String, String> {
    use base64::Engine;
    let sealed = crate::jose::seal::seal(key, secret_aad(client_id).as_bytes(), secret, &SystemRandom::new())
        .map_err(|e| e.to_string())?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed))
}

/// Opens a `client_secret_jwt` secret sealed by `seal_client_secret` with any of `seal_keys`.
pub(crate) fn open_client_secret(seal_keys: &[[u8; 32]], client_id: &str, sealed: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sealed).ok()?;
    crate::jose::seal::open(seal_keys, secret_aad(client_id).as_bytes(), &bytes).ok()
}

/// `client_secret_jwt`: keeps the sealed copy of the secret that HMAC assertions are checked with.
/// A new secret is sealed; an unchanged one keeps its copy; a client switched to the method without
/// a new secret is refused, since only a hash of its secret exists. Other methods keep no copy.
fn seal_secret(
    w: &Worker,
    stored: &mut StoredClient,
    plaintext: Option<&str>,
    existing: Option<&StoredClient>,
) -> Result<(), Response> {
    stored.sealed_secret = None;
    if stored.client.auth_method() != "client_secret_jwt" {
        return Ok(());
    }
    let server_error = || Response::oauth_error(&OAuthError::new(ErrorCode::ServerError));
    match (plaintext, existing.and_then(|e| e.sealed_secret.clone())) {
        (Some(p), _) => {
            let key = w.shared.key_seal.first().ok_or_else(server_error)?;
            let sealed = seal_client_secret(key, &stored.client.client_id, p.as_bytes()).map_err(|_| server_error())?;
            stored.sealed_secret = Some(sealed);
            Ok(())
        }
        (None, Some(kept)) => {
            // The algorithm may have changed: the kept secret must still be long enough for it.
            let alg = stored.client.auth_signing_alg();
            let min = crate::oauth2::client_assertion::hmac_min_secret(alg).unwrap_or(0);
            let opened = open_client_secret(&w.shared.key_seal, &stored.client.client_id, &kept);
            match opened {
                Some(secret) if secret.len() >= min => {
                    stored.sealed_secret = Some(kept);
                    Ok(())
                }
                _ => Err(client_error(ClientError::invalid_client_metadata(&format!(
                    "The client's secret is shorter than {alg} needs ({min} bytes, RFC 7518 §3.2); set a new client_secret in the same request."
                )))),
            }
        }
        (None, None) => Err(client_error(ClientError::invalid_client_metadata(
            "A client switched to client_secret_jwt needs a new client_secret in the same request: only a hash of the current one is kept.",
        ))),
    }
}

/// At start-up: seals again, with the first `secrets.system` key, every `client_secret_jwt`
/// secret sealed with an older one (as key rows are), so that an old system secret can be dropped
/// after one start with both. Compare-and-set: a node that did it first wins. Returns how many
/// were sealed again.
pub fn reseal_secrets(
    store: &hydra_storage::Backend,
    seal_keys: &[[u8; 32]],
    clients: &mut [(String, StoredClient, Vec<u8>)],
) -> Result<usize, String> {
    let Some(first) = seal_keys.first() else { return Ok(0) };
    let mut n = 0;
    for (id, stored, bytes) in clients.iter_mut() {
        let Some(sealed) = stored.sealed_secret.as_deref() else { continue };
        if open_client_secret(std::slice::from_ref(first), id, sealed).is_some() {
            continue;
        }
        let Some(secret) = open_client_secret(seal_keys, id, sealed) else {
            crate::warn!(
                "a client_secret_jwt secret opens with no system secret; set a new client_secret",
                "client" = id
            );
            continue;
        };
        let mut next = stored.clone();
        next.sealed_secret = Some(seal_client_secret(first, id, &secret)?);
        let next_bytes = next.to_bytes();
        let put = store.put_client(id, next_bytes.clone(), PutMode::Replace { expected: bytes.clone() });
        if let (PutOutcome::Written, _) = hydra_storage::block_on(put).map_err(|e| e.to_string())? {
            *stored = next;
            *bytes = next_bytes;
            n += 1;
        }
    }
    Ok(n)
}

pub fn get(w: &Worker, id: &str) -> Response {
    match lookup(w, id) {
        Some(e) => Response::json_value(200, &e.stored.client.to_json(None)),
        None => not_found(),
    }
}

pub fn list(w: &Worker, req: &Request) -> Response {
    let q = match form::decode_multi(req.head.query().unwrap_or("").as_bytes()) {
        Ok(q) => q,
        Err(e) => return Response::oauth_error(&OAuthError::hint(ErrorCode::InvalidRequest, e.description())),
    };
    let page_size = match q.get("page_size").map(str::parse::<i64>) {
        None => DEFAULT_PAGE_SIZE,
        Some(Ok(n)) if n <= 0 => DEFAULT_PAGE_SIZE,
        Some(Ok(n)) => (n as usize).min(MAX_PAGE_SIZE),
        Some(Err(_)) => {
            return Response::oauth_error(&OAuthError::hint(ErrorCode::InvalidRequest, "page_size must be an integer."))
        }
    };
    // An empty filter is no filter (as Hydra).
    let name = q.get("client_name").filter(|v| !v.is_empty());
    let owner = q.get("owner").filter(|v| !v.is_empty());
    let bound: Vec<(&str, &str)> =
        [("client_name", name), ("owner", owner)].into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
    let keys = &w.shared.flow_keys;
    let after = match q.get("page_token").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => match page_token::open(keys, "clients", &bound, t) {
            Some(id) => Some(id),
            None => {
                return Response::oauth_error(&OAuthError::hint(
                    ErrorCode::InvalidRequest,
                    "The page_token is invalid, or was issued for another listing.",
                ))
            }
        },
    };
    let snap = w.shared.clients.load();
    let (matching, has_next) = snap.page(after.as_deref(), page_size, |e| {
        name.is_none_or(|n| e.stored.client.client_name == n) && owner.is_none_or(|o| e.stored.client.owner == o)
    });
    let body: Vec<serde_json::Value> = matching.iter().map(|e| e.stored.client.to_json(None)).collect();
    let mut filters = String::new();
    for (k, v) in [("client_name", name), ("owner", owner)] {
        if let Some(v) = v {
            filters.push('&');
            filters.push_str(k);
            filters.push('=');
            form::form_escape(v, &mut filters);
        }
    }
    let mut link = format!("</admin/clients?page_size={page_size}{filters}>; rel=\"first\"");
    if let (true, Some(last)) = (has_next, matching.last()) {
        let Some(token) =
            page_token::seal(keys, "clients", &bound, &last.stored.client.client_id, &SystemRandom::new())
        else {
            return Response::oauth_error(&OAuthError::new(ErrorCode::ServerError));
        };
        link.push_str(&format!(",</admin/clients?page_size={page_size}&page_token={token}{filters}>; rel=\"next\""));
    }
    Response::json_value(200, &serde_json::Value::Array(body)).header("Link", link)
}

/// Stores the result of a PUT or PATCH: a new secret replaces the hash and clears rotated ones;
/// otherwise both are kept.
async fn replace(w: &Worker, existing: &ClientEntry, nc: NewClient) -> Response {
    match replace_with(w, existing, nc, None).await {
        Ok(body) => Response::json_value(200, &body),
        Err(r) => r,
    }
}

/// `replace`, and the registration access token's digest: `registration` replaces it (the
/// dynamic registration PUT rotates it), `None` keeps it.
pub(crate) async fn replace_with(
    w: &Worker,
    existing: &ClientEntry,
    nc: NewClient,
    registration: Option<String>,
) -> Result<serde_json::Value, Response> {
    check_sector(w, &nc.client).await?;
    let mut stored = match &nc.plaintext_secret {
        Some(s) => StoredClient::new(nc.client.clone(), Some(hash(w, s.clone()).await?)),
        None => {
            let mut st = StoredClient::new(nc.client.clone(), existing.stored.secret_hash.clone());
            st.rotated_secret_hashes = existing.stored.rotated_secret_hashes.clone();
            st
        }
    };
    seal_secret(w, &mut stored, nc.plaintext_secret.as_deref(), Some(&existing.stored))?;
    stored.registration_token_hash = registration.or_else(|| existing.stored.registration_token_hash.clone());
    write(w, stored, Write::Replace(existing)).await?;
    Ok(nc.client.to_json(nc.plaintext_secret.as_deref()))
}

pub async fn put(w: &Worker, req: &Request, id: &str) -> Response {
    let Some(existing) = lookup(w, id) else { return not_found() };
    match client::prepare_update(&existing.stored, id, &req.body, &policy(w), &SystemRandom::new(), unix_now()) {
        Ok(nc) => replace(w, &existing, nc).await,
        Err(e) => client_error(e),
    }
}

pub async fn patch(w: &Worker, req: &Request, id: &str) -> Response {
    let Some(existing) = lookup(w, id) else { return not_found() };
    match client::prepare_patch(&existing.stored, &req.body, &policy(w), &SystemRandom::new(), unix_now()) {
        Ok(nc) => replace(w, &existing, nc).await,
        Err(e) => client_error(e),
    }
}

pub async fn delete(w: &Worker, id: &str) -> Response {
    // Tokens issued before this point die with the client, and stay dead if the id is reused.
    let marks = match w.shared.store.seq_marks().await {
        Ok(m) => m,
        Err(e) => return store_error(e),
    };
    match w.shared.store.delete_client(id, marks.clone()).await {
        Ok((true, version)) => {
            w.shared.apply_client(id, version, None);
            w.shared.raise_watermarks(id, &marks);
            Response::empty(204)
        }
        Ok((false, _)) => not_found(),
        Err(e) => store_error(e),
    }
}

pub async fn lifespans(w: &Worker, req: &Request, id: &str) -> Response {
    let Some(existing) = lookup(w, id) else { return not_found() };
    let updated = match client::set_lifespans(&existing.stored, &req.body, unix_now()) {
        Ok(c) => c,
        Err(e) => return client_error(e),
    };
    let mut stored = existing.stored.clone();
    stored.client = updated.clone();
    if let Err(r) = write(w, stored, Write::Replace(&existing)).await {
        return r;
    }
    Response::json_value(200, &updated.to_json(None))
}

pub async fn rotate(w: &Worker, id: &str) -> Response {
    let Some(existing) = lookup(w, id) else { return not_found() };
    if let Err(e) = client::rotation_allowed(&existing.stored.client) {
        return client_error(e);
    }
    let secret = match client::generate_secret(&SystemRandom::new()) {
        Ok(s) => s,
        Err(e) => return client_error(e),
    };
    let h = match hash(w, secret.clone()).await {
        Ok(h) => h,
        Err(r) => return r,
    };
    let mut stored = existing.stored.clone();
    stored.rotate_secret(h, unix_now());
    let body = stored.client.to_json(Some(&secret));
    if let Err(r) = write(w, stored, Write::Replace(&existing)).await {
        return r;
    }
    Response::json_value(200, &body)
}

pub async fn delete_rotated(w: &Worker, id: &str) -> Response {
    let Some(existing) = lookup(w, id) else { return not_found() };
    if let Err(e) = client::rotation_allowed(&existing.stored.client) {
        return client_error(e);
    }
    let mut stored = existing.stored.clone();
    stored.clear_rotated_secrets(unix_now());
    let body = stored.client.to_json(None);
    if let Err(r) = write(w, stored, Write::Replace(&existing)).await {
        return r;
    }
    Response::json_value(200, &body)
}

/// `DELETE /admin/oauth2/tokens?client_id=`: revokes every token of the client issued so far
/// (access and refresh tokens, codes, device authorizations; Hydra deletes access tokens only,
/// see `docs/compat.md`), by raising its per-partition watermarks (one durable write, whatever
/// the token count).
pub async fn delete_tokens(w: &Worker, req: &Request) -> Response {
    let q = match form::decode_multi(req.head.query().unwrap_or("").as_bytes()) {
        Ok(q) => q,
        Err(e) => return Response::oauth_error(&OAuthError::hint(ErrorCode::InvalidRequest, e.description())),
    };
    let Some(id) = q.get("client_id").filter(|c| !c.is_empty()) else {
        return Response::oauth_error(&OAuthError::hint(
            ErrorCode::InvalidRequest,
            "Query parameter 'client_id' is not defined but it should have been.",
        ));
    };
    let marks = match w.shared.store.seq_marks().await {
        Ok(m) => m,
        Err(e) => return store_error(e),
    };
    match w.shared.store.set_watermarks(id, marks.clone()).await {
        Ok(()) => {
            w.shared.raise_watermarks(id, &marks);
            Response::empty(204)
        }
        Err(e) => store_error(e),
    }
}
