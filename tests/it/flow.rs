//! The authorization code flow end to end: authorize → login challenge → accept → consent
//! challenge → accept → code → token exchange (with PKCE and an ID token), refresh rotation,
//! userinfo, discovery, and the bad inputs of each leg.

use crate::browser::*;
use crate::harness::*;
use serde_json::{json, Value};

/// The shared `run_flow` with the checks this file makes on every leg: the login challenge goes
/// to the fallback login page, both admin requests describe the flow, the verifiers come back.
pub fn run_flow(s: &Server, rp: &Rp, extra: &[(&str, &str)], login: &Value, consent: &Value) -> String {
    let mut jar = Jar::default();
    let r = jar.get(s, &auth_path(rp, extra));
    jar.take(&r);
    let to_login = location(&r);
    assert!(to_login.contains("/oauth2/fallbacks/login?login_challenge="), "{to_login}");
    let challenge = query_param(&to_login, "login_challenge").unwrap();
    let lr = Req::get(&format!("/admin/oauth2/auth/requests/login?login_challenge={}", form_escape(&challenge)))
        .send(s.admin);
    lr.expect(200);
    let lr = lr.json();
    assert_eq!(lr["client"]["client_id"], rp.id);
    assert_eq!(lr["skip"], false);
    assert_eq!(lr["challenge"], challenge);
    let back = accept_login(s, &challenge, login);
    assert!(back.contains("login_verifier="), "{back}");
    let challenge = to_consent(s, &mut jar, &back);
    let cr = Req::get(&format!("/admin/oauth2/auth/requests/consent?consent_challenge={}", form_escape(&challenge)))
        .send(s.admin);
    cr.expect(200);
    assert_eq!(cr.json()["subject"], login["subject"]);
    let back = accept_consent(s, &challenge, consent);
    location(&jar.get(s, &back))
}

#[test]
fn full_flow_issues_a_verified_id_token_and_rotates_refresh_tokens() {
    let s = api();
    let rp = rp(s, json!({}));
    let done = run_flow(s, &rp, &[], &standard_login(), &standard_consent());
    assert!(done.starts_with(&format!("{CB}?")), "{done}");
    assert_eq!(query_param(&done, "state").as_deref(), Some("state-0123456789"));
    let issuer =
        Req::get("/.well-known/openid-configuration").send(s.public).json()["issuer"].as_str().unwrap().to_string();
    assert_eq!(query_param(&done, "iss").as_deref(), Some(issuer.as_str()), "RFC 9207 iss");
    let code = query_param(&done, "code").unwrap();
    assert!(code.starts_with("ory_ac_"));

    let r = exchange(s, &rp, &code, Some(VERIFIER));
    r.expect(200);
    r.assert_no_store();
    let t = r.json();
    let at = t["access_token"].as_str().unwrap();
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    assert!(rt.starts_with("ory_rt_"));
    assert_eq!(t["scope"], "openid offline_access");

    // The ID token verifies against the published keys and says what it should.
    let id = t["id_token"].as_str().unwrap();
    let jwks: Vec<hydra::jose::jwk::Jwk> =
        serde_json::from_value(Req::get("/.well-known/jwks.json").send(s.public).json()["keys"].clone()).unwrap();
    let verified = hydra::jose::jws::verify(id, &jwks).expect("ID token signature");
    assert_eq!(verified.header["alg"], "RS256");
    let claims: Value = serde_json::from_slice(&verified.payload).unwrap();
    assert_eq!(claims["iss"], issuer);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], json!([rp.id]));
    assert_eq!(claims["nonce"], "nonce-abc");
    assert_eq!(claims["acr"], "urn:loa:1");
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["at_hash"], hydra::jose::jws::half_hash(hydra::jose::jwk::Alg::RS256, at.as_bytes()));
    assert!(claims["sid"].is_string() && claims["jti"].is_string() && claims["auth_time"].is_i64());
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());

    // Introspection shows the access token with its ext; userinfo answers the ID-token claims.
    let i = introspect(s, at);
    assert_eq!(i["active"], true);
    assert_eq!(i["sub"], "alice");
    assert_eq!(i["ext"], json!({"tier": "gold"}));
    let u = Req::get("/userinfo").header("Authorization", &format!("Bearer {at}")).send(s.public);
    u.expect(200);
    assert_eq!(u.json()["sub"], "alice");
    assert_eq!(u.json()["email"], "alice@example.com");
    assert!(u.json().get("nonce").is_none());
    // POST with the header: a body that is not a form is none of userinfo's business (RFC 6750 §2.2).
    let u =
        Req::new("POST", "/userinfo").header("Authorization", &format!("Bearer {at}")).json(&json!({})).send(s.public);
    assert_eq!(u.expect(200).json()["sub"], "alice");

    // Refresh: new tokens, a new ID token, the old access token revoked.
    let r = Req::new("POST", "/oauth2/token")
        .basic(&rp.id, &rp.secret)
        .form(&[("grant_type", "refresh_token"), ("refresh_token", &rt)])
        .send(s.public);
    r.expect(200);
    let t2 = r.json();
    let at2 = t2["access_token"].as_str().unwrap();
    let rt2 = t2["refresh_token"].as_str().unwrap();
    assert_ne!(rt2, rt);
    assert!(t2["id_token"].is_string(), "an ID token again on refresh");
    assert!(!is_active(s, at), "the access token of the rotated refresh token is revoked");
    assert!(is_active(s, at2));
    // Reusing the rotated refresh token fails and revokes the whole grant.
    let r = Req::new("POST", "/oauth2/token")
        .basic(&rp.id, &rp.secret)
        .form(&[("grant_type", "refresh_token"), ("refresh_token", &rt)])
        .send(s.public);
    r.expect_error(400, "invalid_grant");
    assert!(!is_active(s, at2));
    assert!(!is_active(s, rt2));
}

