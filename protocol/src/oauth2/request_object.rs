//! Request objects (OIDC Core §6: `request` by value, `request_uri` by reference), sans-IO: the
//! checks of an object once it is in hand and the client's keys are known, and how its claims
//! merge with the plain parameters.
//!
//! Invariants: an object is believed only after its signature verified with the client's own
//! keys under the algorithm it registered (`request_object_signing_alg`); `alg: none` only when
//! the client registered `none` or nothing (as Hydra), and then the object is worth no more
//! than the query it replaces; a signed object's `iss`, when present, is the client id and its
//! `aud`, when present, names this server's issuer (RFC 9101 §4 and OIDC Core §6.1 make both a
//! SHOULD, and Hydra requires neither); its `exp`/`nbf` hold; the object's `client_id` and `response_type` agree with
//! the plain ones; an object never holds `request` or `request_uri`; its members win over plain
//! parameters of the same name (§6.3.3).

use crate::jose::jwk::{Alg, Jwk};
use crate::jose::jws::{numeric_date, peek};
use serde_json::{Map, Value};

/// What the caller made of a request's `request` / `request_uri`.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestObject {
    /// Neither parameter was sent.
    Absent,
    /// The object's members, verified (or unsigned where allowed).
    Verified(Map<String, Value>),
    /// Refused, with the error the client hears (once its redirect URI is validated).
    Refused { error: &'static str, description: String },
}

impl RequestObject {
    pub fn refused(error: &'static str, description: impl Into<String>) -> RequestObject {
        RequestObject::Refused { error, description: description.into() }
    }
}

/// Clock skew allowed between the client and this server.
const LEEWAY_SECS: i64 = 60;

/// Claims of the JWT itself, never authorization parameters.
const JWT_CLAIMS: [&str; 6] = ["iss", "aud", "exp", "iat", "nbf", "jti"];

/// Verifies the object `jwt` of `client_id` with its `keys` and registered algorithm, and checks
/// the JWT's own claims. `issuer` is this server's issuer identifier.
pub fn verify(jwt: &str, keys: &[Jwk], registered_alg: &str, client_id: &str, issuer: &str, now: i64) -> RequestObject {
    let bad = |d: &str| RequestObject::refused("invalid_request_object", d);
    let Some(header) = peek(jwt, 0) else { return bad("The request object is not a JWT.") };
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let payload = if alg == "none" {
        if !(registered_alg.is_empty() || registered_alg == "none") {
            return bad("The request object is unsigned, but the client registered a request_object_signing_alg.");
        }
        // Unsigned: nothing after the second dot.
        if jwt.split('.').nth(2).is_none_or(|s| !s.is_empty()) || jwt.split('.').count() != 3 {
            return bad("The unsigned request object must end with an empty signature.");
        }
        match peek(jwt, 1) {
            Some(Value::Object(m)) => m,
            _ => return bad("The request object's payload is not a JSON object."),
        }
    } else {
        if Alg::parse(alg).is_none() {
            return bad("The request object's signing algorithm is not supported.");
        }
        if !registered_alg.is_empty() && registered_alg != alg {
            return bad("The request object is not signed with the client's request_object_signing_alg.");
        }
        if registered_alg == "none" {
            return bad("The client registered unsigned request objects (request_object_signing_alg none).");
        }
        let Ok(v) = crate::jose::jws::verify(jwt, keys) else {
            return bad("The request object's signature does not verify with the client's keys.");
        };
        match serde_json::from_slice(&v.payload) {
            Ok(Value::Object(m)) => {
                if m.get("iss").is_some_and(|i| i.as_str() != Some(client_id)) {
                    return bad("The request object's iss is not the client id.");
                }
                let aud_ok = m.get("aud").is_none_or(|a| crate::jose::jws::aud_names(Some(a), &[issuer]));
                if !aud_ok {
                    return bad("The request object's aud does not name this server's issuer.");
                }
                m
            }
            _ => return bad("The request object's payload is not a JSON object."),
        }
    };
    let (Ok(exp), Ok(nbf)) = (numeric_date(payload.get("exp")), numeric_date(payload.get("nbf"))) else {
        return bad("The request object's exp or nbf is not a number.");
    };
    if exp.is_some_and(|exp| exp <= now - LEEWAY_SECS) {
        return bad("The request object has expired.");
    }
    if nbf.is_some_and(|nbf| nbf > now + LEEWAY_SECS) {
        return bad("The request object is not valid yet (nbf).");
    }
    RequestObject::Verified(payload)
}

/// The parameters with the object's members merged in (they win), `request` and `request_uri`
/// removed; or the error (`invalid_request_object`) when the object contradicts them.
pub fn merge(
    params: &[(String, String)],
    object: &Map<String, Value>,
) -> Result<Vec<(String, String)>, (&'static str, String)> {
    let plain = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    let refuse = |d: &str| ("invalid_request_object", d.to_string());
    if object.contains_key("request") || object.contains_key("request_uri") {
        return Err(refuse("A request object must not contain request or request_uri."));
    }
    for name in ["client_id", "response_type"] {
        if let (Some(inside), Some(outside)) = (object.get(name), plain(name)) {
            if inside.as_str() != Some(outside) {
                return Err(refuse(&format!("The request object's {name} does not match the {name} parameter.")));
            }
        }
    }
    let mut merged: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "request" && k != "request_uri" && !object.contains_key(k.as_str()))
        .cloned()
        .collect();
    for (k, v) in object {
        if JWT_CLAIMS.contains(&k.as_str()) {
            continue;
        }
        let text = match v {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            // A list of words (scope, audience, prompt, ...) as the space-separated parameter.
            Value::Array(items) if items.iter().all(Value::is_string) => {
                items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" ")
            }
            // `claims` and anything structured: its JSON text, as the parameter would carry it.
            other => other.to_string(),
        };
        merged.push((k.clone(), text));
    }
    Ok(merged)
}

