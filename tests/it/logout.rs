//! Logout: RP-initiated with an `id_token_hint` (only registered `post_logout_redirect_uri`s,
//! `state` passed back), OP-initiated for the browser's session, the admin logout requests and
//! their status codes, the built-in logout page, the session really ending, single use and CSRF
//! of the verifier, every refused input never redirecting anywhere but the error page, and the
//! front- and back-channel notices (a real receiver on loopback, including a slow and a failing
//! one), also from `DELETE …/sessions/login?sid=`.

use crate::browser::*;
use crate::harness::*;
use base64::Engine;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BYE: &str = "https://rp.example/bye";

/// Logs `subject` in through `rp` in `jar` (remembered) and consents; returns the ID token.
fn login(s: &Server, jar: &mut Jar, rp: &Rp, subject: &str) -> String {
    let r = jar.get(s, &auth_path(rp, &[]));
    jar.take(&r);
    let lc = query_param(&location(&r), "login_challenge").expect("a login challenge");
    let a = put_json(
        s,
        &format!("/admin/oauth2/auth/requests/login/accept?login_challenge={}", form_escape(&lc)),
        &json!({"subject": subject, "remember": true, "remember_for": 3600}),
    );
    let r = jar.get(s, &local(&redirect_to(&a)));
    jar.take(&r);
    let cc = query_param(&location(&r), "consent_challenge").expect("a consent challenge");
    let a = put_json(
        s,
        &format!("/admin/oauth2/auth/requests/consent/accept?consent_challenge={}", form_escape(&cc)),
        &json!({"grant_scope": ["openid"]}),
    );
    let r = jar.get(s, &local(&redirect_to(&a)));
    jar.take(&r);
    let t = exchange(s, rp, &code_of(&location(&r)), Some(VERIFIER));
    field(&t.expect(200).json(), "id_token")
}

fn claims(jwt: &str) -> Value {
    serde_json::from_str(&jwt_payload(jwt)).expect("JSON claims")
}

fn logout_path(params: &[(&str, &str)]) -> String {
    format!("/oauth2/sessions/logout?{}", form(params))
}

/// Whether a `prompt=none` authorization in this browser is refused with `login_required`.
fn logged_out(s: &Server, jar: &Jar, rp: &Rp) -> bool {
    let loc = location(&jar.get(s, &auth_path(rp, &[("prompt", "none")])));
    query_param(&loc, "error").as_deref() == Some("login_required")
}

fn get_request(s: &Server, challenge: &str) -> Response {
    Req::get(&format!("/admin/oauth2/auth/requests/logout?logout_challenge={}", form_escape(challenge))).send(s.admin)
}

fn put_logout(s: &Server, what: &str, challenge: &str) -> Response {
    Req::new("PUT", &format!("/admin/oauth2/auth/requests/logout/{what}?logout_challenge={}", form_escape(challenge)))
        .send(s.admin)
}

/// The logout challenge a logout request in `jar` leads to.
#[track_caller]
fn challenge_of_logout(s: &Server, jar: &mut Jar, path: &str) -> String {
    let r = jar.get(s, path);
    jar.take(&r);
    let loc = location(&r);
    assert!(loc.contains("/oauth2/fallbacks/logout?"), "to the logout page: {loc}");
    query_param(&loc, "logout_challenge").unwrap_or_else(|| panic!("no logout challenge: {loc}"))
}

