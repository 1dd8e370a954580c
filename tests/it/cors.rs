//! CORS: the listeners' own lists (`serve.{public,admin}.cors.*`), clients' `allowed_cors_origins`
//! at the token, revocation, userinfo, discovery and JWKS endpoints, preflights from origins
//! that are not allowed, allow-all without credentials, and nothing at all when disabled.

use crate::browser::*;
use crate::harness::*;
use serde_json::json;

const APP: &str = "https://app.example";
const SPA: &str = "https://spa.example";

fn server() -> Server {
    Opts::new("io_uring")
        .env("SERVE_PUBLIC_CORS_ENABLED", "true")
        .env("SERVE_PUBLIC_CORS_ALLOWED_ORIGINS", &format!("{APP},https://*.apps.example"))
        .env("SERVE_PUBLIC_CORS_MAX_AGE", "600")
        .env("SERVE_ADMIN_CORS_ENABLED", "true")
        .env("SERVE_ADMIN_CORS_ALLOWED_ORIGINS", "https://admin.example")
        .start()
}

fn preflight(addr: std::net::SocketAddr, path: &str, origin: &str, method: &str, headers: Option<&str>) -> Response {
    let mut req = Req::new("OPTIONS", path).header("Origin", origin).header("Access-Control-Request-Method", method);
    if let Some(h) = headers {
        req = req.header("Access-Control-Request-Headers", h);
    }
    req.send(addr)
}

fn allowed_origin(r: &Response) -> Option<&str> {
    r.header("access-control-allow-origin")
}

#[test]
fn the_listeners_lists_and_the_clients_lists() {
    let s = server();
    // A preflight from a listed origin, and from a wildcard one.
    for origin in [APP, "https://team.apps.example"] {
        let r = preflight(s.public, "/oauth2/token", origin, "POST", Some("Content-Type, Authorization"));
        r.expect(204);
        assert_eq!(allowed_origin(&r), Some(origin));
        assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
        assert_eq!(r.header("access-control-allow-methods"), Some("POST"));
        assert_eq!(r.header("access-control-allow-headers"), Some("content-type, authorization"));
        assert_eq!(r.header("access-control-max-age"), Some("600"));
    }
    // Origins that are not allowed: 204, no permission.
    for origin in ["https://evil.example", "https://a.b.apps.example", "https://app.example.evil.net", "null"] {
        let r = preflight(s.public, "/oauth2/token", origin, "POST", None);
        r.expect(204);
        assert_eq!(allowed_origin(&r), None, "{origin}");
        assert!(r.header("vary").unwrap_or("").contains("Origin"));
    }
    // A header or method outside the lists.
    assert_eq!(allowed_origin(&preflight(s.public, "/oauth2/token", APP, "POST", Some("X-Evil"))), None);
    assert_eq!(allowed_origin(&preflight(s.public, "/oauth2/token", APP, "PROPFIND", None)), None);

    // A client lets SPA in: at the token endpoint (preflight and request), not at /oauth2/auth.
    let (id, secret) = cc_client_with(&s, json!({"scope": "read", "allowed_cors_origins": [SPA]}));
    let r = preflight(s.public, "/oauth2/token", SPA, "POST", Some("content-type"));
    assert_eq!(allowed_origin(&r), Some(SPA));
    assert_eq!(allowed_origin(&preflight(s.public, "/oauth2/auth", SPA, "GET", None)), None);
    let r = token_req(&id, &secret, &[]).header("Origin", SPA).send(s.public);
    r.expect(200);
    assert_eq!(allowed_origin(&r), Some(SPA));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert!(r.header("access-control-expose-headers").unwrap().contains("Cache-Control"));
    // A wrong secret: the client named still lets its origin read the error (as Hydra).
    let r = token_req(&id, "wrong", &[]).header("Origin", SPA).send(s.public);
    r.expect(401);
    assert_eq!(allowed_origin(&r), Some(SPA));
    // Another client does not let SPA in; the listener's own origin is let in for any client.
    let (other, other_secret) = cc_client(&s, "read");
    let r = token_req(&other, &other_secret, &[]).header("Origin", SPA).send(s.public);
    r.expect(200);
    assert_eq!(allowed_origin(&r), None);
    assert_eq!(r.header("vary"), Some("Origin"));
    let r = token_req(&other, &other_secret, &[]).header("Origin", APP).send(s.public);
    assert_eq!(allowed_origin(&r), Some(APP));
    // Revocation with the client named in the form.
    let at = access_token(&s, &id, &secret);
    let r = Req::new("POST", "/oauth2/revoke")
        .form(&[("token", &at), ("client_id", &id), ("client_secret", &secret)])
        .header("Origin", SPA)
        .send(s.public);
    assert_eq!(allowed_origin(&r), Some(SPA));
    // Not a per-client endpoint: the listener's list only.
    let r = Req::get("/health/alive").header("Origin", SPA).send(s.public);
    assert_eq!(allowed_origin(&r), None);
    let r = Req::get("/health/alive").header("Origin", APP).send(s.public);
    assert_eq!(allowed_origin(&r), Some(APP));
    // No Origin: no CORS headers at all.
    let r = token_req(&id, &secret, &[]).send(s.public);
    assert!(r.header("vary").is_none() && allowed_origin(&r).is_none());

    // Userinfo: the client comes from the access token.
    let rp = rp(&s, json!({"allowed_cors_origins": [SPA]}));
    let code = code_for(&s, &rp, &[]);
    let t = exchange(&s, &rp, &code, Some(VERIFIER)).json();
    let bearer = format!("Bearer {}", field(&t, "access_token"));
    let r = Req::get("/userinfo").header("Authorization", &bearer).header("Origin", SPA).send(s.public);
    r.expect(200);
    assert_eq!(allowed_origin(&r), Some(SPA));
    let r =
        Req::get("/userinfo").header("Authorization", "Bearer ory_at_forged.x").header("Origin", SPA).send(s.public);
    assert_eq!(allowed_origin(&r), None);

    // A wildcard client origin, and the index following client changes.
    let (wid, _) = cc_client_with(&s, json!({"scope": "read", "allowed_cors_origins": ["https://*.spa-wild.example"]}));
    assert_eq!(
        allowed_origin(&preflight(s.public, "/oauth2/token", "https://x.spa-wild.example", "POST", None)),
        Some("https://x.spa-wild.example")
    );
    assert_eq!(
        allowed_origin(&preflight(s.public, "/oauth2/token", "https://x.y.spa-wild.example", "POST", None)),
        None
    );
    Req::new("DELETE", &format!("/admin/clients/{wid}")).send(s.admin).expect(204);
    assert_eq!(allowed_origin(&preflight(s.public, "/oauth2/token", "https://x.spa-wild.example", "POST", None)), None);
    // SPA is still listed by the first client (and the RP): still allowed.
    assert_eq!(allowed_origin(&preflight(s.public, "/oauth2/token", SPA, "POST", None)), Some(SPA));

    // The admin listener has its own list.
    let r = preflight(s.admin, "/admin/clients", "https://admin.example", "POST", Some("content-type"));
    assert_eq!(allowed_origin(&r), Some("https://admin.example"));
    assert_eq!(allowed_origin(&preflight(s.admin, "/admin/clients", APP, "POST", None)), None);
    assert_eq!(
        allowed_origin(&preflight(s.admin, "/admin/clients", SPA, "POST", None)),
        None,
        "no per-client CORS on admin"
    );
    let r = Req::get("/admin/clients").header("Origin", "https://admin.example").send(s.admin);
    assert_eq!(allowed_origin(&r), Some("https://admin.example"));
    still_serves(&s);
}

