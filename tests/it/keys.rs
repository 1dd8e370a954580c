//! JSON Web Key sets: generation at first start, the admin API, `/.well-known/jwks.json`,
//! persistence (sealed at rest) and secret rotation.

use crate::harness::*;
use serde_json::{json, Value};

const PRIVATE: [&str; 6] = ["d", "p", "q", "dp", "dq", "qi"];

fn keys(r: &Response) -> Vec<Value> {
    r.json()["keys"].as_array().cloned().unwrap_or_default()
}

fn get_set(s: &Server, set: &str) -> Response {
    Req::new("GET", &format!("/admin/keys/{set}")).send(s.admin)
}

#[test]
fn default_sets_exist_and_jwks_json_publishes_only_public_parts() {
    let s = api();
    let published = Req::new("GET", "/.well-known/jwks.json").send(s.public);
    published.expect(200);
    let public = keys(&published);
    assert!(public.len() >= 2, "{}", published.text());
    for set in ["hydra.openid.id-token", "hydra.jwt.access-token"] {
        let r = get_set(s, set);
        r.expect(200);
        let private = keys(&r);
        assert!(!private.is_empty(), "{set}");
        for k in &private {
            assert_eq!(k["kty"], "RSA");
            assert_eq!(k["alg"], "RS256");
            assert_eq!(k["use"], "sig");
            for m in PRIVATE {
                assert!(k[m].is_string(), "{set}: the admin API returns private member {m}");
            }
            // The same key, public members only, is published.
            let p =
                public.iter().find(|p| p["kid"] == k["kid"]).unwrap_or_else(|| panic!("{} not published", k["kid"]));
            assert_eq!(p["n"], k["n"]);
            assert_eq!(p["e"], k["e"]);
            for m in PRIVATE {
                assert!(p.get(m).is_none(), "published key leaks {m}");
            }
            // 2048-bit modulus: 256 bytes, 342 base64url characters.
            assert_eq!(k["n"].as_str().unwrap().len(), 342);
        }
    }
    // The admin port does not serve the public document, nor the public port the admin API.
    Req::new("GET", "/.well-known/jwks.json").send(s.admin).expect(404);
    Req::new("GET", "/admin/keys/hydra.openid.id-token").send(s.public).expect(404);
}

#[test]
fn create_get_put_and_delete_keys() {
    let s = api();
    let set = "it-keys-crud";
    get_set(s, set).expect(404);
    let algs = [("ES256", "EC"), ("EdDSA", "OKP"), ("PS256", "RSA"), ("ES384", "EC"), ("RS256", "RSA")];
    for (alg, kty) in algs {
        let r = Req::new("POST", &format!("/admin/keys/{set}"))
            .json(&json!({"alg": alg, "kid": format!("k-{alg}"), "use": "sig"}))
            .send(s.admin);
        r.expect(201);
        let k = &keys(&r)[0];
        assert_eq!(k["kid"], format!("k-{alg}"));
        assert_eq!(k["kty"], kty);
        assert_eq!(k["alg"], alg);
        assert!(k["d"].is_string(), "a created key is returned with its private part");
    }
    let all = keys(&get_set(s, set));
    assert_eq!(all.len(), algs.len());
    let p384 = all.iter().find(|k| k["kid"] == "k-ES384").unwrap();
    assert_eq!((p384["crv"].as_str(), p384["x"].as_str().map(str::len)), (Some("P-384"), Some(64)));
    // Newest first.
    assert_eq!(all[0]["kid"], "k-RS256");
    let one = Req::new("GET", &format!("/admin/keys/{set}/k-ES256")).send(s.admin);
    one.expect(200);
    assert_eq!(keys(&one).len(), 1);
    assert_eq!(keys(&one)[0]["crv"], "P-256");
    Req::new("GET", &format!("/admin/keys/{set}/absent")).send(s.admin).expect(404);

    // A generated kid when none is given.
    let r = Req::new("POST", &format!("/admin/keys/{set}")).json(&json!({"alg": "ES256", "use": "sig"})).send(s.admin);
    r.expect(201);
    assert_eq!(keys(&r)[0]["kid"].as_str().unwrap().len(), 36);

    // PUT one key under its kid, then the whole set.
    let mut es = keys(&one)[0].clone();
    es["kid"] = json!("copied");
    let r = Req::new("PUT", &format!("/admin/keys/{set}/copied")).json(&es).send(s.admin);
    r.expect(200);
    assert_eq!(r.json()["kid"], "copied");
    assert_eq!(keys(&get_set(s, set)).len(), algs.len() + 2);
    let r = Req::new("PUT", &format!("/admin/keys/{set}")).json(&json!({"keys": [es]})).send(s.admin);
    r.expect(200);
    let after = keys(&get_set(s, set));
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["kid"], "copied");

    Req::new("DELETE", &format!("/admin/keys/{set}/copied")).send(s.admin).expect(204);
    get_set(s, set).expect(404);
    Req::new("DELETE", &format!("/admin/keys/{set}")).send(s.admin).expect(204);
}

