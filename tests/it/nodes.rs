//! Several `hydra serve all` processes on one PostgreSQL database (these run in every suite run,
//! whatever `IT_BACKEND` says): any node answers any request. What one node answered 2xx for is
//! in force on the other at once (tokens, revocations, deleted clients, bulk revocations,
//! revoked consents, revoked grants); client and key changes within one second; a code or a
//! refresh token is used once across nodes; a browser flow may change node at every leg; the
//! background janitor runs on one node at a time.

use crate::browser::*;
use crate::harness::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// Two nodes on one fresh database.
fn pair(extra: &[(&str, &str)]) -> (Server, Server) {
    let dsn = pg_database(None);
    let start = || {
        let mut o = Opts::new("io_uring").env("DSN", &dsn);
        for (k, v) in extra {
            o = o.env(k, v);
        }
        o.start()
    };
    (start(), start())
}

/// How long a client or key change made on one node may take to be in force on another
/// (`docs/design.md`: the change feed is read every 250 ms; the documented bound is one second).
const BOUND: Duration = Duration::from_secs(1);

/// Waits until `ok` holds, failing after [`BOUND`] (plus scheduling slack on a loaded machine);
/// returns how long it took.
#[track_caller]
fn within_bound(what: &str, mut ok: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < BOUND + Duration::from_millis(500), "{what}: not in force after {:?}", t0.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    t0.elapsed()
}

#[test]
fn writes_acknowledged_on_one_node_are_in_force_on_the_other_at_once() {
    let (a, b) = pair(&[]);
    let (id, secret) = cc_client(&a, "read");
    // The client reaches B through the feed; then tokens from either node work on both.
    within_bound("a client created on A", || token_req(&id, &secret, &[]).send(b.public).status == 200);
    let t = access_token(&a, &id, &secret);
    assert!(is_active(&b, &t), "a token issued on A introspects on B at once");
    let u = access_token(&b, &id, &secret);
    assert!(is_active(&a, &u));
    // Revocation on A: inactive on B the moment A answered.
    revoke(&a, &id, &secret, &t).expect(200);
    assert!(!is_active(&b, &t));
    assert!(is_active(&b, &u));
    // Every token of the client revoked on A: inactive on B at once; new ones live.
    let many: Vec<String> = (0..10).map(|i| access_token(if i % 2 == 0 { &a } else { &b }, &id, &secret)).collect();
    Req::new("DELETE", &format!("/admin/oauth2/tokens?client_id={id}")).send(a.admin).expect(204);
    assert_eq!(count_active(b.admin, &many), 0);
    assert!(!is_active(&b, &u));
    let fresh = access_token(&b, &id, &secret);
    assert!(is_active(&a, &fresh) && is_active(&b, &fresh), "tokens issued after the revocation live");
    // The client deleted on A: its tokens are inactive on B at once.
    Req::new("DELETE", &format!("/admin/clients/{id}")).send(a.admin).expect(204);
    assert!(!is_active(&b, &fresh));
    // ... and B stops issuing for it within the bound.
    within_bound("a client deleted on A", || token_req(&id, &secret, &[]).send(b.public).status == 401);
}

