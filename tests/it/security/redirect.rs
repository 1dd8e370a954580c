//! Redirect URI matching and open-redirect tricks (RFC 6749 §3.1.2, §4.1.2.1, §10.6, §10.15;
//! RFC 9700 §2.1, §4.1; RFC 8252 §7.3).
//!
//! Invariants checked: the redirect URI must equal a registered one character for character (only
//! the port of an `http://127.0.0.1` or `http://[::1]` registration may differ); until it is
//! validated, every error goes to the server's own error page, never to the presented URI; a
//! code is delivered only to a validated URI.

use super::*;
use crate::harness::*;
use serde_json::json;

#[test]
fn authorization_errors_never_redirect_to_unvalidated_uris() {
    let s = api();
    let rp = rp(s, json!({}));
    for path in [
        auth_path(&Rp { id: "no-such-client".into(), secret: String::new() }, &[]),
        auth_path(&rp, &[("redirect_uri", "https://evil.example/cb")]),
        auth_path(&rp, &[("redirect_uri", "https://rp.example/cb/")]),
        auth_path(&rp, &[("redirect_uri", "https://rp.example/cb?x=1")]),
        auth_path(&rp, &[("redirect_uri", "https://rp.example@evil.example/cb")]),
    ] {
        let r = Req::get(&path).send(s.public);
        r.expect(302);
        let loc = r.header("location").unwrap();
        assert!(loc.contains("/oauth2/fallbacks/error?"), "{path} → {loc}");
        assert!(!loc.contains("evil.example/cb?"), "{loc}");
    }
    // After the redirect URI is validated, errors go to the client with state and iss.
    for (extra, error) in [
        (vec![("state", "short")], "invalid_state"),
        (vec![("response_type", "code code")], "unsupported_response_type"),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("scope", "openid admin")], "invalid_scope"),
        (vec![("prompt", "none")], "login_required"),
    ] {
        let r = Req::get(&auth_path(&rp, &extra)).send(s.public);
        r.expect(302);
        let loc = r.header("location").unwrap();
        assert!(loc.starts_with(&format!("{CB}?")), "{loc}");
        assert_eq!(query_param(loc, "error").as_deref(), Some(error), "{loc}");
    }
    // A response type the client did not register that would carry a token: refused in the
    // fragment, where its tokens would have gone, never the query.
    let loc = location(&Req::get(&auth_path(&rp, &[("response_type", "token")])).send(s.public));
    assert!(loc.starts_with(&format!("{CB}#error=unauthorized_client&")), "{loc}");
    // The error page escapes what it shows.
    let r = Req::get("/oauth2/fallbacks/error?error=%3Cscript%3E&error_description=%22x").send(s.public);
    r.expect(200);
    assert!(r.text().contains("&lt;script&gt;") && !r.text().contains("<script>"), "{}", r.text());
}