#[test]
fn rp_initiated_logout_asks_the_logout_app_ends_the_session_and_returns_with_state() {
    let s = api();
    let rp = rp(s, json!({"post_logout_redirect_uris": [BYE]}));
    let mut jar = Jar::default();
    let subject = uniq("alice");
    let hint = login(s, &mut jar, &rp, &subject);
    assert!(!logged_out(s, &jar, &rp), "logged in: prompt=none succeeds");
    let sid = field(&claims(&hint), "sid");

    let state = "st-~._!$'()*,;:@/?&=+ 0123456789abcdef";
    let c = challenge_of_logout(
        s,
        &mut jar,
        &logout_path(&[("id_token_hint", &hint), ("post_logout_redirect_uri", BYE), ("state", state)]),
    );
    let lr = get_request(s, &c);
    lr.expect(200);
    let lr = lr.json();
    assert_eq!((lr["subject"].as_str(), lr["sid"].as_str()), (Some(subject.as_str()), Some(sid.as_str())));
    assert_eq!((lr["rp_initiated"].clone(), lr["challenge"].as_str()), (json!(true), Some(c.as_str())));
    assert_eq!(lr["client"]["client_id"], rp.id.as_str());
    assert!(lr["client"].get("client_secret").is_none(), "{lr}");
    assert!(lr["request_url"].as_str().unwrap().contains("/oauth2/sessions/logout?"), "{lr}");
    for k in ["requested_at", "expires_at"] {
        assert!(lr[k].as_str().is_some_and(|t| t.ends_with('Z')), "{k}: {lr}");
    }
    let verifier = local(&redirect_to(&put_logout(s, "accept", &c)));
    assert!(verifier.starts_with("/oauth2/sessions/logout?logout_verifier="), "{verifier}");
    let before = jar.clone();
    let r = jar.get(s, &verifier);
    let back = location(&r);
    assert_eq!(query_param(&back, "state").as_deref(), Some(state), "{back}");
    assert!(back.starts_with(&format!("{BYE}?state=")), "{back}");
    assert!(
        set_cookie(&r).iter().any(|(k, v)| k == "ory_hydra_session" && v.is_empty()),
        "the session cookie is cleared: {:?}",
        r.headers
    );
    jar.take(&r);
    assert!(logged_out(s, &jar, &rp), "the session ended");
    // Even a browser that kept the old cookie has no session any more.
    let mut kept = jar.clone();
    kept.0.retain(|(k, _)| k != "ory_hydra_session");
    assert!(logged_out(s, &kept, &rp));

    // Handled: the request answers 410, the verifier is spent.
    let gone = get_request(s, &c);
    gone.expect(410);
    assert!(gone.json()["redirect_to"].as_str().unwrap().contains("/oauth2/sessions/logout"));
    put_logout(s, "accept", &c).expect(410);
    // Replayed, even with the CSRF cookie it carried the first time: spent.
    let again = before.get(s, &verifier);
    assert_eq!(expect_error_page(s, &again, "replayed verifier"), "invalid_request");

    // Without post_logout_redirect_uri: the operator's page, and state is not carried there.
    let hint = login(s, &mut jar, &rp, &subject);
    let c = challenge_of_logout(s, &mut jar, &logout_path(&[("id_token_hint", &hint), ("state", "s1")]));
    let r = jar.get(s, &local(&redirect_to(&put_logout(s, "accept", &c))));
    let loc = location(&r);
    assert!(loc.ends_with("/oauth2/fallbacks/logout/callback"), "{loc}");
    jar.take(&r);
    assert!(logged_out(s, &jar, &rp));
    let page = Req::get("/oauth2/fallbacks/logout/callback").send(s.public);
    assert!(page.expect(200).text().contains("logged out"), "{}", page.text());
}

/// A hint signed with our ID-token key but saying something else (from the admin API, which
/// returns private keys as Hydra does).
fn signed_by_us(s: &Server, claims: &Value) -> String {
    let set = Req::get("/admin/keys/hydra.openid.id-token").send(s.admin).json();
    let jwk: hydra::jose::jwk::Jwk = serde_json::from_value(set["keys"][0].clone()).unwrap();
    hydra::jose::jws::Signer::from_jwk(&jwk).unwrap().sign(claims.to_string().as_bytes()).unwrap()
}

