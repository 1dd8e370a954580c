//! Implicit and hybrid response types: every combination of `code`, `id_token` and `token`
//! answered in the fragment (never the query) or as a form post, `nonce` required for an ID
//! token from the authorization endpoint, `at_hash` and `c_hash` bound to what came with it,
//! access tokens durable and in the grant (introspection, userinfo, consent revocation), the
//! code of a hybrid flow exchangeable once, and errors delivered where the tokens would have gone.

use crate::browser::*;
use crate::harness::*;
use base64::Engine;
use serde_json::{json, Value};

const ALL: [&str; 7] =
    ["code", "id_token", "token", "code id_token", "code token", "id_token token", "code id_token token"];

fn hybrid_rp(s: &Server) -> Rp {
    rp(
        s,
        json!({
            "response_types": ALL,
            "grant_types": ["authorization_code", "implicit", "refresh_token"],
        }),
    )
}

/// The parameters of a fragment, decoded; asserts the URL is `CB#…` with no query at all.
#[track_caller]
fn fragment(loc: &str) -> std::collections::BTreeMap<String, String> {
    let (base, frag) = loc.split_once('#').unwrap_or_else(|| panic!("no fragment: {loc}"));
    assert_eq!(base, CB, "nothing but the redirect URI before the fragment: {loc}");
    let fake = format!("x?{frag}");
    frag.split('&')
        .filter_map(|p| p.split_once('=').map(|(k, _)| k.to_string()))
        .map(|k| {
            let v = query_param(&fake, &k).unwrap();
            (k, v)
        })
        .collect()
}

fn half_hash(v: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, v.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&d.as_ref()[..16])
}

fn verified_claims(s: &Server, jwt: &str) -> Value {
    let jwks: Vec<hydra::jose::jwk::Jwk> =
        serde_json::from_value(Req::get("/.well-known/jwks.json").send(s.public).json()["keys"].clone()).unwrap();
    let v = hydra::jose::jws::verify(jwt, &jwks).expect("an ID token signed with a published key");
    serde_json::from_slice(&v.payload).unwrap()
}

fn introspect(s: &Server, token: &str) -> Value {
    Req::new("POST", "/admin/oauth2/introspect").form(&[("token", token)]).send(s.admin).json()
}

#[test]
fn every_response_type_answers_in_the_fragment_with_bound_hashes() {
    let s = api();
    let rp = hybrid_rp(s);
    let issuer =
        Req::get("/.well-known/openid-configuration").send(s.public).json()["issuer"].as_str().unwrap().to_string();
    for rt in ALL.iter().filter(|r| **r != "code") {
        let done = run_flow(
            s,
            &rp,
            &[("response_type", rt), ("nonce", "nonce-implicit-1")],
            &standard_login(),
            &standard_consent(),
        );
        let f = fragment(&done);
        assert_eq!(f.get("state").map(String::as_str), Some("state-0123456789"), "{rt}: {done}");
        assert_eq!(f.get("iss"), Some(&issuer), "{rt}");
        let words: Vec<&str> = rt.split(' ').collect();
        assert_eq!(f.contains_key("code"), words.contains(&"code"), "{rt}: {done}");
        assert_eq!(f.contains_key("access_token"), words.contains(&"token"), "{rt}: {done}");
        assert_eq!(f.contains_key("id_token"), words.contains(&"id_token"), "{rt}: {done}");
        let mut front_sub = None;
        if let Some(at) = f.get("access_token") {
            assert_eq!(f.get("token_type").map(String::as_str), Some("bearer"));
            assert_eq!(f.get("expires_in").map(String::as_str), Some("3600"));
            let i = introspect(s, at);
            assert_eq!(i["active"], true, "{rt}: the access token is stored: {i}");
            assert_eq!(i["client_id"], rp.id.as_str());
            assert_eq!(i["ext"]["tier"], "gold", "{rt}: session.access_token: {i}");
            let u = Req::get("/userinfo").header("Authorization", &format!("Bearer {at}")).send(s.public);
            assert_eq!(u.expect(200).json()["email"], "alice@example.com", "{rt}");
        }
        if let Some(id) = f.get("id_token") {
            let c = verified_claims(s, id);
            assert_eq!(c["nonce"], "nonce-implicit-1", "{rt}");
            assert_eq!(c["aud"], json!([rp.id]));
            assert_eq!(c["email"], "alice@example.com");
            match f.get("access_token") {
                Some(at) => assert_eq!(c["at_hash"], half_hash(at), "{rt}: at_hash"),
                None => assert!(c.get("at_hash").is_none(), "{rt}: {c}"),
            }
            match f.get("code") {
                Some(code) => assert_eq!(c["c_hash"], half_hash(code), "{rt}: c_hash"),
                None => assert!(c.get("c_hash").is_none(), "{rt}: {c}"),
            }
            front_sub = Some(c["sub"].clone());
        }
        if let Some(code) = f.get("code") {
            let t = exchange(s, &rp, code, Some(VERIFIER));
            let t = t.expect(200).json();
            let back = verified_claims(s, t["id_token"].as_str().unwrap());
            if let Some(sub) = &front_sub {
                assert_eq!(&back["sub"], sub, "{rt}: the same sub from both endpoints");
            }
            exchange(s, &rp, code, Some(VERIFIER)).expect_error(400, "invalid_grant");
            // A replayed code revokes the grant, the front-channel access token included.
            if let Some(at) = f.get("access_token") {
                assert_eq!(introspect(s, at)["active"], false, "{rt}: revoked with its grant");
            }
        }
    }
}