#[test]
fn rejections_reach_the_client_as_errors() {
    let s = api();
    let rp = rp(s, json!({}));
    let mut jar = Jar::default();
    let r = jar.get(s, &auth_path(&rp, &[]));
    jar.take(&r);
    let lc = query_param(r.header("location").unwrap(), "login_challenge").unwrap();
    let a = put_json(
        s,
        &format!("/admin/oauth2/auth/requests/login/reject?login_challenge={lc}"),
        &json!({"error": "access_denied", "error_description": "no thanks"}),
    );
    a.expect(200);
    let r = jar.get(s, &local(a.json()["redirect_to"].as_str().unwrap()));
    let loc = r.header("location").unwrap();
    assert!(loc.starts_with(CB), "{loc}");
    assert_eq!(query_param(loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(loc, "error_description").as_deref(), Some("no thanks"));
    assert_eq!(query_param(loc, "state").as_deref(), Some("state-0123456789"));
}

#[test]
fn discovery_advertises_what_works() {
    let s = api();
    let d = Req::get("/.well-known/openid-configuration").send(s.public);
    d.expect(200);
    let d = d.json();
    assert_eq!(
        d["response_types_supported"],
        json!(["code", "id_token", "token", "code id_token", "code token", "id_token token", "code id_token token"])
    );
    assert_eq!(d["response_modes_supported"], json!(["query", "fragment", "form_post"]));
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(d["id_token_signing_alg_values_supported"], json!(["RS256"]));
    assert!(d["jwks_uri"].as_str().unwrap().ends_with("/.well-known/jwks.json"));
    assert!(d["authorization_endpoint"].as_str().unwrap().ends_with("/oauth2/auth"));
    assert!(d["end_session_endpoint"].as_str().unwrap().ends_with("/oauth2/sessions/logout"));
    for k in [
        "frontchannel_logout_supported",
        "frontchannel_logout_session_supported",
        "backchannel_logout_supported",
        "backchannel_logout_session_supported",
    ] {
        assert_eq!(d[k], true, "{k}");
    }
    let same = Req::get("/.well-known/oauth-authorization-server").send(s.public).json();
    assert_eq!(same, d);
    // Userinfo without or with a bad token: 401 with a Bearer challenge.
    let r = Req::get("/userinfo").send(s.public);
    r.expect(401);
    // No token at all: the bare challenge, without an error code (RFC 6750 §3.1).
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = Req::get("/userinfo").header("Authorization", "Bearer ory_at_x.y").send(s.public);
    r.expect(401);
    assert!(r.header("www-authenticate").unwrap().contains("invalid_token"));
}

/// The subject `flow_in` logs in: one per client, so tests sharing a server do not share sessions.
fn bob(rp: &Rp) -> String {
    format!("bob-{}", rp.id)
}

/// One browser: a cookie jar that persists across flows.
fn flow_in(s: &Server, jar: &mut Jar, rp: &Rp, extra: &[(&str, &str)], remember: bool) -> (String, Value, Value) {
    let r = jar.get(s, &auth_path(rp, extra));
    r.expect(302);
    jar.take(&r);
    let loc = r.header("location").unwrap().to_string();
    let Some(lc) = query_param(&loc, "login_challenge") else { return (loc, Value::Null, Value::Null) };
    let lr = Req::get(&format!("/admin/oauth2/auth/requests/login?login_challenge={lc}")).send(s.admin).json();
    let a = put_json(
        s,
        &format!("/admin/oauth2/auth/requests/login/accept?login_challenge={lc}"),
        &json!({"subject": bob(rp), "remember": remember, "remember_for": 3600}),
    );
    a.expect(200);
    let r = jar.get(s, &local(a.json()["redirect_to"].as_str().unwrap()));
    r.expect(302);
    jar.take(&r);
    let loc = r.header("location").unwrap().to_string();
    let Some(cc) = query_param(&loc, "consent_challenge") else { return (loc, lr, Value::Null) };
    let cr = Req::get(&format!("/admin/oauth2/auth/requests/consent?consent_challenge={cc}")).send(s.admin).json();
    let a = put_json(
        s,
        &format!("/admin/oauth2/auth/requests/consent/accept?consent_challenge={cc}"),
        &json!({"grant_scope": cr["requested_scope"], "remember": remember, "remember_for": 3600}),
    );
    let r = jar.get(s, &local(a.json()["redirect_to"].as_str().unwrap()));
    jar.take(&r);
    (r.header("location").unwrap().to_string(), lr, cr)
}

fn id_claims(s: &Server, rp: &Rp, done: &str) -> Value {
    let code = query_param(done, "code").unwrap_or_else(|| panic!("no code: {done}"));
    let t = exchange(s, rp, &code, Some(VERIFIER)).json();
    let id = t["id_token"].as_str().unwrap();
    let payload = id.split('.').nth(1).unwrap();
    use base64::Engine;
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[test]
fn remembered_sessions_skip_login_and_consent_and_prompt_rules_apply() {
    let s = api();
    let rp = rp(s, json!({}));
    let mut jar = Jar::default();
    let (done, lr, cr) = flow_in(s, &mut jar, &rp, &[], true);
    assert_eq!((lr["skip"].clone(), cr["skip"].clone()), (json!(false), json!(false)));
    let first = id_claims(s, &rp, &done);
    assert!(jar.0.iter().any(|(k, _)| k == "ory_hydra_session"), "{:?}", jar.0);

    // Same browser: both steps are skipped, the subject and auth_time are the remembered ones.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (done, lr, cr) = flow_in(s, &mut jar, &rp, &[], true);
    assert_eq!(lr["skip"], true);
    assert_eq!(lr["subject"], bob(&rp));
    assert_eq!(cr["skip"], true);
    let second = id_claims(s, &rp, &done);
    assert_eq!(second["auth_time"], first["auth_time"]);
    assert_eq!(second["sub"], first["sub"]);

    // prompt=none succeeds silently (the apps still see skip=true and accept).
    let (done, lr, _) = flow_in(s, &mut jar, &rp, &[("prompt", "none")], true);
    assert_eq!(lr["skip"], true);
    assert!(query_param(&done, "code").is_some(), "{done}");
    // id_token_hint of the same user with prompt=none: silent too.
    let code_flow = flow_in(s, &mut jar, &rp, &[], true).0;
    let code = query_param(&code_flow, "code").unwrap();
    let hint = exchange(s, &rp, &code, Some(VERIFIER)).json()["id_token"].as_str().unwrap().to_string();
    let (done, _, _) = flow_in(s, &mut jar, &rp, &[("prompt", "none"), ("id_token_hint", &hint)], true);
    assert!(query_param(&done, "code").is_some(), "{done}");

    // prompt=login and an exceeded max_age ask for a new login.
    let (_, lr, _) = flow_in(s, &mut jar, &rp, &[("prompt", "login")], true);
    assert_eq!(lr["skip"], false);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (_, lr, _) = flow_in(s, &mut jar, &rp, &[("max_age", "1")], true);
    assert_eq!(lr["skip"], false);

    // A hint for another user with prompt=none: login_required.
    let other = self::rp(s, json!({}));
    let mut jar2 = Jar::default();
    let r = jar2.get(s, &auth_path(&other, &[]));
    jar2.take(&r);
    let lc = query_param(r.header("location").unwrap(), "login_challenge").unwrap();
    let a = put_json(
        s,
        &format!("/admin/oauth2/auth/requests/login/accept?login_challenge={lc}"),
        &json!({"subject": "carol"}),
    );
    let r = jar2.get(s, &local(a.json()["redirect_to"].as_str().unwrap()));
    jar2.take(&r);
    let (done, _, _) = flow_in(
        s,
        &mut jar,
        &rp,
        &[("prompt", "none"), ("id_token_hint", &forge_free_hint_for(s, &rp, "carol"))],
        true,
    );
    assert_eq!(query_param(&done, "error").as_deref(), Some("login_required"), "{done}");
}

/// Every `id_token_hint` is verified, with or without a login session: a hint with a broken
/// signature, `alg: none`, one issued to another client, or one signed by our key under another
/// issuer is refused at the client (`invalid_request`), and never leads to a login or a code.
#[test]
fn id_token_hints_are_verified_without_a_session_too() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "hint-test-secret-0123456789";
    let issuer = "http://127.0.0.1:9/";
    let first =
        Opts::new("legacy").dir(dir.path()).env("SECRETS_SYSTEM", secret).env("URLS_SELF_ISSUER", issuer).start();
    let rp = rp(&first, json!({"client_id": uniq("hint-rp")}));
    let other = self::rp(&first, json!({}));
    let good = forge_free_hint_for(&first, &rp, "carol");
    let foreign_aud = forge_free_hint_for(&first, &other, "carol");
    drop(first);
    use base64::Engine;
    let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let parts: Vec<&str> = good.split('.').collect();
    let mut claims: Value = serde_json::from_str(&jwt_payload(&good)).unwrap();
    claims["sub"] = json!("mallory");
    let tampered = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), parts[1]);
    // The same data directory and keys, under another issuer: the hint's iss is not ours any more.
    let s = Opts::new("legacy")
        .dir(dir.path())
        .env("SECRETS_SYSTEM", secret)
        .env("URLS_SELF_ISSUER", "http://127.0.0.1:8/")
        .start();
    for (what, hint) in
        [("tampered", &tampered), ("alg none", &none), ("another client", &foreign_aud), ("another issuer", &good)]
    {
        for extra in [vec![], vec![("prompt", "none")]] {
            let mut p = vec![("id_token_hint", hint.as_str())];
            p.extend(extra);
            let r = Req::get(&auth_path(&rp, &p)).send(s.public);
            let loc = expect_client_error(&r, "invalid_request");
            assert!(query_param(&loc, "code").is_none(), "{what}: {loc}");
        }
    }
    drop(s);
    // Under its own issuer the same hint is fine without a session: a login page, not an error.
    let s = Opts::new("legacy").dir(dir.path()).env("SECRETS_SYSTEM", secret).env("URLS_SELF_ISSUER", issuer).start();
    let r = Req::get(&auth_path(&rp, &[("id_token_hint", &good)])).send(s.public);
    assert!(query_param(&location(&r), "login_challenge").is_some(), "{}", location(&r));
}

