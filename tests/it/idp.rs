//! Ending a login at the identity provider (`urls.identity_provider.*`, as Hydra with Ory
//! Kratos): a login accepted with `identity_provider_session_id` and remembered is revoked
//! there, with the configured headers, when the session ends here; a login without one causes no
//! call. On both backends (the session row keeps the id).

use crate::browser::*;
use crate::harness::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A stand-in for Kratos' admin API: records each request's head, answers 204.
fn kratos() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let log = got.clone();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(mut sock) = sock else { continue };
            let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => raw.extend_from_slice(&buf[..n]),
                }
            }
            log.lock().unwrap().push(String::from_utf8_lossy(&raw).into_owned());
            let _ = sock.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        }
    });
    (port, got)
}

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

fn wait_for(got: &Mutex<Vec<String>>, n: usize) -> Vec<String> {
    let t = Instant::now();
    while got.lock().unwrap().len() < n && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    got.lock().unwrap().clone()
}

#[test]
fn an_ended_login_is_revoked_at_the_identity_provider() {
    let (port, got) = kratos();
    let s = Opts::new("io_uring")
        .env("URLS_IDENTITY_PROVIDER_URL", &format!("http://127.0.0.1:{port}/"))
        .env("URLS_IDENTITY_PROVIDER_HEADERS", r#"{"X-Kratos-Key": "kratos-api-key"}"#)
        .env("CLIENTS_HTTP_PRIVATE_IP_EXCEPTION_URLS", &format!("http://127.0.0.1:{port}/**"))
        .start();
    let rp = rp(&s, json!({}));
    let sid = login_sid(&s, &rp, Some("kratos-session-1"));
    Req::new("DELETE", &format!("/admin/oauth2/auth/sessions/login?sid={}", form_escape(&sid)))
        .send(s.admin)
        .expect(204);
    let calls = wait_for(&got, 1);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].starts_with("DELETE /admin/sessions/kratos-session-1 HTTP/1.1"), "{}", calls[0]);
    assert!(calls[0].to_ascii_lowercase().contains("x-kratos-key: kratos-api-key"), "{}", calls[0]);
    assert!(!s.log().contains("kratos-api-key"), "a header value reached the log");
    // A login without an identity provider session: nothing to revoke.
    let sid = login_sid(&s, &rp, None);
    Req::new("DELETE", &format!("/admin/oauth2/auth/sessions/login?sid={}", form_escape(&sid)))
        .send(s.admin)
        .expect(204);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(got.lock().unwrap().len(), 1);
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