/// Every near miss of `https://rp.example/cb` is refused before a flow starts: no redirect to the
/// presented URI, no CSRF cookie, the error page instead.
#[test]
fn redirect_uri_must_match_exactly() {
    let s = api();
    let c = rp(s, json!({}));
    let near_misses = [
        // prefix / suffix / path
        "https://rp.example/cb/extra",
        "https://rp.example/cbx",
        "https://rp.example/c",
        "https://rp.example/",
        "https://rp.example",
        "https://rp.example/cb/",
        "https://rp.example//cb",
        "https://rp.example/cb/.",
        // path traversal and encodings that a normalizer could fold into /cb
        "https://rp.example/cb/../cb",
        "https://rp.example/x/../cb",
        "https://rp.example/cb/%2e%2e/evil",
        "https://rp.example/%63b",
        "https://rp.example/cb%2F",
        "https://rp.example/cb%00",
        "https://rp.example/cb;x=1",
        // case
        "HTTPS://rp.example/cb",
        "https://RP.EXAMPLE/cb",
        "https://rp.example/Cb",
        // query and fragment
        "https://rp.example/cb?",
        "https://rp.example/cb?next=https://evil.example",
        "https://rp.example/cb#",
        "https://rp.example/cb#https://evil.example",
        // userinfo
        "https://rp.example@evil.example/cb",
        "https://evil.example@rp.example/cb",
        "https://rp.example:@evil.example/cb",
        "https://rp.example%40evil.example/cb",
        // ports, hosts, schemes
        "https://rp.example:443/cb",
        "https://rp.example:8443/cb",
        "http://rp.example/cb",
        "https://rp.example./cb",
        "https://rp.example.evil.example/cb",
        "https://evil.example/cb",
        "https://evil.example/https://rp.example/cb",
        "//evil.example/cb",
        "https:rp.example/cb",
        "https:/rp.example/cb",
        "https://rp.example\\@evil.example/cb",
        "https://rp.example/cb\t",
        " https://rp.example/cb",
        "https://rp.example/cb ",
        "/cb",
        "cb",
    ];
    for bad in near_misses {
        for method in ["GET", "POST"] {
            let r = if method == "GET" {
                Req::get(&auth_path(&c, &[("redirect_uri", bad)])).send(s.public)
            } else {
                let path = auth_path(&c, &[("redirect_uri", bad)]);
                let body = path.split_once('?').expect("query").1.to_string();
                Req::new("POST", "/oauth2/auth").raw_form(body.as_bytes()).send(s.public)
            };
            let error = expect_error_page(s, &r, &format!("{method} {bad:?}"));
            assert_eq!(error, "invalid_request", "{method} {bad:?}");
            assert!(set_cookie(&r).is_empty(), "{method} {bad:?}: no flow, so no CSRF cookie: {:?}", r.headers);
        }
    }
    // The exact URI starts a flow (control).
    let r = Req::get(&auth_path(&c, &[("redirect_uri", CB)])).send(s.public);
    assert!(location(&r).contains("/oauth2/fallbacks/login?login_challenge="), "{:?}", r.header("location"));
    // A registered query is part of the exact string: it must be repeated, and nothing added.
    let q = rp(s, json!({"redirect_uris": ["https://rp.example/cb?tenant=1"]}));
    for bad in ["https://rp.example/cb", "https://rp.example/cb?tenant=1&x=2", "https://rp.example/cb?tenant=2"] {
        let r = Req::get(&auth_path(&q, &[("redirect_uri", bad)])).send(s.public);
        expect_error_page(s, &r, bad);
    }
    let done =
        run_flow(s, &q, &[("redirect_uri", "https://rp.example/cb?tenant=1")], &standard_login(), &standard_consent());
    assert!(done.starts_with("https://rp.example/cb?tenant=1&code="), "{done}");
}

/// RFC 8252 §7.3: a native app on `http://127.0.0.1` or `http://[::1]` may listen on any port;
/// nothing else about the URI may change, and `localhost` gets no such leeway (RFC 8252 §8.3).
#[test]
fn loopback_redirects_may_change_only_the_port() {
    let s = api();
    let c = rp(
        s,
        json!({"redirect_uris": ["http://127.0.0.1:8080/cb", "http://[::1]:8080/cb", "http://localhost:8080/cb"]}),
    );
    for good in ["http://127.0.0.1:9999/cb", "http://127.0.0.1/cb", "http://[::1]:51234/cb", "http://localhost:8080/cb"]
    {
        let r = Req::get(&auth_path(&c, &[("redirect_uri", good)])).send(s.public);
        assert!(location(&r).contains("login_challenge="), "{good}: {:?}", r.header("location"));
    }
    for bad in [
        "http://localhost:9999/cb",
        "https://127.0.0.1:9999/cb",
        "http://127.0.0.1:9999/cb2",
        "http://127.0.0.1:9999/cb/",
        "http://127.0.0.1:9999/cb?x=1",
        "http://127.0.0.1:9999/cb#x",
        "http://x@127.0.0.1:9999/cb",
        "http://127.0.0.2:8080/cb",
        "http://127.0.0.1.evil.example:8080/cb",
        "http://127.0.0.1:8080.evil.example/cb",
        "http://127.0.0.1:0/cb",
        "http://127.0.0.1:65536/cb",
        "http://127.0.0.1:/cb",
        "http://127.0.0.1:+80/cb",
        "http://[::1]:9999/CB",
        "http://[::ffff:127.0.0.1]:9999/cb",
        "http://2130706433:9999/cb",
    ] {
        let r = Req::get(&auth_path(&c, &[("redirect_uri", bad)])).send(s.public);
        expect_error_page(s, &r, bad);
    }
    // The code goes to the port asked for, and the token request must name that same URI.
    let uri = "http://127.0.0.1:9999/cb";
    let done = run_flow(s, &c, &[("redirect_uri", uri)], &standard_login(), &standard_consent());
    assert!(done.starts_with(&format!("{uri}?")), "{done}");
    let code = code_of(&done);
    let ex = |redirect: &str| {
        Req::new("POST", "/oauth2/token")
            .basic(&c.id, &c.secret)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", VERIFIER),
            ])
            .send(s.public)
    };
    ex("http://127.0.0.1:8080/cb").expect_error(400, "invalid_grant");
    ex(uri).expect(200);
}