#[test]
fn bad_logout_requests_never_redirect_to_the_client() {
    let s = api();
    let rp = rp(s, json!({"post_logout_redirect_uris": [BYE]}));
    let mut jar = Jar::default();
    let hint = login(s, &mut jar, &rp, &uniq("bob"));
    let c = claims(&hint);
    let parts: Vec<&str> = hint.split('.').collect();
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), parts[1]);
    let mut changed = c.clone();
    changed["sid"] = json!("someone-else");
    let modified = format!("{}.{}.{}", parts[0], b64(&changed), parts[2]);
    let foreign_key = hydra::jose::jwk::Jwk::generate(hydra::jose::jwk::Alg::RS256, "k", "sig").unwrap();
    let foreign = hydra::jose::jws::Signer::from_jwk(&foreign_key).unwrap().sign(c.to_string().as_bytes()).unwrap();
    let mut other_issuer = c.clone();
    other_issuer["iss"] = json!("https://evil.example/");
    let other_issuer = signed_by_us(s, &other_issuer);
    let other_rp = self::rp(s, json!({"post_logout_redirect_uris": ["https://rp.example/other"]}));
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("unregistered uri", vec![("id_token_hint", &hint), ("post_logout_redirect_uri", "https://rp.example/evil")]),
        ("query added", vec![("id_token_hint", &hint), ("post_logout_redirect_uri", "https://rp.example/bye?foo=bar")]),
        (
            "another client's uri",
            vec![("id_token_hint", &hint), ("post_logout_redirect_uri", "https://rp.example/other")],
        ),
        ("alg none", vec![("id_token_hint", &none), ("post_logout_redirect_uri", BYE)]),
        ("modified hint", vec![("id_token_hint", &modified), ("post_logout_redirect_uri", BYE)]),
        ("foreign signature", vec![("id_token_hint", &foreign), ("post_logout_redirect_uri", BYE)]),
        ("another issuer", vec![("id_token_hint", &other_issuer), ("post_logout_redirect_uri", BYE)]),
        ("no hint", vec![("post_logout_redirect_uri", BYE), ("state", "x")]),
        (
            "client_id not the hint's",
            vec![("id_token_hint", &hint), ("client_id", &other_rp.id), ("post_logout_redirect_uri", BYE)],
        ),
    ];
    for (what, params) in cases {
        let r = jar.get(s, &logout_path(&params));
        expect_error_page(s, &r, what);
        assert!(set_cookie(&r).is_empty(), "{what}: nothing changes: {:?}", r.headers);
    }
    assert!(!logged_out(s, &jar, &rp), "none of them ended the session");
    // A POST with the same rules.
    let r = Req::new("POST", "/oauth2/sessions/logout")
        .header("Cookie", &jar.header())
        .form(&[("id_token_hint", &none), ("post_logout_redirect_uri", BYE)])
        .send(s.public);
    expect_error_page(s, &r, "POST alg none");
    // Foreign and wrong-purpose challenges are unknown; a missing one is a bad request.
    let lc = {
        let r = Jar::default().get(s, &auth_path(&rp, &[]));
        query_param(&location(&r), "login_challenge").unwrap()
    };
    for bad in ["nope", lc.as_str()] {
        get_request(s, bad).expect(404);
        put_logout(s, "accept", bad).expect(404);
        put_logout(s, "reject", bad).expect(404);
    }
    Req::get("/admin/oauth2/auth/requests/logout").send(s.admin).expect(400);
    // A verifier of the wrong purpose, or garbage, is the error page.
    let r = jar.get(s, &format!("/oauth2/sessions/logout?logout_verifier={}", form_escape(&lc)));
    expect_error_page(s, &r, "login challenge as verifier");

    // CSRF: a verifier made for this browser does nothing in another one.
    let c =
        challenge_of_logout(s, &mut jar, &logout_path(&[("id_token_hint", &hint), ("post_logout_redirect_uri", BYE)]));
    let verifier = local(&redirect_to(&put_logout(s, "accept", &c)));
    let r = Req::get(&verifier).send(s.public);
    assert_eq!(expect_error_page(s, &r, "no CSRF cookie"), "request_forbidden");
    let mut other_browser = Jar::default();
    login(s, &mut other_browser, &rp, &uniq("eve"));
    other_browser.0.push(("ory_hydra_logout_csrf".into(), "0".repeat(32)));
    let r = other_browser.get(s, &verifier);
    assert_eq!(expect_error_page(s, &r, "another browser's CSRF cookie"), "request_forbidden");
    assert!(!logged_out(s, &jar, &rp), "the session is still there");
    // The verifier still works in its own browser.
    let r = jar.get(s, &verifier);
    assert!(location(&r).starts_with(BYE), "{}", location(&r));

    // Rejected: 204, and the challenge can be neither read nor accepted afterwards.
    let hint = login(s, &mut jar, &rp, &uniq("bob"));
    let c = challenge_of_logout(s, &mut jar, &logout_path(&[("id_token_hint", &hint)]));
    put_logout(s, "reject", &c).expect(204);
    get_request(s, &c).expect(410);
    put_logout(s, "accept", &c).expect(410);
    assert!(!logged_out(s, &jar, &rp), "a rejected logout keeps the session");

    // A hint for a session that is gone redirects at once (nothing to log out).
    let mut gone = Jar::default();
    let old = login(s, &mut gone, &rp, &uniq("carol"));
    let sid = field(&claims(&old), "sid");
    Req::new("DELETE", &format!("/admin/oauth2/auth/sessions/login?sid={sid}")).send(s.admin).expect(204);
    let r = gone.get(s, &logout_path(&[("id_token_hint", &old), ("post_logout_redirect_uri", BYE), ("state", "z")]));
    assert_eq!(location(&r), format!("{BYE}?state=z"));
}

