//! `private_key_jwt` and `client_secret_jwt` client authentication (RFC 7523 §2.2 and §3, OIDC
//! Core §9), sans-IO: the checks of a client assertion once the client's keys (or secret) are known.
//!
//! Invariants: the signature is verified before any claim is believed, only with the client's
//! own keys (`check`) or secret (`check_hmac`) and only with the algorithm the client registered
//! (`token_endpoint_auth_signing_alg`: RS256 when unset for `private_key_jwt`, as Hydra; HS256
//! for `client_secret_jwt`); `none` never verifies, and `check` never accepts HMAC (`jose::jws`),
//! so a public key can never be used as an HMAC secret; `iss` and `sub` are the client id; `aud` names this server's
//! token endpoint URL or its issuer; `exp` is required, not past and at most `MAX_LIFETIME`
//! ahead; `jti` is required (the caller makes it single use until `exp`).

use crate::jose::jwk::{Alg, Jwk};
use crate::jose::jws::{numeric_date, peek};
use serde_json::Value;

/// RFC 7523 §2.2 `client_assertion_type`.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How far ahead an assertion's `exp` may lie: its `jti` is remembered until then.
pub const MAX_LIFETIME_SECS: i64 = 3600;

/// Clock skew allowed between the client and this server.
pub const LEEWAY_SECS: i64 = 60;

/// What a verified assertion leaves to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub jti: String,
    pub exp: i64,
    /// The `kid` the assertion named, if any (an unknown one may mean the client rotated keys).
    pub kid: Option<String>,
}

/// Why an assertion was refused (never echoing its content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No key of the client verifies it; `kid` is what it named (a refetch of `jwks_uri` may help).
    Signature {
        kid: Option<String>,
    },
    Claims(&'static str),
}

/// The `sub` of an assertion's payload, unverified: which client it claims to be, to look the
/// client up (RFC 7523 §3: `sub` is the client id). Nothing is trusted from it.
pub fn claimed_client(jwt: &str) -> Option<String> {
    peek(jwt, 1)?.get("sub")?.as_str().filter(|s| !s.is_empty()).map(String::from)
}

/// Checks an assertion of `client_id` against its `keys`.
pub fn check(
    jwt: &str,
    keys: &[Jwk],
    client_id: &str,
    signing_alg: &str,
    audiences: &[&str],
    now: i64,
) -> Result<Checked, Refused> {
    let kid = peek(jwt, 0).and_then(|h| h.get("kid")?.as_str().map(String::from));
    let v = crate::jose::jws::verify(jwt, keys).map_err(|_| Refused::Signature { kid: kid.clone() })?;
    let alg = v.header.get("alg").and_then(Value::as_str).and_then(Alg::parse);
    if alg.map(Alg::as_str) != Some(signing_alg) {
        return Err(Refused::Claims("the assertion is not signed with the client's token_endpoint_auth_signing_alg"));
    }
    claims(&v.payload, client_id, audiences, now, kid)
}

/// HMAC algorithms a `client_secret_jwt` client may register, and the shortest secret each
/// needs (RFC 7518 §3.2: a key at least as long as the hash output).
pub const HMAC_ALGS: [(&str, usize); 3] = [("HS256", 32), ("HS384", 48), ("HS512", 64)];

/// The shortest secret `alg` may use, if it is one of `HMAC_ALGS`.
pub fn hmac_min_secret(alg: &str) -> Option<usize> {
    HMAC_ALGS.iter().find(|(a, _)| *a == alg).map(|(_, m)| *m)
}

