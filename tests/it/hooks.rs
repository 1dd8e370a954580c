//! Token hooks against a real hook server on loopback: what each grant sends, how the answers
//! change the tokens (200 replaces, 204 keeps), and every way a hook can fail the grant (403,
//! 500, garbage, a huge answer, a redirect, a slow answer, a private address without an
//! exception), with the workers serving meanwhile.

use crate::browser::*;
use crate::harness::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A loopback HTTP server for outbound calls (token hooks, the identity provider): keeps
/// connections alive, records each request's head and body, and answers by path (404 for a path
/// it does not know).
pub struct HookServer {
    port: u16,
    got: Arc<Mutex<Vec<(String, Value)>>>,
}

impl HookServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
    /// The exception that lets the server reach this loopback server (`/*`: one path segment;
    /// `/**`: any path).
    pub fn exception(&self) -> String {
        format!("http://127.0.0.1:{}/*", self.port)
    }
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    pub fn requests(&self) -> Vec<(String, Value)> {
        self.got.lock().unwrap().clone()
    }
}

fn answer(path: &str) -> Vec<u8> {
    let json = |status: &str, body: &str| {
        format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
            .into_bytes()
    };
    match path {
        "/ok" => json("200 OK", r#"{"session":{"access_token":{"hooked":"yes"},"id_token":{"hook_claim":"x"}}}"#),
        "/legacy" => json("200 OK", r#"{"session":{"access_token":{"legacy":"yes"}}}"#),
        "/keep" => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
        p if p.starts_with("/admin/sessions/") => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
        "/deny" => json("403 Forbidden", "{}"),
        "/fail" => json("500 Internal Server Error", "{}"),
        "/garbage" => json("200 OK", "this is not json"),
        "/redirect" => b"HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n".to_vec(),
        "/both" => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
        "/slow-second" => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
        "/close" => {
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"session\":{\"access_token\":{\"closed\":\"yes\"}}}"
                .to_vec()
        }
        "/chunked" => {
            let (a, b) = (r#"{"session":{"ac"#, r#"cess_token":{"chunked":1}}}"#);
            format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
                a.len(),
                b.len()
            )
            .into_bytes()
        }
        "/huge" => {
            let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: 3000000\r\n\r\n".to_vec();
            r.extend(std::iter::repeat_n(b' ', 3_000_000));
            r
        }
        _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
    }
}

pub fn hook_server() -> HookServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let log = got.clone();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { continue };
            let log = log.clone();
            std::thread::spawn(move || serve(sock, &log));
        }
    });
    HookServer { port, got }
}

static SLOW_SEEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn serve(mut sock: TcpStream, log: &Mutex<Vec<(String, Value)>>) {
    let _ = sock.set_read_timeout(Some(Duration::from_secs(30)));
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let (head_end, length) = loop {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..i]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                    .unwrap_or(0);
                break (i + 4, len);
            }
            match sock.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        };
        while raw.len() < head_end + length {
            match sock.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
        let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
        let body: Value = serde_json::from_slice(&raw[head_end..head_end + length]).unwrap_or(Value::Null);
        raw.drain(..head_end + length);
        let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
        let close = head.to_ascii_lowercase().contains("\r\nconnection: close");
        log.lock().unwrap().push((head, body));
        // `/slow-second` answers its first request at once and every later one too late.
        let late = path == "/slow"
            || (path == "/slow-second" && SLOW_SEEN.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0);
        if late {
            std::thread::sleep(Duration::from_secs(8));
        }
        if sock.write_all(&answer(&path)).is_err() || path == "/close" || close {
            return;
        }
    }
}

fn with_hook(h: &HookServer, path: &str) -> Server {
    Opts::new("io_uring")
        .env("OAUTH2_TOKEN_HOOK", &h.url(path))
        .env("CLIENTS_HTTP_PRIVATE_IP_EXCEPTION_URLS", &h.exception())
        .start()
}

