//! JWT access tokens (`strategies.access_token: jwt`, or a client's `access_token_strategy`):
//! Hydra's claim set signed by `hydra.jwt.access-token` and verifiable with the published JWKS,
//! for every grant that issues access tokens; introspectable and revocable like opaque ones;
//! nothing but a token this server signed (and whose record lives) is ever honoured.

use crate::browser::*;
use crate::harness::*;
use base64::Engine;
use serde_json::{json, Value};

fn jwks(s: &Server) -> Vec<hydra::jose::jwk::Jwk> {
    serde_json::from_value(Req::get("/.well-known/jwks.json").send(s.public).json()["keys"].clone()).unwrap()
}

/// Verifies `jwt` with the published keys and returns (header, claims).
#[track_caller]
fn verified(s: &Server, jwt: &str) -> (Value, Value) {
    let v = hydra::jose::jws::verify(jwt, &jwks(s)).expect("a JWT signed with a published key");
    (v.header, serde_json::from_slice(&v.payload).unwrap())
}

/// The kids of a key set, from the admin API.
fn kids(s: &Server, set: &str) -> Vec<String> {
    let v = Req::get(&format!("/admin/keys/{set}")).send(s.admin).json();
    v["keys"].as_array().map(|k| k.iter().map(|k| k["kid"].as_str().unwrap().to_string()).collect()).unwrap_or_default()
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

fn issuer(s: &Server) -> String {
    field(&Req::get("/.well-known/openid-configuration").send(s.public).json(), "issuer")
}

#[test]
fn per_client_strategy_client_credentials_claims_introspection_and_revocation() {
    let s = api();
    let (jid, jsecret) = cc_client_with(
        s,
        json!({"scope": "read write", "audience": ["https://api.example"], "access_token_strategy": "jwt"}),
    );
    let (oid, osecret) = cc_client(s, "read");
    let opaque = access_token(s, &oid, &osecret);
    assert!(opaque.starts_with("ory_at_"), "the default stays opaque: {opaque}");

    let answer = token(s, &jid, &jsecret, &[("scope", "read"), ("audience", "https://api.example")]);
    let at = field(&answer, "access_token");
    assert!(!at.starts_with("ory_"), "a JWT: {at}");
    let (header, claims) = verified(s, &at);
    assert_eq!(header["typ"], "JWT");
    assert!(kids(s, "hydra.jwt.access-token").contains(&field(&header, "kid")), "signed by hydra.jwt.access-token");
    assert!(!kids(s, "hydra.openid.id-token").contains(&field(&header, "kid")), "not by the ID-token set");
    assert_eq!(claims["iss"], json!(issuer(s)));
    assert_eq!((claims["sub"].as_str(), claims["client_id"].as_str()), (Some(jid.as_str()), Some(jid.as_str())));
    assert_eq!(claims["aud"], json!(["https://api.example"]));
    assert_eq!(claims["scp"], json!(["read"]));
    assert_eq!(claims["ext"], json!({}));
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["nbf"].as_i64(), Some(iat));
    assert_eq!(claims["exp"].as_i64(), Some(iat + 3600));
    assert_eq!(answer["expires_in"], json!(3600));
    assert!(field(&claims, "jti").len() >= 40);

    let i = introspect(s, &at);
    assert_eq!(i["active"], json!(true), "{i}");
    assert_eq!(
        (i["sub"].as_str(), i["client_id"].as_str(), i["scope"].as_str()),
        (Some(&*jid), Some(&*jid), Some("read"))
    );
    assert_eq!(i["exp"], claims["exp"]);
    assert_eq!(i["token_use"], "access_token");

    // Revocation by another client is refused; by the owner, it makes the token inactive here
    // (a resource server that only checks the signature cannot know, as with Hydra).
    revoke(s, &oid, &osecret, &at).expect(400);
    assert!(is_active(s, &at));
    revoke(s, &jid, &jsecret, &at).expect(200);
    assert!(!is_active(s, &at), "a revoked JWT is inactive");
    assert!(is_active(s, &opaque));
}

