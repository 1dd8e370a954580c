//! JSON abuse on the admin API: deep nesting, huge arrays, wrong types, non-object documents,
//! invalid UTF-8, trailing garbage, duplicate keys, on every endpoint that takes a JSON body
//! (clients, lifespans, JSON Patch, login/consent accept and reject, keys).
//!
//! Invariants checked: a malformed or mistyped body is `400` with a Hydra-shaped JSON error
//! (`{"error": …, "error_description": …}`), never a `5xx`, never a partial write; the server
//! keeps serving; size is bounded by the 1 MiB admin body limit, not by recursion or time.

use super::*;
use crate::harness::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The JSON endpoints of one shared server, with live ids and challenges behind them.
struct Targets {
    /// (method, path, what the endpoint expects at the top level)
    endpoints: Vec<(&'static str, String, &'static str)>,
}

fn targets(s: &Server) -> Targets {
    let (id, _) = cc_client(s, "a");
    let c = rp(s, json!({}));
    let mut jar = Jar::default();
    let lc = form_escape(&start(s, &mut jar, &c, &[]));
    let mut jar2 = Jar::default();
    let lc2 = start(s, &mut jar2, &c, &[]);
    let lv = accept_login(s, &lc2, &standard_login());
    let cc = form_escape(&to_consent(s, &mut jar2, &lv));
    let id = form_escape(&id);
    Targets {
        endpoints: vec![
            ("POST", "/admin/clients".into(), "object"),
            ("PUT", format!("/admin/clients/{id}"), "object"),
            ("PATCH", format!("/admin/clients/{id}"), "array"),
            ("PUT", format!("/admin/clients/{id}/lifespans"), "object"),
            ("PUT", format!("/admin/oauth2/auth/requests/login/accept?login_challenge={lc}"), "object"),
            ("PUT", format!("/admin/oauth2/auth/requests/login/reject?login_challenge={lc}"), "object"),
            ("PUT", format!("/admin/oauth2/auth/requests/consent/accept?consent_challenge={cc}"), "object"),
            ("PUT", format!("/admin/oauth2/auth/requests/consent/reject?consent_challenge={cc}"), "object"),
            ("POST", "/admin/keys/security-json-set".into(), "object"),
            ("PUT", "/admin/keys/security-json-set".into(), "object"),
            ("PUT", "/admin/keys/security-json-set/kid-1".into(), "object"),
        ],
    }
}

fn send_raw(s: &Server, method: &str, path: &str, body: &[u8]) -> Response {
    let mut req = Req::new(method, path).header("Content-Type", "application/json");
    req.body = body.to_vec();
    req.send(s.admin)
}

/// Asserts a `400` with a Hydra-shaped JSON error body.
#[track_caller]
fn assert_400(r: &Response, what: &str) {
    assert_eq!(r.status, 400, "{what}: {}", r.text());
    assert!(
        r.header("content-type").is_some_and(|c| c.starts_with("application/json")),
        "{what}: content-type {:?}",
        r.header("content-type")
    );
    let v: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", r.text()));
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}: {v}");
    assert!(v["error_description"].is_string(), "{what}: {v}");
}

/// Syntactically broken or oversized-in-depth documents, refused by every JSON endpoint.
#[test]
fn malformed_documents_are_400_everywhere() {
    let s = api();
    let t = targets(s);
    let deep_arrays = "[".repeat(100_000);
    let deep_objects = "{\"a\":".repeat(50_000);
    let balanced = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("100k open brackets", deep_arrays.into_bytes()),
        ("50k nested objects", deep_objects.into_bytes()),
        ("10k balanced brackets", balanced.into_bytes()),
        ("invalid UTF-8 in a string", b"{\"client_name\": \"\xff\xfe\"}".to_vec()),
        ("invalid UTF-8 outside strings", b"{\xff: 1}".to_vec()),
        ("overlong UTF-8", b"{\"client_name\": \"\xc0\xaf\"}".to_vec()),
        ("lone surrogate", br#"{"client_name": "\ud800"}"#.to_vec()),
        ("trailing garbage", b"{} x".to_vec()),
        ("two documents", b"{}{}".to_vec()),
        ("trailing bracket", b"{\"a\": 1}]".to_vec()),
        ("truncated", b"{\"client_name\": \"abc".to_vec()),
        ("BOM", b"\xef\xbb\xbf{}".to_vec()),
        ("NaN", b"{\"remember_for\": NaN}".to_vec()),
        ("huge number", b"{\"remember_for\": 1e999999}".to_vec()),
        ("comment", b"{/* x */}".to_vec()),
        ("single quotes", b"{'client_name': 'x'}".to_vec()),
        ("trailing comma", b"{\"client_name\": \"x\",}".to_vec()),
        ("NUL byte", b"{\"client_name\": \"x\"}\x00".to_vec()),
        ("control char in string", b"{\"client_name\": \"a\x01b\"}".to_vec()),
        ("empty", Vec::new()),
    ];
    for (method, path, _) in &t.endpoints {
        for (what, body) in &bodies {
            if *what == "empty" && path.contains("/reject") {
                continue; // An empty reject body means "reject with the defaults" (as Hydra).
            }
            let r = send_raw(s, method, path, body);
            assert_400(&r, &format!("{method} {path}: {what}"));
        }
    }
    still_serves(s);
}

