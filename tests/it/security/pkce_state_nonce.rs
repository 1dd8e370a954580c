//! `state`, `nonce` and PKCE abuse (RFC 6749 §4.1.1, §10.12; RFC 7636; RFC 9700 §2.1.1, §4.7,
//! §4.8; OIDC Core §3.1.2.1, §15.5.2).
//!
//! Invariants checked: `state` shorter than 8 characters is refused (Hydra's rule) and otherwise
//! comes back byte for byte, encoded, in every answer to the client; only S256 challenges are
//! accepted; a code bought with a challenge needs the one verifier that hashes to it, and a
//! verifier without a challenge is a downgrade attempt; the nonce appears once in the ID token,
//! exactly as sent.

use super::*;
use crate::harness::*;
use serde_json::{json, Value};

#[test]
fn pkce_and_redirect_uri_are_enforced_at_the_token_endpoint() {
    let s = api();
    let rp = rp(s, json!({}));
    // A wrong verifier burns the code (as fosite): the right one cannot follow it, so a verifier
    // cannot be guessed one attempt at a time.
    let code = code_of(&run_flow(s, &rp, &[], &standard_login(), &standard_consent()));
    exchange(s, &rp, &code, Some("wrong-verifier-wrong-verifier-wrong-verifier-x")).expect_error(400, "invalid_grant");
    exchange(s, &rp, &code, Some(VERIFIER)).expect_error(400, "invalid_grant");
    // So does a missing one.
    let code = code_of(&run_flow(s, &rp, &[], &standard_login(), &standard_consent()));
    exchange(s, &rp, &code, None).expect_error(400, "invalid_grant");
    exchange(s, &rp, &code, Some(VERIFIER)).expect_error(400, "invalid_grant");

    // Other refusals leave the code to its rightful client.
    let code = code_of(&run_flow(s, &rp, &[], &standard_login(), &standard_consent()));
    let r = Req::new("POST", "/oauth2/token")
        .basic(&rp.id, &rp.secret)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://rp.example/other"),
            ("code_verifier", VERIFIER),
        ])
        .send(s.public);
    r.expect_error(400, "invalid_grant");
    // Another client cannot redeem it.
    let other = self::rp(s, json!({}));
    exchange(s, &other, &code, Some(VERIFIER)).expect_error(400, "invalid_grant");
    // Those failed attempts did not spend the code.
    exchange(s, &rp, &code, Some(VERIFIER)).expect(200);

    // Without a challenge, a verifier is a downgrade attempt.
    let done = run_flow(
        s,
        &rp,
        &[("code_challenge", ""), ("code_challenge_method", "")],
        &standard_login(),
        &standard_consent(),
    );
    let code = query_param(&done, "code").unwrap();
    exchange(s, &rp, &code, Some(VERIFIER)).expect_error(400, "invalid_grant");
}

#[test]
fn form_post_response_mode_escapes_every_value() {
    let s = api();
    let rp = rp(s, json!({}));
    let mut jar = Jar::default();
    let r = jar.get(s, &auth_path(&rp, &[("response_mode", "form_post"), ("state", "\"><script>x</script>")]));
    jar.take(&r);
    let lc = query_param(r.header("location").unwrap(), "login_challenge").unwrap();
    let a = put_json(s, &format!("/admin/oauth2/auth/requests/login/reject?login_challenge={lc}"), &json!({}));
    let r = jar.get(s, &local(a.json()["redirect_to"].as_str().unwrap()));
    r.expect(200);
    let html = r.text();
    assert!(html.contains("<form") && html.contains("method=\"post\""), "{html}");
    assert!(!html.contains("<script>x</script>"), "{html}");
    assert!(html.contains("&lt;script&gt;"), "{html}");
}

/// A `state` below Hydra's 8-character minimum, or none at all, is `invalid_state` at the client
/// (the short value is still echoed, RFC 6749 §4.1.2.1); 8 characters are enough.
#[test]
fn short_or_missing_state_is_refused() {
    let s = api();
    let c = rp(s, json!({}));
    for short in ["1234567", "a", "ééééééé"] {
        let r = Req::get(&auth_path(&c, &[("state", short)])).send(s.public);
        let loc = expect_client_error(&r, "invalid_state");
        assert_eq!(query_param(&loc, "state").as_deref(), Some(short), "{loc}");
        assert!(set_cookie(&r).is_empty(), "no flow for a refused request: {:?}", r.headers);
    }
    let r = Req::get(&auth_path(&c, &[("state", "")])).send(s.public);
    let loc = expect_client_error(&r, "invalid_state");
    assert_eq!(param_count(&loc, "state"), 0, "no state to echo: {loc}");
    let r = Req::get(&auth_path(&c, &[("state", "12345678")])).send(s.public);
    assert!(location(&r).contains("login_challenge="), "{:?}", r.header("location"));
}

