//! Area 5: revocation.

use crate::harness::*;
use serde_json::json;

#[test]
fn revoke_own_token() {
    let s = api();
    let (id, secret) = cc_client(s, "a");
    let tok = access_token(s, &id, &secret);
    let r = revoke(s, &id, &secret, &tok);
    r.expect(200);
    assert!(r.body.is_empty(), "{:?}", r.text());
    r.assert_no_store();
    assert!(!is_active(s, &tok));
    // Revoking again is still 200.
    revoke(s, &id, &secret, &tok).expect(200);
    // client_secret_post works at the revocation endpoint too.
    let (pid, psecret) = cc_client_with(s, json!({"scope": "a", "token_endpoint_auth_method": "client_secret_post"}));
    let r = Req::new("POST", "/oauth2/token")
        .form(&[("grant_type", "client_credentials"), ("client_id", &pid), ("client_secret", &psecret)])
        .send(s.public);
    let ptok = r.json()["access_token"].as_str().unwrap().to_string();
    Req::new("POST", "/oauth2/revoke")
        .form(&[("token", &ptok), ("client_id", &pid), ("client_secret", &psecret)])
        .send(s.public)
        .expect(200);
    assert!(!is_active(s, &ptok));
}

#[test]
fn revoke_other_clients_token_is_refused() {
    let s = api();
    let (a, asec) = cc_client(s, "a");
    let (b, bsec) = cc_client(s, "a");
    let tok = access_token(s, &a, &asec);
    // RFC 7009 §2.1 and current fosite: refused, and the client is told.
    let r = revoke(s, &b, &bsec, &tok);
    r.expect_error(400, "unauthorized_client");
    r.assert_no_store();
    assert!(is_active(s, &tok), "another client's token stays active");
}

#[test]
fn revoke_unknown_and_garbage_tokens() {
    let s = api();
    let (id, secret) = cc_client(s, "a");
    let tok = access_token(s, &id, &secret);
    let forged = format!("{}A", &tok[..tok.len() - 1]);
    for t in ["garbage", "ory_at_abc.def", forged.as_str(), "ory_rt_x.y"] {
        let r = revoke(s, &id, &secret, t);
        r.expect(200);
        assert!(r.body.is_empty());
    }
    if forged != tok {
        assert!(is_active(s, &tok), "a forged sibling does not revoke the real token");
    }
}

#[test]
fn revoke_errors() {
    let s = api();
    let (id, secret) = cc_client(s, "a");
    let tok = access_token(s, &id, &secret);
    let r = Req::new("POST", "/oauth2/revoke")
        .form(&[("token_type_hint", "access_token")])
        .basic(&id, &secret)
        .send(s.public);
    r.expect_error(400, "invalid_request");
    r.assert_no_store();
    let r = revoke(s, &id, "wrong-secret", &tok);
    r.expect_error(401, "invalid_client");
    assert!(r.header("www-authenticate").is_some());
    r.assert_no_store();
    revoke(s, "unknown-client-xyz", "whatever", &tok).expect_error(401, "invalid_client");
    assert!(is_active(s, &tok), "failed revocations revoke nothing");
    // Token in the query string.
    Req::new("POST", &format!("/oauth2/revoke?token={tok}"))
        .form(&[("client_id", &id)])
        .basic(&id, &secret)
        .send(s.public)
        .expect_error(400, "invalid_request");
}

/// `DELETE /admin/oauth2/tokens?client_id=` ends every token of the client issued before it, as
/// `docs/compat.md` says: codes and refresh tokens too, at once (not only once the janitor has
/// deleted them), and a refresh token so ended cannot be rotated into live successors. Client
/// deletion and re-creation under the same id does the same. The client's new grants work.
#[test]
fn revoking_a_clients_tokens_ends_its_codes_and_refresh_tokens() {
    use crate::browser::*;
    let s = api();
    let rp = rp(s, json!({}));
    let pending = code_for(s, &rp, &[]);
    let t = exchange(s, &rp, &code_for(s, &rp, &[]), Some(VERIFIER));
    t.expect(200);
    let rt = field(&t.json(), "refresh_token");
    Req::new("DELETE", &format!("/admin/oauth2/tokens?client_id={}", form_escape(&rp.id))).send(s.admin).expect(204);
    exchange(s, &rp, &pending, Some(VERIFIER)).expect_error(400, "invalid_grant");
    refresh(s, &rp, &rt, None).expect_error(400, "invalid_grant");
    assert!(!is_active(s, &rt));
    // New grants of the same client are untouched.
    let t = exchange(s, &rp, &code_for(s, &rp, &[]), Some(VERIFIER));
    t.expect(200);
    let rt2 = field(&t.json(), "refresh_token");
    let r = refresh(s, &rp, &rt2, None);
    r.expect(200);
    let rt3 = field(&r.json(), "refresh_token");

    // Deleted and created again under the same id: the earlier client's grants stay dead.
    let pending = code_for(s, &rp, &[]);
    Req::new("DELETE", &format!("/admin/clients/{}", rp.id)).send(s.admin).expect(204);
    create_client(
        s,
        &json!({"client_id": rp.id, "client_secret": rp.secret, "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"], "redirect_uris": [CB], "scope": "openid offline_access profile"}),
    );
    refresh(s, &rp, &rt3, None).expect_error(400, "invalid_grant");
    exchange(s, &rp, &pending, Some(VERIFIER)).expect_error(400, "invalid_grant");
}
