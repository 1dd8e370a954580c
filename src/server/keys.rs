//! JSON Web Key sets: the in-memory snapshot workers sign with, the admin API
//! (`/admin/keys/{set}[/{kid}]`) and `GET /.well-known/jwks.json`.
//!
//! Invariants: keys are sealed (AES-256-GCM, key derived from `secrets.system`, bound to set and
//! kid) before they reach the store, so the data directory holds no key in the clear; the
//! snapshot changes only after a write is durable, per set in commit order; RSA keys are
//! generated on the helper pool, never on a worker; a missing default set is generated once
//! (`AddIfEmpty`), whoever asks first.

use crate::http::Request;
use crate::jose::jwk::{Alg, Jwk};
use crate::jose::jws::Signer;
use crate::jose::seal;
use crate::oauth2::client::generate_uuid_v4;
use crate::server::key_snapshot::{KeyEntry, KeySnapshot};
use crate::server::respond::Response;
use crate::server::state::{Shared, Worker};
use hydra_storage::{block_on, Backend, KeyRow, KeyWrite, Storage};
use ring::rand::SystemRandom;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

/// The key set that signs ID tokens.
pub const ID_TOKEN_SET: &str = "hydra.openid.id-token";
/// The key set that signs JWT access tokens.
pub const ACCESS_TOKEN_SET: &str = "hydra.jwt.access-token";
/// Sets published at `/.well-known/jwks.json` and generated when missing.
pub const DEFAULT_SETS: [&str; 2] = [ID_TOKEN_SET, ACCESS_TOKEN_SET];
/// The reserved set whose rows are the JWT bearer grant's trust relationships (kid = the
/// relationship's id, sealed JSON of `TrustGrant`, `created` = its expiry in microseconds, so
/// the janitor can drop an expired one without the secret): the key store already gives them durable
/// writes, the change feed to every worker and node, and sealing, on both backends. The admin
/// key API refuses the name.
pub const TRUST_SET: &str = "hydra-rs.trust.jwt-bearer";

/// The keys that seal stored JWKs: one per `secrets.system` entry, the first seals.
pub fn seal_keys(secrets: &[String]) -> Vec<[u8; 32]> {
    secrets.iter().map(|s| crate::token::derive_key(s, "hydra-rs/jwk-seal/v1")).collect()
}

fn aad(set: &str, kid: &str) -> Vec<u8> {
    [set.as_bytes(), &[0], kid.as_bytes()].concat()
}

fn open_plain(seal_keys: &[[u8; 32]], row: &KeyRow) -> Result<Vec<u8>, String> {
    seal::open(seal_keys, &aad(&row.set, &row.kid), &row.sealed)
        .map_err(|e| format!("key {:?} of set {:?} cannot be opened with secrets.system: {e}", row.kid, row.set))
}

fn open_row(seal_keys: &[[u8; 32]], row: &KeyRow) -> Result<KeyEntry, String> {
    entry_of(row, &open_plain(seal_keys, row)?)
}

fn entry_of(row: &KeyRow, plain: &[u8]) -> Result<KeyEntry, String> {
    let what = || format!("key {:?} of set {:?}", row.kid, row.set);
    let jwk: Jwk = serde_json::from_slice(plain).map_err(|e| format!("{} is unreadable: {e}", what()))?;
    // Encryption keys are stored and returned; nothing signs with them.
    let signer = if jwk.is_private() && jwk.use_.as_deref() != Some("enc") {
        Some(Arc::new(Signer::from_jwk(&jwk).map_err(|e| format!("{} cannot sign: {e}", what()))?))
    } else {
        None
    };
    Ok(KeyEntry { jwk, created: row.created, signer })
}

pub(crate) fn seal_row(seal_keys: &[[u8; 32]], set: &str, jwk: &Jwk, created: u64) -> Result<KeyRow, String> {
    let plain = serde_json::to_vec(jwk).map_err(|e| e.to_string())?;
    seal_plain(seal_keys, set, &jwk.kid, &plain, created)
}

pub(crate) fn seal_plain(
    seal_keys: &[[u8; 32]],
    set: &str,
    kid: &str,
    plain: &[u8],
    created: u64,
) -> Result<KeyRow, String> {
    let key = seal_keys.first().ok_or("no system secret")?;
    let sealed = seal::seal(key, &aad(set, kid), plain, &SystemRandom::new()).map_err(|e| e.to_string())?;
    Ok(KeyRow { set: set.to_string(), kid: kid.to_string(), created, sealed })
}

type Trust = crate::oauth2::jwt_bearer::TrustGrant;

