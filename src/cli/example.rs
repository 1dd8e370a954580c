//! Two small blocking web apps for trying the browser flow without writing one:
//! `hydra example login-consent` (a login & consent app that uses only the admin API) and
//! `hydra perform authorization-code` (a relying party: prints the URL to open, receives the
//! callback on 127.0.0.1, exchanges the code and prints the tokens).
//!
//! Invariants: every value shown in a page is HTML-escaped; the apps answer one request per
//! connection and never follow a redirect the server did not produce.

use super::httpclient;
use crate::http::form::form_escaped;
use crate::oauth2::authorize::html_escape;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

/// A request as the tiny server sees it.
struct Incoming {
    method: String,
    path: String,
    query: crate::http::form::Form,
    form: crate::http::form::Form,
}

fn read_request(stream: &mut TcpStream) -> Option<Incoming> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            }
        }
    }
    if length > 64 * 1024 {
        return None;
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    let (path, q) = target.split_once('?').unwrap_or((target.as_str(), ""));
    Some(Incoming {
        method,
        path: path.to_string(),
        query: crate::http::form::decode_multi(q.as_bytes()).unwrap_or_default(),
        form: crate::http::form::decode_multi(&body).unwrap_or_default(),
    })
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, &str)], body: &str) {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    let _ = stream.write_all(out.as_bytes());
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;max-width:32em;margin:3em auto}}</style></head>\
         <body><h1>{t}</h1>{body}</body></html>",
        t = html_escape(title)
    )
}

fn admin(base: &str, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let bytes = body.map(|b| b.to_string().into_bytes());
    let r = httpclient::request(
        method,
        &format!("{base}{path}"),
        &[("Accept", "application/json")],
        bytes.as_deref().map(|b| ("application/json", b)),
    )?;
    // 204 (a rejected logout) has no body.
    let v: Value = if r.status == 204 {
        Value::Null
    } else {
        serde_json::from_slice(&r.body).map_err(|e| format!("admin API answered with invalid JSON: {e}"))?
    };
    if (200..300).contains(&r.status) {
        Ok(v)
    } else {
        Err(format!("admin API answered {}: {v}", r.status))
    }
}

fn redirect_to(stream: &mut TcpStream, v: &Value) {
    match v["redirect_to"].as_str() {
        Some(to) => respond(stream, "302 Found", &[("Location", to)], ""),
        None => respond(stream, "502 Bad Gateway", &[], "no redirect_to in the admin answer"),
    }
}

/// `hydra example login-consent`: serves `/login`, `/consent`, `/logout` and `/device` (where a
/// user enters a device's user code) on `port` until killed.
pub fn login_consent(admin_url: &str, port: u16, out: &mut dyn Write) -> Result<(), String> {
    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| format!("cannot listen on port {port}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let _ = writeln!(
        out,
        "Login & consent app on http://{bound}: set urls.login=http://{bound}/login, urls.consent=http://{bound}/consent, urls.logout=http://{bound}/logout and urls.device.verification=http://{bound}/device"
    );
    let _ = out.flush();
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let Some(req) = read_request(&mut stream) else { continue };
        if let Err(e) = handle_app(admin_url, &req, &mut stream) {
            respond(
                &mut stream,
                "500 Internal Server Error",
                &[("Content-Type", "text/html")],
                &page("Error", &html_escape(&e)),
            );
        }
    }
    Ok(())
}