/// The user an `id_token_hint` names is the one who must log in: the login app sees the hint's
/// verified claims (`oidc_context.id_token_hint_claims`, as Hydra), and a login accepted for
/// anyone else ends in `login_required` at the client, with no code and no session remembered.
#[test]
fn an_id_token_hint_binds_the_login_to_its_user() {
    let s = api();
    let rp = rp(s, json!({}));
    let hint = forge_free_hint_for(s, &rp, "carol");
    let login_as = |subject: &str| {
        let mut jar = Jar::default();
        let lc = start(s, &mut jar, &rp, &[("id_token_hint", &hint)]);
        let lr = Req::get(&format!("/admin/oauth2/auth/requests/login?login_challenge={lc}")).send(s.admin).json();
        assert_eq!(lr["oidc_context"]["id_token_hint_claims"]["sub"], "carol", "{lr}");
        assert_eq!(lr["oidc_context"]["id_token_hint_claims"]["aud"], json!([rp.id]), "{lr}");
        let lv = accept_login(s, &lc, &json!({"subject": subject, "remember": true}));
        let r = jar.get(s, &lv);
        jar.take(&r);
        (r, jar)
    };
    let (r, jar) = login_as("mallory");
    let loc = expect_client_error(&r, "login_required");
    assert!(!jar.0.iter().any(|(k, _)| k == "ory_hydra_session"), "no session for mallory: {:?} ({loc})", jar.0);
    let (r, _) = login_as("carol");
    let loc = location(&r);
    assert!(query_param(&loc, "consent_challenge").is_some(), "the hinted user goes on to consent: {loc}");
}

/// A `max_age` beyond i64 means any age: a remembered session still stands in for the login.
#[test]
fn a_huge_max_age_accepts_any_session_age() {
    let s = api();
    let rp = rp(s, json!({}));
    let mut jar = Jar::default();
    flow_in(s, &mut jar, &rp, &[], true);
    for max_age in ["9223372036854775807", "9223372036854775808", "18446744073709551615"] {
        let (done, lr, _) = flow_in(s, &mut jar, &rp, &[("prompt", "none"), ("max_age", max_age)], true);
        assert_eq!(lr["skip"], true, "{max_age}");
        assert!(query_param(&done, "code").is_some(), "{max_age}: {done}");
    }
}

/// A new login ends the session the browser held, whether or not the new one is remembered: a
/// copy of the old cookie does not log anyone in again (as Hydra).
#[test]
fn a_new_login_ends_the_session_the_browser_held() {
    let s = api();
    let rp = rp(s, json!({}));
    for remember_again in [false, true] {
        let mut jar = Jar::default();
        flow_in(s, &mut jar, &rp, &[], true);
        let copy = jar.clone();
        let skip = |jar: &Jar| {
            let r = jar.get(s, &auth_path(&rp, &[]));
            let lc = query_param(&location(&r), "login_challenge").unwrap();
            Req::get(&format!("/admin/oauth2/auth/requests/login?login_challenge={lc}")).send(s.admin).json()["skip"]
                .clone()
        };
        assert_eq!(skip(&copy), json!(true));
        let (done, lr, _) = flow_in(s, &mut jar, &rp, &[("prompt", "login")], remember_again);
        assert_eq!(lr["skip"], false);
        assert!(query_param(&done, "code").is_some(), "{done}");
        assert_eq!(skip(&copy), json!(false), "the old cookie no longer logs in (remember again: {remember_again})");
        assert_eq!(skip(&jar), json!(remember_again), "the browser's own session is the new one");
    }
}