fn trust_of(row: &KeyRow, plain: &[u8]) -> Result<Trust, String> {
    serde_json::from_slice(plain).map_err(|e| format!("trust relationship {:?} is unreadable: {e}", row.kid))
}

/// Latest expiry first (their `created`).
fn sorted_trust(mut t: Vec<(u64, Trust)>) -> Arc<Vec<Arc<Trust>>> {
    t.sort_by_key(|(created, _)| std::cmp::Reverse(*created));
    Arc::new(t.into_iter().map(|(_, g)| Arc::new(g)).collect())
}

/// Reads every stored set (at start-up). A key sealed with an older `secrets.system` entry is
/// sealed again with the first one, so that the old secret can later be dropped (as with
/// tokens: run once with `new,old`, then `new` alone).
pub fn load(store: &Backend, seal_keys: &[[u8; 32]]) -> Result<KeySnapshot, String> {
    let mut snap = KeySnapshot::default();
    let mut sets: HashMap<String, Vec<Arc<KeyEntry>>> = HashMap::new();
    let mut trust = Vec::new();
    for row in block_on(store.load_keys()).map_err(|e| e.to_string())? {
        let current = seal::open(&seal_keys[..seal_keys.len().min(1)], &aad(&row.set, &row.kid), &row.sealed).is_ok();
        let plain = open_plain(seal_keys, &row)?;
        if !current {
            let again = seal_plain(seal_keys, &row.set, &row.kid, &plain, row.created)?;
            block_on(store.write_keys(&row.set, KeyWrite::Add(vec![again]))).map_err(|e| e.to_string())?;
            crate::info!("sealed a key again with the first system secret", "set" = row.set, "kid" = row.kid);
        }
        if row.set == TRUST_SET {
            trust.push((row.created, trust_of(&row, &plain)?));
            continue;
        }
        sets.entry(row.set.clone()).or_default().push(Arc::new(entry_of(&row, &plain)?));
    }
    for (set, mut keys) in sets {
        keys.sort_by_key(|k| std::cmp::Reverse(k.created));
        snap.sets.insert(set, Arc::new(keys));
    }
    snap.trust = sorted_trust(trust);
    Ok(snap)
}

fn now_micros() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// Generates a key (slow for RSA: call off the workers).
pub fn generate(alg: Alg, kid: Option<String>, use_: &str) -> Result<Jwk, String> {
    let kid = match kid.filter(|k| !k.is_empty()) {
        Some(k) => k,
        None => generate_uuid_v4(&SystemRandom::new()).map_err(|e| e.to_string())?,
    };
    Jwk::generate(alg, &kid, use_).map_err(|e| e.to_string())
}

/// Generates the default sets that are missing; run at start-up, before the workers, one
/// thread per set (RSA generation dominates a first start).
pub fn ensure_defaults(store: &Backend, seal_keys: &[[u8; 32]], snap: &mut KeySnapshot) -> Result<Vec<String>, String> {
    let missing: Vec<&str> =
        DEFAULT_SETS.into_iter().filter(|set| snap.sets.get(*set).is_none_or(|k| k.is_empty())).collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let generated: Vec<Result<Jwk, String>> = std::thread::scope(|scope| {
        let jobs: Vec<_> = missing.iter().map(|_| scope.spawn(|| generate(Alg::RS256, None, "sig"))).collect();
        jobs.into_iter().map(|j| j.join().unwrap_or_else(|_| Err("key generation failed".into()))).collect()
    });
    for (set, jwk) in missing.iter().zip(generated) {
        let row = seal_row(seal_keys, set, &jwk?, now_micros())?;
        block_on(store.write_keys(set, KeyWrite::AddIfEmpty(vec![row]))).map_err(|e| e.to_string())?;
    }
    *snap = load(store, seal_keys)?;
    Ok(missing.into_iter().map(String::from).collect())
}

impl Shared {
    /// Re-reads one set after a durable write with commit-ordered `version`, unless a later
    /// write of that set was applied already.
    pub async fn reload_set(&self, set: &str, version: u64) -> Result<(), String> {
        let mut keys: Vec<Arc<KeyEntry>> = Vec::new();
        let mut trust = Vec::new();
        for row in self.store.load_keys().await.map_err(|e| e.to_string())? {
            if row.set == set && set == TRUST_SET {
                trust.push((row.created, trust_of(&row, &open_plain(&self.key_seal, &row)?)?));
            } else if row.set == set {
                keys.push(Arc::new(open_row(&self.key_seal, &row)?));
            }
        }
        keys.sort_by_key(|k| std::cmp::Reverse(k.created));
        let keys = Arc::new(keys);
        let trust = sorted_trust(trust);
        self.keys.rcu(|old| {
            let mut next = KeySnapshot::clone(old);
            if next.versions.get(set).is_some_and(|v| *v >= version) {
                return next;
            }
            next.versions.insert(set.to_string(), version);
            if set == TRUST_SET {
                next.trust = trust.clone();
            } else if keys.is_empty() {
                next.sets.remove(set);
            } else {
                next.sets.insert(set.to_string(), keys.clone());
            }
            next
        });
        Ok(())
    }
}

