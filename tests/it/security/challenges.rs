//! Login and consent challenges and verifiers (Hydra's flow blobs) and their CSRF cookies:
//! tampering, truncation, expiry, use for another purpose, replay and races (RFC 6749 §10.12,
//! RFC 9700 §4.7; Hydra's `request_forbidden` / `request_unauthorized` semantics).
//!
//! Invariants checked: a challenge or verifier opens only intact, unexpired and for its own
//! purpose (admin API: `404`, `401 request_unauthorized`; browser: the error page or an error at
//! the client); a verifier is honoured only with the CSRF cookie of its own flow
//! (`request_forbidden`); a flow yields at most one code, however often or concurrently its
//! verifiers are replayed.

use super::*;
use crate::harness::*;
use serde_json::{json, Value};
use std::time::Duration;

#[test]
fn challenges_are_checked_for_csrf_tampering_purpose_and_reuse() {
    let s = api();
    let rp = rp(s, json!({}));
    let r = Req::get(&auth_path(&rp, &[])).send(s.public);
    let challenge = query_param(r.header("location").unwrap(), "login_challenge").unwrap();
    let csrf = set_cookie(&r);
    assert_eq!(csrf.len(), 1);
    let set = r.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("set-cookie")).unwrap().1.clone();
    assert!(set.contains("HttpOnly") && set.contains("Secure") && set.contains("SameSite=Lax"), "{set}");
    // Tampered, or presented for another purpose: 404.
    let mut t = challenge.clone();
    t.pop();
    t.push(if challenge.ends_with('A') { 'B' } else { 'A' });
    Req::get(&format!("/admin/oauth2/auth/requests/login?login_challenge={t}")).send(s.admin).expect(404);
    Req::get(&format!("/admin/oauth2/auth/requests/consent?consent_challenge={challenge}")).send(s.admin).expect(404);
    Req::get("/admin/oauth2/auth/requests/login").send(s.admin).expect(400);
    // Accept without a subject: 400.
    put_json(s, &format!("/admin/oauth2/auth/requests/login/accept?login_challenge={challenge}"), &json!({}))
        .expect(400);
    let a = put_json(
        s,
        &format!("/admin/oauth2/auth/requests/login/accept?login_challenge={challenge}"),
        &standard_login(),
    );
    let back = a.json()["redirect_to"].as_str().unwrap().to_string();
    // Without the CSRF cookie, or with another one: request_forbidden to the client.
    for cookie in [None, Some(format!("{}=forged", csrf[0].0))] {
        let mut req = Req::get(&local(&back));
        if let Some(c) = &cookie {
            req = req.header("Cookie", c);
        }
        let r = req.send(s.public);
        r.expect(302);
        assert_eq!(query_param(r.header("location").unwrap(), "error").as_deref(), Some("request_forbidden"));
    }

    // A consent verifier works once.
    let mut jar = Jar::default();
    let r = jar.get(s, &auth_path(&rp, &[]));
    jar.take(&r);
    let lc = query_param(r.header("location").unwrap(), "login_challenge").unwrap();
    let a = put_json(s, &format!("/admin/oauth2/auth/requests/login/accept?login_challenge={lc}"), &standard_login());
    let r = jar.get(s, &local(a.json()["redirect_to"].as_str().unwrap()));
    jar.take(&r);
    let cc = query_param(r.header("location").unwrap(), "consent_challenge").unwrap();
    let a =
        put_json(s, &format!("/admin/oauth2/auth/requests/consent/accept?consent_challenge={cc}"), &standard_consent());
    let back = local(a.json()["redirect_to"].as_str().unwrap());
    let first = jar.get(s, &back);
    assert!(query_param(first.header("location").unwrap(), "code").is_some());
    let again = jar.get(s, &back);
    again.expect(302);
    assert_eq!(query_param(again.header("location").unwrap(), "error").as_deref(), Some("invalid_request"));
    // The used flow's requests answer 410 with where to go.
    let g = Req::get(&format!("/admin/oauth2/auth/requests/consent?consent_challenge={cc}")).send(s.admin);
    g.expect(410);
    assert!(g.json()["redirect_to"].as_str().unwrap().contains("/oauth2/auth?"));
}

