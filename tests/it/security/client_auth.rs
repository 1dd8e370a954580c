//! Client authentication at the token and revocation endpoints (RFC 6749 §2.3, §2.3.1, §3.2.1,
//! §5.2; RFC 7617; RFC 9700 §4.x): one method per request, the registered method only, strict
//! Basic decoding, no credentials in the URL.
//!
//! Invariants checked: a request with two methods, a malformed Basic header or credentials in the
//! query string is refused before any client lookup with `400 invalid_request`; a method other
//! than the registered one, a wrong secret or a public client presenting a secret is
//! `401 invalid_client`; Basic credentials are form-url-decoded after base64. The timing side of
//! client authentication is in `client_auth_timing.rs`.

use super::*;
use crate::harness::*;
use base64::Engine;
use serde_json::json;

fn post_client(s: &Server, scope: &str) -> (String, String) {
    cc_client_with(s, json!({"scope": scope, "token_endpoint_auth_method": "client_secret_post"}))
}

fn post_req(id: &str, secret: &str, extra: &[(&str, &str)]) -> Req {
    let mut pairs = vec![("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret)];
    pairs.extend_from_slice(extra);
    Req::new("POST", "/oauth2/token").form(&pairs)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A client_credentials request with exactly this Authorization header.
fn with_authorization(value: &str) -> Req {
    Req::new("POST", "/oauth2/token").form(&[("grant_type", "client_credentials")]).header("Authorization", value)
}

#[test]
fn method_mismatch_is_invalid_client() {
    let s = api();
    let (bid, bsecret) = cc_client(s, "a");
    let r = post_req(&bid, &bsecret, &[]).send(s.public);
    r.expect_error(401, "invalid_client");
    r.assert_no_store();
    assert!(r.header("www-authenticate").is_none(), "no Basic used");
    let (pid, psecret) = post_client(s, "a");
    let r = token_req(&pid, &psecret, &[]).send(s.public);
    r.expect_error(401, "invalid_client");
    assert!(r.header("www-authenticate").is_some_and(|v| v.starts_with("Basic")));
}

#[test]
fn credentials_and_content_type_rules() {
    let s = api();
    let (id, secret) = cc_client(s, "a");
    let (pid, psecret) = post_client(s, "a");
    // client_secret in the query string.
    let r = Req::new("POST", &format!("/oauth2/token?client_secret={psecret}"))
        .form(&[("grant_type", "client_credentials"), ("client_id", &pid)])
        .send(s.public);
    r.expect_error(400, "invalid_request");
    r.assert_no_store();
    // Wrong content type.
    let mut req = Req::new("POST", "/oauth2/token").basic(&id, &secret).header("Content-Type", "application/json");
    req.body = br#"{"grant_type":"client_credentials"}"#.to_vec();
    let r = req.send(s.public);
    r.expect_error(400, "invalid_request");
    r.assert_no_store();
    // No content type.
    let mut req = Req::new("POST", "/oauth2/token").basic(&id, &secret);
    req.body = b"grant_type=client_credentials".to_vec();
    req.send(s.public).expect_error(400, "invalid_request");
    // Content type with a charset parameter is fine.
    let mut req = Req::new("POST", "/oauth2/token")
        .basic(&id, &secret)
        .header("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8");
    req.body = b"grant_type=client_credentials".to_vec();
    req.send(s.public).expect(200);
    // A form in another charset would be decoded as UTF-8 and change what the client sent.
    for ct in [
        "application/x-www-form-urlencoded; charset=iso-8859-1",
        "application/x-www-form-urlencoded; charset=\"windows-1252\"",
    ] {
        for path in ["/oauth2/token", "/oauth2/revoke"] {
            let mut req = Req::new("POST", path).basic(&id, &secret).header("Content-Type", ct);
            req.body = b"grant_type=client_credentials&token=x".to_vec();
            let r = req.send(s.public);
            r.expect_error(400, "invalid_request");
            assert!(r.text().contains("UTF-8"), "{path} {ct}: {}", r.text());
        }
    }
    let mut req = Req::new("POST", "/admin/oauth2/introspect")
        .header("Content-Type", "application/x-www-form-urlencoded; charset=iso-8859-1");
    req.body = b"token=x".to_vec();
    req.send(s.admin).expect_error(400, "invalid_request");
    // Basic and a client assertion (RFC 7521) in the body: two methods, no token.
    for body in [
        vec![("grant_type", "client_credentials"), ("client_assertion", "eyJhbGciOiJub25lIn0.e30.")],
        vec![
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", "eyJhbGciOiJub25lIn0.e30."),
        ],
    ] {
        let r = Req::new("POST", "/oauth2/token").form(&body).basic(&id, &secret).send(s.public);
        r.expect_error(400, "invalid_request");
        assert!(r.json().get("access_token").is_none());
    }
    // Basic and client_secret in the body.
    let r = Req::new("POST", "/oauth2/token")
        .form(&[("grant_type", "client_credentials"), ("client_secret", &secret)])
        .basic(&id, &secret)
        .send(s.public);
    r.expect_error(400, "invalid_request");
    r.assert_no_store();
    // Malformed Basic header.
    let r = Req::new("POST", "/oauth2/token")
        .form(&[("grant_type", "client_credentials")])
        .header("Authorization", "Basic !!!notbase64")
        .send(s.public);
    r.expect_error(400, "invalid_request");
}

/// RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in each request."
/// Basic plus a body secret, or Basic plus a different body `client_id`, at both endpoints that
/// authenticate clients, for clients registered either way.
#[test]
fn two_authentication_methods_in_one_request_are_refused() {
    let s = api();
    let (bid, bsecret) = cc_client(s, "a");
    let (pid, psecret) = post_client(s, "a");
    let tok = access_token(s, &bid, &bsecret);
    let cases = [
        // (Basic as, body)
        ((&bid, &bsecret), vec![("client_id", bid.as_str()), ("client_secret", bsecret.as_str())]),
        ((&bid, &bsecret), vec![("client_secret", "wrong-secret")]),
        ((&pid, &psecret), vec![("client_id", pid.as_str()), ("client_secret", psecret.as_str())]),
        ((&bid, &bsecret), vec![("client_id", pid.as_str()), ("client_secret", psecret.as_str())]),
        ((&bid, &bsecret), vec![("client_id", pid.as_str())]),
    ];
    for ((id, secret), body) in &cases {
        let mut p = vec![("grant_type", "client_credentials")];
        p.extend(body.iter().copied());
        let r = Req::new("POST", "/oauth2/token").basic(id, secret).form(&p).send(s.public);
        let v = r.expect_error(400, "invalid_request");
        r.assert_no_store();
        assert!(v.get("access_token").is_none(), "{v}");
        let mut p = vec![("token", tok.as_str())];
        p.extend(body.iter().copied());
        let r = Req::new("POST", "/oauth2/revoke").basic(id, secret).form(&p).send(s.public);
        r.expect_error(400, "invalid_request");
    }
    assert!(is_active(s, &tok), "no refused revocation took effect");
    // The same client_id in the body as in Basic is one method, not two.
    let r = Req::new("POST", "/oauth2/token")
        .basic(&bid, &bsecret)
        .form(&[("grant_type", "client_credentials"), ("client_id", &bid)])
        .send(s.public);
    r.expect(200);
}

/// Two Basic headers for two different clients: RFC 6749 §5.2 names a request that "includes
/// multiple credentials" as `invalid_request`, and `Authorization` is not a list field, so a
/// message may carry only one (RFC 9110 §5.3, §11.6.2). Refused, never resolved by picking one.
#[test]
fn two_authorization_headers_are_refused() {
    let s = api();
    let (a, asec) = cc_client(s, "a");
    let (b, bsec) = cc_client(s, "a");
    let r = Req::new("POST", "/oauth2/token")
        .form(&[("grant_type", "client_credentials")])
        .basic(&a, &asec)
        .basic(&b, &bsec)
        .send(s.public);
    let v = r.expect_json_error(400);
    assert_eq!(v["error"], "invalid_request", "{v}");
    assert!(v.get("access_token").is_none(), "{v}");
}

/// RFC 7617 / RFC 6749 §2.3.1: anything that is not `base64(form-encoded id ":" form-encoded
/// secret)` is a malformed request (`400 invalid_request`), decided before any client lookup; the
/// scheme name is case-insensitive (RFC 9110 §11.1).
#[test]
fn malformed_basic_headers_are_refused() {
    let s = api();
    let (id, secret) = cc_client(s, "a");
    let huge_id = "i".repeat(10 * 1024);
    let malformed: Vec<(String, &str)> = vec![
        ("Basic !!!notbase64".into(), "not base64"),
        (format!("Basic {}", b64(format!("{id}{secret}").as_bytes())), "no colon"),
        ("Basic =".into(), "padding only"),
        (format!("Basic {}", b64(format!(":{secret}").as_bytes())), "empty id"),
        (format!("Basic {}", b64(b"a%zz:b")), "bad escape in id"),
        (format!("Basic {}", b64(format!("{id}:%4").as_bytes())), "truncated escape in secret"),
        (format!("Basic {}", b64(b"\xff\xfe:\xfd")), "decoded bytes not UTF-8"),
        (format!("Basic {}", b64(b"%ff%fe:%fd")), "escapes decode to invalid UTF-8"),
        (format!("Basic {}", b64(format!("{id}%00:{secret}").as_bytes())), "NUL in id"),
        ("Basic YWI6Yw".into(), "unpadded"),
        ("Basic Pz4_Ong=".into(), "base64url alphabet"),
        (format!("Basic {} {}", b64(format!("{id}:{secret}").as_bytes()), b64(b"x:y")), "two credentials"),
    ];
    for (h, what) in &malformed {
        let r = with_authorization(h).send(s.public);
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert_eq!(r.json()["error"], "invalid_request", "{what}: {}", r.text());
        r.assert_no_store();
    }
    // Raw bytes that are not UTF-8 in the header itself: refused at the HTTP layer.
    let raw_req = b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nAuthorization: Basic \xff\xfe\xfd\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\nConnection: close\r\n\r\ngrant_type=client_credentials";
    raw(s.public, raw_req).expect_error(400, "invalid_request");
    // No credentials after the scheme (trailing blanks are not part of a field value, RFC 9110
    // §5.5), or another scheme: nothing presented at all.
    for h in ["Basic", "Basic ", "Basic \t", "Bearer abc", "Digest username=\"x\""] {
        with_authorization(h).send(s.public).expect_error(401, "invalid_client");
    }
    // Huge but well-formed: an unknown client, not a crash; over the head limit: 431.
    let r = with_authorization(&basic(&huge_id, "x")).send(s.public);
    r.expect_error(401, "invalid_client");
    let r = with_authorization(&basic(&"i".repeat(16 * 1024), "x")).send(s.public);
    r.expect_json_error(431);
    // Scheme case and extra blanks do not matter.
    let creds = b64(format!("{id}:{secret}").as_bytes());
    for h in [format!("basic {creds}"), format!("BASIC {creds}"), format!("Basic   {creds}  ")] {
        with_authorization(&h).send(s.public).expect(200);
    }
}

/// RFC 6749 §2.3.1: client credentials "MUST NOT be included in the request URI" — at the token
/// and revocation endpoints, whatever else authenticates the request.
#[test]
fn credentials_in_the_query_string_are_refused() {
    let s = api();
    let (id, secret) = cc_client(s, "a");
    let (pid, psecret) = post_client(s, "a");
    let tok = access_token(s, &id, &secret);
    let q = |k: &str, v: &str| format!("{}={}", form_escape(k), form_escape(v));
    let token_cases = [
        (format!("/oauth2/token?{}&{}", q("client_id", &pid), q("client_secret", &psecret)), false),
        (format!("/oauth2/token?{}", q("client_secret", &secret)), true),
        (format!("/oauth2/token?{}", q("client_secret", "")), true),
        (format!("/oauth2/token?{}", q("refresh_token", "ory_rt_x.y")), true),
        (format!("/oauth2/token?{}", q("code", "ory_ac_x.y")), true),
    ];
    for (path, with_basic) in &token_cases {
        let mut req = Req::new("POST", path).form(&[("grant_type", "client_credentials")]);
        if *with_basic {
            req = req.basic(&id, &secret);
        }
        let r = req.send(s.public);
        r.expect_error(400, "invalid_request");
        r.assert_no_store();
    }
    for path in
        [format!("/oauth2/revoke?{}", q("client_secret", &secret)), format!("/oauth2/revoke?{}", q("token", &tok))]
    {
        let r = Req::new("POST", &path).form(&[("token", &tok)]).basic(&id, &secret).send(s.public);
        r.expect_error(400, "invalid_request");
    }
    assert!(is_active(s, &tok));
}

/// A public client (`token_endpoint_auth_method: none`) has no secret; presenting one, in either
/// place, is a method it is not registered for: `401 invalid_client`. An empty one is no secret
/// (as fosite: OAuth libraries in header mode send `Basic base64(id:)`).
#[test]
fn public_clients_presenting_a_secret_are_refused() {
    let s = api();
    let public = rp(s, json!({"token_endpoint_auth_method": "none"}));
    assert_eq!(public.secret, "", "no secret is issued to a public client");
    let form = |extra: &[(&'static str, &str)]| {
        let mut p = vec![("grant_type", "authorization_code"), ("code", "ory_ac_x.y"), ("redirect_uri", CB)];
        p.extend_from_slice(extra);
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>()
    };
    let send = |pairs: Vec<(String, String)>, basic: Option<(&str, &str)>| {
        let p: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut req = Req::new("POST", "/oauth2/token").form(&p);
        if let Some((i, sec)) = basic {
            req = req.basic(i, sec);
        }
        req.send(s.public)
    };
    send(form(&[]), Some((&public.id, "some-secret"))).expect_error(401, "invalid_client");
    send(form(&[("client_id", &public.id), ("client_secret", "some-secret")]), None)
        .expect_error(401, "invalid_client");
    // An empty secret is none: it gets as far as the (bogus) code.
    send(form(&[]), Some((&public.id, ""))).expect_error(400, "invalid_grant");
    send(form(&[("client_id", &public.id), ("client_secret", "")]), None).expect_error(400, "invalid_grant");
    // A confidential client sending an empty secret is not authenticated by it.
    let confidential = rp(s, json!({}));
    send(form(&[]), Some((&confidential.id, ""))).expect_error(401, "invalid_client");
    send(form(&[("client_id", &confidential.id), ("client_secret", "")]), None).expect_error(401, "invalid_client");
    // Control: identified by client_id alone, it gets as far as the (bogus) code.
    send(form(&[("client_id", &public.id)]), None).expect_error(400, "invalid_grant");
}

/// RFC 6749 §2.3.1: id and secret are form-url-encoded before base64. Reserved characters work
/// only encoded; a raw `+` means a space; a raw `:` in the secret is fine (the first colon splits).
#[test]
fn basic_credentials_are_form_url_decoded() {
    let s = api();
    let id = format!("{} a:b+c%d&e=f/é", uniq("enc"));
    let secret = "s p+a:c%e&=é";
    create_client(
        s,
        &json!({"client_id": id, "client_secret": secret, "grant_types": ["client_credentials"], "scope": "a"}),
    );
    let hdr = |raw_id: &str, raw_secret: &str| format!("Basic {}", b64(format!("{raw_id}:{raw_secret}").as_bytes()));
    // Properly encoded (the harness encodes like RFC 6749 Appendix B).
    with_authorization(&basic(&id, secret)).send(s.public).expect(200);
    // %20 instead of + for spaces, lower-case hex: the same credentials.
    let lower = |v: &str| {
        let e = form_escape(v).replace('+', "%20");
        let mut out = String::new();
        let mut chars = e.chars().peekable();
        while let Some(ch) = chars.next() {
            out.push(ch);
            if ch == '%' {
                for _ in 0..2 {
                    out.extend(chars.next().map(|h| h.to_ascii_lowercase()));
                }
            }
        }
        out
    };
    with_authorization(&hdr(&lower(&id), &lower(secret))).send(s.public).expect(200);
    // Unencoded: the id's raw colon splits in the wrong place, a raw '%' is a malformed escape,
    // a raw '+' decodes to a space.
    let r = with_authorization(&hdr(&id, secret)).send(s.public);
    assert!(r.status == 400 || r.status == 401, "raw credentials must not authenticate: {}", r.text());
    let simple = uniq("plain");
    create_client(
        s,
        &json!({"client_id": simple, "client_secret": "plus+sign:colon", "grant_types": ["client_credentials"], "scope": "a"}),
    );
    with_authorization(&hdr(&simple, "plus+sign:colon")).send(s.public).expect_error(401, "invalid_client");
    with_authorization(&hdr(&simple, "plus%2Bsign:colon")).send(s.public).expect(200);
    with_authorization(&basic(&simple, "plus+sign:colon")).send(s.public).expect(200);
}
