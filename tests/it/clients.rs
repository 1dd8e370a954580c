//! Area 2: the admin client API.

use crate::harness::*;
use serde_json::{json, Value};
use std::collections::HashSet;

fn authenticates(s: &Server, id: &str, secret: &str) -> bool {
    let r = token_req(id, secret, &[]).send(s.public);
    match r.status {
        200 => true,
        401 => {
            assert_eq!(r.json()["error"], "invalid_client");
            false
        }
        other => panic!("unexpected {other}: {}", r.text()),
    }
}

#[test]
fn create_applies_hydra_defaults() {
    let s = api();
    let r = Req::new("POST", "/admin/clients").json(&json!({"client_name": "defaults"})).send(s.admin);
    r.expect(201);
    let c = r.json();
    let id = c["client_id"].as_str().unwrap();
    assert_eq!(id.len(), 36, "generated UUID id: {id}");
    assert_eq!(r.header("location"), Some(format!("/admin/clients/{id}").as_str()));
    let secret = c["client_secret"].as_str().unwrap();
    assert_eq!(secret.len(), 26, "generated secret");
    assert_eq!(c["scope"], "offline_access offline openid");
    assert_eq!(c["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(c["subject_type"], "public");
    assert_eq!(c["jwks"], json!({}));
    assert_eq!(c["metadata"], json!({}));
    assert_eq!(c["client_name"], "defaults");
    assert!(c["created_at"].is_string() && c["updated_at"].is_string(), "{c}");
    // Two creations never share a generated secret or id.
    let c2 = create_client(s, &json!({}));
    assert_ne!(c2["client_id"], c["client_id"]);
    assert_ne!(c2["client_secret"], c["client_secret"]);
}

#[test]
fn create_with_chosen_id_and_secret() {
    let s = api();
    let id = uniq("chosen");
    let c = create_client(
        s,
        &json!({"client_id": id, "client_secret": "a-chosen-secret", "grant_types": ["client_credentials"], "scope": "x"}),
    );
    assert_eq!(c["client_id"], json!(id));
    assert_eq!(c["client_secret"], "a-chosen-secret");
    assert!(authenticates(s, &id, "a-chosen-secret"));
    assert!(!authenticates(s, &id, "a-chosen-secreT"));
}

#[test]
fn create_rejections() {
    let s = api();
    let id = uniq("dup");
    create_client(s, &json!({"client_id": id}));
    let r = Req::new("POST", "/admin/clients").json(&json!({"client_id": id})).send(s.admin);
    r.expect_json_error(409);

    let r = Req::new("POST", "/admin/clients").json(&json!({"client_secret": "short"})).send(s.admin);
    let v = r.expect_error(400, "invalid_client_metadata");
    assert!(v["error_description"].as_str().unwrap().contains("at least 6 characters"), "{v}");

    let r = Req::new("POST", "/admin/clients")
        .json(&json!({"redirect_uris": ["https://example.com/cb#frag"]}))
        .send(s.admin);
    r.expect_error(400, "invalid_redirect_uri");

    let r = Req::new("POST", "/admin/clients").json(&json!({"grant_types": ["password_please"]})).send(s.admin);
    r.expect_error(400, "invalid_client_metadata");

    for body in [&b"{not json"[..], b"[1,2]", b"", b"{\"client_name\": 5}"] {
        let mut req = Req::new("POST", "/admin/clients").header("Content-Type", "application/json");
        req.body = body.to_vec();
        let r = req.send(s.admin);
        let v = r.expect_json_error(400);
        assert_eq!(v["error"], "The request was malformed or contained invalid parameters", "{v}");
    }
    // Nothing was created by a rejected request.
    let r = Req::get(&format!("/admin/clients?owner={}", form_escape(&id))).send(s.admin);
    assert_eq!(r.json(), json!([]));
}

#[test]
fn get_hides_secret_and_unknown_is_404() {
    let s = api();
    let (id, _) = cc_client(s, "a");
    let r = Req::get(&format!("/admin/clients/{id}")).send(s.admin);
    r.expect(200);
    let c = r.json();
    assert_eq!(c["client_id"], json!(id));
    assert!(c.get("client_secret").is_none(), "secret must not be returned: {c}");
    let r = Req::get("/admin/clients/does-not-exist-at-all").send(s.admin);
    r.expect(404);
    assert_eq!(r.json(), json!({"error": "Unable to locate the resource", "error_description": ""}));
}

fn next_link(r: &Response) -> Option<String> {
    let link = r.header("link")?;
    link.split(',').find(|p| p.contains("rel=\"next\"")).map(|p| {
        let start = p.find('<').unwrap() + 1;
        let end = p.find('>').unwrap();
        p[start..end].to_string()
    })
}

#[test]
fn list_pages_walk_everything_once() {
    let s = api();
    let owner = uniq("owner");
    let mut mine = HashSet::new();
    for i in 0..7 {
        let c = create_client(s, &json!({"owner": owner, "client_name": format!("n{}", i % 2)}));
        mine.insert(c["client_id"].as_str().unwrap().to_string());
    }
    // Unfiltered walk with a small page size: no duplicates, all of mine present, sorted.
    let mut seen = Vec::new();
    let mut url = "/admin/clients?page_size=3".to_string();
    let mut pages = 0;
    loop {
        let r = Req::get(&url).send(s.admin);
        r.expect(200);
        let items = r.json();
        let items = items.as_array().unwrap();
        assert!(items.len() <= 3);
        let link = r.header("link").expect("Link header");
        assert!(link.contains("rel=\"first\""), "{link}");
        seen.extend(items.iter().map(|c| c["client_id"].as_str().unwrap().to_string()));
        pages += 1;
        match next_link(&r) {
            Some(n) => {
                assert_eq!(items.len(), 3, "a page with a next link is full");
                url = n;
            }
            None => break,
        }
    }
    assert!(pages >= 3);
    let set: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(set.len(), seen.len(), "duplicates across pages");
    assert!(mine.is_subset(&set), "missed clients");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, seen);

    // Owner filter, page by page.
    let mut got = Vec::new();
    let mut url = format!("/admin/clients?page_size=2&owner={}", form_escape(&owner));
    loop {
        let r = Req::get(&url).send(s.admin);
        r.expect(200);
        for c in r.json().as_array().unwrap() {
            assert_eq!(c["owner"], json!(owner));
            got.push(c["client_id"].as_str().unwrap().to_string());
        }
        match next_link(&r) {
            Some(n) => {
                assert!(n.contains("owner="), "filters survive in the next link: {n}");
                url = n;
            }
            None => break,
        }
    }
    assert_eq!(got.len(), 7);
    assert_eq!(got.into_iter().collect::<HashSet<_>>(), mine);

    // Page tokens are sealed and bound to their listing: a forged one (the old format, base64 of
    // a client id), a tampered one, or one moved to other filters is refused, not another page.
    let first = Req::get(&format!("/admin/clients?page_size=2&owner={}", form_escape(&owner))).send(s.admin);
    let next = next_link(&first).unwrap();
    let token = next.split("page_token=").nth(1).unwrap().split('&').next().unwrap().to_string();
    let forged = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, "a");
    Req::get(&format!("/admin/clients?page_token={forged}")).send(s.admin).expect_error(400, "invalid_request");
    let mut tampered = token.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    Req::get(&format!("/admin/clients?page_size=2&owner={}&page_token={tampered}", form_escape(&owner)))
        .send(s.admin)
        .expect_error(400, "invalid_request");
    Req::get(&format!("/admin/clients?page_size=2&page_token={token}"))
        .send(s.admin)
        .expect_error(400, "invalid_request");
    Req::get(&format!("/admin/oauth2/auth/sessions/consent?subject=x&page_token={token}"))
        .send(s.admin)
        .expect_json_error(400);
    Req::get(&format!("/admin/clients?page_size=2&owner={}&page_token={token}", form_escape(&owner)))
        .send(s.admin)
        .expect(200);

    // Both filters.
    let r = Req::get(&format!("/admin/clients?owner={}&client_name=n1", form_escape(&owner))).send(s.admin);
    let items = r.json();
    assert_eq!(items.as_array().unwrap().len(), 3, "{items}");
    assert!(items.as_array().unwrap().iter().all(|c| c["client_name"] == "n1"));
    // An empty filter is no filter (as Hydra): the owner's clients with any name.
    let r = Req::get(&format!("/admin/clients?owner={}&client_name=", form_escape(&owner))).send(s.admin);
    let all = r.json();
    assert!(
        all.as_array().unwrap().len() > 3 && all.as_array().unwrap().iter().any(|c| c["client_name"] != "n1"),
        "{all}"
    );
    // No match is [] (never null).
    let r = Req::get("/admin/clients?client_name=no-such-name-xyz").send(s.admin);
    r.expect(200);
    assert_eq!(r.text(), "[]");
    assert!(next_link(&r).is_none());
    // Bad page_size.
    Req::get("/admin/clients?page_size=abc").send(s.admin).expect_error(400, "invalid_request");
}