#[test]
fn grants_consents_and_single_use_hold_across_nodes() {
    let (a, b) = pair(&[]);
    let rp = rp(&a, json!({}));
    within_bound("the client on B", || Req::get(&format!("/admin/clients/{}", rp.id)).send(b.admin).status == 200);
    // A browser flow that changes node at every leg, redeemed on the other node.
    let mut jar = Jar::default();
    let lc = start(&a, &mut jar, &rp, &[]);
    let lv = accept_login(&b, &lc, &standard_login());
    let cc = to_consent(&a, &mut jar, &lv);
    let cv = accept_consent(&b, &cc, &standard_consent());
    let done = location(&jar.get(&a, &cv));
    let code = code_of(&done);
    // The same consent verifier again, on the other node: no second code.
    let again = jar.get(&b, &cv);
    assert!(query_param(&location(&again), "code").is_none(), "a replayed verifier yields no code");
    let t = exchange(&b, &rp, &code, Some(VERIFIER));
    t.expect(200);
    let t = t.json();
    let (at, rt) = (field(&t, "access_token"), field(&t, "refresh_token"));
    assert!(is_active(&a, &at));
    // The code again on A: refused, and the grant it bought is revoked everywhere.
    exchange(&a, &rp, &code, Some(VERIFIER)).expect_error(400, "invalid_grant");
    assert!(!is_active(&b, &at) && !is_active(&b, &rt));

    // A refresh token rotated concurrently on both nodes: exactly one rotation succeeds; the
    // other is a reuse, which revokes the grant (the winner's new tokens too).
    for round in 0..5 {
        let code = code_for(&a, &rp, &[]);
        let t = exchange(&a, &rp, &code, Some(VERIFIER)).json();
        let rt = field(&t, "refresh_token");
        let (ra, rb) = std::thread::scope(|sc| {
            let x = sc.spawn(|| refresh(&a, &rp, &rt, None));
            let y = sc.spawn(|| refresh(&b, &rp, &rt, None));
            (x.join().unwrap(), y.join().unwrap())
        });
        let ok: Vec<&Response> = [&ra, &rb].into_iter().filter(|r| r.status == 200).collect();
        assert_eq!(ok.len(), 1, "round {round}: exactly one rotation wins ({} and {})", ra.status, rb.status);
        let lost = if ra.status == 200 { &rb } else { &ra };
        lost.expect_error(400, "invalid_grant");
        let won = ok[0].json();
        assert!(!is_active(&a, &field(&won, "access_token")), "round {round}: the reuse revoked the winner's tokens");
        assert!(!is_active(&b, &field(&won, "refresh_token")));
    }

    // A code redeemed concurrently on both nodes: exactly one exchange succeeds.
    for round in 0..5 {
        let code = code_for(&b, &rp, &[]);
        let (ra, rb) = std::thread::scope(|sc| {
            let x = sc.spawn(|| exchange(&a, &rp, &code, Some(VERIFIER)));
            let y = sc.spawn(|| exchange(&b, &rp, &code, Some(VERIFIER)));
            (x.join().unwrap(), y.join().unwrap())
        });
        assert_eq!([ra.status, rb.status].iter().filter(|s| **s == 200).count(), 1, "round {round}");
    }

    // A consent revoked on A: the grant's tokens are inactive on B at once.
    let code = code_for(&a, &rp, &[]);
    let t = exchange(&a, &rp, &code, Some(VERIFIER)).json();
    let (at, rt) = (field(&t, "access_token"), field(&t, "refresh_token"));
    assert!(is_active(&b, &at));
    Req::new("DELETE", &format!("/admin/oauth2/auth/sessions/consent?subject=alice&client={}", rp.id))
        .send(a.admin)
        .expect(204);
    assert!(!is_active(&b, &at) && !is_active(&b, &rt));
    refresh(&b, &rp, &rt, None).expect_error(400, "invalid_grant");
}

