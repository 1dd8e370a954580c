//! `private_key_jwt` client authentication at the token endpoint: a client's assertion signed
//! with its registered key (inline `jwks`, or `jwks_uri` fetched over verified TLS and fetched
//! again when the client rotates keys) authenticates it once; every bad assertion the issue names
//! is `401 invalid_client`; a `jti` stays spent across a restart.

use crate::harness::*;
use crate::security::outbound::{ca_file, ok, tls_peer};
use hydra::jose::jwk::{Alg, Jwk};
use hydra::jose::jws::Signer;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

const TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn sign(key: &Jwk, claims: &Value) -> String {
    Signer::from_jwk(key).unwrap().sign(claims.to_string().as_bytes()).unwrap()
}

/// A good assertion of `id` for server `s`'s token endpoint.
fn claims(s: &Server, id: &str) -> Value {
    json!({
        "iss": id, "sub": id, "aud": format!("http://{}/oauth2/token", s.public),
        "iat": now(), "exp": now() + 300, "jti": uniq("jti"),
    })
}

fn present(s: &Server, id: Option<&str>, assertion: &str) -> Response {
    let mut p =
        vec![("grant_type", "client_credentials"), ("client_assertion_type", TYPE), ("client_assertion", assertion)];
    if let Some(id) = id {
        p.push(("client_id", id));
    }
    Req::new("POST", "/oauth2/token").form(&p).send(s.public)
}

