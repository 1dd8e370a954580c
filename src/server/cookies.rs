//! Cookies of the browser flows (`serve.cookies.*`): their names, the `Set-Cookie` headers, and
//! reading one back.
//!
//! Invariants: every cookie is HttpOnly, and `Secure` outside `--dev` whatever the settings say;
//! `SameSite` is the configured mode (`None` already lowered to `Lax` where a browser would
//! refuse it); with `same_site_legacy_workaround` and `None`, a `<name>_legacy` twin without
//! `SameSite` is set and deleted with it, and read when the main cookie did not come back.

use crate::config::SameSite;
use crate::http::Request;
use crate::server::respond::Response;
use crate::server::state::Worker;

/// The flow CSRF cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Csrf {
    Login,
    Consent,
    Device,
    Logout,
}

fn dev_suffix(w: &Worker) -> &'static str {
    if w.config().dev {
        "_dev"
    } else {
        ""
    }
}

/// A CSRF cookie's name: `serve.cookies.names.*`, `_dev` in `--dev`, and for login and consent
/// the client's suffix (one flow per client at a time, as Hydra).
pub fn csrf_name(w: &Worker, kind: Csrf, client_id: &str) -> String {
    let c = &w.config().serve.cookies;
    let dev = w.config().dev;
    match kind {
        Csrf::Login => crate::oauth2::flow::csrf_cookie_name(&c.login_csrf, dev, client_id),
        Csrf::Consent => crate::oauth2::flow::csrf_cookie_name(&c.consent_csrf, dev, client_id),
        Csrf::Device => format!("{}{}", c.device_csrf, dev_suffix(w)),
        Csrf::Logout => format!("ory_hydra_logout_csrf{}", dev_suffix(w)),
    }
}

/// The login session cookie's name.
pub fn session_name(w: &Worker) -> String {
    format!("{}{}", w.config().serve.cookies.session, dev_suffix(w))
}

fn header(w: &Worker, name: &str, value: &str, max_age: i64, same_site: Option<SameSite>) -> String {
    let c = &w.config().serve.cookies;
    // The legacy twin goes where its cookie goes.
    let base = name.strip_suffix("_legacy").unwrap_or(name);
    let path = if *base == session_name(w) { c.session_path.as_str() } else { "/" };
    let mut h = format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly");
    if let Some(d) = &c.domain {
        h.push_str("; Domain=");
        h.push_str(d);
    }
    match same_site {
        Some(SameSite::Strict) => h.push_str("; SameSite=Strict"),
        Some(SameSite::Lax) => h.push_str("; SameSite=Lax"),
        Some(SameSite::None) => h.push_str("; SameSite=None"),
        None => {}
    }
    if c.secure {
        h.push_str("; Secure");
    }
    h
}

/// Sets (or, with `max_age` 0 and an empty value, deletes) a cookie on an answer.
pub trait SetCookie {
    fn set_cookie(self, w: &Worker, name: &str, value: &str, max_age: i64) -> Response;
}

impl SetCookie for Response {
    fn set_cookie(self, w: &Worker, name: &str, value: &str, max_age: i64) -> Response {
        let c = &w.config().serve.cookies;
        let resp = self.header("Set-Cookie", header(w, name, value, max_age, Some(c.same_site)));
        if c.legacy_workaround && c.same_site == SameSite::None {
            resp.header("Set-Cookie", header(w, &format!("{name}_legacy"), value, max_age, None))
        } else {
            resp
        }
    }
}

fn raw_value<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.head
        .header_all("cookie")
        .flat_map(|h| h.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The value of the request's cookie `name` (or its `_legacy` twin), if it sent one.
pub fn cookie_value<'a>(w: &Worker, req: &'a Request, name: &str) -> Option<&'a str> {
    raw_value(req, name).or_else(|| {
        let c = &w.config().serve.cookies;
        (c.legacy_workaround && c.same_site == SameSite::None)
            .then(|| raw_value(req, &format!("{name}_legacy")))
            .flatten()
    })
}