fn handle_app(admin_url: &str, req: &Incoming, stream: &mut TcpStream) -> Result<(), String> {
    let html = [("Content-Type", "text/html; charset=utf-8")];
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/login") => {
            let ch = req.query.get("login_challenge").unwrap_or("");
            let lr = admin(
                admin_url,
                "GET",
                &format!("/admin/oauth2/auth/requests/login?login_challenge={}", form_escaped(ch)),
                None,
            )?;
            if lr["skip"] == true {
                let v = admin(
                    admin_url,
                    "PUT",
                    &format!("/admin/oauth2/auth/requests/login/accept?login_challenge={}", form_escaped(ch)),
                    Some(&json!({"subject": lr["subject"]})),
                )?;
                redirect_to(stream, &v);
                return Ok(());
            }
            let client = lr["client"]["client_name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .or(lr["client"]["client_id"].as_str())
                .unwrap_or("");
            let body = format!(
                "<p>Sign in to continue to <b>{}</b>. Any user name works; the password is <code>foobar</code>.</p>\
                 <form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"challenge\" value=\"{}\">\
                 <p><label>User <input name=\"user\" value=\"{}\" autofocus></label></p>\
                 <p><label>Password <input name=\"password\" type=\"password\"></label></p>\
                 <p><label><input type=\"checkbox\" name=\"remember\" value=\"1\"> Remember me</label></p>\
                 <button name=\"action\" value=\"accept\">Sign in</button> <button name=\"action\" value=\"deny\">Deny</button></form>",
                html_escape(client),
                html_escape(ch),
                html_escape(lr["oidc_context"]["login_hint"].as_str().unwrap_or("foo@bar.com"))
            );
            respond(stream, "200 OK", &html, &page("Sign in", &body));
        }
        ("POST", "/login") => {
            let ch = req.form.get("challenge").unwrap_or("");
            let path =
                |what: &str| format!("/admin/oauth2/auth/requests/login/{what}?login_challenge={}", form_escaped(ch));
            let user = req.form.get("user").unwrap_or("");
            let v = if req.form.get("action") == Some("deny") {
                admin(
                    admin_url,
                    "PUT",
                    &path("reject"),
                    Some(&json!({"error": "access_denied", "error_description": "The user denied the request."})),
                )?
            } else if user.is_empty() || req.form.get("password") != Some("foobar") {
                respond(
                    stream,
                    "200 OK",
                    &html,
                    &page("Sign in", "<p>Wrong user name or password. Go back and try again.</p>"),
                );
                return Ok(());
            } else {
                let remember = req.form.get("remember").is_some();
                admin(
                    admin_url,
                    "PUT",
                    &path("accept"),
                    Some(&json!({"subject": user, "remember": remember, "remember_for": 3600})),
                )?
            };
            redirect_to(stream, &v);
        }
        ("GET", "/consent") => {
            let ch = req.query.get("consent_challenge").unwrap_or("");
            let cr = admin(
                admin_url,
                "GET",
                &format!("/admin/oauth2/auth/requests/consent?consent_challenge={}", form_escaped(ch)),
                None,
            )?;
            if cr["skip"] == true {
                let body = json!({"grant_scope": cr["requested_scope"], "grant_access_token_audience": cr["requested_access_token_audience"]});
                let v = admin(
                    admin_url,
                    "PUT",
                    &format!("/admin/oauth2/auth/requests/consent/accept?consent_challenge={}", form_escaped(ch)),
                    Some(&body),
                )?;
                redirect_to(stream, &v);
                return Ok(());
            }
            let scopes: String = cr["requested_scope"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>())
                .unwrap_or_default()
                .iter()
                .map(|s| {
                    format!(
                        "<p><label><input type=\"checkbox\" name=\"scope\" value=\"{0}\" checked> {0}</label></p>",
                        html_escape(s)
                    )
                })
                .collect();
            let client = cr["client"]["client_name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .or(cr["client"]["client_id"].as_str())
                .unwrap_or("");
            let body = format!(
                "<p><b>{}</b> asks for access as <b>{}</b>:</p><form method=\"post\" action=\"/consent\">\
                 <input type=\"hidden\" name=\"challenge\" value=\"{}\">{scopes}\
                 <p><label><input type=\"checkbox\" name=\"remember\" value=\"1\"> Do not ask me again</label></p>\
                 <button name=\"action\" value=\"accept\">Allow</button> <button name=\"action\" value=\"deny\">Deny</button></form>",
                html_escape(client),
                html_escape(cr["subject"].as_str().unwrap_or("")),
                html_escape(ch)
            );
            respond(stream, "200 OK", &html, &page("Consent", &body));
        }
        ("POST", "/consent") => {
            let ch = req.form.get("challenge").unwrap_or("");
            let path = |what: &str| {
                format!("/admin/oauth2/auth/requests/consent/{what}?consent_challenge={}", form_escaped(ch))
            };
            let v = if req.form.get("action") == Some("deny") {
                admin(
                    admin_url,
                    "PUT",
                    &path("reject"),
                    Some(&json!({"error": "access_denied", "error_description": "The user denied the request."})),
                )?
            } else {
                let granted: Vec<&str> = req.form.get_all("scope").collect();
                let remember = req.form.get("remember").is_some();
                let body = json!({"grant_scope": granted, "remember": remember, "remember_for": 3600,
                    "session": {"id_token": {"name": "Example User"}}});
                admin(admin_url, "PUT", &path("accept"), Some(&body))?
            };
            redirect_to(stream, &v);
        }
        ("GET", "/logout") => {
            let ch = req.query.get("logout_challenge").unwrap_or("");
            let lr = admin(
                admin_url,
                "GET",
                &format!("/admin/oauth2/auth/requests/logout?logout_challenge={}", form_escaped(ch)),
                None,
            )?;
            let by = match lr["client"]["client_name"].as_str().filter(|n| !n.is_empty()) {
                Some(n) => format!(" (asked by <b>{}</b>)", html_escape(n)),
                None => match lr["client"]["client_id"].as_str() {
                    Some(id) => format!(" (asked by <b>{}</b>)", html_escape(id)),
                    None => String::new(),
                },
            };
            let body = format!(
                "<p>Log <b>{}</b> out{by}?</p><form method=\"post\" action=\"/logout\">\
                 <input type=\"hidden\" name=\"challenge\" value=\"{}\">\
                 <button name=\"action\" value=\"accept\">Log out</button> <button name=\"action\" value=\"deny\">Stay logged in</button></form>",
                html_escape(lr["subject"].as_str().unwrap_or("")),
                html_escape(ch)
            );
            respond(stream, "200 OK", &html, &page("Log out", &body));
        }
        ("POST", "/logout") => {
            let ch = req.form.get("challenge").unwrap_or("");
            let path =
                |what: &str| format!("/admin/oauth2/auth/requests/logout/{what}?logout_challenge={}", form_escaped(ch));
            if req.form.get("action") == Some("deny") {
                admin(admin_url, "PUT", &path("reject"), None)?;
                respond(stream, "200 OK", &html, &page("Still logged in", "<p>You were not logged out.</p>"));
            } else {
                let v = admin(admin_url, "PUT", &path("accept"), None)?;
                redirect_to(stream, &v);
            }
        }
        ("GET", "/device") => {
            let ch = req.query.get("device_challenge").unwrap_or("");
            let code = req.query.get("user_code").unwrap_or("");
            let body = format!(
                "<p>Enter the code your device shows.</p><form method=\"post\" action=\"/device\">\
                 <input type=\"hidden\" name=\"challenge\" value=\"{}\">\
                 <input name=\"user_code\" value=\"{}\" autofocus> <button>Continue</button></form>",
                html_escape(ch),
                html_escape(code)
            );
            respond(stream, "200 OK", &html, &page("Connect a device", &body));
        }
        ("POST", "/device") => {
            let ch = req.form.get("challenge").unwrap_or("");
            let path = format!("/admin/oauth2/auth/requests/device/accept?device_challenge={}", form_escaped(ch));
            let code = req.form.get("user_code").unwrap_or("");
            match admin(admin_url, "PUT", &path, Some(&json!({ "user_code": code }))) {
                Ok(v) => redirect_to(stream, &v),
                Err(e) => respond(
                    stream,
                    "400 Bad Request",
                    &html,
                    &page("Wrong code", &format!("<p>That code was not accepted ({}).</p>", html_escape(&e))),
                ),
            }
        }
        _ => respond(stream, "404 Not Found", &html, &page("Not found", "")),
    }
    Ok(())
}

