//! Area 1: health, version, routing, caching headers.

use crate::harness::*;
use serde_json::json;

const NO_CACHE: &str = "private, no-cache, no-store, must-revalidate";

#[test]
fn health_on_both_ports() {
    let s = api();
    for addr in [s.public, s.admin] {
        for path in ["/health/alive", "/health/ready"] {
            let r = Req::get(path).send(addr);
            r.expect(200);
            assert_eq!(r.json(), json!({"status": "ok"}), "{path} on {addr}");
            assert!(r.header("content-type").unwrap().starts_with("application/json"));
            assert_eq!(r.header("cache-control"), Some(NO_CACHE));
        }
    }
    // The admin prefix works for health too.
    Req::get("/admin/health/alive").send(s.admin).expect(200);
}

#[test]
fn head_has_length_but_no_body() {
    let s = api();
    let mut c = Conn::open(s.public);
    c.send(b"HEAD /health/alive HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.head_response();
    r.expect(200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-length"), Some("15"), "length of {{\"status\":\"ok\"}}");
    // The connection is still usable: no stray body bytes.
    let r = c.request(&Req::get("/health/alive"));
    assert_eq!(r.json(), json!({"status": "ok"}));
}

#[test]
fn version_on_admin_only() {
    let s = api();
    for path in ["/version", "/admin/version"] {
        let r = Req::get(path).send(s.admin);
        r.expect(200);
        let v = r.json();
        assert!(v["version"].as_str().is_some_and(|v| v.starts_with('v')), "{v}");
        assert_eq!(r.header("cache-control"), Some(NO_CACHE));
    }
    Req::get("/version").send(s.public).expect_error(404, "not_found");
}

#[test]
fn unknown_route_is_404_json() {
    let s = api();
    for addr in [s.public, s.admin] {
        let r = Req::get("/no/such/route").send(addr);
        let v = r.expect_error(404, "not_found");
        assert!(v["error_description"].as_str().unwrap().contains("route does not exist"), "{v}");
    }
    Req::get("/administrator").send(s.admin).expect_error(404, "not_found");
    Req::get("/admin/clients/x/other").send(s.admin).expect_error(404, "not_found");
}

#[test]
fn wrong_method_is_405_with_allow() {
    let s = api();
    let cases = [
        (s.public, "GET", "/oauth2/token", "POST"),
        (s.public, "DELETE", "/oauth2/revoke", "POST"),
        (s.public, "POST", "/health/alive", "GET, HEAD"),
        (s.admin, "DELETE", "/admin/clients", "GET, HEAD, POST"),
        (s.admin, "POST", "/admin/clients/some-id", "GET, HEAD, PUT, PATCH, DELETE"),
        (s.admin, "GET", "/admin/oauth2/introspect", "POST"),
        (s.admin, "POST", "/admin/oauth2/tokens", "DELETE"),
        (s.admin, "GET", "/admin/clients/x/lifespans", "PUT"),
        (s.admin, "PUT", "/admin/clients/x/secrets/rotate", "POST, DELETE"),
    ];
    for (addr, m, path, allow) in cases {
        let r = Req::new(m, path).send(addr);
        r.expect_error(405, "method_not_allowed");
        assert_eq!(r.header("allow"), Some(allow), "{m} {path}");
    }
}

#[test]
fn clients_with_and_without_admin_prefix() {
    let s = api();
    let id = uniq("prefix");
    Req::new("POST", "/clients").json(&json!({"client_id": id, "client_name": "p"})).send(s.admin).expect(201);
    let a = Req::get(&format!("/clients/{id}")).send(s.admin);
    let b = Req::get(&format!("/admin/clients/{id}")).send(s.admin);
    a.expect(200);
    b.expect(200);
    assert_eq!(a.json(), b.json());
    assert_eq!(a.header("cache-control"), Some(NO_CACHE));
    let l1 = Req::get("/clients?client_name=p&page_size=500").send(s.admin);
    l1.expect(200);
    assert!(l1.json().as_array().unwrap().iter().any(|c| c["client_id"] == json!(id)));
    assert_eq!(l1.header("cache-control"), Some(NO_CACHE));
    // Trailing slash is stripped.
    Req::get(&format!("/admin/clients/{id}/")).send(s.admin).expect(200);
}

#[test]
fn verifiable_credentials_are_refused_plainly() {
    let s = api();
    let r = Req::new("POST", "/credentials")
        .header("Authorization", "Bearer ory_at_x.y")
        .json(&serde_json::json!({"format": "jwt_vc_json", "types": ["VerifiableCredential", "UserInfoCredential"]}))
        .send(s.public);
    let e = r.expect_error(501, "unsupported_request");
    assert!(e["error_description"].as_str().unwrap().contains("Verifiable credentials"), "{e}");
    let d = Req::get("/.well-known/openid-configuration").send(s.public).json();
    assert!(
        d.get("credentials_endpoint_draft_00").is_none() && d.get("credentials_supported_draft_00").is_none(),
        "{d}"
    );
    Req::get("/credentials").send(s.public).expect(405);
}