fn jwt_client(s: &Server, extra: Value) -> String {
    let id = uniq("pkjwt");
    let mut body = json!({
        "client_id": id, "grant_types": ["client_credentials"], "scope": "read",
        "token_endpoint_auth_method": "private_key_jwt",
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    create_client(s, &body);
    id
}

#[test]
fn assertions_authenticate_once_and_bad_ones_never() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Opts::new("io_uring").dir(dir.path());
    let s = opts.start();
    let key = Jwk::generate(Alg::ES256, "c-key", "sig").unwrap();
    let id = jwt_client(&s, json!({"jwks": {"keys": [key.public()]}, "token_endpoint_auth_signing_alg": "ES256"}));
    let good = claims(&s, &id);
    let assertion = sign(&key, &good);
    let r = present(&s, Some(&id), &assertion);
    assert!(r.expect(200).json()["access_token"].as_str().unwrap().starts_with("ory_at_"));
    // Replayed: the jti is spent.
    present(&s, Some(&id), &assertion).expect_error(401, "invalid_client");
    // The issuer as audience, and no client_id in the body (the assertion's sub names it).
    let mut c = claims(&s, &id);
    c["aud"] = json!(format!("http://{}/", s.public));
    present(&s, None, &sign(&key, &c)).expect(200);

    use base64::Engine;
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let other_key = Jwk::generate(Alg::ES256, "c-key", "sig").unwrap();
    let rsa = Jwk::generate(Alg::RS256, "c-key", "sig").unwrap();
    let payload = b64(claims(&s, &id).to_string().as_bytes());
    let none = format!("{}.{payload}.", b64(br#"{"alg":"none"}"#));
    let input = format!("{}.{payload}", b64(br#"{"alg":"HS256","kid":"c-key"}"#));
    let mac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.x.as_deref().unwrap().as_bytes());
    let hs256 = format!("{input}.{}", b64(ring::hmac::sign(&mac, input.as_bytes()).as_ref()));
    let with = |k: &str, v: Value| {
        let mut c = claims(&s, &id);
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v;
        }
        sign(&key, &c)
    };
    let cases: Vec<(&str, String)> = vec![
        ("another key", sign(&other_key, &claims(&s, &id))),
        ("alg none", none),
        ("HS256 with the public key as secret", hs256),
        ("RS256 when ES256 is registered", sign(&rsa, &claims(&s, &id))),
        ("wrong aud", with("aud", json!("https://elsewhere.example/oauth2/token"))),
        ("the issuer without its slash", with("aud", json!(format!("http://{}", s.public)))),
        ("the token endpoint with a slash", with("aud", json!(format!("http://{}/oauth2/token/", s.public)))),
        ("expired", with("exp", json!(now() - 120))),
        ("exp too far ahead", with("exp", json!(now() + 2 * 86400))),
        ("no exp", with("exp", Value::Null)),
        ("no jti", with("jti", Value::Null)),
        ("iss not the client", with("iss", json!("someone-else"))),
        ("sub not the client", with("sub", json!("someone-else"))),
    ];
    for (what, a) in &cases {
        let r = present(&s, Some(&id), a);
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        assert_eq!(r.json()["error"], "invalid_client", "{what}");
    }
    // Another client's assertion presented under this client's id.
    let key2 = Jwk::generate(Alg::ES256, "k2", "sig").unwrap();
    let id2 = jwt_client(&s, json!({"jwks": {"keys": [key2.public()]}, "token_endpoint_auth_signing_alg": "ES256"}));
    present(&s, Some(&id), &sign(&key2, &claims(&s, &id2))).expect_error(401, "invalid_client");
    // A secret-based method for this client is refused, and an assertion for a secret client.
    token_req(&id, "whatever", &[]).send(s.public).expect_error(401, "invalid_client");
    let (sid, _) = cc_client(&s, "read");
    present(&s, Some(&sid), &sign(&key, &claims(&s, &sid))).expect_error(401, "invalid_client");
    // The spent jti stays spent across a restart.
    drop(s);
    let s = opts.start();
    present(&s, Some(&id), &assertion).expect_error(401, "invalid_client");
    let mut fresh = good.clone();
    fresh["jti"] = json!(uniq("jti"));
    fresh["aud"] = json!(format!("http://{}/oauth2/token", s.public));
    present(&s, Some(&id), &sign(&key, &fresh)).expect(200);
}

/// A server that trusts `pki`'s CA (written to `dir`, path returned) and may reach loopback peers.
fn trusting(pki: &crate::tls::Pki, dir: &std::path::Path) -> (Server, std::path::PathBuf) {
    let ca = ca_file(pki, dir);
    let s = Opts::new("legacy")
        .env("CLIENTS_HTTP_DISALLOW_PRIVATE_IP_RANGES", "false")
        .env("SSL_CERT_FILE", ca.to_str().unwrap())
        .start();
    (s, ca)
}

#[test]
fn jwks_uri_keys_are_fetched_and_a_rotation_is_picked_up() {
    let pki = crate::tls::make_pki();
    let served: Arc<Mutex<Value>> = Arc::new(Mutex::new(json!({"keys": []})));
    let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (doc, count) = (served.clone(), fetches.clone());
    let peer = tls_peer(&pki.cert_pem, &pki.key_pem, move |path| {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match path {
            "/jwks.json" => ok(&doc.lock().unwrap().to_string()),
            _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into(),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let (s, ca) = trusting(&pki, dir.path());
    let k1 = Jwk::generate(Alg::RS256, "k1", "sig").unwrap();
    *served.lock().unwrap() = json!({"keys": [k1.public()]});
    let uri = format!("https://127.0.0.1:{}/jwks.json", peer.addr.port());
    let id = jwt_client(&s, json!({"jwks_uri": uri}));
    present(&s, Some(&id), &sign(&k1, &claims(&s, &id))).expect(200);
    present(&s, Some(&id), &sign(&k1, &claims(&s, &id))).expect(200);
    let after_two = fetches.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(after_two, 1, "the document is cached");
    // The client rotates to k2: an assertion naming the unknown kid makes the server fetch again.
    let k2 = Jwk::generate(Alg::RS256, "k2", "sig").unwrap();
    *served.lock().unwrap() = json!({"keys": [k2.public()]});
    present(&s, Some(&id), &sign(&k2, &claims(&s, &id))).expect(200);
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 2);
    // Unknown kids again right away: at most one refetch per ten seconds.
    let k3 = Jwk::generate(Alg::RS256, "k3", "sig").unwrap();
    for _ in 0..5 {
        present(&s, Some(&id), &sign(&k3, &claims(&s, &id))).expect_error(401, "invalid_client");
    }
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 2, "bad kids do not make the server refetch");
    s.stop();
    // Without the private-range exception the loopback jwks_uri is never contacted.
    let before = peer.connections.load(std::sync::atomic::Ordering::SeqCst);
    let s = Opts::new("legacy").env("SSL_CERT_FILE", ca.to_str().unwrap()).start();
    let id = jwt_client(&s, json!({"jwks_uri": format!("https://127.0.0.1:{}/jwks.json", peer.addr.port())}));
    present(&s, Some(&id), &sign(&k2, &claims(&s, &id))).expect_error(401, "invalid_client");
    assert_eq!(peer.connections.load(std::sync::atomic::Ordering::SeqCst), before);
}

/// A client whose `jwks_uri` fails (an error status, or no key set) is not fetched again for
/// every assertion that names it: one failed fetch per ten seconds per client, so bad assertions
/// cost neither the client's host nor the outbound pool a fetch each.
#[test]
fn a_failing_jwks_uri_is_not_fetched_for_every_assertion() {
    let pki = crate::tls::make_pki();
    let fetches = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = fetches.clone();
    let peer = tls_peer(&pki.cert_pem, &pki.key_pem, move |path| {
        seen.lock().unwrap().push(path.to_string());
        match path {
            "/garbage.json" => ok("this is not a key set"),
            _ => "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".into(),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = trusting(&pki, dir.path());
    let key = Jwk::generate(Alg::RS256, "k1", "sig").unwrap();
    for path in ["/down.json", "/garbage.json"] {
        let id = jwt_client(&s, json!({"jwks_uri": format!("https://127.0.0.1:{}{path}", peer.addr.port())}));
        for _ in 0..5 {
            present(&s, Some(&id), &sign(&key, &claims(&s, &id))).expect_error(401, "invalid_client");
        }
        let n = fetches.lock().unwrap().iter().filter(|p| *p == path).count();
        assert_eq!(n, 1, "{path}: one fetch for five assertions");
    }
}

/// An HMAC assertion (`client_secret_jwt`) with `secret` under `alg`.
fn hmac_assertion(alg: &str, secret: &str, claims: &Value) -> String {
    use base64::Engine;
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let algorithm = match alg {
        "HS256" => ring::hmac::HMAC_SHA256,
        "HS384" => ring::hmac::HMAC_SHA384,
        _ => ring::hmac::HMAC_SHA512,
    };
    let input = format!(
        "{}.{}",
        b64(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let key = ring::hmac::Key::new(algorithm, secret.as_bytes());
    format!("{input}.{}", b64(ring::hmac::sign(&key, input.as_bytes()).as_ref()))
}

#[test]
fn client_secret_jwt_authenticates_with_the_secret_once_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Opts::new("io_uring").dir(dir.path());
    let s = opts.start();
    // A generated secret is long enough for HS512 (64 bytes); the answer shows it once.
    let c = create_client(
        &s,
        &json!({"grant_types": ["client_credentials"], "scope": "read", "token_endpoint_auth_method": "client_secret_jwt"}),
    );
    let id = c["client_id"].as_str().unwrap().to_string();
    let secret = c["client_secret"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 64);
    assert_eq!(c["token_endpoint_auth_method"], "client_secret_jwt");
    let got = Req::get(&format!("/admin/clients/{id}")).send(s.admin).json();
    assert!(got.get("client_secret").is_none() || got["client_secret"] == "", "the secret is never read back: {got}");

    let good = hmac_assertion("HS256", &secret, &claims(&s, &id));
    assert!(present(&s, Some(&id), &good).expect(200).json()["access_token"].as_str().unwrap().starts_with("ory_at_"));
    present(&s, Some(&id), &good).expect_error(401, "invalid_client");

    // Wrong secret, other HMAC algorithm than registered, alg none, signed assertion, bad claims.
    let wrong = hmac_assertion("HS256", &"x".repeat(64), &claims(&s, &id));
    let hs512 = hmac_assertion("HS512", &secret, &claims(&s, &id));
    use base64::Engine;
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let none = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(claims(&s, &id).to_string().as_bytes()));
    let rsa = Jwk::generate(Alg::RS256, "k", "sig").unwrap();
    let signed = sign(&rsa, &claims(&s, &id));
    let mut far = claims(&s, &id);
    far["exp"] = json!(now() + 7200);
    let mut aud = claims(&s, &id);
    aud["aud"] = json!("https://elsewhere.example/oauth2/token");
    let mut expired = claims(&s, &id);
    expired["exp"] = json!(now() - 300);
    let mut iss = claims(&s, &id);
    iss["iss"] = json!("someone-else");
    for (what, a) in [
        ("wrong secret", wrong),
        ("HS512 for an HS256 client", hs512),
        ("none", none),
        ("RS256", signed),
        ("exp too far", hmac_assertion("HS256", &secret, &far)),
        ("wrong aud", hmac_assertion("HS256", &secret, &aud)),
        ("expired", hmac_assertion("HS256", &secret, &expired)),
        ("iss", hmac_assertion("HS256", &secret, &iss)),
    ] {
        let r = present(&s, Some(&id), &a);
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        assert_eq!(r.json()["error"], "invalid_client", "{what}");
    }
    // The secret does not authenticate by Basic either: the method is exact.
    token_req(&id, &secret, &[]).send(s.public).expect_error(401, "invalid_client");

    // Another client's HMAC assertion with its own secret does not pass as this one.
    let other = create_client(
        &s,
        &json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_jwt", "client_secret": "o".repeat(40)}),
    );
    let other_id = other["client_id"].as_str().unwrap();
    let mut theirs = claims(&s, other_id);
    theirs["sub"] = json!(id);
    theirs["iss"] = json!(id);
    present(&s, Some(&id), &hmac_assertion("HS256", &"o".repeat(40), &theirs)).expect_error(401, "invalid_client");

    // Across a restart: the sealed secret still opens, the spent jti stays spent.
    s.stop();
    let s = opts.start();
    present(&s, Some(&id), &good).expect_error(401, "invalid_client");
    present(&s, Some(&id), &hmac_assertion("HS256", &secret, &claims(&s, &id))).expect(200);

    // A new secret by PUT replaces the old one for assertions; switching a Basic client to the
    // method without a new secret is refused (only its hash is kept).
    let mut body = Req::get(&format!("/admin/clients/{id}")).send(s.admin).json();
    body["client_secret"] = json!("n".repeat(32));
    Req::new("PUT", &format!("/admin/clients/{id}")).json(&body).send(s.admin).expect(200);
    present(&s, Some(&id), &hmac_assertion("HS256", &secret, &claims(&s, &id))).expect_error(401, "invalid_client");
    present(&s, Some(&id), &hmac_assertion("HS256", &"n".repeat(32), &claims(&s, &id))).expect(200);
    // A longer algorithm for the kept 32-byte secret: refused, the secret is too short for it.
    let mut longer = Req::get(&format!("/admin/clients/{id}")).send(s.admin).json();
    longer["token_endpoint_auth_signing_alg"] = json!("HS512");
    let r = Req::new("PUT", &format!("/admin/clients/{id}")).json(&longer).send(s.admin);
    r.expect_error(400, "invalid_client_metadata");
    present(&s, Some(&id), &hmac_assertion("HS256", &"n".repeat(32), &claims(&s, &id))).expect(200);
    let (bid, _) = cc_client(&s, "read");
    let r = Req::new("PATCH", &format!("/admin/clients/{bid}"))
        .json(&json!([{"op": "replace", "path": "/token_endpoint_auth_method", "value": "client_secret_jwt"}]))
        .send(s.admin);
    r.expect_error(400, "invalid_client_metadata");
    let r = Req::new("PATCH", &format!("/admin/clients/{bid}"))
        .json(&json!([{"op": "replace", "path": "/token_endpoint_auth_method", "value": "client_secret_jwt"}, {"op": "replace", "path": "/client_secret", "value": "m".repeat(32)}]))
        .send(s.admin);
    r.expect(200);
    present(&s, Some(&bid), &hmac_assertion("HS256", &"m".repeat(32), &claims(&s, &bid))).expect(200);
    // Too short for its algorithm, or an algorithm that is not HMAC: refused at registration.
    for body in [
        json!({"token_endpoint_auth_method": "client_secret_jwt", "client_secret": "short-secret-0123456789"}),
        json!({"token_endpoint_auth_method": "client_secret_jwt", "token_endpoint_auth_signing_alg": "RS256"}),
    ] {
        Req::new("POST", "/admin/clients").json(&body).send(s.admin).expect_error(400, "invalid_client_metadata");
    }
    let d = Req::get("/.well-known/openid-configuration").send(s.public).json();
    assert!(d["token_endpoint_auth_methods_supported"].as_array().unwrap().contains(&json!("client_secret_jwt")));
    assert!(d["token_endpoint_auth_signing_alg_values_supported"].as_array().unwrap().contains(&json!("HS256")));
}

#[test]
fn client_secret_jwt_secrets_survive_a_system_secret_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = ("old-system-secret-0123456789", "new-system-secret-0123456789");
    let s = Opts::new("io_uring").dir(dir.path()).env("SECRETS_SYSTEM", old).start();
    let c = create_client(
        &s,
        &json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_jwt", "client_secret": "r".repeat(32)}),
    );
    let id = c["client_id"].as_str().unwrap().to_string();
    present(&s, Some(&id), &hmac_assertion("HS256", &"r".repeat(32), &claims(&s, &id))).expect(200);
    s.stop();
    // One start with both (the new one first) seals the secret again with the new one ...
    let s = Opts::new("io_uring").dir(dir.path()).env("SECRETS_SYSTEM", &format!("{new},{old}")).start();
    present(&s, Some(&id), &hmac_assertion("HS256", &"r".repeat(32), &claims(&s, &id))).expect(200);
    s.stop();
    // ... so the old one can go.
    let s = Opts::new("io_uring").dir(dir.path()).env("SECRETS_SYSTEM", new).start();
    present(&s, Some(&id), &hmac_assertion("HS256", &"r".repeat(32), &claims(&s, &id))).expect(200);
}

/// A spent `jti` stays spent for as long as its assertion could still be accepted (its `exp` plus
/// the clock leeway), even when the janitor's flow lifespan is shorter than that leeway.
#[test]
fn a_spent_jti_outlives_a_short_flow_lifespan() {
    let s = Opts::new("legacy").env("TTL_LOGIN_CONSENT_REQUEST", "1s").env("ENGINE_JANITOR_INTERVAL", "1s").start();
    let key = Jwk::generate(Alg::ES256, "c-key", "sig").unwrap();
    let id = jwt_client(&s, json!({"jwks": {"keys": [key.public()]}, "token_endpoint_auth_signing_alg": "ES256"}));
    let mut c = claims(&s, &id);
    c["exp"] = json!(now() + 1);
    let assertion = sign(&key, &c);
    present(&s, Some(&id), &assertion).expect(200);
    let passes = |s: &Server| {
        let text = Req::get("/admin/metrics/prometheus").send(s.admin).text();
        text.lines().find_map(|l| l.strip_prefix("hydra_janitor_passes_total")?.trim().parse::<f64>().ok()).unwrap()
    };
    // Past exp + the flow lifespan, with janitor passes after it: still within the 60 s leeway.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let seen = passes(&s);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while passes(&s) < seen + 2.0 {
        assert!(std::time::Instant::now() < deadline, "no janitor pass:\n{}", s.log());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    present(&s, Some(&id), &assertion).expect_error(401, "invalid_client");
}