#[test]
fn client_and_key_changes_are_in_force_on_the_other_node_within_a_second() {
    let (a, b) = pair(&[]);
    let (id, secret) = cc_client(&a, "read write");
    let cc = |s: &Server, secret: &str, scope: &str| {
        Req::new("POST", "/oauth2/token")
            .basic(&id, secret)
            .form(&[("grant_type", "client_credentials"), ("scope", scope)])
            .send(s.public)
            .status
    };
    let took = within_bound("created", || cc(&b, &secret, "read") == 200);
    eprintln!("client creation reached the other node after {took:?}");
    // Updated on A (scope narrowed): in force on B.
    let mut c = Req::get(&format!("/admin/clients/{id}")).send(a.admin).json();
    c["scope"] = json!("read");
    Req::new("PUT", &format!("/admin/clients/{id}")).json(&c).send(a.admin).expect(200);
    within_bound("updated", || cc(&b, &secret, "write") == 400);
    assert_eq!(cc(&b, &secret, "read"), 200);
    // Secret rotated on A: the new one works on B, the old one no longer.
    let mut c = Req::get(&format!("/admin/clients/{id}")).send(a.admin).json();
    c["client_secret"] = json!("a-brand-new-secret-0123456789");
    Req::new("PUT", &format!("/admin/clients/{id}")).json(&c).send(a.admin).expect(200);
    within_bound("secret rotated", || {
        cc(&b, "a-brand-new-secret-0123456789", "read") == 200 && cc(&b, &secret, "read") == 401
    });
    // A key set changed on A: published by B.
    let kid = |s: &Server| {
        Req::get("/.well-known/jwks.json").send(s.public).json()["keys"]
            .as_array()
            .map(|k| k.iter().filter_map(|k| k["kid"].as_str().map(str::to_string)).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let new = Req::new("POST", "/admin/keys/hydra.openid.id-token")
        .json(&json!({"alg": "ES256", "use": "sig", "kid": "rotated-on-a"}))
        .send(a.admin);
    new.expect(201);
    within_bound("key set changed", || kid(&b).iter().any(|k| k == "rotated-on-a"));
    // Deleted on A: B refuses it.
    Req::new("DELETE", &format!("/admin/clients/{id}")).send(a.admin).expect(204);
    within_bound("deleted", || cc(&b, "a-brand-new-secret-0123456789", "read") == 401);
}

#[test]
fn the_background_janitor_runs_on_one_node_at_a_time() {
    let passes = |s: &Server| metric(&scrape(s), "hydra_janitor_passes_total").unwrap_or(0.0);
    let (a, b) = pair(&[("ENGINE_JANITOR_INTERVAL", "1s")]);
    std::thread::sleep(Duration::from_millis(4500));
    let (pa, pb) = (passes(&a), passes(&b));
    assert!((pa > 0.0) ^ (pb > 0.0), "exactly one node runs passes ({pa} and {pb})");
    // The holder goes away: the other takes over once the lease (two intervals) lapses.
    let (survivor, before) = if pa > 0.0 {
        a.kill();
        (b, pb)
    } else {
        b.kill();
        (a, pa)
    };
    let t0 = Instant::now();
    while passes(&survivor) <= before {
        assert!(t0.elapsed() < Duration::from_secs(10), "the other node never took over");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn trust_relationships_reach_the_other_node_and_jtis_are_single_use_across_nodes() {
    use hydra::jose::jwk::{Alg, Jwk};
    let (a, b) = pair(&[]);
    let key = Jwk::generate(Alg::ES256, "nodes", "sig").unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let g = Req::new("POST", "/admin/trust/grants/jwt-bearer/issuers")
        .json(&json!({"issuer": "https://nodes.idp.example", "subject": "alice", "scope": ["read"], "jwk": key.public(), "expires_at": hydra::dates::rfc3339(now + 3600)}))
        .send(a.admin);
    g.expect(201);
    let id = field(&g.json(), "id");
    let (cid, secret) =
        cc_client_with(&a, json!({"grant_types": ["urn:ietf:params:oauth:grant-type:jwt-bearer"], "scope": "read"}));
    let path = format!("/admin/trust/grants/jwt-bearer/issuers/{id}");
    within_bound("a trust relationship created on A", || Req::get(&path).send(b.admin).status == 200);
    within_bound("a client created on A", || token_req(&cid, &secret, &[]).send(b.public).status != 401);
    let claims = json!({"iss": "https://nodes.idp.example", "sub": "alice", "aud": [format!("http://{}/oauth2/token", b.public), format!("http://{}/oauth2/token", a.public)], "iat": now, "exp": now + 300, "jti": "nodes-1"});
    let assertion = hydra::jose::jws::Signer::from_jwk(&key).unwrap().sign(claims.to_string().as_bytes()).unwrap();
    let form = [("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion.as_str())];
    Req::new("POST", "/oauth2/token").basic(&cid, &secret).form(&form).send(b.public).expect(200);
    // The same assertion (its audience names both nodes) at the other node: its jti is spent.
    let r = Req::new("POST", "/oauth2/token").basic(&cid, &secret).form(&form).send(a.public);
    assert!(r.status == 400 && r.text().contains("jti has been used before"), "{}", r.text());
    Req::new("DELETE", &path).send(a.admin).expect(204);
    within_bound("a trust relationship deleted on A", || Req::get(&path).send(b.admin).status == 404);
}

#[test]
fn a_device_flow_may_change_node_at_every_step() {
    let (a, b) = pair(&[]);
    let grant = "urn:ietf:params:oauth:grant-type:device_code";
    let c =
        create_client(&a, &json!({"grant_types": [grant], "scope": "openid", "token_endpoint_auth_method": "none"}));
    let id = c["client_id"].as_str().unwrap().to_string();
    let ask = |s: &Server| {
        Req::new("POST", "/oauth2/device/auth").form(&[("client_id", &id), ("scope", "openid")]).send(s.public)
    };
    within_bound("a device client created on A", || ask(&b).status == 200);
    let dev = ask(&a).json();
    let dc = field(&dev, "device_code");
    let poll = |s: &Server| {
        Req::new("POST", "/oauth2/token")
            .form(&[("grant_type", grant), ("device_code", &dc), ("client_id", &id)])
            .send(s.public)
    };
    poll(&b).expect_error(400, "authorization_pending");
    // The browser: page on A, user code accepted on B, verifier on A, login and consent on B.
    let mut jar = Jar::default();
    let r = jar.get(&a, &local(&field(&dev, "verification_uri")));
    jar.take(&r);
    let ch = query_param(&location(&r), "device_challenge").unwrap();
    let path = format!("/admin/oauth2/auth/requests/device/accept?device_challenge={}", form_escape(&ch));
    let v = local(&redirect_to(&put_json(&b, &path, &json!({"user_code": field(&dev, "user_code")}))));
    let with_cookie = jar.clone();
    let r = jar.get(&a, &v);
    jar.take(&r);
    let lc = query_param(&location(&r), "login_challenge").unwrap();
    // The user code is spent for both nodes.
    with_cookie.get(&b, &v).expect_error(403, "access_denied");
    let lv = accept_login(&b, &lc, &standard_login());
    let cc = to_consent(&b, &mut jar, &lv);
    let cv = accept_consent(&a, &cc, &json!({"grant_scope": ["openid"]}));
    assert!(location(&jar.get(&b, &cv)).contains("device/done"));
    // Exchanged once, on either node.
    poll(&a).expect(200);
    poll(&b).expect_error(400, "invalid_grant");
}