/// A document of the wrong JSON type at the top level.
#[test]
fn non_object_documents_are_400() {
    let s = api();
    let t = targets(s);
    for (method, path, top) in &t.endpoints {
        for body in ["[]", "[{}]", "\"x\"", "1", "-0.5", "null", "true", "{}"] {
            let skip = match *top {
                "array" => body == "[]",
                _ => body == "{}",
            };
            if skip || (body == "[{}]" && *top == "array") {
                continue;
            }
            let r = send_raw(s, method, path, body.as_bytes());
            assert_400(&r, &format!("{method} {path}: {body}"));
        }
    }
    // A patch operation that is not an object, or not a known op.
    let id = t.endpoints[2].1.clone();
    for ops in [
        json!([1]),
        json!([[]]),
        json!([{}]),
        json!([{"op": "move", "from": "/owner", "path": "/client_name"}]),
        json!([{"op": "test", "path": "/client_name", "value": "x"}]),
        json!([{"op": "add", "path": 5, "value": 1}]),
        json!([{"op": "replace", "path": "/client_name", "value": 5}]),
        json!([{"op": "add", "path": "/redirect_uris", "value": "x"}]),
    ] {
        let r = Req::new("PATCH", &id).json(&ops).send(s.admin);
        assert_400(&r, &format!("PATCH {ops}"));
    }
    still_serves(s);
}