#[test]
fn bad_key_requests_are_refused() {
    let s = api();
    let set = "it-keys-bad";
    for body in [
        json!({"alg": "HS256", "use": "sig"}),
        json!({"alg": "RS1", "use": "sig"}),
        json!({"use": "sig"}),
        json!({"alg": "ES512", "use": "sig"}),
        json!({"alg": "RS256", "use": "wrap"}),
    ] {
        let r = Req::new("POST", &format!("/admin/keys/{set}")).json(&body).send(s.admin);
        r.expect_error(400, "invalid_request");
    }
    let mut garbled = Req::new("POST", &format!("/admin/keys/{set}")).header("Content-Type", "application/json");
    garbled.body = b"{not json".to_vec();
    garbled.send(s.admin).expect_error(400, "invalid_request");
    // A public EC key with a short coordinate, an RSA key with a 512-bit modulus, a kid that
    // does not match the path, a set with two keys of one kid.
    let short = json!({"kty": "EC", "crv": "P-256", "kid": "a", "x": "AAAA", "y": "AAAA"});
    Req::new("PUT", &format!("/admin/keys/{set}/a")).json(&short).send(s.admin).expect_error(400, "invalid_request");
    let weak = json!({"kty": "RSA", "kid": "a", "e": "AQAB", "n": "x".repeat(86)});
    Req::new("PUT", &format!("/admin/keys/{set}/a")).json(&weak).send(s.admin).expect_error(400, "invalid_request");
    let r = Req::new("POST", "/admin/keys/it-keys-src")
        .json(&json!({"alg": "ES256", "kid": "src", "use": "sig"}))
        .send(s.admin);
    let good = keys(&r)[0].clone();
    Req::new("PUT", &format!("/admin/keys/{set}/other")).json(&good).send(s.admin).expect_error(400, "invalid_request");
    Req::new("PUT", &format!("/admin/keys/{set}"))
        .json(&json!({"keys": [good, good]}))
        .send(s.admin)
        .expect_error(400, "invalid_request");
    get_set(s, set).expect(404);
}

#[test]
fn keys_survive_restart_sealed_at_rest_and_through_secret_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let old = "first-system-secret-0123456789";
    let s = Opts::new("io_uring").dir(dir.path()).env("SECRETS_SYSTEM", old).start();
    let before = keys(&get_set(&s, "hydra.openid.id-token"));
    assert_eq!(before.len(), 1);
    let r =
        Req::new("POST", "/admin/keys/custom").json(&json!({"alg": "EdDSA", "kid": "ed", "use": "sig"})).send(s.admin);
    r.expect(201);
    let ed = keys(&r)[0].clone();
    s.stop();
    // No private member appears in any file of the data directory.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for secret in [before[0]["d"].as_str().unwrap(), before[0]["p"].as_str().unwrap(), ed["d"].as_str().unwrap()] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a private key member is stored in the clear"
            );
        }
    }
    let new = "second-system-secret-0123456789";
    let s = Opts::new("io_uring").dir(dir.path()).env("SECRETS_SYSTEM", &format!("{new},{old}")).start();
    assert_eq!(keys(&get_set(&s, "hydra.openid.id-token")), before, "the same key after restart, not a new one");
    assert_eq!(keys(&get_set(&s, "custom")), vec![ed.clone()]);
    s.stop();
    // That start sealed every key again with the new secret: the old one can go.
    let s = Opts::new("io_uring").dir(dir.path()).env("SECRETS_SYSTEM", new).start();
    assert_eq!(keys(&get_set(&s, "custom")), vec![ed.clone()]);
    s.stop();
    // Without any secret that sealed them, the keys cannot be opened: the server refuses to start.
    let (code, err) = run_to_exit(
        Opts::new("io_uring").dir(dir.path()).env("SECRETS_SYSTEM", "third-system-secret-0123456789").command(),
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("secrets.system"), "{err}");
}

