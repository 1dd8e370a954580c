//! Port separation: the admin API (clients, keys with private material, introspection, flow
//! requests, sessions, metrics, version) never answers on the public port, whatever the path
//! spelling; the public protocol endpoints are not served on the admin port either (the router
//! defines each route on one listener only).

use super::*;
use crate::harness::*;
use serde_json::json;

#[test]
fn admin_routes_not_on_public_port() {
    let s = api();
    let cases = [
        Req::get("/admin/clients"),
        Req::get("/clients"),
        Req::new("POST", "/admin/clients").json(&json!({})),
        Req::new("POST", "/admin/oauth2/introspect").form(&[("token", "x")]),
        Req::new("POST", "/oauth2/introspect").form(&[("token", "x")]),
        Req::new("DELETE", "/admin/oauth2/tokens?client_id=x"),
        Req::get("/admin/version"),
    ];
    for req in cases {
        let r = req.send(s.public);
        r.expect_error(404, "not_found");
    }
    // …and the public token endpoint is not on the admin port.
    Req::new("POST", "/oauth2/token").form(&[("grant_type", "client_credentials")]).send(s.admin).expect(404);
}

/// What must never appear in an answer on the public port.
fn assert_no_admin_data(r: &Response, secrets: &[&str], what: &str) {
    let body = r.text();
    for s in secrets {
        assert!(!body.contains(s), "{what}: admin data {s:?} leaked: {body}");
    }
    for marker in ["\"client_secret\"", "\"redirect_uris\"", "\"keys\"", "\"d\":", "\"requested_scope\"", "hydra_"] {
        assert!(!body.contains(marker), "{what}: {marker} in {body}");
    }
}

/// Every admin route, with every method it has, with and without the `/admin` prefix, asked on
/// the public port with real ids: `404 not_found` and nothing of the resource.
#[test]
fn no_admin_route_answers_on_the_public_port() {
    let s = api();
    let (id, secret) = cc_client(s, "a");
    let tok = access_token(s, &id, &secret);
    let c = rp(s, json!({}));
    let mut jar = Jar::default();
    let lc = start(s, &mut jar, &c, &[]);
    // Make sure the key sets exist and hold private material on the admin port.
    Req::get("/.well-known/jwks.json").send(s.public).expect(200);
    let keys = Req::get("/admin/keys/hydra.openid.id-token").send(s.admin);
    keys.expect(200);
    let kid = keys.json()["keys"][0]["kid"].as_str().expect("a kid").to_string();
    let e = |v: &str| form_escape(v);
    let routes: Vec<(&str, String)> = vec![
        ("GET", "/clients".into()),
        ("HEAD", "/clients".into()),
        ("POST", "/clients".into()),
        ("GET", format!("/clients/{}", e(&id))),
        ("PUT", format!("/clients/{}", e(&id))),
        ("PATCH", format!("/clients/{}", e(&id))),
        ("DELETE", format!("/clients/{}", e(&id))),
        ("PUT", format!("/clients/{}/lifespans", e(&id))),
        ("POST", format!("/clients/{}/secrets/rotate", e(&id))),
        ("DELETE", format!("/clients/{}/secrets/rotate", e(&id))),
        ("GET", "/keys/hydra.openid.id-token".into()),
        ("POST", "/keys/hydra.openid.id-token".into()),
        ("PUT", "/keys/hydra.openid.id-token".into()),
        ("DELETE", "/keys/hydra.openid.id-token".into()),
        ("GET", format!("/keys/hydra.openid.id-token/{}", e(&kid))),
        ("PUT", format!("/keys/hydra.openid.id-token/{}", e(&kid))),
        ("DELETE", format!("/keys/hydra.openid.id-token/{}", e(&kid))),
        ("POST", "/oauth2/introspect".into()),
        ("DELETE", format!("/oauth2/tokens?client_id={}", e(&id))),
        ("GET", "/oauth2/auth/sessions/consent?subject=alice".into()),
        ("DELETE", "/oauth2/auth/sessions/consent?subject=alice&all=true".into()),
        ("DELETE", "/oauth2/auth/sessions/login?subject=alice".into()),
        ("GET", format!("/oauth2/auth/requests/login?login_challenge={}", e(&lc))),
        ("PUT", format!("/oauth2/auth/requests/login/accept?login_challenge={}", e(&lc))),
        ("PUT", format!("/oauth2/auth/requests/login/reject?login_challenge={}", e(&lc))),
        ("GET", "/oauth2/auth/requests/consent?consent_challenge=x".into()),
        ("PUT", "/oauth2/auth/requests/consent/accept?consent_challenge=x".into()),
        ("PUT", "/oauth2/auth/requests/consent/reject?consent_challenge=x".into()),
        ("GET", "/version".into()),
        ("GET", "/metrics/prometheus".into()),
    ];
    let secrets = [id.as_str(), secret.as_str(), tok.as_str(), kid.as_str(), lc.as_str()];
    for (method, path) in &routes {
        for prefix in ["/admin", ""] {
            let full = format!("{prefix}{path}");
            let mut req = Req::new(method, &full);
            if matches!(*method, "POST" | "PUT" | "PATCH") {
                req = if full.contains("introspect") {
                    req.form(&[("token", &tok)])
                } else if *method == "PATCH" {
                    req.json(&json!([{"op": "replace", "path": "/client_name", "value": "pwned"}]))
                } else {
                    req.json(&json!({"subject": "mallory", "client_secret": "pwned-secret", "alg": "RS256"}))
                };
            }
            let r = if *method == "HEAD" {
                let mut conn = Conn::open(s.public);
                conn.send(&req.bytes(true));
                conn.head_response()
            } else {
                req.send(s.public)
            };
            assert_eq!(r.status, 404, "{method} {full} on the public port: {}", r.text());
            if *method != "HEAD" {
                assert_eq!(r.json()["error"], "not_found", "{method} {full}");
            }
            assert_no_admin_data(&r, &secrets, &format!("{method} {full}"));
        }
    }
    // Nothing was changed through the public port.
    let got = Req::get(&format!("/admin/clients/{}", e(&id))).send(s.admin);
    got.expect(200);
    assert_ne!(got.json()["client_name"], "pwned");
    assert!(is_active(s, &tok));
    access_token(s, &id, &secret);
    Req::get(&format!("/admin/oauth2/auth/requests/login?login_challenge={}", e(&lc))).send(s.admin).expect(200);
}

