//! Cookie settings (`serve.cookies.*`, `secrets.cookie`): attributes, names, the legacy
//! SameSite workaround, `Secure` that cannot be turned off outside `--dev`, and rotating the
//! cookie secret without logging everyone out.

use crate::browser::*;
use crate::harness::*;
use serde_json::json;

/// Every `Set-Cookie` header of an answer, whole.
fn set_cookies(r: &Response) -> Vec<String> {
    r.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie")).map(|(_, v)| v.clone()).collect()
}

fn with(headers: &[String], prefix: &str) -> String {
    headers.iter().find(|h| h.starts_with(prefix)).cloned().unwrap_or_else(|| panic!("no {prefix} in {headers:?}"))
}

/// Starts a flow and answers the login challenge's `Set-Cookie` headers.
fn first_leg(s: &Server, rp: &Rp) -> Vec<String> {
    let r = Req::get(&auth_path(rp, &[])).send(s.public);
    set_cookies(&r)
}

/// Whether the login request of a new flow in this jar is skipped (the session was recognised).
fn login_skipped(s: &Server, rp: &Rp, jar: &mut Jar) -> bool {
    let lc = start(s, jar, rp, &[]);
    let path = format!("/admin/oauth2/auth/requests/login?login_challenge={}", form_escape(&lc));
    Req::get(&path).send(s.admin).json()["skip"] == true
}

/// A remembered login in `jar`.
fn remember(s: &Server, rp: &Rp, jar: &mut Jar) {
    let lc = start(s, jar, rp, &[]);
    let lv = accept_login(s, &lc, &json!({"subject": "alice", "remember": true}));
    let cc = to_consent(s, jar, &lv);
    let cv = accept_consent(s, &cc, &standard_consent());
    let r = jar.get(s, &cv);
    jar.take(&r);
    assert!(location(&r).contains("code="), "{}", location(&r));
}

#[test]
fn defaults_are_secure_httponly_and_lax_without_https() {
    let s = Opts::new("io_uring").env("SERVE_COOKIES_SECURE", "false").start();
    let rp = rp(&s, json!({}));
    let h = first_leg(&s, &rp);
    let c = with(&h, "ory_hydra_login_csrf_");
    // Outside --dev a cookie is Secure whatever serve.cookies.secure says; SameSite None needs
    // an https issuer, so it is Lax here.
    for attr in ["; Path=/", "; HttpOnly", "; SameSite=Lax", "; Secure"] {
        assert!(c.contains(attr), "{attr} missing: {c}");
    }
    assert!(!c.contains("Domain="), "{c}");
    // --dev: not Secure unless asked for.
    let d = Opts::new("io_uring").dev().start();
    let rp = crate::browser::rp(&d, json!({"redirect_uris": [CB]}));
    let c = with(&first_leg(&d, &rp), "ory_hydra_login_csrf_dev_");
    assert!(!c.contains("Secure"), "{c}");
    let d = Opts::new("io_uring").dev().env("SERVE_COOKIES_SECURE", "true").start();
    let rp = crate::browser::rp(&d, json!({"redirect_uris": [CB]}));
    assert!(with(&first_leg(&d, &rp), "ory_hydra_login_csrf_dev_").contains("; Secure"));
}

#[test]
fn names_paths_domain_and_the_legacy_twin() {
    let s = Opts::new("io_uring")
        .env("URLS_SELF_ISSUER", "https://op.example/")
        .env("SERVE_COOKIES_NAMES_LOGIN_CSRF", "op_login")
        .env("SERVE_COOKIES_NAMES_CONSENT_CSRF", "op_consent")
        .env("SERVE_COOKIES_NAMES_SESSION", "op_session")
        .env("SERVE_COOKIES_PATHS_SESSION", "/oauth2")
        .env("SERVE_COOKIES_DOMAIN", "op.example")
        .env("SERVE_COOKIES_SAME_SITE_LEGACY_WORKAROUND", "true")
        .start();
    let rp = rp(&s, json!({}));
    let h = first_leg(&s, &rp);
    let main = with(&h, "op_login_");
    assert!(
        main.contains("; SameSite=None") && main.contains("; Domain=op.example") && main.contains("; Secure"),
        "{main}"
    );
    let name = main.split('=').next().unwrap().to_string();
    let twin = with(&h, &format!("{name}_legacy="));
    assert!(!twin.contains("SameSite"), "{twin}");
    // A browser that dropped the SameSite=None cookies and kept only the twins still completes
    // the flow, and the session cookie goes to its own path.
    let mut jar = Jar::default();
    let lc = start(&s, &mut jar, &rp, &[]);
    jar.0.retain(|(k, _)| k.ends_with("_legacy"));
    assert!(!jar.0.is_empty());
    let lv = accept_login(&s, &lc, &json!({"subject": "alice", "remember": true}));
    let r = jar.get(&s, &lv);
    jar.take(&r);
    assert!(location(&r).contains("consent_challenge="), "{}", location(&r));
    let session = with(&set_cookies(&r), "op_session=");
    assert!(session.contains("; Path=/oauth2;"), "{session}");
    let twin = with(&set_cookies(&r), "op_session_legacy=");
    assert!(twin.contains("; Path=/oauth2;"), "the twin goes where its cookie goes: {twin}");
}

#[test]
fn rotating_the_cookie_secret_keeps_sessions_until_the_old_secret_goes() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = ("cookie-secret-old-0123456789", "cookie-secret-new-0123456789");
    let server = |cookie: &str| Opts::new("io_uring").dir(dir.path()).env("SECRETS_COOKIE", cookie).start();
    let s = server(old);
    let rp = rp(&s, json!({}));
    let mut jar = Jar::default();
    remember(&s, &rp, &mut jar);
    assert!(login_skipped(&s, &rp, &mut jar.clone()));
    drop(s);
    // New first, old still listed: the session holds.
    let s = server(&format!("{new},{old}"));
    assert!(login_skipped(&s, &rp, &mut jar.clone()));
    drop(s);
    // The old secret gone: the cookie no longer opens, a login is asked for.
    let s = server(new);
    assert!(!login_skipped(&s, &rp, &mut jar.clone()));
    drop(s);
    // The cookie secret is not the system secret: without secrets.cookie the old cookie fails too.
    let s = Opts::new("io_uring").dir(dir.path()).start();
    assert!(!login_skipped(&s, &rp, &mut jar));
}

#[test]
fn bad_cookie_settings_stop_the_start() {
    for (k, v) in [
        ("SERVE_COOKIES_SAME_SITE_MODE", "Sideways"),
        ("SERVE_COOKIES_NAMES_SESSION", "bad name"),
        ("SERVE_COOKIES_DOMAIN", "evil.example; HttpOnly"),
        ("SERVE_COOKIES_PATHS_SESSION", "relative"),
        ("SECRETS_COOKIE", "short"),
    ] {
        let out = Opts::new("io_uring").env(k, v).command().output().unwrap();
        assert!(!out.status.success(), "{k}={v} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cookie"), "{k}={v}: {err}");
    }
}