#[test]
fn put_replaces_and_keeps_secret_when_omitted() {
    let s = api();
    let (id, secret) = cc_client(s, "a b");
    let body = json!({"client_id": "ignored-other-id", "client_name": "renamed", "grant_types": ["client_credentials"], "scope": "a"});
    let r = Req::new("PUT", &format!("/admin/clients/{id}")).json(&body).send(s.admin);
    r.expect(200);
    let c = r.json();
    assert_eq!(c["client_id"], json!(id), "id comes from the path");
    assert_eq!(c["client_name"], "renamed");
    assert_eq!(c["scope"], "a");
    assert!(c.get("client_secret").is_none_or(|v| v == "" || v.is_null()), "{c}");
    Req::get("/admin/clients/ignored-other-id").send(s.admin).expect(404);
    // The old secret still works.
    assert!(authenticates(s, &id, &secret));
    // Scope replaced: "b" no longer allowed.
    token_req(&id, &secret, &[("scope", "b")]).send(s.public).expect_error(400, "invalid_scope");

    // A new secret: it works and the old one stops working.
    let body = json!({"client_secret": "brand-new-secret", "grant_types": ["client_credentials"], "scope": "a"});
    let r = Req::new("PUT", &format!("/admin/clients/{id}")).json(&body).send(s.admin);
    r.expect(200);
    assert_eq!(r.json()["client_secret"], "brand-new-secret");
    assert!(authenticates(s, &id, "brand-new-secret"));
    assert!(!authenticates(s, &id, &secret));
    // PUT of an unknown client.
    Req::new("PUT", "/admin/clients/nope-unknown").json(&body).send(s.admin).expect(404);
}