fn server_error(e: impl std::fmt::Display) -> Response {
    crate::error!("key set operation failed", "reason" = e);
    Response::generic_error(500, "server_error", "The key set could not be read or written.")
}

fn bad_request(description: &str) -> Response {
    Response::generic_error(400, "invalid_request", description)
}

fn key_not_found() -> Response {
    Response::generic_error(404, "Not Found", "The requested resource could not be found")
}

/// Writes durably, then refreshes the snapshot. Returns whether anything was there before.
async fn write(w: &Worker, set: &str, change: KeyWrite) -> Result<bool, Response> {
    let (had, version) = w.shared.store.write_keys(set, change).await.map_err(server_error)?;
    w.shared.reload_set(set, version).await.map_err(server_error)?;
    Ok(had)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && !s.contains('\0') && s != TRUST_SET
}

fn reserved(set: &str) -> Option<Response> {
    (set == TRUST_SET).then(|| bad_request("The key set name is reserved for trust relationships."))
}

/// Writes a trust relationship row (or, `None`, deletes it) durably, then refreshes the snapshot.
pub(crate) async fn write_trust(w: &Worker, id: &str, grant: Option<&Trust>) -> Result<bool, Response> {
    let change = match grant {
        Some(g) => {
            let plain = serde_json::to_vec(g).map_err(server_error)?;
            // `created` holds the expiry (µs): the janitor drops expired rows without opening them.
            let expiry = (g.expires_at.max(0) as u64).saturating_mul(1_000_000);
            KeyWrite::Add(vec![seal_plain(&w.shared.key_seal, TRUST_SET, id, &plain, expiry).map_err(server_error)?])
        }
        None => KeyWrite::DeleteKey(id.to_string()),
    };
    write(w, TRUST_SET, change).await
}

fn keys_json(keys: impl Iterator<Item = Jwk>) -> serde_json::Value {
    json!({ "keys": keys.collect::<Vec<_>>() })
}

/// `GET /admin/keys/{set}`: the whole set, private members included (as Hydra).
pub fn get_set(w: &Worker, set: &str) -> Response {
    match w.shared.keys.load().sets.get(set) {
        Some(keys) if !keys.is_empty() => Response::json_value(200, &keys_json(keys.iter().map(|k| k.jwk.clone()))),
        _ => key_not_found(),
    }
}

/// `GET /admin/keys/{set}/{kid}`.
pub fn get_key(w: &Worker, set: &str, kid: &str) -> Response {
    let snap = w.shared.keys.load();
    match snap.sets.get(set).and_then(|keys| keys.iter().find(|k| k.jwk.kid == kid)) {
        Some(k) => Response::json_value(200, &keys_json(std::iter::once(k.jwk.clone()))),
        None => key_not_found(),
    }
}

#[derive(serde::Deserialize)]
struct CreateBody {
    #[serde(default)]
    alg: String,
    #[serde(default)]
    kid: String,
    #[serde(default, rename = "use")]
    use_: String,
}

/// `POST /admin/keys/{set}`: generates one key and adds it to the set.
pub async fn create(w: &Worker, req: &Request, set: &str) -> Response {
    if !valid_name(set) {
        return bad_request("The key set name is invalid.");
    }
    let body: CreateBody = match serde_json::from_slice(&req.body) {
        Ok(b) => b,
        Err(e) => return bad_request(&format!("The request body is not a valid key set request: {e}")),
    };
    let Some(alg) = Alg::parse(&body.alg) else {
        return bad_request(
            "Unsupported key algorithm: use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA.",
        );
    };
    let use_ = if body.use_.is_empty() { "sig".to_string() } else { body.use_ };
    if use_ != "sig" && use_ != "enc" {
        return bad_request("The key use must be \"sig\" or \"enc\".");
    }
    if body.kid.contains('\0') {
        return bad_request("The key id is invalid.");
    }
    let kid = Some(body.kid);
    let jwk = match w.shared.pool.run(move || generate(alg, kid, &use_)).await {
        Ok(Ok(k)) => k,
        Ok(Err(e)) => return server_error(e),
        Err(e) => return Response::oauth_error(&e.into()),
    };
    let row = match seal_row(&w.shared.key_seal, set, &jwk, now_micros()) {
        Ok(r) => r,
        Err(e) => return server_error(e),
    };
    // A key id already in the set is refused, never replaced (as Hydra: 409); replacing is PUT's.
    match write(w, set, KeyWrite::Create(vec![row])).await {
        Ok(true) => Response::json_value(201, &keys_json(std::iter::once(jwk))),
        Ok(false) => Response::exists_already(),
        Err(r) => r,
    }
}

