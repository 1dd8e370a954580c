//! The device authorization grant (RFC 8628): a device asks, a browser enters the user code,
//! logs in and consents, the device polls and gets its tokens once; and every way it can go
//! wrong: polling too fast, expired and reused device codes, guessed and reused user codes,
//! replayed verifiers, missing CSRF cookies, refusals. Runs on both backends.

use crate::browser::*;
use crate::harness::*;
use serde_json::{json, Value};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A public device client (auth method `none`), or a confidential one when `secret`.
fn device_client(s: &Server, secret: bool) -> Rp {
    let mut body = json!({
        "grant_types": [GRANT, "refresh_token"],
        "scope": "openid offline_access profile",
        "audience": ["https://api.example"],
    });
    if !secret {
        body["token_endpoint_auth_method"] = json!("none");
    }
    let c = create_client(s, &body);
    Rp { id: field(&c, "client_id"), secret: c["client_secret"].as_str().unwrap_or("").into() }
}

fn ask(s: &Server, rp: &Rp, pairs: &[(&str, &str)]) -> Response {
    let mut p = vec![("client_id", rp.id.as_str())];
    p.extend_from_slice(pairs);
    let mut req = Req::new("POST", "/oauth2/device/auth").form(&p);
    if !rp.secret.is_empty() {
        req = req.basic(&rp.id, &rp.secret);
    }
    req.send(s.public)
}

/// A fresh device authorization; asserts 200 and returns the answer.
#[track_caller]
fn device_auth(s: &Server, rp: &Rp, scope: &str) -> Value {
    let r = ask(s, rp, &[("scope", scope)]);
    r.expect(200);
    r.assert_no_store();
    r.json()
}

fn poll(s: &Server, rp: &Rp, device_code: &str) -> Response {
    let p = [("grant_type", GRANT), ("device_code", device_code), ("client_id", rp.id.as_str())];
    let mut req = Req::new("POST", "/oauth2/token").form(&p);
    if !rp.secret.is_empty() {
        req = req.basic(&rp.id, &rp.secret);
    }
    req.send(s.public)
}

/// The browser opens `verification_uri_complete` (or the plain URI): returns the challenge the
/// verification page gets (the jar keeps the device CSRF cookie).
#[track_caller]
fn open_page(s: &Server, jar: &mut Jar, uri: &str) -> String {
    let r = jar.get(s, &local(uri));
    jar.take(&r);
    let loc = location(&r);
    assert!(loc.contains("/oauth2/fallbacks/device?"), "{loc}");
    query_param(&loc, "device_challenge").unwrap_or_else(|| panic!("no device challenge: {loc}"))
}

fn accept_code(s: &Server, challenge: &str, user_code: &str) -> Response {
    let path = format!("/admin/oauth2/auth/requests/device/accept?device_challenge={}", form_escape(challenge));
    put_json(s, &path, &json!({ "user_code": user_code }))
}

/// From a device answer to the login challenge: page, user code accepted, verifier followed.
#[track_caller]
fn to_login(s: &Server, jar: &mut Jar, dev: &Value) -> String {
    let ch = open_page(s, jar, &field(dev, "verification_uri"));
    let v = local(&redirect_to(&accept_code(s, &ch, &field(dev, "user_code"))));
    let r = jar.get(s, &v);
    jar.take(&r);
    let loc = location(&r);
    query_param(&loc, "login_challenge").unwrap_or_else(|| panic!("no login challenge: {loc} {}", r.text()))
}

/// The whole browser side; returns the final redirect.
#[track_caller]
fn approve(s: &Server, dev: &Value, consent: &Value) -> String {
    let mut jar = Jar::default();
    let lc = to_login(s, &mut jar, dev);
    let lv = accept_login(s, &lc, &standard_login());
    assert!(lv.starts_with("/oauth2/device/verify?"), "{lv}");
    let cc = to_consent(s, &mut jar, &lv);
    let cv = accept_consent(s, &cc, consent);
    assert!(cv.starts_with("/oauth2/device/verify?"), "{cv}");
    let r = jar.get(s, &cv);
    location(&r)
}

