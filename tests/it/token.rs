//! Area 3: the token endpoint with the client_credentials grant.

use crate::harness::*;
use serde_json::json;

fn post_client(s: &Server, scope: &str) -> (String, String) {
    cc_client_with(s, json!({"scope": scope, "token_endpoint_auth_method": "client_secret_post"}))
}

fn post_req(id: &str, secret: &str, extra: &[(&str, &str)]) -> Req {
    let mut pairs = vec![("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret)];
    pairs.extend_from_slice(extra);
    Req::new("POST", "/oauth2/token").form(&pairs)
}

#[test]
fn basic_and_post_both_work() {
    let s = api();
    let (id, secret) = cc_client(s, "a b");
    let r = token_req(&id, &secret, &[("scope", "a b")]).send(s.public);
    r.expect(200);
    r.assert_no_store();
    assert!(r.header("content-type").unwrap().starts_with("application/json"));
    let t = r.json();
    assert_eq!(t["token_type"], "bearer");
    assert_eq!(t["scope"], "a b");
    assert_eq!(t["expires_in"], 3600);
    assert!(t.get("refresh_token").is_none() && t.get("id_token").is_none(), "{t}");
    let tok = t["access_token"].as_str().unwrap();
    assert!(tok.starts_with("ory_at_"), "{tok}");

    let (pid, psecret) = post_client(s, "a");
    let r = post_req(&pid, &psecret, &[("scope", "a")]).send(s.public);
    r.expect(200);
    r.assert_no_store();
    let i = introspect(s, r.json()["access_token"].as_str().unwrap());
    assert_eq!(i["client_id"], json!(pid));
}

#[test]
fn bad_credentials_are_401() {
    let s = api();
    let (id, secret) = cc_client(s, "a");
    for (id, secret) in [(id.as_str(), "wrong-secret"), ("no-such-client-id", secret.as_str())] {
        let r = token_req(id, secret, &[]).send(s.public);
        let v = r.expect_error(401, "invalid_client");
        assert!(v["error_description"].is_string());
        assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"oauth2\""));
        r.assert_no_store();
    }
    // With client_secret_post, no WWW-Authenticate.
    let r = post_req("no-such-client-id", "x", &[]).send(s.public);
    r.expect_error(401, "invalid_client");
    assert!(r.header("www-authenticate").is_none());
    // Nothing presented.
    let r = Req::new("POST", "/oauth2/token").form(&[("grant_type", "client_credentials")]).send(s.public);
    r.expect_error(401, "invalid_client");
    r.assert_no_store();
}

#[test]
fn scopes_and_wildcards() {
    let s = api();
    let (id, secret) = cc_client(s, "read foo.*");
    let r = token_req(&id, &secret, &[("scope", "write")]).send(s.public);
    r.expect_error(400, "invalid_scope");
    r.assert_no_store();
    let t = token(s, &id, &secret, &[("scope", "foo.bar read")]);
    assert_eq!(t["scope"], "foo.bar read");
    token(s, &id, &secret, &[("scope", "foo.bar.baz")]);
    token_req(&id, &secret, &[("scope", "foo")]).send(s.public).expect_error(400, "invalid_scope");
    token_req(&id, &secret, &[("scope", "readx")]).send(s.public).expect_error(400, "invalid_scope");
    // No scope requested: nothing granted (default_grant_allowed_scope=false).
    let t = token(s, &id, &secret, &[]);
    assert_eq!(t["scope"], "");
}

#[test]
fn audience_allow_list() {
    let s = api();
    let (id, secret) =
        cc_client_with(s, json!({"scope": "a", "audience": ["https://api.example.com", "https://other.example.com"]}));
    let r = token_req(&id, &secret, &[("audience", "https://evil.example.com")]).send(s.public);
    r.expect_error(400, "invalid_request");
    r.assert_no_store();
    let t = token(s, &id, &secret, &[("audience", "https://api.example.com")]);
    let i = introspect(s, t["access_token"].as_str().unwrap());
    assert_eq!(i["aud"], json!(["https://api.example.com"]));
    let t = token(s, &id, &secret, &[]);
    assert_eq!(introspect(s, t["access_token"].as_str().unwrap())["aud"], json!([]));
    // `audience` may repeat (Hydra's documented form); other parameters may not.
    let t =
        token(s, &id, &secret, &[("audience", "https://api.example.com"), ("audience", "https://other.example.com")]);
    let i = introspect(s, t["access_token"].as_str().unwrap());
    assert_eq!(i["aud"], json!(["https://api.example.com", "https://other.example.com"]));
    token_req(&id, &secret, &[("scope", "a"), ("scope", "a")]).send(s.public).expect_error(400, "invalid_request");
}

#[test]
fn client_without_grant_is_unauthorized() {
    let s = api();
    let (id, secret) = cc_client_with(
        s,
        json!({"scope": "a", "grant_types": ["authorization_code"], "redirect_uris": ["https://x.example/cb"], "response_types": ["code"]}),
    );
    let r = token_req(&id, &secret, &[]).send(s.public);
    r.expect_error(400, "unauthorized_client");
    r.assert_no_store();
}

#[test]
fn grant_type_errors() {
    let s = api();
    let (id, secret) = cc_client(s, "a");
    let r = Req::new("POST", "/oauth2/token").form(&[("scope", "a")]).basic(&id, &secret).send(s.public);
    r.expect_error(400, "invalid_request");
    r.assert_no_store();
    let r = Req::new("POST", "/oauth2/token").form(&[("grant_type", "password")]).basic(&id, &secret).send(s.public);
    r.expect_error(400, "unsupported_grant_type");
    r.assert_no_store();
}

#[test]
fn tokens_are_unique_and_opaque() {
    let s = api();
    let (id, secret) = cc_client(s, "a");
    let mut c = Conn::open(s.public);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let r = c.request(&token_req(&id, &secret, &[("scope", "a")]));
        r.expect(200);
        assert!(seen.insert(r.json()["access_token"].as_str().unwrap().to_string()));
    }
}