#[test]
fn op_initiated_logout_uses_the_built_in_page() {
    let s = api();
    let rp = rp(s, json!({}));
    // Nobody logged in, no parameters: straight to the logged-out page.
    let r = Req::get("/oauth2/sessions/logout").send(s.public);
    assert!(location(&r).ends_with("/oauth2/fallbacks/logout/callback"), "{}", location(&r));
    // Only a state: the same (it has nowhere to go).
    let r = Req::get("/oauth2/sessions/logout?state=abc").send(s.public);
    assert!(location(&r).ends_with("/oauth2/fallbacks/logout/callback"), "{}", location(&r));

    let mut jar = Jar::default();
    let subject = uniq("dave");
    login(s, &mut jar, &rp, &subject);
    let c = challenge_of_logout(s, &mut jar, "/oauth2/sessions/logout");
    let lr = get_request(s, &c).json();
    assert_eq!((lr["rp_initiated"].clone(), lr["client"].clone()), (json!(false), Value::Null));
    assert_eq!(lr["subject"], subject.as_str());
    // The built-in page asks; "stay" keeps the session and spends the challenge.
    let page = jar.get(s, &format!("/oauth2/fallbacks/logout?logout_challenge={}", form_escape(&c)));
    assert!(page.expect(200).text().contains("Do you want to log out?"), "{}", page.text());
    let post = |jar: &Jar, c: &str, confirm: &str| {
        Req::new("POST", "/oauth2/fallbacks/logout")
            .header("Cookie", &jar.header())
            .form(&[("logout_challenge", c), ("confirm", confirm)])
            .send(s.public)
    };
    let stay = post(&jar, &c, "no");
    assert!(stay.expect(200).text().contains("not logged out"), "{}", stay.text());
    assert!(!logged_out(s, &jar, &rp));
    expect_error_page(s, &post(&jar, &c, "yes"), "a spent challenge");
    // Asked again and confirmed: logged out.
    let c = challenge_of_logout(s, &mut jar, "/oauth2/sessions/logout");
    let r = post(&jar, &c, "yes");
    let verifier = local(&location(&r));
    assert!(verifier.starts_with("/oauth2/sessions/logout?logout_verifier="), "{verifier}");
    let r = jar.get(s, &verifier);
    assert!(location(&r).ends_with("/oauth2/fallbacks/logout/callback"), "{}", location(&r));
    jar.take(&r);
    assert!(logged_out(s, &jar, &rp));
}

/// A loopback HTTP receiver of back-channel notices: `/ok` answers 200, `/slow` after 8 s,
/// `/fail` 500; every request is recorded with its path, body and arrival.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<(String, String, Instant)>>>,
}

