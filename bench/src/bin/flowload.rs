//! Load generator for the browser flow, which oha cannot drive: each connection runs complete
//! authorization-code flows (authorize → login accept → consent accept → code exchange with an
//! RS256 ID token), refresh-token rotations, a remembered login followed by an RP-initiated
//! logout (logout request with the ID token as hint → logout accept → verifier), or device
//! authorizations (RFC 8628: device request → verification page → user code accepted → login
//! and consent → the device's token request), in a loop over
//! keep-alive connections, and prints one JSON object: completed operations per second, p50 and
//! p99 latency, errors.
//!
//! `flowload --public http://127.0.0.1:4444 --admin http://127.0.0.1:4445 --client ID --secret S
//!  --redirect https://rp.example/cb --mode flow|refresh|logout|device|seed --scope "openid offline_access"
//!  --conns 32 --duration 15`
//!
//! `--mode seed` prints `--conns` refresh tokens of fresh grants, one per line, and exits.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Conn {
    addr: String,
    stream: Option<BufReader<TcpStream>>,
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl Conn {
    fn new(url: &str) -> Conn {
        Conn { addr: url.trim_start_matches("http://").trim_end_matches('/').to_string(), stream: None }
    }

    fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Resp, String> {
        for attempt in 0..2 {
            if self.stream.is_none() {
                let s = TcpStream::connect(&self.addr).map_err(|e| e.to_string())?;
                s.set_nodelay(true).map_err(|e| e.to_string())?;
                self.stream = Some(BufReader::new(s));
            }
            match self.once(method, path, headers, body) {
                Ok(r) => return Ok(r),
                Err(e) if attempt == 0 => {
                    self.stream = None;
                    let _ = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err("unreachable".into())
    }

    fn once(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<Resp, String> {
        let s = self.stream.as_mut().ok_or("no connection")?;
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n", self.addr, body.len());
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        s.get_mut().write_all(&bytes).map_err(|e| e.to_string())?;
        let mut line = String::new();
        if s.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("closed".into());
        }
        let status: u16 = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or("bad status line")?;
        let mut headers = Vec::new();
        let mut len = 0;
        loop {
            line.clear();
            s.read_line(&mut line).map_err(|e| e.to_string())?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().map_err(|_| "bad length")?;
                }
                headers.push((k.to_string(), v.trim().to_string()));
            }
        }
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).map_err(|e| e.to_string())?;
        Ok(Resp { status, headers, body })
    }
}

fn param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    q.split('&').find_map(|p| p.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
}

fn local(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/".into(), |i| rest[i..].to_string())
}

fn json_field(body: &[u8], name: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get(name)?.as_str().map(String::from)
}

struct Cfg {
    client: String,
    scope: String,
    redirect: String,
    basic: String,
}

/// What a flow leaves: its refresh and ID tokens, and the browser's cookies after it.
struct Done {
    refresh_token: String,
    id_token: Option<String>,
    cookies: String,
}

fn set_cookies(r: &Resp) -> Vec<String> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| v.split(';').next().filter(|c| !c.ends_with('=')).map(String::from))
        .collect()
}