#[test]
fn a_device_gets_its_tokens_once_after_the_user_consents() {
    let s = api();
    let rp = device_client(s, false);
    let dev = device_auth(s, &rp, "openid offline_access");
    let dc = field(&dev, "device_code");
    assert!(dc.starts_with("ory_dc_"), "{dc}");
    let uc = field(&dev, "user_code");
    assert_eq!(uc.len(), 8);
    assert!(uc.chars().all(|c| "abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY34679".contains(c)), "{uc}");
    let uri = field(&dev, "verification_uri");
    assert!(uri.ends_with("/oauth2/device/verify"), "{uri}");
    assert_eq!(field(&dev, "verification_uri_complete"), format!("{uri}?user_code={uc}"));
    assert_eq!(dev["interval"], 5);
    let e = dev["expires_in"].as_i64().unwrap();
    assert!((590..=600).contains(&e), "{e}");

    // Before the user: pending, and polling again at once is too fast.
    poll(s, &rp, &dc).expect_error(400, "authorization_pending");
    poll(s, &rp, &dc).expect_error(400, "slow_down");

    // The browser: the complete URI carries the user code to the verification page.
    let mut jar = Jar::default();
    let r = jar.get(s, &local(&field(&dev, "verification_uri_complete")));
    jar.take(&r);
    let loc = location(&r);
    assert_eq!(query_param(&loc, "user_code").as_deref(), Some(uc.as_str()), "{loc}");
    assert!(set_cookie(&r).iter().any(|(k, _)| k.starts_with("ory_hydra_device_csrf")), "{:?}", r.headers);

    let mut remembered = standard_consent();
    remembered["remember"] = json!(true);
    let done = approve(s, &dev, &remembered);
    assert!(done.contains("/oauth2/fallbacks/device/done?client_id="), "{done}");
    assert_eq!(query_param(&done, "client_id").as_deref(), Some(rp.id.as_str()));
    let page = Req::get(&local(&done)).send(s.public);
    page.expect(200);
    assert!(page.text().contains("successfully authenticated"), "{}", page.text());

    let r = poll(s, &rp, &dc);
    r.expect(200);
    r.assert_no_store();
    let t = r.json();
    assert_eq!(t["scope"], "openid offline_access");
    let at = field(&t, "access_token");
    let rt = field(&t, "refresh_token");
    let claims: Value = serde_json::from_str(&jwt_payload(&field(&t, "id_token"))).unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], json!([rp.id]));
    assert_eq!(claims["email"], "alice@example.com");
    assert!(claims["sid"].is_string() && claims.get("nonce").is_none(), "{claims}");
    let i = introspect(s, &at);
    assert_eq!(i["active"], true);
    assert_eq!(i["sub"], "alice");
    assert_eq!(i["client_id"], rp.id.as_str());
    assert_eq!(i["ext"]["tier"], "gold");

    // Userinfo reads the grant the device code became.
    let u = Req::get("/userinfo").header("Authorization", &format!("Bearer {at}")).send(s.public);
    u.expect(200);
    assert_eq!(u.json()["email"], "alice@example.com");

    // The refresh token rotates like any other.
    let p = [("grant_type", "refresh_token"), ("refresh_token", rt.as_str()), ("client_id", rp.id.as_str())];
    let r2 = Req::new("POST", "/oauth2/token").form(&p).send(s.public);
    r2.expect(200);
    let at2 = field(&r2.json(), "access_token");
    assert!(is_active(s, &at2));

    // The device code is spent; presenting it again revokes what it bought.
    poll(s, &rp, &dc).expect_error(400, "invalid_grant");
    assert!(!is_active(s, &at2), "a replayed device code revokes its grant");

    // The consent is listed like any other.
    let l = Req::get("/admin/oauth2/auth/sessions/consent?subject=alice").send(s.admin);
    l.expect(200);
    assert!(l.text().contains(&rp.id), "{}", l.text());
    // A remembered consent never stands in for a public client's device flow (anyone can show
    // a user a code): the consent app is asked again (`approve` fails without a consent page).
    let dev2 = device_auth(s, &rp, "openid");
    assert!(approve(s, &dev2, &standard_consent()).contains("device/done"));
}

#[test]
fn discovery_lists_the_device_endpoint_and_grant() {
    let s = api();
    let d = Req::get("/.well-known/openid-configuration").send(s.public).json();
    assert!(field(&d, "device_authorization_endpoint").ends_with("/oauth2/device/auth"));
    assert!(d["grant_types_supported"].as_array().unwrap().iter().any(|g| g == GRANT));
}