/// Unknown, missing or ambiguous clients and redirect URIs: the error page, whatever else the
/// request says (RFC 6749 §4.1.2.1: "MUST NOT automatically redirect the user-agent to the
/// invalid redirection URI").
#[test]
fn unknown_clients_and_unresolvable_redirects_never_leave_the_server() {
    let s = api();
    let evil = "https://evil.example/cb";
    let two = rp(s, json!({"redirect_uris": [CB, "https://rp.example/other"]}));
    let none = rp(s, json!({"redirect_uris": []}));
    let (cc, _) = cc_client(s, "a");
    let cc = Rp { id: cc, secret: String::new() };
    let cases: Vec<(String, &str)> = vec![
        (
            auth_path(&Rp { id: "no-such-client".into(), secret: String::new() }, &[("redirect_uri", evil)]),
            "unknown client",
        ),
        (
            auth_path(&Rp { id: "no-such-client".into(), secret: String::new() }, &[("prompt", "none")]),
            "unknown client, prompt=none",
        ),
        (auth_path(&Rp { id: String::new(), secret: String::new() }, &[("redirect_uri", evil)]), "no client_id"),
        (auth_path(&two, &[("redirect_uri", "")]), "two registered, none given"),
        (auth_path(&none, &[("redirect_uri", "")]), "none registered, none given"),
        (auth_path(&none, &[("redirect_uri", evil)]), "none registered"),
        (auth_path(&cc, &[("redirect_uri", evil)]), "client_credentials client"),
        (auth_path(&two, &[("redirect_uri", evil), ("response_type", "token")]), "bad response_type too"),
        (auth_path(&two, &[("redirect_uri", evil), ("response_mode", "form_post")]), "form_post"),
    ];
    for (path, what) in cases {
        let r = Req::get(&path).send(s.public);
        let loc = location(&r);
        assert!(!loc.contains("evil.example"), "{what}: {loc}");
        expect_error_page(s, &r, what);
    }
    // With the one registered URI implied, errors do go to it (it is validated).
    let one = rp(s, json!({}));
    let r = Req::get(&auth_path(&one, &[("redirect_uri", ""), ("state", "short")])).send(s.public);
    expect_client_error(&r, "invalid_state");
}

/// RFC 6749 §3.1: parameters MUST NOT be included more than once; a repeated `redirect_uri` (or
/// `client_id`) is refused on the error page, never resolved by picking one of them.
#[test]
fn duplicated_parameters_go_to_the_error_page() {
    let s = api();
    let c = rp(s, json!({}));
    let base = auth_path(&c, &[]);
    let evil = form_escape("https://evil.example/cb");
    let cb = form_escape(CB);
    for (extra, what) in [
        (format!("&redirect_uri={evil}"), "registered, then evil"),
        (format!("&redirect_uri={cb}"), "registered twice"),
        (format!("&client_id={}", form_escape(&c.id)), "client_id twice"),
        ("&client_id=no-such-client".to_string(), "another client_id"),
        ("&state=another-state-123".to_string(), "state twice"),
        ("&response_type=code".to_string(), "response_type twice"),
    ] {
        let r = Req::get(&format!("{base}{extra}")).send(s.public);
        let loc = location(&r);
        assert!(!loc.contains("evil.example") && !loc.starts_with(CB), "{what}: {loc}");
        assert_eq!(expect_error_page(s, &r, what), "invalid_request", "{what}");
    }
    // Evil first, registered second: the same.
    let first = format!("/oauth2/auth?redirect_uri={evil}&{}", base.split_once('?').expect("query").1);
    let r = Req::get(&first).send(s.public);
    expect_error_page(s, &r, "evil, then registered");
}

