//! Request objects (OIDC Core §6) and the `claims` parameter: `request` by value and
//! `request_uri` by reference, signed with the client's key (or unsigned where it registered
//! none), merged over the plain parameters; a foreign signature, a mismatched `client_id`, an
//! unregistered or private `request_uri`, a huge document are refused to the validated redirect
//! URI; the `claims` parameter reaches the login and consent apps.

use crate::browser::*;
use crate::harness::*;
use crate::security::outbound::{ca_file, ok, tls_peer};
use hydra::jose::jwk::{Alg, Jwk};
use hydra::jose::jws::Signer;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

fn issuer(s: &Server) -> String {
    field(&Req::get("/.well-known/openid-configuration").send(s.public).json(), "issuer")
}

fn b64(v: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v)
}

fn signed(key: &Jwk, claims: &Value) -> String {
    Signer::from_jwk(key).unwrap().sign(claims.to_string().as_bytes()).unwrap()
}

fn unsigned(claims: &Value) -> String {
    format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(claims.to_string().as_bytes()))
}

/// What the object carries: the whole request, as a relying party library sends it.
fn object(s: &Server, rp: &Rp, extra: Value) -> Value {
    let mut c = json!({
        "iss": rp.id, "aud": issuer(s), "client_id": rp.id, "response_type": "code", "redirect_uri": CB,
        "scope": "openid", "state": "state-in-object-1", "nonce": "nonce-in-object-1",
        "code_challenge": CHALLENGE, "code_challenge_method": "S256",
    });
    if let (Value::Object(c), Value::Object(e)) = (&mut c, extra) {
        c.extend(e);
    }
    c
}

/// Only `client_id`, `response_type` and the object: everything else comes from inside it.
fn auth(s: &Server, rp: &Rp, param: &str, value: &str) -> Response {
    let path = format!("/oauth2/auth?{}", form(&[("client_id", &rp.id), ("response_type", "code"), (param, value)]));
    Req::get(&path).send(s.public)
}

/// The login request the login app sees for a challenge.
fn login_request(s: &Server, r: &Response) -> Value {
    let loc = location(r);
    let challenge = query_param(&loc, "login_challenge").unwrap_or_else(|| panic!("no login challenge: {loc}"));
    Req::get(&format!("/admin/oauth2/auth/requests/login?login_challenge={}", form_escape(&challenge)))
        .send(s.admin)
        .json()
}

#[test]
fn signed_and_unsigned_objects_by_value() {
    let s = api();
    let key = Jwk::generate(Alg::ES256, "rp-key", "sig").unwrap();
    let rp = rp(s, json!({"jwks": {"keys": [key.public()]}, "request_object_signing_alg": "ES256"}));
    // Signed: the object's members are the request; they win over plain ones.
    let jwt = signed(
        &key,
        &object(s, &rp, json!({"scope": "openid", "claims": {"id_token": {"email": {"essential": true}}}})),
    );
    let path = format!(
        "/oauth2/auth?{}",
        form(&[
            ("client_id", &rp.id),
            ("response_type", "code"),
            ("scope", "openid offline_access"),
            ("request", &jwt)
        ])
    );
    let r = Req::get(&path).send(s.public);
    let lr = login_request(s, &r);
    assert_eq!(lr["requested_scope"], json!(["openid"]), "the object's scope wins: {lr}");
    assert_eq!(lr["oidc_context"]["claims"], json!({"id_token": {"email": {"essential": true}}}));
    // The whole flow on it: the object's state and redirect URI are used.
    let mut jar = Jar::default();
    let r = jar.get(s, &path);
    jar.take(&r);
    let lc = query_param(&location(&r), "login_challenge").unwrap();
    let lv = accept_login(s, &lc, &standard_login());
    let cc = to_consent(s, &mut jar, &lv);
    let cv = accept_consent(s, &cc, &standard_consent());
    let done = location(&jar.get(s, &cv));
    assert_eq!(query_param(&done, "state").as_deref(), Some("state-in-object-1"));
    exchange(s, &rp, &code_of(&done), Some(VERIFIER)).expect(200);

    // Refused, each answered at the plain redirect URI with the plain state.
    let other = Jwk::generate(Alg::ES256, "rp-key", "sig").unwrap();
    let rsa = Jwk::generate(Alg::RS256, "rp-key", "sig").unwrap();
    let none = unsigned(&object(s, &rp, json!({})));
    let bad = [
        ("foreign key", signed(&other, &object(s, &rp, json!({})))),
        ("another algorithm than registered", signed(&rsa, &object(s, &rp, json!({})))),
        ("unsigned for a client that registered ES256", none),
        ("another client_id", signed(&key, &object(s, &rp, json!({"client_id": "someone-else"})))),
        ("another issuer claim", signed(&key, &object(s, &rp, json!({"iss": "someone-else"})))),
        ("another audience", signed(&key, &object(s, &rp, json!({"aud": "https://other.example"})))),
        ("expired", signed(&key, &object(s, &rp, json!({"exp": 1000})))),
        ("nested request_uri", signed(&key, &object(s, &rp, json!({"request_uri": "https://x.example/r"})))),
    ];
    for (what, jwt) in bad {
        let path = plain_path(&rp, &[("request", &jwt)]);
        let r = Req::get(&path).send(s.public);
        let loc = expect_client_error(&r, "invalid_request_object");
        assert_eq!(query_param(&loc, "state").as_deref(), Some("plain-state-123"), "{what}");
    }
    // A client that registered nothing may send unsigned objects (as Hydra); they are worth no
    // more than the query, and still merged.
    let open = rp_with_none(s);
    let r = auth(s, &open, "request", &unsigned(&object(s, &open, json!({"scope": "openid"}))));
    assert_eq!(login_request(s, &r)["requested_scope"], json!(["openid"]));
    // A malformed claims parameter is refused.
    let r = auth(s, &open, "request", &unsigned(&object(s, &open, json!({"claims": {"id_token": []}}))));
    expect_client_error(&r, "invalid_request");
    let d = Req::get("/.well-known/openid-configuration").send(s.public).json();
    assert_eq!(
        (
            d["request_parameter_supported"].as_bool(),
            d["request_uri_parameter_supported"].as_bool(),
            d["claims_parameter_supported"].as_bool()
        ),
        (Some(true), Some(true), Some(true))
    );
}