/// A public client whose redirect URI any app could claim (a custom scheme) is asked for consent
/// every time: a remembered consent does not stand in, and `prompt=none` is `consent_required`
/// (RFC 8252 §8.6, as Hydra). The same client with an https redirect is skipped.
#[test]
fn remembered_consent_needs_a_redirect_that_proves_a_public_client() {
    let s = api();
    let app = "com.example.app:/cb";
    let rp = rp(s, json!({"token_endpoint_auth_method": "none", "redirect_uris": [app, CB]}));
    let mut jar = Jar::default();
    let (done, _, cr) = flow_in(s, &mut jar, &rp, &[("redirect_uri", app)], true);
    assert_eq!(cr["skip"], false);
    assert!(done.starts_with(app) && query_param(&done, "code").is_some(), "{done}");
    let (done, lr, _) = flow_in(s, &mut jar, &rp, &[("redirect_uri", app), ("prompt", "none")], true);
    assert_eq!(lr["skip"], true, "the login is still remembered");
    assert!(done.starts_with(app), "{done}");
    assert_eq!(query_param(&done, "error").as_deref(), Some("consent_required"), "{done}");
    let (_, _, cr) = flow_in(s, &mut jar, &rp, &[("redirect_uri", app)], true);
    assert_eq!(cr["skip"], false, "the consent app is asked again");
    let (_, _, cr) = flow_in(s, &mut jar, &rp, &[], true);
    assert_eq!(cr["skip"], true, "over https the remembered consent stands in");
}

/// A consent accepted in a flow that skipped the consent app is listed, but does not become the
/// remembered consent: re-accepting skipped consents cannot keep one remembered past its
/// `remember_for` (as Hydra).
#[test]
fn skipped_consents_do_not_prolong_the_remembered_one() {
    let s = api();
    let rp = rp(s, json!({}));
    let mut jar = Jar::default();
    let consent = |jar: &mut Jar, remember_for: i64| {
        let lc = start(s, jar, &rp, &[]);
        let lv = accept_login(s, &lc, &json!({"subject": bob(&rp), "remember": true}));
        let cc = to_consent(s, jar, &lv);
        let cr = Req::get(&format!("/admin/oauth2/auth/requests/consent?consent_challenge={cc}")).send(s.admin).json();
        let cv = accept_consent(
            s,
            &cc,
            &json!({"grant_scope": cr["requested_scope"], "remember": true, "remember_for": remember_for}),
        );
        location(&jar.get(s, &cv));
        cr["skip"].clone()
    };
    assert_eq!(consent(&mut jar, 2), json!(false));
    assert_eq!(consent(&mut jar, 3600), json!(true), "remembered for 2 s");
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(consent(&mut jar, 3600), json!(false), "the skipped re-accept did not renew it");
    let listed = Req::get(&format!("/admin/oauth2/auth/sessions/consent?subject={}", bob(&rp))).send(s.admin).json();
    let hour = listed.as_array().map_or(0, |a| a.iter().filter(|c| c["remember_for"] == 3600).count());
    assert_eq!(hour, 2, "the skipped decision is listed too: {listed}");
}

/// How long a token lives: `exp - iat` of a JWT, or of an opaque token's introspection.
fn life_of(s: &Server, token: &str) -> i64 {
    let c: Value = if token.matches('.').count() == 2 && !token.starts_with("ory_") {
        serde_json::from_str(&jwt_payload(token)).unwrap()
    } else {
        introspect(s, token)
    };
    c["exp"].as_i64().unwrap_or_else(|| panic!("no exp: {c}"))
        - c["iat"].as_i64().unwrap_or_else(|| panic!("no iat: {c}"))
}

/// A client's own lifespans govern the tokens of the code exchange, of refresh, and of the
/// authorization endpoint (implicit and hybrid), each grant its own (as Hydra's
/// `GetEffectiveLifespan`); a client without them gets the global TTLs.
#[test]
fn client_lifespans_govern_code_refresh_and_implicit_tokens() {
    let s = api();
    let rp = rp(
        s,
        json!({"grant_types": ["authorization_code", "refresh_token", "implicit"], "response_types": ["code", "id_token token"]}),
    );
    let lifespans = json!({
        "authorization_code_grant_access_token_lifespan": "1m",
        "authorization_code_grant_id_token_lifespan": "2m",
        "authorization_code_grant_refresh_token_lifespan": "3m",
        "refresh_token_grant_access_token_lifespan": "4m",
        "refresh_token_grant_id_token_lifespan": "5m",
        "refresh_token_grant_refresh_token_lifespan": "6m",
        "implicit_grant_access_token_lifespan": "7m",
        "implicit_grant_id_token_lifespan": "8m",
    });
    let check = |t: &Value, at: i64, id: i64, rt: i64, what: &str| {
        assert_eq!(t["expires_in"], at, "{what}: {t}");
        for (k, want) in [("access_token", at), ("id_token", id), ("refresh_token", rt)] {
            let got = life_of(s, &field(t, k));
            assert!((got - want).abs() <= 1, "{what}: {k} lives {got} s, not {want}");
        }
    };
    let t = exchange(s, &rp, &code_for(s, &rp, &[]), Some(VERIFIER)).json();
    check(&t, 3600, 3600, 720 * 3600, "global TTLs");
    Req::new("PUT", &format!("/admin/clients/{}/lifespans", rp.id)).json(&lifespans).send(s.admin).expect(200);
    let t = exchange(s, &rp, &code_for(s, &rp, &[]), Some(VERIFIER)).json();
    check(&t, 60, 120, 180, "code exchange");
    let t = refresh(s, &rp, &field(&t, "refresh_token"), None).json();
    check(&t, 240, 300, 360, "refresh");
    let done = run_flow(
        s,
        &rp,
        &[("response_type", "id_token token"), ("nonce", "nonce-life-1")],
        &standard_login(),
        &standard_consent(),
    );
    let frag = format!("x?{}", done.split_once('#').map(|(_, f)| f).unwrap_or_else(|| panic!("{done}")));
    assert_eq!(query_param(&frag, "expires_in").as_deref(), Some("420"), "{done}");
    assert!((life_of(s, &query_param(&frag, "access_token").unwrap()) - 420).abs() <= 1);
    assert!((life_of(s, &query_param(&frag, "id_token").unwrap()) - 480).abs() <= 1);
}