#[test]
fn form_post_carries_tokens_in_the_body() {
    let s = api();
    let rp = hybrid_rp(s);
    let mut jar = Jar::default();
    let cv = up_to_consent_verifier(
        s,
        &mut jar,
        &rp,
        &[("response_type", "id_token token"), ("response_mode", "form_post"), ("nonce", "nonce-form-post")],
    );
    let r = jar.get(s, &cv);
    let page = r.expect(200).text();
    assert!(page.contains(&format!("action=\"{CB}\"")), "{page}");
    for name in ["access_token", "id_token", "state", "iss", "token_type", "expires_in"] {
        assert!(page.contains(&format!("name=\"{name}\"")), "{name}: {page}");
    }
    assert!(r.header("location").is_none());
}

#[test]
fn implicit_errors_go_to_the_fragment_and_tokens_never_to_the_query() {
    let s = api();
    let rp = hybrid_rp(s);
    let code_only = self::rp(s, json!({}));
    let err = |rp: &Rp, extra: &[(&str, &str)]| {
        let loc = location(&Req::get(&auth_path(rp, extra)).send(s.public));
        let f = fragment(&loc);
        assert!(!f.contains_key("access_token") && !f.contains_key("id_token") && !f.contains_key("code"), "{loc}");
        assert_eq!(f.get("state").map(String::as_str), Some("state-0123456789"), "{loc}");
        f.get("error").cloned().unwrap_or_else(|| panic!("no error: {loc}"))
    };
    assert_eq!(err(&rp, &[("response_type", "id_token"), ("nonce", "")]), "invalid_request", "nonce required");
    assert_eq!(err(&rp, &[("response_type", "code id_token"), ("nonce", "")]), "invalid_request");
    assert_eq!(err(&rp, &[("response_type", "id_token token"), ("response_mode", "query")]), "invalid_request");
    assert_eq!(err(&code_only, &[("response_type", "id_token token")]), "unauthorized_client");
    assert_eq!(err(&rp, &[("response_type", "token"), ("prompt", "none")]), "login_required");
    // code token needs no nonce.
    let done =
        run_flow(s, &rp, &[("response_type", "code token"), ("nonce", "")], &standard_login(), &standard_consent());
    assert!(fragment(&done).contains_key("access_token"), "{done}");
    // A replayed consent verifier issues nothing more.
    let mut jar = Jar::default();
    let cv = up_to_consent_verifier(s, &mut jar, &rp, &[("response_type", "token")]);
    let first = fragment(&location(&jar.get(s, &cv)));
    assert!(first.contains_key("access_token"));
    let again = fragment(&location(&jar.get(s, &cv)));
    assert!(again.contains_key("error") && !again.contains_key("access_token"), "{again:?}");
}

#[test]
fn revoking_the_consent_revokes_front_channel_tokens() {
    let s = api();
    let rp = hybrid_rp(s);
    let subject = uniq("implicit-user");
    let login = json!({"subject": subject});
    let done = run_flow(s, &rp, &[("response_type", "token")], &login, &standard_consent());
    let at = fragment(&done)["access_token"].clone();
    assert_eq!(introspect(s, &at)["active"], true);
    Req::new("DELETE", &format!("/admin/oauth2/auth/sessions/consent?subject={subject}&client={}", rp.id))
        .send(s.admin)
        .expect(204);
    assert_eq!(introspect(s, &at)["active"], false);
}

/// An ID token answers an OpenID request only: when the consent app leaves `openid` out of the
/// granted scope, no response type that carries an ID token gets one (nor a code or an access
/// token in its place): `unsupported_response_type` in the fragment, as Hydra answers.
#[test]
fn no_id_token_without_openid_granted() {
    let s = api();
    let rp = hybrid_rp(s);
    for rt in ["id_token", "code id_token", "id_token token", "code id_token token"] {
        let done = run_flow(
            s,
            &rp,
            &[("response_type", rt), ("nonce", "nonce-implicit-2")],
            &standard_login(),
            &json!({"grant_scope": ["offline_access"]}),
        );
        let f = fragment(&done);
        assert_eq!(f.get("error").map(String::as_str), Some("unsupported_response_type"), "{rt}: {done}");
        for k in ["id_token", "code", "access_token"] {
            assert!(!f.contains_key(k), "{rt}: {k} in {done}");
        }
    }
    // Without an ID token asked for, a grant without openid is fine.
    let done = run_flow(s, &rp, &[("response_type", "code token")], &standard_login(), &json!({"grant_scope": []}));
    let f = fragment(&done);
    assert!(f.contains_key("code") && f.contains_key("access_token"), "{done}");
}