#[test]
fn expired_challenges_and_more_redirect_tricks() {
    let s = Opts::new("legacy").env("TTL_LOGIN_CONSENT_REQUEST", "1s").start();
    let c = rp(&s, json!({}));
    let r = Req::get(&auth_path(&c, &[])).send(s.public);
    let lc = query_param(r.header("location").unwrap(), "login_challenge").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    Req::get(&format!("/admin/oauth2/auth/requests/login?login_challenge={lc}"))
        .send(s.admin)
        .expect_error(401, "request_unauthorized");
    put_json(&s, &format!("/admin/oauth2/auth/requests/login/accept?login_challenge={lc}"), &standard_login())
        .expect(401);
    for bad in [
        "https://RP.example/cb",
        "https://rp.example/CB",
        "https://rp.example/cb#frag",
        "https://rp.example/c",
        "https://rp.example.evil/cb",
        "//rp.example/cb",
    ] {
        let r = Req::get(&auth_path(&c, &[("redirect_uri", bad)])).send(s.public);
        r.expect(302);
        let loc = r.header("location").unwrap();
        assert!(loc.contains("/oauth2/fallbacks/error?"), "{bad} → {loc}");
    }
}

/// Variants of a blob an attacker can make without the key: each character class flipped at the
/// start, middle and end, truncations, extensions.
fn mangled(blob: &str) -> Vec<(String, String)> {
    let flip = |i: usize| {
        let mut b = blob.as_bytes().to_vec();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).expect("ASCII blob")
    };
    let n = blob.len();
    vec![
        (flip(0), "first char changed".into()),
        (flip(n / 2), "middle char changed".into()),
        (flip(n - 1), "last char changed".into()),
        (blob[..n - 1].to_string(), "one char short".into()),
        (blob[..n / 2].to_string(), "half".into()),
        (blob[..16].to_string(), "16 chars".into()),
        (format!("{blob}A"), "one char more".into()),
        (format!("{blob}{blob}"), "doubled".into()),
        (format!("{blob}="), "padded".into()),
        (blob.replace('-', "+").replace('_', "/"), "standard base64 alphabet".into()),
        ("A".repeat(6000), "6000 chars".into()),
    ]
    .into_iter()
    .filter(|(m, _)| m != blob)
    .collect()
}

/// A tampered or truncated challenge is `404` at every admin endpoint that takes it; an empty one
/// is `400`. The intact challenge still works afterwards.
#[test]
fn tampered_and_truncated_challenges_are_not_found() {
    let s = api();
    let c = rp(s, json!({}));
    let mut jar = Jar::default();
    let lc = start(s, &mut jar, &c, &[]);
    let lv = accept_login(s, &lc, &standard_login());
    let cc = to_consent(s, &mut jar, &lv);
    for (step, challenge) in [("login", &lc), ("consent", &cc)] {
        for (bad, what) in mangled(challenge) {
            let q = format!("{step}_challenge={}", form_escape(&bad));
            let r = Req::get(&format!("/admin/oauth2/auth/requests/{step}?{q}")).send(s.admin);
            r.expect_json_error(404);
            for action in ["accept", "reject"] {
                let body = if step == "login" { standard_login() } else { standard_consent() };
                let r = put_json(s, &format!("/admin/oauth2/auth/requests/{step}/{action}?{q}"), &body);
                assert_eq!(r.status, 404, "{step}/{action} with {what}: {}", r.text());
            }
        }
        for q in [format!("{step}_challenge="), String::new()] {
            Req::get(&format!("/admin/oauth2/auth/requests/{step}?{q}")).send(s.admin).expect_json_error(400);
        }
    }
    Req::get(&format!("/admin/oauth2/auth/requests/consent?consent_challenge={}", form_escape(&cc)))
        .send(s.admin)
        .expect(200);
    let cv = accept_consent(s, &cc, &standard_consent());
    code_of(&location(&jar.get(s, &cv)));
}

/// A tampered or truncated verifier brought back by the browser goes to the error page (it cannot
/// be trusted to name a redirect URI), never yields a code, and does not burn the real one.
#[test]
fn tampered_verifiers_go_to_the_error_page() {
    let s = api();
    let c = rp(s, json!({}));
    let mut jar = Jar::default();
    let lc = start(s, &mut jar, &c, &[]);
    let lv = accept_login(s, &lc, &standard_login());
    let lv_blob = query_param(&lv, "login_verifier").expect("login_verifier");
    for (bad, what) in mangled(&lv_blob) {
        let r = jar.get(s, &format!("/oauth2/auth?login_verifier={}", form_escape(&bad)));
        assert_eq!(expect_error_page(s, &r, &what), "invalid_request", "login verifier, {what}");
    }
    let cc = to_consent(s, &mut jar, &lv);
    let cv = accept_consent(s, &cc, &standard_consent());
    let cv_blob = query_param(&cv, "consent_verifier").expect("consent_verifier");
    for (bad, what) in mangled(&cv_blob) {
        let r = jar.get(s, &format!("/oauth2/auth?consent_verifier={}", form_escape(&bad)));
        assert_eq!(expect_error_page(s, &r, &what), "invalid_request", "consent verifier, {what}");
    }
    let done = location(&jar.get(s, &cv));
    exchange(s, &c, &code_of(&done), Some(VERIFIER)).expect(200);
}