#[test]
fn hooks_see_each_grant_and_shape_its_tokens() {
    let h = hook_server();
    let s = Opts::new("io_uring")
        .env("OAUTH2_TOKEN_HOOK", &h.url("/ok"))
        .env("OAUTH2_REFRESH_TOKEN_HOOK", &h.url("/legacy"))
        .env("CLIENTS_HTTP_PRIVATE_IP_EXCEPTION_URLS", &h.exception())
        .start();

    // Client credentials, with the secret in the form: the hook never sees it.
    let (id, secret) = cc_client_with(&s, json!({"scope": "read", "token_endpoint_auth_method": "client_secret_post"}));
    let r = Req::new("POST", "/oauth2/token")
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "read"),
            ("client_id", &id),
            ("client_secret", &secret),
        ])
        .send(s.public);
    r.expect(200);
    let at = field(&r.json(), "access_token");
    assert_eq!(introspect(&s, &at)["ext"], json!({"hooked": "yes"}));
    let (head, body) = h.requests().pop().unwrap();
    assert!(head.starts_with("POST /ok HTTP/1.1"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    assert_eq!(body["request"]["client_id"], id.as_str());
    assert_eq!(body["request"]["grant_types"], json!(["client_credentials"]));
    assert_eq!(body["request"]["granted_scopes"], json!(["read"]));
    assert_eq!(
        body["request"]["payload"],
        json!({"client_id": [id], "grant_type": ["client_credentials"], "scope": ["read"]})
    );
    assert!(!body.to_string().contains(&secret), "the client secret reached the hook");

    // Authorization code: the access token's claims replaced, the ID token keeps the consent's.
    let rp = rp(&s, json!({}));
    let code = code_for(&s, &rp, &[]);
    let before = h.requests().len();
    let t = exchange(&s, &rp, &code, Some(VERIFIER));
    t.expect(200);
    let t = t.json();
    let claims: Value = serde_json::from_str(&jwt_payload(&field(&t, "id_token"))).unwrap();
    assert_eq!(claims["hook_claim"], "x");
    assert_eq!(claims["email"], "alice@example.com", "consent claims stay in the ID token");
    assert_eq!(introspect(&s, &field(&t, "access_token"))["ext"], json!({"hooked": "yes"}));
    let (_, body) = h.requests()[before].clone();
    assert_eq!(body["request"]["grant_types"], json!(["authorization_code"]));
    assert_eq!(body["session"]["extra"]["tier"], "gold", "the hook sees the consent's access-token claims");
    assert_eq!(body["session"]["id_token"]["id_token_claims"]["sub"], "alice");
    assert!(!body.to_string().contains(&code), "the code reached the hook");

    // Refresh, narrowing the scope: the legacy hook first, then the token hook, which sees what
    // the first left and the narrowed scope.
    let before = h.requests().len();
    let r = refresh(&s, &rp, &field(&t, "refresh_token"), Some("openid"));
    r.expect(200);
    let calls = h.requests()[before..].to_vec();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls[0].0.starts_with("POST /legacy "), "{}", calls[0].0);
    assert_eq!(calls[0].1["subject"], "alice");
    assert_eq!(calls[0].1["requester"]["grant_types"], json!(["refresh_token"]));
    assert!(calls[1].0.starts_with("POST /ok "));
    assert_eq!(calls[1].1["session"]["extra"], json!({"legacy": "yes"}));
    assert_eq!(calls[1].1["request"]["granted_scopes"], json!(["openid"]));
    assert_eq!(introspect(&s, &field(&r.json(), "access_token"))["ext"], json!({"hooked": "yes"}));
}

#[test]
fn a_hook_that_keeps_or_closes_or_chunks_lets_the_grant_go_on() {
    let h = hook_server();
    for (path, ext) in
        [("/keep", json!(null)), ("/close", json!({"closed": "yes"})), ("/chunked", json!({"chunked": 1}))]
    {
        let s = with_hook(&h, path);
        let (id, secret) = cc_client(&s, "read");
        // Twice: the second call reuses (or replaces) the kept-alive connection.
        for _ in 0..2 {
            let at = access_token(&s, &id, &secret);
            let i = introspect(&s, &at);
            assert_eq!(i.get("ext").cloned().unwrap_or(Value::Null), ext, "{path}: {i}");
        }
    }
}

#[test]
fn a_hook_that_refuses_or_fails_refuses_the_grant() {
    let h = hook_server();
    for (path, status, error, description) in [
        ("/deny", 403, "access_denied", "The token hook target responded with an error. Make sure"),
        ("/fail", 500, "server_error", "The token hook target responded with an error."),
        ("/garbage", 500, "server_error", "The token hook target responded with an error."),
        ("/redirect", 500, "server_error", "The token hook target responded with an error."),
        ("/huge", 500, "server_error", "An error occurred while executing the token hook."),
        ("/both", 500, "server_error", "An error occurred while executing the token hook."),
        ("/missing", 500, "server_error", "The token hook target responded with an error."),
    ] {
        let s = with_hook(&h, path);
        let rp = rp(&s, json!({}));
        let code = code_for(&s, &rp, &[]);
        let e = exchange(&s, &rp, &code, Some(VERIFIER)).expect_error(status, error);
        assert!(e["error_description"].as_str().unwrap().starts_with(description), "{path}: {e}");
        let (id, secret) = cc_client(&s, "read");
        token_req(&id, &secret, &[]).send(s.public).expect_error(status, error);
        still_serves(&s);
    }
    // A redirect is not followed.
    assert!(!h.requests().iter().any(|(head, _)| head.starts_with("POST /ok ")));
}

