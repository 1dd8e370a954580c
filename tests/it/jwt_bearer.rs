//! The JWT bearer grant (RFC 7523 §2.1) and Hydra's trust API: an assertion signed with the key
//! of a trust relationship buys an access token for its subject, once; an untrusted issuer, a
//! subject outside the trust, an expired trust, a foreign signature, scopes beyond the trust or
//! the client, and a replayed `jti` are refused; expired relationships are swept.

use crate::browser::field;
use crate::harness::*;
use hydra::jose::jwk::{Alg, Jwk};
use hydra::jose::jws::Signer;
use serde_json::{json, Value};
use std::time::Duration;

const GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const ISSUERS: &str = "/admin/trust/grants/jwt-bearer/issuers";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn rfc3339(unix: i64) -> String {
    hydra::dates::rfc3339(unix)
}

fn trust(s: &Server, issuer: &str, subject: Option<&str>, scope: &[&str], key: &Jwk, expires_in: i64) -> Response {
    let mut body =
        json!({"issuer": issuer, "scope": scope, "jwk": key.public(), "expires_at": rfc3339(now() + expires_in)});
    match subject {
        Some(sub) => body["subject"] = json!(sub),
        None => body["allow_any_subject"] = json!(true),
    }
    Req::new("POST", ISSUERS).json(&body).send(s.admin)
}

fn assertion(s: &Server, key: &Jwk, iss: &str, sub: &str, extra: Value) -> String {
    let mut c = json!({
        "iss": iss, "sub": sub, "aud": format!("http://{}/oauth2/token", s.public),
        "iat": now(), "exp": now() + 300, "jti": uniq("jti"),
    });
    if let (Value::Object(c), Value::Object(e)) = (&mut c, extra) {
        for (k, v) in e {
            if v.is_null() {
                c.remove(&k);
            } else {
                c.insert(k, v);
            }
        }
    }
    Signer::from_jwk(key).unwrap().sign(c.to_string().as_bytes()).unwrap()
}

fn exchange(s: &Server, id: &str, secret: &str, assertion: &str, scope: Option<&str>) -> Response {
    let mut p = vec![("grant_type", GRANT), ("assertion", assertion)];
    if let Some(sc) = scope {
        p.push(("scope", sc));
    }
    Req::new("POST", "/oauth2/token").basic(id, secret).form(&p).send(s.public)
}

#[test]
fn trust_api_create_get_list_delete() {
    let s = api();
    let issuer = format!("https://{}.idp.example", uniq("api"));
    let key = Jwk::generate(Alg::ES256, "k1", "sig").unwrap();
    // The private key is given; only the public part is kept.
    let mut body = json!({"issuer": issuer, "subject": "alice", "scope": ["read"], "jwk": key, "expires_at": rfc3339(now() + 3600)});
    let r = Req::new("POST", ISSUERS).json(&body).send(s.admin);
    r.expect(201);
    let g = r.json();
    let id = field(&g, "id");
    assert_eq!(g["issuer"], json!(issuer));
    assert_eq!((g["subject"].as_str(), g["allow_any_subject"].as_bool()), (Some("alice"), Some(false)));
    assert_eq!(g["scope"], json!(["read"]));
    assert_eq!(g["public_key"], json!({"set": issuer, "kid": "k1"}));
    assert!(g["created_at"].as_str().unwrap().ends_with('Z') && g["expires_at"].is_string());
    assert_eq!(Req::get(&format!("{ISSUERS}/{id}")).send(s.admin).json(), g);
    // The same issuer, subject and key again: a conflict.
    assert_eq!(Req::new("POST", ISSUERS).json(&body).send(s.admin).status, 409);
    // Hydra's validation.
    for (patch, want) in [
        (json!({"issuer": ""}), "Field 'issuer' is required."),
        (json!({"subject": ""}), "One of 'subject' or 'allow_any_subject' field must be set."),
        (
            json!({"allow_any_subject": true}),
            "Both 'subject' and 'allow_any_subject' fields cannot be set at the same time.",
        ),
        (json!({"expires_at": null}), "Field 'expires_at' is required."),
        (json!({"jwk": null}), "Field 'jwk' is required."),
    ] {
        let mut b = body.clone();
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        let r = Req::new("POST", ISSUERS).json(&b).send(s.admin);
        assert_eq!(r.status, 400, "{want}");
        assert_eq!(r.json()["error_description"], json!(want));
    }
    // A second key of the issuer, then a listing by issuer, one per page.
    body["jwk"] = serde_json::to_value(Jwk::generate(Alg::RS256, "k2", "sig").unwrap().public()).unwrap();
    Req::new("POST", ISSUERS).json(&body).send(s.admin).expect(201);
    let enc = form_escape(&issuer);
    let page = Req::get(&format!("{ISSUERS}?issuer={enc}&page_size=1")).send(s.admin);
    page.expect(200);
    assert_eq!(page.json().as_array().unwrap().len(), 1);
    let link = page.header("link").unwrap().to_string();
    let next = link.split(',').find(|l| l.contains("rel=\"next\"")).expect("a next page");
    let next = next.trim().trim_start_matches('<').split('>').next().unwrap();
    let second = Req::get(next).send(s.admin).json();
    assert_eq!(second.as_array().unwrap().len(), 1);
    assert_ne!(second[0]["id"], page.json()[0]["id"]);
    let all = Req::get(&format!("{ISSUERS}?issuer={enc}")).send(s.admin).json();
    assert_eq!(all.as_array().unwrap().len(), 2);
    // Delete.
    Req::new("DELETE", &format!("{ISSUERS}/{id}")).send(s.admin).expect(204);
    Req::get(&format!("{ISSUERS}/{id}")).send(s.admin).expect(404);
    Req::new("DELETE", &format!("{ISSUERS}/{id}")).send(s.admin).expect(404);
    // The reserved key set is not a key set of the admin API.
    Req::get("/admin/keys/hydra-rs.trust.jwt-bearer").send(s.admin).expect(404);
    assert_eq!(Req::new("DELETE", "/admin/keys/hydra-rs.trust.jwt-bearer").send(s.admin).status, 400);
    assert_eq!(
        Req::new("POST", "/admin/keys/hydra-rs.trust.jwt-bearer").json(&json!({"alg": "ES256"})).send(s.admin).status,
        400
    );
}