#[test]
fn a_deleted_default_set_is_generated_again_on_first_use() {
    let s = Opts::new("legacy").start();
    let first = keys(&get_set(&s, "hydra.openid.id-token"))[0]["kid"].clone();
    Req::new("DELETE", "/admin/keys/hydra.openid.id-token").send(s.admin).expect(204);
    get_set(&s, "hydra.openid.id-token").expect(404);
    let r = Req::new("GET", "/.well-known/jwks.json").send(s.public);
    r.expect(200);
    let published = keys(&r);
    let again = keys(&get_set(&s, "hydra.openid.id-token"));
    assert_eq!(again.len(), 1);
    assert_ne!(again[0]["kid"], first);
    assert!(published.iter().any(|k| k["kid"] == again[0]["kid"]));
}

/// `POST /admin/keys/{set}` never replaces a key: a taken `kid` is 409 (as Hydra) and the key
/// that had it still verifies what it signed.
#[test]
fn creating_a_key_under_a_taken_kid_is_409() {
    let s = Opts::new("legacy").start();
    let r = Req::new("POST", "/admin/keys/custom-set")
        .json(&json!({"alg": "ES256", "kid": "k1", "use": "sig"}))
        .send(s.admin);
    let first = keys(r.expect(201))[0].clone();
    let r = Req::new("POST", "/admin/keys/custom-set")
        .json(&json!({"alg": "RS256", "kid": "k1", "use": "sig"}))
        .send(s.admin);
    assert_eq!(r.status, 409, "{}", r.text());
    let now = keys(&get_set(&s, "custom-set"));
    assert_eq!(now.len(), 1);
    assert_eq!(now[0]["x"], first["x"], "the first k1 is still there");
}

/// A public key put in front of a signing set (to publish it) does not stop signing: the newest
/// private key signs, as Hydra's `FindPrivateKey`; a set of public keys only gets a new private one.
#[test]
fn a_public_key_in_front_of_a_signing_set_signs_nothing() {
    let s = Opts::new("legacy").start();
    let set = "hydra.openid.id-token";
    let signing = keys(&get_set(&s, set))[0]["kid"].as_str().unwrap().to_string();
    let made = Req::new("POST", "/admin/keys/tmp").json(&json!({"alg": "RS256", "kid": "pub-only"})).send(s.admin);
    let mut public = keys(made.expect(201))[0].clone();
    for k in ["d", "p", "q", "dp", "dq", "qi"] {
        public.as_object_mut().unwrap().remove(k);
    }
    Req::new("PUT", &format!("/admin/keys/{set}/pub-only")).json(&public).send(s.admin).expect(200);
    let rp = crate::browser::rp(&s, json!({}));
    let t = crate::browser::exchange(&s, &rp, &crate::browser::code_for(&s, &rp, &[]), Some(crate::browser::VERIFIER));
    let id = t.expect(200).json()["id_token"].as_str().unwrap().to_string();
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, id.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], signing.as_str(), "the private key signed");
    // Only public keys left: a private one is generated beside them.
    Req::new("DELETE", &format!("/admin/keys/{set}/{signing}")).send(s.admin).expect(204);
    let t = crate::browser::exchange(&s, &rp, &crate::browser::code_for(&s, &rp, &[]), Some(crate::browser::VERIFIER));
    assert!(t.expect(200).json()["id_token"].is_string());
    let now = keys(&get_set(&s, set));
    assert_eq!(now.len(), 2, "{now:?}");
    assert!(now.iter().any(|k| k["kid"] == "pub-only"));
}