fn checked(jwk: Jwk) -> Result<Jwk, Response> {
    if !valid_name(&jwk.kid) {
        return Err(bad_request("Every key needs a non-empty \"kid\"."));
    }
    jwk.validate().map_err(|e| bad_request(&format!("The key {:?} is invalid: {e}", jwk.kid)))?;
    Ok(jwk)
}

/// `PUT /admin/keys/{set}`: replaces the set with the given keys.
pub async fn put_set(w: &Worker, req: &Request, set: &str) -> Response {
    #[derive(serde::Deserialize)]
    struct Body {
        keys: Vec<Jwk>,
    }
    if !valid_name(set) {
        return bad_request("The key set name is invalid.");
    }
    let body: Body = match serde_json::from_slice(&req.body) {
        Ok(b) => b,
        Err(e) => return bad_request(&format!("The request body is not a JSON Web Key Set: {e}")),
    };
    let mut keys = Vec::with_capacity(body.keys.len());
    for k in body.keys {
        match checked(k) {
            Ok(k) => keys.push(k),
            Err(r) => return r,
        }
    }
    for (i, k) in keys.iter().enumerate() {
        if keys[..i].iter().any(|o| o.kid == k.kid) {
            return bad_request("Two keys of the set have the same \"kid\".");
        }
    }
    // Newest first in the set: the first key given is the one that signs.
    let base = now_micros();
    let mut rows = Vec::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        match seal_row(&w.shared.key_seal, set, k, base + (keys.len() - i) as u64) {
            Ok(r) => rows.push(r),
            Err(e) => return server_error(e),
        }
    }
    match write(w, set, KeyWrite::Replace(rows)).await {
        Ok(_) => Response::json_value(200, &keys_json(keys.into_iter())),
        Err(r) => r,
    }
}

/// `PUT /admin/keys/{set}/{kid}`: adds or replaces one key.
pub async fn put_key(w: &Worker, req: &Request, set: &str, kid: &str) -> Response {
    if !valid_name(set) || !valid_name(kid) {
        return bad_request("The key set name or key id is invalid.");
    }
    let mut jwk: Jwk = match serde_json::from_slice(&req.body) {
        Ok(k) => k,
        Err(e) => return bad_request(&format!("The request body is not a JSON Web Key: {e}")),
    };
    if jwk.kid.is_empty() {
        jwk.kid = kid.to_string();
    }
    if jwk.kid != kid {
        return bad_request("The key's \"kid\" does not match the path.");
    }
    let jwk = match checked(jwk) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let row = match seal_row(&w.shared.key_seal, set, &jwk, now_micros()) {
        Ok(r) => r,
        Err(e) => return server_error(e),
    };
    match write(w, set, KeyWrite::Add(vec![row])).await {
        Ok(_) => Response::json_value(200, &serde_json::to_value(&jwk).unwrap_or_default()),
        Err(r) => r,
    }
}

/// `DELETE /admin/keys/{set}`: 204 whether or not the set existed (as Hydra).
pub async fn delete_set(w: &Worker, set: &str) -> Response {
    if let Some(r) = reserved(set) {
        return r;
    }
    match write(w, set, KeyWrite::DeleteSet).await {
        Ok(_) => Response::empty(204),
        Err(r) => r,
    }
}

/// `DELETE /admin/keys/{set}/{kid}`: 204 whether or not the key existed (as Hydra).
pub async fn delete_key(w: &Worker, set: &str, kid: &str) -> Response {
    if let Some(r) = reserved(set) {
        return r;
    }
    match write(w, set, KeyWrite::DeleteKey(kid.to_string())).await {
        Ok(_) => Response::empty(204),
        Err(r) => r,
    }
}