fn receiver() -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let log = got.clone();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(mut sock) = sock else { continue };
            let log = log.clone();
            std::thread::spawn(move || {
                let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
                let mut raw = Vec::new();
                let mut buf = [0u8; 4096];
                let (head_end, length) = loop {
                    match sock.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => raw.extend_from_slice(&buf[..n]),
                    }
                    if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&raw[..i]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                            .unwrap_or(0);
                        break (i + 4, len);
                    }
                };
                while raw.len() < head_end + length {
                    match sock.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => raw.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let body = String::from_utf8_lossy(&raw[head_end..]).into_owned();
                log.lock().unwrap().push((path.clone(), body, Instant::now()));
                let answer = match path.as_str() {
                    "/slow" => {
                        std::thread::sleep(Duration::from_secs(8));
                        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                    }
                    "/fail" => "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
                    _ => "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                };
                let _ = sock.write_all(answer.as_bytes());
            });
        }
    });
    Receiver { port, got }
}

impl Receiver {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
    /// Waits up to `within` for a request to `path`; returns its logout token.
    fn token_for(&self, path: &str, within: Duration) -> Option<(String, Instant)> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let got = self.got.lock().unwrap();
            if let Some((_, body, at)) = got.iter().find(|(p, _, _)| p == path) {
                let token = body.strip_prefix("logout_token=").unwrap_or_default().to_string();
                return Some((token, *at));
            }
            drop(got);
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }
}