#[test]
fn forged_altered_or_foreign_jwts_are_never_active() {
    let s = api();
    let (id, secret) = cc_client_with(s, json!({"scope": "read", "access_token_strategy": "jwt"}));
    let at = access_token(s, &id, &secret);
    assert!(is_active(s, &at));
    let parts: Vec<&str> = at.split('.').collect();
    let (_, claims) = verified(s, &at);

    // The same claims under `alg: none`, and under a key of our own making with the server's kid.
    let none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    let (header, _) = verified(s, &at);
    let jwk =
        hydra::jose::jwk::Jwk::generate(hydra::jose::jwk::Alg::RS256, header["kid"].as_str().unwrap(), "sig").unwrap();
    let signer = hydra::jose::jws::Signer::from_jwk(&jwk).unwrap();
    let foreign = signer.sign(&serde_json::to_vec(&claims).unwrap()).unwrap();
    // HS256 keyed with the public key's modulus (key confusion).
    let hs = {
        let input = format!("{}.{}", b64(br#"{"alg":"HS256","typ":"JWT"}"#), parts[1]);
        let n = jwks(s).into_iter().find_map(|k| k.n).unwrap();
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, n.as_bytes());
        format!("{input}.{}", b64(ring::hmac::sign(&key, input.as_bytes()).as_ref()))
    };
    // Claims changed under the old signature (another subject, a later expiry).
    let mut altered_claims = claims.clone();
    altered_claims["exp"] = json!(claims["exp"].as_i64().unwrap() + 86_400);
    let altered = format!("{}.{}.{}", parts[0], b64(&serde_json::to_vec(&altered_claims).unwrap()), parts[2]);
    // A validly signed ID token is not an access token.
    let rp = rp(s, json!({}));
    let code = code_for(s, &rp, &[]);
    let tokens = exchange(s, &rp, &code, Some(VERIFIER)).json();
    let id_token = field(&tokens, "id_token");
    for (what, t) in
        [("none", none), ("foreign key", foreign), ("hs256", hs), ("altered", altered), ("id token", id_token.clone())]
    {
        assert!(!is_active(s, &t), "{what} must be inactive");
        let r = Req::get("/userinfo").header("Authorization", &format!("Bearer {t}")).send(s.public);
        assert_eq!(r.status, 401, "{what}: userinfo refuses it");
        revoke(s, &id, &secret, &t).expect(200);
    }
    assert!(is_active(s, &at), "revoking forgeries revokes nothing");
    still_serves(s);
}

#[test]
fn authorization_code_flow_refresh_userinfo_and_grant_revocation() {
    let s = api();
    let rp = rp(s, json!({"access_token_strategy": "jwt", "audience": ["https://api.example"]}));
    let code = code_for(s, &rp, &[("audience", "https://api.example")]);
    let tokens = exchange(s, &rp, &code, Some(VERIFIER)).json();
    let at = field(&tokens, "access_token");
    let (_, claims) = verified(s, &at);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], json!(rp.id));
    assert_eq!(claims["scp"], json!(["openid", "offline_access"]));
    assert_eq!(claims["ext"], json!({"tier": "gold"}), "session.access_token under ext");
    assert!(claims.get("tier").is_none());
    // The ID token's at_hash binds this JWT.
    let (_, id) = verified(s, &field(&tokens, "id_token"));
    let d = ring::digest::digest(&ring::digest::SHA256, at.as_bytes());
    assert_eq!(id["at_hash"], json!(b64(&d.as_ref()[..16])));
    let ui = Req::get("/userinfo").header("Authorization", &format!("Bearer {at}")).send(s.public);
    ui.expect(200);
    assert_eq!(ui.json()["sub"], "alice");

    let rotated = refresh(s, &rp, &field(&tokens, "refresh_token"), None).json();
    let at2 = field(&rotated, "access_token");
    let (_, c2) = verified(s, &at2);
    assert_ne!(c2["jti"], claims["jti"]);
    assert_eq!(c2["ext"], json!({"tier": "gold"}));
    assert!(!is_active(s, &at), "rotation retires the previous access token, as Hydra");
    assert!(is_active(s, &at2));
    // A replayed code revokes the whole grant, JWTs included.
    exchange(s, &rp, &code, Some(VERIFIER)).expect(400);
    assert!(!is_active(s, &at2));
}

#[test]
fn implicit_access_tokens_follow_the_client_strategy() {
    let s = api();
    let rp = rp(
        s,
        json!({"access_token_strategy": "jwt", "response_types": ["token", "id_token token"], "grant_types": ["implicit"]}),
    );
    let done = run_flow(
        s,
        &rp,
        &[("response_type", "id_token token"), ("nonce", "nonce-jwt-at-1")],
        &standard_login(),
        &standard_consent(),
    );
    let frag = done.split_once('#').unwrap().1;
    let at = query_param(&format!("x?{frag}"), "access_token").unwrap();
    let (_, claims) = verified(s, &at);
    assert_eq!((claims["sub"].as_str(), claims["ext"].clone()), (Some("alice"), json!({"tier": "gold"})));
    assert!(is_active(s, &at));
}

#[test]
fn pairwise_clients_keep_opaque_tokens_and_cannot_ask_for_jwts() {
    let s = Opts::new("io_uring")
        .env("STRATEGIES_ACCESS_TOKEN", "jwt")
        .env("OIDC_SUBJECT_IDENTIFIERS_SUPPORTED_TYPES", "public,pairwise")
        .env("OIDC_SUBJECT_IDENTIFIERS_PAIRWISE_SALT", "salt-0123456789")
        .start();
    let (pid, psecret) = cc_client_with(&s, json!({"scope": "read", "subject_type": "pairwise"}));
    assert!(access_token(&s, &pid, &psecret).starts_with("ory_at_"));
    let r = Req::new("POST", "/admin/clients")
        .json(&json!({"subject_type": "pairwise", "access_token_strategy": "jwt"}))
        .send(s.admin);
    r.expect_error(400, "invalid_client_metadata");
    let (id, secret) = cc_client(&s, "read");
    assert!(!access_token(&s, &id, &secret).starts_with("ory_"), "the global strategy applies to public clients");
    let (oid, osecret) = cc_client_with(&s, json!({"scope": "read", "access_token_strategy": "opaque"}));
    assert!(access_token(&s, &oid, &osecret).starts_with("ory_at_"), "a client can opt out");
}