/// A client registered with neither `response_types` nor `grant_types` has Hydra's defaults,
/// `code` and `authorization_code`, at the authorization endpoint as at the token endpoint.
#[test]
fn a_client_without_types_gets_the_code_flow() {
    let s = api();
    let rp = rp(s, json!({"response_types": [], "grant_types": []}));
    let t = exchange(s, &rp, &code_for(s, &rp, &[]), Some(VERIFIER));
    assert!(t.expect(200).json()["access_token"].is_string());
    let r = Req::get(&auth_path(&rp, &[("response_type", "token"), ("nonce", "n-123456")])).send(s.public);
    let loc = location(&r);
    assert!(loc.contains("error=unauthorized_client"), "only the defaults: {loc}");
}

/// With both `sid` and `subject`, `DELETE …/sessions/login` ends the one session (as Hydra).
#[test]
fn a_sid_wins_over_a_subject_when_revoking_logins() {
    let s = api();
    let rp = rp(s, json!({}));
    let (mut a, mut b) = (Jar::default(), Jar::default());
    let (_, lr_a, _) = flow_in(s, &mut a, &rp, &[], true);
    flow_in(s, &mut b, &rp, &[], true);
    let skip = |jar: &mut Jar| {
        let r = jar.get(s, &auth_path(&rp, &[]));
        let lc = query_param(&location(&r), "login_challenge").unwrap();
        Req::get(&format!("/admin/oauth2/auth/requests/login?login_challenge={lc}")).send(s.admin).json()["skip"]
            .clone()
    };
    let (sid, subject) = (field(&lr_a, "session_id"), bob(&rp));
    Req::new("DELETE", &format!("/admin/oauth2/auth/sessions/login?subject={subject}&sid={sid}"))
        .send(s.admin)
        .expect(204);
    assert_eq!(skip(&mut a), json!(false), "the named session ended");
    assert_eq!(skip(&mut b), json!(true), "the subject's other session did not");
}

/// `DELETE …/sessions/login?sid=` ends exactly that session (found by its id), not the others
/// of its subject.
#[test]
fn a_login_session_can_be_revoked_by_its_id() {
    let s = api();
    let rp = rp(s, json!({}));
    let (mut a, mut b) = (Jar::default(), Jar::default());
    let (_, lr_a, _) = flow_in(s, &mut a, &rp, &[], true);
    let (_, _, _) = flow_in(s, &mut b, &rp, &[], true);
    let sid = field(&lr_a, "session_id");
    let skip = |jar: &mut Jar| {
        let r = jar.get(s, &auth_path(&rp, &[]));
        let lc = query_param(&location(&r), "login_challenge").unwrap();
        Req::get(&format!("/admin/oauth2/auth/requests/login?login_challenge={lc}")).send(s.admin).json()["skip"]
            .clone()
    };
    assert_eq!((skip(&mut a), skip(&mut b)), (json!(true), json!(true)));
    Req::new("DELETE", &format!("/admin/oauth2/auth/sessions/login?sid={sid}")).send(s.admin).expect(204);
    assert_eq!(skip(&mut a), json!(false), "the revoked session no longer skips the login");
    assert_eq!(skip(&mut b), json!(true), "the subject's other session is untouched");
    Req::new("DELETE", "/admin/oauth2/auth/sessions/login?sid=no-such-session").send(s.admin).expect(204);
}

/// An ID token for `subject`, obtained through a real flow of `rp` in a fresh browser.
fn forge_free_hint_for(s: &Server, rp: &Rp, subject: &str) -> String {
    let mut jar = Jar::default();
    let r = jar.get(s, &auth_path(rp, &[]));
    jar.take(&r);
    let lc = query_param(r.header("location").unwrap(), "login_challenge").unwrap();
    let a = put_json(
        s,
        &format!("/admin/oauth2/auth/requests/login/accept?login_challenge={lc}"),
        &json!({"subject": subject}),
    );
    let r = jar.get(s, &local(a.json()["redirect_to"].as_str().unwrap()));
    jar.take(&r);
    let cc = query_param(r.header("location").unwrap(), "consent_challenge").unwrap();
    let a = put_json(
        s,
        &format!("/admin/oauth2/auth/requests/consent/accept?consent_challenge={cc}"),
        &json!({"grant_scope": ["openid"]}),
    );
    let r = jar.get(s, &local(a.json()["redirect_to"].as_str().unwrap()));
    let code = query_param(r.header("location").unwrap(), "code").unwrap();
    exchange(s, rp, &code, Some(VERIFIER)).json()["id_token"].as_str().unwrap().to_string()
}

#[test]
fn prompt_none_without_remembered_consent_is_consent_required_and_skip_needs_the_same_subject() {
    let s = api();
    let rp = rp(s, json!({}));
    let mut jar = Jar::default();
    // Login remembered, consent not.
    let (done, _, _) = flow_in(s, &mut jar, &rp, &[], false);
    assert!(query_param(&done, "code").is_some());
    let r = jar.get(s, &auth_path(&rp, &[]));
    let lc = query_param(r.header("location").unwrap(), "login_challenge").unwrap();
    // Not remembered (remember=false above): no skip.
    assert_eq!(
        Req::get(&format!("/admin/oauth2/auth/requests/login?login_challenge={lc}")).send(s.admin).json()["skip"],
        false
    );

    let mut jar = Jar::default();
    let r = jar.get(s, &auth_path(&rp, &[]));
    jar.take(&r);
    let lc = query_param(r.header("location").unwrap(), "login_challenge").unwrap();
    let a = put_json(
        s,
        &format!("/admin/oauth2/auth/requests/login/accept?login_challenge={lc}"),
        &json!({"subject": "dave", "remember": true}),
    );
    let r = jar.get(s, &local(a.json()["redirect_to"].as_str().unwrap()));
    jar.take(&r);
    let r = jar.get(s, &auth_path(&rp, &[("prompt", "none")]));
    r.expect(302);
    jar.take(&r);
    let lc = query_param(r.header("location").unwrap(), "login_challenge").unwrap();
    // A skipped login must be accepted for the remembered subject.
    put_json(
        s,
        &format!("/admin/oauth2/auth/requests/login/accept?login_challenge={lc}"),
        &json!({"subject": "mallory"}),
    )
    .expect(400);
    let a = put_json(
        s,
        &format!("/admin/oauth2/auth/requests/login/accept?login_challenge={lc}"),
        &json!({"subject": "dave"}),
    );
    let r = jar.get(s, &local(a.json()["redirect_to"].as_str().unwrap()));
    assert_eq!(query_param(r.header("location").unwrap(), "error").as_deref(), Some("consent_required"));
}

