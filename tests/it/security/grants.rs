//! Grant abuse at the token endpoint (RFC 6749 §4.1.2, §4.1.3, §6, §10.5; RFC 9700 §2.2.2,
//! §4.14): replayed codes, codes presented by another client or for another redirect URI,
//! refresh token reuse and races, and scope widening on refresh.
//!
//! Invariants checked: a code buys tokens once, and its replay revokes everything it bought; a
//! failed redemption (wrong client or redirect URI) does not spend the code, a wrong PKCE
//! verifier does (as fosite); a reused
//! refresh token revokes the whole grant; of concurrent refreshes exactly one wins; a refresh
//! never widens the grant's scope.

use super::*;
use crate::harness::*;
use serde_json::json;

#[test]
fn a_replayed_code_fails_and_revokes_what_it_bought() {
    let s = api();
    let rp = rp(s, json!({}));
    let done = run_flow(s, &rp, &[], &standard_login(), &standard_consent());
    let code = query_param(&done, "code").unwrap();
    let t = exchange(s, &rp, &code, Some(VERIFIER));
    t.expect(200);
    let at = t.json()["access_token"].as_str().unwrap().to_string();
    assert!(is_active(s, &at));
    exchange(s, &rp, &code, Some(VERIFIER)).expect_error(400, "invalid_grant");
    assert!(!is_active(s, &at), "a replayed code revokes the tokens it was exchanged for");
}

#[test]
fn concurrent_refreshes_of_one_token_yield_exactly_one_success() {
    let s = api();
    let c = rp(s, json!({}));
    let done = run_flow(s, &c, &[], &standard_login(), &standard_consent());
    let code = query_param(&done, "code").unwrap();
    let rt = exchange(s, &c, &code, Some(VERIFIER)).json()["refresh_token"].as_str().unwrap().to_string();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (rt, id, secret, barrier) = (rt.clone(), c.id.clone(), c.secret.clone(), barrier.clone());
            let addr = s.public;
            std::thread::spawn(move || {
                let req = Req::new("POST", "/oauth2/token")
                    .basic(&id, &secret)
                    .form(&[("grant_type", "refresh_token"), ("refresh_token", &rt)]);
                barrier.wait();
                req.send(addr)
            })
        })
        .collect();
    let answers: Vec<Response> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok: Vec<&Response> = answers.iter().filter(|r| r.status == 200).collect();
    assert_eq!(ok.len(), 1, "{:?}", answers.iter().map(|r| r.status).collect::<Vec<_>>());
    for r in answers.iter().filter(|r| r.status != 200) {
        assert_eq!(r.json()["error"], "invalid_grant");
    }
}

/// RFC 6749 §4.1.2: the replay revokes all tokens "previously issued based on that authorization
/// code" — including the ones a refresh derived from them.
#[test]
fn a_replayed_code_revokes_the_refresh_chain_it_started() {
    let s = api();
    let c = rp(s, json!({}));
    let code = code_for(s, &c, &[]);
    let t1 = exchange(s, &c, &code, Some(VERIFIER));
    t1.expect(200);
    let t1 = t1.json();
    let t2 = refresh(s, &c, &field(&t1, "refresh_token"), None);
    t2.expect(200);
    let t2 = t2.json();
    let (at2, rt2) = (field(&t2, "access_token"), field(&t2, "refresh_token"));
    assert!(is_active(s, &at2) && is_active(s, &rt2));
    exchange(s, &c, &code, Some(VERIFIER)).expect_error(400, "invalid_grant");
    for t in [field(&t1, "access_token"), field(&t1, "refresh_token"), at2, rt2.clone()] {
        assert!(!is_active(s, &t), "still active after the code replay: {t}");
    }
    refresh(s, &c, &rt2, None).expect_error(400, "invalid_grant");
    // A third presentation is refused as well (and still issues nothing).
    exchange(s, &c, &code, Some(VERIFIER)).expect_error(400, "invalid_grant");
}