#[test]
fn patch_json_patch() {
    let s = api();
    let (id, secret) = cc_client(s, "a");
    let r = Req::new("PATCH", &format!("/admin/clients/{id}"))
        .json(&json!([{"op": "replace", "path": "/client_name", "value": "patched"}]))
        .send(s.admin);
    r.expect(200);
    assert_eq!(r.json()["client_name"], "patched");
    assert_eq!(Req::get(&format!("/admin/clients/{id}")).send(s.admin).json()["client_name"], "patched");
    assert!(authenticates(s, &id, &secret), "patch keeps the secret");

    let r = Req::new("PATCH", &format!("/admin/clients/{id}"))
        .json(&json!([{"op": "replace", "path": "/client_id", "value": "other"}]))
        .send(s.admin);
    let v = r.expect_json_error(400);
    assert!(v["error_description"].as_str().unwrap().contains("/client_id"), "{v}");
    Req::get(&format!("/admin/clients/{id}")).send(s.admin).expect(200);

    let r = Req::new("PATCH", &format!("/admin/clients/{id}")).json(&json!({"op": "replace"})).send(s.admin);
    r.expect_json_error(400);
    // A patch producing an invalid client is rejected with the validation error.
    let r = Req::new("PATCH", &format!("/admin/clients/{id}"))
        .json(&json!([{"op": "add", "path": "/redirect_uris", "value": ["https://x.example/cb#f"]}]))
        .send(s.admin);
    r.expect_error(400, "invalid_redirect_uri");
}

#[test]
fn delete_then_404() {
    let s = api();
    let (id, secret) = cc_client(s, "a");
    let r = Req::new("DELETE", &format!("/admin/clients/{id}")).send(s.admin);
    r.expect(204);
    assert!(r.body.is_empty());
    Req::get(&format!("/admin/clients/{id}")).send(s.admin).expect(404);
    Req::new("DELETE", &format!("/admin/clients/{id}")).send(s.admin).expect(404);
    assert!(!authenticates(s, &id, &secret));
}

#[test]
fn lifespans_change_expires_in() {
    let s = api();
    let (id, secret) = cc_client(s, "a");
    assert_eq!(token(s, &id, &secret, &[])["expires_in"], 3600, "global ttl.access_token default");
    let r = Req::new("PUT", &format!("/admin/clients/{id}/lifespans"))
        .json(&json!({"client_credentials_grant_access_token_lifespan": "5m"}))
        .send(s.admin);
    r.expect(200);
    let c = r.json();
    assert!(c["client_credentials_grant_access_token_lifespan"].as_str().unwrap().starts_with("5m"), "{c}");
    assert!(c.get("client_secret").is_none());
    let t = token(s, &id, &secret, &[]);
    assert_eq!(t["expires_in"], 300);
    let i = introspect(s, t["access_token"].as_str().unwrap());
    let (exp, iat) = (i["exp"].as_i64().unwrap(), i["iat"].as_i64().unwrap());
    assert!((exp - iat - 300).abs() <= 1, "{i}");
    Req::new("PUT", &format!("/admin/clients/{id}/lifespans"))
        .json(&json!({"client_credentials_grant_access_token_lifespan": "forever"}))
        .send(s.admin)
        .expect_json_error(400);
    Req::new("PUT", "/admin/clients/nope-unknown/lifespans").json(&json!({})).send(s.admin).expect(404);
}