/// Path spellings that a normalizing proxy or router might fold into an admin path are not
/// folded here: each is a 404 (or a 400 for a malformed target) on the public port.
#[test]
fn admin_path_spellings_do_not_reach_admin_routes_on_the_public_port() {
    let s = api();
    let (id, secret) = cc_client(s, "a");
    let spellings = [
        "/admin/../admin/clients",
        "/x/../admin/clients",
        "/health/../admin/clients",
        "/oauth2/../admin/clients",
        "//admin/clients",
        "/./admin/clients",
        "/admin/./clients",
        "/admin//clients",
        "/ADMIN/clients",
        "/Admin/Clients",
        "/%61dmin/clients",
        "/admin%2Fclients",
        "/admin%2fclients",
        "/%2e%2e/admin/clients",
        "/admin;/clients",
        "/admin/clients;x",
        "/admin/clients%00",
        "/admin/clients%20",
        "/admin/clients/",
        "/admin/clients?page_size=1",
        "/admin/clients#x",
        "/clients/",
        "/.well-known/../admin/clients",
        "/oauth2/introspect",
        "/oauth2/introspect/",
        "/admin/oauth2/introspect",
        "/keys/hydra.openid.id-token",
    ];
    for path in spellings {
        let r = raw(s.public, format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
        assert!(r.status == 404 || r.status == 400, "GET {path} on the public port: {} {}", r.status, r.text());
        r.expect_json_error(r.status);
        assert_no_admin_data(&r, &[&id, &secret], path);
    }
    // Absolute-form targets and Host headers naming the admin listener change nothing.
    for target in [format!("http://{}/admin/clients", s.admin), format!("http://{}/clients", s.public)] {
        let r = raw(
            s.public,
            format!("GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", s.admin).as_bytes(),
        );
        assert!(r.status == 404 || r.status == 400, "{target}: {}", r.status);
        assert_no_admin_data(&r, &[&id, &secret], &target);
    }
    let r = Req::get("/admin/clients").header("X-Forwarded-Host", &s.admin.to_string()).send(s.public);
    r.expect_error(404, "not_found");
    let r = raw(
        s.public,
        format!("GET /admin/clients HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", s.admin).as_bytes(),
    );
    r.expect_error(404, "not_found");
}

/// The public protocol endpoints are not on the admin port (with or without the prefix).
#[test]
fn public_routes_are_not_served_on_the_admin_port() {
    let s = api();
    let (id, secret) = cc_client(s, "a");
    let c = rp(s, json!({}));
    let cases: Vec<(&str, String)> = vec![
        ("POST", "/oauth2/token".into()),
        ("POST", "/oauth2/revoke".into()),
        ("GET", auth_path(&c, &[])),
        ("POST", "/oauth2/auth".into()),
        ("GET", "/userinfo".into()),
        ("GET", "/.well-known/jwks.json".into()),
        ("GET", "/.well-known/openid-configuration".into()),
        ("GET", "/.well-known/oauth-authorization-server".into()),
        ("GET", "/oauth2/fallbacks/error".into()),
        ("GET", "/oauth2/fallbacks/login".into()),
    ];
    for (method, path) in &cases {
        for prefix in ["", "/admin"] {
            let full = format!("{prefix}{path}");
            let mut req = Req::new(method, &full);
            if *method == "POST" {
                req = req.form(&[("grant_type", "client_credentials")]).basic(&id, &secret);
            }
            let r = req.send(s.admin);
            r.expect_error(404, "not_found");
            assert!(
                r.header("set-cookie").is_none() && r.header("location").is_none(),
                "{method} {full}: {:?}",
                r.headers
            );
        }
    }
}