/// One complete flow (`remember`: the login is remembered, so a session exists afterwards).
fn flow(c: &Cfg, public: &mut Conn, admin: &mut Conn, n: u64, remember: bool) -> Result<Done, String> {
    let path = format!(
        "/oauth2/auth?response_type=code&client_id={}&redirect_uri={}&scope={}&state=state-{n:012}&nonce=nonce-{n:012}",
        hydra::http::form::form_escaped(&c.client),
        hydra::http::form::form_escaped(&c.redirect),
        hydra::http::form::form_escaped(&c.scope)
    );
    let r = public.send("GET", &path, &[], b"")?;
    let cookies: Vec<String> = r
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| v.split(';').next().map(String::from))
        .collect();
    let loc = r.header("location").ok_or("no login redirect")?;
    let ch = param(loc, "login_challenge").ok_or("no login challenge")?;
    let json = [("Content-Type", "application/json")];
    let a = admin.send(
        "PUT",
        &format!("/admin/oauth2/auth/requests/login/accept?login_challenge={ch}"),
        &json,
        // A remembered login is one user's session: each gets a subject of its own, as many users
        // would (one subject with every flow's consent would make each logout list them all).
        &if remember {
            format!(r#"{{"subject":"load-user-{n}","remember":true}}"#).into_bytes()
        } else {
            br#"{"subject":"load-user"}"#.to_vec()
        },
    )?;
    let back = json_field(&a.body, "redirect_to").ok_or("no login redirect_to")?;
    let cookie = cookies.join("; ");
    let r = public.send("GET", &local(&back), &[("Cookie", &cookie)], b"")?;
    let mut cookies2 = set_cookies(&r);
    cookies2.retain(|c| !c.starts_with("ory_hydra_login"));
    let loc = r.header("location").ok_or("no consent redirect")?;
    let ch = param(loc, "consent_challenge").ok_or("no consent challenge")?;
    let a = admin.send(
        "PUT",
        &format!("/admin/oauth2/auth/requests/consent/accept?consent_challenge={ch}"),
        &json,
        &serde_json::to_vec(&serde_json::json!({"grant_scope": c.scope.split(' ').collect::<Vec<_>>()}))
            .unwrap_or_default(),
    )?;
    let back = json_field(&a.body, "redirect_to").ok_or("no consent redirect_to")?;
    let r = public.send("GET", &local(&back), &[("Cookie", &cookies2.join("; "))], b"")?;
    let loc = r.header("location").ok_or("no callback")?;
    let code = param(loc, "code").ok_or_else(|| format!("no code: {loc}"))?;
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}",
        hydra::http::form::form_escaped(&c.redirect)
    );
    let form = [("Content-Type", "application/x-www-form-urlencoded"), ("Authorization", c.basic.as_str())];
    let t = public.send("POST", "/oauth2/token", &form, body.as_bytes())?;
    if t.status != 200 || (c.scope.split(' ').any(|s| s == "openid") && json_field(&t.body, "id_token").is_none()) {
        return Err(format!("token exchange answered {}", t.status));
    }
    let refresh_token = json_field(&t.body, "refresh_token").ok_or("no refresh token")?;
    let cookies = cookies2.into_iter().filter(|c| c.starts_with("ory_hydra_session")).collect::<Vec<_>>().join("; ");
    Ok(Done { refresh_token, id_token: json_field(&t.body, "id_token"), cookies })
}

/// RP-initiated logout of the session a flow left: the logout request with the ID token as
/// hint, the logout app's accept, the verifier (which ends the session and clears the cookie).
fn logout(public: &mut Conn, admin: &mut Conn, done: &Done) -> Result<(), String> {
    let hint = done.id_token.as_deref().ok_or("no ID token to log out with (scope needs openid)")?;
    let path = format!("/oauth2/sessions/logout?id_token_hint={}", hydra::http::form::form_escaped(hint));
    let r = public.send("GET", &path, &[("Cookie", &done.cookies)], b"")?;
    let loc = r.header("location").ok_or("no logout redirect")?;
    let ch = param(loc, "logout_challenge").ok_or_else(|| format!("no logout challenge: {loc}"))?;
    let csrf = set_cookies(&r).join("; ");
    let a = admin.send("PUT", &format!("/admin/oauth2/auth/requests/logout/accept?logout_challenge={ch}"), &[], b"")?;
    let back = json_field(&a.body, "redirect_to").ok_or("no logout redirect_to")?;
    let r = public.send("GET", &local(&back), &[("Cookie", &csrf)], b"")?;
    match r.header("location") {
        Some(l) if r.status == 302 && l.ends_with("/oauth2/fallbacks/logout/callback") => Ok(()),
        _ => Err(format!("the logout verifier answered {}", r.status)),
    }
}

