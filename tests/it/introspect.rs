//! Area 4: introspection.

use crate::harness::*;
use serde_json::json;

#[test]
fn active_token_has_every_field() {
    let s = api();
    let (id, secret) = cc_client_with(s, json!({"scope": "a b", "audience": ["https://aud.example.com"]}));
    let t = token(s, &id, &secret, &[("scope", "a b"), ("audience", "https://aud.example.com")]);
    let tok = t["access_token"].as_str().unwrap();
    let r = introspect_req(tok, None).send(s.admin);
    r.expect(200);
    r.assert_no_store();
    assert!(r.header("content-type").unwrap().starts_with("application/json"));
    let v = r.json();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert_eq!(v["active"], true);
    assert_eq!(v["scope"], "a b");
    assert_eq!(v["client_id"], json!(id));
    assert_eq!(v["sub"], json!(id));
    let (exp, iat, nbf) = (v["exp"].as_i64().unwrap(), v["iat"].as_i64().unwrap(), v["nbf"].as_i64().unwrap());
    assert!((iat - now).abs() <= 5, "{v}");
    assert_eq!(nbf, iat);
    assert_eq!(exp - iat, 3600);
    assert_eq!(v["aud"], json!(["https://aud.example.com"]));
    assert!(v["iss"].as_str().is_some_and(|i| i.starts_with("http://127.0.0.1:")), "{v}");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["token_use"], "access_token");
    // Both URL forms answer the same.
    let r2 = Req::new("POST", "/oauth2/introspect").form(&[("token", tok)]).send(s.admin);
    assert_eq!(r2.json(), v);
}

#[test]
fn required_scope_check() {
    let s = api();
    let (id, secret) = cc_client(s, "a b c");
    let tok = token(s, &id, &secret, &[("scope", "a b")])["access_token"].as_str().unwrap().to_string();
    for (scope, active) in [("a", true), ("a b", true), ("b a", true), ("c", false), ("a c", false), ("", true)] {
        let v = introspect_req(&tok, Some(scope)).send(s.admin).json();
        if active {
            assert_eq!(v["active"], true, "scope {scope:?}: {v}");
        } else {
            assert_eq!(v, json!({"active": false}), "scope {scope:?}");
        }
    }
}

#[test]
fn unknown_forged_tampered_and_garbage_are_inactive() {
    let s = api();
    let (id, secret) = cc_client(s, "a");
    let tok = access_token(s, &id, &secret);
    assert!(is_active(s, &tok));
    let mut cases = vec![
        "garbage".to_string(),
        "ory_at_".to_string(),
        "ory_at_abc.def".to_string(),
        "ory_rt_".to_string() + &tok["ory_at_".len()..],
        tok.replacen("ory_at_", "ory_ac_", 1),
        format!("{tok}x"),
        tok[..tok.len() - 1].to_string(),
        "x".repeat(4000),
        "\u{00e9}\u{4e2d}".to_string(),
    ];
    // Flip every position's character in turn (a sample across the token).
    for pos in (7..tok.len()).step_by(5) {
        let mut b = tok.clone().into_bytes();
        b[pos] = if b[pos] == b'A' { b'B' } else { b'A' };
        if b != tok.as_bytes() {
            cases.push(String::from_utf8(b).unwrap());
        }
    }
    let mut c = Conn::open(s.admin);
    for t in &cases {
        let r = c.request(&introspect_req(t, None));
        r.expect(200);
        assert_eq!(r.json(), json!({"active": false}), "token {t:?}");
    }
    assert!(is_active(s, &tok), "the original is still fine");
}