/// The path of a request with the plain redirect URI and state (refusals land there) and the
/// object parameters `extra`.
fn plain_path(rp: &Rp, extra: &[(&str, &str)]) -> String {
    let mut p = vec![
        ("client_id", rp.id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", CB),
        ("state", "plain-state-123"),
    ];
    p.extend_from_slice(extra);
    format!("/oauth2/auth?{}", form(&p))
}

/// A request by reference with the plain redirect URI and state.
fn auth_plain(s: &Server, rp: &Rp, uri: &str) -> Response {
    Req::get(&plain_path(rp, &[("request_uri", uri)])).send(s.public)
}

fn rp_with_none(s: &Server) -> Rp {
    rp(s, json!({}))
}

#[test]
fn request_uri_fetched_only_when_registered_and_allowed() {
    let pki = crate::tls::make_pki();
    let served: Arc<Mutex<String>> = Arc::new(Mutex::new(String::new()));
    let doc = served.clone();
    let peer = tls_peer(&pki.cert_pem, &pki.key_pem, move |path| match path {
        "/ro.jwt" => ok(&doc.lock().unwrap()),
        "/huge.jwt" => ok(&"a".repeat(200 * 1024)),
        "/missing.jwt" => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into(),
        "/slow.jwt" => {
            std::thread::sleep(std::time::Duration::from_secs(8));
            ok("x.y.")
        }
        _ => "HTTP/1.1 302 Found\r\nLocation: https://127.0.0.1/elsewhere\r\nContent-Length: 0\r\n\r\n".into(),
    });
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(&pki, dir.path());
    let s = Opts::new("io_uring")
        .env("CLIENTS_HTTP_DISALLOW_PRIVATE_IP_RANGES", "false")
        .env("SSL_CERT_FILE", ca.to_str().unwrap())
        .start();
    let base = format!("https://127.0.0.1:{}", peer.addr.port());
    let uris: Vec<String> = ["/ro.jwt", "/huge.jwt", "/missing.jwt", "/redirect.jwt", "/slow.jwt"]
        .iter()
        .map(|p| format!("{base}{p}"))
        .collect();
    let key = Jwk::generate(Alg::RS256, "ro", "sig").unwrap();
    let rp = rp(&s, json!({"jwks": {"keys": [key.public()]}, "request_uris": uris}));
    *served.lock().unwrap() = signed(&key, &object(&s, &rp, json!({"scope": "openid"})));
    let r = auth(&s, &rp, "request_uri", &uris[0]);
    assert_eq!(login_request(&s, &r)["requested_scope"], json!(["openid"]));
    // A fragment (OIDC Core §6.2, a hash of the contents) is matched as registered, never fetched.
    let with_fragment = format!("{}#c2hhMjU2", uris[0]);
    let hashed = crate::browser::rp(&s, json!({"jwks": {"keys": [key.public()]}, "request_uris": [with_fragment]}));
    *served.lock().unwrap() = signed(&key, &object(&s, &hashed, json!({"scope": "openid"})));
    let r = auth(&s, &hashed, "request_uri", &with_fragment);
    assert_eq!(login_request(&s, &r)["requested_scope"], json!(["openid"]));
    expect_client_error(&auth_plain(&s, &hashed, &uris[0]), "invalid_request_uri");
    *served.lock().unwrap() = signed(&key, &object(&s, &rp, json!({"scope": "openid"})));
    let plain_for = |rp: &Rp, uri: &str| auth_plain(&s, rp, uri);
    let plain = |uri: &str| plain_for(&rp, uri);
    let connections = || peer.connections.load(std::sync::atomic::Ordering::SeqCst);
    // Not registered (even on the same host): never fetched.
    let before = connections();
    expect_client_error(&plain(&format!("{base}/other.jwt")), "invalid_request_uri");
    assert_eq!(connections(), before, "an unregistered URI is never fetched");
    // Too large, missing, redirected: invalid_request_uri (each with a client of its own: a
    // failed fetch holds the client's next one back).
    let fresh = || crate::browser::rp(&s, json!({"jwks": {"keys": [key.public()]}, "request_uris": uris}));
    for uri in &uris[1..4] {
        let before = connections();
        expect_client_error(&plain_for(&fresh(), uri), "invalid_request_uri");
        assert!(connections() > before, "{uri} was fetched");
    }
    // After a failed fetch, the client's next request_uri waits out the backoff unfetched;
    // another client is not held back.
    let failing = fresh();
    expect_client_error(&plain_for(&failing, &uris[2]), "invalid_request_uri");
    let before = connections();
    expect_client_error(&plain_for(&failing, &uris[0]), "invalid_request_uri");
    assert_eq!(connections(), before, "no fetch during the backoff");
    let r = plain(&uris[0]);
    assert!(location(&r).contains("login_challenge"), "another client still works: {}", location(&r));
    // A slow document: cut by the fetch's timeout, and the workers keep serving meanwhile.
    let slow_rp = fresh();
    let slow = {
        let (public, path) = (s.public, plain_path(&slow_rp, &[("request_uri", &uris[4])]));
        std::thread::spawn(move || {
            let t0 = std::time::Instant::now();
            (Req::get(&path).send(public), t0.elapsed())
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let t0 = std::time::Instant::now();
    for _ in 0..20 {
        Req::get("/health/alive").send(s.public).expect(200);
    }
    assert!(t0.elapsed() < std::time::Duration::from_secs(2), "a slow request_uri held a worker: {:?}", t0.elapsed());
    let (r, took) = slow.join().unwrap();
    expect_client_error(&r, "invalid_request_uri");
    assert!(
        took >= std::time::Duration::from_secs(3) && took < std::time::Duration::from_secs(8),
        "the fetch's timeout, not the backoff, cut the slow document: {took:?}"
    );
    // Both request and request_uri: refused.
    let both = plain_path(&rp, &[("request_uri", &uris[0]), ("request", "x.y.z")]);
    expect_client_error(&Req::get(&both).send(s.public), "invalid_request");
    // Registration: request_uris must be https.
    Req::new("POST", "/admin/clients")
        .json(&json!({"request_uris": ["http://rp.example/ro.jwt"]}))
        .send(s.admin)
        .expect_error(400, "invalid_client_metadata");
    s.stop();
    // With the private-range guard on, a loopback request_uri is never contacted.
    let s = Opts::new("io_uring").env("SSL_CERT_FILE", ca.to_str().unwrap()).start();
    let rp = crate::browser::rp(&s, json!({"jwks": {"keys": [key.public()]}, "request_uris": [uris[0].clone()]}));
    let before = peer.connections.load(std::sync::atomic::Ordering::SeqCst);
    let path = plain_path(&rp, &[("request_uri", &uris[0])]);
    expect_client_error(&Req::get(&path).send(s.public), "invalid_request_uri");
    assert_eq!(peer.connections.load(std::sync::atomic::Ordering::SeqCst), before);
}