/// Every important field with a value of the wrong type is `400`, and a rejected create leaves
/// no client behind.
#[test]
fn wrong_field_types_are_400() {
    let s = api();
    let t = targets(s);
    let client_fields = [
        ("client_id", json!(5)),
        ("client_id", json!(["a"])),
        ("client_secret", json!(5)),
        ("client_secret", json!({"a": 1})),
        ("client_name", json!(5)),
        ("redirect_uris", json!("https://rp.example/cb")),
        ("redirect_uris", json!([1])),
        ("redirect_uris", json!([null])),
        ("redirect_uris", json!({"0": "https://rp.example/cb"})),
        ("grant_types", json!("client_credentials")),
        ("grant_types", json!([true])),
        ("response_types", json!({})),
        ("scope", json!(["a"])),
        ("audience", json!("https://api.example")),
        ("audience", json!([1])),
        ("owner", json!({})),
        ("allowed_cors_origins", json!(1)),
        ("contacts", json!("a@b.c")),
        ("token_endpoint_auth_method", json!(1)),
        ("token_endpoint_auth_method", json!("none-such")),
        ("subject_type", json!([])),
        ("jwks", json!("x")),
        ("jwks", json!({"keys": "x"})),
        ("metadata", json!("x")),
        ("metadata", json!([1])),
        ("skip_consent", json!("yes")),
        ("post_logout_redirect_uris", json!("x")),
        ("client_secret_expires_at", json!("0")),
        ("authorization_code_grant_access_token_lifespan", json!(5)),
    ];
    for (field_name, value) in &client_fields {
        let cid = uniq("wrong-type");
        let mut body = json!({"client_id": cid, "grant_types": ["client_credentials"]});
        body[*field_name] = value.clone();
        for (method, path) in [("POST", "/admin/clients".to_string()), ("PUT", t.endpoints[1].1.clone())] {
            let r = Req::new(method, &path).json(&body).send(s.admin);
            assert_400(&r, &format!("{method} {field_name}={value}"));
        }
        if *field_name != "client_id" {
            Req::get(&format!("/admin/clients/{}", form_escape(&cid))).send(s.admin).expect(404);
        }
    }
    let lifespans = t.endpoints[3].1.clone();
    for v in [json!(5), json!(true), json!(["1h"]), json!({"h": 1}), json!("forever"), json!("-1h")] {
        let r = Req::new("PUT", &lifespans)
            .json(&json!({"client_credentials_grant_access_token_lifespan": v}))
            .send(s.admin);
        assert_400(&r, &format!("lifespan {v}"));
    }
    let login_accept = t.endpoints[4].1.clone();
    for (k, v) in [
        ("subject", json!(5)),
        ("subject", json!(["alice"])),
        ("subject", json!("")),
        ("remember", json!("yes")),
        ("remember_for", json!("1h")),
        ("remember_for", json!(-1)),
        ("remember_for", json!(1.5)),
        ("acr", json!(1)),
        ("amr", json!("pwd")),
        ("amr", json!([1])),
        ("context", json!("x")),
        ("force_subject_identifier", json!(1)),
    ] {
        let mut body = json!({"subject": "alice"});
        body[k] = v.clone();
        assert_400(&put_json(s, &login_accept, &body), &format!("login accept {k}={v}"));
    }
    let consent_accept = t.endpoints[6].1.clone();
    for (k, v) in [
        ("grant_scope", json!("openid")),
        ("grant_scope", json!([1])),
        ("grant_access_token_audience", json!("x")),
        ("remember", json!(1)),
        ("remember_for", json!("x")),
        ("session", json!("x")),
        ("session", json!({"id_token": "x"})),
        ("session", json!({"access_token": []})),
        ("context", json!([])),
    ] {
        let mut body = json!({"grant_scope": ["openid"]});
        body[k] = v.clone();
        assert_400(&put_json(s, &consent_accept, &body), &format!("consent accept {k}={v}"));
    }
    for (k, v) in [
        ("error", json!(1)),
        ("error_description", json!([])),
        ("status_code", json!("400")),
        ("error_hint", json!({})),
    ] {
        for step in [5, 7] {
            let mut body = json!({"error": "access_denied"});
            body[k] = v.clone();
            assert_400(&put_json(s, &t.endpoints[step].1, &body), &format!("reject {k}={v}"));
        }
    }
    for body in [
        json!({"alg": 5}),
        json!({"alg": "RS256", "use": []}),
        json!({"alg": "RS256", "kid": {}}),
        json!({"alg": "none"}),
    ] {
        let r = Req::new("POST", "/admin/keys/security-json-set").json(&body).send(s.admin);
        assert_400(&r, &format!("key create {body}"));
    }
    for body in [
        json!({"keys": "x"}),
        json!({"keys": [1]}),
        json!({"keys": [{"kty": 5}]}),
        json!({"keys": [{"kty": "RSA", "kid": "k"}]}),
    ] {
        let r = Req::new("PUT", "/admin/keys/security-json-set").json(&body).send(s.admin);
        assert_400(&r, &format!("key set {body}"));
    }
    Req::get("/admin/keys/security-json-set").send(s.admin).expect(404);
    still_serves(s);
}