/// `javascript:` and `data:` redirect URIs: never a code or an error delivered to one. Unregistered
/// they go to the error page like any other URI; registering one must be refused, and if one is
/// registered anyway the authorization endpoint must still not hand the browser to it (with
/// `form_post`, `<form action="javascript:…">` runs script in this server's origin).
#[test]
fn script_and_data_uris_never_receive_anything() {
    let s = api();
    let c = rp(s, json!({}));
    let dangerous = [
        "javascript:alert(document.domain)",
        "JavaScript://rp.example/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "vbscript:msgbox(1)",
    ];
    for uri in dangerous {
        let r = Req::get(&auth_path(&c, &[("redirect_uri", uri)])).send(s.public);
        expect_error_page(s, &r, uri);
    }
    let mut failures = Vec::new();
    for uri in dangerous {
        let r = Req::new("POST", "/admin/clients")
            .json(&json!({
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "redirect_uris": [uri],
                "scope": "openid offline_access",
            }))
            .send(s.admin);
        if r.status != 201 {
            r.expect_error(400, "invalid_redirect_uri");
            continue;
        }
        // Registered anyway: the authorization endpoint is the last line of defence.
        let d = Rp { id: field(&r.json(), "client_id"), secret: field(&r.json(), "client_secret") };
        let describe = |r: &Response| match r.header("location") {
            Some(l) => format!("{} Location: {l}", r.status),
            None => format!("{} {}", r.status, r.text().chars().take(400).collect::<String>()),
        };
        for mode in ["query", "form_post"] {
            // An error once the URI counts as validated (prompt=none without a session).
            let r = Req::get(&auth_path(&d, &[("redirect_uri", uri), ("response_mode", mode), ("prompt", "none")]))
                .send(s.public);
            if !(r.status == 302 && location(&r).starts_with(&error_page(s))) {
                failures.push(format!("{uri} ({mode}): an error was delivered to it: {}", describe(&r)));
            }
            // A regular request.
            let r = Req::get(&auth_path(&d, &[("redirect_uri", uri), ("response_mode", mode)])).send(s.public);
            let loc = r.header("location").unwrap_or("").to_string();
            if r.status == 302 && loc.starts_with(&error_page(s)) {
                continue;
            }
            if !loc.contains("login_challenge=") {
                failures.push(format!("{uri} ({mode}): {}", describe(&r)));
                continue;
            }
            // The flow started: see where the browser would end up.
            let mut jar = Jar::default();
            let lc = start(s, &mut jar, &d, &[("redirect_uri", uri), ("response_mode", mode)]);
            let lv = accept_login(s, &lc, &standard_login());
            let cc = to_consent(s, &mut jar, &lv);
            let cv = accept_consent(s, &cc, &json!({"grant_scope": ["openid"]}));
            failures.push(format!("{uri} ({mode}): the code was delivered to it: {}", describe(&jar.get(s, &cv))));
        }
    }
    assert!(failures.is_empty(), "dangerous redirect URIs reached the browser:\n{}", failures.join("\n"));
}

/// RFC 6749 §3.1.2.1 (the redirection endpoint SHOULD require TLS), RFC 9700 §2.1, and what Hydra
/// does outside `--dev` (fosite's `IsRedirectURISecure` at the authorization endpoint): a code is
/// sent over plain `http` only to a loopback or `localhost` host. An `http` URI elsewhere, even
/// when registered, goes to the error page before a flow starts. Private-use schemes of native
/// apps (RFC 8252 §7.1) are fine.
#[test]
fn plain_http_redirects_go_only_to_loopback_hosts() {
    let s = api();
    let insecure = ["http://rp.example/cb", "http://10.0.0.1/cb", "http://rp.localhost.evil.example/cb"];
    let fine = [
        "http://127.0.0.1:8080/cb",
        "http://[::1]:8080/cb",
        "http://localhost/cb",
        "http://app.localhost/cb",
        "com.example.app:/cb",
    ];
    let uris: Vec<&str> = insecure.iter().chain(fine.iter()).copied().collect();
    let c = rp(s, json!({"redirect_uris": uris}));
    for uri in insecure {
        let r = Req::get(&auth_path(&c, &[("redirect_uri", uri)])).send(s.public);
        let loc = r.header("location").unwrap_or("");
        assert!(
            r.status == 302 && loc.starts_with(&error_page(s)),
            "{uri}: a code must not travel over plain http to a remote host; got {} {loc}",
            r.status
        );
        assert!(set_cookie(&r).is_empty(), "{uri}: no flow: {:?}", r.headers);
    }
    for uri in fine {
        let r = Req::get(&auth_path(&c, &[("redirect_uri", uri)])).send(s.public);
        assert!(location(&r).contains("login_challenge="), "{uri}: {:?}", r.header("location"));
    }
}

/// A redirect URI is registered only when absolute with a valid host: a wildcard host is a
/// pattern no exact match can honour, and `https://` has no host at all.
#[test]
fn registration_refuses_wildcard_and_hostless_redirect_uris() {
    let s = api();
    for uri in ["https://*.example.com/cb", "https://", "https:///cb", "https://a..example/cb", "http://*/cb"] {
        let r = Req::new("POST", "/admin/clients").json(&json!({"redirect_uris": [uri]})).send(s.admin);
        r.expect_error(400, "invalid_redirect_uri");
    }
    let c = create_client(s, &json!({"redirect_uris": ["https://app.example.com/cb", "com.example.app:/oauth"]}));
    assert_eq!(c["redirect_uris"], json!(["https://app.example.com/cb", "com.example.app:/oauth"]));
}
