//! Oversized, malformed and slow HTTP (RFC 9110 §15.5.14, §15.5.15, RFC 6585 §5, RFC 9112 §2.2,
//! §11; RFC 6749 §3.1): limits answered with their status before the server buffers more, strict
//! form decoding, no header injection through reflected parameters, and slow or idle connections
//! that can neither hold the server nor outlive its timeouts.
//!
//! The shared servers run with `ENGINE_HEADER_TIMEOUT=1s` and `ENGINE_IDLE_TIMEOUT=2s`.

use super::*;
use crate::harness::*;
use serde_json::json;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

both_drivers!(
    header_limit_431,
    url_limit_414,
    oauth_body_limit_413,
    header_timeout,
    connection_flood_does_not_starve_real_clients,
    a_client_that_pipelines_and_never_reads_is_dropped,
    http10_keep_alive_host_and_absolute_targets,
);

/// A client that pipelines requests and never reads its answers cannot hold the worker: once its
/// buffers are full, the server's write gives up after the idle timeout (2 s here) and the
/// connection closes, so the client's own writes start failing.
fn a_client_that_pipelines_and_never_reads_is_dropped(d: &str) {
    let s = shared(d);
    let mut c = TcpStream::connect(s.public).unwrap();
    c.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    let chunk = b"GET /health/alive HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200);
    let t = Instant::now();
    let mut stalled_since: Option<Instant> = None;
    let dropped = loop {
        match c.write(&chunk) {
            Ok(_) => stalled_since = None,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                stalled_since.get_or_insert_with(Instant::now);
            }
            Err(_) => break true,
        }
        if t.elapsed() > Duration::from_secs(20) {
            break false;
        }
    };
    assert!(dropped, "the connection was still open after {:?}", t.elapsed());
    let waited = stalled_since.map(|i| i.elapsed()).unwrap_or_default();
    assert!(waited < Duration::from_secs(8), "held {waited:?} after the client stopped reading");
    still_serves(s);
}

