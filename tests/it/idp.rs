//! Ending a login at the identity provider (`urls.identity_provider.*`, as Hydra with Ory
//! Kratos): a login accepted with `identity_provider_session_id` and remembered is revoked
//! there, with the configured headers, when the session ends here; a login without one causes no
//! call. On both backends (the session row keeps the id).

use crate::browser::*;
use crate::harness::*;
use crate::hooks::{hook_server, HookServer};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A remembered login (with `idp`, when given) and the session id its ID token names.
fn login_sid(s: &Server, rp: &Rp, idp: Option<&str>) -> String {
    let mut login = json!({"subject": "alice", "remember": true});
    if let Some(id) = idp {
        login["identity_provider_session_id"] = json!(id);
    }
    let done = run_flow(s, rp, &[], &login, &standard_consent());
    let t = exchange(s, rp, &code_of(&done), Some(VERIFIER)).json();
    let claims: Value = serde_json::from_str(&jwt_payload(&field(&t, "id_token"))).unwrap();
    field(&claims, "sid")
}

/// The identity provider's revocations the stand-in received, once there are `n` (or 10 s).
fn revocations(k: &HookServer, n: usize) -> Vec<String> {
    let seen = || -> Vec<String> {
        k.requests().into_iter().map(|(head, _)| head).filter(|h| h.starts_with("DELETE /admin/sessions/")).collect()
    };
    let t = Instant::now();
    while seen().len() < n && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    seen()
}

#[test]
fn an_ended_login_is_revoked_at_the_identity_provider() {
    // A stand-in for Kratos' admin API.
    let k = hook_server();
    let s = Opts::new("io_uring")
        .env("URLS_IDENTITY_PROVIDER_URL", &format!("{}/", k.base()))
        .env("URLS_IDENTITY_PROVIDER_HEADERS", r#"{"X-Kratos-Key": "kratos-api-key"}"#)
        .env("CLIENTS_HTTP_PRIVATE_IP_EXCEPTION_URLS", &format!("{}/**", k.base()))
        .start();
    let rp = rp(&s, json!({}));
    let sid = login_sid(&s, &rp, Some("kratos-session-1"));
    Req::new("DELETE", &format!("/admin/oauth2/auth/sessions/login?sid={}", form_escape(&sid)))
        .send(s.admin)
        .expect(204);
    let calls = revocations(&k, 1);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].starts_with("DELETE /admin/sessions/kratos-session-1 HTTP/1.1"), "{}", calls[0]);
    assert!(calls[0].to_ascii_lowercase().contains("x-kratos-key: kratos-api-key"), "{}", calls[0]);
    assert!(!s.log().contains("kratos-api-key"), "a header value reached the log");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!s.log().contains("revocation at the identity provider failed"), "{}", s.log());
    // A login without an identity provider session: nothing to revoke.
    let sid = login_sid(&s, &rp, None);
    Req::new("DELETE", &format!("/admin/oauth2/auth/sessions/login?sid={}", form_escape(&sid)))
        .send(s.admin)
        .expect(204);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(revocations(&k, 1).len(), 1);
}

#[test]
fn identity_provider_settings_are_checked() {
    for (k, v) in [
        ("URLS_IDENTITY_PROVIDER_URL", "ftp://kratos"),
        ("URLS_IDENTITY_PROVIDER_HEADERS", "not json"),
        ("URLS_IDENTITY_PROVIDER_HEADERS", r#"{"Bad Header": "x"}"#),
    ] {
        let out = Opts::new("io_uring").env(k, v).command().output().unwrap();
        assert!(!out.status.success(), "{k}={v} started");
        assert!(String::from_utf8_lossy(&out.stderr).contains("urls.identity_provider"), "{k}={v}");
    }
}