/// One device authorization, both sides: the device asks, the browser enters the user code and
/// logs in and consents, the device's token request gets its tokens (ten HTTP requests).
fn device(c: &Cfg, public: &mut Conn, admin: &mut Conn, n: u64) -> Result<(), String> {
    let form = [("Content-Type", "application/x-www-form-urlencoded"), ("Authorization", c.basic.as_str())];
    let ask = format!(
        "client_id={}&scope={}",
        hydra::http::form::form_escaped(&c.client),
        hydra::http::form::form_escaped(&c.scope)
    );
    let d = public.send("POST", "/oauth2/device/auth", &form, ask.as_bytes())?;
    let (Some(device_code), Some(complete)) =
        (json_field(&d.body, "device_code"), json_field(&d.body, "verification_uri_complete"))
    else {
        return Err(format!("device authorization answered {}", d.status));
    };
    let user_code = json_field(&d.body, "user_code").ok_or("no user code")?;
    let r = public.send("GET", &local(&complete), &[], b"")?;
    let csrf = set_cookies(&r).join("; ");
    let ch = r.header("location").and_then(|l| param(l, "device_challenge")).ok_or("no device challenge")?;
    let json = [("Content-Type", "application/json")];
    let body = serde_json::to_vec(&serde_json::json!({ "user_code": user_code })).unwrap_or_default();
    let a =
        admin.send("PUT", &format!("/admin/oauth2/auth/requests/device/accept?device_challenge={ch}"), &json, &body)?;
    let back = json_field(&a.body, "redirect_to").ok_or("no device redirect_to")?;
    let r = public.send("GET", &local(&back), &[("Cookie", &csrf)], b"")?;
    let login_csrf = set_cookies(&r).join("; ");
    let ch = r.header("location").and_then(|l| param(l, "login_challenge")).ok_or("no login challenge")?;
    let subject = format!(r#"{{"subject":"device-user-{n}"}}"#);
    let a = admin.send(
        "PUT",
        &format!("/admin/oauth2/auth/requests/login/accept?login_challenge={ch}"),
        &json,
        subject.as_bytes(),
    )?;
    let back = json_field(&a.body, "redirect_to").ok_or("no login redirect_to")?;
    let r = public.send("GET", &local(&back), &[("Cookie", &login_csrf)], b"")?;
    let mut consent_csrf = set_cookies(&r);
    consent_csrf.retain(|c| !c.starts_with("ory_hydra_login"));
    let ch = r.header("location").and_then(|l| param(l, "consent_challenge")).ok_or("no consent challenge")?;
    let grant = serde_json::json!({"grant_scope": c.scope.split(' ').collect::<Vec<_>>()});
    let a = admin.send(
        "PUT",
        &format!("/admin/oauth2/auth/requests/consent/accept?consent_challenge={ch}"),
        &json,
        &serde_json::to_vec(&grant).unwrap_or_default(),
    )?;
    let back = json_field(&a.body, "redirect_to").ok_or("no consent redirect_to")?;
    let r = public.send("GET", &local(&back), &[("Cookie", &consent_csrf.join("; "))], b"")?;
    if !r.header("location").is_some_and(|l| l.contains("/device/done")) {
        return Err(format!("the consent verifier answered {}", r.status));
    }
    let poll = format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code={}&client_id={}",
        hydra::http::form::form_escaped(&device_code),
        hydra::http::form::form_escaped(&c.client)
    );
    let t = public.send("POST", "/oauth2/token", &form, poll.as_bytes())?;
    if t.status != 200 || json_field(&t.body, "access_token").is_none() {
        return Err(format!("the device's token request answered {}", t.status));
    }
    Ok(())
}