/// Generates a signing key for a default set that an admin deleted, once, or that holds only
/// public keys (as Hydra generates one when its set has no private key).
async fn regenerate(w: &Worker, set: &'static str) -> Result<(), Response> {
    let jwk = match w.shared.pool.run(move || generate(Alg::RS256, None, "sig")).await {
        Ok(Ok(k)) => k,
        Ok(Err(e)) => return Err(server_error(e)),
        Err(e) => return Err(Response::oauth_error(&e.into())),
    };
    let row = seal_row(&w.shared.key_seal, set, &jwk, now_micros()).map_err(server_error)?;
    // An empty set: two first uses race harmlessly. Public keys only: the fresh key (a new id)
    // is added beside them.
    let empty = w.shared.keys.load().sets.get(set).is_none_or(|keys| keys.is_empty());
    let change = if empty { KeyWrite::AddIfEmpty(vec![row]) } else { KeyWrite::Create(vec![row]) };
    write(w, set, change).await.map(|_| ())
}

/// The key that signs for a default set, generated again if an admin deleted the set.
pub async fn signer(w: &Worker, set: &'static str) -> Result<Arc<Signer>, Response> {
    if let Some(s) = w.shared.keys.load().signer(set) {
        return Ok(s);
    }
    regenerate(w, set).await?;
    w.shared.keys.load().signer(set).ok_or_else(|| server_error("the key set has no signing key"))
}

/// The key that signs `client`'s ID tokens: the newest key of `hydra.openid.id-token` for its
/// `id_token_signed_response_alg`, else the set's signer. A client whose algorithm has no key in
/// the set gets `server_error` (an admin adds one with `hydra create jwk hydra.openid.id-token
/// --alg …`); no key is generated for it, since the newest key signs for every other client.
pub async fn id_token_signer(w: &Worker, client: &crate::oauth2::client::Client) -> Result<Arc<Signer>, Response> {
    if client.id_token_signed_response_alg.is_empty() {
        return signer(w, ID_TOKEN_SET).await;
    }
    let alg = crate::jose::jwk::Alg::parse(&client.id_token_signed_response_alg)
        .ok_or_else(|| server_error("the client's id_token_signed_response_alg is not supported"))?;
    w.shared.keys.load().signer_for(ID_TOKEN_SET, alg).ok_or_else(|| {
        server_error("no key of hydra.openid.id-token signs with the client's id_token_signed_response_alg")
    })
}

/// The public keys that verify our ID tokens (for `id_token_hint`s).
pub fn id_token_public_keys(w: &Worker) -> Vec<crate::jose::jwk::Jwk> {
    public_keys(w, ID_TOKEN_SET)
}

/// The public signature keys of `set`.
fn public_keys(w: &Worker, set: &str) -> Vec<crate::jose::jwk::Jwk> {
    let snap = w.shared.keys.load();
    snap.sets
        .get(set)
        .map(|keys| keys.iter().filter(|k| k.jwk.use_.as_deref() != Some("enc")).map(|k| k.jwk.public()).collect())
        .unwrap_or_default()
}

/// `GET /.well-known/jwks.json`: the public parts of the default sets.
pub async fn well_known(w: &Worker) -> Response {
    for set in DEFAULT_SETS {
        if w.shared.keys.load().sets.get(set).is_none_or(|k| k.is_empty()) {
            if let Err(r) = regenerate(w, set).await {
                return r;
            }
        }
    }
    let snap = w.shared.keys.load();
    let public =
        DEFAULT_SETS.iter().filter_map(|s| snap.sets.get(*s)).flat_map(|keys| keys.iter().map(|k| k.jwk.public()));
    Response::json_value(200, &keys_json(public))
}

/// The claims of an `id_token_hint` if it is an ID token this server signed (our key set, our
/// `iss`) for this client (`aud` holds it); expired ones count (OIDC Core §3.1.2.1). What the
/// login and consent apps see as `oidc_context.id_token_hint_claims` (as Hydra).
pub(crate) fn id_token_hint_claims(
    w: &Worker,
    hint: &str,
    client_id: &str,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    let keys = id_token_public_keys(w);
    let v = crate::jose::jws::verify(hint, &keys).ok()?;
    // A logout token is signed with the same keys; it is no ID token.
    if !crate::jose::jws::typed_as_jwt(&v.header) {
        return None;
    }
    let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&v.payload).ok()?;
    let for_client = crate::jose::jws::aud_names(claims.get("aud"), &[client_id]);
    let ours = claims.get("iss").and_then(|i| i.as_str()) == Some(w.config().urls.issuer.as_str());
    (ours && for_client && claims.get("sub").is_some_and(|s| s.is_string())).then_some(claims)
}