#[test]
fn a_slow_hook_times_out_without_holding_the_workers() {
    let h = hook_server();
    let s = with_hook(&h, "/slow");
    let (id, secret) = cc_client(&s, "read");
    let started = Instant::now();
    let addr = s.public;
    let slow = std::thread::spawn(move || token_req(&id, &secret, &[]).send(addr));
    std::thread::sleep(Duration::from_millis(300));
    // Meanwhile the workers answer at once.
    for _ in 0..20 {
        let t = Instant::now();
        Req::get("/health/alive").send(s.public).expect(200);
        assert!(t.elapsed() < Duration::from_secs(1));
    }
    let r = slow.join().unwrap();
    r.expect_error(500, "server_error");
    let took = started.elapsed();
    // A hook silent for 5 s (the outbound read timeout) fails the grant.
    assert!(took >= Duration::from_millis(4500) && took < Duration::from_secs(9), "{took:?}");

    // On a kept-alive connection a slow hook is not mistaken for a closed one: called once, not
    // twice.
    let s = with_hook(&h, "/slow-second");
    let (id, secret) = cc_client(&s, "read");
    access_token(&s, &id, &secret);
    token_req(&id, &secret, &[]).send(s.public).expect_error(500, "server_error");
    let calls = h.requests().iter().filter(|(head, _)| head.starts_with("POST /slow-second ")).count();
    assert_eq!(calls, 2, "the slow call was sent again");
}

#[test]
fn private_addresses_need_an_exception_and_api_keys_are_sent() {
    let h = hook_server();
    // Outside --dev, a loopback hook is refused unless listed as an exception.
    let s = Opts::new("io_uring").env("OAUTH2_TOKEN_HOOK", &h.url("/ok")).start();
    let (id, secret) = cc_client(&s, "read");
    let e = token_req(&id, &secret, &[]).send(s.public).expect_error(500, "server_error");
    assert!(e["error_description"].as_str().unwrap().contains("executing the token hook"), "{e}");
    assert!(h.requests().is_empty(), "nothing reached the private address");
    drop(s);

    for (place, expect) in [("header", "x-api-key: sekret-value"), ("cookie", "cookie: hook_key=sekret-value")] {
        let s = Opts::new("io_uring")
            .env("OAUTH2_TOKEN_HOOK_URL", &h.url("/keep"))
            .env("OAUTH2_TOKEN_HOOK_AUTH_TYPE", "api_key")
            .env("OAUTH2_TOKEN_HOOK_AUTH_CONFIG_IN", place)
            .env("OAUTH2_TOKEN_HOOK_AUTH_CONFIG_NAME", if place == "header" { "X-Api-Key" } else { "hook_key" })
            .env("OAUTH2_TOKEN_HOOK_AUTH_CONFIG_VALUE", "sekret-value")
            .env("CLIENTS_HTTP_PRIVATE_IP_EXCEPTION_URLS", &h.exception())
            .start();
        let (id, secret) = cc_client(&s, "read");
        access_token(&s, &id, &secret);
        let (head, _) = h.requests().pop().unwrap();
        assert!(head.to_ascii_lowercase().contains(expect), "{place}: {head}");
        assert!(!s.log().contains("sekret-value"), "the API key reached the log");
    }
    for (k, v) in [
        ("OAUTH2_TOKEN_HOOK_AUTH_TYPE", "basic"),
        ("OAUTH2_TOKEN_HOOK_AUTH_CONFIG_IN", "query"),
        ("OAUTH2_TOKEN_HOOK_AUTH_CONFIG_VALUE", "bad\rvalue"),
    ] {
        let mut o = Opts::new("io_uring")
            .env("OAUTH2_TOKEN_HOOK_URL", &h.url("/keep"))
            .env("OAUTH2_TOKEN_HOOK_AUTH_TYPE", "api_key")
            .env("OAUTH2_TOKEN_HOOK_AUTH_CONFIG_IN", "header")
            .env("OAUTH2_TOKEN_HOOK_AUTH_CONFIG_NAME", "X-Key")
            .env("OAUTH2_TOKEN_HOOK_AUTH_CONFIG_VALUE", "v");
        o = o.env(k, v);
        let out = o.command().output().unwrap();
        assert!(!out.status.success(), "{k}={v} started");
        assert!(String::from_utf8_lossy(&out.stderr).contains("oauth2.token_hook"), "{k}={v}");
    }
    let out = Opts::new("io_uring").env("OAUTH2_TOKEN_HOOK", "ftp://hook.example/").command().output().unwrap();
    assert!(!out.status.success());
}