/// An HTTP/1.0 client that asked to keep the connection is told it stays open (RFC 9112 §9.3,
/// Appendix C.2.2), and it does; the Host rules of RFC 9112 §3.2; absolute-form targets.
fn http10_keep_alive_host_and_absolute_targets(d: &str) {
    let s = shared(d);
    let mut c = Conn::open(s.public);
    c.set_timeout(Duration::from_secs(5));
    for _ in 0..2 {
        c.send(b"GET /health/alive HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let r = c.read_response().expect("an answer on the same connection");
        r.expect(200);
        assert_eq!(r.header("connection"), Some("keep-alive"), "{:?}", r.headers);
    }
    let mut c = Conn::open(s.public);
    c.set_timeout(Duration::from_secs(5));
    c.send(b"GET /health/alive HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response().unwrap();
    assert_eq!(r.header("connection"), None, "HTTP/1.1 persists without saying so");
    // Host: one for HTTP/1.1 (RFC 9112 §3.2), at most one for HTTP/1.0; an absolute-form target
    // is served by its path.
    for (raw, status) in [
        (&b"GET /health/alive HTTP/1.1\r\n\r\n"[..], 400),
        (b"GET /health/alive HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET /health/alive HTTP/1.0\r\n\r\n", 200),
        (b"GET http://op.example/health/alive HTTP/1.1\r\nHost: op.example\r\n\r\n", 200),
    ] {
        let mut c = Conn::open(s.public);
        c.set_timeout(Duration::from_secs(5));
        c.send(raw);
        let r = c.read_response().unwrap();
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(raw));
    }
}

fn client(s: &Server) -> (String, String) {
    cc_client(s, "a")
}

fn header_limit_431(d: &str) {
    let s = shared(d);
    for addr in [s.public, s.admin] {
        let big = "a".repeat(17 * 1024);
        let r = raw(addr, format!("GET /health/alive HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes());
        r.expect_json_error(431);
        // Many small headers adding up.
        let mut h = String::from("GET /health/alive HTTP/1.1\r\nHost: x\r\n");
        for i in 0..60 {
            h.push_str(&format!("X-H{i}: {}\r\n", "b".repeat(300)));
        }
        h.push_str("\r\n");
        raw(addr, h.as_bytes()).expect_json_error(431);
        // Under the limit is fine.
        let ok = "a".repeat(12 * 1024);
        raw(addr, format!("GET /health/alive HTTP/1.1\r\nHost: x\r\nX-Big: {ok}\r\n\r\n").as_bytes()).expect(200);
    }
}

fn url_limit_414(d: &str) {
    let s = shared(d);
    let long = "a".repeat(8 * 1024 + 100);
    let r = raw(s.public, format!("GET /health/alive?x={long} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    r.expect_json_error(414);
    let r = raw(s.admin, format!("GET /admin/clients/{long} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    r.expect_json_error(414);
    // Just under the limit: routed normally.
    let ok = "a".repeat(8000);
    raw(s.public, format!("GET /health/alive?x={ok} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).expect(200);
}

fn oauth_body_limit_413(d: &str) {
    let s = shared(d);
    let (id, secret) = client(s);
    // Declared length over 64 KiB: refused before reading the body.
    let mut c = Conn::open(s.public);
    c.send(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 65537\r\n\r\n");
    c.response().expect_json_error(413);
    assert!(c.is_closed());
    // Exactly 64 KiB is accepted (padding in an ignored parameter).
    let prefix = "grant_type=client_credentials&pad=";
    let body = format!("{prefix}{}", "p".repeat(64 * 1024 - prefix.len()));
    assert_eq!(body.len(), 65536);
    let r = Req::new("POST", "/oauth2/token").raw_form(body.as_bytes()).basic(&id, &secret).send(s.public);
    r.expect(200);
    // Chunked over the limit.
    let mut c = Conn::open(s.public);
    let mut req = b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let chunk = "q".repeat(40 * 1024);
    for _ in 0..2 {
        req.extend(format!("{:x}\r\n{chunk}\r\n", chunk.len()).bytes());
    }
    req.extend(b"0\r\n\r\n");
    c.send(&req);
    c.response().expect_json_error(413);
    // The introspection endpoint lives on admin (1 MiB), so 100 KiB is not 413 there.
    let r = Req::new("POST", "/admin/oauth2/introspect").form(&[("token", &"t".repeat(100 * 1024))]).send(s.admin);
    r.expect(200);
    assert_eq!(r.json(), json!({"active": false}));
}

fn header_timeout(d: &str) {
    let s = shared(d);
    let mut c = Conn::open(s.public);
    c.set_timeout(Duration::from_secs(5));
    let t = Instant::now();
    c.send(b"GET /health/alive HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    match c.read_response() {
        Ok(r) => {
            r.expect_json_error(408);
        }
        Err(e) => assert!(
            !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
            "neither 408 nor close: {e}"
        ),
    }
    let el = t.elapsed();
    assert!(el < Duration::from_secs(3), "took {el:?}");
    assert!(el >= Duration::from_millis(800), "too early: {el:?}");
    // Trickling bytes does not extend the deadline (slowloris).
    let mut c = Conn::open(s.public);
    c.set_timeout(Duration::from_secs(5));
    let t = Instant::now();
    let mut closed = false;
    for _ in 0..40 {
        if !c.send_lossy(b"X-A: b\r\n") {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if !closed {
        // The server must have answered 408 while we trickled, not merely time out our read.
        let r = c.read_response();
        assert!(matches!(&r, Ok(r) if r.status == 408), "no 408 after {:?}", t.elapsed());
    }
    assert!(t.elapsed() < Duration::from_secs(3), "slowloris kept alive for {:?}", t.elapsed());
    // A partial body also times out (3 × header timeout).
    let mut c = Conn::open(s.public);
    c.set_timeout(Duration::from_secs(6));
    let t = Instant::now();
    c.send(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant");
    match c.read_response() {
        Ok(r) => {
            r.expect_json_error(408);
        }
        Err(e) => assert!(!matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{e}"),
    }
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn admin_json_body_limit() {
    for d in DRIVERS {
        let s = shared(d);
        // 500 KiB client_name: under the 1 MiB admin limit, so never 413.
        let big = "n".repeat(500 * 1024);
        let r = Req::new("POST", "/admin/clients").json(&json!({"client_name": big})).send(s.admin);
        r.expect(201);
        assert_eq!(r.json()["client_name"].as_str().map(str::len), Some(500 * 1024), "{d}");
        // > 1 MiB declared: 413 before the body is read.
        let mut c = Conn::open(s.admin);
        c.send(b"POST /admin/clients HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1048577\r\n\r\n");
        let r = c.response();
        r.expect_json_error(413);
        // Exactly 1 MiB + 1 sent as a real (chunked) body is refused too.
        let mut c = Conn::open(s.admin);
        c.send(b"POST /admin/clients HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
        let chunk = vec![b' '; 64 * 1024];
        let mut got = None;
        for _ in 0..17 {
            let mut b = format!("{:x}\r\n", chunk.len()).into_bytes();
            b.extend_from_slice(&chunk);
            b.extend_from_slice(b"\r\n");
            if !c.send_lossy(&b) {
                break;
            }
        }
        if let Ok(r) = c.read_response() {
            got = Some(r.status);
        }
        assert_eq!(got, Some(413), "{d}: chunked body over 1 MiB");
    }
}

#[test]
fn malformed_forms_are_400() {
    let s = api();
    let (id, secret) = cc_client(s, "a");
    let many: String = (0..101).map(|i| format!("p{i}=v")).collect::<Vec<_>>().join("&");
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("duplicate", b"grant_type=client_credentials&grant_type=client_credentials".to_vec()),
        ("duplicate scope", b"grant_type=client_credentials&scope=a&scope=a".to_vec()),
        ("bad escape", b"grant_type=client_credentials&scope=%zz".to_vec()),
        ("truncated escape", b"grant_type=client_credentials&scope=%4".to_vec()),
        ("invalid utf-8", b"grant_type=client_credentials&scope=%ff%fe".to_vec()),
        ("raw invalid utf-8", b"grant_type=client_credentials&scope=\xff".to_vec()),
        ("nul", b"grant_type=client_credentials&scope=a%00b".to_vec()),
        ("raw nul", b"grant_type=client_credentials&scope=a\x00b".to_vec()),
        (">100 params", format!("grant_type=client_credentials&{many}").into_bytes()),
    ];
    for (what, body) in bodies {
        let r = Req::new("POST", "/oauth2/token").raw_form(&body).basic(&id, &secret).send(s.public);
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert_eq!(r.json()["error"], "invalid_request", "{what}");
        r.assert_no_store();
    }
    // 100 parameters is fine (unknown ones are ignored).
    let ok: String = (0..99).map(|i| format!("p{i}=v")).collect::<Vec<_>>().join("&");
    let r = Req::new("POST", "/oauth2/token")
        .raw_form(format!("grant_type=client_credentials&{ok}").as_bytes())
        .basic(&id, &secret)
        .send(s.public);
    r.expect(200);
}

/// Strict form decoding at every form endpoint, not only the token endpoint: malformed escapes,
/// invalid UTF-8, NUL and repeated parameters are `400 invalid_request` (RFC 6749 §3.1: "MUST NOT
/// be included more than once"); at the authorization endpoint, where no redirect URI can be
/// trusted yet, the same errors go to the error page.
#[test]
fn malformed_forms_are_refused_at_every_form_endpoint() {
    let s = api();
    let (id, secret) = client(s);
    let tok = access_token(s, &id, &secret);
    let bad: [(&str, &[u8]); 6] = [
        ("bad escape", b"token=%zz"),
        ("truncated escape", b"token=abc%4"),
        ("invalid utf-8", b"token=%c3%28"),
        ("raw invalid utf-8", b"token=\xc3\x28"),
        ("nul", b"token=a%00"),
        ("repeated", b"token=a&token=b"),
    ];
    for (what, body) in bad {
        let mut b = body.to_vec();
        let r = Req::new("POST", "/oauth2/revoke").raw_form(&b).basic(&id, &secret).send(s.public);
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (400, Some("invalid_request")),
            "revoke {what}: {}",
            r.text()
        );
        let r = Req::new("POST", "/admin/oauth2/introspect").raw_form(&b).send(s.admin);
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (400, Some("invalid_request")),
            "introspect {what}: {}",
            r.text()
        );
        b.splice(0..5, b"access_token".iter().copied());
        let r = Req::new("POST", "/userinfo").raw_form(&b).send(s.public);
        assert!(r.status == 400 || r.status == 401, "userinfo {what}: {} {}", r.status, r.text());
    }
    assert!(is_active(s, &tok), "no malformed revocation took effect");
    // The authorization endpoint: query and form body.
    let c = rp(s, json!({}));
    let good = auth_path(&c, &[]);
    let good_query = good.split_once('?').expect("query").1;
    for (what, extra) in [
        ("bad escape", "&nonce=%zz"),
        ("invalid utf-8", "&nonce=%ff"),
        ("nul", "&nonce=a%00b"),
        ("repeated", "&scope=openid"),
        ("empty name", "&=x"),
    ] {
        let r = Req::get(&format!("{good}{extra}")).send(s.public);
        assert_eq!(expect_error_page(s, &r, what), "invalid_request", "GET {what}");
        let body = format!("{good_query}{extra}");
        let r = Req::new("POST", "/oauth2/auth").raw_form(body.as_bytes()).send(s.public);
        assert_eq!(expect_error_page(s, &r, what), "invalid_request", "POST {what}");
    }
    // A POST to the authorization endpoint must be a form.
    let mut req = Req::new("POST", "/oauth2/auth").header("Content-Type", "application/json");
    req.body = serde_json::to_vec(&json!({"client_id": c.id, "redirect_uri": CB})).expect("json");
    expect_error_page(s, &req.send(s.public), "json body");
}

fn assert_no_injected_header(r: &Response, what: &str) {
    for (k, v) in &r.headers {
        assert!(!k.eq_ignore_ascii_case("x-injected"), "{what}: injected header {k}: {v}");
        assert!(
            !(k.eq_ignore_ascii_case("set-cookie") && v.trim_start().starts_with("injected")),
            "{what}: injected cookie {v}"
        );
        assert!(!v.contains('\r') && !v.contains('\n'), "{what}: raw line break in {k}: {v:?}");
        assert!(!v.contains(' ') || !k.eq_ignore_ascii_case("location"), "{what}: raw space in Location: {v:?}");
    }
}

/// RFC 9112 §2.2 / §11 (response splitting): a CR or LF reaching us through `state`, an error
/// description or a request id never becomes a line break in our answer. Whatever the client put
/// in `state` comes back percent-encoded inside the one Location header.
#[test]
fn reflected_values_cannot_inject_headers() {
    let s = api();
    let c = rp(s, json!({}));
    let injections = [
        "inject-\r\nX-Injected: 1",
        "inject-\nSet-Cookie: injected=1",
        "inject-\rX-Injected: 1\r\n\r\n<html>",
        "inject-\u{560a}\u{560d}X-Injected: 1",
        "inject-%0d%0aX-Injected:%201",
    ];
    for state in injections {
        // An error redirect before the login app.
        let r = Req::get(&auth_path(&c, &[("state", state), ("prompt", "none")])).send(s.public);
        assert_no_injected_header(&r, state);
        let loc = expect_client_error(&r, "login_required");
        assert_eq!(query_param(&loc, "state").as_deref(), Some(state), "{loc}");
        // The login challenge redirect and its cookie.
        let r = Req::get(&auth_path(&c, &[("state", state)])).send(s.public);
        assert_no_injected_header(&r, state);
        // The final redirect with the code.
        let done = run_flow(s, &c, &[("state", state)], &standard_login(), &standard_consent());
        assert_eq!(query_param(&done, "state").as_deref(), Some(state), "{done}");
        assert!(!done.contains('\r') && !done.contains('\n'), "{done:?}");
    }
    // An error description chosen by the login app.
    let mut jar = Jar::default();
    let lc = start(s, &mut jar, &c, &[]);
    let back = redirect_to(&put_json(
        s,
        &format!("/admin/oauth2/auth/requests/login/reject?login_challenge={}", form_escape(&lc)),
        &json!({"error": "access_denied\r\nX-Injected: 1", "error_description": "no\r\nSet-Cookie: injected=1"}),
    ));
    let r = jar.get(s, &local(&back));
    assert_no_injected_header(&r, "reject");
    let loc = location(&r);
    assert_eq!(query_param(&loc, "error_description").as_deref(), Some("no\r\nSet-Cookie: injected=1"), "{loc}");
    // The error page renders what it is given as escaped text, headers untouched.
    let r =
        Req::get("/oauth2/fallbacks/error?error=a%0d%0aX-Injected:%201&error_description=%0d%0a%0d%0a%3Cscript%3Ex")
            .send(s.public);
    r.expect(200);
    assert_no_injected_header(&r, "error page");
    assert!(!r.text().contains("<script>x"), "{}", r.text());
    // A request id that is not a plain token is replaced, not echoed.
    let r = Req::get("/health/alive").header("X-Request-Id", "abc%0d%0aX-Injected: 1").send(s.public);
    r.expect(200);
    assert_no_injected_header(&r, "request id");
    let rid = r.header("x-request-id").expect("a request id");
    assert!(rid.bytes().all(|b| b.is_ascii_alphanumeric()), "{rid}");
    // A raw CR or LF inside the request target is a malformed request.
    for target in [&b"/oauth2/auth?state=a\rX-Injected:1"[..], b"/oauth2/auth?state=a\nX-Injected:1"] {
        let mut bytes = b"GET ".to_vec();
        bytes.extend_from_slice(target);
        bytes.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = raw(s.public, &bytes);
        assert_eq!(r.status, 400, "{}", r.text());
        assert_no_injected_header(&r, "raw target");
    }
}

/// Many idle, stalled and half-closed connections (a slowloris and a connection flood) do not
/// keep a real client waiting, and each of them is closed by the server once its timeout passes
/// (header timeout 1 s for a started head, idle timeout 2 s for a silent connection).
fn connection_flood_does_not_starve_real_clients(d: &str) {
    const N: usize = 600;
    let s = Opts::new(d).env("ENGINE_HEADER_TIMEOUT", "1s").env("ENGINE_IDLE_TIMEOUT", "2s").start();
    let (id, secret) = client(&s);
    let flooded_at = Instant::now();
    let mut conns = Vec::with_capacity(N);
    for i in 0..N {
        let mut st = TcpStream::connect_timeout(&s.public, Duration::from_secs(5)).expect("connect for the flood");
        match i % 3 {
            0 => {}
            1 => st.write_all(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Le").expect("partial head"),
            _ => {
                st.write_all(b"GET /health/alive HTTP/1.1\r\nHo").expect("partial head");
                st.shutdown(Shutdown::Write).expect("half-close");
            }
        }
        conns.push(st);
    }
    // A head trickled byte by byte, next to the flood.
    let addr = s.public;
    let trickle = std::thread::spawn(move || {
        let mut st = TcpStream::connect(addr).expect("connect");
        st.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let head = format!("GET /health/alive HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n", "p".repeat(100));
        let t = Instant::now();
        for b in head.bytes() {
            if st.write_all(&[b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut got = Vec::new();
        let _ = st.read_to_end(&mut got);
        (t.elapsed(), String::from_utf8_lossy(&got).into_owned())
    });
    // Real clients are answered promptly, again and again.
    for i in 0..5 {
        let t = Instant::now();
        Req::get("/health/alive").send(s.public).expect(200);
        let tok = token(&s, &id, &secret, &[]);
        assert!(tok["access_token"].is_string());
        let el = t.elapsed();
        assert!(el < Duration::from_secs(2), "round {i} under the flood took {el:?}");
    }
    // Every flood connection is closed by the server: the half-closed ones at once, the stalled
    // heads after the header timeout (with a 408 or nothing), the silent ones after the idle
    // timeout (with nothing).
    let deadline = flooded_at + Duration::from_secs(5);
    let mut open = Vec::new();
    for (i, mut st) in conns.into_iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(50));
        st.set_read_timeout(Some(left)).expect("timeout");
        let mut got = Vec::new();
        match st.read_to_end(&mut got) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(_) => open.push(i),
        }
        let text = String::from_utf8_lossy(&got);
        match i % 3 {
            0 => assert!(got.is_empty(), "a silent connection got an answer: {text}"),
            _ => assert!(got.is_empty() || text.starts_with("HTTP/1.1 408 "), "conn {i}: {text}"),
        }
    }
    assert!(
        open.is_empty(),
        "{} of {N} connections still open 5 s after the flood: {:?}",
        open.len(),
        &open[..open.len().min(10)]
    );
    let (took, answer) = trickle.join().expect("trickle thread");
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408 "), "the trickled head was served: {answer}");
    assert!(took < Duration::from_millis(2500), "the trickled head was cut after {took:?}");
    still_serves(&s);
}