/// Keys of every family sign ID tokens when they are newest in `hydra.openid.id-token`, with
/// `at_hash` of their hash; an encryption key is stored and returned but never signs.
#[test]
fn newer_algorithms_sign_id_tokens_and_encryption_keys_do_not() {
    use crate::browser::*;
    let dir = tempfile::tempdir().unwrap();
    let opts = Opts::new("io_uring").dir(dir.path());
    let s = opts.start();
    let rp = rp(&s, json!({}));
    let id_token = |s: &Server| {
        let t = exchange(s, &rp, &code_for(s, &rp, &[]), Some(VERIFIER));
        field(&t.expect(200).json(), "id_token")
    };
    let header = |jwt: &str| -> Value {
        use base64::Engine;
        let h = jwt.split('.').next().unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap()
    };
    for (alg, hash_len) in [("PS384", 32), ("ES384", 32), ("RS512", 43)] {
        let r = Req::new("POST", "/admin/keys/hydra.openid.id-token")
            .json(&json!({"alg": alg, "kid": format!("id-{alg}"), "use": "sig"}))
            .send(s.admin);
        r.expect(201);
        let jwt = id_token(&s);
        assert_eq!(header(&jwt)["alg"], alg);
        assert_eq!(header(&jwt)["kid"], format!("id-{alg}"));
        let jwks: Vec<hydra::jose::jwk::Jwk> =
            serde_json::from_value(Req::get("/.well-known/jwks.json").send(s.public).json()["keys"].clone()).unwrap();
        let v = hydra::jose::jws::verify(&jwt, &jwks).expect("verifies with the published keys");
        let claims: Value = serde_json::from_slice(&v.payload).unwrap();
        assert_eq!(claims["at_hash"].as_str().map(str::len), Some(hash_len), "{alg}: {claims}");
    }
    // An encryption key, newest in the set: returned with its use, never signing.
    let r = Req::new("POST", "/admin/keys/hydra.openid.id-token")
        .json(&json!({"alg": "RS256", "kid": "enc-1", "use": "enc"}))
        .send(s.admin);
    r.expect(201);
    assert_eq!(keys(&r)[0]["use"], "enc");
    assert_eq!(header(&id_token(&s))["kid"], "id-RS512");
    let set = keys(&get_set(&s, "hydra.openid.id-token"));
    assert_eq!(set[0]["kid"], "enc-1");
    // After a restart (the keys are opened again, the encryption key without a signer) the same
    // key signs.
    drop(s);
    let s = opts.start();
    assert_eq!(header(&id_token(&s))["kid"], "id-RS512");
    assert_eq!(keys(&get_set(&s, "hydra.openid.id-token"))[0]["use"], "enc");
}

#[test]
fn id_tokens_use_the_algorithm_the_client_registered() {
    use crate::browser::*;
    let s = Opts::new("io_uring").start();
    Req::new("POST", "/admin/keys/hydra.openid.id-token")
        .json(&json!({"alg": "ES256", "use": "sig", "kid": "newest-es"}))
        .send(s.admin)
        .expect(201);
    let d = Req::get("/.well-known/openid-configuration").send(s.public).json();
    assert_eq!(
        d["id_token_signing_alg_values_supported"],
        json!(["ES256", "RS256"]),
        "every algorithm of the set, newest first"
    );
    let alg_of = |rp: &Rp| {
        let tokens = exchange(&s, rp, &code_for(&s, rp, &[]), Some(VERIFIER)).json();
        let jwt = field(&tokens, "id_token");
        let header = jwt.split('.').next().unwrap().to_string();
        let h: Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
        )
        .unwrap();
        let jwks: Vec<hydra::jose::jwk::Jwk> =
            serde_json::from_value(Req::get("/.well-known/jwks.json").send(s.public).json()["keys"].clone()).unwrap();
        hydra::jose::jws::verify(&jwt, &jwks).expect("verifies with the published keys");
        (h["alg"].as_str().unwrap().to_string(), tokens)
    };
    let default_rp = rp(&s, json!({}));
    assert_eq!(alg_of(&default_rp).0, "ES256", "unregistered: the newest key signs");
    let rs_rp = rp(&s, json!({"id_token_signed_response_alg": "RS256"}));
    let got = Req::get(&format!("/admin/clients/{}", rs_rp.id)).send(s.admin).json();
    assert_eq!(got["id_token_signed_response_alg"], "RS256");
    let (alg, tokens) = alg_of(&rs_rp);
    assert_eq!(alg, "RS256", "the registered algorithm, though an ES256 key is newer");
    // On refresh too.
    let again = refresh(&s, &rs_rp, &field(&tokens, "refresh_token"), None).json();
    let h = field(&again, "id_token");
    let header = h.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "RS256");
    // An algorithm without a key in the set: no token signed with another one.
    let ps_rp = rp(&s, json!({"id_token_signed_response_alg": "PS384"}));
    let r = exchange(&s, &ps_rp, &code_for(&s, &ps_rp, &[]), Some(VERIFIER));
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.json()["error"], "server_error");
    for bad in ["none", "HS256", "ES512"] {
        Req::new("POST", "/admin/clients")
            .json(&json!({"id_token_signed_response_alg": bad}))
            .send(s.admin)
            .expect_error(400, "invalid_client_metadata");
    }
    let plain = create_client(&s, &json!({}));
    assert!(plain.get("id_token_signed_response_alg").is_none(), "Hydra's client shape when unset");
}