/// Whatever bytes the client put in `state` come back exactly once and exactly as sent, encoded
/// so that they cannot add parameters or break out of the URL: on success, on an error before
/// the login app, and on a rejection by the login app.
#[test]
fn state_is_echoed_exactly_and_never_unescaped() {
    let s = api();
    let c = rp(s, json!({}));
    let tricky = [
        "state-0123456789&code=forged&iss=https://evil.example",
        "\"><script>alert(1)</script>",
        "line\r\nSet-Cookie: injected=1",
        "a b+c%20d%zz#frag?x=y",
        "ünïcødé-状態-🔒🔒🔒",
        "javascript:alert(1)//-----",
    ];
    let check = |loc: &str, state: &str, what: &str| {
        assert_eq!(param_count(loc, "state"), 1, "{what}: {loc}");
        assert_eq!(query_param(loc, "state").as_deref(), Some(state), "{what}: {loc}");
        assert!(param_count(loc, "code") <= 1 && param_count(loc, "iss") <= 1, "{what}: {loc}");
        assert!(
            loc.bytes().all(|b| b.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&b)),
            "{what}: unescaped bytes in {loc:?}"
        );
    };
    for state in tricky {
        // Success: the code comes with the state.
        let done = run_flow(s, &c, &[("state", state)], &standard_login(), &standard_consent());
        check(&done, state, "success");
        assert!(done.starts_with(&format!("{CB}?code=")), "{done}");
        // An error before the login app (prompt=none without a session).
        let r = Req::get(&auth_path(&c, &[("state", state), ("prompt", "none")])).send(s.public);
        check(&expect_client_error(&r, "login_required"), state, "login_required");
        // The login app rejects.
        let mut jar = Jar::default();
        let lc = start(s, &mut jar, &c, &[("state", state)]);
        let back = redirect_to(&put_json(
            s,
            &format!("/admin/oauth2/auth/requests/login/reject?login_challenge={}", form_escape(&lc)),
            &json!({"error": "access_denied"}),
        ));
        let r = jar.get(s, &local(&back));
        check(&expect_client_error(&r, "access_denied"), state, "rejected");
    }
}

/// Only S256 challenges: `plain` (also implied by an absent method), unknown or miscased methods,
/// and challenges that are not the base64url of 32 bytes are `invalid_request` at the client.
#[test]
fn only_well_formed_s256_challenges_are_accepted() {
    let s = api();
    let c = rp(s, json!({}));
    let cases: [(&str, &str); 11] = [
        (CHALLENGE, "plain"),
        (CHALLENGE, ""),
        (CHALLENGE, "s256"),
        (CHALLENGE, "S512"),
        (CHALLENGE, "S256 "),
        ("", "S256"),
        ("short", "S256"),
        ("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM=", "S256"),
        ("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM", "S256"),
        ("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cMx", "S256"),
        (VERIFIER, "plain"),
    ];
    for (challenge, method) in cases {
        let r = Req::get(&auth_path(&c, &[("code_challenge", challenge), ("code_challenge_method", method)]))
            .send(s.public);
        let loc = expect_client_error(&r, "invalid_request");
        assert_eq!(query_param(&loc, "state").as_deref(), Some("state-0123456789"), "{loc}");
        assert!(set_cookie(&r).is_empty(), "{challenge:?}/{method:?}: {:?}", r.headers);
    }
}

/// RFC 7636 §4.1: a verifier is 43–128 characters of `[A-Za-z0-9-._~]`. One outside that syntax
/// is refused even when its S256 hash is the challenge, and the refusal does not spend the code;
/// the extremes of the syntax work.
#[test]
fn verifiers_outside_the_rfc_7636_syntax_are_refused() {
    let s = api();
    let c = rp(s, json!({}));
    let bad = [
        "a".repeat(42),
        "a".repeat(129),
        format!("{}+", "a".repeat(42)),
        format!("{}/", "a".repeat(42)),
        format!("{} ", "a".repeat(42)),
        format!("{}=", "a".repeat(42)),
        format!("{}%", "a".repeat(42)),
        format!("{}é", "a".repeat(42)),
    ];
    for v in &bad {
        let code = code_for(s, &c, &[("code_challenge", &challenge_of(v))]);
        let r = exchange(s, &c, &code, Some(v));
        r.expect_error(400, "invalid_grant");
        r.assert_no_store();
    }
    let good = [
        "A".repeat(43),
        "z".repeat(128),
        format!("{}-._~", "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".repeat(2)),
    ];
    for v in &good {
        // A near miss is refused (and burns its code); the verifier itself buys tokens.
        let code = code_for(s, &c, &[("code_challenge", &challenge_of(v))]);
        let mut other = v.clone();
        other.replace_range(..1, if v.starts_with('A') { "B" } else { "A" });
        exchange(s, &c, &code, Some(&other)).expect_error(400, "invalid_grant");
        let code = code_for(s, &c, &[("code_challenge", &challenge_of(v))]);
        exchange(s, &c, &code, Some(v.as_str())).expect(200);
    }
}