/// Huge arrays within the 1 MiB body limit: invalid ones are refused, valid ones are handled in
/// bounded time; nothing is a 5xx and the server keeps serving.
#[test]
fn huge_arrays_are_bounded_by_the_body_limit() {
    let s = api();
    let t0 = Instant::now();
    // 100k invalid entries.
    for (field_name, item) in
        [("redirect_uris", json!(1)), ("grant_types", json!("x")), ("contacts", json!(1)), ("audience", json!(null))]
    {
        let body = json!({ field_name: vec![item; 100_000] });
        let r = Req::new("POST", "/admin/clients").json(&body).send(s.admin);
        assert_400(&r, &format!("100k {field_name}"));
    }
    // 100k valid redirect URIs: accepted or refused, quickly, never a 5xx.
    let id = uniq("many-uris");
    let mut uris = vec![json!("a:/"); 99_999];
    uris.push(json!(CB));
    let body = json!({"client_id": id, "redirect_uris": uris, "grant_types": ["authorization_code"], "response_types": ["code"], "scope": "openid offline_access"});
    assert!(serde_json::to_vec(&body).expect("json").len() < 1 << 20);
    let t = Instant::now();
    let r = Req::new("POST", "/admin/clients").json(&body).send(s.admin);
    assert!(r.status == 201 || r.status == 400, "100k redirect URIs: {} {}", r.status, r.text());
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    if r.status == 201 {
        let c = Rp { id: id.clone(), secret: field(&r.json(), "client_secret") };
        let t = Instant::now();
        let r = Req::get(&auth_path(&c, &[])).send(s.public);
        assert!(location(&r).contains("login_challenge="), "{:?}", r.header("location"));
        let r = Req::get(&auth_path(&c, &[("redirect_uri", "https://evil.example/cb")])).send(s.public);
        expect_error_page(s, &r, "not among 100k");
        assert!(t.elapsed() < Duration::from_secs(2), "matching took {:?}", t.elapsed());
        Req::new("DELETE", &format!("/admin/clients/{}", form_escape(&id))).send(s.admin).expect(204);
    }
    // 10k JSON Patch operations.
    let (pid, _) = cc_client(s, "a");
    let ops: Vec<Value> =
        (0..10_000).map(|i| json!({"op": "add", "path": "/contacts/-", "value": format!("c{i}@x.example")})).collect();
    let mut ops = ops;
    ops.insert(0, json!({"op": "add", "path": "/contacts", "value": []}));
    let t = Instant::now();
    let r = Req::new("PATCH", &format!("/admin/clients/{}", form_escape(&pid))).json(&json!(ops)).send(s.admin);
    assert!(r.status == 200 || r.status == 400, "10k patch ops: {} {}", r.status, r.text());
    assert!(t.elapsed() < Duration::from_secs(5), "10k patch ops took {:?}", t.elapsed());
    // A consent granting 100k scopes: only what was requested is kept.
    let c = rp(s, json!({}));
    let mut jar = Jar::default();
    let lc = start(s, &mut jar, &c, &[]);
    let lv = accept_login(s, &lc, &standard_login());
    let cc = to_consent(s, &mut jar, &lv);
    let scopes: Vec<String> = (0..50_000).map(|i| format!("s{i}")).collect();
    let a = put_json(
        s,
        &format!("/admin/oauth2/auth/requests/consent/accept?consent_challenge={}", form_escape(&cc)),
        &json!({"grant_scope": scopes}),
    );
    assert!(a.status == 200 || a.status == 400, "{} {}", a.status, a.text());
    if a.status == 200 {
        let back = local(&redirect_to(&a));
        let r = jar.get(s, &back);
        assert!(r.status == 302 || r.status == 414, "{} {}", r.status, r.text());
        if let Some(l) = r.header("location") {
            assert!(query_param(l, "scope").unwrap_or_default().len() < 100, "{l}");
        }
    }
    assert!(t0.elapsed() < Duration::from_secs(20), "huge arrays took {:?}", t0.elapsed());
    still_serves(s);
}

/// Duplicate object keys: JSON (RFC 8259 §4) leaves the outcome to the receiver and Hydra (Go's
/// encoding/json) keeps the last value. Here the answer must be deterministic and never a 5xx:
/// either a 400, or the last value, with nothing stored under the first.
#[test]
fn duplicate_keys_are_never_ambiguous() {
    let s = api();
    let first = uniq("dup-first");
    let last = uniq("dup-last");
    let body = format!(
        r#"{{"client_id": "{first}", "client_id": "{last}", "client_secret": "first-secret", "client_secret": "last-secret-x", "grant_types": ["client_credentials"], "scope": "a"}}"#
    );
    let r = send_raw(s, "POST", "/admin/clients", body.as_bytes());
    match r.status {
        400 => assert_400(&r, "duplicate keys"),
        201 => {
            let v = r.json();
            assert_eq!(v["client_id"], last, "{v}");
            assert_eq!(v["client_secret"], "last-secret-x", "{v}");
            Req::get(&format!("/admin/clients/{first}")).send(s.admin).expect(404);
            token_req(&last, "first-secret", &[]).send(s.public).expect_error(401, "invalid_client");
            token_req(&last, "last-secret-x", &[]).send(s.public).expect(200);
        }
        other => panic!("duplicate keys: {other} {}", r.text()),
    }
    // In a login accept: the subject the consent app then sees is the one that was kept.
    let c = rp(s, json!({}));
    let mut jar = Jar::default();
    let lc = start(s, &mut jar, &c, &[]);
    let a = send_raw(
        s,
        "PUT",
        &format!("/admin/oauth2/auth/requests/login/accept?login_challenge={}", form_escape(&lc)),
        br#"{"subject": "alice", "subject": "mallory"}"#,
    );
    match a.status {
        400 => assert_400(&a, "duplicate subject"),
        200 => {
            let cc = to_consent(s, &mut jar, &local(&redirect_to(&a)));
            let cr = Req::get(&format!("/admin/oauth2/auth/requests/consent?consent_challenge={}", form_escape(&cc)))
                .send(s.admin);
            cr.expect(200);
            assert_eq!(cr.json()["subject"], "mallory", "{}", cr.text());
        }
        other => panic!("duplicate subject: {other} {}", a.text()),
    }
    still_serves(s);
}