/// Each blob opens only for its own purpose: a login challenge is not a consent challenge, a
/// verifier is not a challenge, a consent verifier is not a login verifier, and so on.
#[test]
fn challenges_and_verifiers_open_only_for_their_own_purpose() {
    let s = api();
    let c = rp(s, json!({}));
    let mut jar = Jar::default();
    let lc = start(s, &mut jar, &c, &[]);
    let lv_url = accept_login(s, &lc, &standard_login());
    let lv = query_param(&lv_url, "login_verifier").expect("login_verifier");
    let cc = to_consent(s, &mut jar, &lv_url);
    let cv_url = accept_consent(s, &cc, &standard_consent());
    let cv = query_param(&cv_url, "consent_verifier").expect("consent_verifier");
    let blobs =
        [("login challenge", &lc), ("login verifier", &lv), ("consent challenge", &cc), ("consent verifier", &cv)];
    for (what, blob) in blobs {
        let e = form_escape(blob);
        if what != "login challenge" {
            Req::get(&format!("/admin/oauth2/auth/requests/login?login_challenge={e}")).send(s.admin).expect(404);
            Req::get(&format!("/admin/oauth2/auth/requests/login?challenge={e}")).send(s.admin).expect(404);
            let r = put_json(
                s,
                &format!("/admin/oauth2/auth/requests/login/accept?login_challenge={e}"),
                &standard_login(),
            );
            assert_eq!(r.status, 404, "{what} as login challenge: {}", r.text());
        }
        if what != "consent challenge" {
            Req::get(&format!("/admin/oauth2/auth/requests/consent?consent_challenge={e}")).send(s.admin).expect(404);
            let r = put_json(
                s,
                &format!("/admin/oauth2/auth/requests/consent/accept?consent_challenge={e}"),
                &standard_consent(),
            );
            assert_eq!(r.status, 404, "{what} as consent challenge: {}", r.text());
        }
        if what != "login verifier" {
            let r = jar.get(s, &format!("/oauth2/auth?login_verifier={e}"));
            expect_error_page(s, &r, &format!("{what} as login verifier"));
        }
        if what != "consent verifier" {
            let r = jar.get(s, &format!("/oauth2/auth?consent_verifier={e}"));
            expect_error_page(s, &r, &format!("{what} as consent verifier"));
        }
    }
    // A consent verifier for another client_id than its own is refused too.
    let r = jar.get(s, &format!("{cv_url}&client_id=another-client"));
    expect_error_page(s, &r, "consent verifier with another client_id");
    // After all that, the real consent verifier still yields the one code.
    code_of(&location(&jar.get(s, &cv_url)));
}

/// Replays: a login verifier used again after the flow finished, with its original CSRF cookie,
/// leads nowhere (the flow's requests are gone: 410); a consent verifier used again is an error at
/// the client. Either way there is no second code.
#[test]
fn replayed_verifiers_yield_no_second_code() {
    let s = api();
    let c = rp(s, json!({}));
    let mut jar = Jar::default();
    let lc = start(s, &mut jar, &c, &[]);
    let login_jar = jar.clone();
    let lv = accept_login(s, &lc, &standard_login());
    let cc = to_consent(s, &mut jar, &lv);
    let consent_jar = jar.clone();
    let cv = accept_consent(s, &cc, &standard_consent());
    let first = location(&jar.get(s, &cv));
    let code = code_of(&first);
    // The consent verifier again, with its cookie.
    let r = consent_jar.get(s, &cv);
    let loc = expect_client_error(&r, "invalid_request");
    assert_eq!(query_param(&loc, "state").as_deref(), Some("state-0123456789"), "{loc}");
    // The login verifier again, with its cookie: whatever comes back, no code.
    let mut replay = login_jar.clone();
    let r = replay.get(s, &lv);
    replay.take(&r);
    let loc = location(&r);
    assert!(query_param(&loc, "code").is_none(), "{loc}");
    if let Some(cc2) = query_param(&loc, "consent_challenge") {
        let g = Req::get(&format!("/admin/oauth2/auth/requests/consent?consent_challenge={}", form_escape(&cc2)))
            .send(s.admin);
        g.expect(410);
        let a = put_json(
            s,
            &format!("/admin/oauth2/auth/requests/consent/accept?consent_challenge={}", form_escape(&cc2)),
            &standard_consent(),
        );
        assert_eq!(a.status, 410, "a finished flow cannot be consented again: {}", a.text());
    }
    // The login challenge of the finished flow: 410 with where to start over.
    let g = Req::get(&format!("/admin/oauth2/auth/requests/login?login_challenge={}", form_escape(&lc))).send(s.admin);
    g.expect(410);
    assert!(field(&g.json(), "redirect_to").contains("/oauth2/auth?"), "{}", g.text());
    // The one code works (once).
    exchange(s, &c, &code, Some(VERIFIER)).expect(200);
}

