//! The browser side of the authorization code flow, for the flow, security, crash and CLI
//! tests: a client registered for `CB`, a cookie jar, each leg of a flow (authorize, login
//! accept, login verifier, consent accept, consent verifier) and the token calls after it, so a
//! test can run a whole flow or stop at any leg and tamper with what the browser carries.

use crate::harness::*;
use base64::Engine;
use serde_json::{json, Value};

pub const CB: &str = "https://rp.example/cb";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

pub struct Rp {
    pub id: String,
    pub secret: String,
}

/// A confidential authorization-code client registered for `CB` (`extra` overrides fields).
pub fn rp(s: &Server, extra: Value) -> Rp {
    let mut body = json!({
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "redirect_uris": [CB],
        "scope": "openid offline_access profile",
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    let c = create_client(s, &body);
    Rp {
        id: c["client_id"].as_str().expect("client_id in the create answer").into(),
        secret: c["client_secret"].as_str().unwrap_or("").into(),
    }
}

/// The decoded value of a query parameter of `url` (`None` if absent or not decodable).
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    let q = q.split_once('#').map(|(a, _)| a).unwrap_or(q);
    q.split('&').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k == name).then(|| percent_decode(v))?
    })
}

/// How many times a parameter occurs in the query of `url`.
pub fn param_count(url: &str, name: &str) -> usize {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    q.split('&').filter(|p| p.split_once('=').map(|(k, _)| k).unwrap_or(p) == name).count()
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                out.push(u8::from_str_radix(s.get(i + 1..i + 3)?, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Path and query of an absolute URL on our server.
pub fn local(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.find('/').map(|i| rest[i..].to_string()).unwrap_or_else(|| "/".into())
}

/// The `Location` of a redirect, asserting there is one.
#[track_caller]
pub fn location(r: &Response) -> String {
    assert_eq!(r.status, 302, "expected a redirect; body: {}", r.text());
    r.header("location").unwrap_or_else(|| panic!("302 without Location: {:?}", r.headers)).to_string()
}

/// The server's own error page (`urls.error`, the fallback by default) for `s`.
pub fn error_page(s: &Server) -> String {
    format!("http://{}/oauth2/fallbacks/error?", s.public)
}

/// Asserts that `r` sends the browser to the server's error page, not anywhere else; returns the
/// `error` it carries.
#[track_caller]
pub fn expect_error_page(s: &Server, r: &Response, what: &str) -> String {
    let loc = location(r);
    assert!(loc.starts_with(&error_page(s)), "{what}: must go to the error page, went to {loc}");
    assert!(query_param(&loc, "code").is_none() && query_param(&loc, "state").is_none(), "{what}: {loc}");
    query_param(&loc, "error").unwrap_or_else(|| panic!("{what}: no error in {loc}"))
}

/// Asserts that `r` redirects to `CB` with `error`, and no code; returns the Location.
#[track_caller]
pub fn expect_client_error(r: &Response, error: &str) -> String {
    let loc = location(r);
    assert!(loc.starts_with(&format!("{CB}?")), "expected a redirect to the client, got {loc}");
    assert_eq!(query_param(&loc, "error").as_deref(), Some(error), "{loc}");
    assert!(query_param(&loc, "code").is_none(), "an error carries no code: {loc}");
    loc
}

pub fn set_cookie(r: &Response) -> Vec<(String, String)> {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| v.split(';').next()?.split_once('=').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect()
}

/// A browser's cookie jar, just enough for one flow.
#[derive(Default, Clone)]
pub struct Jar(pub Vec<(String, String)>);

impl Jar {
    pub fn take(&mut self, r: &Response) {
        for (k, v) in set_cookie(r) {
            self.0.retain(|(n, _)| *n != k);
            if !v.is_empty() {
                self.0.push((k, v));
            }
        }
    }
    pub fn header(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }
    pub fn get(&self, s: &Server, path: &str) -> Response {
        let mut req = Req::get(path);
        if !self.0.is_empty() {
            req = req.header("Cookie", &self.header());
        }
        req.send(s.public)
    }
}

pub fn auth_path(rp: &Rp, extra: &[(&str, &str)]) -> String {
    let mut p = vec![
        ("response_type", "code"),
        ("client_id", rp.id.as_str()),
        ("redirect_uri", CB),
        ("scope", "openid offline_access"),
        ("state", "state-0123456789"),
        ("nonce", "nonce-abc"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        p.retain(|(n, _)| n != k);
        if !v.is_empty() {
            p.push((k, v));
        }
    }
    format!("/oauth2/auth?{}", form(&p))
}

pub fn put_json(s: &Server, path: &str, body: &Value) -> Response {
    Req::new("PUT", path).json(body).send(s.admin)
}

/// The `redirect_to` of an admin accept/reject answer, asserting 200.
#[track_caller]
pub fn redirect_to(r: &Response) -> String {
    r.expect(200);
    r.json()["redirect_to"].as_str().unwrap_or_else(|| panic!("no redirect_to: {}", r.text())).to_string()
}

/// Leg 1: the browser asks `/oauth2/auth`; returns the login challenge (the jar keeps the CSRF
/// cookie).
#[track_caller]
pub fn start(s: &Server, jar: &mut Jar, rp: &Rp, extra: &[(&str, &str)]) -> String {
    let r = jar.get(s, &auth_path(rp, extra));
    jar.take(&r);
    let loc = location(&r);
    query_param(&loc, "login_challenge").unwrap_or_else(|| panic!("no login challenge: {loc}"))
}

/// The login app accepts; returns the login verifier URL (path and query on the public port).
#[track_caller]
pub fn accept_login(s: &Server, challenge: &str, login: &Value) -> String {
    let a = put_json(
        s,
        &format!("/admin/oauth2/auth/requests/login/accept?login_challenge={}", form_escape(challenge)),
        login,
    );
    local(&redirect_to(&a))
}

/// Leg 2: the browser brings the login verifier back; returns the consent challenge.
#[track_caller]
pub fn to_consent(s: &Server, jar: &mut Jar, verifier_url: &str) -> String {
    let r = jar.get(s, verifier_url);
    jar.take(&r);
    let loc = location(&r);
    query_param(&loc, "consent_challenge").unwrap_or_else(|| panic!("no consent challenge: {loc}"))
}

/// The consent app accepts; returns the consent verifier URL.
#[track_caller]
pub fn accept_consent(s: &Server, challenge: &str, consent: &Value) -> String {
    let a = put_json(
        s,
        &format!("/admin/oauth2/auth/requests/consent/accept?consent_challenge={}", form_escape(challenge)),
        consent,
    );
    local(&redirect_to(&a))
}

/// Runs the browser side of a flow up to the consent verifier (not yet followed).
pub fn up_to_consent_verifier(s: &Server, jar: &mut Jar, rp: &Rp, extra: &[(&str, &str)]) -> String {
    let lc = start(s, jar, rp, extra);
    let lv = accept_login(s, &lc, &standard_login());
    let cc = to_consent(s, jar, &lv);
    accept_consent(s, &cc, &standard_consent())
}

/// Runs the browser side of a flow up to the redirect back to the client; returns the final
/// redirect URL.
pub fn run_flow(s: &Server, rp: &Rp, extra: &[(&str, &str)], login: &Value, consent: &Value) -> String {
    let mut jar = Jar::default();
    let lc = start(s, &mut jar, rp, extra);
    let lv = accept_login(s, &lc, login);
    let cc = to_consent(s, &mut jar, &lv);
    let cv = accept_consent(s, &cc, consent);
    location(&jar.get(s, &cv))
}

/// The code of a final redirect, asserting there is one.
#[track_caller]
pub fn code_of(done: &str) -> String {
    query_param(done, "code").unwrap_or_else(|| panic!("no code in {done}"))
}

/// A full standard flow; returns the code.
pub fn code_for(s: &Server, rp: &Rp, extra: &[(&str, &str)]) -> String {
    code_of(&run_flow(s, rp, extra, &standard_login(), &standard_consent()))
}

pub fn exchange(s: &Server, rp: &Rp, code: &str, verifier: Option<&str>) -> Response {
    let mut p = vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CB)];
    if let Some(v) = verifier {
        p.push(("code_verifier", v));
    }
    Req::new("POST", "/oauth2/token").basic(&rp.id, &rp.secret).form(&p).send(s.public)
}

/// A refresh with the client's Basic credentials.
pub fn refresh(s: &Server, rp: &Rp, rt: &str, scope: Option<&str>) -> Response {
    let mut p = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
    if let Some(sc) = scope {
        p.push(("scope", sc));
    }
    Req::new("POST", "/oauth2/token").basic(&rp.id, &rp.secret).form(&p).send(s.public)
}

/// A string field of a JSON answer, with the whole answer in the panic message.
#[track_caller]
pub fn field(v: &Value, name: &str) -> String {
    v[name].as_str().unwrap_or_else(|| panic!("no string {name:?} in {v}")).to_string()
}

pub fn standard_login() -> Value {
    json!({"subject": "alice", "acr": "urn:loa:1", "amr": ["pwd"]})
}

pub fn standard_consent() -> Value {
    json!({"grant_scope": ["openid", "offline_access"], "session": {"id_token": {"email": "alice@example.com"}, "access_token": {"tier": "gold"}}})
}

/// The S256 challenge of a verifier (RFC 7636 §4.2).
pub fn challenge_of(verifier: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
}

/// The raw JSON text of a JWT's payload.
#[track_caller]
pub fn jwt_payload(jwt: &str) -> String {
    let part = jwt.split('.').nth(1).unwrap_or_else(|| panic!("not a JWT: {jwt}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).expect("base64url JWT payload");
    String::from_utf8(raw).expect("UTF-8 JWT payload")
}

/// Whether the server still answers on both ports (after abuse).
#[track_caller]
pub fn still_serves(s: &Server) {
    Req::get("/health/alive").send(s.public).expect(200);
    Req::get("/health/ready").send(s.admin).expect(200);
}