/// RFC 6749 §4.1.3: the code was issued to this client, for this redirect URI. Other clients and
/// other URIs are refused with `invalid_grant`, and none of those attempts spends the code.
#[test]
fn a_code_is_bound_to_its_client_and_redirect_uri() {
    let s = api();
    let c = rp(s, json!({}));
    let other = rp(s, json!({}));
    let public = rp(s, json!({"token_endpoint_auth_method": "none"}));
    let code = code_for(s, &c, &[]);
    let attempt = |id: &str, secret: Option<&str>, redirect: Option<&str>| {
        let mut p = vec![("grant_type", "authorization_code"), ("code", code.as_str()), ("code_verifier", VERIFIER)];
        if let Some(r) = redirect {
            p.push(("redirect_uri", r));
        }
        let req = match secret {
            Some(sec) => Req::new("POST", "/oauth2/token").basic(id, sec).form(&p),
            None => {
                p.push(("client_id", id));
                Req::new("POST", "/oauth2/token").form(&p)
            }
        };
        req.send(s.public)
    };
    attempt(&other.id, Some(&other.secret), Some(CB)).expect_error(400, "invalid_grant");
    attempt(&public.id, None, Some(CB)).expect_error(400, "invalid_grant");
    // The right client claiming to be public (no secret) is not authenticated at all.
    attempt(&c.id, None, Some(CB)).expect_error(401, "invalid_client");
    for redirect in
        [None, Some("https://rp.example/cb/"), Some("https://rp.example/CB"), Some("https://evil.example/cb")]
    {
        attempt(&c.id, Some(&c.secret), redirect).expect_error(400, "invalid_grant");
    }
    // None of that spent it.
    let t = attempt(&c.id, Some(&c.secret), Some(CB));
    t.expect(200);
    assert!(is_active(s, &field(&t.json(), "access_token")));

    // A public client's code is its own too.
    let code = code_for(s, &public, &[]);
    let r = Req::new("POST", "/oauth2/token")
        .basic(&c.id, &c.secret)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ])
        .send(s.public);
    r.expect_error(400, "invalid_grant");
    // When the authorization request named no redirect URI, the token request need not either.
    let code = code_for(s, &c, &[("redirect_uri", "")]);
    let r = Req::new("POST", "/oauth2/token")
        .basic(&c.id, &c.secret)
        .form(&[("grant_type", "authorization_code"), ("code", &code), ("code_verifier", VERIFIER)])
        .send(s.public);
    r.expect(200);
}

/// RFC 9700 §4.14.2: a refresh token used twice means one of the two users is an attacker, so the
/// whole grant dies: the old and new access tokens and the new refresh token. A refresh token
/// presented by another client is refused without side effects (RFC 6749 §6).
#[test]
fn refresh_token_reuse_revokes_the_family() {
    let s = api();
    let c = rp(s, json!({}));
    let other = rp(s, json!({}));
    let t1 = exchange(s, &c, &code_for(s, &c, &[]), Some(VERIFIER)).json();
    let (at1, rt1) = (field(&t1, "access_token"), field(&t1, "refresh_token"));
    // Another client: refused, and the token still works for its owner.
    refresh(s, &other, &rt1, None).expect_error(400, "invalid_grant");
    let t2 = refresh(s, &c, &rt1, None);
    t2.expect(200);
    let t2 = t2.json();
    let (at2, rt2) = (field(&t2, "access_token"), field(&t2, "refresh_token"));
    assert_ne!(rt1, rt2, "rotated");
    assert!(!is_active(s, &at1), "the rotated token's access token is revoked");
    assert!(is_active(s, &at2) && is_active(s, &rt2));
    // The reuse.
    let r = refresh(s, &c, &rt1, None);
    r.expect_error(400, "invalid_grant");
    r.assert_no_store();
    for t in [&at1, &rt1, &at2, &rt2] {
        assert!(!is_active(s, t), "still active after reuse: {t}");
    }
    refresh(s, &c, &rt2, None).expect_error(400, "invalid_grant");
}