#[test]
fn consent_and_login_sessions_can_be_listed_and_revoked() {
    let s = api();
    let rp = rp(s, json!({}));
    let mut jar = Jar::default();
    let (done, _, _) = flow_in(s, &mut jar, &rp, &[], true);
    let code = query_param(&done, "code").unwrap();
    let t = exchange(s, &rp, &code, Some(VERIFIER)).json();
    let at = t["access_token"].as_str().unwrap().to_string();
    let sub = bob(&rp);
    let list = Req::get(&format!("/admin/oauth2/auth/sessions/consent?subject={sub}")).send(s.admin);
    list.expect(200);
    let mine: Vec<Value> = list
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["consent_request"]["client"]["client_id"] == rp.id.as_str())
        .cloned()
        .collect();
    assert_eq!(mine.len(), 1, "{}", list.text());
    assert_eq!(mine[0]["grant_scope"], json!(["openid", "offline_access"]));
    assert_eq!(mine[0]["remember"], true);
    Req::get("/admin/oauth2/auth/sessions/consent").send(s.admin).expect(400);
    Req::new("DELETE", &format!("/admin/oauth2/auth/sessions/consent?subject={sub}")).send(s.admin).expect(400);

    assert!(is_active(s, &at));
    Req::new("DELETE", &format!("/admin/oauth2/auth/sessions/consent?subject={sub}&client={}", rp.id))
        .send(s.admin)
        .expect(204);
    assert!(!is_active(s, &at), "revoking the consent revokes its tokens");
    let after = Req::get(&format!("/admin/oauth2/auth/sessions/consent?subject={sub}")).send(s.admin).json();
    assert!(!after.as_array().unwrap().iter().any(|c| c["consent_request"]["client"]["client_id"] == rp.id.as_str()));

    // The login session still holds until revoked.
    let r = jar.get(s, &auth_path(&rp, &[]));
    let lc = query_param(r.header("location").unwrap(), "login_challenge").unwrap();
    assert_eq!(
        Req::get(&format!("/admin/oauth2/auth/requests/login?login_challenge={lc}")).send(s.admin).json()["skip"],
        true
    );
    Req::new("DELETE", "/admin/oauth2/auth/sessions/login").send(s.admin).expect(400);
    Req::new("DELETE", &format!("/admin/oauth2/auth/sessions/login?subject={sub}")).send(s.admin).expect(204);
    let r = jar.get(s, &auth_path(&rp, &[]));
    let lc = query_param(r.header("location").unwrap(), "login_challenge").unwrap();
    assert_eq!(
        Req::get(&format!("/admin/oauth2/auth/requests/login?login_challenge={lc}")).send(s.admin).json()["skip"],
        false
    );
}

#[test]
fn public_clients_use_pkce_and_revoking_a_refresh_token_revokes_the_grant() {
    let s = api();
    let public = rp(s, json!({"token_endpoint_auth_method": "none"}));
    let done = run_flow(s, &public, &[], &standard_login(), &standard_consent());
    let code = query_param(&done, "code").unwrap();
    let exchange_public = |verifier: Option<&str>| {
        let mut p = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CB),
            ("client_id", public.id.as_str()),
        ];
        if let Some(v) = verifier {
            p.push(("code_verifier", v));
        }
        Req::new("POST", "/oauth2/token").form(&p).send(s.public)
    };
    let t = exchange_public(Some(VERIFIER));
    t.expect(200);
    let t = t.json();
    let (at, rt) = (t["access_token"].as_str().unwrap(), t["refresh_token"].as_str().unwrap());
    // Revoking the refresh token revokes the access token of the same grant.
    Req::new("POST", "/oauth2/revoke").form(&[("token", rt), ("client_id", &public.id)]).send(s.public).expect(200);
    assert!(!is_active(s, at));
    assert!(!is_active(s, rt));
}

#[test]
fn pairwise_clients_see_their_own_subject() {
    let s = Opts::new("io_uring")
        .env("OIDC_SUBJECT_IDENTIFIERS_SUPPORTED_TYPES", "public,pairwise")
        .env("OIDC_SUBJECT_IDENTIFIERS_PAIRWISE_SALT", "pairwise-salt-0123")
        .start();
    let a = rp(&s, json!({"subject_type": "pairwise"}));
    let b = rp(&s, json!({"subject_type": "pairwise", "redirect_uris": ["https://other.example/cb"]}));
    let sub_of = |c: &Rp, cb: &str| {
        let mut jar = Jar::default();
        let path = auth_path(c, &[("redirect_uri", cb)]);
        let r = jar.get(&s, &path);
        jar.take(&r);
        let lc = query_param(r.header("location").unwrap(), "login_challenge").unwrap();
        let a = put_json(
            &s,
            &format!("/admin/oauth2/auth/requests/login/accept?login_challenge={lc}"),
            &json!({"subject": "erin"}),
        );
        let r = jar.get(&s, &local(a.json()["redirect_to"].as_str().unwrap()));
        jar.take(&r);
        let cc = query_param(r.header("location").unwrap(), "consent_challenge").unwrap();
        let a = put_json(
            &s,
            &format!("/admin/oauth2/auth/requests/consent/accept?consent_challenge={cc}"),
            &json!({"grant_scope": ["openid"]}),
        );
        let r = jar.get(&s, &local(a.json()["redirect_to"].as_str().unwrap()));
        let code = query_param(r.header("location").unwrap(), "code").unwrap();
        let t = Req::new("POST", "/oauth2/token")
            .basic(&c.id, &c.secret)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", cb),
                ("code_verifier", VERIFIER),
            ])
            .send(s.public)
            .json();
        let payload = t["id_token"].as_str().unwrap().split('.').nth(1).unwrap().to_string();
        use base64::Engine;
        let claims: Value =
            serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        // Introspection keeps the real subject, and names the client's as Hydra does.
        let i = introspect(&s, t["access_token"].as_str().unwrap());
        assert_eq!(i["sub"], "erin");
        assert_eq!(i["obfuscated_subject"], claims["sub"], "{i}");
        claims["sub"].as_str().unwrap().to_string()
    };
    let sa = sub_of(&a, CB);
    let sb = sub_of(&b, "https://other.example/cb");
    assert_ne!(sa, "erin");
    assert_ne!(sa, sb, "different sectors see different subjects");
    assert_eq!(sa.len(), 64);
}