fn metric(s: &Server, line: &str) -> u64 {
    let text = Req::get("/admin/metrics/prometheus").send(s.admin).text();
    text.lines().find_map(|l| l.strip_prefix(line)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

#[test]
fn front_and_back_channel_clients_are_told_and_a_slow_one_delays_nobody() {
    let s = Opts::new("io_uring").dev().start();
    let rx = receiver();
    let cb = "http://127.0.0.1:1/cb";
    let client = |extra: Value| {
        let mut body = json!({"redirect_uris": [cb], "post_logout_redirect_uris": ["http://127.0.0.1:1/bye"]});
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        rp(&s, body)
    };
    let a = client(json!({
        "frontchannel_logout_uri": "https://a.example/fc?x=1",
        "frontchannel_logout_session_required": true,
        "backchannel_logout_uri": rx.url("/ok"),
        "backchannel_logout_session_required": true,
        "skip_logout_consent": true,
    }));
    let slow = client(json!({"backchannel_logout_uri": rx.url("/slow")}));
    let failing = client(json!({"backchannel_logout_uri": rx.url("/fail")}));
    // A receiver that is down: nothing listens on the port.
    let down_port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let down = client(json!({"backchannel_logout_uri": format!("http://127.0.0.1:{down_port}/bc")}));
    let bystander = client(json!({"backchannel_logout_uri": rx.url("/bystander")}));
    let flow = |rp: &Rp, jar: &mut Jar| {
        // The dev server's clients redirect to `cb`; the browser helpers use `CB`.
        let path = auth_path(rp, &[]).replace(&form_escape(CB), &form_escape(cb));
        let r = jar.get(&s, &path);
        jar.take(&r);
        let lc = query_param(&location(&r), "login_challenge").unwrap();
        let acc = put_json(
            &s,
            &format!("/admin/oauth2/auth/requests/login/accept?login_challenge={}", form_escape(&lc)),
            &json!({"subject": "frank", "remember": true, "remember_for": 3600}),
        );
        let r = jar.get(&s, &local(&redirect_to(&acc)));
        jar.take(&r);
        let cc = query_param(&location(&r), "consent_challenge").unwrap();
        let acc = put_json(
            &s,
            &format!("/admin/oauth2/auth/requests/consent/accept?consent_challenge={}", form_escape(&cc)),
            &json!({"grant_scope": ["openid"]}),
        );
        let r = jar.get(&s, &local(&redirect_to(&acc)));
        jar.take(&r);
        let code = code_of(&location(&r));
        let t = Req::new("POST", "/oauth2/token")
            .basic(&rp.id, &rp.secret)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", cb),
                ("code_verifier", VERIFIER),
            ])
            .send(s.public);
        field(&t.expect(200).json(), "id_token")
    };
    // One browser session with consents for a, slow and failing; the bystander's consent is in
    // another session of the same subject.
    let mut jar = Jar::default();
    let hint = flow(&a, &mut jar);
    flow(&slow, &mut jar);
    flow(&failing, &mut jar);
    flow(&down, &mut jar);
    let mut other = Jar::default();
    let other_hint = flow(&bystander, &mut other);
    let sid = field(&claims(&hint), "sid");
    assert_ne!(sid, field(&claims(&other_hint), "sid"));

    // a skips the logout app: straight to the verifier.
    let r = jar.get(
        &s,
        &logout_path(&[
            ("id_token_hint", &hint),
            ("post_logout_redirect_uri", "http://127.0.0.1:1/bye"),
            ("state", "st"),
        ]),
    );
    jar.take(&r);
    let verifier = local(&location(&r));
    assert!(verifier.starts_with("/oauth2/sessions/logout?logout_verifier="), "skip_logout_consent: {verifier}");
    let started = Instant::now();
    let r = jar.get(&s, &verifier);
    let answered = started.elapsed();
    assert!(answered < Duration::from_secs(2), "the slow receiver does not delay the browser ({answered:?})");
    // The front-channel page: a's URL with iss and sid in an iframe, then the redirect with state.
    let page = r.expect(200).text();
    let issuer =
        Req::get("/.well-known/openid-configuration").send(s.public).json()["issuer"].as_str().unwrap().to_string();
    let fc = format!("https://a.example/fc?x=1&amp;iss={}&amp;sid={sid}", form_escape(&issuer));
    assert!(page.contains(&format!("<iframe src=\"{fc}\"")), "{page}");
    assert!(page.contains("data-next=\"http://127.0.0.1:1/bye?state=st\""), "{page}");
    assert_eq!(page.matches("<iframe").count(), 1, "only clients with a front-channel URL: {page}");
    assert!(set_cookie(&r).iter().any(|(k, v)| k == "ory_hydra_session_dev" && v.is_empty()));

    // The back-channel token reaches a while the slow receiver still holds its request.
    let (token, at) = rx.token_for("/ok", Duration::from_secs(5)).expect("a's notice");
    assert!(at.duration_since(started) < Duration::from_secs(3), "a is not held up by the slow receiver");
    assert!(rx.token_for("/slow", Duration::from_secs(2)).is_some(), "the slow one was asked too");
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "logout+jwt");
    let jwks: Vec<hydra::jose::jwk::Jwk> =
        serde_json::from_value(Req::get("/.well-known/jwks.json").send(s.public).json()["keys"].clone()).unwrap();
    let verified = hydra::jose::jws::verify(&token, &jwks).expect("signed with a published key");
    let c: Value = serde_json::from_slice(&verified.payload).unwrap();
    assert_eq!(c["iss"], issuer.as_str());
    assert_eq!(c["aud"], json!([a.id]));
    assert_eq!(c["sid"], sid.as_str());
    assert_eq!(c["events"], json!({"http://schemas.openid.net/event/backchannel-logout": {}}));
    assert!(c.get("nonce").is_none(), "{c}");
    assert!(c["jti"].as_str().is_some_and(|j| !j.is_empty()), "{c}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now - c["iat"].as_i64().unwrap()).abs() < 30, "{c}");
    // The failing and the unreachable receivers are counted and logged; the bystander (another
    // session) heard nothing.
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&s, "hydra_backchannel_logout_total{result=\"failed\"}") < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(metric(&s, "hydra_backchannel_logout_total{result=\"failed\"}"), 2);
    assert!(s.log().contains("a back-channel logout notice failed"), "{}", s.log());
    assert!(!s.log().contains(&token), "the token never reaches the log");
    assert!(rx.token_for("/bystander", Duration::from_millis(300)).is_none());

    // DELETE …?sid= of the other session: the bystander is told (as Hydra); ?subject= tells nobody.
    let other_sid = field(&claims(&other_hint), "sid");
    Req::new("DELETE", &format!("/admin/oauth2/auth/sessions/login?sid={other_sid}")).send(s.admin).expect(204);
    let (token, _) = rx.token_for("/bystander", Duration::from_secs(5)).expect("the bystander's notice");
    assert_eq!(claims(&token)["sid"], other_sid.as_str());
    let mut third = Jar::default();
    flow(&bystander, &mut third);
    let before = rx.count();
    Req::new("DELETE", "/admin/oauth2/auth/sessions/login?subject=frank").send(s.admin).expect(204);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(rx.count(), before, "revoking by subject sends no notices (as Hydra)");
    assert!(metric(&s, "hydra_backchannel_logout_total{result=\"sent\"}") >= 2);
}

