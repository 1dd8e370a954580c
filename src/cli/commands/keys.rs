//! `hydra create|get|delete|import jwk`: JSON Web Key sets.

use super::*;

pub(super) fn keys_path(set: &str) -> String {
    format!("/admin/keys/{}", path_escape(set))
}

/// A key without its private members (`--public`).
pub(super) fn public_jwk(key: &Value) -> Value {
    let mut k = key.clone();
    if let Some(o) = k.as_object_mut() {
        for m in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            o.remove(m);
        }
    }
    k
}

/// Prints key sets as Hydra's CLI does: a table row per key, or `{"set","keys"}` per set.
pub(super) fn render_jwks(ctx: &Ctx, sets: &[(String, Vec<Value>)], public: bool) -> Result<String, String> {
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for (set, keys) in sets {
        let keys: Vec<Value> = keys.iter().map(|k| if public { public_jwk(k) } else { k.clone() }).collect();
        for k in &keys {
            rows.push(vec![set.clone(), str_field(k, "kid"), str_field(k, "alg"), str_field(k, "use")]);
        }
        json.push(serde_json::json!({"set": set, "keys": keys}));
    }
    let json = match json.len() {
        1 => json.remove(0),
        _ => Value::Array(json),
    };
    render_table(ctx, &JWK_HEADER, &rows, &json)
}

pub(super) fn keys_of(resp: &Response) -> Result<Vec<Value>, String> {
    match parse_json(resp)?.get("keys") {
        Some(Value::Array(a)) => Ok(a.clone()),
        _ => Err("Error: the server did not answer with a JSON Web Key Set".to_string()),
    }
}

pub(super) fn create_jwk(
    set: &str,
    kid: Option<&str>,
    key: &KeyFlags,
    conn: &ConnFlags,
    out: Out,
) -> Result<(), String> {
    let ctx = Ctx::new(conn, DEFAULT_ADMIN_ENDPOINT)?;
    let body = serde_json::json!({"alg": key.alg, "kid": kid.unwrap_or(""), "use": key.use_}).to_string();
    let resp = ctx.call_ok("POST", &keys_path(set), &[], Some(("application/json", body.as_bytes())))?;
    write_out(out, &render_jwks(&ctx, &[(set.to_string(), keys_of(&resp)?)], key.public)?)
}

pub(super) fn get_jwks(sets: &[String], public: bool, conn: &ConnFlags, out: Out) -> Result<(), String> {
    let ctx = Ctx::new(conn, DEFAULT_ADMIN_ENDPOINT)?;
    let mut found = Vec::with_capacity(sets.len());
    for set in sets {
        let resp = ctx.call_ok("GET", &keys_path(set), &[], None)?;
        found.push((set.clone(), keys_of(&resp)?));
    }
    write_out(out, &render_jwks(&ctx, &found, public)?)
}

pub(super) fn delete_jwks(sets: &[String], conn: &ConnFlags, out: Out) -> Result<(), String> {
    let ctx = Ctx::new(conn, DEFAULT_ADMIN_ENDPOINT)?;
    for set in sets {
        ctx.call_ok("DELETE", &keys_path(set), &[], None)?;
    }
    write_out(out, &render_ids(&ctx, sets)?)
}

/// `hydra import jwk <set> <file…>`: each file holds a JSON Web Key, a JSON Web Key Set, or a
/// PEM / DER key (`--alg`, `--use`; a key id is generated). Each key is added to the set (the
/// set is created when missing; a key with the same id is replaced), then the set is printed.
pub(super) fn import_jwks(
    set: &str,
    files: &[String],
    key: &KeyFlags,
    conn: &ConnFlags,
    out: Out,
) -> Result<(), String> {
    let (alg, use_, public) = (key.alg.as_str(), key.use_.as_str(), key.public);
    use crate::jose::jwk::{Alg, Jwk};
    let ctx = Ctx::new(conn, DEFAULT_ADMIN_ENDPOINT)?;
    let mut keys: Vec<Value> = Vec::new();
    let new_kid = || {
        crate::oauth2::client::generate_uuid_v4(&ring::rand::SystemRandom::new())
            .map_err(|_| "Error: no randomness available".to_string())
    };
    for (name, bytes) in read_inputs(files)? {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(o)) if o.get("keys").is_some_and(Value::is_array) => {
                keys.extend(o.get("keys").and_then(Value::as_array).into_iter().flatten().cloned())
            }
            Ok(v @ Value::Object(_)) => keys.push(v),
            Ok(_) => return Err(format!("Error: {name}: expected a JSON Web Key or a JSON Web Key Set")),
            Err(_) => {
                let a =
                    Alg::parse(alg).ok_or_else(|| {
                        format!("Error: --alg {alg:?} is not one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA")
                    })?;
                let jwk = crate::jose::import::jwk_from_document(&bytes, a, &new_kid()?, use_)
                    .map_err(|e| format!("Error: {name}: {e}"))?;
                keys.push(serde_json::to_value(&jwk).map_err(|e| format!("Error: {e}"))?);
            }
        }
    }
    for k in &mut keys {
        if str_field(k, "kid").is_empty() {
            if let Some(o) = k.as_object_mut() {
                o.insert("kid".into(), Value::String(new_kid()?));
            }
        }
        // Refused before sending: a clear local error beats the server's.
        serde_json::from_value::<Jwk>(k.clone()).map_err(|e| format!("Error: not a JSON Web Key: {e}"))?;
        let path = format!("{}/{}", keys_path(set), path_escape(&str_field(k, "kid")));
        let body = k.to_string();
        ctx.call_ok("PUT", &path, &[], Some(("application/json", body.as_bytes())))?;
    }
    let resp = ctx.call_ok("GET", &keys_path(set), &[], None)?;
    write_out(out, &render_jwks(&ctx, &[(set.to_string(), keys_of(&resp)?)], public)?)
}