/// `hydra perform authorization-code`: one authorization with PKCE through the browser.
pub struct AuthCodeArgs<'a> {
    pub public_url: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub scope: &'a str,
    pub port: u16,
    /// `response_mode=form_post`: the callback arrives as a POST.
    pub form_post: bool,
    /// `prompt`, space-separated (empty: none sent).
    pub prompt: &'a str,
}

pub fn perform_authorization_code(a: &AuthCodeArgs, out: &mut dyn Write) -> Result<Value, String> {
    let rng = ring::rand::SystemRandom::new();
    let mut random = [0u8; 48];
    ring::rand::SecureRandom::fill(&rng, &mut random).map_err(|_| "no randomness".to_string())?;
    let verifier = URL_SAFE_NO_PAD.encode(&random[..32]);
    let state = URL_SAFE_NO_PAD.encode(&random[32..]);
    let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()));
    let listener =
        TcpListener::bind(("127.0.0.1", a.port)).map_err(|e| format!("cannot listen on port {}: {e}", a.port))?;
    let redirect = format!("http://127.0.0.1:{}/callback", listener.local_addr().map_err(|e| e.to_string())?.port());
    let mut url = format!(
        "{}/oauth2/auth?response_type=code&client_id={}&redirect_uri={}&scope={}&state={}&code_challenge={}&code_challenge_method=S256",
        a.public_url.trim_end_matches('/'),
        form_escaped(a.client_id),
        form_escaped(&redirect),
        form_escaped(a.scope),
        form_escaped(&state),
        challenge
    );
    if a.form_post {
        url.push_str("&response_mode=form_post");
    }
    if !a.prompt.is_empty() {
        url.push_str(&format!("&prompt={}", form_escaped(a.prompt)));
    }
    let _ =
        writeln!(out, "Open this URL in a browser to log in:\n\n{url}\n\nWaiting for the callback on {redirect} ...");
    let _ = out.flush();
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let Some(req) = read_request(&mut stream) else { continue };
        if req.path != "/callback" {
            respond(&mut stream, "404 Not Found", &[], "");
            continue;
        }
        let html = [("Content-Type", "text/html; charset=utf-8")];
        // A form post carries the answer in its body; never both (a code in the query of a
        // form-post answer would be someone else's).
        let (answer, other) = if a.form_post { (&req.form, &req.query) } else { (&req.query, &req.form) };
        if a.form_post != (req.method == "POST") || other.get("code").is_some() {
            respond(&mut stream, "400 Bad Request", &html, &page("Error", "<p>Unexpected callback.</p>"));
            return Err("the callback did not arrive in the requested response mode".into());
        }
        if answer.get("state") != Some(state.as_str()) {
            respond(&mut stream, "400 Bad Request", &html, &page("Error", "<p>The state does not match.</p>"));
            return Err("the callback's state does not match".into());
        }
        if let Some(e) = answer.get("error") {
            let d = answer.get("error_description").unwrap_or("");
            respond(
                &mut stream,
                "200 OK",
                &html,
                &page("Error", &format!("<p>{}: {}</p>", html_escape(e), html_escape(d))),
            );
            return Err(format!("the authorization failed: {e}: {d}"));
        }
        let code = answer.get("code").unwrap_or("");
        let form = format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={}",
            form_escaped(code),
            form_escaped(&redirect),
            verifier
        );
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                form_escaped(a.client_id),
                form_escaped(a.client_secret)
            ))
        );
        let token_url = format!("{}/oauth2/token", a.public_url.trim_end_matches('/'));
        let r = httpclient::request(
            "POST",
            &token_url,
            &[("Authorization", &auth), ("Accept", "application/json")],
            Some(("application/x-www-form-urlencoded", form.as_bytes())),
        )?;
        let v: Value = serde_json::from_slice(&r.body)
            .map_err(|e| format!("the token endpoint answered with invalid JSON: {e}"))?;
        if r.status != 200 {
            respond(&mut stream, "200 OK", &html, &page("Error", &html_escape(&v.to_string())));
            return Err(format!("the token endpoint answered {}: {v}", r.status));
        }
        // A way out again: RP-initiated logout with the ID token as the hint.
        let logout = v["id_token"].as_str().map(|id| {
            format!("{}/oauth2/sessions/logout?id_token_hint={}", a.public_url.trim_end_matches('/'), form_escaped(id))
        });
        let mut body = String::from("<p>Tokens received; see the terminal.</p>");
        if let Some(l) = &logout {
            body.push_str(&format!("<p><a href=\"{}\">Log out</a></p>", html_escape(l)));
            let _ = writeln!(out, "To log out, open:\n\n{l}\n");
        }
        respond(&mut stream, "200 OK", &html, &page("Done", &body));
        return Ok(v);
    }
    Err("the callback server stopped".into())
}