/// Outside `--dev` the outbound guard applies: a receiver on a private address is never
/// connected to, and plain http is refused.
#[test]
fn back_channel_notices_obey_the_outbound_guard() {
    let s = api();
    let rx = receiver();
    let before = metric(s, "hydra_backchannel_logout_total{result=\"failed\"}");
    let guarded = rp(s, json!({"backchannel_logout_uri": format!("https://127.0.0.1:{}/ok", rx.port)}));
    let plain = rp(s, json!({"backchannel_logout_uri": rx.url("/ok")}));
    let mut jar = Jar::default();
    let subject = uniq("gina");
    let hint = login(s, &mut jar, &guarded, &subject);
    login(s, &mut jar, &plain, &subject);
    let c = challenge_of_logout(s, &mut jar, &logout_path(&[("id_token_hint", &hint)]));
    let r = jar.get(s, &local(&redirect_to(&put_logout(s, "accept", &c))));
    r.expect(302);
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(s, "hydra_backchannel_logout_total{result=\"failed\"}") < before + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(metric(s, "hydra_backchannel_logout_total{result=\"failed\"}") >= before + 2);
    assert_eq!(rx.count(), 0, "no connection reached the private receiver");
}

/// An OP-initiated logout verifier whose session ended meanwhile, in a browser where someone
/// else has logged in since, ends nothing: no front-channel page for the ended session, and the
/// new user's session cookie and session stay (as Hydra).
#[test]
fn a_stale_op_logout_verifier_leaves_the_next_user_alone() {
    let s = api();
    let rp = rp(s, json!({"frontchannel_logout_uri": "https://rp.example/fc"}));
    let mut jar = Jar::default();
    let alice = login(s, &mut jar, &rp, &uniq("alice"));
    let c = challenge_of_logout(s, &mut jar, "/oauth2/sessions/logout");
    let verifier = local(&redirect_to(&put_logout(s, "accept", &c)));
    let sid = claims(&alice)["sid"].as_str().expect("a sid").to_string();
    Req::new("DELETE", &format!("/admin/oauth2/auth/sessions/login?sid={sid}")).send(s.admin).expect(204);
    login(s, &mut jar, &rp, &uniq("bob"));
    let r = jar.get(s, &verifier);
    assert!(location(&r).ends_with("/oauth2/fallbacks/logout/callback"), "no front-channel page: {}", r.text());
    let cleared = set_cookie(&r).into_iter().any(|(k, v)| k == "ory_hydra_session" && v.is_empty());
    assert!(!cleared, "bob's session cookie stays: {:?}", r.headers);
    jar.take(&r);
    assert!(!logged_out(s, &jar, &rp), "bob is still logged in");

    // The same verifier flow with alice's session still held does end it, page and all.
    let mut jar = Jar::default();
    login(s, &mut jar, &rp, &uniq("carol"));
    let c = challenge_of_logout(s, &mut jar, "/oauth2/sessions/logout");
    let r = jar.get(s, &local(&redirect_to(&put_logout(s, "accept", &c))));
    assert_eq!(r.status, 200, "the front-channel page: {}", r.text());
    jar.take(&r);
    assert!(logged_out(s, &jar, &rp));
}