#[test]
fn secret_rotation() {
    let s = api();
    let (id, old) = cc_client(s, "a");
    assert!(authenticates(s, &id, &old));
    let r = Req::new("POST", &format!("/admin/clients/{id}/secrets/rotate")).send(s.admin);
    r.expect(200);
    let v: Value = r.json();
    let new = v["client_secret"].as_str().unwrap().to_string();
    assert_eq!(new.len(), 26);
    assert_ne!(new, old);
    assert!(authenticates(s, &id, &new), "new secret works");
    assert!(authenticates(s, &id, &old), "rotated (old) secret still works");
    let r = Req::new("DELETE", &format!("/admin/clients/{id}/secrets/rotate")).send(s.admin);
    r.expect(200);
    assert!(r.json().get("client_secret").is_none());
    assert!(authenticates(s, &id, &new));
    assert!(!authenticates(s, &id, &old), "old secret dead after DELETE rotate");

    let public = create_client(s, &json!({"token_endpoint_auth_method": "none"}));
    assert!(public.get("client_secret").is_none_or(|v| v == "" || v.is_null()), "{public}");
    let pid = public["client_id"].as_str().unwrap();
    Req::new("POST", &format!("/admin/clients/{pid}/secrets/rotate")).send(s.admin).expect_json_error(400);
    Req::new("POST", "/admin/clients/nope-unknown/secrets/rotate").send(s.admin).expect(404);
}

#[test]
fn special_characters_in_ids_and_secrets() {
    let s = api();
    let id = format!("{} a/b é:?#&+%", uniq("sp"));
    let secret = "p@ss:w rd+&=%é";
    let c = create_client(
        s,
        &json!({"client_id": id, "client_secret": secret, "grant_types": ["client_credentials"], "scope": "a"}),
    );
    assert_eq!(c["client_id"], json!(id));
    // Path-escaped id in the Location header and for GET.
    let escaped: String = id
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let r = Req::get(&format!("/admin/clients/{escaped}")).send(s.admin);
    r.expect(200);
    assert_eq!(r.json()["client_id"], json!(id));
    // Basic credentials are form-encoded before base64 (RFC 6749 §2.3.1).
    assert!(authenticates(s, &id, secret));
    assert!(!authenticates(s, &id, "p@ss:w rd+&=%"));
    Req::new("DELETE", &format!("/admin/clients/{escaped}")).send(s.admin).expect(204);
    // Invalid page token.
    Req::get("/admin/clients?page_token=%%%").send(s.admin).expect_error(400, "invalid_request");
    Req::get("/admin/clients?page_token=!!!").send(s.admin).expect_error(400, "invalid_request");
}

/// `oauth2.hashers.algorithm: bcrypt` writes bcrypt hashes of new secrets; hashes of either kind
/// verify whatever the setting, so switching it (both ways) locks no client out; the secret
/// rotation path hashes with the setting too.
#[test]
fn bcrypt_hashes_new_secrets_and_either_kind_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let bcrypt = Opts::new("legacy")
        .dir(dir.path())
        .env("OAUTH2_HASHERS_ALGORITHM", "bcrypt")
        .env("OAUTH2_HASHERS_BCRYPT_COST", "4");
    let pbkdf2 = Opts::new("legacy").dir(dir.path());
    let s = bcrypt.start();
    let (b_id, b_secret) = cc_client(&s, "read");
    access_token(&s, &b_id, &b_secret);
    token_req(&b_id, "wrong-secret", &[]).send(s.public).expect_error(401, "invalid_client");
    s.stop();
    if !postgres() {
        // What the store holds: a bcrypt hash (in the write-ahead log or the database file), no
        // PBKDF2 one for this client, never the secret.
        let mut bytes = Vec::new();
        for f in std::fs::read_dir(dir.path()).unwrap() {
            bytes.extend(std::fs::read(f.unwrap().path()).unwrap());
        }
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"$2a$04$"), "a bcrypt hash was written");
        assert!(!has(b_secret.as_bytes()), "the secret itself is never stored");
    }
    let s = pbkdf2.start();
    access_token(&s, &b_id, &b_secret);
    let (p_id, p_secret) = cc_client(&s, "read");
    s.stop();
    let s = bcrypt.start();
    access_token(&s, &b_id, &b_secret);
    access_token(&s, &p_id, &p_secret);
    token_req(&p_id, &b_secret, &[]).send(s.public).expect_error(401, "invalid_client");
    // A rotated secret is hashed with the setting and works; the old one keeps working as a
    // rotated secret, as before.
    let r = Req::new("POST", &format!("/admin/clients/{p_id}/secrets/rotate")).send(s.admin);
    r.expect(200);
    let new_secret = r.json()["client_secret"].as_str().unwrap().to_string();
    access_token(&s, &p_id, &new_secret);
    access_token(&s, &p_id, &p_secret);
}