/// Checks a `client_secret_jwt` assertion of `client_id`: HMAC with the client's `secret` under
/// exactly `signing_alg` (one of `HMAC_ALGS`), compared in constant time, then the same claims as
/// `check`.
pub fn check_hmac(
    jwt: &str,
    secret: &[u8],
    client_id: &str,
    signing_alg: &str,
    audiences: &[&str],
    now: i64,
) -> Result<Checked, Refused> {
    let refused = || Refused::Signature { kid: None };
    let header = peek(jwt, 0).ok_or_else(refused)?;
    let alg = header.get("alg").and_then(Value::as_str).ok_or_else(refused)?;
    if alg != signing_alg {
        return Err(Refused::Claims("the assertion is not signed with the client's token_endpoint_auth_signing_alg"));
    }
    if header.get("crit").is_some() {
        return Err(refused());
    }
    let algorithm = match alg {
        "HS256" => ring::hmac::HMAC_SHA256,
        "HS384" => ring::hmac::HMAC_SHA384,
        "HS512" => ring::hmac::HMAC_SHA512,
        _ => return Err(refused()),
    };
    let mut parts = jwt.splitn(3, '.');
    let (Some(h), Some(p), Some(sig)) = (parts.next(), parts.next(), parts.next()) else { return Err(refused()) };
    if sig.contains('.') {
        return Err(refused());
    }
    let sig = crate::jose::b64url_decode(sig).map_err(|_| refused())?;
    let payload = crate::jose::b64url_decode(p).map_err(|_| refused())?;
    let key = ring::hmac::Key::new(algorithm, secret);
    let input = &jwt.as_bytes()[..h.len() + 1 + p.len()];
    ring::hmac::verify(&key, input, &sig).map_err(|_| refused())?;
    claims(&payload, client_id, audiences, now, None)
}

/// The claims of a verified assertion.
fn claims(
    payload: &[u8],
    client_id: &str,
    audiences: &[&str],
    now: i64,
    kid: Option<String>,
) -> Result<Checked, Refused> {
    let c: Value = serde_json::from_slice(payload).map_err(|_| Refused::Claims("the assertion is not JSON"))?;
    if c.get("iss").and_then(Value::as_str) != Some(client_id) {
        return Err(Refused::Claims("the assertion's iss is not the client id"));
    }
    if c.get("sub").and_then(Value::as_str) != Some(client_id) {
        return Err(Refused::Claims("the assertion's sub is not the client id"));
    }
    if !crate::jose::jws::aud_names(c.get("aud"), audiences) {
        return Err(Refused::Claims("the assertion's aud names neither the token endpoint nor the issuer"));
    }
    let date = |name: &str, bad: &'static str| numeric_date(c.get(name)).map_err(|_| Refused::Claims(bad));
    let exp = date("exp", "the assertion's exp is not a number")?.ok_or(Refused::Claims("the assertion has no exp"))?;
    if exp <= now - LEEWAY_SECS {
        return Err(Refused::Claims("the assertion has expired"));
    }
    if exp > now + MAX_LIFETIME_SECS {
        return Err(Refused::Claims("the assertion's exp is more than an hour ahead"));
    }
    if date("nbf", "the assertion's nbf is not a number")?.is_some_and(|nbf| nbf > now + LEEWAY_SECS) {
        return Err(Refused::Claims("the assertion is not valid yet (nbf)"));
    }
    if date("iat", "the assertion's iat is not a number")?.is_some_and(|iat| iat > now + LEEWAY_SECS) {
        return Err(Refused::Claims("the assertion was issued in the future (iat)"));
    }
    let jti = c.get("jti").and_then(Value::as_str).filter(|j| !j.is_empty() && j.len() <= 256);
    let jti = jti.ok_or(Refused::Claims("the assertion has no jti (or one longer than 256 characters)"))?;
    Ok(Checked { jti: jti.to_string(), exp, kid })
}