/// The `claims` parameter (OIDC Core §5.5): a JSON object whose `userinfo` and `id_token`
/// members, if present, are objects of requested claims (`null` or `{essential, value, values}`).
pub fn check_claims_parameter(text: &str) -> Result<Value, &'static str> {
    let v: Value = serde_json::from_str(text).map_err(|_| "The claims parameter is not valid JSON.")?;
    let Value::Object(m) = &v else { return Err("The claims parameter must be a JSON object.") };
    for member in ["userinfo", "id_token"] {
        match m.get(member) {
            None => {}
            Some(Value::Object(claims)) if claims.values().any(|c| !(c.is_null() || c.is_object())) => {
                return Err("Each requested claim must be null or an object.");
            }
            Some(Value::Object(_)) => {}
            Some(_) => return Err("The claims parameter's userinfo and id_token members must be objects."),
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::jws::Signer;
    use serde_json::json;

    const ISS: &str = "https://op.example";
    const NOW: i64 = 1_800_000_000;

    fn b64(v: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
    }

    fn unsigned(v: &Value) -> String {
        format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(v.to_string().as_bytes()))
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn signed_objects_verify_with_the_clients_key_and_alg_only() {
        let k = Jwk::generate(Alg::ES256, "k1", "sig").unwrap();
        let keys = [k.public()];
        let claims = json!({"iss": "c1", "aud": ISS, "client_id": "c1", "scope": "openid", "exp": NOW + 60});
        let jwt = Signer::from_jwk(&k).unwrap().sign(claims.to_string().as_bytes()).unwrap();
        assert!(matches!(verify(&jwt, &keys, "ES256", "c1", ISS, NOW), RequestObject::Verified(_)));
        assert!(matches!(verify(&jwt, &keys, "", "c1", ISS, NOW), RequestObject::Verified(_)));
        let refused = |r: RequestObject| matches!(r, RequestObject::Refused { error: "invalid_request_object", .. });
        assert!(refused(verify(&jwt, &keys, "RS256", "c1", ISS, NOW)), "another registered alg");
        assert!(refused(verify(&jwt, &keys, "none", "c1", ISS, NOW)), "registered unsigned only");
        let other = Jwk::generate(Alg::ES256, "k1", "sig").unwrap();
        assert!(refused(verify(&jwt, &[other.public()], "ES256", "c1", ISS, NOW)), "foreign key");
        assert!(refused(verify(&jwt, &keys, "ES256", "c2", ISS, NOW)), "iss of another client");
        assert!(refused(verify(&jwt, &keys, "ES256", "c1", "https://other.example", NOW)), "aud of another server");
        assert!(refused(verify(&jwt, &keys, "ES256", "c1", ISS, NOW + 3600)), "expired");
        // Unsigned: only where the client registered none or nothing.
        let none = unsigned(&json!({"client_id": "c1", "state": "s"}));
        assert!(matches!(verify(&none, &keys, "", "c1", ISS, NOW), RequestObject::Verified(_)));
        assert!(matches!(verify(&none, &keys, "none", "c1", ISS, NOW), RequestObject::Verified(_)));
        assert!(refused(verify(&none, &keys, "RS256", "c1", ISS, NOW)));
        assert!(refused(verify(&format!("{none}xyz"), &keys, "", "c1", ISS, NOW)), "none with a signature");
        assert!(refused(verify("garbage", &keys, "", "c1", ISS, NOW)));
    }

    #[test]
    fn members_win_and_contradictions_are_refused() {
        let params = pairs(&[("client_id", "c1"), ("response_type", "code"), ("scope", "openid"), ("request", "x")]);
        let object: Map<String, Value> = serde_json::from_value(json!({
            "client_id": "c1", "scope": "openid profile", "max_age": 30, "claims": {"id_token": {"email": null}},
            "audience": ["a", "b"], "iss": "c1", "exp": 1
        }))
        .unwrap();
        let m = merge(&params, &object).unwrap();
        let get = |k: &str| m.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("scope"), Some("openid profile"));
        assert_eq!(get("max_age"), Some("30"));
        assert_eq!(get("audience"), Some("a b"));
        assert_eq!(get("claims"), Some(r#"{"id_token":{"email":null}}"#));
        assert_eq!((get("request"), get("iss"), get("exp")), (None, None, None));
        assert_eq!(m.iter().filter(|(k, _)| k == "scope").count(), 1);
        let clash: Map<String, Value> = serde_json::from_value(json!({"client_id": "c2"})).unwrap();
        assert!(merge(&params, &clash).is_err());
        let clash: Map<String, Value> = serde_json::from_value(json!({"response_type": "token"})).unwrap();
        assert!(merge(&params, &clash).is_err());
        let nested: Map<String, Value> = serde_json::from_value(json!({"request_uri": "https://x"})).unwrap();
        assert!(merge(&params, &nested).is_err());
    }

    #[test]
    fn claims_parameter_shape() {
        assert!(check_claims_parameter(r#"{"userinfo":{"email":{"essential":true}},"id_token":{"acr":null}}"#).is_ok());
        for bad in ["[]", "{", r#"{"userinfo":[]}"#, r#"{"id_token":{"email":true}}"#] {
            assert!(check_claims_parameter(bad).is_err(), "{bad}");
        }
    }
}