/// The same consent verifier followed by eight browsers at once: exactly one code.
#[test]
fn a_raced_consent_verifier_yields_exactly_one_code() {
    let s = api();
    let c = rp(s, json!({}));
    let mut jar = Jar::default();
    let cv = up_to_consent_verifier(s, &mut jar, &c, &[]);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let cookie = jar.header();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (cv, cookie, barrier, addr) = (cv.clone(), cookie.clone(), barrier.clone(), s.public);
            std::thread::spawn(move || {
                let req = Req::get(&cv).header("Cookie", &cookie);
                barrier.wait();
                req.send(addr)
            })
        })
        .collect();
    let answers: Vec<String> =
        handles.into_iter().map(|h| location(&h.join().expect("racing browser thread"))).collect();
    let codes: Vec<&String> = answers.iter().filter(|l| query_param(l, "code").is_some()).collect();
    assert_eq!(codes.len(), 1, "{answers:#?}");
    for l in answers.iter().filter(|l| query_param(l, "code").is_none()) {
        assert!(l.starts_with(CB) && query_param(l, "error").is_some(), "{l}");
    }
}

/// The CSRF cookie binds each verifier to the browser that started the flow. Missing, from
/// another flow of the same client, of another client, or altered: `request_forbidden` at the
/// client, never a code; and the refused attempts do not burn the real verifier.
#[test]
fn verifiers_without_their_own_csrf_cookie_are_forbidden() {
    let s = api();
    let c = rp(s, json!({}));
    let d = rp(s, json!({}));
    // Other browsers with flows of their own, for foreign cookies.
    let mut other_same = Jar::default();
    let other_lc = start(s, &mut other_same, &c, &[]);
    let other_login = other_same.clone();
    let other_lv = accept_login(s, &other_lc, &standard_login());
    let _ = to_consent(s, &mut other_same, &other_lv);
    let mut other_client = Jar::default();
    let d_lc = start(s, &mut other_client, &d, &[]);
    let d_lv = accept_login(s, &d_lc, &standard_login());
    let _ = to_consent(s, &mut other_client, &d_lv);

    let mut jar = Jar::default();
    let lc = start(s, &mut jar, &c, &[]);
    let lv = accept_login(s, &lc, &standard_login());
    let check = |own: &Jar, foreign: &Jar, leg: &str, url: &str| {
        let name = &own.0.iter().find(|(k, _)| k.contains(&format!("_{leg}_csrf"))).expect("own CSRF cookie").0;
        let own_value = &own.0.iter().find(|(k, _)| k == name).expect("own value").1;
        let foreign_same_name =
            foreign.0.iter().find(|(k, _)| k == name).map(|(_, v)| format!("{name}={v}")).expect("foreign cookie");
        let mut altered = own_value.clone();
        let last = altered.pop().expect("non-empty cookie");
        altered.push(if last == 'a' { 'b' } else { 'a' });
        let cookies: Vec<(Option<String>, &str)> = vec![
            (None, "no cookie"),
            (Some(foreign_same_name), "another flow's cookie"),
            (Some(other_client.header()), "another client's cookies"),
            (Some(format!("{name}={altered}")), "altered cookie"),
            (Some(format!("{name}=")), "empty cookie"),
            (Some(format!("{name}={own_value}{own_value}")), "cookie doubled"),
        ];
        for (cookie, what) in cookies {
            let mut req = Req::get(url);
            if let Some(h) = &cookie {
                req = req.header("Cookie", h);
            }
            let r = req.send(s.public);
            let loc = expect_client_error(&r, "request_forbidden");
            assert_eq!(query_param(&loc, "state").as_deref(), Some("state-0123456789"), "{leg}, {what}: {loc}");
        }
    };
    check(&jar, &other_login, "login", &lv);
    let cc = to_consent(s, &mut jar, &lv);
    let cv = accept_consent(s, &cc, &standard_consent());
    check(&jar, &other_same, "consent", &cv);
    // The real browser still finishes its flow.
    let done = location(&jar.get(s, &cv));
    exchange(s, &c, &code_of(&done), Some(VERIFIER)).expect(200);
}

