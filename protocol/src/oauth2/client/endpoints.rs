//! What the admin endpoints do with a request body: create, PUT, JSON Patch, lifespans.

use super::*;
// ---------------------------------------------------------------------------------------------
// Endpoint logic
// ---------------------------------------------------------------------------------------------

/// Server-managed or response-only fields that a body must not influence.
pub(super) const IGNORED_INPUT_FIELDS: [&str; 4] =
    ["created_at", "updated_at", "registration_access_token", "registration_client_uri"];

/// Decodes a client body: JSON object → (client, non-empty secret).
pub(super) fn decode_client_value(mut v: Value) -> Result<(Client, Option<String>), ClientError> {
    let Value::Object(map) = &mut v else {
        return Err(ClientError::decode("json: cannot unmarshal non-object into Go value of type client.Client"));
    };
    let secret = match map.remove("client_secret") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            return Err(ClientError::decode(
                "json: cannot unmarshal into Go struct field Client.client_secret of type string",
            ));
        }
    };
    for f in IGNORED_INPUT_FIELDS {
        map.remove(f);
    }
    let client: Client = serde_json::from_value(v).map_err(|e| ClientError::decode(&e.to_string()))?;
    Ok((client, secret))
}

pub(super) fn parse_body(body: &[u8]) -> Result<Value, ClientError> {
    serde_json::from_slice(body).map_err(|e| ClientError::decode(&e.to_string()))
}

/// `POST /admin/clients`. The caller hashes `plaintext_secret` (if any), stores
/// `StoredClient::new(client, hash)`, and answers 201 with
/// `client.to_json(plaintext_secret)` + `registration_access_token` + `registration_client_uri`.
pub fn prepare_create(
    body: &[u8],
    policy: &ClientPolicy,
    rng: &dyn SecureRandom,
    now_unix: i64,
) -> Result<NewClient, ClientError> {
    let (mut client, secret) = decode_client_value(parse_body(body)?)?;
    if client.client_id.is_empty() {
        client.client_id = generate_uuid_v4(rng)?;
    }
    validate(&mut client, secret.as_deref(), policy)?;
    // Public clients never authenticate with a secret and Hydra never reveals one for them, so we
    // neither generate nor keep one.
    let plaintext_secret = if client.is_public() {
        None
    } else {
        match secret {
            Some(s) => Some(s),
            None => Some(generate_secret_for(&client, rng)?),
        }
    };
    client.created_at = now_unix;
    client.updated_at = now_unix;
    Ok(NewClient { client, plaintext_secret })
}

/// What a registering party may not set (RFC 7591 leaves it to the server; these are Hydra's):
/// admin-only fields, refused with Hydra's errors.
fn check_dynamic(v: &Value) -> Result<(), ClientError> {
    let set = |k: &str| match v.get(k) {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Object(m)) => !m.is_empty(),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    };
    if set("metadata") {
        return Err(ClientError::invalid_client_metadata("'metadata' cannot be set for dynamic client registration"));
    }
    for k in ["skip_consent", "skip_logout_consent", "access_token_strategy"] {
        if set(k) {
            return Err(ClientError::new(
                400,
                "invalid_request",
                format!("'{k}' cannot be set for dynamic client registration"),
            ));
        }
    }
    Ok(())
}

const OWN_SECRET: &str = "It is not allowed to choose your own OAuth2 Client secret.";

/// `POST /oauth2/register` (RFC 7591, as Hydra): admin-only fields and a chosen secret are
/// refused, the client id is always generated, the secret too (for a confidential client).
pub fn prepare_dynamic_create(
    body: &[u8],
    policy: &ClientPolicy,
    rng: &dyn SecureRandom,
    now_unix: i64,
) -> Result<NewClient, ClientError> {
    let v = parse_body(body)?;
    check_dynamic(&v)?;
    let (mut client, secret) = decode_client_value(v)?;
    if secret.is_some_and(|s| !s.is_empty()) {
        return Err(ClientError::bad_request(OWN_SECRET));
    }
    client.client_id = generate_uuid_v4(rng)?;
    validate(&mut client, None, policy)?;
    let plaintext_secret = if client.is_public() { None } else { Some(generate_secret_for(&client, rng)?) };
    client.created_at = now_unix;
    client.updated_at = now_unix;
    Ok(NewClient { client, plaintext_secret })
}

/// `PUT /oauth2/register/{id}` (RFC 7592): a full update by the registering party; a secret in
/// the body is `403` (Hydra), the admin-only fields keep their stored values.
pub fn prepare_dynamic_update(
    existing: &StoredClient,
    body: &[u8],
    policy: &ClientPolicy,
    now_unix: i64,
) -> Result<NewClient, ClientError> {
    let v = parse_body(body)?;
    let (mut client, secret) = decode_client_value(v.clone())?;
    if secret.is_some_and(|s| !s.is_empty()) {
        return Err(ClientError::new(403, "The requested action was forbidden", OWN_SECRET.to_owned()));
    }
    check_dynamic(&v)?;
    let old = &existing.client;
    client.metadata = old.metadata.clone();
    client.skip_consent = old.skip_consent;
    client.skip_logout_consent = old.skip_logout_consent;
    client.access_token_strategy = old.access_token_strategy.clone();
    finish_update(existing, client, None, policy, now_unix)
}

