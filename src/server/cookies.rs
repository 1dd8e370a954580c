//! Cookies of the browser flow: the `Set-Cookie` value and reading one back.
//!
//! Invariant: every cookie is HttpOnly, `SameSite=Lax`, and `Secure` outside `--dev`.

use crate::http::Request;

/// A `Set-Cookie` value (`max_age` 0 deletes the cookie).
pub fn set_cookie(dev: bool, name: &str, value: &str, max_age: i64) -> String {
    let secure = if dev { "" } else { "; Secure" };
    format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
}

/// The value of the request's cookie `name`, if it sent one.
pub fn cookie_value<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.head
        .header_all("cookie")
        .flat_map(|h| h.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}