#[test]
fn consent_sessions_are_listed_in_pages() {
    let s = api();
    let c = rp(s, json!({}));
    let mut jar = Jar::default();
    for _ in 0..3 {
        let (done, _, _) = flow_in(s, &mut jar, &c, &[("prompt", "consent")], true);
        assert!(query_param(&done, "code").is_some(), "{done}");
    }
    let sub = bob(&c);
    let first = Req::get(&format!("/admin/oauth2/auth/sessions/consent?subject={sub}&page_size=2")).send(s.admin);
    first.expect(200);
    assert_eq!(first.json().as_array().unwrap().len(), 2);
    assert_eq!(first.header("x-total-count"), Some("3"));
    let link = first.header("link").unwrap().to_string();
    assert!(link.contains("rel=\"next\""), "{link}");
    let next = link.trim_start_matches('<').split('>').next().unwrap();
    let second = Req::get(next).send(s.admin);
    assert_eq!(second.json().as_array().unwrap().len(), 1);
    assert!(second.header("link").is_none());
    let ids: std::collections::HashSet<String> = first
        .json()
        .as_array()
        .unwrap()
        .iter()
        .chain(second.json().as_array().unwrap())
        .map(|c| c["consent_request_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3, "pages do not overlap");
    Req::get(&format!("/admin/oauth2/auth/sessions/consent?subject={sub}&page_size=0")).send(s.admin).expect(400);
    // The page token is sealed: the plain offset of before, or this token for another subject,
    // is refused rather than serving another page.
    Req::get(&format!("/admin/oauth2/auth/sessions/consent?subject={sub}&page_token=2")).send(s.admin).expect(400);
    let token = next.split("page_token=").nth(1).unwrap();
    Req::get(&format!("/admin/oauth2/auth/sessions/consent?subject=someone-else&page_token={token}"))
        .send(s.admin)
        .expect(400);
}

/// A client registered with `userinfo_signed_response_alg: RS256` gets its userinfo as an RS256
/// JWT (`application/jwt`) with `iss` and `aud`, even when the newest ID-token key is ES256;
/// other clients get plain JSON.
#[test]
fn userinfo_is_signed_for_clients_that_ask() {
    let s = Opts::new("legacy").start();
    let signed = rp(&s, json!({"userinfo_signed_response_alg": "RS256"}));
    let plain = rp(&s, json!({}));
    let issuer = Req::get("/.well-known/openid-configuration").send(s.public).json()["issuer"].clone();
    let jwks = |s: &Server| -> Vec<hydra::jose::jwk::Jwk> {
        serde_json::from_value(Req::get("/.well-known/jwks.json").send(s.public).json()["keys"].clone()).unwrap()
    };
    let userinfo = |rp: &Rp| {
        let t = exchange(&s, rp, &code_for(&s, rp, &[]), Some(VERIFIER)).json();
        let at = field(&t, "access_token");
        (Req::get("/userinfo").header("Authorization", &format!("Bearer {at}")).send(s.public), field(&t, "id_token"))
    };
    Req::new("POST", "/admin/keys/hydra.openid.id-token")
        .json(&json!({"alg": "ES256", "kid": "newest-es256", "use": "sig"}))
        .send(s.admin)
        .expect(201);
    let (r, id_token) = userinfo(&signed);
    r.expect(200);
    assert_eq!(r.header("content-type"), Some("application/jwt"));
    r.assert_no_store();
    let v = hydra::jose::jws::verify(&r.text(), &jwks(&s)).expect("signed with a published key");
    assert_eq!(v.header["alg"], "RS256");
    let c: Value = serde_json::from_slice(&v.payload).unwrap();
    let id: Value = serde_json::from_str(&jwt_payload(&id_token)).unwrap();
    assert_eq!(c["sub"], id["sub"]);
    assert_eq!((c["iss"].clone(), c["aud"].clone()), (issuer, json!([signed.id])));
    assert_eq!(c["email"], "alice@example.com");
    assert!(c.get("nonce").is_none(), "{c}");
    let id_header: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, id_token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(id_header["alg"], "ES256", "ID tokens follow the newest key");
    let (r, _) = userinfo(&plain);
    assert!(r.expect(200).header("content-type").unwrap().starts_with("application/json"));
    assert_eq!(r.json()["email"], "alice@example.com");
    let d = Req::get("/.well-known/openid-configuration").send(s.public).json();
    assert_eq!(d["userinfo_signing_alg_values_supported"], json!(["none", "RS256"]));
}

/// Each token's stored `ext`, straight from the store the server at `dir` used (the embedded
/// store's files, or its PostgreSQL database).
fn stored_ext(dir: &std::path::Path, tokens: &[&str]) -> Vec<String> {
    let keys = hydra::token::TokenKeys::new(&[SECRET.to_string()]);
    let refs: Vec<_> = tokens.iter().map(|t| hydra::token::verify(&keys, t).expect("a token of this server")).collect();
    if postgres() {
        let dsn = pg_database(Some(dir));
        let db = dsn.rsplit('/').next().and_then(|d| d.split('?').next()).unwrap().to_string();
        let guard = cluster();
        let c = guard.as_ref().unwrap();
        return refs
            .iter()
            .map(|r| {
                let sql = format!("SELECT ext FROM hydra_rs_token WHERE part = {} AND seq = {}", r.partition, r.seq);
                c.psql_in(&db, &sql).unwrap()
            })
            .collect();
    }
    let store = hydra_storage::Store::open(dir, &Default::default()).unwrap();
    refs.iter()
        .map(|r| {
            let rec = hydra_storage::block_on(hydra_storage::Storage::get_token(&store, u32::from(r.partition), r.seq))
                .unwrap();
            rec.expect("the token's row").ext
        })
        .collect()
}

/// `oauth2.session.encrypt_at_rest` (on by default, as in Hydra): the claims on a grant's code,
/// refresh and access token rows are sealed in the store, on both backends, and every path that
/// reads them (code exchange, refresh, introspection, userinfo) still sees them. Turned off, new
/// rows are stored in the clear and the sealed ones still open.
#[test]
fn session_claims_are_sealed_at_rest_and_read_back_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Opts::new("io_uring").dir(dir.path());
    let s = opts.start();
    let rp = rp(&s, json!({}));
    let code = code_for(&s, &rp, &[]);
    let t = exchange(&s, &rp, &code, Some(VERIFIER));
    t.expect(200);
    let (at, rt) = (field(&t.json(), "access_token"), field(&t.json(), "refresh_token"));
    s.stop();
    for (ext, what) in stored_ext(dir.path(), &[&code, &at, &rt]).iter().zip(["code", "access token", "refresh token"])
    {
        assert!(ext.starts_with("~1."), "{what}: {ext}");
        assert!(!ext.contains("alice") && !ext.contains("gold"), "{what}: {ext}");
    }

    let s = opts.start();
    assert_eq!(introspect(&s, &at)["ext"], json!({"tier": "gold"}));
    let u = Req::get("/userinfo").header("Authorization", &format!("Bearer {at}")).send(s.public);
    u.expect(200);
    assert_eq!(u.json()["email"], "alice@example.com");
    let r = refresh(&s, &rp, &rt, None);
    r.expect(200);
    let (at2, rt2) = (field(&r.json(), "access_token"), field(&r.json(), "refresh_token"));
    assert_eq!(introspect(&s, &at2)["ext"], json!({"tier": "gold"}));
    s.stop();

    let plain = opts.clone().env("OAUTH2_SESSION_ENCRYPT_AT_REST", "false");
    let s = plain.start();
    assert_eq!(introspect(&s, &at2)["ext"], json!({"tier": "gold"}), "sealed rows still open");
    let r = refresh(&s, &rp, &rt2, None);
    r.expect(200);
    let at3 = field(&r.json(), "access_token");
    assert_eq!(r.json()["id_token"].as_str().map(|t| jwt_payload(t).contains("alice@example.com")), Some(true));
    s.stop();
    let ext = &stored_ext(dir.path(), &[&at3])[0];
    assert!(ext.starts_with('{') && ext.contains("gold"), "{ext}");
}

/// A grant outlives the secret its claims were first sealed under: once `secrets.system` has a
/// new first entry, a rotation seals the grant's claims again under it (rather than carrying the
/// value sealed under the old one along), so the old secret can then be dropped and the grant
/// still refreshes.
#[test]
fn sealed_claims_follow_a_rotation_of_the_system_secret() {
    let dir = tempfile::tempdir().unwrap();
    let new = "a-new-system-secret-0123456789";
    let s = Opts::new("io_uring").dir(dir.path()).start();
    let rp = rp(&s, json!({}));
    let t = exchange(&s, &rp, &code_for(&s, &rp, &[]), Some(VERIFIER));
    t.expect(200);
    let rt = field(&t.json(), "refresh_token");
    s.stop();

    let s = Opts::new("io_uring").dir(dir.path()).env("SECRETS_SYSTEM", &format!("{new},{SECRET}")).start();
    let r = refresh(&s, &rp, &rt, None);
    r.expect(200);
    let rt = field(&r.json(), "refresh_token");
    s.stop();

    let s = Opts::new("io_uring").dir(dir.path()).env("SECRETS_SYSTEM", new).start();
    let r = refresh(&s, &rp, &rt, None);
    r.expect(200);
    assert_eq!(introspect(&s, &field(&r.json(), "access_token"))["ext"], json!({"tier": "gold"}));
    s.stop();
}

/// Userinfo reads the grant's claims from its code's record, which the janitor used to delete
/// once the code had expired (`ttl.auth_code`), failing userinfo for the rest of the grant's
/// life. The spent code now stays while its grant has tokens, and goes once they are revoked.
#[test]
fn userinfo_answers_after_the_code_expired_and_the_janitor_ran() {
    // Two seconds: times are whole seconds, so a one-second code issued just before a second
    // boundary could expire before its own exchange.
    let s = Opts::new("io_uring").env("TTL_AUTH_CODE", "2s").env("ENGINE_JANITOR_INTERVAL", "1s").start();
    let scraped = |name: &str| metric(&scrape(&s), name).unwrap_or(0.0) as u64;
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}:\n{}", s.log());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    let rp = rp(&s, json!({}));
    let code = code_for(&s, &rp, &[]);
    let t = exchange(&s, &rp, &code, Some(VERIFIER));
    t.expect(200);
    let (at, rt) = (field(&t.json(), "access_token"), field(&t.json(), "refresh_token"));
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let passes = scraped("hydra_janitor_passes_total");
    wait_for("two janitor passes after the code expired", &|| scraped("hydra_janitor_passes_total") >= passes + 2);
    let userinfo = |at: &str| {
        let u = Req::get("/userinfo").header("Authorization", &format!("Bearer {at}")).send(s.public);
        u.expect(200);
        assert_eq!(u.json()["sub"], "alice");
        assert_eq!(u.json()["email"], "alice@example.com");
    };
    // The access token of the exchange, and of a rotation after it.
    userinfo(&at);
    let r = refresh(&s, &rp, &rt, None);
    r.expect(200);
    let (at2, rt2) = (field(&r.json(), "access_token"), field(&r.json(), "refresh_token"));
    userinfo(&at2);
    // Revoked, the grant has no token left: the next passes delete the spent code (the spent
    // refresh token has not expired, so it is the only row they may delete).
    let deleted = scraped("hydra_janitor_deleted_total{kind=\"tokens\"}");
    Req::new("POST", "/oauth2/revoke").basic(&rp.id, &rp.secret).form(&[("token", &rt2)]).send(s.public).expect(200);
    wait_for("the spent code was not swept once its grant was revoked", &|| {
        scraped("hydra_janitor_deleted_total{kind=\"tokens\"}") > deleted
    });
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert_eq!(scraped("hydra_janitor_deleted_total{kind=\"tokens\"}"), deleted + 1);
    s.stop();
}