#[test]
fn revoked_and_deleted_client_tokens_are_inactive() {
    let s = api();
    let (id, secret) = cc_client(s, "a");
    let t1 = access_token(s, &id, &secret);
    let t2 = access_token(s, &id, &secret);
    revoke(s, &id, &secret, &t1).expect(200);
    assert!(!is_active(s, &t1));
    assert!(is_active(s, &t2));
    Req::new("DELETE", &format!("/admin/clients/{id}")).send(s.admin).expect(204);
    assert!(!is_active(s, &t2), "token of a deleted client");
    // Re-creating the same id does not resurrect the old tokens.
    create_client(s, &json!({"client_id": id, "client_secret": secret, "grant_types": ["client_credentials"]}));
    assert!(!is_active(s, &t2), "old token stays dead after id reuse");
    let t3 = access_token(s, &id, &secret);
    assert!(is_active(s, &t3));
}

#[test]
fn delete_tokens_of_a_client() {
    let s = api();
    let (a, asec) = cc_client(s, "x");
    let (b, bsec) = cc_client(s, "x");
    let a_tokens: Vec<String> = (0..8).map(|_| access_token(s, &a, &asec)).collect();
    let b_tokens: Vec<String> = (0..3).map(|_| access_token(s, &b, &bsec)).collect();
    assert_eq!(count_active(s.admin, &a_tokens), 8);
    let r = Req::new("DELETE", &format!("/admin/oauth2/tokens?client_id={}", form_escape(&a))).send(s.admin);
    r.expect(204);
    assert!(r.body.is_empty());
    assert_eq!(count_active(s.admin, &a_tokens), 0, "every earlier token of the client is inactive");
    assert_eq!(count_active(s.admin, &b_tokens), 3, "other clients untouched");
    let fresh: Vec<String> = (0..4).map(|_| access_token(s, &a, &asec)).collect();
    assert_eq!(count_active(s.admin, &fresh), 4, "new tokens of the client are active");
    // Without client_id.
    for path in ["/admin/oauth2/tokens", "/admin/oauth2/tokens?client_id=", "/oauth2/tokens?other=1"] {
        Req::new("DELETE", path).send(s.admin).expect_error(400, "invalid_request");
    }
}

#[test]
fn missing_token_and_bad_content_type() {
    let s = api();
    let r = Req::new("POST", "/admin/oauth2/introspect").form(&[("scope", "a")]).send(s.admin);
    r.expect_error(400, "invalid_request");
    r.assert_no_store();
    Req::new("POST", "/admin/oauth2/introspect")
        .form(&[("token", "")])
        .send(s.admin)
        .expect_error(400, "invalid_request");
    let mut req = Req::new("POST", "/admin/oauth2/introspect").header("Content-Type", "application/json");
    req.body = br#"{"token":"x"}"#.to_vec();
    req.send(s.admin).expect_error(400, "invalid_request");
}

#[test]
fn expired_token_is_inactive() {
    let s = api();
    let (id, secret) = cc_client(s, "a");
    Req::new("PUT", &format!("/admin/clients/{id}/lifespans"))
        .json(&json!({"client_credentials_grant_access_token_lifespan": "1s"}))
        .send(s.admin)
        .expect(200);
    let t = token(s, &id, &secret, &[]);
    assert_eq!(t["expires_in"], 1);
    let tok = t["access_token"].as_str().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert!(!is_active(s, tok), "expired");
}

#[test]
fn issuer_is_the_configured_one() {
    let s = Opts::new("legacy").env("URLS_SELF_ISSUER", "https://auth.example.com/").start();
    let (id, secret) = cc_client(&s, "a");
    let v = introspect(&s, &access_token(&s, &id, &secret));
    assert_eq!(v["iss"], "https://auth.example.com/", "byte for byte, trailing slash kept");
}

/// With `serve.public.port=0` and no `urls.self.issuer`, the default issuer is built from the
/// configured port (0) rather than the port actually bound, so `iss` names a port nobody listens
/// on. (Hydra derives it from the configuration as well, so this is arguably compatible.)
#[test]
fn default_issuer_uses_bound_port() {
    let s = api();
    let (id, secret) = cc_client(s, "a");
    let v = introspect(s, &access_token(s, &id, &secret));
    assert_eq!(v["iss"], json!(format!("http://{}/", s.public)));
}