#[test]
fn allow_all_never_comes_with_credentials() {
    let s = Opts::new("io_uring")
        .env("SERVE_PUBLIC_CORS_ENABLED", "true")
        .env("SERVE_PUBLIC_CORS_ALLOWED_ORIGINS", "*")
        .env("SERVE_PUBLIC_CORS_ALLOW_CREDENTIALS", "true")
        .start();
    let r = preflight(s.public, "/oauth2/token", "https://anyone.example", "POST", None);
    assert_eq!(allowed_origin(&r), Some("*"));
    assert_eq!(r.header("access-control-allow-credentials"), None);
    let r = Req::get("/.well-known/openid-configuration").header("Origin", "https://anyone.example").send(s.public);
    assert_eq!(allowed_origin(&r), Some("*"));
    assert_eq!(r.header("access-control-allow-credentials"), None);
}

#[test]
fn disabled_cors_adds_nothing_and_bad_settings_stop_the_start() {
    let s = api();
    let r = preflight(s.public, "/oauth2/token", APP, "POST", None);
    r.expect(405);
    assert_eq!(allowed_origin(&r), None);
    let r = Req::get("/health/alive").header("Origin", APP).send(s.public);
    assert!(allowed_origin(&r).is_none() && r.header("vary").is_none());
    for (k, v) in [
        ("SERVE_PUBLIC_CORS_ALLOWED_ORIGINS", "https://*.com"),
        ("SERVE_PUBLIC_CORS_ALLOWED_ORIGINS", "https://*"),
        ("SERVE_PUBLIC_CORS_ALLOWED_METHODS", "GET,BREW"),
        ("SERVE_PUBLIC_CORS_OPTIONS_PASSTHROUGH", "true"),
    ] {
        let out = Opts::new("io_uring").env("SERVE_PUBLIC_CORS_ENABLED", "true").env(k, v).command().output().unwrap();
        assert!(!out.status.success(), "{k}={v} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("serve.public.cors"), "{k}={v}: {err}");
    }
    // Registration refuses a client origin pattern wider than one label.
    let r = Req::new("POST", "/admin/clients").json(&json!({"allowed_cors_origins": ["https://*.com"]})).send(s.admin);
    r.expect_error(400, "invalid_client_metadata");
}