#[test]
fn user_codes_are_single_use_and_guessing_is_bounded() {
    let s = api();
    let rp = device_client(s, false);
    let dev = device_auth(s, &rp, "openid");
    let uc = field(&dev, "user_code");
    let mut jar = Jar::default();
    let ch = open_page(s, &mut jar, &field(&dev, "verification_uri"));
    let before = metric(s, "hydra_device_user_code_failures_total{reason=\"locked\"}");
    for i in 0..5 {
        let wrong = format!("zzzzzzz{i}");
        let e = accept_code(s, &ch, &wrong).expect_error(400, "invalid_request");
        assert!(e["error_description"].as_str().unwrap().contains("'user_code' session could not be found"), "{e}");
    }
    // The challenge has used up its guesses: even the right code is refused now.
    accept_code(s, &ch, &uc).expect_error(400, "invalid_request");
    assert!(metric(s, "hydra_device_user_code_failures_total{reason=\"locked\"}") > before);
    assert!(metric(s, "hydra_device_user_code_failures_total{reason=\"wrong\"}") >= 5.0);

    // A new challenge with the right code works, and its verifier starts a login once.
    let ch2 = open_page(s, &mut jar, &field(&dev, "verification_uri"));
    let v = local(&redirect_to(&accept_code(s, &ch2, &uc)));
    assert!(query_param(&v, "client_id").as_deref() == Some(rp.id.as_str()), "{v}");
    let r = jar.get(s, &v);
    assert!(location(&r).contains("login_challenge="), "{}", location(&r));
    let replay = jar.get(s, &v);
    replay.expect_error(403, "access_denied");
    // The code is spent: another challenge cannot use it.
    let ch3 = open_page(s, &mut jar, &field(&dev, "verification_uri"));
    accept_code(s, &ch3, &uc).expect_error(400, "invalid_request");
    still_serves(s);
}

fn metric(s: &Server, name: &str) -> f64 {
    let text = Req::get("/admin/metrics/prometheus").send(s.admin).text();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {name} in metrics"))
}

#[test]
fn the_device_verifier_needs_its_csrf_cookie_and_the_accept_checks_its_input() {
    let s = api();
    let rp = device_client(s, false);
    let dev = device_auth(s, &rp, "openid");
    let mut jar = Jar::default();
    let ch = open_page(s, &mut jar, &field(&dev, "verification_uri"));
    let v = local(&redirect_to(&accept_code(s, &ch, &field(&dev, "user_code"))));
    // Another browser (no cookie) cannot use the verifier, nor one with another challenge's cookie.
    Req::get(&v).send(s.public).expect_error(403, "request_forbidden");
    let mut other = Jar::default();
    open_page(s, &mut other, &field(&dev, "verification_uri"));
    other.get(s, &v).expect_error(403, "request_forbidden");
    // A verifier of another client's name in the query is refused.
    let forged = v.replace(&format!("client_id={}", form_escape(&rp.id)), "client_id=someone-else");
    jar.get(s, &forged).expect_error(401, "invalid_client");
    // Tampered verifiers and challenges.
    jar.get(s, "/oauth2/device/verify?device_verifier=AAAA").expect_error(403, "access_denied");
    jar.get(s, &format!("/oauth2/device/verify?device_verifier={}", form_escape(&ch)))
        .expect_error(403, "access_denied");
    accept_code(s, "not-a-challenge", "abc").expect(404);
    put_json(s, "/admin/oauth2/auth/requests/device/accept", &json!({"user_code": "x"}))
        .expect_error(400, "invalid_request");
    accept_code(s, &ch, "").expect_error(400, "invalid_request");
    let path = format!("/admin/oauth2/auth/requests/device/accept?device_challenge={}", form_escape(&ch));
    put_json(s, &path, &json!({"user_code": 7})).expect_error(400, "invalid_request");
    Req::new("PUT", &path)
        .header("Content-Type", "application/json")
        .send(s.admin)
        .expect_error(400, "invalid_request");
    // The right cookie still works after all that.
    let r = jar.get(s, &v);
    assert!(location(&r).contains("login_challenge="), "{}", r.text());
    still_serves(s);
}

#[test]
fn a_refused_login_or_consent_denies_the_device() {
    let s = api();
    let rp = device_client(s, true);
    for consent_step in [false, true] {
        let dev = device_auth(s, &rp, "openid");
        let dc = field(&dev, "device_code");
        let mut jar = Jar::default();
        let lc = to_login(s, &mut jar, &dev);
        let reject = json!({"error": "access_denied", "error_description": "no"});
        let back = if consent_step {
            let lv = accept_login(s, &lc, &standard_login());
            let cc = to_consent(s, &mut jar, &lv);
            let path = format!("/admin/oauth2/auth/requests/consent/reject?consent_challenge={}", form_escape(&cc));
            local(&redirect_to(&put_json(s, &path, &reject)))
        } else {
            let path = format!("/admin/oauth2/auth/requests/login/reject?login_challenge={}", form_escape(&lc));
            local(&redirect_to(&put_json(s, &path, &reject)))
        };
        jar.get(s, &back).expect_error(403, "access_denied");
        poll(s, &rp, &dc).expect_error(403, "access_denied");
    }
}