/// RFC 6749 §6: "The requested scope MUST NOT include any scope not originally granted". A
/// refused widening does not spend the refresh token; a narrowed refresh keeps the grant's scope
/// on the new refresh token.
#[test]
fn scope_cannot_be_widened_on_refresh() {
    let s = api();
    let c = rp(s, json!({}));
    let t = exchange(s, &c, &code_for(s, &c, &[]), Some(VERIFIER)).json();
    assert_eq!(t["scope"], "openid offline_access");
    let rt = field(&t, "refresh_token");
    // `profile` is allowed for the client but was not granted; `admin` is not even allowed.
    for wider in ["openid offline_access profile", "profile", "admin", "openid offline_access openid.*", "*"] {
        let r = refresh(s, &c, &rt, Some(wider));
        r.expect_error(400, "invalid_scope");
        r.assert_no_store();
    }
    assert!(is_active(s, &rt), "a refused refresh does not spend the token");
    let narrowed = refresh(s, &c, &rt, Some("openid"));
    narrowed.expect(200);
    let narrowed = narrowed.json();
    assert_eq!(narrowed["scope"], "openid");
    assert_eq!(introspect(s, &field(&narrowed, "access_token"))["scope"], "openid");
    let again = refresh(s, &c, &field(&narrowed, "refresh_token"), None);
    again.expect(200);
    assert_eq!(again.json()["scope"], "openid offline_access", "the grant keeps its scope");
}

/// A token of one kind is never accepted as another, and forgeries are `invalid_grant`.
#[test]
fn tokens_are_not_accepted_as_another_kind() {
    let s = api();
    let c = rp(s, json!({}));
    let code = code_for(s, &c, &[]);
    let t = exchange(s, &c, &code, Some(VERIFIER)).json();
    let (at, rt, id) = (field(&t, "access_token"), field(&t, "refresh_token"), field(&t, "id_token"));
    let unused_code = code_for(s, &c, &[]);
    let last = if rt.ends_with('A') { "B" } else { "A" };
    let forged = format!("{}{last}", &rt[..rt.len() - 1]);
    for not_rt in [&at, &code, &unused_code, &id, &forged, &"ory_rt_x.y".to_string(), &"garbage".to_string()] {
        refresh(s, &c, not_rt, None).expect_error(400, "invalid_grant");
    }
    for not_code in [&at, &rt, &id, &"ory_ac_x.y".to_string()] {
        exchange(s, &c, not_code, Some(VERIFIER)).expect_error(400, "invalid_grant");
    }
    // None of it disturbed the real tokens.
    assert!(is_active(s, &at) && is_active(s, &rt));
    exchange(s, &c, &unused_code, Some(VERIFIER)).expect(200);
}

/// A refresh is checked against the client as it is now (fosite): once an admin removed a scope
/// or an audience from the client, a grant that holds it cannot be refreshed.
#[test]
fn a_refresh_needs_the_clients_current_scopes_and_audiences() {
    let s = api();
    let c = rp(s, json!({"audience": ["https://api.example/"]}));
    let consent =
        json!({"grant_scope": ["openid", "offline_access"], "grant_access_token_audience": ["https://api.example/"]});
    let grant = |c: &Rp| {
        let done = run_flow(s, c, &[("audience", "https://api.example/")], &standard_login(), &consent);
        let t = exchange(s, c, &code_of(&done), Some(VERIFIER));
        t.expect(200);
        assert!(t.json()["refresh_token"].is_string(), "{}", t.text());
        t.json()["refresh_token"].as_str().unwrap().to_string()
    };
    let (rt1, rt2) = (grant(&c), grant(&c));
    let patch = |ops: serde_json::Value| {
        Req::new("PATCH", &format!("/admin/clients/{}", c.id)).json(&ops).send(s.admin).expect(200);
    };
    // The scope goes: the grant holding it ends.
    patch(json!([{"op": "replace", "path": "/scope", "value": "openid"}]));
    let r = refresh(s, &c, &rt1, None);
    r.expect_error(400, "invalid_scope");
    patch(json!([{"op": "replace", "path": "/scope", "value": "openid offline_access profile"}]));
    // The audience goes: likewise.
    patch(json!([{"op": "replace", "path": "/audience", "value": []}]));
    let r = refresh(s, &c, &rt2, None);
    r.expect_error(400, "invalid_request");
    assert!(r.json().get("access_token").is_none());
    // Restored, the untouched grant refreshes again.
    patch(json!([{"op": "replace", "path": "/audience", "value": ["https://api.example/"]}]));
    refresh(s, &c, &rt2, None).expect(200);
}