pub(super) fn finish_update(
    existing: &StoredClient,
    mut client: Client,
    secret: Option<String>,
    policy: &ClientPolicy,
    now_unix: i64,
) -> Result<NewClient, ClientError> {
    // The id is immutable: always the stored one.
    client.client_id = existing.client.client_id.clone();
    validate(&mut client, secret.as_deref(), policy)?;
    client.created_at = existing.client.created_at;
    client.updated_at = now_unix;
    Ok(NewClient { client, plaintext_secret: secret })
}

/// `PUT /admin/clients/{id}`: full replacement. `path_id` must name `existing` (the caller looked it
/// up); an empty/missing secret keeps the stored hash (and rotated hashes), a new one is returned
/// in `plaintext_secret` for hashing (the caller then clears rotated hashes and echoes it).
pub fn prepare_update(
    existing: &StoredClient,
    path_id: &str,
    body: &[u8],
    policy: &ClientPolicy,
    _rng: &dyn SecureRandom,
    now_unix: i64,
) -> Result<NewClient, ClientError> {
    let (mut client, secret) = decode_client_value(parse_body(body)?)?;
    client.client_id = path_id.to_owned();
    finish_update(existing, client, secret, policy, now_unix)
}

pub(super) fn bad_patch(reason: &str) -> ClientError {
    ClientError::bad_request(reason)
}

pub(super) fn unescape_pointer_token(t: &str) -> String {
    t.replace("~1", "/").replace("~0", "~")
}

/// Creates missing parent objects for an `add` (Hydra enables json-patch's EnsurePathExistsOnAdd).
pub(super) fn ensure_parents(doc: &mut Value, path: &str) {
    let tokens: Vec<String> = path.split('/').skip(1).map(unescape_pointer_token).collect();
    let mut cur = doc;
    for tok in tokens.iter().take(tokens.len().saturating_sub(1)) {
        let next = match cur {
            Value::Object(m) => {
                let entry = m.entry(tok.clone()).or_insert(Value::Null);
                if entry.is_null() {
                    *entry = Value::Object(Map::new());
                }
                entry
            }
            Value::Array(a) => match tok.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(v) => v,
                None => return,
            },
            _ => return,
        };
        cur = next;
    }
}

/// Last segment is `-` or an index: Hydra keeps `replace` semantics only for element access.
pub(super) fn is_element_access(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    !path.is_empty() && (last == "-" || last.parse::<i64>().is_ok())
}

/// `PATCH /admin/clients/{id}`: RFC 6902 over the wire JSON of the stored client (which carries
/// the stored hash as `client_secret`, as Hydra's does). Only add/remove/replace; `replace` of a
/// missing member acts like `add`. A changed `client_secret` comes back as `plaintext_secret`.
pub fn prepare_patch(
    existing: &StoredClient,
    patch_body: &[u8],
    policy: &ClientPolicy,
    _rng: &dyn SecureRandom,
    now_unix: i64,
) -> Result<NewClient, ClientError> {
    let ops = match parse_body(patch_body)? {
        Value::Array(ops) => ops,
        _ => return Err(bad_patch("The JSON Patch document must be an array of operations.")),
    };
    let old_hash = existing.secret_hash.clone().unwrap_or_default();
    let mut doc = existing.client.to_json(Some(&old_hash).filter(|h| !h.is_empty()).map(String::as_str));

    for mut op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or("").to_owned();
        let Some(path) = op.get("path").and_then(Value::as_str).map(str::to_owned) else {
            return Err(bad_patch("error parsing patch operations: missing path"));
        };
        if !matches!(kind.as_str(), "add" | "remove" | "replace") {
            return Err(bad_patch(&format!("unsupported operation: {kind}")));
        }
        let lower = path.to_ascii_lowercase();
        let denied = ["/client_id", "/id", "/rotated_secrets"]
            .iter()
            .any(|d| lower == *d || lower.starts_with(&format!("{d}/")));
        if denied {
            return Err(bad_patch(&format!("patch includes denied path: {path}")));
        }
        if kind == "replace" && !is_element_access(&path) {
            if let Some(m) = op.as_object_mut() {
                m.insert("op".to_owned(), Value::String("add".to_owned()));
            }
        }
        if op.get("op").and_then(Value::as_str) == Some("add") {
            ensure_parents(&mut doc, &path);
        }
        let parsed: json_patch::PatchOperation =
            serde_json::from_value(op).map_err(|e| bad_patch(&format!("error parsing patch operations: {e}")))?;
        json_patch::patch(&mut doc, &[parsed]).map_err(|e| bad_patch(&e.to_string()))?;
    }

    let (client, secret) = decode_client_value(doc)?;
    // Unchanged (still the hash) or removed both mean "keep the stored secret".
    let secret = secret.filter(|s| *s != old_hash);
    finish_update(existing, client, secret, policy, now_unix)
}

/// `PUT /admin/clients/{id}/lifespans`: replaces all 13 lifespans (missing → null) and re-validates.
/// The secret is untouched; the response never contains one.
pub fn set_lifespans(existing: &StoredClient, body: &[u8], now_unix: i64) -> Result<Client, ClientError> {
    let v = parse_body(body)?;
    let Value::Object(map) = v else {
        return Err(ClientError::decode("json: cannot unmarshal non-object into Go value of type client.Lifespans"));
    };
    let mut client = existing.client.clone();
    for l in Lifespan::ALL {
        let value = match map.get(l.field_name()) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(ClientError::decode(&format!(
                    "json: cannot unmarshal into Go struct field Lifespans.{} of type string",
                    l.field_name()
                )));
            }
        };
        *client.lifespan_slot_mut(l) = value;
    }
    normalize_lifespans(&mut client)?;
    client.updated_at = now_unix;
    Ok(client)
}