fn refresh(c: &Cfg, public: &mut Conn, rt: &str) -> Result<String, String> {
    let body = format!("grant_type=refresh_token&refresh_token={}", hydra::http::form::form_escaped(rt));
    let form = [("Content-Type", "application/x-www-form-urlencoded"), ("Authorization", c.basic.as_str())];
    let t = public.send("POST", "/oauth2/token", &form, body.as_bytes())?;
    if t.status != 200 {
        return Err(format!("refresh answered {}", t.status));
    }
    json_field(&t.body, "refresh_token").ok_or_else(|| "no refresh token".into())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: &str| -> String {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| default.to_string())
    };
    let public_url = arg("--public", "http://127.0.0.1:4444");
    let admin_url = arg("--admin", "http://127.0.0.1:4445");
    let mode = arg("--mode", "flow");
    let conns: usize = arg("--conns", "32").parse().unwrap_or(32);
    let duration = Duration::from_secs(arg("--duration", "15").parse().unwrap_or(15));
    let (client, secret) = (arg("--client", ""), arg("--secret", ""));
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            hydra::http::form::form_escaped(&client),
            hydra::http::form::form_escaped(&secret)
        ))
    );
    let cfg = Arc::new(Cfg {
        client,
        scope: arg("--scope", "openid offline_access"),
        redirect: arg("--redirect", "https://rp.example/cb"),
        basic,
    });
    // Seed mode: N refresh tokens of N fresh grants, one per line, for a load generator that
    // rotates them itself (loadtest/refresh.lua under wrk).
    if mode == "seed" {
        let (mut public, mut admin) = (Conn::new(&public_url), Conn::new(&admin_url));
        for n in 0..conns as u64 {
            match flow(&cfg, &mut public, &mut admin, n, false) {
                Ok(d) => println!("{}", d.refresh_token),
                Err(e) => {
                    eprintln!("flowload: seeding failed: {e}");
                    std::process::exit(1);
                }
            }
        }
        return;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let started = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|t| {
            let (cfg, stop, latencies, errors) = (cfg.clone(), stop.clone(), latencies.clone(), errors.clone());
            let (public_url, admin_url, mode) = (public_url.clone(), admin_url.clone(), mode.clone());
            std::thread::spawn(move || {
                let (mut public, mut admin) = (Conn::new(&public_url), Conn::new(&admin_url));
                let mut mine = Vec::new();
                let mut n = (t as u64) << 32;
                // Refresh mode: each connection first gets its own refresh token (not timed).
                let mut rt = if mode == "refresh" {
                    flow(&cfg, &mut public, &mut admin, n, false).ok().map(|d| d.refresh_token)
                } else {
                    None
                };
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let t0 = Instant::now();
                    let r = match (mode.as_str(), &rt) {
                        ("refresh", Some(token)) => refresh(&cfg, &mut public, token).map(Some),
                        ("refresh", None) => {
                            flow(&cfg, &mut public, &mut admin, n, false).map(|d| Some(d.refresh_token))
                        }
                        ("device", _) => device(&cfg, &mut public, &mut admin, n).map(|_| None),
                        ("logout", _) => flow(&cfg, &mut public, &mut admin, n, true)
                            .and_then(|d| logout(&mut public, &mut admin, &d))
                            .map(|_| None),
                        _ => flow(&cfg, &mut public, &mut admin, n, false).map(|_| None),
                    };
                    match r {
                        Ok(next) => {
                            mine.push(t0.elapsed());
                            if next.is_some() {
                                rt = next;
                            }
                        }
                        Err(e) => {
                            errors.lock().map(|mut v| v.push(e)).ok();
                            rt = None;
                        }
                    }
                }
                latencies.lock().map(|mut v| v.extend(mine)).ok();
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut l = latencies.lock().map(|v| v.clone()).unwrap_or_default();
    l.sort();
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1))).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let errs = errors.lock().map(|v| v.clone()).unwrap_or_default();
    let out = serde_json::json!({
        "mode": mode,
        "conns": conns,
        "completed": l.len(),
        "per_sec": l.len() as f64 / elapsed,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "errors": errs.len(),
        "first_error": errs.first(),
    });
    println!("{out}");
}