#[test]
fn device_requests_are_checked_like_hydra() {
    let s = api();
    let rp = device_client(s, true);
    // client_id must be in the form even with Basic, and name the authenticated client.
    let r =
        Req::new("POST", "/oauth2/device/auth").basic(&rp.id, &rp.secret).form(&[("scope", "openid")]).send(s.public);
    r.expect_error(400, "invalid_request");
    let r = Req::new("POST", "/oauth2/device/auth")
        .basic(&rp.id, &rp.secret)
        .form(&[("client_id", "other"), ("scope", "openid")])
        .send(s.public);
    r.expect_error(400, "invalid_request");
    ask(s, &Rp { id: rp.id.clone(), secret: "wrong".into() }, &[]).expect_error(401, "invalid_client");
    ask(s, &rp, &[("scope", "admin")]).expect_error(400, "invalid_scope");
    ask(s, &rp, &[("audience", "https://elsewhere.example")]).expect_error(400, "invalid_request");
    let plain = rp_with(s, json!({"grant_types": ["authorization_code"], "token_endpoint_auth_method": "none"}));
    let e = ask(s, &plain, &[]).expect_error(400, "invalid_grant");
    assert!(e["error_description"].as_str().unwrap().contains("device_code"), "{e}");

    // The token endpoint: another client's device code, a client without the grant, garbage.
    let dev = device_auth(s, &rp, "openid");
    let dc = field(&dev, "device_code");
    let other = device_client(s, false);
    poll(s, &other, &dc).expect_error(400, "invalid_grant");
    let p = [("grant_type", GRANT), ("device_code", dc.as_str()), ("client_id", plain.id.as_str())];
    Req::new("POST", "/oauth2/token").form(&p).send(s.public).expect_error(400, "unauthorized_client");
    poll(s, &rp, "ory_dc_garbage.garbage").expect_error(400, "invalid_grant");
    poll(s, &rp, &dc.replace("ory_dc_", "ory_ac_")).expect_error(400, "invalid_grant");
    let p = [("grant_type", GRANT), ("client_id", rp.id.as_str())];
    Req::new("POST", "/oauth2/token")
        .basic(&rp.id, &rp.secret)
        .form(&p)
        .send(s.public)
        .expect_error(400, "invalid_request");
    // A device code is not an access token.
    assert!(!is_active(s, &dc));
    still_serves(s);
}

fn rp_with(s: &Server, body: Value) -> Rp {
    let c = create_client(s, &body);
    Rp { id: field(&c, "client_id"), secret: c["client_secret"].as_str().unwrap_or("").into() }
}