fn id_token_of(r: &Response) -> String {
    r.expect(200);
    field(&r.json(), "id_token")
}

/// The nonce is carried into the ID token once, exactly as sent; a refreshed ID token carries it
/// unchanged or not at all (OIDC Core §12.2); without a nonce there is none; an oversized one is
/// refused at the authorization endpoint.
#[test]
fn nonce_reaches_the_id_token_exactly_once() {
    let s = api();
    let c = rp(s, json!({}));
    let nonce = "n-0S6_WzA2Mj \"quoted\" & <tag> ünï 🔒 \\u0041";
    let code = code_for(s, &c, &[("nonce", nonce)]);
    let r = exchange(s, &c, &code, Some(VERIFIER));
    let tokens = r.json();
    let id = id_token_of(&r);
    let raw = jwt_payload(&id);
    assert_eq!(raw.matches("\"nonce\"").count(), 1, "{raw}");
    let claims: Value = serde_json::from_str(&raw).expect("ID token payload is JSON");
    assert_eq!(claims["nonce"], nonce, "{raw}");
    // Refresh: the same nonce or none.
    let r = Req::new("POST", "/oauth2/token")
        .basic(&c.id, &c.secret)
        .form(&[("grant_type", "refresh_token"), ("refresh_token", &field(&tokens, "refresh_token"))])
        .send(s.public);
    let raw = jwt_payload(&id_token_of(&r));
    let refreshed: Value = serde_json::from_str(&raw).expect("JSON");
    assert!(refreshed.get("nonce").is_none() || refreshed["nonce"] == nonce, "{raw}");
    assert!(raw.matches("\"nonce\"").count() <= 1, "{raw}");
    // The replayed code buys no second ID token.
    exchange(s, &c, &code, Some(VERIFIER)).expect_error(400, "invalid_grant");

    // No nonce asked: none in the token.
    let code = code_for(s, &c, &[("nonce", "")]);
    let raw = jwt_payload(&id_token_of(&exchange(s, &c, &code, Some(VERIFIER))));
    assert!(!raw.contains("\"nonce\""), "{raw}");

    // Another flow's nonce never leaks into this one.
    let code_a = code_for(s, &c, &[("nonce", "nonce-of-flow-a")]);
    let code_b = code_for(s, &c, &[("nonce", "nonce-of-flow-b")]);
    let a: Value =
        serde_json::from_str(&jwt_payload(&id_token_of(&exchange(s, &c, &code_a, Some(VERIFIER))))).expect("JSON");
    let b: Value =
        serde_json::from_str(&jwt_payload(&id_token_of(&exchange(s, &c, &code_b, Some(VERIFIER))))).expect("JSON");
    assert_eq!((a["nonce"].as_str(), b["nonce"].as_str()), (Some("nonce-of-flow-a"), Some("nonce-of-flow-b")));

    // Oversized.
    let r = Req::get(&auth_path(&c, &[("nonce", &"n".repeat(513))])).send(s.public);
    expect_client_error(&r, "invalid_request");
}

/// A nonce shorter than 8 characters is refused with `insufficient_entropy` (fosite's minimum
/// parameter entropy), at the client with its `state`, and no flow starts.
#[test]
fn a_short_nonce_is_insufficient_entropy() {
    let s = api();
    let rp = rp(s, json!({}));
    for nonce in ["abc", "1234567"] {
        let r = Req::get(&auth_path(&rp, &[("nonce", nonce)])).send(s.public);
        let loc = expect_client_error(&r, "insufficient_entropy");
        assert_eq!(query_param(&loc, "state").as_deref(), Some("state-0123456789"), "{loc}");
        assert!(query_param(&loc, "code").is_none() && query_param(&loc, "login_challenge").is_none());
    }
    let r = Req::get(&auth_path(&rp, &[("nonce", "12345678")])).send(s.public);
    assert!(query_param(&location(&r), "login_challenge").is_some(), "{}", location(&r));
}