/// The keys of a JWK set document (`jwks` inline or fetched from `jwks_uri`), public parts only;
/// keys that do not parse, are not for signatures, or fail validation are left out.
pub fn parse_key_set(doc: &Value) -> Vec<Jwk> {
    let Some(keys) = doc.get("keys").and_then(Value::as_array) else { return Vec::new() };
    keys.iter()
        .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
        .filter(|k| k.use_.as_deref() != Some("enc") && k.validate().is_ok())
        .map(|k| k.public())
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::jws::Signer;
    use serde_json::json;

    const AUD: [&str; 2] = ["https://op.example/oauth2/token", "https://op.example/"];

    fn key(alg: Alg) -> Jwk {
        Jwk::generate(alg, "k1", "sig").unwrap()
    }

    fn sign(k: &Jwk, claims: &Value) -> String {
        Signer::from_jwk(k).unwrap().sign(claims.to_string().as_bytes()).unwrap()
    }

    fn claims(now: i64) -> Value {
        json!({"iss": "c1", "sub": "c1", "aud": AUD[0], "exp": now + 60, "iat": now, "jti": "j-1"})
    }

    #[test]
    fn a_good_assertion_and_each_bad_claim() {
        let k = key(Alg::ES256);
        let keys = [k.public()];
        let now = 1_000_000;
        let ok = check(&sign(&k, &claims(now)), &keys, "c1", "ES256", &AUD, now).unwrap();
        assert_eq!((ok.jti.as_str(), ok.exp, ok.kid.as_deref()), ("j-1", now + 60, Some("k1")));
        // The issuer as audience (what current relying-party libraries send), also in an array.
        let mut c = claims(now);
        c["aud"] = json!(["x", AUD[1]]);
        assert!(check(&sign(&k, &c), &keys, "c1", "ES256", &AUD, now).is_ok());
        let bad: [(&str, Value); 15] = [
            ("iss", json!("c2")),
            ("sub", json!("c2")),
            ("aud", json!("https://op.example/oauth2/auth")),
            ("exp", json!(now - 61)),
            ("exp", json!(now + MAX_LIFETIME_SECS + 1)),
            ("exp", Value::Null),
            ("jti", json!("")),
            ("jti", Value::Null),
            ("nbf", json!(now + 3600)),
            ("iat", json!(now + 3600)),
            // Fractions and exponents are NumericDates too: never read as absent.
            ("nbf", json!(now as f64 + 3600.5)),
            ("nbf", json!(1.0e9)),
            ("iat", json!(now as f64 + 3600.0)),
            ("nbf", json!("later")),
            ("exp", json!("soon")),
        ];
        for (name, value) in bad {
            let mut c = claims(now);
            if value.is_null() {
                c.as_object_mut().unwrap().remove(name);
            } else {
                c[name] = value;
            }
            let r = check(&sign(&k, &c), &keys, "c1", "ES256", &AUD, now);
            assert!(matches!(r, Err(Refused::Claims(_))), "{name}: {r:?}");
        }
        // A fractional exp is a valid one.
        let mut c = claims(now);
        c["exp"] = json!(now as f64 + 60.5);
        assert_eq!(check(&sign(&k, &c), &keys, "c1", "ES256", &AUD, now).map(|ok| ok.exp), Ok(now + 60));
        // Registered for another algorithm.
        assert!(matches!(check(&sign(&k, &claims(now)), &keys, "c1", "RS256", &AUD, now), Err(Refused::Claims(_))));
    }

    #[test]
    fn signatures_must_be_the_clients() {
        use base64::Engine;
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let k = key(Alg::RS256);
        let other = key(Alg::RS256);
        let now = 1_000_000;
        let keys = [k.public()];
        let foreign = sign(&other, &claims(now));
        assert_eq!(
            check(&foreign, &keys, "c1", "RS256", &AUD, now),
            Err(Refused::Signature { kid: Some("k1".into()) })
        );
        let payload = b64(claims(now).to_string().as_bytes());
        let none = format!("{}.{payload}.", b64(br#"{"alg":"none"}"#));
        assert!(matches!(check(&none, &keys, "c1", "RS256", &AUD, now), Err(Refused::Signature { .. })));
        // HS256 keyed with the public key's modulus: HMAC is never accepted.
        let input = format!("{}.{payload}", b64(br#"{"alg":"HS256","kid":"k1"}"#));
        let mac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, k.n.as_deref().unwrap().as_bytes());
        let hs = format!("{input}.{}", b64(ring::hmac::sign(&mac_key, input.as_bytes()).as_ref()));
        assert!(matches!(check(&hs, &keys, "c1", "RS256", &AUD, now), Err(Refused::Signature { .. })));
        assert_eq!(claimed_client(&foreign).as_deref(), Some("c1"));
        assert_eq!(claimed_client("garbage"), None);
    }

    #[test]
    fn hmac_assertions_verify_with_the_secret_and_alg_only() {
        use base64::Engine;
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let hs = |alg: &str, algorithm, secret: &[u8], c: &Value| {
            let input =
                format!("{}.{}", b64(format!(r#"{{"alg":"{alg}"}}"#).as_bytes()), b64(c.to_string().as_bytes()));
            let key = ring::hmac::Key::new(algorithm, secret);
            format!("{input}.{}", b64(ring::hmac::sign(&key, input.as_bytes()).as_ref()))
        };
        let secret = b"0123456789abcdef0123456789abcdef";
        let now = 1_000_000;
        let good = hs("HS256", ring::hmac::HMAC_SHA256, secret, &claims(now));
        let ok = check_hmac(&good, secret, "c1", "HS256", &AUD, now).unwrap();
        assert_eq!((ok.jti.as_str(), ok.exp), ("j-1", now + 60));
        // Another secret, another registered algorithm, a tampered payload, alg none, claims.
        assert!(matches!(
            check_hmac(&good, b"another-secret-0123456789abcdef!", "c1", "HS256", &AUD, now),
            Err(Refused::Signature { .. })
        ));
        assert!(matches!(check_hmac(&good, secret, "c1", "HS512", &AUD, now), Err(Refused::Claims(_))));
        let hs512 = hs("HS512", ring::hmac::HMAC_SHA512, secret, &claims(now));
        assert!(check_hmac(&hs512, secret, "c1", "HS512", &AUD, now).is_ok());
        let mut parts: Vec<String> = good.split('.').map(String::from).collect();
        let mut c = claims(now);
        c["sub"] = json!("c2");
        parts[1] = b64(c.to_string().as_bytes());
        assert!(matches!(
            check_hmac(&parts.join("."), secret, "c1", "HS256", &AUD, now),
            Err(Refused::Signature { .. })
        ));
        let none = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(claims(now).to_string().as_bytes()));
        assert!(check_hmac(&none, secret, "c1", "none", &AUD, now).is_err());
        let mut expired = claims(now);
        expired["exp"] = json!(now - 120);
        let expired = hs("HS256", ring::hmac::HMAC_SHA256, secret, &expired);
        assert!(matches!(check_hmac(&expired, secret, "c1", "HS256", &AUD, now), Err(Refused::Claims(_))));
        // An RS256 assertion never passes as HMAC, nor an HMAC one through the key check.
        let k = key(Alg::RS256);
        assert!(check_hmac(&sign(&k, &claims(now)), secret, "c1", "HS256", &AUD, now).is_err());
        assert!(check(&good, &[k.public()], "c1", "HS256", &AUD, now).is_err());
        for junk in ["", "a.b", "a.b.c.d", &format!("{good}.x")] {
            assert!(check_hmac(junk, secret, "c1", "HS256", &AUD, now).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn key_sets_keep_valid_signing_keys_only() {
        let k = key(Alg::ES256);
        let enc = Jwk { use_: Some("enc".into()), kid: "e".into(), ..key(Alg::ES256) };
        let doc = json!({"keys": [k, enc, {"kty": "EC", "kid": "bad"}, "x"]});
        let keys = parse_key_set(&doc);
        assert_eq!(keys.len(), 1);
        assert!(!keys[0].is_private(), "only public parts are kept");
        assert!(parse_key_set(&json!({})).is_empty());
    }
}