#[test]
fn expired_device_codes_are_refused_everywhere() {
    let s = Opts::new("io_uring").env("TTL_DEVICE_USER_CODE", "2s").env("ENGINE_JANITOR_INTERVAL", "1s").start();
    let rp = device_client(&s, false);
    let dev = device_auth(&s, &rp, "openid");
    assert!(dev["expires_in"].as_i64().unwrap() <= 2);
    let mut jar = Jar::default();
    let ch = open_page(&s, &mut jar, &field(&dev, "verification_uri"));
    std::thread::sleep(std::time::Duration::from_millis(2200));
    // A janitor pass after the expiry keeps the record, so the late poll still hears why.
    let passes = metric(&s, "hydra_janitor_passes_total");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while metric(&s, "hydra_janitor_passes_total") < passes + 2.0 {
        assert!(std::time::Instant::now() < deadline, "no janitor pass:\n{}", s.log());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    poll(&s, &rp, &field(&dev, "device_code")).expect_error(400, "expired_token");
    accept_code(&s, &ch, &field(&dev, "user_code")).expect_error(400, "invalid_request");

    // Approved in time, polled too late: the approved record is a code, which the janitor keeps
    // as long after its expiry as a device authorization, so the device hears why too.
    let rp = device_client(&s, false);
    let dev = device_auth(&s, &rp, "openid");
    let done = approve(&s, &dev, &standard_consent());
    assert!(done.contains("device/done"), "{done}");
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let passes = metric(&s, "hydra_janitor_passes_total");
    while metric(&s, "hydra_janitor_passes_total") < passes + 2.0 {
        assert!(std::time::Instant::now() < deadline + std::time::Duration::from_secs(15), "no janitor pass");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    poll(&s, &rp, &field(&dev, "device_code")).expect_error(400, "expired_token");
}

#[test]
fn user_code_presets_and_their_canonical_form() {
    let s = Opts::new("io_uring")
        .env("OAUTH2_DEVICE_AUTHORIZATION_USER_CODE_ENTROPY_PRESET", "medium")
        .env("OAUTH2_DEVICE_AUTHORIZATION_TOKEN_POLLING_INTERVAL", "1s")
        .start();
    let rp = device_client(&s, false);
    let dev = device_auth(&s, &rp, "openid");
    assert_eq!(dev["interval"], 1);
    let uc = field(&dev, "user_code");
    assert!(uc.len() == 8 && uc.chars().all(|c| c.is_ascii_uppercase()), "{uc}");
    // Typed in lower case with a dash, as RFC 8628 §6.1 suggests accepting.
    let typed = format!("{}-{}", uc[..4].to_lowercase(), uc[4..].to_lowercase());
    let mut jar = Jar::default();
    let ch = open_page(&s, &mut jar, &field(&dev, "verification_uri"));
    redirect_to(&accept_code(&s, &ch, &typed));
    // Polling once a second is fine at a one-second interval.
    let dc = field(&dev, "device_code");
    poll(&s, &rp, &dc).expect_error(400, "authorization_pending");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    poll(&s, &rp, &dc).expect_error(400, "authorization_pending");
}

#[test]
fn fresh_challenges_do_not_escape_the_nodes_guessing_budget() {
    let s = Opts::new("io_uring").env("ENGINE_DEVICE_USER_CODE_FAILURES_PER_MINUTE", "7").start();
    let rp = device_client(&s, false);
    let dev = device_auth(&s, &rp, "openid");
    let mut jar = Jar::default();
    let a = open_page(&s, &mut jar, &field(&dev, "verification_uri"));
    for i in 0..5 {
        accept_code(&s, &a, &format!("wrong-a{i}")).expect_error(400, "invalid_request");
    }
    let b = open_page(&s, &mut jar, &field(&dev, "verification_uri"));
    for i in 0..2 {
        accept_code(&s, &b, &format!("wrong-b{i}")).expect_error(400, "invalid_request");
    }
    // The node's budget is spent: a third challenge is turned away too, whatever the code.
    let c = open_page(&s, &mut jar, &field(&dev, "verification_uri"));
    let r = accept_code(&s, &c, &field(&dev, "user_code"));
    r.expect_error(429, "too_many_requests");
    assert_eq!(r.header("retry-after"), Some("60"));
}

/// A device authorization whose user has logged in: the device's answer, the browser's jar, and
/// the login verifier URL (not yet followed).
fn logged_in(s: &Server, rp: &Rp) -> (Value, Jar, String) {
    let dev = device_auth(s, rp, "openid");
    let mut jar = Jar::default();
    let lc = to_login(s, &mut jar, &dev);
    let lv = accept_login(s, &lc, &standard_login());
    (dev, jar, lv)
}

#[test]
fn verifiers_stay_in_their_kind_of_flow_and_are_used_once() {
    let s = api();
    let rp = device_client(s, true);
    let (_, mut jar, lv) = logged_in(s, &rp);
    // A device flow's login verifier at the authorization endpoint: an error page, no consent.
    let at_auth = lv.replace("/oauth2/device/verify?", "/oauth2/auth?");
    let r = jar.get(s, &at_auth);
    assert!(location(&r).contains("/oauth2/fallbacks/error"), "{}", location(&r));
    // And an authorization-code flow's login verifier at the device endpoint.
    let web = crate::browser::rp(s, json!({}));
    let mut web_jar = Jar::default();
    let web_lc = start(s, &mut web_jar, &web, &[]);
    let web_lv = accept_login(s, &web_lc, &standard_login());
    let r = web_jar.get(s, &web_lv.replace("/oauth2/auth?", "/oauth2/device/verify?"));
    assert!(location(&r).contains("/oauth2/fallbacks/error"), "{}", location(&r));

    let cc = to_consent(s, &mut jar, &lv);
    let cv = accept_consent(s, &cc, &standard_consent());
    // A device flow's consent verifier at the authorization endpoint.
    let r = jar.get(s, &cv.replace("/oauth2/device/verify?", "/oauth2/auth?"));
    assert!(location(&r).contains("/oauth2/fallbacks/error"), "{}", location(&r));
    // Used once; then the consent request answers 410 and a replay is refused.
    assert!(location(&jar.get(s, &cv)).contains("device/done"));
    let path = format!("/admin/oauth2/auth/requests/consent?consent_challenge={}", form_escape(&cc));
    Req::get(&path).send(s.admin).expect(410);
    jar.get(s, &cv).expect_error(403, "access_denied");
    // The device verifier needs the client_id the accept answer carries.
    let dev2 = device_auth(s, &rp, "openid");
    let mut jar2 = Jar::default();
    let ch = open_page(s, &mut jar2, &field(&dev2, "verification_uri"));
    let v = local(&redirect_to(&accept_code(s, &ch, &field(&dev2, "user_code"))));
    let without =
        format!("/oauth2/device/verify?device_verifier={}", form_escape(&query_param(&v, "device_verifier").unwrap()));
    jar2.get(s, &without).expect_error(401, "invalid_client");
    // Refused before anything was spent: the full verifier still works.
    assert!(location(&jar2.get(s, &v)).contains("login_challenge="));
}

#[test]
fn a_refusal_cannot_be_taken_back_by_an_accept_of_the_same_flow() {
    let s = api();
    let rp = device_client(s, true);
    let (dev, mut jar, lv) = logged_in(s, &rp);
    let cc = to_consent(s, &mut jar, &lv);
    // The consent app answers twice before the browser comes back: reject, then accept.
    let reject = format!("/admin/oauth2/auth/requests/consent/reject?consent_challenge={}", form_escape(&cc));
    let no = local(&redirect_to(&put_json(s, &reject, &json!({"error": "access_denied"}))));
    let yes = accept_consent(s, &cc, &standard_consent());
    let other = jar.clone();
    jar.get(s, &no).expect_error(403, "access_denied");
    other.get(s, &yes).expect_error(403, "access_denied");
    poll(s, &rp, &field(&dev, "device_code")).expect_error(403, "access_denied");
}

/// Revoking a client's tokens ends its pending device authorizations too: the user code is
/// no longer accepted and the device's poll fails, on both backends; a device authorization
/// asked for afterwards works.
#[test]
fn revoking_a_clients_tokens_ends_its_pending_device_authorizations() {
    let s = api();
    let rp = device_client(s, true);
    let dev = device_auth(s, &rp, "openid offline_access");
    poll(s, &rp, &field(&dev, "device_code")).expect_error(400, "authorization_pending");
    Req::new("DELETE", &format!("/admin/oauth2/tokens?client_id={}", form_escape(&rp.id))).send(s.admin).expect(204);
    let mut jar = Jar::default();
    let ch = open_page(s, &mut jar, &field(&dev, "verification_uri"));
    accept_code(s, &ch, &field(&dev, "user_code")).expect(400);
    poll(s, &rp, &field(&dev, "device_code")).expect_error(400, "invalid_grant");

    let dev = device_auth(s, &rp, "openid offline_access");
    assert!(approve(s, &dev, &standard_consent()).contains("device/done"));
    poll(s, &rp, &field(&dev, "device_code")).expect(200);
}

/// The client's device-grant lifespans govern the tokens a device gets (as Hydra).
#[test]
fn device_tokens_live_as_the_clients_device_lifespans_say() {
    let s = api();
    let rp = device_client(s, true);
    let lifespans = json!({
        "device_authorization_grant_access_token_lifespan": "9m",
        "device_authorization_grant_id_token_lifespan": "10m",
        "device_authorization_grant_refresh_token_lifespan": "11m",
    });
    Req::new("PUT", &format!("/admin/clients/{}/lifespans", rp.id)).json(&lifespans).send(s.admin).expect(200);
    let dev = device_auth(s, &rp, "openid offline_access");
    approve(s, &dev, &standard_consent());
    let t = poll(s, &rp, &field(&dev, "device_code"));
    t.expect(200);
    let t = t.json();
    assert_eq!(t["expires_in"], 540, "{t}");
    let life = |c: &Value| c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap();
    let id: Value = serde_json::from_str(&jwt_payload(&field(&t, "id_token"))).unwrap();
    assert!((life(&id) - 600).abs() <= 1, "{id}");
    let rt = introspect(s, &field(&t, "refresh_token"));
    assert!((life(&rt) - 660).abs() <= 1, "{rt}");
}