#[test]
fn trusted_assertions_buy_one_token_and_bad_ones_none() {
    let s = Opts::new("io_uring").env("OAUTH2_GRANT_JWT_MAX_TTL", "1h").start();
    let issuer = "https://idp.example";
    let key = Jwk::generate(Alg::ES256, "idp-1", "sig").unwrap();
    let first = trust(&s, issuer, Some("alice"), &["read"], &key, 3600).json();
    let (id, secret) = cc_client_with(&s, json!({"grant_types": [GRANT], "scope": "read write"}));

    let a = assertion(&s, &key, issuer, "alice", json!({}));
    let r = exchange(&s, &id, &secret, &a, Some("read"));
    r.expect(200);
    let t = r.json();
    assert!(t.get("refresh_token").is_none() && t.get("id_token").is_none());
    assert_eq!(t["scope"], "read");
    let i = introspect(&s, &field(&t, "access_token"));
    assert_eq!((i["sub"].as_str(), i["client_id"].as_str()), (Some("alice"), Some(id.as_str())));
    // Replayed; and still after the relationship is deleted and created again.
    exchange(&s, &id, &secret, &a, Some("read")).expect_error(400, "invalid_grant");
    Req::new("DELETE", &format!("{ISSUERS}/{}", field(&first, "id"))).send(s.admin).expect(204);
    let again = trust(&s, issuer, Some("alice"), &["read"], &key, 7200).json();
    assert_eq!(again["id"], first["id"], "the id names issuer, subject and key");
    exchange(&s, &id, &secret, &a, Some("read")).expect_error(400, "invalid_grant");

    let other_key = Jwk::generate(Alg::ES256, "idp-1", "sig").unwrap();
    let bad = [
        ("untrusted issuer", assertion(&s, &key, "https://evil.example", "alice", json!({})), "invalid_grant"),
        ("subject outside the trust", assertion(&s, &key, issuer, "bob", json!({})), "invalid_grant"),
        ("foreign key", assertion(&s, &other_key, issuer, "alice", json!({})), "invalid_grant"),
        (
            "wrong aud",
            assertion(&s, &key, issuer, "alice", json!({"aud": "https://elsewhere.example/token"})),
            "invalid_grant",
        ),
        ("expired", assertion(&s, &key, issuer, "alice", json!({"exp": now() - 300})), "invalid_grant"),
        ("beyond max_ttl", assertion(&s, &key, issuer, "alice", json!({"exp": now() + 7200})), "invalid_grant"),
        ("no jti", assertion(&s, &key, issuer, "alice", json!({"jti": null})), "invalid_grant"),
        ("no iat", assertion(&s, &key, issuer, "alice", json!({"iat": null})), "invalid_grant"),
    ];
    for (what, a, error) in bad {
        let r = exchange(&s, &id, &secret, &a, Some("read"));
        assert_eq!((r.status, r.json()["error"].as_str()), (400, Some(error)), "{what}: {}", r.text());
    }
    use base64::Engine;
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let none = format!("{}.{}.", b64(br#"{"alg":"none","kid":"idp-1"}"#), a.split('.').nth(1).unwrap());
    exchange(&s, &id, &secret, &none, Some("read")).expect_error(400, "invalid_grant");
    // Scopes: beyond the trust (the client has it), beyond the client.
    exchange(&s, &id, &secret, &assertion(&s, &key, issuer, "alice", json!({})), Some("write"))
        .expect_error(400, "invalid_scope");
    exchange(&s, &id, &secret, &assertion(&s, &key, issuer, "alice", json!({})), Some("admin"))
        .expect_error(400, "invalid_scope");
    // A client without the grant type.
    let (plain, plain_secret) = cc_client(&s, "read");
    let r = exchange(&s, &plain, &plain_secret, &assertion(&s, &key, issuer, "alice", json!({})), Some("read"));
    r.expect_error(400, "unauthorized_client");
    // Any subject, when the trust says so.
    let any_key = Jwk::generate(Alg::RS256, "idp-any", "sig").unwrap();
    trust(&s, issuer, None, &["read"], &any_key, 3600).expect(201);
    exchange(&s, &id, &secret, &assertion(&s, &any_key, issuer, "bob", json!({})), Some("read")).expect(200);
    // Discovery says so.
    let d = Req::get("/.well-known/openid-configuration").send(s.public).json();
    assert!(d["grant_types_supported"].as_array().unwrap().contains(&json!(GRANT)));
}

#[test]
fn expired_trust_is_refused_then_swept_and_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Opts::new("io_uring").dir(dir.path()).env("ENGINE_JANITOR_INTERVAL", "1s");
    let s = opts.start();
    let issuer = "https://short.idp.example";
    let key = Jwk::generate(Alg::ES256, "short", "sig").unwrap();
    let long_key = Jwk::generate(Alg::ES256, "long", "sig").unwrap();
    let short = trust(&s, issuer, Some("alice"), &["read"], &key, 2).json();
    trust(&s, issuer, Some("alice"), &["read"], &long_key, 3600).expect(201);
    let (id, secret) = cc_client_with(&s, json!({"grant_types": [GRANT], "scope": "read"}));
    let spent = assertion(&s, &long_key, issuer, "alice", json!({}));
    exchange(&s, &id, &secret, &spent, None).expect(200);
    std::thread::sleep(Duration::from_millis(2500));
    exchange(&s, &id, &secret, &assertion(&s, &key, issuer, "alice", json!({})), None)
        .expect_error(400, "invalid_grant");
    // The background janitor drops the expired relationship.
    let gone = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        Req::get(&format!("{ISSUERS}/{}", field(&short, "id"))).send(s.admin).status == 404
    });
    assert!(gone, "the expired trust relationship was swept");
    // After a restart the live relationship still works and the spent jti stays spent.
    s.stop();
    let s = opts.start();
    exchange(&s, &id, &secret, &spent, None).expect_error(400, "invalid_grant");
    exchange(&s, &id, &secret, &assertion(&s, &long_key, issuer, "alice", json!({})), None).expect(200);
    let all = Req::get(ISSUERS).send(s.admin).json();
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
}

#[test]
fn the_janitor_command_deletes_expired_trust_relationships() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Opts::new("io_uring").dir(dir.path()).env("ENGINE_JANITOR_INTERVAL", "0s");
    let s = opts.start();
    let key = Jwk::generate(Alg::ES256, "cli", "sig").unwrap();
    let short = trust(&s, "https://cli.idp.example", Some("alice"), &["read"], &key, 1).json();
    let long = trust(&s, "https://cli.idp.example", None, &["read"], &key, 3600).json();
    std::thread::sleep(Duration::from_millis(1500));
    let dsn = if postgres() { pg_database(Some(dir.path())) } else { format!("redb://{}", dir.path().display()) };
    // The embedded store is locked by a running server; a database is not.
    s.stop();
    let (ok, out) = crate::janitor::janitor_cli(&[&dsn, "--grants"]);
    assert!(ok && out.contains("and 1 trust relationships"), "{out}");
    let s = opts.start();
    Req::get(&format!("{ISSUERS}/{}", field(&short, "id"))).send(s.admin).expect(404);
    Req::get(&format!("{ISSUERS}/{}", field(&long, "id"))).send(s.admin).expect(200);
}