/// With `ttl.login_consent_request` of 1 s, every leg of a flow expires: the admin API answers
/// `401 request_unauthorized`, the browser legs send `request_unauthorized` to the client, and no
/// code is issued.
#[test]
fn expired_flows_yield_no_code() {
    let s = Opts::new("io_uring").env("TTL_LOGIN_CONSENT_REQUEST", "1s").start();
    let c = rp(&s, json!({}));
    // Three flows stopped at different legs.
    let mut at_login_verifier = Jar::default();
    let lc = start(&s, &mut at_login_verifier, &c, &[]);
    let lv = accept_login(&s, &lc, &standard_login());
    let mut at_consent_challenge = Jar::default();
    let lc2 = start(&s, &mut at_consent_challenge, &c, &[]);
    let lv2 = accept_login(&s, &lc2, &standard_login());
    let cc = to_consent(&s, &mut at_consent_challenge, &lv2);
    let mut at_consent_verifier = Jar::default();
    let cv = up_to_consent_verifier(&s, &mut at_consent_verifier, &c, &[]);
    std::thread::sleep(Duration::from_millis(2100));

    let expect_expired = |r: &Response, what: &str| {
        let loc = expect_client_error(r, "request_unauthorized");
        assert_eq!(query_param(&loc, "state").as_deref(), Some("state-0123456789"), "{what}: {loc}");
    };
    expect_expired(&at_login_verifier.get(&s, &lv), "login verifier");
    let q = format!("consent_challenge={}", form_escape(&cc));
    Req::get(&format!("/admin/oauth2/auth/requests/consent?{q}"))
        .send(s.admin)
        .expect_error(401, "request_unauthorized");
    for action in ["accept", "reject"] {
        let r = put_json(&s, &format!("/admin/oauth2/auth/requests/consent/{action}?{q}"), &standard_consent());
        r.expect_error(401, "request_unauthorized");
    }
    expect_expired(&at_consent_verifier.get(&s, &cv), "consent verifier");
    let v: Value = Req::get("/health/alive").send(s.public).json();
    assert_eq!(v["status"], "ok");
}

/// Once the browser brought a verifier back, its request was handled: `GET` of the login (or
/// consent) request answers `410` with where to go, as Hydra; the verifier itself works once.
#[test]
fn handled_requests_answer_410_once_their_verifier_was_used() {
    let s = api();
    let c = rp(s, json!({}));
    let mut jar = Jar::default();
    let lc = start(s, &mut jar, &c, &[]);
    let get_login = || Req::get(&format!("/admin/oauth2/auth/requests/login?login_challenge={}", form_escape(&lc)));
    get_login().send(s.admin).expect(200);
    let lv = accept_login(s, &lc, &standard_login());
    // Accepted but the verifier not yet back: still 200 (the login app may read it again).
    get_login().send(s.admin).expect(200);
    let replay = jar.clone();
    let cc = to_consent(s, &mut jar, &lv);
    let g = get_login().send(s.admin);
    g.expect(410);
    assert!(field(&g.json(), "redirect_to").contains("/oauth2/auth?"), "{}", g.text());
    // The login verifier a second time: an error at the client, no second consent challenge.
    let r = replay.get(s, &lv);
    let loc = expect_client_error(&r, "invalid_request");
    assert!(query_param(&loc, "consent_challenge").is_none(), "{loc}");

    // A rejected consent: once its verifier came back, its request answers 410 too.
    let get_consent =
        || Req::get(&format!("/admin/oauth2/auth/requests/consent?consent_challenge={}", form_escape(&cc)));
    get_consent().send(s.admin).expect(200);
    let a = put_json(
        s,
        &format!("/admin/oauth2/auth/requests/consent/reject?consent_challenge={}", form_escape(&cc)),
        &json!({"error": "access_denied"}),
    );
    let cv = local(&redirect_to(&a));
    get_consent().send(s.admin).expect(200);
    expect_client_error(&jar.get(s, &cv), "access_denied");
    get_consent().send(s.admin).expect(410);
    // A rejected login, likewise.
    let mut jar = Jar::default();
    let lc = start(s, &mut jar, &c, &[]);
    let a = put_json(
        s,
        &format!("/admin/oauth2/auth/requests/login/reject?login_challenge={}", form_escape(&lc)),
        &json!({"error": "access_denied"}),
    );
    expect_client_error(&jar.get(s, &local(&redirect_to(&a))), "access_denied");
    Req::get(&format!("/admin/oauth2/auth/requests/login?login_challenge={}", form_escape(&lc)))
        .send(s.admin)
        .expect(410);
}