#[test]
fn global_strategy_claim_shaping_key_rotation_and_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Opts::new("io_uring")
        .dir(dir.path())
        .env("STRATEGIES_ACCESS_TOKEN", "jwt")
        .env("STRATEGIES_JWT_SCOPE_CLAIM", "both")
        .env("OAUTH2_EXCLUDE_NOT_BEFORE_CLAIM", "true")
        .env("OAUTH2_ALLOWED_TOP_LEVEL_CLAIMS", "tier,sub")
        .env("OAUTH2_MIRROR_TOP_LEVEL_CLAIMS", "false")
        .env("OAUTH2_PRESERVE_EXT_CLAIMS", "true");
    let s = opts.start();
    let rp = rp(&s, json!({}));
    let tokens = exchange(&s, &rp, &code_for(&s, &rp, &[]), Some(VERIFIER)).json();
    let at = field(&tokens, "access_token");
    let (header, claims) = verified(&s, &at);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["tier"], "gold", "allowed at top level");
    assert_eq!(claims["sub"], "alice", "a reserved name is never promoted");
    assert_eq!(claims["ext"], json!({}), "preserved: only what was not promoted stays under ext");
    assert!(claims.get("nbf").is_none());
    assert_eq!(
        (claims["scope"].as_str(), &claims["scp"]),
        (Some("openid offline_access"), &json!(["openid", "offline_access"]))
    );

    // The newest key signs: an ES256 key added to the set takes over; the RS256 token still verifies.
    Req::new("POST", "/admin/keys/hydra.jwt.access-token")
        .json(&json!({"alg": "ES256", "use": "sig", "kid": "es-1"}))
        .send(s.admin)
        .expect(201);
    let (cid, csecret) = cc_client(&s, "read");
    let es = access_token(&s, &cid, &csecret);
    let (h2, _) = verified(&s, &es);
    assert_eq!((h2["alg"].as_str(), h2["kid"].as_str()), (Some("ES256"), Some("es-1")));
    assert!(is_active(&s, &at) && is_active(&s, &es));

    // Durable across a restart.
    s.stop();
    let s = opts.start();
    assert!(is_active(&s, &at) && is_active(&s, &es));
    // Deleting a key retires the tokens it signed.
    Req::new("DELETE", "/admin/keys/hydra.jwt.access-token/es-1").send(s.admin).expect(204);
    assert!(!is_active(&s, &es));
    assert!(is_active(&s, &at));
    // Deleting the set: a new key is made for the next token, the old tokens are dead.
    Req::new("DELETE", "/admin/keys/hydra.jwt.access-token").send(s.admin).expect(204);
    assert!(!is_active(&s, &at));
    let fresh = access_token(&s, &cid, &csecret);
    assert!(is_active(&s, &fresh));
}

/// Introspection remembers the JWTs a worker verified (`key_snapshot::JwtRefs`, one worker here so
/// every call meets the same memory): an altered copy of a remembered token is still refused,
/// and deleting the key that signed it retires it at once, as without the memory.
#[test]
fn remembered_jwts_never_vouch_for_altered_copies_and_follow_key_deletion() {
    let s = Opts::new("io_uring").env("ENGINE_WORKERS", "1").start();
    Req::new("POST", "/admin/keys/hydra.jwt.access-token")
        .json(&json!({"alg": "ES256", "use": "sig", "kid": "es-1"}))
        .send(s.admin)
        .expect(201);
    let (id, secret) = cc_client_with(&s, json!({"scope": "read", "access_token_strategy": "jwt"}));
    let at = access_token(&s, &id, &secret);
    let (header, claims) = verified(&s, &at);
    assert_eq!(header["kid"], "es-1");
    for _ in 0..3 {
        assert!(is_active(&s, &at));
    }
    let parts: Vec<&str> = at.split('.').collect();
    let mut longer = claims.clone();
    longer["exp"] = json!(claims["exp"].as_i64().unwrap() + 86_400);
    let altered = format!("{}.{}.{}", parts[0], b64(&serde_json::to_vec(&longer).unwrap()), parts[2]);
    assert!(!is_active(&s, &altered));
    assert!(is_active(&s, &at));
    Req::new("DELETE", "/admin/keys/hydra.jwt.access-token/es-1").send(s.admin).expect(204);
    assert!(!is_active(&s, &at), "a remembered token outlived its key");
    s.stop();
}
